//! The `hitomi-detect` command line (also mounted as `hitomi detect`). For now: `cocoeval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::coco::{evaluate, read_detections, CocoGt, STAT_NAMES};

#[derive(Subcommand, Debug)]
pub enum DetectCommand {
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

/// The 12 stats in pycocotools' layout, e.g.
/// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.981`.
pub fn format_stats(stats: &[f64; 12]) -> String {
    let mut s = String::new();
    for (i, v) in stats.iter().enumerate() {
        let (kind, short) = if i < 6 { ("Average Precision", "(AP)") } else { ("Average Recall", "(AR)") };
        let iou = match i {
            1 => "0.50     ",
            2 => "0.75     ",
            _ => "0.50:0.95",
        };
        let area = match i {
            3 | 9 => "small",
            4 | 10 => "medium",
            5 | 11 => "large",
            _ => "all",
        };
        let dets = match i {
            6 => 1,
            7 => 10,
            _ => 100,
        };
        s += &format!(" {kind:<18} {short} @[ IoU={iou} | area={area:>6} | maxDets={dets:>3} ] = {v:.3}\n");
    }
    debug_assert_eq!(STAT_NAMES.len(), 12);
    s
}

pub fn run(cmd: &DetectCommand) -> Result<()> {
    match cmd {
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
