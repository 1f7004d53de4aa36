//! The `hitomi-segment` command line (also mounted as `hitomi segment`).

use anyhow::Result;
use clap::{Args, Subcommand};
use hitomi_train::cli::{EvalArgs, PredictArgs, TrainArgs};

use crate::config::Upsample;

/// The shared training flags plus segmentation's own.
#[derive(Args, Debug, Clone)]
pub struct SegmentTrainArgs {
    #[command(flatten)]
    pub common: TrainArgs,
    /// The decoder's up-step (overrides the config).
    #[arg(long, value_enum)]
    pub upsample: Option<Upsample>,
    /// Weight of the Dice term added to the cross-entropy (overrides the config; 0 = none).
    #[arg(long)]
    pub dice: Option<f64>,
}

#[derive(Subcommand, Debug)]
pub enum SegmentCommand {
    /// Train a segmenter (data.yaml + images/<split>/ + masks/<split>/).
    Train(SegmentTrainArgs),
    /// Evaluate weights on a split: per-class IoU, mIoU, pixel accuracy, JSON, confusion.png.
    Eval(EvalArgs),
    /// Class-index masks and colour overlays of images.
    Predict(PredictArgs),
}

pub fn run(cmd: &SegmentCommand) -> Result<()> {
    match cmd {
        SegmentCommand::Train(t) => {
            let s = crate::train::run(&t.common, t.upsample, t.dice, false)?;
            println!(
                "trained {} steps in {:.0} s ({:.1} img/s); best val mIoU {}; run folder {}",
                s.steps,
                s.seconds,
                s.images_per_second,
                s.best.map(|b| format!("{:.2}%", 100.0 * b)).unwrap_or_else(|| "-".into()),
                t.common.out.display()
            );
        }
        SegmentCommand::Eval(a) => {
            crate::eval::run(a)?;
        }
        SegmentCommand::Predict(a) => {
            crate::predict::run(a)?;
        }
    }
    Ok(())
}
