//! Digit canvases: real MNIST digits composed onto 96x96 grey canvases, written both as a detection
//! dataset (Ultralytics YOLO layout) and a segmentation dataset (class-index masks) over the same
//! images. The recipe is fixed (see `compose`), so a seed gives the same datasets everywhere.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{imageops::FilterType, GrayImage};
use rand::Rng;
use rayon::prelude::*;

use crate::classification::{ClassificationData, OpenOptions};
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::SeededRng;

/// Canvas side in pixels.
pub const SIDE: usize = 96;
/// Background pixels are uniform integers in [0, BACKGROUND_MAX].
pub const BACKGROUND_MAX: u8 = 24;
/// Boxes are the tight box of resized-digit pixels >= BOX_THRESHOLD.
pub const BOX_THRESHOLD: u8 = 64;
/// Mask pixels are those of the resized digit >= MASK_THRESHOLD.
pub const MASK_THRESHOLD: u8 = 128;
const MAX_IOU: f64 = 0.2;
const RETRIES: usize = 50;

/// One placed digit: its box (x1, y1, x2, y2 with x2 = last column + 1) and class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlacedDigit {
    pub xyxy: [u32; 4],
    pub class: u8,
}

/// A composed canvas: pixels (96*96), mask (0 = background, 1 + digit), digits placed.
#[derive(Clone, Debug)]
pub struct Canvas {
    pub pixels: Vec<u8>,
    pub mask: Vec<u8>,
    pub digits: Vec<PlacedDigit>,
}

fn iou(a: &[u32; 4], b: &[u32; 4]) -> f64 {
    let iw = (a[2].min(b[2]) as f64 - a[0].max(b[0]) as f64).max(0.0);
    let ih = (a[3].min(b[3]) as f64 - a[1].max(b[1]) as f64).max(0.0);
    let inter = iw * ih;
    let area = |r: &[u32; 4]| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
    inter / (area(a) + area(b) - inter)
}

/// Tight box of the pixels >= BOX_THRESHOLD of a side x side digit placed at (x, y).
fn tight_box(digit: &[u8], side: usize, x: usize, y: usize) -> Option<[u32; 4]> {
    let (mut x1, mut y1, mut x2, mut y2) = (usize::MAX, usize::MAX, 0, 0);
    for r in 0..side {
        for c in 0..side {
            if digit[r * side + c] >= BOX_THRESHOLD {
                x1 = x1.min(c);
                y1 = y1.min(r);
                x2 = x2.max(c + 1);
                y2 = y2.max(r + 1);
            }
        }
    }
    (x1 != usize::MAX).then(|| [(x + x1) as u32, (y + y1) as u32, (x + x2) as u32, (y + y2) as u32])
}

/// Composes one canvas from `digits` (28x28 grey MNIST images with their labels):
/// 1-4 digits, each scaled by s ~ U[0.8, 1.5] (bilinear), placed fully inside at a uniform integer
/// position; a placement whose box has IoU > 0.2 with an earlier box is retried up to 50 times, then
/// the digit is skipped; pixel = max(background, digits).
pub fn compose(digits: &ClassificationData, rng: &mut impl Rng) -> Canvas {
    let mut pixels: Vec<u8> = (0..SIDE * SIDE).map(|_| rng.gen_range(0..=BACKGROUND_MAX)).collect();
    let mut mask = vec![0u8; SIDE * SIDE];
    let mut placed: Vec<PlacedDigit> = Vec::new();
    let count = rng.gen_range(1..=4);
    for _ in 0..count {
        let i = rng.gen_range(0..digits.len());
        let s: f64 = rng.gen_range(0.8..=1.5);
        let side = (28.0 * s).round() as usize;
        let src = GrayImage::from_raw(28, 28, digits.image_u8(i).to_vec()).expect("28x28 MNIST digit");
        let resized = image::imageops::resize(&src, side as u32, side as u32, FilterType::Triangle).into_raw();
        let mut spot = None;
        for _ in 0..RETRIES {
            let x = rng.gen_range(0..=SIDE - side);
            let y = rng.gen_range(0..=SIDE - side);
            let Some(b) = tight_box(&resized, side, x, y) else { break };
            if placed.iter().all(|p| iou(&p.xyxy, &b) <= MAX_IOU) {
                spot = Some((x, y, b));
                break;
            }
        }
        let Some((x, y, xyxy)) = spot else { continue };
        let class = digits.labels[i] as u8;
        for r in 0..side {
            for c in 0..side {
                let v = resized[r * side + c];
                let o = (y + r) * SIDE + x + c;
                pixels[o] = pixels[o].max(v);
                if v >= MASK_THRESHOLD {
                    mask[o] = 1 + class;
                }
            }
        }
        placed.push(PlacedDigit { xyxy, class });
    }
    Canvas { pixels, mask, digits: placed }
}

/// What `write_canvases` wrote.
#[derive(Clone, Debug)]
pub struct CanvasSummary {
    pub images: usize,
    pub digits: usize,
}

fn png(path: &Path, pixels: &[u8]) -> Result<()> {
    let img = GrayImage::from_raw(SIDE as u32, SIDE as u32, pixels.to_vec()).expect("canvas size");
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    write_atomic(path, &bytes)
}

/// `hitomi data canvases`: `n` canvases from the MNIST `split` ("train" or "test") of `mnist_dir`,
/// written to `out/detect` (YOLO: data.yaml, images/<split>/, labels/<split>/) and `out/segment`
/// (data.yaml, images/<split>/, masks/<split>/). Canvas i uses the stream (seed, split, i).
pub fn write_canvases(mnist_dir: &Path, split: &str, n: usize, seed: u64, out: &Path) -> Result<CanvasSummary> {
    let split_key = match split {
        "train" => 0u64,
        "test" => 1,
        other => bail!("--split {other}: expected train or test"),
    };
    let digits = ClassificationData::open(mnist_dir, split, &OpenOptions { channels: 1, size: None })?;
    if (digits.height, digits.width) != (28, 28) {
        bail!("{}: digits are {}x{}; expected 28x28 MNIST digits", mnist_dir.display(), digits.height, digits.width);
    }
    let det = out.join("detect");
    let seg = out.join("segment");
    for d in [
        det.join("images").join(split),
        det.join("labels").join(split),
        seg.join("images").join(split),
        seg.join("masks").join(split),
    ] {
        std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let digit_names: Vec<String> = (0..10).map(|d| format!("\"{d}\"")).collect();
    let yaml = |names: &str| format!("path: .\ntrain: images/train\nval: images/test\nnames: [{names}]\n");
    write_atomic(&det.join("data.yaml"), yaml(&digit_names.join(", ")).as_bytes())?;
    write_atomic(&seg.join("data.yaml"), yaml(&format!("background, {}", digit_names.join(", "))).as_bytes())?;
    let counts: Vec<usize> = (0..n)
        .into_par_iter()
        .map(|i| -> Result<usize> {
            let canvas = compose(&digits, &mut SeededRng::derive(seed, &[split_key, i as u64]));
            let stem = format!("{split}_{i:05}");
            png(&det.join("images").join(split).join(format!("{stem}.png")), &canvas.pixels)?;
            png(&seg.join("images").join(split).join(format!("{stem}.png")), &canvas.pixels)?;
            png(&seg.join("masks").join(split).join(format!("{stem}.png")), &canvas.mask)?;
            let s = SIDE as f64;
            let labels: String = canvas
                .digits
                .iter()
                .map(|d| {
                    let [x1, y1, x2, y2] = d.xyxy.map(|v| v as f64);
                    format!(
                        "{} {:.6} {:.6} {:.6} {:.6}\n",
                        d.class,
                        (x1 + x2) / 2.0 / s,
                        (y1 + y2) / 2.0 / s,
                        (x2 - x1) / s,
                        (y2 - y1) / s
                    )
                })
                .collect();
            write_atomic(&det.join("labels").join(split).join(format!("{stem}.txt")), labels.as_bytes())?;
            Ok(canvas.digits.len())
        })
        .collect::<Result<_>>()?;
    Ok(CanvasSummary { images: n, digits: counts.iter().sum() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist() -> ClassificationData {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/mnist");
        ClassificationData::open(&dir, "test", &OpenOptions { channels: 1, size: None }).unwrap()
    }

    #[test]
    fn canvases_follow_the_recipe() {
        let digits = mnist();
        let mut total = 0;
        for i in 0..200u64 {
            let c = compose(&digits, &mut SeededRng::derive(7, &[1, i]));
            assert!(c.digits.len() <= 4);
            total += c.digits.len();
            for (a, da) in c.digits.iter().enumerate() {
                let [x1, y1, x2, y2] = da.xyxy;
                assert!(x1 < x2 && y1 < y2 && x2 as usize <= SIDE && y2 as usize <= SIDE);
                for db in &c.digits[a + 1..] {
                    assert!(iou(&da.xyxy, &db.xyxy) <= MAX_IOU);
                }
            }
            for (o, &m) in c.mask.iter().enumerate() {
                let (x, y) = ((o % SIDE) as u32, (o / SIDE) as u32);
                if m == 0 {
                    continue;
                }
                assert!(m <= 10 && c.pixels[o] >= MASK_THRESHOLD, "mask pixel must be a bright digit pixel");
                let inside = c
                    .digits
                    .iter()
                    .any(|d| d.class + 1 == m && x >= d.xyxy[0] && x < d.xyxy[2] && y >= d.xyxy[1] && y < d.xyxy[3]);
                assert!(inside, "mask class {m} at ({x},{y}) outside every box of that class");
            }
            // Background-only pixels stay within [0, 24]: pixels outside every box are background
            // or faint digit edges below the box threshold.
            for (o, &p) in c.pixels.iter().enumerate() {
                let (x, y) = ((o % SIDE) as u32, (o / SIDE) as u32);
                if !c.digits.iter().any(|d| x >= d.xyxy[0] && x < d.xyxy[2] && y >= d.xyxy[1] && y < d.xyxy[3]) {
                    assert!(p < BOX_THRESHOLD, "pixel {p} outside every box");
                }
            }
        }
        // 1-4 digits uniform: 2.5 per canvas on average (sd of the total ~16), a few skipped.
        assert!((440..=560).contains(&total), "{total} digits on 200 canvases");
        let a = compose(&digits, &mut SeededRng::derive(7, &[1, 3]));
        let b = compose(&digits, &mut SeededRng::derive(7, &[1, 3]));
        assert_eq!(a.pixels, b.pixels);
    }
}
