//! `hitomi data ...`: dataset generators.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Label-free pretext data: photo patches labelled by (source photo, rotation), as an ImageFolder.
    Patches(PatchArgs),
    /// Digit canvases (96x96, 1-4 MNIST digits) as a YOLO detection and a mask segmentation dataset.
    Canvases(CanvasArgs),
    /// Texture anomaly data (MVTec AD category): crops of a grey texture photo, some with painted
    /// scratch, hole, stain and patch defects and their ground-truth masks.
    Textures(TextureArgs),
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

#[derive(Args, Debug)]
pub struct PatchArgs {
    /// Photos to cut patches from (each photo x 4 rotations is one class).
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Patch side in pixels.
    #[arg(long, default_value_t = 32)]
    pub size: u32,
    /// Patches per class.
    #[arg(long, default_value_t = 250)]
    pub per_class: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (an ImageFolder tree under OUT/train).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct TextureArgs {
    /// Texture photograph (PNG or JPEG, read as grey), at least two tiles of 4/3 the crop size.
    #[arg(long)]
    pub texture: PathBuf,
    /// Output MVTec AD category folder (train/, test/, ground_truth/).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub seed: u64,
    /// Crop side in pixels.
    #[arg(long, default_value_t = 96)]
    pub size: usize,
    /// Crops in train/good (from the train tiles of a checkerboard over the photo).
    #[arg(long, default_value_t = 60)]
    pub train: usize,
    /// Crops in test/good (from the test tiles, the other colour of the checkerboard).
    #[arg(long, default_value_t = 20)]
    pub test_good: usize,
    /// Crops per defect type in test/<defect>, each with its mask.
    #[arg(long, default_value_t = 10)]
    pub test_defect: usize,
}

pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Patches(a) => {
            let s = hitomi_data::patches::write_patches(&a.photos, a.size, a.per_class, a.seed, &a.out)?;
            println!("{} patches in {} classes in {}/train", s.images, s.classes, a.out.display());
        }
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
        DataCommand::Textures(a) => {
            let opts = hitomi_data::textures::TextureOptions {
                size: a.size,
                train: a.train,
                test_good: a.test_good,
                test_defect: a.test_defect,
            };
            let s = hitomi_data::textures::write_textures(&a.texture, &a.out, a.seed, &opts)?;
            let defects: Vec<String> = s.test_defects.iter().map(|(d, n)| format!("{n} {d}")).collect();
            println!(
                "{} train/good, {} test/good and {} defect crops ({}) with masks in {}",
                s.train_good,
                s.test_good,
                s.test_defects.iter().map(|(_, n)| n).sum::<usize>(),
                defects.join(", "),
                a.out.display()
            );
        }
    }
    Ok(())
}
