//! Training hyper-parameters: typed, with defaults, unknown keys rejected (serde lists the valid ones).

use serde::{Deserialize, Serialize};

/// The optimizer and its own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with momentum (PyTorch semantics: buf = m*buf + g; nesterov uses g + m*buf).
    Sgd { momentum: f64, nesterov: bool },
    /// AdamW with decoupled weight decay.
    Adamw { beta1: f64, beta2: f64, eps: f64 },
}

/// How the learning rate moves over training (per step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Linear warmup from 0, then cosine from `lr` to `lr * final_frac`.
    Cosine {
        warmup_epochs: f64,
        final_frac: f64,
    },
    /// Linear warmup, then multiply by `gamma` every `every_epochs`.
    Step {
        warmup_epochs: f64,
        every_epochs: usize,
        gamma: f64,
    },
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// Applied to conv/linear weights only, never to norms and biases.
    pub weight_decay: f64,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay; evaluate and ship it.
    pub ema_decay: Option<f64>,
    pub seed: u64,
    /// Also write `last.safetensors` every N steps (besides every epoch end).
    pub save_every_steps: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch: 64,
            lr: 0.1,
            weight_decay: 5e-4,
            optimizer: OptimizerConfig::Sgd { momentum: 0.9, nesterov: true },
            schedule: ScheduleConfig::Cosine { warmup_epochs: 1.0, final_frac: 0.01 },
            clip_grad_norm: Some(10.0),
            ema_decay: None,
            seed: 0,
            save_every_steps: None,
        }
    }
}
