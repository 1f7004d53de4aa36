//! `Planar`: an image as (C, H, W) f32 planes on the 0..255 scale, the form restoration works in
//! (distortions, classical filters, PSNR/SSIM, patches for training).

use anyhow::{bail, Result};
use image::DynamicImage;

use crate::pixels::interleaved_to_planar;

/// data: (C, H, W) row-major, values on the 0..255 scale (not necessarily integers or in range
/// until `to_image`).
#[derive(Clone, Debug, PartialEq)]
pub struct Planar {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Planar {
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != channels * height * width {
            bail!("planar image: {} values for {channels}x{height}x{width}", data.len());
        }
        Ok(Self { channels, height, width, data })
    }

    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width, data: vec![0.0; channels * height * width] }
    }

    /// `channels` 1 = luma, 3 = RGB (other values are an error).
    pub fn from_image(img: &DynamicImage, channels: usize) -> Result<Self> {
        let (h, w) = (img.height() as usize, img.width() as usize);
        let raw = match channels {
            1 => img.to_luma8().into_raw(),
            3 => interleaved_to_planar(&img.to_rgb8().into_raw(), 3),
            c => bail!("{c} channels requested; expected 1 (grey) or 3 (RGB)"),
        };
        Self::new(channels, h, w, raw.into_iter().map(f32::from).collect())
    }

    /// Rounded and clamped to 8 bits: grey for one channel, RGB for three.
    pub fn to_image(&self) -> DynamicImage {
        let q = self.quantized();
        let hw = self.height * self.width;
        let (w, h) = (self.width as u32, self.height as u32);
        if self.channels == 1 {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, q).expect("sizes checked"))
        } else {
            let mut raw = vec![0u8; hw * 3];
            for (i, px) in raw.chunks_exact_mut(3).enumerate() {
                for (c, v) in px.iter_mut().enumerate() {
                    *v = q[c * hw + i];
                }
            }
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).expect("sizes checked"))
        }
    }

    /// Values rounded to the nearest integer and clamped to 0..=255, planar.
    pub fn quantized(&self) -> Vec<u8> {
        self.data.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
    }

    /// The same image with every value rounded and clamped to an 8-bit level (what a saved file holds).
    pub fn to_u8_levels(&self) -> Self {
        Self { data: self.quantized().into_iter().map(f32::from).collect(), ..*self }
    }

    /// Plane `c`: (H, W) row-major.
    pub fn plane(&self, c: usize) -> &[f32] {
        let hw = self.height * self.width;
        &self.data[c * hw..(c + 1) * hw]
    }

    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let hw = self.height * self.width;
        &mut self.data[c * hw..(c + 1) * hw]
    }

    /// The w x h window at (x, y); it must lie inside the image.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Self {
        assert!(x + w <= self.width && y + h <= self.height, "crop outside the image");
        let mut data = Vec::with_capacity(self.channels * w * h);
        for c in 0..self.channels {
            let p = self.plane(c);
            for r in y..y + h {
                data.extend_from_slice(&p[r * self.width + x..r * self.width + x + w]);
            }
        }
        Self { channels: self.channels, height: h, width: w, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trip_and_crop() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8, y as u8, 200])));
        let p = Planar::from_image(&img, 3).unwrap();
        assert_eq!((p.channels, p.height, p.width), (3, 3, 4));
        assert_eq!(p.plane(1), &[0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
        assert_eq!(p.to_image().to_rgb8(), img.to_rgb8());
        let c = p.crop(1, 1, 2, 2);
        assert_eq!(c.plane(0), &[1., 2., 1., 2.]);
        assert_eq!(c.plane(2), &[200.; 4]);
        let mut q = p.clone();
        q.data[0] = 300.4;
        q.data[1] = -2.0;
        q.data[2] = 7.5;
        assert_eq!(&q.quantized()[..3], &[255, 0, 8]);
        assert!(Planar::new(1, 2, 2, vec![0.0; 3]).is_err());
    }
}
