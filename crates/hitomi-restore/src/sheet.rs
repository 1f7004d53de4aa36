//! Side-by-side comparison images: labelled panels (distorted | restored | ...) in one PNG.

use std::path::Path;

use anyhow::Result;
use hitomi_core::checkpoint::write_atomic;
use hitomi_data::Planar;
use hitomi_train::draw::label;
use image::{Rgb, RgbImage};

/// Writes the panels left to right with a 4 px white gap and each label in its top-left corner.
/// Panels must share a height; grey panels are drawn grey.
pub fn write_side_by_side(path: &Path, panels: &[(&str, &Planar)]) -> Result<()> {
    let h = panels.iter().map(|(_, p)| p.height).max().unwrap_or(0) as u32;
    let gap = 4u32;
    let w: u32 =
        panels.iter().map(|(_, p)| p.width as u32).sum::<u32>() + gap * (panels.len() as u32).saturating_sub(1);
    let mut out = RgbImage::from_pixel(w.max(1), h.max(1), Rgb([255, 255, 255]));
    let mut x0 = 0u32;
    for (name, p) in panels {
        let rgb = p.to_image().to_rgb8();
        image::imageops::replace(&mut out, &rgb, x0 as i64, 0);
        let size = (p.height as f32 / 16.0).clamp(11.0, 22.0);
        label(&mut out, x0 as i32 + 2, 2, size, name, Rgb([255, 255, 255]), Rgb([20, 20, 20]));
        x0 += p.width as u32 + gap;
    }
    let mut bytes = Vec::new();
    out.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    write_atomic(path, &bytes)
}

/// Writes one image as PNG (grey or RGB by its channels), atomically.
pub fn write_png(path: &Path, img: &Planar) -> Result<()> {
    let mut bytes = Vec::new();
    img.to_image().write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    write_atomic(path, &bytes)
}
