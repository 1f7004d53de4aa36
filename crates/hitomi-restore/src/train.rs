//! `hitomi-restore train`: the data (one image held out), the model and the task, then the trainer.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use hitomi_core::ParamStore;
use hitomi_data::distort::DistortionSpec;
use hitomi_train::cli::TrainArgs;
use hitomi_train::setup::{apply_overrides, resumed_config, write_config};
use hitomi_train::trainer::{fit, FitOptions, FitSummary};

use crate::config::RestoreConfig;
use crate::data::RestoreData;
use crate::model::Restorer;
use crate::task::RestoreTask;

/// The effective config: the file (or the default), then command-line overrides.
pub fn effective_config(args: &TrainArgs, distortion: Option<&DistortionSpec>) -> Result<RestoreConfig> {
    let mut cfg = match &args.config {
        Some(p) => RestoreConfig::from_toml_file(p)?,
        None => RestoreConfig::default(),
    };
    apply_overrides(&mut cfg.train, args);
    if let Some(d) = distortion {
        cfg.distortion = d.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Indices of (train, held out): the image named `holdout`, else the last by name; all images
/// train (and nothing is held out) when the folder has only one.
pub fn holdout_split(data: &RestoreData, holdout: Option<&str>) -> Result<(Vec<usize>, Vec<usize>)> {
    let names = data.names();
    let held = match holdout {
        Some(h) => names.iter().position(|n| n == h).ok_or_else(|| {
            anyhow::anyhow!("config: holdout = {h:?} is not in the data folder; it holds {}", names.join(", "))
        })?,
        None if names.len() == 1 => return Ok((vec![0], vec![])),
        None => names.len() - 1,
    };
    Ok(((0..names.len()).filter(|&i| i != held).collect(), vec![held]))
}

pub fn run(args: &TrainArgs, distortion: Option<&DistortionSpec>, quiet: bool) -> Result<FitSummary> {
    let cfg: RestoreConfig =
        if args.resume { resumed_config(&args.out, "restoration")? } else { effective_config(args, distortion)? };
    run_with_config(args, cfg, quiet)
}

/// Trains with `cfg` as given (command-line overrides already applied); `args` gives the data, run
/// folder, resume and step limit.
pub fn run_with_config(args: &TrainArgs, cfg: RestoreConfig, quiet: bool) -> Result<FitSummary> {
    let device = Device::Cpu;
    cfg.validate()?;
    let data = RestoreData::open(&args.data)?;
    let (train_idx, val_idx) = holdout_split(&data, cfg.holdout.as_deref())?;
    let train = data.subset(&train_idx);
    train.check_patch_size(cfg.patch)?;
    let val = (!val_idx.is_empty()).then(|| data.subset(&val_idx));
    eprintln!(
        "data: {} ({}): training on {} image(s), validating on {}; distortion {}",
        args.data.display(),
        if matches!(data, RestoreData::Paired(_)) { "lq/gt pairs" } else { "clean images, distorted on the fly" },
        train.len(),
        val.as_ref().map_or("nothing".to_string(), |v| v.names().join(", ")),
        cfg.distortion
    );
    let store = ParamStore::new(cfg.train.seed, &device);
    let model = Restorer::new(&store, &cfg)?;
    eprintln!(
        "model: restorer, {} levels from {} channels, {} trainable parameters",
        cfg.levels,
        cfg.width,
        store.num_trainable()
    );
    if let Some(p) = &args.backbone_weights {
        anyhow::bail!(
            "--backbone-weights {}: the restorer keeps full resolution from its first layer and shares the \
             backbone's residual blocks, not its weights (a classifier's stride-2 stem would discard detail)",
            p.display()
        );
    }
    write_config(&args.out, &cfg)?;
    let mut task = RestoreTask { store, model, cfg: cfg.clone(), train: Arc::new(train), val, device };
    let fit_opts = FitOptions { resume: args.resume, max_steps: args.max_steps, quiet };
    fit(&mut task, &cfg.train, &args.out, &fit_opts)
}
