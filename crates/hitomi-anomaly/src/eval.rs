//! `hitomi-anomaly eval`: image AUROC over test/good vs test/<defect>, pixel AUROC over the
//! ground-truth masks (null without masks), per-defect image AUROC, JSON and `roc.png`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hitomi_core::checkpoint::write_atomic;
use hitomi_data::index_mask::read_index_mask;
use hitomi_data::mvtec::MvtecCategory;
use hitomi_data::segmentation::resize_mask;
use hitomi_train::plot;
use serde::Serialize;

use crate::auroc::{roc_auc, roc_curve, RocCurve};
use crate::images::ImageSet;
use crate::model::AnomalyModel;

/// `eval --weights DIR --data CATEGORY [--json FILE]`
#[derive(clap::Args, Debug, Clone)]
pub struct AnomalyEvalArgs {
    #[arg(long)]
    pub weights: PathBuf,
    /// MVTec AD category folder (test/ and, if present, ground_truth/).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Folder for roc.png (defaults to the folder of the JSON file, else none).
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AnomalyReport {
    pub task: &'static str,
    pub image_auroc: f64,
    pub pixel_auroc: Option<f64>,
    pub n_good: usize,
    pub n_defect: usize,
    /// Image AUROC of good against each defect type alone.
    pub per_defect: BTreeMap<String, f64>,
    /// Share of test images on the right side of the calibrated threshold.
    pub accuracy_at_threshold: f64,
    pub threshold: f64,
}

/// Ground truth of one test image at the model's size: 1 = defect pixel.
fn mask_at(t: &hitomi_data::mvtec::TestImage, size: (usize, usize)) -> Result<Vec<u8>> {
    let Some(m) = &t.mask else { return Ok(vec![0; size.0 * size.1]) };
    let mask = read_index_mask(m)?;
    let (w, h) = image::image_dimensions(&t.file).with_context(|| format!("{}: cannot read", t.file.display()))?;
    if (mask.width, mask.height) != (w as usize, h as usize) {
        bail!(
            "{} is {}x{} (WxH) but its image {} is {w}x{h}; a mask must match its image",
            m.display(),
            mask.width,
            mask.height,
            t.file.display()
        );
    }
    Ok(resize_mask(&mask, size.0, size.1).into_iter().map(|v| u8::from(v > 0)).collect())
}

/// At most `n` points of a curve, evenly spaced along it, ends kept (plots of 10^5 pixels).
fn thin(c: &RocCurve, n: usize) -> (Vec<f64>, Vec<f64>) {
    let step = (c.fpr.len() / n).max(1);
    let mut idx: Vec<usize> = (0..c.fpr.len()).step_by(step).collect();
    if idx.last() != Some(&(c.fpr.len() - 1)) {
        idx.push(c.fpr.len() - 1);
    }
    (idx.iter().map(|&i| c.fpr[i]).collect(), idx.iter().map(|&i| c.tpr[i]).collect())
}

pub fn run(args: &AnomalyEvalArgs, quiet: bool) -> Result<AnomalyReport> {
    let model = AnomalyModel::load(&args.weights)?;
    let cat = MvtecCategory::open(&args.data, true)?;
    let size = (model.meta.config.image_size[0], model.meta.config.image_size[1]);
    let files: Vec<PathBuf> = cat.test.iter().map(|t| t.file.clone()).collect();
    let set = ImageSet::load(&files, model.meta.channels, size)?;
    let idx: Vec<usize> = (0..set.len()).collect();
    let s = model.score(&set, &idx, quiet)?;
    let labels: Vec<bool> = cat.test.iter().map(|t| t.is_anomalous()).collect();
    let image_auroc = roc_auc(&labels, &s.image)?;
    let mut per_defect = BTreeMap::new();
    let defects: std::collections::BTreeSet<&str> =
        cat.test.iter().filter(|t| t.is_anomalous()).map(|t| t.defect.as_str()).collect();
    for d in defects {
        let keep: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i] || cat.test[i].defect == d).collect();
        let l: Vec<bool> = keep.iter().map(|&i| labels[i]).collect();
        let sc: Vec<f64> = keep.iter().map(|&i| s.image[i]).collect();
        per_defect.insert(d.to_string(), roc_auc(&l, &sc)?);
    }
    let mut pixel = None;
    if cat.has_masks {
        let masks: Vec<Vec<u8>> = cat.test.iter().map(|t| mask_at(t, size)).collect::<Result<_>>()?;
        let pl: Vec<bool> = masks.iter().flat_map(|m| m.iter().map(|&v| v > 0)).collect();
        let ps: Vec<f64> = s.maps.iter().flat_map(|m| m.iter().map(|&v| v as f64)).collect();
        pixel = Some((roc_auc(&pl, &ps)?, roc_curve(&pl, &ps)?));
    }
    let thr = model.meta.image_threshold;
    let right = labels.iter().zip(&s.image).filter(|(&l, &v)| l == (v > thr)).count();
    let report = AnomalyReport {
        task: "anomaly",
        image_auroc,
        pixel_auroc: pixel.as_ref().map(|p| p.0),
        n_good: labels.iter().filter(|&&l| !l).count(),
        n_defect: labels.iter().filter(|&&l| l).count(),
        per_defect,
        accuracy_at_threshold: right as f64 / labels.len() as f64,
        threshold: thr,
    };
    println!(
        "{} on {}: image AUROC {:.4}, pixel AUROC {}, {} good / {} defective test images",
        args.weights.display(),
        args.data.display(),
        report.image_auroc,
        report.pixel_auroc.map_or("null (no masks)".into(), |v| format!("{v:.4}")),
        report.n_good,
        report.n_defect
    );
    for (d, a) in &report.per_defect {
        println!("  {d:<12} image AUROC {a:.4}");
    }
    println!("  threshold {:.4}: {:.1}% of test images on the right side", thr, 100.0 * report.accuracy_at_threshold);
    if let Some(j) = &args.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(dir) = hitomi_train::cli::plots_dir(&args.plots, &args.json)? {
        let (fx, fy) = thin(&roc_curve(&labels, &s.image)?, 200);
        let img_name = format!("image (AUROC {:.3})", report.image_auroc);
        let mut series = vec![(img_name.as_str(), fx, fy)];
        let px_name;
        if let Some((a, c)) = &pixel {
            px_name = format!("pixel (AUROC {a:.3})");
            let (x, y) = thin(c, 200);
            series.push((px_name.as_str(), x, y));
        }
        plot::xy(&dir.join("roc.png"), "ROC", "false positive rate", "true positive rate", &series)?;
    }
    Ok(report)
}
