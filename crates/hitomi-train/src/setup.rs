//! The steps every task's `train` takes before the loop: config overrides from the command line,
//! the resumed run's own config, a seeded validation hold-out, backbone transfer, `config.json`.

use std::path::Path;

use anyhow::{Context, Result};
use hitomi_core::checkpoint::{read_weights, write_atomic};
use hitomi_core::{ParamStore, SeededRng};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::TrainArgs;
use crate::config::TrainConfig;
use crate::run_dir::{model_tensors, resolve_weights};

/// `--epochs`, `--batch`, `--lr`, `--seed`, `--save-every` override the config file.
pub fn apply_overrides(cfg: &mut TrainConfig, args: &TrainArgs) {
    if let Some(v) = args.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = args.batch {
        cfg.batch = v;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if args.save_every.is_some() {
        cfg.save_every_steps = args.save_every;
    }
}

/// Reads a TOML config file; unknown keys are errors that list the valid ones (serde's message).
pub fn read_toml<C: DeserializeOwned>(path: &Path) -> Result<C> {
    let s = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    toml::from_str(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The config a run was started with (`OUT/config.json`): a resumed run is the same run.
pub fn resumed_config<C: DeserializeOwned>(out: &Path, what: &str) -> Result<C> {
    let p = out.join("config.json");
    let s = std::fs::read_to_string(&p).with_context(|| format!("--resume: cannot read {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{}: not a {what} config", p.display()))
}

/// Creates the run folder and writes the effective config to `OUT/config.json`.
pub fn write_config<C: Serialize>(out: &Path, cfg: &C) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    write_atomic(&out.join("config.json"), serde_json::to_string_pretty(cfg)?.as_bytes())
}

/// Splits 0..n into (train, val) with a seeded `fraction` held out; both sorted.
pub fn holdout_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_val = (n as f64 * fraction).round() as usize;
    // A key no loader epoch uses.
    let mut rng = SeededRng::derive(seed, &[u64::MAX, 0x7A1]);
    let perm = hitomi_core::rng::permutation(n, &mut rng);
    let (val, train) = perm.split_at(n_val.min(n));
    let (mut val, mut train) = (val.to_vec(), train.to_vec());
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// `--backbone-weights FILE_OR_RUN`: copies the tensors of the `backbone` group that the file has
/// with matching shapes, and says what was skipped.
pub fn load_backbone_weights(store: &ParamStore, path: &Path) -> Result<()> {
    let path = &resolve_weights(path)?;
    let w = read_weights(path)?;
    let report = store.transfer(&model_tensors(&w), "backbone", &path.display().to_string())?;
    eprintln!(
        "backbone weights {}: transferred {} tensors, skipped {}",
        path.display(),
        report.transferred,
        report.skipped.len()
    );
    for (name, why) in &report.skipped {
        eprintln!("  skipped {name}: {why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_a_seeded_partition() {
        let (t, v) = holdout_split(100, 0.1, 3);
        assert_eq!((t.len(), v.len()), (90, 10));
        let mut all: Vec<usize> = t.iter().chain(&v).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(holdout_split(100, 0.1, 3), (t, v.clone()));
        assert_ne!(holdout_split(100, 0.1, 4).1, v);
        assert_eq!(holdout_split(5, 0.0, 0).1.len(), 0);
    }
}
