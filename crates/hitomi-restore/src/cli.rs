//! The `hitomi-restore` command line (also mounted as `hitomi restore`).

use anyhow::Result;
use clap::{Args, Subcommand};
use hitomi_data::distort::DistortionSpec;
use hitomi_train::cli::TrainArgs;

use crate::eval::RestoreEvalCommand;
use crate::predict::RestorePredictCommand;

/// The shared training flags plus restoration's own.
#[derive(Args, Debug, Clone)]
pub struct RestoreTrainArgs {
    #[command(flatten)]
    pub common: TrainArgs,
    /// What to undo: noise:SIGMA, blur:SIGMA, motion:LENGTH, rain, raindrop, jpeg:QUALITY, joined
    /// with + (overrides the config).
    #[arg(long)]
    pub distortion: Option<DistortionSpec>,
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Train a restorer on a folder of clean images (distorted on the fly) or on lq/ + gt/ pairs.
    Train(RestoreTrainArgs),
    /// PSNR/SSIM of input, classical filters and the restorer on a split; JSON and comparison images.
    Eval(RestoreEvalCommand),
    /// Restored images and side-by-sides (distorted | restored).
    Predict(RestorePredictCommand),
}

pub fn run(cmd: &RestoreCommand) -> Result<()> {
    match cmd {
        RestoreCommand::Train(t) => {
            let s = crate::train::run(&t.common, t.distortion.as_ref(), false)?;
            println!(
                "trained {} steps in {:.0} s ({:.1} patches/s); best held-out PSNR {}; run folder {}",
                s.steps,
                s.seconds,
                s.images_per_second,
                s.best.map(|b| format!("{b:.2} dB")).unwrap_or_else(|| "-".into()),
                t.common.out.display()
            );
        }
        RestoreCommand::Eval(a) => {
            crate::eval::run_with(&a.args, a.inference)?;
        }
        RestoreCommand::Predict(a) => {
            crate::predict::run_with(&a.args, a.inference)?;
        }
    }
    Ok(())
}
