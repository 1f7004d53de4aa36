//! The restoration config (TOML): what distortion to undo, the network's width and depth, the
//! patches it trains on, the loss, tiling for inference, and the training settings.

use std::path::Path;

use anyhow::Result;
use hitomi_data::distort::DistortionSpec;
use hitomi_train::{OptimizerConfig, TrainConfig};
use serde::{Deserialize, Serialize};

/// The per-pixel loss between the restored and the clean image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RestoreLoss {
    L1,
    /// sqrt((x - y)^2 + eps^2): L1 away from zero, smooth at zero (eps on the 0..1 scale).
    Charbonnier {
        eps: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreConfig {
    /// Distortion synthesised from clean images (ignored for paired `lq/` + `gt/` data).
    pub distortion: DistortionSpec,
    /// Channels the network sees: 3; grey images are replicated into all three and averaged back.
    pub channels: usize,
    /// Channels of the finest level; each coarser level doubles them.
    pub width: usize,
    /// Resolution levels (1 = no down-sampling); each extra level halves the size.
    pub levels: usize,
    /// Residual blocks per level (encoder side; the decoder has one per level).
    pub blocks: usize,
    /// Side of the square training patches.
    pub patch: usize,
    /// Recolour clean training windows before distorting them: grey photos get a smooth random
    /// chroma field, colour photos a random channel order. Without it the grey crops (replicated
    /// into three identical channels, noised independently) teach the net to average channels, which
    /// blurs the colour of colour photos. Off when absent, so older configs train as before.
    pub colour_augment: bool,
    /// Training patches per epoch, cut at random from the clean images.
    pub patches_per_epoch: usize,
    pub loss: RestoreLoss,
    /// Inference tile side and the overlap between neighbouring tiles (bounded memory at any size).
    pub tile: usize,
    pub tile_overlap: usize,
    /// File name (in the data folder) held out to validate each epoch; default the last by name.
    pub holdout: Option<String>,
    pub train: TrainConfig,
}

impl Default for RestoreConfig {
    /// Denoising at sigma 25 on 64x64 patches, three levels of 32/64/128 channels, Charbonnier, AdamW.
    fn default() -> Self {
        Self {
            distortion: "noise:25".parse().expect("valid spec"),
            channels: 3,
            width: 32,
            levels: 3,
            blocks: 1,
            patch: 64,
            colour_augment: false,
            patches_per_epoch: 1024,
            loss: RestoreLoss::Charbonnier { eps: 1e-3 },
            tile: 192,
            tile_overlap: 16,
            holdout: None,
            train: TrainConfig {
                epochs: 20,
                batch: 16,
                lr: 1e-3,
                weight_decay: 0.0,
                optimizer: OptimizerConfig::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
                ..TrainConfig::default()
            },
        }
    }
}

impl RestoreConfig {
    /// Reads a TOML config; unknown keys are errors listing the valid ones.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        hitomi_train::setup::read_toml(path)
    }

    /// The multiple every input side is padded to so each level halves exactly.
    pub fn size_multiple(&self) -> usize {
        1 << (self.levels - 1)
    }

    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            self.channels == 3,
            "config: channels = {}; the restorer works on 3 (grey is replicated)",
            self.channels
        );
        anyhow::ensure!((1..=5).contains(&self.levels), "config: levels = {}; expected 1..=5", self.levels);
        anyhow::ensure!(self.width >= 4, "config: width = {}; expected at least 4", self.width);
        anyhow::ensure!(self.blocks >= 1, "config: blocks must be at least 1");
        let m = self.size_multiple();
        anyhow::ensure!(
            self.patch >= 16 && self.patch.is_multiple_of(m),
            "config: patch = {}; expected at least 16 and a multiple of {m} (2^(levels-1))",
            self.patch
        );
        anyhow::ensure!(self.patches_per_epoch >= 1, "config: patches_per_epoch must be at least 1");
        anyhow::ensure!(
            self.tile.is_multiple_of(m) && self.tile >= 2 * self.tile_overlap + m && self.tile >= 32,
            "config: tile = {}, tile_overlap = {}; expected a tile of at least 32, a multiple of {m}, and more than \
             twice the overlap",
            self.tile,
            self.tile_overlap
        );
        if let RestoreLoss::Charbonnier { eps } = self.loss {
            anyhow::ensure!(eps > 0.0 && eps.is_finite(), "config: loss.eps must be > 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_parses_spec_and_loss_and_rejects_unknown_keys() {
        let c: RestoreConfig =
            toml::from_str("distortion = \"blur:2+noise:5\"\nloss = { kind = \"l1\" }\nwidth = 16").unwrap();
        assert_eq!(c.distortion.to_string(), "blur:2+noise:5");
        assert_eq!((c.loss, c.width), (RestoreLoss::L1, 16));
        c.validate().unwrap();
        let e = toml::from_str::<RestoreConfig>("widht = 3").unwrap_err().to_string();
        assert!(e.contains("widht") && e.contains("width"), "{e}");
        let e = toml::from_str::<RestoreConfig>("distortion = \"noise:x\"").unwrap_err().to_string();
        assert!(e.contains("noise:x"), "{e}");
        assert!(!c.colour_augment, "absent means off, as before the option existed");
        let c: RestoreConfig = toml::from_str("colour_augment = true").unwrap();
        assert!(c.colour_augment);
        let bad = RestoreConfig { patch: 50, ..RestoreConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("multiple of 4"));
    }
}
