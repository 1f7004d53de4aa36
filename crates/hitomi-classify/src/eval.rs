//! `hitomi-classify eval`: loads a weights file, scores a dataset split, prints a table, writes
//! JSON and `confusion.png`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::ParamStore;
use hitomi_data::classification::{ClassificationData, OpenOptions};
use hitomi_train::cli::EvalArgs;
use hitomi_train::plot;
use hitomi_train::weights::TaskWeights;

use crate::config::ClassifyConfig;
use crate::metrics::ClassificationReport;
use crate::model::Classifier;
use crate::task::evaluate;

/// A classifier rebuilt from a weights file and the config and classes stored in it.
pub struct LoadedClassifier {
    pub model: Classifier,
    pub cfg: ClassifyConfig,
    pub classes: Vec<String>,
    pub store: ParamStore,
    pub path: PathBuf,
}

/// Loads `--weights DIR_OR_FILE`; refuses files of another task and lists every tensor mismatch.
pub fn load_classifier(weights: &Path, device: &Device) -> Result<LoadedClassifier> {
    let w = TaskWeights::open(weights, "classify")?;
    let cfg: ClassifyConfig = w.config()?;
    let store = ParamStore::new(0, device);
    let model = Classifier::new(&store, &cfg, w.classes.len())?;
    w.load_into(&store)?;
    Ok(LoadedClassifier { model, cfg, classes: w.classes, store, path: w.path })
}

pub fn run(args: &EvalArgs) -> Result<ClassificationReport> {
    let device = Device::Cpu;
    let m = load_classifier(&args.weights, &device)?;
    let opts = OpenOptions { channels: m.cfg.channels, size: Some((m.cfg.image_size[0], m.cfg.image_size[1])) };
    let data = ClassificationData::open(&args.data, &args.split, &opts)?;
    if data.classes != m.classes {
        bail!("{}: dataset classes {:?} differ from the model's {:?}", args.data.display(), data.classes, m.classes);
    }
    let report = evaluate(&m.model, &data, 256, &device)?;
    println!("{} on {} ({} split)\n{}", m.path.display(), args.data.display(), args.split, report.table(&m.classes));
    if let Some(j) = &args.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(dir) = hitomi_train::cli::plots_dir(&args.plots, &args.json)? {
        plot::confusion(&dir.join("confusion.png"), &report.confusion, &m.classes)?;
    }
    Ok(report)
}
