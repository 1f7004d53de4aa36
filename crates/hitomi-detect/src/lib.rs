//! hitomi-detect: object detection with boxes: the shared backbone, a feature pyramid and an
//! anchor-free FCOS head; target assignment, the focal + GIoU + centerness loss, decoding with
//! class-wise NMS, and COCO mAP exactly as pycocotools' `COCOeval`.

pub mod assign;
pub mod cli;
pub mod coco;
pub mod config;
pub mod decode;
pub mod eval;
pub mod head;
pub mod loss;
pub mod model;
pub mod neck;
pub mod pr_curve;
pub mod predict;
pub mod stats_table;
pub mod task;
pub mod train;
