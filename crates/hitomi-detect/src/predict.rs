//! `hitomi-detect predict`: boxes with class and score drawn on each image (PNG) and JSON
//! `[{"file", "boxes": [{"xyxy", "class", "score"}]}]` in the image's own pixels.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::read_image;
use hitomi_data::pixels::to_chw;
use hitomi_train::cli::PredictArgs;
use hitomi_train::draw::label;
use image::{DynamicImage, Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;
use serde::Serialize;

use crate::decode::{decode, rescale, Detection};
use crate::eval::{load_detector, LoadedDetector};

/// The shared predict flags plus the score a box needs to be reported.
#[derive(Args, Debug, Clone)]
pub struct DetectPredictArgs {
    #[command(flatten)]
    pub common: PredictArgs,
    /// Boxes scoring below this are not drawn or listed (evaluation keeps everything above the
    /// config's `score_threshold`, as mAP needs the low-scoring tail).
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct PredictedBox {
    pub xyxy: [f32; 4],
    pub class: String,
    pub score: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub file: String,
    pub image: String,
    pub boxes: Vec<PredictedBox>,
}

/// A distinct, saturated colour per class.
pub fn class_color(class: usize) -> Rgb<u8> {
    const COLORS: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ];
    Rgb(COLORS[class % COLORS.len()])
}

/// The detections of one image file, in the file's pixels.
pub fn detect_file(m: &LoadedDetector, path: &Path, device: &Device) -> Result<(DynamicImage, Vec<Detection>)> {
    let img = read_image(path)?;
    let [h, w] = m.cfg.image_size;
    let (_, _, chw) = to_chw(&img, m.cfg.channels, Some((h, w))).with_context(|| path.display().to_string())?;
    let xs: Vec<f32> = chw.iter().map(|&v| v as f32 / 255.0).collect();
    let xs = Tensor::from_vec(xs, (1, m.cfg.channels, h, w), device)?;
    let out = m.model.forward(&xs, false)?;
    let dets = decode(&out, &m.cfg, h, w)?.remove(0);
    Ok((img.clone(), rescale(&dets, (h, w), (img.height() as usize, img.width() as usize))))
}

/// The image, enlarged to at least 384 px wide for legibility, with each box and "class score".
pub fn draw_detections(img: &DynamicImage, dets: &[Detection], classes: &[String]) -> RgbImage {
    let scale = (384 / img.width().max(1)).max(1);
    let rgb = img.to_rgb8();
    let mut out =
        image::imageops::resize(&rgb, img.width() * scale, img.height() * scale, image::imageops::FilterType::Nearest);
    let s = scale as f32;
    // Lowest scores first so the best boxes end on top.
    for d in dets.iter().rev() {
        let color = class_color(d.class);
        let [x1, y1, x2, y2] = d.xyxy.map(|v| v * s);
        let (x, y) = (x1.round() as i32, y1.round() as i32);
        let (bw, bh) = (((x2 - x1).round() as u32).max(1), ((y2 - y1).round() as u32).max(1));
        for t in 0..2 {
            let r = Rect::at(x - t, y - t).of_size(bw + 2 * t as u32, bh + 2 * t as u32);
            draw_hollow_rect_mut(&mut out, r, color);
        }
        let name = classes.get(d.class).cloned().unwrap_or_else(|| d.class.to_string());
        label(&mut out, x, (y - 20).max(0), 15.0, &format!("{name} {:.2}", d.score), Rgb([0, 0, 0]), color);
    }
    out
}

pub fn run(cli: &DetectPredictArgs) -> Result<Vec<Prediction>> {
    ensure!((0.0..=1.0).contains(&cli.conf), "--conf {}: expected a score in [0, 1]", cli.conf);
    let args = &cli.common;
    let device = Device::Cpu;
    let m = load_detector(&args.weights, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut preds = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        let (img, mut dets) = detect_file(&m, path, &device)?;
        dets.retain(|d| d.score >= cli.conf);
        let stem = format!("{i:03}_{}", path.file_stem().and_then(|s| s.to_str()).unwrap_or("image"));
        let image_path = args.out.join(format!("{stem}_boxes.png"));
        draw_detections(&img, &dets, &m.classes)
            .save(&image_path)
            .with_context(|| format!("{}: cannot write", image_path.display()))?;
        let boxes: Vec<PredictedBox> = dets
            .iter()
            .map(|d| PredictedBox {
                xyxy: d.xyxy,
                class: m.classes.get(d.class).cloned().unwrap_or_else(|| d.class.to_string()),
                score: d.score,
            })
            .collect();
        let listed: Vec<String> = boxes.iter().map(|b| format!("{} {:.2}", b.class, b.score)).collect();
        println!("{}: {}", path.display(), if listed.is_empty() { "nothing found".into() } else { listed.join(", ") });
        preds.push(Prediction { file: path.display().to_string(), image: image_path.display().to_string(), boxes });
    }
    let json = args.json.clone().unwrap_or_else(|| args.out.join("predictions.json"));
    write_atomic(&json, serde_json::to_string_pretty(&preds)?.as_bytes())?;
    Ok(preds)
}
