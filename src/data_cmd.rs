//! `hitomi data ...`: dataset generators.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Digit canvases (96x96, 1-4 MNIST digits) as a YOLO detection and a mask segmentation dataset.
    Canvases(CanvasArgs),
}

#[derive(Args, Debug)]
pub struct CanvasArgs {
    /// MNIST IDX folder.
    #[arg(long)]
    pub digits: PathBuf,
    /// Which digits to use: train or test (written as images/<split>/).
    #[arg(long)]
    pub split: String,
    /// Number of canvases.
    #[arg(long)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: OUT/detect and OUT/segment.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Canvases(a) => {
            let s = hitomi_data::canvas::write_canvases(&a.digits, &a.split, a.n, a.seed, &a.out)?;
            println!(
                "{} canvases with {} digits in {}/detect and {}/segment",
                s.images,
                s.digits,
                a.out.display(),
                a.out.display()
            );
        }
    }
    Ok(())
}
