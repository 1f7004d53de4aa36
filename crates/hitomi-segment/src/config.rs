//! The segmentation config (TOML): encoder, decoder up-step, loss and training settings.

use std::path::Path;

use anyhow::Result;
use hitomi_backbone::Arch;
use hitomi_data::Normalize;
use hitomi_train::{OptimizerConfig, TrainConfig};
use serde::{Deserialize, Serialize};

/// How the decoder enlarges a feature map by 2 at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    /// A learned 4x4 stride-2 transposed convolution (C -> C channels) initialised to bilinear
    /// interpolation (FCN), so it starts where `Bilinear` is and learns from there.
    Transposed,
    /// Bilinear interpolation (no parameters), the convolution after it does the learning.
    Bilinear,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    pub arch: Arch,
    /// 1 (grey) or 3 (RGB); images are converted on load.
    pub channels: usize,
    /// Height and width the model sees; images are resized (masks nearest) and predictions are
    /// resized back to each image's own size before scoring.
    pub image_size: [usize; 2],
    pub normalize: Normalize,
    pub upsample: Upsample,
    /// Weight of the soft Dice term added to the per-pixel cross-entropy (0 = none).
    pub dice_weight: f64,
    /// Fraction of the training split held out (seeded) to validate each epoch and pick `best`.
    pub val_fraction: f64,
    pub train: TrainConfig,
}

impl Default for SegmentConfig {
    /// The digit-canvas default: the small ResNet encoder on 96x96 grey canvases, AdamW, cosine.
    fn default() -> Self {
        Self {
            arch: Arch::Small,
            channels: 1,
            image_size: [96, 96],
            normalize: Normalize::mnist(),
            upsample: Upsample::Transposed,
            dice_weight: 0.0,
            val_fraction: 0.05,
            train: TrainConfig {
                epochs: 12,
                batch: 16,
                lr: 2e-3,
                weight_decay: 1e-4,
                optimizer: OptimizerConfig::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
                ..TrainConfig::default()
            },
        }
    }
}

impl SegmentConfig {
    /// Reads a TOML config; unknown keys are errors listing the valid ones.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        hitomi_train::setup::read_toml(path)
    }

    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(matches!(self.channels, 1 | 3), "config: channels = {}; expected 1 or 3", self.channels);
        self.normalize.validate(self.channels)?;
        anyhow::ensure!(
            self.image_size[0] >= 16 && self.image_size[1] >= 16,
            "config: image_size must be at least 16x16"
        );
        anyhow::ensure!(self.dice_weight >= 0.0, "config: dice_weight must be >= 0");
        anyhow::ensure!((0.0..0.9).contains(&self.val_fraction), "config: val_fraction must be in [0, 0.9)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_list_valid_ones_and_upsample_parses() {
        let e = toml::from_str::<SegmentConfig>("upsampel = \"bilinear\"").unwrap_err().to_string();
        assert!(e.contains("upsampel") && e.contains("upsample"), "{e}");
        let c: SegmentConfig = toml::from_str("upsample = \"bilinear\"\ndice_weight = 0.5").unwrap();
        assert_eq!((c.upsample, c.dice_weight), (Upsample::Bilinear, 0.5));
        let e = toml::from_str::<SegmentConfig>("upsample = \"nearest\"").unwrap_err().to_string();
        assert!(e.contains("transposed") && e.contains("bilinear"), "{e}");
    }
}
