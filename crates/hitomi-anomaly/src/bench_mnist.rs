//! The one-class MNIST benchmark (Ruff et al. 2018's protocol): for each digit d, fit on the train
//! digits of d only, score every test digit, AUROC of "not d"; beside Deep SVDD's published table.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hitomi_core::checkpoint::write_atomic;
use hitomi_data::classification::{ClassificationData, OpenOptions};
use serde::Serialize;

use crate::auroc::roc_auc;
use crate::config::{AnomalyConfig, ImageScore};
use crate::images::ImageSet;
use crate::model::AnomalyModel;
use crate::train::backbone_for;

/// One-class Deep SVDD AUROC (%) per digit, Ruff et al. ICML 2018, Table 1.
pub const DEEP_SVDD: [f64; 10] = [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5];

#[derive(Args, Debug, Clone)]
pub struct BenchMnistArgs {
    /// MNIST IDX folder (train digits are the normal sets, t10k digits the test set).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub backbone_weights: Option<PathBuf>,
    /// Side digits are resized to before the backbone.
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Use at most this many train digits per class (all by default).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Anomaly settings (TOML); image_size and image_score are set by this command.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchMnistReport {
    pub auroc: Vec<f64>,
    pub mean: f64,
    pub deep_svdd: Vec<f64>,
    pub deep_svdd_mean: f64,
    pub backbone: String,
}

pub fn run(args: &BenchMnistArgs) -> Result<BenchMnistReport> {
    let probe = backbone_for(args.backbone_weights.as_deref())?;
    let channels = probe.channels;
    let source = probe.source.clone();
    drop(probe);
    let size = (args.image_size, args.image_size);
    let opts = OpenOptions { channels, size: Some(size) };
    let train = ClassificationData::open(&args.data, "train", &opts)?;
    let test = ClassificationData::open(&args.data, "test", &opts)?;
    let pixels = |d: &ClassificationData, idx: &[usize]| -> Vec<Vec<u8>> {
        idx.iter().map(|&i| d.image_u8(i).to_vec()).collect()
    };
    let test_idx: Vec<usize> = (0..test.len()).collect();
    let test_set = ImageSet::from_pixels(pixels(&test, &test_idx), channels, size);
    // Image-level kNN only: the patch memory is kept tiny since these scores do not use it.
    let base = match &args.config {
        Some(p) => AnomalyConfig::from_toml_file(p)?,
        None => AnomalyConfig::default(),
    };
    let cfg = AnomalyConfig { image_size: [size.0, size.1], image_score: ImageScore::Knn, coreset_max: 256, ..base };
    let mut auroc = Vec::new();
    for (d, svdd) in DEEP_SVDD.iter().enumerate() {
        let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == d).collect();
        if let Some(l) = args.limit {
            idx.truncate(l);
        }
        let set = ImageSet::from_pixels(pixels(&train, &idx), channels, size);
        let model = AnomalyModel::fit(backbone_for(args.backbone_weights.as_deref())?, &cfg, &set, true)?;
        let s = model.score(&test_set, &test_idx, true)?;
        let labels: Vec<bool> = test.labels.iter().map(|&l| l != d).collect();
        let a = roc_auc(&labels, &s.image)?;
        println!("digit {d}: AUROC {:5.1}  (Deep SVDD {:4.1})  [{} normal train digits]", 100.0 * a, svdd, idx.len());
        auroc.push(100.0 * a);
    }
    let mean = auroc.iter().sum::<f64>() / 10.0;
    let deep_svdd_mean = DEEP_SVDD.iter().sum::<f64>() / 10.0;
    println!("mean: AUROC {mean:.1}  (Deep SVDD {deep_svdd_mean:.1})");
    let report = BenchMnistReport { auroc, mean, deep_svdd: DEEP_SVDD.to_vec(), deep_svdd_mean, backbone: source };
    if let Some(j) = &args.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(report)
}
