//! The contract between a task (classification, detection, ...) and the generic trainer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;
use hitomi_core::{ParamStore, SeededRng};

/// Validation metrics by name (fractions, not percents).
pub type Metrics = BTreeMap<String, f64>;

/// A builder of one training batch from sample indices and the epoch (for augmentation seeds).
pub type BatchFn<B> = Arc<dyn Fn(&[usize], usize) -> Result<B> + Send + Sync>;

/// The loss of one training step.
pub struct StepLoss {
    /// Scalar to minimise.
    pub total: Tensor,
    /// Named parts for logging (e.g. "cls", "box").
    pub parts: Vec<(String, f64)>,
    /// Images in the batch (for images/s).
    pub images: usize,
}

/// The metadata every task writes into its weight files: task, architecture, classes, config.
pub fn task_metadata(
    task: &str,
    arch: &impl serde::Serialize,
    classes: &[String],
    config: &impl serde::Serialize,
) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("hitomi.task".into(), task.into());
    m.insert("hitomi.arch".into(), serde_json::to_string(arch).unwrap_or_default().trim_matches('"').into());
    m.insert("hitomi.classes".into(), serde_json::to_string(classes).unwrap_or_default());
    m.insert("hitomi.config".into(), serde_json::to_string(config).unwrap_or_default());
    m
}

pub trait Task {
    type Batch: Send + 'static;

    /// All tensors of the model (trainable and buffers).
    fn store(&self) -> &ParamStore;
    /// Number of training samples.
    fn train_len(&self) -> usize;
    /// Builds a training batch; runs on the loader thread.
    fn batch_fn(&self) -> BatchFn<Self::Batch>;
    /// Forward in training mode and the loss. `rng` is the trainer's saved stream for per-step draws.
    fn loss(&mut self, batch: &Self::Batch, rng: &mut SeededRng) -> Result<StepLoss>;
    /// Validation metrics, computed in eval mode.
    fn validate(&mut self) -> Result<Metrics>;
    /// The metric that picks `best.safetensors`, and whether higher is better.
    fn primary_metric(&self) -> (&'static str, bool);
    /// Metadata stored in every weights file (task, architecture, classes, config).
    fn metadata(&self) -> HashMap<String, String>;
}
