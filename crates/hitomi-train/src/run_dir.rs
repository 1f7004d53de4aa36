//! The run folder (`--out`): checkpoints with training state, `state.json`, `metrics.csv`,
//! the per-step loss log `steps.csv`, and weight lookup for `eval`/`predict`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use hitomi_core::checkpoint::{read_weights, write_atomic, write_weights, WeightsFile};
use hitomi_core::rng::RngState;
use serde::{Deserialize, Serialize};

use crate::task::Metrics;

/// Metadata key holding the training state inside `last.safetensors`.
pub const STATE_KEY: &str = "hitomi.state";

/// One row of `metrics.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub parts: BTreeMap<String, f64>,
    pub metrics: Metrics,
    pub seconds: f64,
}

/// Everything besides tensors that `--resume` needs. Saved in the metadata of `last.safetensors`
/// (one atomic file holds weights, optimizer state and this) and mirrored in `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Epoch the next step belongs to.
    pub epoch: usize,
    pub ema_updates: u64,
    pub rng: RngState,
    pub best: Option<f64>,
    pub best_epoch: Option<usize>,
    pub history: Vec<EpochRow>,
    /// Where the optimizer state lives.
    pub optimizer_state: String,
    /// Running sums of the current epoch, so a run resumed mid-epoch reports the same epoch loss.
    #[serde(default)]
    pub epoch_loss_sum: f64,
    #[serde(default)]
    pub epoch_steps: usize,
    #[serde(default)]
    pub epoch_parts: BTreeMap<String, f64>,
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(path: &Path) -> Result<Self> {
        fs::create_dir_all(path).with_context(|| format!("{}: cannot create run folder", path.display()))?;
        Ok(Self { path: path.to_path_buf() })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `last.safetensors` (weights + `optim.*` + `ema.*` + state) then `state.json`.
    pub fn save_last(
        &self,
        tensors: Vec<(String, Tensor)>,
        mut meta: HashMap<String, String>,
        state: &TrainState,
    ) -> Result<()> {
        let json = serde_json::to_string_pretty(state)?;
        meta.insert(STATE_KEY.into(), json.clone());
        write_weights(&self.file("last.safetensors"), &tensors, meta)?;
        write_atomic(&self.file("state.json"), json.as_bytes())
    }

    /// Reads `last.safetensors` and its embedded training state.
    pub fn load_last(&self) -> Result<(WeightsFile, TrainState)> {
        let p = self.file("last.safetensors");
        if !p.exists() {
            bail!("--resume: {} does not exist; nothing to resume (train without --resume first)", p.display());
        }
        let w = read_weights(&p)?;
        let s = w.meta(STATE_KEY).with_context(|| format!("{}: no training state in this file", p.display()))?;
        let state: TrainState =
            serde_json::from_str(s).with_context(|| format!("{}: bad training state", p.display()))?;
        Ok((w, state))
    }

    /// Rewrites `metrics.csv` from the history (so a resumed run keeps one consistent file).
    pub fn write_metrics_csv(&self, history: &[EpochRow]) -> Result<()> {
        let mut part_keys: Vec<&String> = history.iter().flat_map(|r| r.parts.keys()).collect();
        part_keys.sort();
        part_keys.dedup();
        let mut metric_keys: Vec<&String> = history.iter().flat_map(|r| r.metrics.keys()).collect();
        metric_keys.sort();
        metric_keys.dedup();
        let mut s = String::from("epoch,step,lr,train_loss");
        for k in &part_keys {
            s += &format!(",train_{k}");
        }
        for k in &metric_keys {
            s += &format!(",val_{k}");
        }
        s += ",seconds\n";
        for r in history {
            s += &format!("{},{},{:.6e},{:.6}", r.epoch, r.step, r.lr, r.train_loss);
            for k in &part_keys {
                s += &format!(",{}", r.parts.get(*k).map(|v| format!("{v:.6}")).unwrap_or_default());
            }
            for k in &metric_keys {
                s += &format!(",{}", r.metrics.get(*k).map(|v| format!("{v:.6}")).unwrap_or_default());
            }
            s += &format!(",{:.1}\n", r.seconds);
        }
        write_atomic(&self.file("metrics.csv"), s.as_bytes())
    }

    /// Keeps the rows of `steps.csv` up to `step` (called on resume) or starts it afresh.
    pub fn reset_step_log(&self, keep_up_to: usize) -> Result<()> {
        let p = self.file("steps.csv");
        let mut out = String::from("step,epoch,lr,loss\n");
        if keep_up_to > 0 {
            if let Ok(s) = fs::read_to_string(&p) {
                for line in s.lines().skip(1) {
                    let step: usize = line.split(',').next().and_then(|x| x.parse().ok()).unwrap_or(usize::MAX);
                    if step <= keep_up_to {
                        out += line;
                        out.push('\n');
                    }
                }
            }
        }
        write_atomic(&p, out.as_bytes())
    }

    /// Appends one step to `steps.csv` (1-based step number).
    pub fn log_step(&self, step: usize, epoch: usize, lr: f64, loss: f64) -> Result<()> {
        let mut f = OpenOptions::new().append(true).create(true).open(self.file("steps.csv"))?;
        writeln!(f, "{step},{epoch},{lr:.6e},{loss:.9e}")?;
        Ok(())
    }
}

/// Resolves `--weights DIR_OR_FILE`: a run folder gives its `best.safetensors` (else `last`, else `model`).
pub fn resolve_weights(p: &Path) -> Result<PathBuf> {
    if p.is_dir() {
        // model.safetensors: fitted models without a training loop (anomaly memory banks).
        for name in ["best.safetensors", "last.safetensors", "model.safetensors"] {
            if p.join(name).exists() {
                return Ok(p.join(name));
            }
        }
        bail!(
            "{}: a folder without best.safetensors, last.safetensors or model.safetensors; expected a run folder or a weights file",
            p.display()
        );
    }
    if !p.exists() {
        bail!("{}: weights file not found", p.display());
    }
    Ok(p.to_path_buf())
}

/// Model tensors of a weights file: drops the optimizer and EMA state of a `last.safetensors`,
/// preferring the EMA weights when the file has them.
pub fn model_tensors(w: &WeightsFile) -> HashMap<String, Tensor> {
    let has_ema = w.tensors.keys().any(|k| k.starts_with("ema."));
    let mut out = HashMap::new();
    for (k, t) in &w.tensors {
        if k.starts_with("optim.") {
            continue;
        }
        if has_ema {
            if let Some(base) = k.strip_prefix("ema.") {
                out.insert(base.to_string(), t.clone());
            }
        } else {
            out.insert(k.clone(), t.clone());
        }
    }
    out
}
