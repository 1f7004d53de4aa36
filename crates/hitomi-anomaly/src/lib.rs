//! hitomi-anomaly: anomaly detection from the features of a frozen pretrained CNN (PANDA's kNN on
//! pooled image features, PatchCore's coreset memory of patch features for anomaly maps), fitted on
//! normal images only; AUROC as scikit-learn computes it.

pub mod auroc;
pub mod backbone_source;
pub mod bench_mnist;
pub mod cli;
pub mod config;
pub mod coreset;
pub mod eval;
pub mod features;
pub mod heatmap;
pub mod images;
pub mod knn;
pub mod model;
pub mod predict;
pub mod train;
pub mod whiten;
