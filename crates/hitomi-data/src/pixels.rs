//! Conversion of decoded images into the planar (C, H, W) u8 layout datasets keep in memory.

use anyhow::{bail, Result};
use image::imageops::FilterType;
use image::DynamicImage;

/// Resizes `img` to `size` = (height, width) when given (bilinear, as `image::imageops::resize` with
/// `Triangle`), then converts it to `channels` (1 = luma, 3 = RGB) planes.
///
/// Resizing before the colour conversion matches what prediction does with a single image, so a
/// model sees the same pixels at training and at prediction time.
///
/// Returns (height, width, pixels) with pixels: (C, H, W) row-major.
pub fn to_chw(img: &DynamicImage, channels: usize, size: Option<(usize, usize)>) -> Result<(usize, usize, Vec<u8>)> {
    let resized;
    let img = match size {
        Some((h, w)) if (w as u32, h as u32) != (img.width(), img.height()) => {
            resized = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
            &resized
        }
        _ => img,
    };
    let (h, w) = (img.height() as usize, img.width() as usize);
    let data = match channels {
        1 => img.to_luma8().into_raw(),
        3 => interleaved_to_planar(&img.to_rgb8().into_raw(), 3),
        c => bail!("{c} channels requested; expected 1 (grey) or 3 (RGB)"),
    };
    Ok((h, w, data))
}

/// (H, W, C) interleaved -> (C, H, W) planar.
pub fn interleaved_to_planar(raw: &[u8], c: usize) -> Vec<u8> {
    let hw = raw.len() / c;
    let mut out = vec![0u8; raw.len()];
    for (i, px) in raw.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * hw + i] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_becomes_planar_and_grey_is_luma() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 9])));
        let (h, w, p) = to_chw(&img, 3, None).unwrap();
        assert_eq!((h, w), (2, 3));
        assert_eq!(p, vec![0, 1, 2, 0, 1, 2, 0, 0, 0, 1, 1, 1, 9, 9, 9, 9, 9, 9]);
        let (_, _, g) = to_chw(&img, 1, None).unwrap();
        assert_eq!(g, img.to_luma8().into_raw());
        let (h, w, r) = to_chw(&img, 1, Some((4, 5))).unwrap();
        assert_eq!((h, w, r.len()), (4, 5, 20));
        assert!(to_chw(&img, 2, None).is_err());
    }
}
