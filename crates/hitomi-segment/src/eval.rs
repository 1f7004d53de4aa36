//! `hitomi-segment eval`: loads weights, scores a split with one dataset-wide confusion matrix,
//! prints a table, writes JSON and `confusion.png`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::ParamStore;
use hitomi_data::segmentation::SegmentationData;
use hitomi_train::cli::EvalArgs;
use hitomi_train::plot;
use hitomi_train::weights::TaskWeights;

use crate::config::SegmentConfig;
use crate::metrics::SegmentReport;
use crate::model::Segmenter;
use crate::task::evaluate;

/// A segmenter rebuilt from a weights file and the config and classes stored in it.
pub struct LoadedSegmenter {
    pub model: Segmenter,
    pub cfg: SegmentConfig,
    pub classes: Vec<String>,
    pub store: ParamStore,
    pub path: PathBuf,
}

/// Loads `--weights DIR_OR_FILE`; refuses files of another task and lists every tensor mismatch.
pub fn load_segmenter(weights: &Path, device: &Device) -> Result<LoadedSegmenter> {
    let w = TaskWeights::open(weights, "segment")?;
    let cfg: SegmentConfig = w.config()?;
    let store = ParamStore::new(0, device);
    let model = Segmenter::new(&store, &cfg, w.classes.len())?;
    w.load_into(&store)?;
    Ok(LoadedSegmenter { model, cfg, classes: w.classes, store, path: w.path })
}

/// What `eval` measured besides the metrics.
pub struct EvalOutcome {
    pub report: SegmentReport,
    pub images_per_second: f64,
    pub parameters: usize,
}

pub fn run(args: &EvalArgs) -> Result<EvalOutcome> {
    let device = Device::Cpu;
    let m = load_segmenter(&args.weights, &device)?;
    let size = Some((m.cfg.image_size[0], m.cfg.image_size[1]));
    let data = SegmentationData::open(&args.data, &args.split, m.cfg.channels, size)?;
    if data.classes != m.classes {
        bail!("{}: dataset classes {:?} differ from the model's {:?}", args.data.display(), data.classes, m.classes);
    }
    let (cm, ips) = evaluate(&m.model, &data, 32, &device)?;
    let report = cm.report(&m.classes, data.len());
    let parameters = m.store.num_trainable();
    println!(
        "{} ({:?} decoder, {parameters} parameters) on {} ({} split)\n{}\ninference: {ips:.1} images/s",
        m.path.display(),
        m.cfg.upsample,
        args.data.display(),
        args.split,
        report.table()
    );
    if let Some(j) = &args.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(dir) = hitomi_train::cli::plots_dir(&args.plots, &args.json)? {
        plot::confusion(&dir.join("confusion.png"), &report.confusion, &m.classes)?;
    }
    Ok(EvalOutcome { report, images_per_second: ips, parameters })
}
