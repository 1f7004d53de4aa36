//! hitomi-classify: image classification on the shared backbone: global-average-pool + linear head,
//! cross-entropy, top-1/top-5/per-class accuracy and confusion matrix; `train`, `eval`, `predict`,
//! and adversarial examples (`attack`, adversarial training).

pub mod attack;
pub mod cli;
pub mod config;
pub mod eval;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod task;
pub mod train;

pub use config::ClassifyConfig;
pub use metrics::ClassificationReport;
pub use model::Classifier;
