//! The anomaly model's settings (TOML), stored in the fitted model file with its calibration.

use std::path::Path;

use anyhow::Result;
use hitomi_backbone::Arch;
use hitomi_data::Normalize;
use serde::{Deserialize, Serialize};

/// How an image's anomaly score is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageScore {
    /// PANDA: mean distance of the image's pooled feature to its k nearest normal image features.
    Knn,
    /// PatchCore: the largest patch distance of the anomaly map (smoothed by `image_smoothing_sigma`).
    MaxPatch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Height and width images are resized to before the backbone.
    pub image_size: [usize; 2],
    pub image_score: ImageScore,
    /// k of the image-level kNN (PANDA uses 2).
    pub k: usize,
    /// Backbone levels whose globally pooled maps form the image feature (empty = the last level,
    /// PANDA's choice); each level's vector is scaled to unit length when `unit_image_levels`.
    pub image_levels: Vec<usize>,
    pub unit_image_levels: bool,
    /// Each image level is average-pooled to a grid x grid layout (1 = global pooling, PANDA);
    /// a finer grid keeps where things are, which matters for aligned objects such as digits.
    pub image_grid: usize,
    /// Backbone levels (0 = finest) whose maps make the patch features (PatchCore: layer2, layer3).
    pub patch_levels: Vec<usize>,
    /// Side of the neighbourhood each patch feature is averaged over (locally aware features).
    pub local_window: usize,
    /// Width (pixels at image size) of the border band whose anomaly map is not measured but copied
    /// from the nearest pixel inside it: features where the image is cut off (zero padding, half a
    /// neighbourhood) are rarer in the memory than those inside, so the border of every image, normal
    /// or not, scored as anomalous (mirror padding the input did not help). PatchCore's evaluation
    /// drops a similar band: it scores a 224 centre crop of images resized to 256.
    pub border_ignore: usize,
    /// Whiten patch features by the normal ones' covariance before the memory and the search, so
    /// patch distances are Mahalanobis distances (PaDiM's metric in PatchCore's nearest neighbour).
    /// Models fitted before this setting existed load unwhitened.
    pub whiten_patches: bool,
    /// The memory bank keeps this fraction of the training patches (greedy coreset)...
    pub coreset_fraction: f64,
    /// ...and at most this many.
    pub coreset_max: usize,
    /// Dimension of the random projection the coreset selection measures distances in.
    pub projection_dim: usize,
    /// Gaussian sigma (pixels at image size) smoothing the anomaly map.
    pub smoothing_sigma: f32,
    /// Gaussian sigma of the map whose maximum is the max-patch image score (0 = the map before
    /// smoothing, PatchCore's largest patch score). Smoothing spreads a thin or small defect's peak
    /// over its neighbours, which helps the pixel map but lowers the peak the image score reads.
    pub image_smoothing_sigma: f32,
    /// Fraction of train/good held out of the memory to calibrate the threshold and heat-map scale.
    pub holdout_fraction: f64,
    pub seed: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            image_size: [96, 96],
            image_score: ImageScore::Knn,
            k: 2,
            image_levels: vec![1, 2],
            unit_image_levels: true,
            image_grid: 4,
            patch_levels: vec![1, 2],
            local_window: 3,
            border_ignore: 8,
            whiten_patches: true,
            coreset_fraction: 0.02,
            coreset_max: 2_500,
            projection_dim: 128,
            smoothing_sigma: 4.0,
            image_smoothing_sigma: 0.0,
            holdout_fraction: 0.1,
            seed: 0,
        }
    }
}

impl AnomalyConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        hitomi_train::setup::read_toml(path)
    }

    pub fn validate(&self, levels: usize) -> Result<()> {
        anyhow::ensure!(
            self.image_size[0] >= 16 && self.image_size[1] >= 16,
            "config: image_size must be at least 16x16"
        );
        anyhow::ensure!(
            2 * self.border_ignore < self.image_size[0].min(self.image_size[1]),
            "config: border_ignore {} leaves nothing of a {:?} image",
            self.border_ignore,
            self.image_size
        );
        anyhow::ensure!(self.k >= 1, "config: k must be at least 1");
        anyhow::ensure!(self.image_grid >= 1, "config: image_grid must be at least 1");
        anyhow::ensure!(
            self.image_levels.iter().all(|&l| l < levels),
            "config: image_levels {:?}; the backbone has levels 0..{}",
            self.image_levels,
            levels - 1
        );
        anyhow::ensure!(!self.patch_levels.is_empty(), "config: patch_levels must name at least one level");
        anyhow::ensure!(
            self.patch_levels.iter().all(|&l| l < levels),
            "config: patch_levels {:?}; the backbone has levels 0..{}",
            self.patch_levels,
            levels - 1
        );
        anyhow::ensure!(self.local_window % 2 == 1, "config: local_window must be odd");
        anyhow::ensure!(
            self.coreset_fraction > 0.0 && self.coreset_fraction <= 1.0,
            "config: coreset_fraction must be in (0, 1]"
        );
        anyhow::ensure!(self.coreset_max >= 1, "config: coreset_max must be at least 1");
        anyhow::ensure!((0.0..0.9).contains(&self.holdout_fraction), "config: holdout_fraction must be in [0, 0.9)");
        Ok(())
    }
}

/// What a fitted model stores beside its tensors: the settings, the backbone it ran, and the
/// calibration measured on held-out normal images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedMeta {
    pub config: AnomalyConfig,
    pub arch: Arch,
    pub channels: usize,
    pub normalize: Normalize,
    /// Where the backbone weights came from.
    pub backbone_source: String,
    /// Image scores above this are called anomalous (the largest held-out normal score).
    pub image_threshold: f64,
    /// Pixel score shown as the top of the heat-map colour scale (twice the 99.9th percentile of
    /// held-out normal pixel scores), the same for every image.
    pub pixel_scale: f64,
    pub n_train: usize,
    pub n_memory_patches: usize,
}
