//! `hitomi data ...`: dataset generators.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Label-free pretext data: photo patches labelled by (source photo, rotation[, zoom]), as an ImageFolder.
    Patches(PatchArgs),
    /// Digit canvases (96x96, 1-4 MNIST digits) as a YOLO detection and a mask segmentation dataset.
    Canvases(CanvasArgs),
    /// Texture anomaly data (MVTec AD category): crops of a grey texture photo, some with painted
    /// scratch, hole, stain and patch defects and their ground-truth masks.
    Textures(TextureArgs),
    /// Distorted copies of an image (restoration's synthetic inputs), one per spec, as one sheet
    /// (clean | spec 1 | spec 2 | ...) and as separate PNGs.
    Distort(DistortArgs),
}

#[derive(Args, Debug)]
pub struct DistortArgs {
    /// A clean image.
    #[arg(long)]
    pub image: PathBuf,
    /// Distortion specs (noise:SIGMA, blur:SIGMA, motion:LENGTH, rain, raindrop, jpeg:QUALITY,
    /// joined with +), one panel each.
    #[arg(long = "spec", required = true)]
    pub specs: Vec<hitomi_data::distort::DistortionSpec>,
    /// Crop this many pixels square from the image's centre first (0 = whole image).
    #[arg(long, default_value_t = 0)]
    pub crop: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: sheet.png and one PNG per spec.
    #[arg(long)]
    pub out: PathBuf,
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
    /// Zoom factors that become part of the label, e.g. `0.5,1,2` (0.5 = a piece magnified 2x);
    /// without them every patch is cut at a random scale of 1-3x and the label has no zoom.
    #[arg(long, value_delimiter = ',')]
    pub zooms: Vec<f64>,
    /// Exemplar classes instead (Exemplar-CNN): N random spots of the photos, each one class whose
    /// images are the spot cut again slightly shifted and rescaled.
    #[arg(long, conflicts_with = "zooms")]
    pub exemplars: Option<usize>,
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

/// `hitomi data distort`: the clean image and each distortion of it, side by side.
fn distort(a: &DistortArgs) -> Result<()> {
    let img = hitomi_restore::data::LoadedImage::open(&a.image)?;
    let mut clean = img.image.clone();
    if a.crop > 0 {
        let side = a.crop.min(clean.width).min(clean.height);
        clean = clean.crop((clean.width - side) / 2, (clean.height - side) / 2, side, side);
    }
    let as_file = |p: &hitomi_data::Planar| hitomi_restore::data::to_file_channels(p, img.grey);
    std::fs::create_dir_all(&a.out).map_err(|e| anyhow::anyhow!("{}: cannot create ({e})", a.out.display()))?;
    let mut panels = vec![("clean".to_string(), as_file(&clean))];
    for (k, spec) in a.specs.iter().enumerate() {
        let mut rng = hitomi_core::SeededRng::derive(a.seed, &[k as u64]);
        let d = as_file(&spec.apply(&clean, &mut rng));
        let name = spec.to_string().replace([':', '+'], "_");
        hitomi_restore::sheet::write_png(&a.out.join(format!("{name}.png")), &d)?;
        panels.push((spec.to_string(), d));
    }
    let refs: Vec<(&str, &hitomi_data::Planar)> = panels.iter().map(|(n, p)| (n.as_str(), p)).collect();
    hitomi_restore::sheet::write_side_by_side(&a.out.join("sheet.png"), &refs)?;
    println!("{} distortion(s) of {} in {}/sheet.png", a.specs.len(), a.image.display(), a.out.display());
    Ok(())
}

pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Distort(a) => distort(a)?,
        DataCommand::Patches(a) => {
            let s = match a.exemplars {
                Some(n) => hitomi_data::exemplars::write_exemplars(&a.photos, a.size, n, a.per_class, a.seed, &a.out)?,
                None => hitomi_data::patches::write_patches(&a.photos, a.size, a.per_class, &a.zooms, a.seed, &a.out)?,
            };
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
