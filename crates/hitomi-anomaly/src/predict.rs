//! `hitomi-anomaly predict`: score and heat-map overlay per image, on the model's fixed colour scale.

use anyhow::{Context, Result};
use hitomi_core::checkpoint::write_atomic;
use hitomi_train::cli::PredictArgs;
use serde::Serialize;

use crate::heatmap::overlay;
use crate::images::ImageSet;
use crate::model::AnomalyModel;

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub file: String,
    pub score: f64,
    pub anomalous: bool,
    pub threshold: f64,
    pub heatmap: String,
}

pub fn run(args: &PredictArgs) -> Result<Vec<Prediction>> {
    let model = AnomalyModel::load(&args.weights)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let [h, w] = model.meta.config.image_size;
    let set = ImageSet::load(&args.images, model.meta.channels, (h, w))?;
    let idx: Vec<usize> = (0..set.len()).collect();
    let s = model.score(&set, &idx, true)?;
    let grey = ImageSet::load(&args.images, 1, (h, w))?;
    let upscale = (256 / w.max(1)).max(1) as u32;
    let mut preds = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let out = args.out.join(format!("{i:03}_{stem}_heatmap.png"));
        let g: Vec<u8> = grey
            .batch(&[i], &candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        overlay(&g, &s.maps[i], h, w, model.meta.pixel_scale as f32, upscale)
            .save(&out)
            .with_context(|| format!("{}: cannot write", out.display()))?;
        let p = Prediction {
            file: path.display().to_string(),
            score: s.image[i],
            anomalous: s.image[i] > model.meta.image_threshold,
            threshold: model.meta.image_threshold,
            heatmap: out.display().to_string(),
        };
        println!("{}: score {:.4} ({})", p.file, p.score, if p.anomalous { "anomalous" } else { "normal" });
        preds.push(p);
    }
    let json = args.json.clone().unwrap_or_else(|| args.out.join("predictions.json"));
    write_atomic(&json, serde_json::to_string_pretty(&preds)?.as_bytes())?;
    Ok(preds)
}
