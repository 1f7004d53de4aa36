//! The `hitomi-detect` command line (also mounted as `hitomi detect`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use hitomi_train::cli::TrainArgs;
use serde_json::json;

use crate::coco::{evaluate, read_detections, CocoGt};
use crate::eval::DetectEvalArgs;
use crate::predict::DetectPredictArgs;
use crate::stats_table::format_stats;

#[derive(Subcommand, Debug)]
pub enum DetectCommand {
    /// Train a detector (Ultralytics YOLO layout: data.yaml + images/<split>/ + labels/<split>/).
    Train(TrainArgs),
    /// Evaluate weights on a split: COCO mAP (pycocotools' 12 stats), JSON, PR curves, COCO files.
    Eval(DetectEvalArgs),
    /// Boxes with class and score drawn on images, and JSON.
    Predict(DetectPredictArgs),
    /// COCO bbox evaluation of a results file, exactly as pycocotools' COCOeval.
    Cocoeval(CocoevalArgs),
}

#[derive(Args, Debug)]
pub struct CocoevalArgs {
    /// Ground truth in COCO instances format.
    #[arg(long)]
    pub gt: PathBuf,
    /// Detections in COCO results format ([{image_id, category_id, bbox, score}]).
    #[arg(long)]
    pub dt: PathBuf,
    /// Write {"stats": [12 floats], "per_category_ap": {...}} here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(cmd: &DetectCommand) -> Result<()> {
    match cmd {
        DetectCommand::Train(t) => {
            let s = crate::train::run(t, false)?;
            println!(
                "trained {} steps in {:.0} s ({:.1} img/s); best val mAP@.5:.95 {}; run folder {}",
                s.steps,
                s.seconds,
                s.images_per_second,
                s.best.map(|b| format!("{b:.3}")).unwrap_or_else(|| "-".into()),
                t.out.display()
            );
        }
        DetectCommand::Eval(a) => {
            crate::eval::run(a)?;
        }
        DetectCommand::Predict(a) => {
            crate::predict::run(a)?;
        }
        DetectCommand::Cocoeval(a) => {
            let gt = CocoGt::from_path(&a.gt)?;
            let dt = read_detections(&a.dt)?;
            let r = evaluate(&gt, &dt)?;
            print!("{}", format_stats(&r.stats));
            if let Some(p) = &a.json {
                let per: serde_json::Map<String, serde_json::Value> =
                    r.per_category_ap.iter().map(|(c, ap)| (c.to_string(), json!(ap))).collect();
                let doc = json!({"stats": r.stats, "per_category_ap": per});
                hitomi_core::checkpoint::write_atomic(p, serde_json::to_string_pretty(&doc)?.as_bytes())?;
            }
        }
    }
    Ok(())
}
