//! Image decoding with size limits (decompression bombs) and conversions between images and tensors.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use image::{DynamicImage, ImageReader, Limits};

/// Largest accepted image side and decoded size.
pub const MAX_SIDE: u32 = 16_384;
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes an image file (PNG, JPEG), refusing empty, truncated, non-image and oversized files with
/// an error that names the file.
pub fn read_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read image", path.display()))?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes image bytes; `name` is used in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<DynamicImage> {
    if bytes.is_empty() {
        bail!("{name}: empty file (0 bytes); expected a PNG or JPEG image");
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("{name}: cannot read image"))?;
    if reader.format().is_none() {
        bail!("{name}: not an image (unknown format); expected a PNG or JPEG image");
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| anyhow::anyhow!("{name}: cannot decode image ({e}); the file may be truncated or corrupt"))
}

/// Converts an image to a (C, H, W) f32 tensor in [0, 1] with `channels` = 1 (luma) or 3 (RGB).
pub fn image_to_tensor(img: &DynamicImage, channels: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = match channels {
        1 => img.to_luma8().into_raw().into_iter().map(|v| v as f32 / 255.0).collect(),
        3 => {
            let raw = img.to_rgb8().into_raw();
            let mut out = vec![0f32; 3 * h * w];
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * h * w + i] = px[c] as f32 / 255.0;
                }
            }
            out
        }
        c => bail!("image_to_tensor: {c} channels requested; expected 1 or 3"),
    };
    Ok(Tensor::from_vec(data, (channels, h, w), device)?)
}

/// Converts a (C, H, W) tensor in [0, 1] (C = 1 or 3) to an 8-bit image.
pub fn tensor_to_image(t: &Tensor) -> Result<DynamicImage> {
    let (c, h, w) = t.dims3()?;
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let q = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    Ok(match c {
        1 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w as u32, h as u32, v.iter().map(|&x| q(x)).collect()).unwrap(),
        ),
        3 => {
            let mut raw = vec![0u8; 3 * h * w];
            for i in 0..h * w {
                for ch in 0..3 {
                    raw[3 * i + ch] = q(v[ch * h * w + i]);
                }
            }
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w as u32, h as u32, raw).unwrap())
        }
        _ => bail!("tensor_to_image: {c} channels; expected 1 or 3"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_named() {
        let e = decode_image(&[], "a.png").unwrap_err().to_string();
        assert!(e.contains("a.png") && e.contains("empty"), "{e}");
        let e = decode_image(b"this is text", "b.png").unwrap_err().to_string();
        assert!(e.contains("b.png") && e.contains("not an image"), "{e}");
        let mut png = Vec::new();
        image::GrayImage::new(8, 8).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let e = decode_image(&png[..png.len() / 2], "c.png").unwrap_err().to_string();
        assert!(e.contains("c.png") && e.contains("truncated"), "{e}");
        assert!(decode_image(&png, "d.png").is_ok());
    }

    #[test]
    fn tensor_round_trip() {
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7])));
        let t = image_to_tensor(&img, 3, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 4, 5]);
        let back = tensor_to_image(&t).unwrap();
        assert_eq!(back.to_rgb8(), img.to_rgb8());
    }
}
