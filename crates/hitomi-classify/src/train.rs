//! `hitomi-classify train`: builds the data, the model and the task, then runs the trainer.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use hitomi_core::ParamStore;
use hitomi_data::classification::{ClassificationData, OpenOptions};
use hitomi_train::cli::TrainArgs;
use hitomi_train::setup::{apply_overrides, holdout_split, load_backbone_weights, resumed_config, write_config};
use hitomi_train::trainer::{fit, FitOptions, FitSummary};

use crate::config::{Adversarial, ClassifyConfig};
use crate::model::Classifier;
use crate::task::ClassifyTask;

/// The effective config: the file (or the default), then command-line overrides.
pub fn effective_config(args: &TrainArgs, adversarial: Option<Adversarial>) -> Result<ClassifyConfig> {
    let mut cfg = match &args.config {
        Some(p) => ClassifyConfig::from_toml_file(p)?,
        None => ClassifyConfig::default(),
    };
    apply_overrides(&mut cfg.train, args);
    if adversarial.is_some() {
        cfg.adversarial = adversarial;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Splits off a seeded validation subset of `val_fraction` of the training data.
fn split_train_val(data: ClassificationData, cfg: &ClassifyConfig) -> (ClassificationData, Option<ClassificationData>) {
    let (train, val) = holdout_split(data.len(), cfg.val_fraction, cfg.train.seed);
    if val.is_empty() {
        return (data, None);
    }
    (data.subset(&train), Some(data.subset(&val)))
}

pub fn run(args: &TrainArgs, adversarial: Option<Adversarial>, quiet: bool) -> Result<FitSummary> {
    let device = Device::Cpu;
    let cfg =
        if args.resume { resumed_config(&args.out, "classification")? } else { effective_config(args, adversarial)? };
    let opts = OpenOptions { channels: cfg.channels, size: Some((cfg.image_size[0], cfg.image_size[1])) };
    let data = ClassificationData::open(&args.data, "train", &opts)?;
    let classes = data.classes.clone();
    let (train, val) = split_train_val(data, &cfg);
    eprintln!(
        "data: {} ({} classes): {} training, {} validation images",
        args.data.display(),
        classes.len(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len())
    );

    let store = ParamStore::new(cfg.train.seed, &device);
    let model = Classifier::new(&store, &cfg, classes.len())?;
    eprintln!("model: {:?}, {} trainable parameters", cfg.arch, store.num_trainable());
    if let Some(p) = &args.backbone_weights {
        load_backbone_weights(&store, p)?;
    }
    write_config(&args.out, &cfg)?;

    let mut task = ClassifyTask {
        store,
        model,
        cfg: cfg.clone(),
        classes,
        train: Arc::new(train),
        val: val.map(Arc::new),
        device,
    };
    let fit_opts = FitOptions { resume: args.resume, max_steps: args.max_steps, quiet };
    fit(&mut task, &cfg.train, &args.out, &fit_opts)
}
