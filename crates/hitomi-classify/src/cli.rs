//! The `hitomi-classify` command line (also mounted as `hitomi classify`).

use anyhow::Result;
use clap::Subcommand;
use hitomi_train::cli::{EvalArgs, PredictArgs, TrainArgs};

#[derive(Subcommand, Debug)]
pub enum ClassifyCommand {
    /// Train a classifier (MNIST IDX folder or ImageFolder tree).
    Train(TrainArgs),
    /// Evaluate weights on a dataset split: table, JSON, confusion.png.
    Eval(EvalArgs),
    /// Top-5 classes of images (any size and colour).
    Predict(PredictArgs),
}

pub fn run(cmd: &ClassifyCommand) -> Result<()> {
    match cmd {
        ClassifyCommand::Train(a) => {
            let s = crate::train::run(a, false)?;
            println!(
                "trained {} steps in {:.0} s ({:.0} img/s); best val top-1 {}; run folder {}",
                s.steps,
                s.seconds,
                s.images_per_second,
                s.best.map(|b| format!("{:.2}%", 100.0 * b)).unwrap_or_else(|| "-".into()),
                a.out.display()
            );
        }
        ClassifyCommand::Eval(a) => {
            crate::eval::run(a)?;
        }
        ClassifyCommand::Predict(a) => {
            crate::predict::run(a)?;
        }
    }
    Ok(())
}
