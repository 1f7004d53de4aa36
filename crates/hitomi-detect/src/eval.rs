//! `hitomi-detect eval`: loads weights, scores a split with COCO evaluation (the 12 stats as
//! pycocotools prints them), writes JSON, per-class precision-recall curves and optionally the
//! COCO `gt.json` / `dt.json` so anyone can re-score with pycocotools.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::ParamStore;
use hitomi_data::detection::DetectionData;
use hitomi_train::cli::EvalArgs;
use hitomi_train::weights::TaskWeights;
use serde_json::json;

use crate::coco::write_coco_dir;
use crate::config::DetectConfig;
use crate::model::Detector;
use crate::pr_curve::plot_pr_curves;
use crate::stats_table::format_stats;
use crate::task::{evaluate, Evaluation};

/// The shared eval flags plus detection's own.
#[derive(Args, Debug, Clone)]
pub struct DetectEvalArgs {
    #[command(flatten)]
    pub common: EvalArgs,
    /// Also write the ground truth and detections in COCO format here (gt.json, dt.json).
    #[arg(long)]
    pub coco_dir: Option<PathBuf>,
}

/// A detector rebuilt from a weights file and the config and classes stored in it.
pub struct LoadedDetector {
    pub model: Detector,
    pub cfg: DetectConfig,
    pub classes: Vec<String>,
    pub store: ParamStore,
    pub path: PathBuf,
}

/// Loads `--weights DIR_OR_FILE`; refuses files of another task and lists every tensor mismatch.
pub fn load_detector(weights: &Path, device: &Device) -> Result<LoadedDetector> {
    let w = TaskWeights::open(weights, "detect")?;
    let cfg: DetectConfig = w.config()?;
    let store = ParamStore::new(0, device);
    let model = Detector::new(&store, &cfg, w.classes.len())?;
    w.load_into(&store)?;
    Ok(LoadedDetector { model, cfg, classes: w.classes, store, path: w.path })
}

/// The JSON `eval --json` writes: the keys plus AP@.5:.95 per class name (-1 without
/// ground truth); category id k + 1 is class k (`coco::export`).
pub fn eval_json(e: &Evaluation, n_images: usize, classes: &[String]) -> serde_json::Value {
    let s = &e.stats.stats;
    let per_class: serde_json::Map<String, serde_json::Value> = e
        .stats
        .per_category_ap
        .iter()
        .map(|&(id, ap)| {
            let name = classes.get(id as usize - 1).cloned().unwrap_or_else(|| id.to_string());
            (name, json!(ap))
        })
        .collect();
    json!({"task": "detect", "n_images": n_images, "map": s[0], "map50": s[1], "map75": s[2], "stats": s.to_vec(),
           "ap_per_class": per_class})
}

pub fn run(args: &DetectEvalArgs) -> Result<Evaluation> {
    let a = &args.common;
    let device = Device::Cpu;
    let m = load_detector(&a.weights, &device)?;
    let size = Some((m.cfg.image_size[0], m.cfg.image_size[1]));
    let data = DetectionData::open(&a.data, &a.split, m.cfg.channels, size)?;
    if data.classes != m.classes {
        bail!("{}: dataset classes {:?} differ from the model's {:?}", a.data.display(), data.classes, m.classes);
    }
    let e = evaluate(&m.model, &m.cfg, &data, &m.classes, 32, &device)?;
    let boxes: usize = (0..data.len()).map(|i| data.boxes(i).len()).sum();
    println!(
        "{} ({} parameters) on {} ({} split: {} images, {boxes} boxes)\n{}inference: {:.1} images/s",
        m.path.display(),
        m.store.num_trainable(),
        a.data.display(),
        a.split,
        data.len(),
        format_stats(&e.stats.stats),
        e.images_per_second
    );
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&eval_json(&e, data.len(), &m.classes))?.as_bytes())?;
    }
    if let Some(dir) = hitomi_train::cli::plots_dir(&a.plots, &a.json)? {
        plot_pr_curves(&dir.join("pr_curve.png"), &e.stats.pr50, &m.classes)?;
    }
    if let Some(dir) = &args.coco_dir {
        write_coco_dir(dir, &e.gt, &e.dt)?;
        println!("COCO files: {} and {}", dir.join("gt.json").display(), dir.join("dt.json").display());
    }
    Ok(e)
}
