//! `hitomi-classify train`: builds the data, the model and the task, then runs the trainer.

use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::Device;
use hitomi_core::checkpoint::{read_weights, write_atomic};
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::classification::{ClassificationData, OpenOptions};
use hitomi_train::cli::TrainArgs;
use hitomi_train::run_dir::model_tensors;
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
    if let Some(v) = args.epochs {
        cfg.train.epochs = v;
    }
    if let Some(v) = args.batch {
        cfg.train.batch = v;
    }
    if let Some(v) = args.lr {
        cfg.train.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.train.seed = v;
    }
    if adversarial.is_some() {
        cfg.adversarial = adversarial;
    }
    if args.save_every.is_some() {
        cfg.train.save_every_steps = args.save_every;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Splits off a seeded validation subset of `val_fraction` of the training data.
fn split_train_val(data: ClassificationData, cfg: &ClassifyConfig) -> (ClassificationData, Option<ClassificationData>) {
    let n = data.len();
    let n_val = (n as f64 * cfg.val_fraction).round() as usize;
    if n_val == 0 {
        return (data, None);
    }
    // A key no loader epoch uses.
    let mut rng = SeededRng::derive(cfg.train.seed, &[u64::MAX, 0x7A1]);
    let perm = hitomi_core::rng::permutation(n, &mut rng);
    let (val, train) = perm.split_at(n_val);
    let (mut val, mut train) = (val.to_vec(), train.to_vec());
    val.sort_unstable();
    train.sort_unstable();
    (data.subset(&train), Some(data.subset(&val)))
}

pub fn run(args: &TrainArgs, adversarial: Option<Adversarial>, quiet: bool) -> Result<FitSummary> {
    let device = Device::Cpu;
    let cfg = if args.resume {
        // The run's own config wins, so a resumed run is the same run.
        let p = args.out.join("config.json");
        let s = std::fs::read_to_string(&p).with_context(|| format!("--resume: cannot read {}", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("{}: not a classification config", p.display()))?
    } else {
        effective_config(args, adversarial)?
    };
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
        let w = read_weights(p)?;
        let report = store.transfer(&model_tensors(&w), "backbone", &p.display().to_string())?;
        eprintln!(
            "backbone weights {}: transferred {} tensors, skipped {}",
            p.display(),
            report.transferred,
            report.skipped.len()
        );
        for (name, why) in &report.skipped {
            eprintln!("  skipped {name}: {why}");
        }
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    write_atomic(&args.out.join("config.json"), serde_json::to_string_pretty(&cfg)?.as_bytes())?;

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
