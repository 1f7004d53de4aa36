//! The `hitomi-classify` command line (also mounted as `hitomi classify`).

use anyhow::Result;
use clap::{Args, Subcommand};
use hitomi_train::cli::{EvalArgs, PredictArgs, TrainArgs};

use crate::config::Adversarial;

/// The shared training flags plus classification's own.
#[derive(Args, Debug, Clone)]
pub struct ClassifyTrainArgs {
    #[command(flatten)]
    pub common: TrainArgs,
    /// Adversarial training: fgsm:EPS[:ALPHA] mixes ALPHA x clean loss + (1 - ALPHA) x FGSM loss.
    #[arg(long)]
    pub adversarial: Option<Adversarial>,
}

#[derive(Subcommand, Debug)]
pub enum ClassifyCommand {
    /// Train a classifier (MNIST IDX folder or ImageFolder tree).
    Train(ClassifyTrainArgs),
    /// Evaluate weights on a dataset split: table, JSON, confusion.png.
    Eval(EvalArgs),
    /// Top-5 classes of images (any size and colour).
    Predict(PredictArgs),
    /// Accuracy under FGSM / PGD attacks per eps, robustness.png and an example panel.
    Attack(crate::attack::AttackArgs),
}

pub fn run(cmd: &ClassifyCommand) -> Result<()> {
    match cmd {
        ClassifyCommand::Train(t) => {
            let a = &t.common;
            let s = crate::train::run(a, t.adversarial, false)?;
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
        ClassifyCommand::Attack(a) => {
            crate::attack::run(a)?;
        }
    }
    Ok(())
}
