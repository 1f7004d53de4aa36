//! The `hitomi-anomaly` command line (also mounted as `hitomi anomaly`).

use anyhow::Result;
use clap::Subcommand;
use hitomi_train::cli::PredictArgs;

#[derive(Subcommand, Debug)]
pub enum AnomalyCommand {
    /// Fit on the normal images of an MVTec AD category (train/good); no labels, no gradients.
    Train(crate::train::AnomalyTrainArgs),
    /// Image and pixel AUROC on the category's test images, JSON, roc.png.
    Eval(crate::eval::AnomalyEvalArgs),
    /// Anomaly score and heat-map overlay of images.
    Predict(PredictArgs),
    /// One-class MNIST: AUROC per digit beside Deep SVDD's published figures.
    BenchMnist(crate::bench_mnist::BenchMnistArgs),
}

pub fn run(cmd: &AnomalyCommand) -> Result<()> {
    match cmd {
        AnomalyCommand::Train(a) => {
            crate::train::run(a, false)?;
        }
        AnomalyCommand::Eval(a) => {
            crate::eval::run(a, false)?;
        }
        AnomalyCommand::Predict(a) => {
            crate::predict::run(a)?;
        }
        AnomalyCommand::BenchMnist(a) => {
            crate::bench_mnist::run(a)?;
        }
    }
    Ok(())
}
