//! Command-line flags shared by every task binary (GUIDE section 4).

use std::path::{Path, PathBuf};

use clap::Args;

/// `train --data PATH --out DIR [--config FILE.toml] [--epochs N] [--batch N] [--lr F] [--seed N] [--resume] [--backbone-weights FILE]`
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder for checkpoints, metrics and plots.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML config (unknown keys are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from `OUT/last.safetensors`.
    #[arg(long)]
    pub resume: bool,
    /// Load only the backbone tensors of another run or of a torchvision ResNet (safetensors).
    #[arg(long)]
    pub backbone_weights: Option<PathBuf>,
    /// Also checkpoint every N steps.
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Stop after this many training steps in total (for smoke runs).
    #[arg(long)]
    pub max_steps: Option<usize>,
}

/// `eval --weights DIR_OR_FILE --data PATH [--split NAME] [--json FILE]`
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Write the metrics as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Folder for plots (defaults to the folder of the JSON file, else none).
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// The folder `eval` writes plots to: `--plots`, else the JSON file's folder, else none; created.
pub fn plots_dir(plots: &Option<PathBuf>, json: &Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = plots.clone().or_else(|| json.as_ref().and_then(|j| j.parent().map(Path::to_path_buf))) else {
        return Ok(None);
    };
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: cannot create ({e})", dir.display()))?;
    Ok(Some(dir))
}

/// `predict --weights DIR_OR_FILE --out DIR [--json FILE] IMAGE...`
#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    #[arg(long)]
    pub weights: PathBuf,
    /// Folder for annotated images.
    #[arg(long)]
    pub out: PathBuf,
    /// Write predictions as JSON here (default OUT/predictions.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}
