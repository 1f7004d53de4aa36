//! `hitomi-detect train`: builds the data, the model and the task, then runs the trainer.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use hitomi_core::ParamStore;
use hitomi_data::detection::DetectionData;
use hitomi_train::cli::TrainArgs;
use hitomi_train::setup::{apply_overrides, holdout_split, load_backbone_weights, resumed_config, write_config};
use hitomi_train::trainer::{fit, FitOptions, FitSummary};

use crate::config::DetectConfig;
use crate::model::Detector;
use crate::task::DetectTask;

/// The effective config: the file (or the default), then command-line overrides.
pub fn effective_config(args: &TrainArgs) -> Result<DetectConfig> {
    let mut cfg = match &args.config {
        Some(p) => DetectConfig::from_toml_file(p)?,
        None => DetectConfig::default(),
    };
    apply_overrides(&mut cfg.train, args);
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(args: &TrainArgs, quiet: bool) -> Result<FitSummary> {
    let device = Device::Cpu;
    let cfg: DetectConfig = if args.resume { resumed_config(&args.out, "detection")? } else { effective_config(args)? };
    let size = Some((cfg.image_size[0], cfg.image_size[1]));
    let data = DetectionData::open(&args.data, "train", cfg.channels, size)?;
    let classes = data.classes.clone();
    let (train_idx, val_idx) = holdout_split(data.len(), cfg.val_fraction, cfg.train.seed);
    let val = (!val_idx.is_empty()).then(|| Arc::new(data.subset(&val_idx)));
    let train = if val.is_some() { data.subset(&train_idx) } else { data };
    let boxes: usize = (0..train.len()).map(|i| train.boxes(i).len()).sum();
    eprintln!(
        "data: {} ({} classes): {} training images ({boxes} boxes), {} validation images",
        args.data.display(),
        classes.len(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len())
    );
    let store = ParamStore::new(cfg.train.seed, &device);
    let model = Detector::new(&store, &cfg, classes.len())?;
    eprintln!(
        "model: {:?} backbone, pyramid strides {:?}, FCOS head, {} trainable parameters",
        cfg.arch,
        model.strides(),
        store.num_trainable()
    );
    if let Some(p) = &args.backbone_weights {
        load_backbone_weights(&store, p)?;
    }
    write_config(&args.out, &cfg)?;
    let mut task = DetectTask { store, model, cfg: cfg.clone(), classes, train: Arc::new(train), val, device };
    let fit_opts = FitOptions { resume: args.resume, max_steps: args.max_steps, quiet };
    fit(&mut task, &cfg.train, &args.out, &fit_opts)
}
