//! `hitomi-anomaly train`: fits the model on `train/good` of a category folder.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use hitomi_data::mvtec::MvtecCategory;

use crate::backbone_source::{load_backbone, FrozenBackbone};
use crate::config::{AnomalyConfig, ImageScore};
use crate::images::ImageSet;
use crate::model::AnomalyModel;

/// `train --data CATEGORY --out DIR [--backbone-weights FILE] [--config FILE.toml]`
#[derive(Args, Debug, Clone)]
pub struct AnomalyTrainArgs {
    /// MVTec AD category folder (only train/good is used).
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for model.safetensors and config.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Feature backbone: any hitomi weights file or run folder, or a torchvision ResNet (safetensors);
    /// default models/anomaly/backbone.safetensors.
    #[arg(long)]
    pub backbone_weights: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Side images are resized to (overrides the config).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Image score: knn (PANDA) or max-patch (PatchCore) (overrides the config).
    #[arg(long, value_enum)]
    pub image_score: Option<ImageScore>,
}

/// The default backbone shipped with the project, found from the working directory or the
/// executable's repository.
pub fn default_backbone() -> PathBuf {
    let rel = Path::new("models/anomaly/backbone.safetensors");
    if rel.exists() {
        return rel.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

pub fn backbone_for(path: Option<&Path>) -> Result<FrozenBackbone> {
    let p = path.map(Path::to_path_buf).unwrap_or_else(default_backbone);
    load_backbone(&p, &Device::Cpu)
}

pub fn run(args: &AnomalyTrainArgs, quiet: bool) -> Result<AnomalyModel> {
    let mut cfg = match &args.config {
        Some(p) => AnomalyConfig::from_toml_file(p)?,
        None => AnomalyConfig::default(),
    };
    if let Some(s) = args.image_size {
        cfg.image_size = [s, s];
    }
    if let Some(s) = args.image_score {
        cfg.image_score = s;
    }
    let cat = MvtecCategory::open(&args.data, false)?;
    let backbone = backbone_for(args.backbone_weights.as_deref())?;
    eprintln!(
        "backbone: {:?} ({} channel(s)) from {}; {} normal images at {}x{}",
        backbone.arch,
        backbone.channels,
        backbone.source,
        cat.train.len(),
        cfg.image_size[0],
        cfg.image_size[1]
    );
    let set = ImageSet::load(&cat.train, backbone.channels, (cfg.image_size[0], cfg.image_size[1]))?;
    let model = AnomalyModel::fit(backbone, &cfg, &set, quiet)?;
    model.save(&args.out)?;
    eprintln!(
        "fitted: {} memory images, {} memory patches; threshold {:.4}, heat-map scale {:.4}; {}",
        model.meta.n_train,
        model.meta.n_memory_patches,
        model.meta.image_threshold,
        model.meta.pixel_scale,
        args.out.join("model.safetensors").display()
    );
    Ok(model)
}
