//! The classification config (TOML): model, input, augmentation and training settings.

use std::path::Path;

use anyhow::Result;
use hitomi_backbone::Arch;
use hitomi_data::augment::AugmentConfig;
pub use hitomi_data::Normalize;
use hitomi_train::TrainConfig;
use serde::{Deserialize, Serialize};

/// How `predict` prepares an arbitrary photo or scan before the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictInput {
    /// Only resize and convert channels.
    AsIs,
    /// Also stretch the intensities to [0, 1] and, when the border is brighter than the middle
    /// (dark ink on light paper), invert, so that a photo of a digit looks like an MNIST digit.
    Autocontrast,
}

/// Adversarial training (Goodfellow et al. 2015): the loss mixes clean and FGSM examples made on
/// the fly, alpha * CE(clean) + (1 - alpha) * CE(fgsm(x, eps)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adversarial {
    pub eps: f64,
    pub alpha: f64,
}

impl std::str::FromStr for Adversarial {
    type Err = anyhow::Error;

    /// `fgsm:EPS[:ALPHA]`, ALPHA 0.5 by default.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            anyhow::anyhow!(
                "--adversarial `{s}`: expected fgsm:EPS[:ALPHA] with EPS in (0, 1] and ALPHA in [0, 1], e.g. fgsm:0.25"
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 || parts[0] != "fgsm" {
            return Err(bad());
        }
        let eps: f64 = parts[1].parse().map_err(|_| bad())?;
        let alpha: f64 = match parts.get(2) {
            Some(a) => a.parse().map_err(|_| bad())?,
            None => 0.5,
        };
        if !(eps > 0.0 && eps <= 1.0 && (0.0..=1.0).contains(&alpha)) {
            return Err(bad());
        }
        Ok(Self { eps, alpha })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifyConfig {
    pub arch: Arch,
    /// 1 (grey) or 3 (RGB); images are converted on load.
    pub channels: usize,
    /// Input height and width; images are resized to it.
    pub image_size: [usize; 2],
    pub normalize: Normalize,
    pub label_smoothing: f32,
    /// Fraction of the training split held out (seeded) to validate each epoch and pick `best`;
    /// the test split stays untouched for the final figure.
    pub val_fraction: f64,
    pub augment: AugmentConfig,
    pub train: TrainConfig,
    pub predict_input: PredictInput,
    /// Mix FGSM examples into training.
    pub adversarial: Option<Adversarial>,
}

impl Default for ClassifyConfig {
    /// The MNIST default: the small ResNet on 28x28 grey digits, SGD + Nesterov, cosine, 15 epochs.
    fn default() -> Self {
        Self {
            arch: Arch::Small,
            channels: 1,
            image_size: [28, 28],
            normalize: Normalize::mnist(),
            label_smoothing: 0.1,
            val_fraction: 0.05,
            augment: AugmentConfig::default(),
            train: TrainConfig { epochs: 15, batch: 64, lr: 0.1, ..TrainConfig::default() },
            predict_input: PredictInput::Autocontrast,
            adversarial: None,
        }
    }
}

impl ClassifyConfig {
    /// Reads a TOML config; unknown keys are errors listing the valid ones.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        hitomi_train::setup::read_toml(path)
    }

    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(matches!(self.channels, 1 | 3), "config: channels = {}; expected 1 or 3", self.channels);
        self.normalize.validate(self.channels)?;
        anyhow::ensure!(self.image_size[0] >= 8 && self.image_size[1] >= 8, "config: image_size must be at least 8x8");
        anyhow::ensure!((0.0..0.9).contains(&self.val_fraction), "config: val_fraction must be in [0, 0.9)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_that_list_valid_ones() {
        let e = toml::from_str::<ClassifyConfig>("archh = \"small\"").unwrap_err().to_string();
        assert!(e.contains("archh") && e.contains("arch"), "{e}");
        let e = toml::from_str::<ClassifyConfig>("[train]\nepohcs = 3").unwrap_err().to_string();
        assert!(e.contains("epohcs") && e.contains("epochs"), "{e}");
        let c: ClassifyConfig = toml::from_str("arch = \"resnet18\"\n[train]\nepochs = 3").unwrap();
        assert_eq!(c.train.epochs, 3);
        assert_eq!(c.arch, Arch::Resnet18);
    }

    #[test]
    fn adversarial_spec_parses_or_says_what_is_expected() {
        let a: Adversarial = "fgsm:0.25".parse().unwrap();
        assert_eq!(a, Adversarial { eps: 0.25, alpha: 0.5 });
        let a: Adversarial = "fgsm:0.3:0.7".parse().unwrap();
        assert_eq!(a, Adversarial { eps: 0.3, alpha: 0.7 });
        for bad in ["pgd:0.3", "fgsm", "fgsm:x", "fgsm:0.3:2", "fgsm:0"] {
            let e = bad.parse::<Adversarial>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("fgsm:EPS[:ALPHA]"), "{e}");
        }
    }
}
