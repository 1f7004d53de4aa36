//! COCO bbox evaluation: the file formats (`format`), pycocotools' `COCOeval` algorithm (`eval`) and
//! builders from pixel boxes to COCO ground truth and results, with their writer (`export`).
//!
//! ```no_run
//! use hitomi_detect::coco::{evaluate, read_detections, CocoGt};
//! # fn main() -> anyhow::Result<()> {
//! let gt = CocoGt::from_path("instances_val.json".as_ref())?;
//! let dt = read_detections("results.json".as_ref())?;
//! let stats = evaluate(&gt, &dt)?;
//! println!("AP {:.3}  AP50 {:.3}", stats.stats[0], stats.stats[1]);
//! # Ok(())
//! # }
//! ```

mod eval;
mod export;
mod format;

pub use eval::{box_iou, evaluate, CocoStats, STAT_NAMES};
pub use export::{dets_from_boxes, gt_from_boxes, write_coco_dir, PixelDet, PixelGtImage};
pub use format::{read_detections, CocoAnnotation, CocoCategory, CocoDet, CocoGt, CocoImage};
