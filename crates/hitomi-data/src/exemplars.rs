//! A label-free pretext dataset of exemplar classes (Exemplar-CNN, Dosovitskiy et al. 2014): each
//! class is one random spot of one photo, and its images are that spot cut again with a small shift
//! and scale change. Telling thousands of such spots apart needs features of local structure (edges,
//! blades, grains, their arrangement) that stay put under small moves, which is what a patch-level
//! anomaly detector compares; no human labels. Written as an ImageFolder tree so `classify train` runs it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use image::imageops::{self, FilterType};
use image::GrayImage;
use rand::Rng;
use rayon::prelude::*;

use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::read_image;
use hitomi_core::SeededRng;

use crate::patches::PatchSummary;

/// A variant's crop side is the exemplar's times a factor in [1 - SCALE_JITTER, 1 + SCALE_JITTER].
pub const SCALE_JITTER: f64 = 0.1;
/// A variant's centre moves by up to this fraction of the exemplar's side in x and y.
pub const SHIFT_JITTER: f64 = 0.125;

/// Where an exemplar sits: source photo, centre (x, y) and crop side, in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Exemplar {
    source: usize,
    cx: f64,
    cy: f64,
    side: f64,
}

/// An exemplar of a `w` x `h` photo whose crop of side in [side, 2 side] (capped by the photo) and
/// every jittered variant of it stay inside the photo.
fn draw_exemplar(source: usize, w: u32, h: u32, side: u32, rng: &mut impl Rng) -> Exemplar {
    let fit = w.min(h) as f64;
    let s = rng.gen_range(side as f64..=(2.0 * side as f64)).min(fit / (1.0 + SCALE_JITTER + 2.0 * SHIFT_JITTER));
    let margin = s * (1.0 + SCALE_JITTER) / 2.0 + s * SHIFT_JITTER;
    let cx = rng.gen_range(margin..=(w as f64 - margin).max(margin));
    let cy = rng.gen_range(margin..=(h as f64 - margin).max(margin));
    Exemplar { source, cx, cy, side: s }
}

/// Variant `jittered` of an exemplar, resized to `side`: variant 0 of a class is the exemplar itself
/// (`jittered = false`), the others move and rescale it.
fn variant(src: &GrayImage, e: &Exemplar, side: u32, jittered: bool, rng: &mut impl Rng) -> GrayImage {
    let (s, dx, dy) = if jittered {
        (
            e.side * rng.gen_range(1.0 - SCALE_JITTER..=1.0 + SCALE_JITTER),
            rng.gen_range(-SHIFT_JITTER..=SHIFT_JITTER) * e.side,
            rng.gen_range(-SHIFT_JITTER..=SHIFT_JITTER) * e.side,
        )
    } else {
        (e.side, 0.0, 0.0)
    };
    let s = (s.round() as u32).clamp(2, src.width().min(src.height()));
    let x = ((e.cx + dx - s as f64 / 2.0).round().max(0.0) as u32).min(src.width() - s);
    let y = ((e.cy + dy - s as f64 / 2.0).round().max(0.0) as u32).min(src.height() - s);
    imageops::resize(&imageops::crop_imm(src, x, y, s, s).to_image(), side, side, FilterType::Triangle)
}

/// `hitomi data patches --exemplars N`: N exemplar classes spread evenly over the photos (class c
/// is cut from photo c mod P), `per_class` images each, written to `out/train/ex<c>_<photo>/<i>.png`.
/// Exemplar c draws from the stream (seed, c), its image i from (seed, c, i).
pub fn write_exemplars(
    photos: &[PathBuf],
    side: u32,
    exemplars: usize,
    per_class: usize,
    seed: u64,
    out: &Path,
) -> Result<PatchSummary> {
    if photos.is_empty() {
        bail!("no photos given; expected image files to cut exemplars from");
    }
    if exemplars < 2 || per_class == 0 {
        bail!("--exemplars {exemplars} with --per-class {per_class}: expected at least 2 classes of at least 1 image");
    }
    let mut sources = Vec::new();
    for p in photos {
        let img = read_image(p)?.to_luma8();
        let need = (side as f64 * (1.0 + SCALE_JITTER + 2.0 * SHIFT_JITTER)).ceil() as u32;
        if img.width() < need || img.height() < need {
            bail!(
                "{}: {}x{} is smaller than {need}x{need}, the room a {side} px exemplar needs",
                p.display(),
                img.width(),
                img.height()
            );
        }
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        sources.push((stem, img));
    }
    let classes: Vec<(Exemplar, PathBuf)> = (0..exemplars)
        .map(|c| {
            let si = c % sources.len();
            let (stem, img) = &sources[si];
            let e = draw_exemplar(si, img.width(), img.height(), side, &mut SeededRng::derive(seed, &[c as u64]));
            (e, out.join("train").join(format!("ex{c:05}_{stem}")))
        })
        .collect();
    for (_, dir) in &classes {
        std::fs::create_dir_all(dir)?;
    }
    (0..exemplars * per_class).into_par_iter().try_for_each(|k| -> Result<()> {
        let (c, i) = (k / per_class, k % per_class);
        let (e, dir) = &classes[c];
        let mut rng = SeededRng::derive(seed, &[c as u64, i as u64]);
        let p = variant(&sources[e.source].1, e, side, i > 0, &mut rng);
        let mut bytes = Vec::new();
        p.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
        write_atomic(&dir.join(format!("{i:05}.png")), &bytes)
    })?;
    Ok(PatchSummary { classes: exemplars, images: exemplars * per_class })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a ramp (3 levels per source pixel across) a variant's mean level says where its centre
    /// is and its slope how much it was rescaled: both stay within the jitter of the exemplar's.
    #[test]
    fn variants_stay_near_their_exemplar() {
        let src = GrayImage::from_fn(80, 80, |x, _| image::Luma([(x * 3) as u8]));
        let stats = |p: &GrayImage| {
            let mean = p.pixels().map(|v| v.0[0] as f64).sum::<f64>() / (16.0 * 16.0);
            let slope = (p.get_pixel(12, 8).0[0] as f64 - p.get_pixel(4, 8).0[0] as f64) / 8.0;
            (mean, slope)
        };
        for c in 0..8u64 {
            let e = draw_exemplar(0, 80, 80, 16, &mut SeededRng::derive(3, &[c]));
            assert!(e.side >= 16.0 && e.side <= 32.0, "{e:?}");
            let (m0, s0) = stats(&variant(&src, &e, 16, false, &mut SeededRng::derive(3, &[c, 0])));
            assert!((m0 - 3.0 * e.cx).abs() <= 3.0, "exemplar mean {m0} at centre {}", e.cx);
            for i in 1..6 {
                let (m, s) = stats(&variant(&src, &e, 16, true, &mut SeededRng::derive(3, &[c, i])));
                assert!((m - m0).abs() <= 3.0 * (SHIFT_JITTER * e.side + 1.0), "variant mean {m} vs {m0}");
                assert!((s / s0 - 1.0).abs() <= SCALE_JITTER + 0.15, "variant slope {s} vs {s0}");
            }
        }
    }

    #[test]
    fn classes_are_written_per_exemplar_and_bad_counts_refused() {
        let dir = std::env::temp_dir().join(format!("hitomi-exemplars-{}", std::process::id()));
        let photo = dir.join("ramp.png");
        std::fs::create_dir_all(&dir).unwrap();
        GrayImage::from_fn(64, 64, |x, y| image::Luma([(x + y) as u8])).save(&photo).unwrap();
        let out = dir.join("out");
        let s = write_exemplars(std::slice::from_ref(&photo), 16, 4, 3, 0, &out).unwrap();
        assert_eq!((s.classes, s.images), (4, 12));
        assert!(out.join("train/ex00003_ramp/00002.png").is_file());
        let err = write_exemplars(std::slice::from_ref(&photo), 16, 1, 3, 0, &out).unwrap_err().to_string();
        assert!(err.contains("--exemplars 1"), "{err}");
        let err = write_exemplars(&[photo], 50, 4, 3, 0, &out).unwrap_err().to_string();
        assert!(err.contains("smaller than"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
