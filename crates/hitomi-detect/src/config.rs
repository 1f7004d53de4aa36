//! The detection config (TOML): backbone, neck, FCOS target assignment, decoding and training.

use std::path::Path;

use anyhow::{ensure, Result};
use hitomi_backbone::Arch;
use hitomi_data::Normalize;
use hitomi_train::{OptimizerConfig, TrainConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub arch: Arch,
    /// 1 (grey) or 3 (RGB); images are converted on load.
    pub channels: usize,
    /// Height and width the model sees; boxes are scaled with the image and back for scoring.
    pub image_size: [usize; 2],
    pub normalize: Normalize,
    /// How many of the backbone's coarsest levels feed the feature pyramid.
    pub fpn_backbone_levels: usize,
    /// Extra coarser pyramid levels made by stride-2 convolutions on the coarsest one (FCOS's P6, P7).
    pub fpn_extra_levels: usize,
    /// Channels of every pyramid level and of the head.
    pub neck_channels: usize,
    /// 3x3 conv + BN + ReLU layers in each head tower (classification and box), shared by all levels.
    pub head_convs: usize,
    /// FCOS scale assignment: a level of stride s takes objects whose largest distance from a
    /// location to a box side lies in (range_factor * s_prev, range_factor * s]; the first level
    /// starts at 0 and the last is unbounded.
    pub range_factor: f32,
    /// Center sampling: a location is positive only within this many strides of its box's centre.
    pub center_radius: f32,
    /// Focal loss alpha and gamma (Lin et al.: 0.25, 2).
    pub focal_alpha: f32,
    pub focal_gamma: f32,
    /// Decoding: detections below this score are dropped before NMS.
    pub score_threshold: f32,
    /// Decoding: best candidates kept per level before NMS.
    pub pre_nms_top_k: usize,
    /// Decoding: class-wise NMS IoU threshold.
    pub nms_iou: f64,
    /// Decoding: detections kept per image after NMS.
    pub max_detections: usize,
    /// Fraction of the training split held out (seeded) to validate each epoch and pick `best`.
    pub val_fraction: f64,
    pub train: TrainConfig,
}

impl Default for DetectConfig {
    /// The digit-canvas default: the small ResNet on 96x96 grey canvases, pyramid at strides 4, 8, 16.
    fn default() -> Self {
        Self {
            arch: Arch::Small,
            channels: 1,
            image_size: [96, 96],
            normalize: Normalize::mnist(),
            fpn_backbone_levels: 2,
            fpn_extra_levels: 1,
            neck_channels: 64,
            head_convs: 2,
            range_factor: 8.0,
            center_radius: 1.5,
            focal_alpha: 0.25,
            focal_gamma: 2.0,
            score_threshold: 0.05,
            pre_nms_top_k: 1000,
            nms_iou: 0.6,
            max_detections: 100,
            val_fraction: 0.05,
            train: TrainConfig {
                epochs: 12,
                batch: 16,
                lr: 2e-3,
                weight_decay: 1e-4,
                optimizer: OptimizerConfig::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
                clip_grad_norm: Some(10.0),
                ..TrainConfig::default()
            },
        }
    }
}

impl DetectConfig {
    /// Reads a TOML config; unknown keys are errors listing the valid ones.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        hitomi_train::setup::read_toml(path)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(matches!(self.channels, 1 | 3), "config: channels = {}; expected 1 or 3", self.channels);
        self.normalize.validate(self.channels)?;
        ensure!(self.image_size[0] >= 16 && self.image_size[1] >= 16, "config: image_size must be at least 16x16");
        ensure!(self.fpn_backbone_levels >= 1, "config: fpn_backbone_levels must be >= 1");
        ensure!(self.neck_channels >= 1, "config: neck_channels must be >= 1");
        ensure!(self.range_factor > 0.0, "config: range_factor must be > 0");
        ensure!(self.center_radius > 0.0, "config: center_radius must be > 0");
        ensure!(self.focal_gamma >= 0.0, "config: focal_gamma must be >= 0");
        ensure!((0.0..1.0).contains(&self.score_threshold), "config: score_threshold must be in [0, 1)");
        ensure!((0.0..=1.0).contains(&self.nms_iou), "config: nms_iou must be in [0, 1]");
        ensure!(self.pre_nms_top_k >= 1 && self.max_detections >= 1, "config: top-k and max_detections must be >= 1");
        ensure!((0.0..0.9).contains(&self.val_fraction), "config: val_fraction must be in [0, 0.9)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_list_valid_ones() {
        let e = toml::from_str::<DetectConfig>("nms_iuo = 0.5").unwrap_err().to_string();
        assert!(e.contains("nms_iuo") && e.contains("nms_iou"), "{e}");
        let c: DetectConfig = toml::from_str("nms_iou = 0.5\nhead_convs = 1").unwrap();
        assert_eq!((c.nms_iou, c.head_convs), (0.5, 1));
        c.validate().unwrap();
    }
}
