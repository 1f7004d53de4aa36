//! `hitomi-segment train`: builds the data, the model and the task, then runs the trainer.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use hitomi_core::ParamStore;
use hitomi_data::segmentation::SegmentationData;
use hitomi_train::cli::TrainArgs;
use hitomi_train::setup::{apply_overrides, holdout_split, load_backbone_weights, resumed_config, write_config};
use hitomi_train::trainer::{fit, FitOptions, FitSummary};

use crate::config::{SegmentConfig, Upsample};
use crate::model::Segmenter;
use crate::task::SegmentTask;

/// The effective config: the file (or the default), then command-line overrides.
pub fn effective_config(args: &TrainArgs, upsample: Option<Upsample>, dice: Option<f64>) -> Result<SegmentConfig> {
    let mut cfg = match &args.config {
        Some(p) => SegmentConfig::from_toml_file(p)?,
        None => SegmentConfig::default(),
    };
    apply_overrides(&mut cfg.train, args);
    if let Some(u) = upsample {
        cfg.upsample = u;
    }
    if let Some(d) = dice {
        cfg.dice_weight = d;
    }
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(args: &TrainArgs, upsample: Option<Upsample>, dice: Option<f64>, quiet: bool) -> Result<FitSummary> {
    let device = Device::Cpu;
    let cfg: SegmentConfig =
        if args.resume { resumed_config(&args.out, "segmentation")? } else { effective_config(args, upsample, dice)? };
    let size = Some((cfg.image_size[0], cfg.image_size[1]));
    let data = SegmentationData::open(&args.data, "train", cfg.channels, size)?;
    let classes = data.classes.clone();
    let (train_idx, val_idx) = holdout_split(data.len(), cfg.val_fraction, cfg.train.seed);
    let val = (!val_idx.is_empty()).then(|| Arc::new(data.subset(&val_idx)));
    let train = if val.is_some() { data.subset(&train_idx) } else { data };
    eprintln!(
        "data: {} ({} classes): {} training, {} validation images",
        args.data.display(),
        classes.len(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len())
    );
    let store = ParamStore::new(cfg.train.seed, &device);
    let model = Segmenter::new(&store, &cfg, classes.len())?;
    eprintln!(
        "model: {:?} encoder, {:?} decoder, {} trainable parameters",
        cfg.arch,
        cfg.upsample,
        store.num_trainable()
    );
    if let Some(p) = &args.backbone_weights {
        load_backbone_weights(&store, p)?;
    }
    write_config(&args.out, &cfg)?;
    let mut task = SegmentTask { store, model, cfg: cfg.clone(), classes, train: Arc::new(train), val, device };
    let fit_opts = FitOptions { resume: args.resume, max_steps: args.max_steps, quiet };
    fit(&mut task, &cfg.train, &args.out, &fit_opts)
}
