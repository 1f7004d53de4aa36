//! `hitomi-classify eval`: loads a weights file, scores a dataset split, prints a table, writes
//! JSON and `confusion.png`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use hitomi_core::checkpoint::{read_weights, write_atomic};
use hitomi_core::ParamStore;
use hitomi_data::classification::{ClassificationData, OpenOptions};
use hitomi_train::cli::EvalArgs;
use hitomi_train::plot;
use hitomi_train::run_dir::{model_tensors, resolve_weights};

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
    let path = resolve_weights(weights)?;
    let w = read_weights(&path)?;
    let name = path.display().to_string();
    match w.meta("hitomi.task") {
        Some("classify") => {}
        Some(other) => bail!("{name}: weights of a `{other}` model; expected a classification model"),
        None => bail!("{name}: no hitomi metadata (hitomi.task); expected weights written by hitomi-classify train"),
    }
    let cfg: ClassifyConfig = serde_json::from_str(w.meta("hitomi.config").context("no hitomi.config")?)
        .with_context(|| format!("{name}: bad hitomi.config metadata"))?;
    let classes: Vec<String> = serde_json::from_str(w.meta("hitomi.classes").context("no hitomi.classes")?)
        .with_context(|| format!("{name}: bad hitomi.classes metadata"))?;
    let store = ParamStore::new(0, device);
    let model = Classifier::new(&store, &cfg, classes.len())?;
    store.load_checked(&model_tensors(&w), &name, &|_| false)?;
    Ok(LoadedClassifier { model, cfg, classes, store, path })
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
    let plots = args.plots.clone().or_else(|| args.json.as_ref().and_then(|j| j.parent().map(Path::to_path_buf)));
    if let Some(dir) = plots {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        std::fs::create_dir_all(&dir)?;
        plot::confusion(&dir.join("confusion.png"), &report.confusion, &m.classes)?;
    }
    Ok(report)
}
