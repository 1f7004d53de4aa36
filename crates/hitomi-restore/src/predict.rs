//! `hitomi-restore predict`: restores each image (optionally distorting it first, to show what the
//! model undoes), writes the restored PNG, a side-by-side (distorted | restored) and JSON.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::SeededRng;
use hitomi_data::distort::DistortionSpec;
use hitomi_train::cli::PredictArgs;
use serde::Serialize;

use crate::data::{to_file_channels, LoadedImage};
use crate::ensemble::InferenceOptions;
use crate::eval::load_restorer;
use crate::quality::psnr;
use crate::sheet::{write_png, write_side_by_side};
use crate::task::restore_for_file;

#[derive(Args, Debug, Clone)]
pub struct RestorePredictArgs {
    #[command(flatten)]
    pub common: PredictArgs,
    /// Distort each (clean) image with this spec first and report PSNR before and after.
    #[arg(long)]
    pub distort: Option<DistortionSpec>,
    /// Seed of `--distort`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `predict` as the command line parses it: [`RestorePredictArgs`] plus how to run the restorer,
/// kept apart so that code which builds `RestorePredictArgs` field by field (the tour) keeps compiling.
#[derive(Args, Debug, Clone)]
pub struct RestorePredictCommand {
    #[command(flatten)]
    pub args: RestorePredictArgs,
    #[command(flatten)]
    pub inference: InferenceOptions,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub file: String,
    pub restored: String,
    pub side_by_side: String,
    /// With `--distort`: PSNR of the distorted and of the restored image against the original.
    pub psnr_input: Option<f64>,
    pub psnr: Option<f64>,
}

/// Predicts with a single pass of the restorer per image.
pub fn run(args: &RestorePredictArgs) -> Result<Vec<Prediction>> {
    run_with(args, InferenceOptions::default())
}

pub fn run_with(args: &RestorePredictArgs, inference: InferenceOptions) -> Result<Vec<Prediction>> {
    let device = Device::Cpu;
    let m = load_restorer(&args.common.weights, &device)?;
    let out = &args.common.out;
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot create ({e})", out.display()))?;
    let mut preds = Vec::new();
    for (k, path) in args.common.images.iter().enumerate() {
        let img = LoadedImage::open(path)?;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let (input, clean) = match &args.distort {
            Some(spec) => {
                let mut rng = SeededRng::derive(args.seed, &[k as u64]);
                (spec.apply(&img.image, &mut rng), Some(to_file_channels(&img.image, img.grey)))
            }
            None => (img.image.clone(), None),
        };
        let restored = restore_for_file(&m.model, &m.cfg, &input, img.grey, inference, &device)?;
        let shown_input = to_file_channels(&input, img.grey).to_u8_levels();
        let (restored_path, sbs_path): (PathBuf, PathBuf) =
            (out.join(format!("{stem}_restored.png")), out.join(format!("{stem}_side_by_side.png")));
        write_png(&restored_path, &restored)?;
        write_side_by_side(&sbs_path, &[("distorted", &shown_input), ("restored", &restored)])?;
        let (psnr_input, psnr_out) = match &clean {
            Some(c) => (Some(psnr(c, &shown_input)?), Some(psnr(c, &restored)?)),
            None => (None, None),
        };
        match (psnr_input, psnr_out) {
            (Some(a), Some(b)) => println!("{}: PSNR {a:.2} dB distorted -> {b:.2} dB restored", path.display()),
            _ => println!("{}: restored -> {}", path.display(), restored_path.display()),
        }
        preds.push(Prediction {
            file: path.display().to_string(),
            restored: restored_path.display().to_string(),
            side_by_side: sbs_path.display().to_string(),
            psnr_input,
            psnr: psnr_out,
        });
    }
    let json = args.common.json.clone().unwrap_or_else(|| out.join("predictions.json"));
    write_atomic(&json, serde_json::to_string_pretty(&preds)?.as_bytes())?;
    Ok(preds)
}
