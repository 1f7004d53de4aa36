//! A label-free pretext dataset for feature learning: random square patches of a few photos, each
//! rotated by 0, 90, 180 or 270 degrees, labelled by (source photo, rotation) and optionally by the
//! zoom factor the patch was cut at. Predicting where a patch came from, which way up it is and how
//! magnified it is needs texture, edge, stroke and scale features but no human labels, which is how
//! the anomaly detector's default backbone is trained (RotNet, Gidaris et al. 2018, joined with source
//! discrimination and scale prediction). Written as an ImageFolder tree so `classify train` runs it.

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

/// Each zoom class draws its crop side from zoom x side x [1 - ZOOM_JITTER, 1 + ZOOM_JITTER], so
/// every class is resampled (a class cannot be told by the absence of interpolation) and classes a
/// factor of two apart never overlap.
pub const ZOOM_JITTER: f64 = 0.1;

/// A random patch of `src`, resized to `side` and rotated by `quarter` x 90 degrees. Without a zoom
/// it is cut as a square of side in [side, 3 side] (any scale, so scale is not part of the label);
/// with zoom `z` the square's side is about z x side (z < 1 magnifies), capped by the photo.
fn patch(src: &GrayImage, side: u32, quarter: u8, zoom: Option<f64>, rng: &mut impl Rng) -> GrayImage {
    let fit = src.width().min(src.height());
    let s = match zoom {
        None => rng.gen_range(side..=(3 * side).min(fit)),
        Some(z) => {
            let f = z * side as f64 * rng.gen_range(1.0 - ZOOM_JITTER..=1.0 + ZOOM_JITTER);
            (f.round() as u32).clamp(2, fit)
        }
    };
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

/// `hitomi data patches`: `per_class` patches of `side` px for every (photo, rotation) class, or
/// every (photo, rotation, zoom) class when `zooms` is not empty, written to
/// `out/train/<photo>_rot<deg>[_zoom<z>]/<i>.png`. Patch i of class c uses the stream (seed, c, i).
pub fn write_patches(
    photos: &[PathBuf],
    side: u32,
    per_class: usize,
    zooms: &[f64],
    seed: u64,
    out: &Path,
) -> Result<PatchSummary> {
    if photos.is_empty() {
        bail!("no photos given; expected image files to cut patches from");
    }
    if let Some(z) = zooms.iter().find(|z| !(z.is_finite() && **z > 0.0)) {
        bail!("zoom {z}: expected a positive factor (1 = the photo's own scale, 0.5 = magnified 2x)");
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
            let name = format!("{stem}_rot{:03}", 90 * q as u32);
            if zooms.is_empty() {
                classes.push((si, q, None, out.join("train").join(&name)));
            }
            for &z in zooms {
                classes.push((si, q, Some(z), out.join("train").join(format!("{name}_zoom{z}"))));
            }
        }
    }
    for (_, _, _, dir) in &classes {
        std::fs::create_dir_all(dir)?;
    }
    (0..classes.len() * per_class).into_par_iter().try_for_each(|k| -> Result<()> {
        let (c, i) = (k / per_class, k % per_class);
        let (si, q, zoom, dir) = &classes[c];
        let mut rng = SeededRng::derive(seed, &[c as u64, i as u64]);
        let p = patch(&sources[*si].1, side, *q, *zoom, &mut rng);
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
        let p0 = patch(&src, 16, 0, None, &mut a);
        let p1 = patch(&src, 16, 1, None, &mut b);
        assert_eq!(p0.dimensions(), (16, 16));
        assert_eq!(imageops::rotate90(&p0), p1, "same draw, rotated a quarter turn");
    }

    /// A ramp's slope in a patch measures its zoom: 3 levels per source pixel becomes 3 z (x the
    /// jitter) per patch pixel, so a 0.5 patch climbs half as fast as a 1.0 patch and a 2.0 one twice.
    #[test]
    fn zoom_classes_cut_patches_at_their_scale() {
        let src = GrayImage::from_fn(80, 80, |x, _| image::Luma([(x * 3) as u8]));
        let slope = |z: f64, i: u64| {
            let p = patch(&src, 16, 0, Some(z), &mut SeededRng::derive(2, &[0, i]));
            assert_eq!(p.dimensions(), (16, 16));
            (p.get_pixel(12, 8).0[0] as f64 - p.get_pixel(4, 8).0[0] as f64) / 8.0
        };
        for i in 0..8 {
            let (half, one, two) = (slope(0.5, i), slope(1.0, i), slope(2.0, i));
            assert!((half - 1.5).abs() <= 0.35, "zoom 0.5 slope {half}");
            assert!((one - 3.0).abs() <= 0.5, "zoom 1 slope {one}");
            assert!((two - 6.0).abs() <= 0.8, "zoom 2 slope {two}");
        }
    }

    #[test]
    fn zoom_classes_are_named_by_factor_and_bad_zooms_are_refused() {
        let dir = std::env::temp_dir().join(format!("hitomi-patches-{}", std::process::id()));
        let photo = dir.join("ramp.png");
        std::fs::create_dir_all(&dir).unwrap();
        GrayImage::from_fn(64, 64, |x, y| image::Luma([(x + y) as u8])).save(&photo).unwrap();
        let out = dir.join("out");
        let s = write_patches(std::slice::from_ref(&photo), 16, 2, &[0.5, 2.0], 0, &out).unwrap();
        assert_eq!((s.classes, s.images), (8, 16));
        assert!(out.join("train/ramp_rot090_zoom0.5/00001.png").is_file());
        assert!(out.join("train/ramp_rot270_zoom2/00000.png").is_file());
        let err = write_patches(&[photo], 16, 2, &[1.0, -1.0], 0, &out).unwrap_err().to_string();
        assert!(err.contains("zoom -1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
