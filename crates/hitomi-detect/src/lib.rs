//! hitomi-detect: object detection: evaluation of detections against COCO ground truth
//! (bbox mAP exactly as pycocotools' `COCOeval`).

pub mod cli;
pub mod coco;
