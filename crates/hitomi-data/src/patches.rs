//! A label-free pretext dataset for feature learning: random square patches of a few photos, each
//! rotated by 0, 90, 180 or 270 degrees, labelled by (source photo, rotation). Predicting where a
//! patch came from and which way up it is needs texture, edge and stroke features but no human
//! labels, which is how the anomaly detector's default backbone is trained (RotNet, Gidaris et al.
//! 2018, joined with source discrimination). Written as an ImageFolder tree so `classify train` runs it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use image::imageops::{self, FilterType};
use image::GrayImage;
use rand::Rng;
use rayon::prelude::*;

use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::read_image;
use hitomi_core::SeededRng;

/// What `write_patches` wrote.
#[derive(Clone, Debug)]
pub struct PatchSummary {
    pub classes: usize,
    pub images: usize,
}

/// A random patch of `src`: a square of side in [side, 3 side] (capped by the photo), resized to
/// `side`, rotated by `quarter` x 90 degrees.
fn patch(src: &GrayImage, side: u32, quarter: u8, rng: &mut impl Rng) -> GrayImage {
    let max = (3 * side).min(src.width()).min(src.height());
    let s = rng.gen_range(side..=max);
    let x = rng.gen_range(0..=src.width() - s);
    let y = rng.gen_range(0..=src.height() - s);
    let crop = imageops::crop_imm(src, x, y, s, s).to_image();
    let p = imageops::resize(&crop, side, side, FilterType::Triangle);
    match quarter {
        0 => p,
        1 => imageops::rotate90(&p),
        2 => imageops::rotate180(&p),
        _ => imageops::rotate270(&p),
    }
}

/// `hitomi data patches`: `per_class` patches of `side` px for every (photo, rotation) class,
/// written to `out/train/<photo>_rot<deg>/<i>.png`. Patch i of class c uses the stream (seed, c, i).
pub fn write_patches(photos: &[PathBuf], side: u32, per_class: usize, seed: u64, out: &Path) -> Result<PatchSummary> {
    if photos.is_empty() {
        bail!("no photos given; expected image files to cut patches from");
    }
    let mut sources = Vec::new();
    for p in photos {
        let img = read_image(p)?.to_luma8();
        if img.width() < side || img.height() < side {
            bail!("{}: {}x{} is smaller than the patch side {side}", p.display(), img.width(), img.height());
        }
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        sources.push((stem, img));
    }
    let mut classes = Vec::new();
    for (si, (stem, _)) in sources.iter().enumerate() {
        for q in 0..4u8 {
            classes.push((si, q, out.join("train").join(format!("{stem}_rot{:03}", 90 * q as u32))));
        }
    }
    for (_, _, dir) in &classes {
        std::fs::create_dir_all(dir)?;
    }
    (0..classes.len() * per_class).into_par_iter().try_for_each(|k| -> Result<()> {
        let (c, i) = (k / per_class, k % per_class);
        let (si, q, dir) = &classes[c];
        let mut rng = SeededRng::derive(seed, &[c as u64, i as u64]);
        let p = patch(&sources[*si].1, side, *q, &mut rng);
        let mut bytes = Vec::new();
        p.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
        write_atomic(&dir.join(format!("{i:05}.png")), &bytes)
    })?;
    Ok(PatchSummary { classes: classes.len(), images: classes.len() * per_class })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_classes_hold_rotated_patches() {
        let src = GrayImage::from_fn(64, 48, |x, y| image::Luma([(x * 3 + y) as u8]));
        let mut a = SeededRng::derive(1, &[0, 0]);
        let mut b = SeededRng::derive(1, &[0, 0]);
        let p0 = patch(&src, 16, 0, &mut a);
        let p1 = patch(&src, 16, 1, &mut b);
        assert_eq!(p0.dimensions(), (16, 16));
        assert_eq!(imageops::rotate90(&p0), p1, "same draw, rotated a quarter turn");
    }
}
