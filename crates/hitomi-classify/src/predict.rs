//! `hitomi-classify predict`: top-5 classes with probabilities per image, printed, as JSON, and
//! drawn on a copy of each image.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, D};
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::{image_to_tensor, read_image};
use hitomi_train::cli::PredictArgs;
use hitomi_train::draw::label;
use image::imageops::FilterType;
use image::Rgb;
use serde::Serialize;

use crate::config::PredictInput;
use crate::eval::{load_classifier, LoadedClassifier};
use crate::metrics::ranked;

#[derive(Clone, Debug, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub index: usize,
    pub probability: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub file: String,
    pub top5: Vec<ClassScore>,
}

/// Class probabilities of one image file of any size and colour.
pub fn classify_file(m: &LoadedClassifier, path: &Path, device: &Device) -> Result<Prediction> {
    let img = read_image(path)?;
    let [h, w] = m.cfg.image_size;
    let resized = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
    let mut xs = image_to_tensor(&resized, m.cfg.channels, device)?;
    if m.cfg.predict_input == PredictInput::Autocontrast {
        xs = autocontrast(&xs)?;
    }
    let xs = xs.unsqueeze(0)?;
    let probs: Vec<f32> = candle_core::Tensor::squeeze(&softmax_rows(&m.model.forward(&xs, false)?)?, 0)?.to_vec1()?;
    let top5 = ranked(&probs)
        .into_iter()
        .take(5)
        .map(|i| ClassScore { class: m.classes[i].clone(), index: i, probability: probs[i] as f64 })
        .collect();
    Ok(Prediction { file: path.display().to_string(), top5 })
}

/// Stretches (C, H, W) intensities to [0, 1]; inverts when the one-pixel border is on average
/// brighter than the image (dark ink on light paper).
fn autocontrast(xs: &Tensor) -> Result<Tensor> {
    let (c, h, w) = xs.dims3()?;
    let mut v: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    let (lo, hi) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    if hi - lo > 1e-6 {
        v.iter_mut().for_each(|x| *x = (*x - lo) / (hi - lo));
    }
    let mut border = 0f32;
    let mut n = 0usize;
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                    border += v[(ch * h + y) * w + x];
                    n += 1;
                }
            }
        }
    }
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    if border / n.max(1) as f32 > mean {
        v.iter_mut().for_each(|x| *x = 1.0 - *x);
    }
    Ok(Tensor::from_vec(v, (c, h, w), xs.device())?)
}

fn softmax_rows(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let e = logits.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Writes a copy of the image (at least 224 px wide) with the top-1 class and probability on it.
fn annotate(src: &Path, p: &Prediction, out: &Path) -> Result<()> {
    let img = read_image(src)?;
    let scale = (224.0 / img.width().max(1) as f32).max(1.0);
    let (w, h) = ((img.width() as f32 * scale) as u32, (img.height() as f32 * scale) as u32);
    let mut rgb = img.resize_exact(w, h, FilterType::Nearest).to_rgb8();
    let best = &p.top5[0];
    let text = format!("{} {:.1}%", best.class, 100.0 * best.probability);
    label(&mut rgb, 2, 2, 22.0, &text, Rgb([255, 255, 255]), Rgb([200, 30, 30]));
    rgb.save(out).with_context(|| format!("{}: cannot write", out.display()))
}

pub fn run(args: &PredictArgs) -> Result<Vec<Prediction>> {
    let device = Device::Cpu;
    let m = load_classifier(&args.weights, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut preds = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        let p = classify_file(&m, path, &device)?;
        let tops: Vec<String> = p.top5.iter().map(|c| format!("{} {:.3}", c.class, c.probability)).collect();
        println!("{}: {}", path.display(), tops.join(", "));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        annotate(path, &p, &args.out.join(format!("{i:03}_{stem}.png")))?;
        preds.push(p);
    }
    let json = args.json.clone().unwrap_or_else(|| args.out.join("predictions.json"));
    write_atomic(&json, serde_json::to_string_pretty(&preds)?.as_bytes())?;
    Ok(preds)
}
