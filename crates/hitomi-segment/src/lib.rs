//! hitomi-segment: semantic segmentation (per-pixel classification) with an encoder-decoder on the
//! shared backbone, per-pixel cross-entropy (+ Dice), mIoU from a dataset-wide confusion matrix.

pub mod cli;
pub mod config;
pub mod eval;
pub mod metrics;
pub mod model;
pub mod palette;
pub mod predict;
pub mod task;
pub mod train;
