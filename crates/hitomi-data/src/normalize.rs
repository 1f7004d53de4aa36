//! Per-channel input normalisation, part of every model's config so weights carry their own.

use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// x' = (x - mean) / std per channel, x in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// MNIST's statistics (one channel).
    pub fn mnist() -> Self {
        Self { mean: vec![0.1307], std: vec![0.3081] }
    }

    /// ImageNet's statistics (RGB), what torchvision weights expect.
    pub fn imagenet() -> Self {
        Self { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    pub fn validate(&self, channels: usize) -> Result<()> {
        ensure!(
            self.mean.len() == channels && self.std.len() == channels,
            "config: normalize.mean and normalize.std need {channels} value(s), one per channel"
        );
        ensure!(self.std.iter().all(|&s| s > 0.0), "config: normalize.std values must be positive");
        Ok(())
    }

    /// (mean, std) as (1, C, 1, 1) tensors for broadcasting.
    pub fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let c = self.mean.len();
        Ok((
            Tensor::from_vec(self.mean.clone(), (1, c, 1, 1), device)?,
            Tensor::from_vec(self.std.clone(), (1, c, 1, 1), device)?,
        ))
    }
}
