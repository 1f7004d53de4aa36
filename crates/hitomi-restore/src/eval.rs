//! `hitomi-restore eval`: restores the distorted images of a split, scores input and output with
//! PSNR/SSIM against the clean images, runs the tuned classical filters on the same inputs, prints a
//! table, writes JSON and one comparison image per image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::distort::DistortionSpec;
use hitomi_data::Planar;
use hitomi_train::cli::EvalArgs;
use hitomi_train::weights::TaskWeights;
use serde::Serialize;

use crate::config::RestoreConfig;
use crate::data::{to_file_channels, RestoreData};
use crate::ensemble::InferenceOptions;
use crate::filters::tuned_baselines;
use crate::model::Restorer;
use crate::quality::{psnr, ssim};
use crate::sheet::write_side_by_side;
use crate::task::{restore_for_file, EVAL_STREAM};
use crate::train::holdout_split;

/// The shared eval flags plus restoration's own.
#[derive(Args, Debug, Clone)]
pub struct RestoreEvalArgs {
    /// `--split val` = the image held out in training (config `holdout`), `train` = the others,
    /// `all` = every image of the folder.
    #[command(flatten)]
    pub common: EvalArgs,
    /// Distortion to synthesise (default: the one the model was trained for); ignored for lq/gt pairs.
    #[arg(long)]
    pub distortion: Option<DistortionSpec>,
    /// Skip the classical filters (they take a while on large images).
    #[arg(long)]
    pub no_baselines: bool,
}

/// `eval` as the command line parses it: [`RestoreEvalArgs`] plus how to run the restorer, kept
/// apart so that code which builds `RestoreEvalArgs` field by field (the tour) keeps compiling.
#[derive(Args, Debug, Clone)]
pub struct RestoreEvalCommand {
    #[command(flatten)]
    pub args: RestoreEvalArgs,
    #[command(flatten)]
    pub inference: InferenceOptions,
}

/// A restorer rebuilt from a weights file and the config stored in it.
pub struct LoadedRestorer {
    pub model: Restorer,
    pub cfg: RestoreConfig,
    pub store: ParamStore,
    pub path: PathBuf,
}

pub fn load_restorer(weights: &Path, device: &Device) -> Result<LoadedRestorer> {
    let w = TaskWeights::open(weights, "restore")?;
    let cfg: RestoreConfig = w.config()?;
    let store = ParamStore::new(0, device);
    let model = Restorer::new(&store, &cfg)?;
    w.load_into(&store)?;
    Ok(LoadedRestorer { model, cfg, store, path: w.path })
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageScores {
    pub file: String,
    pub psnr: f64,
    pub ssim: f64,
    pub psnr_input: f64,
    pub ssim_input: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub task: String,
    pub n: usize,
    pub distortion: String,
    /// Whether the restorer's scores are of the x8 self-ensemble (the filters are unaffected).
    pub self_ensemble: bool,
    pub psnr: f64,
    pub ssim: f64,
    pub psnr_input: f64,
    pub ssim_input: f64,
    /// Mean PSNR of each classical filter at its best setting on these images.
    pub baselines: BTreeMap<String, f64>,
    pub baselines_ssim: BTreeMap<String, f64>,
    /// The setting each filter was tuned to.
    pub baseline_settings: BTreeMap<String, String>,
    pub per_image: Vec<ImageScores>,
    pub seconds_per_image: f64,
}

impl RestoreReport {
    pub fn table(&self) -> String {
        let mut rows = vec![
            format!("{:<22} {:>8} {:>8}", "", "PSNR dB", "SSIM"),
            format!("{:<22} {:>8.2} {:>8.4}", "input (distorted)", self.psnr_input, self.ssim_input),
        ];
        for (name, p) in &self.baselines {
            let setting = self.baseline_settings.get(name).map(String::as_str).unwrap_or("");
            rows.push(format!("{:<22} {:>8.2} {:>8.4}  {setting}", name, p, self.baselines_ssim[name]));
        }
        rows.push(format!("{:<22} {:>8.2} {:>8.4}", "hitomi restorer", self.psnr, self.ssim));
        rows.join("\n")
    }

    /// PSNR gain over the best classical filter (None without baselines).
    pub fn gain_over_best_baseline(&self) -> Option<f64> {
        self.baselines.values().copied().reduce(f64::max).map(|b| self.psnr - b)
    }
}

/// Evaluates with a single pass of the restorer per image.
pub fn run(args: &RestoreEvalArgs) -> Result<RestoreReport> {
    run_with(args, InferenceOptions::default())
}

pub fn run_with(args: &RestoreEvalArgs, inference: InferenceOptions) -> Result<RestoreReport> {
    let device = Device::Cpu;
    let m = load_restorer(&args.common.weights, &device)?;
    let data = RestoreData::open(&args.common.data)?;
    let idx: Vec<usize> = match args.common.split.as_str() {
        "all" => (0..data.len()).collect(),
        split @ ("val" | "train") => {
            let (train_idx, val_idx) = holdout_split(&data, m.cfg.holdout.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}; use --split all to evaluate every image of another folder"))?;
            match split {
                "val" if val_idx.is_empty() => (0..data.len()).collect(),
                "val" => val_idx,
                _ => train_idx,
            }
        }
        other => bail!("--split {other}: expected val (the held-out image), train or all"),
    };
    let data = data.subset(&idx);
    let spec = args.distortion.clone().unwrap_or_else(|| m.cfg.distortion.clone());
    let plots = hitomi_train::cli::plots_dir(&args.common.plots, &args.common.json)?;
    let start = std::time::Instant::now();
    let mut per_image = Vec::new();
    let mut pairs: Vec<(Planar, Planar)> = Vec::new();
    let mut restored_all = Vec::new();
    for k in 0..data.len() {
        // The same stream as the per-epoch validation: the k-th image of the evaluated list.
        let mut rng = SeededRng::derive(m.cfg.train.seed, &[EVAL_STREAM, k as u64]);
        let (lq, gt, grey) = data.pair(k, &spec, &mut rng);
        let restored = restore_for_file(&m.model, &m.cfg, &lq, grey, inference, &device)?;
        let (lq, gt) = (to_file_channels(&lq, grey), to_file_channels(&gt, grey));
        per_image.push(ImageScores {
            file: data.names()[k].clone(),
            psnr: psnr(&gt, &restored)?,
            ssim: ssim(&gt, &restored)?,
            psnr_input: psnr(&gt, &lq)?,
            ssim_input: ssim(&gt, &lq)?,
        });
        pairs.push((lq, gt));
        restored_all.push(restored);
    }
    let seconds_per_image = start.elapsed().as_secs_f64() / idx.len().max(1) as f64;
    let n = per_image.len();
    let mean = |f: &dyn Fn(&ImageScores) -> f64| per_image.iter().map(f).sum::<f64>() / n as f64;
    let (mut baselines, mut baselines_ssim, mut baseline_settings) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut best_baseline: Option<(f64, Vec<Planar>)> = None;
    if !args.no_baselines {
        for b in tuned_baselines(&pairs) {
            let outputs: Vec<Planar> = pairs.iter().map(|(lq, _)| b.filter.apply(lq).to_u8_levels()).collect();
            if best_baseline.as_ref().is_none_or(|(p, _)| b.psnr > *p) {
                best_baseline = Some((b.psnr, outputs));
            }
            baselines.insert(b.name.clone(), b.psnr);
            baselines_ssim.insert(b.name.clone(), b.ssim);
            baseline_settings.insert(b.name.clone(), format!("{:?}", b.filter));
        }
    }
    let report = RestoreReport {
        task: "restore".into(),
        n,
        distortion: spec.to_string(),
        self_ensemble: inference.self_ensemble,
        psnr: mean(&|s| s.psnr),
        ssim: mean(&|s| s.ssim),
        psnr_input: mean(&|s| s.psnr_input),
        ssim_input: mean(&|s| s.ssim_input),
        baselines,
        baselines_ssim,
        baseline_settings,
        per_image,
        seconds_per_image,
    };
    println!(
        "{} on {} ({} split, {n} image(s), distortion {}{})\n{}",
        m.path.display(),
        args.common.data.display(),
        args.common.split,
        report.distortion,
        if inference.self_ensemble { ", x8 self-ensemble" } else { "" },
        report.table()
    );
    if let Some(g) = report.gain_over_best_baseline() {
        println!("gain over the best classical filter: {g:+.2} dB");
    }
    if let Some(j) = &args.common.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(dir) = plots {
        for (k, ((lq, gt), restored)) in pairs.iter().zip(&restored_all).enumerate() {
            let stem =
                Path::new(&report.per_image[k].file).file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let mut panels: Vec<(&str, &Planar)> = vec![("distorted", lq)];
            if let Some((_, outs)) = &best_baseline {
                panels.push(("best filter", &outs[k]));
            }
            panels.push(("hitomi", restored));
            panels.push(("clean", gt));
            write_side_by_side(&dir.join(format!("compare_{stem}.png")), &panels)?;
        }
    }
    Ok(report)
}
