//! `hitomi-segment predict`: per image, the class-index mask (grey PNG, ids as values) at the
//! image's own size, a colour overlay with a legend of the classes found, and JSON.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::read_image;
use hitomi_data::index_mask::{encode_index_mask, IndexMask};
use hitomi_data::pixels::to_chw;
use hitomi_train::cli::PredictArgs;
use hitomi_train::draw::label;
use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::eval::{load_segmenter, LoadedSegmenter};
use crate::palette::class_color;
use crate::task::logits_to_masks;

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub file: String,
    pub mask: String,
    pub overlay: String,
    /// Pixels per class name, for the classes present.
    pub pixels: BTreeMap<String, usize>,
}

/// The class-id mask of one image file, at the file's size.
pub fn segment_file(m: &LoadedSegmenter, path: &Path, device: &Device) -> Result<(image::DynamicImage, IndexMask)> {
    let img = read_image(path)?;
    let [h, w] = m.cfg.image_size;
    let (_, _, chw) = to_chw(&img, m.cfg.channels, Some((h, w))).with_context(|| path.display().to_string())?;
    let xs: Vec<f32> = chw.iter().map(|&v| v as f32 / 255.0).collect();
    let xs = Tensor::from_vec(xs, (1, m.cfg.channels, h, w), device)?;
    let logits = m.model.forward(&xs, false)?;
    let mask = logits_to_masks(&logits, &[(img.height() as usize, img.width() as usize)])?.remove(0);
    Ok((img, mask))
}

/// The image (upscaled to at least 256 px wide for legibility) with every non-background class
/// blended in its colour, and a legend of the classes present.
fn overlay(img: &image::DynamicImage, mask: &IndexMask, classes: &[String]) -> RgbImage {
    let scale = (256 / mask.width.max(1)).max(1) as u32;
    let mut out = RgbImage::new(mask.width as u32 * scale, mask.height as u32 * scale);
    let rgb = img.to_rgb8();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (sx, sy) = (x / scale, y / scale);
        let id = mask.ids[sy as usize * mask.width + sx as usize];
        let base = rgb.get_pixel(sx, sy).0;
        let is_background = classes.get(id as usize).is_some_and(|n| n == "background");
        *px = if is_background {
            Rgb(base)
        } else {
            let c = class_color(id).0;
            Rgb([0, 1, 2].map(|i| ((base[i] as u16 + c[i] as u16) / 2) as u8))
        };
    }
    let mut y = 2;
    let mut present: Vec<u8> = mask.ids.clone();
    present.sort_unstable();
    present.dedup();
    for id in present {
        let Some(name) = classes.get(id as usize) else { continue };
        if name == "background" {
            continue;
        }
        label(&mut out, 2, y, 16.0, name, Rgb([255, 255, 255]), class_color(id));
        y += 20;
    }
    out
}

pub fn run(args: &PredictArgs) -> Result<Vec<Prediction>> {
    let device = Device::Cpu;
    let m = load_segmenter(&args.weights, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut preds = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        let (img, mask) = segment_file(&m, path, &device)?;
        let stem = format!("{i:03}_{}", path.file_stem().and_then(|s| s.to_str()).unwrap_or("image"));
        let mask_path = args.out.join(format!("{stem}_mask.png"));
        write_atomic(&mask_path, &encode_index_mask(&mask)?)?;
        let overlay_path = args.out.join(format!("{stem}_overlay.png"));
        overlay(&img, &mask, &m.classes)
            .save(&overlay_path)
            .with_context(|| format!("{}: cannot write", overlay_path.display()))?;
        let mut pixels = BTreeMap::new();
        for &id in &mask.ids {
            *pixels.entry(m.classes.get(id as usize).cloned().unwrap_or_else(|| id.to_string())).or_insert(0) += 1;
        }
        let found: Vec<String> =
            pixels.iter().filter(|(k, _)| k.as_str() != "background").map(|(k, v)| format!("{k} ({v} px)")).collect();
        println!("{}: {}", path.display(), if found.is_empty() { "background only".into() } else { found.join(", ") });
        preds.push(Prediction {
            file: path.display().to_string(),
            mask: mask_path.display().to_string(),
            overlay: overlay_path.display().to_string(),
            pixels,
        });
    }
    let json = args.json.clone().unwrap_or_else(|| args.out.join("predictions.json"));
    write_atomic(&json, serde_json::to_string_pretty(&preds)?.as_bytes())?;
    Ok(preds)
}
