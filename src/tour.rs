//! `hitomi tour`: trains and evaluates every task briefly on the bundled data in `assets/` and
//! writes a report folder (plots, sample outputs, `summary.json`, `report.md`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use hitomi_classify::attack::{AttackArgs, Method};
use hitomi_core::checkpoint::write_atomic;
use hitomi_train::cli::{EvalArgs, PredictArgs, TrainArgs};
use serde_json::json;

#[derive(Args, Debug, Clone)]
pub struct TourArgs {
    /// Report folder.
    #[arg(long, default_value = "runs/tour")]
    pub out: PathBuf,
    /// Bundled data folder.
    #[arg(long, default_value = "assets")]
    pub assets: PathBuf,
    /// Training epochs per task.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Stop each training after this many steps (smoke runs).
    #[arg(long)]
    pub max_steps: Option<usize>,
}

/// The training flags of a tour run: seed 0, the tour's epochs and step limit.
fn train_args(args: &TourArgs, data: PathBuf, out: PathBuf, backbone_weights: Option<PathBuf>) -> TrainArgs {
    TrainArgs {
        data,
        out,
        config: None,
        epochs: Some(args.epochs),
        batch: None,
        lr: None,
        seed: Some(0),
        resume: false,
        backbone_weights,
        save_every: None,
        max_steps: args.max_steps,
    }
}

/// Runs the tour; returns the summary it wrote.
pub fn run(args: &TourArgs) -> Result<serde_json::Value> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mnist = args.assets.join("mnist");

    // Classification: train on the 7,000 bundled train digits, evaluate on the 1,000 t10k digits.
    eprintln!("== classify: small ResNet on {} ==", mnist.display());
    let t0 = Instant::now();
    let run_dir = args.out.join("classify");
    let train = train_args(args, mnist.clone(), run_dir.clone(), None);
    let fit = hitomi_classify::train::run(&train, None, false)?;
    let eval = EvalArgs {
        weights: run_dir.clone(),
        data: mnist.clone(),
        split: "test".into(),
        json: Some(run_dir.join("eval.json")),
        plots: Some(run_dir.clone()),
    };
    let report = hitomi_classify::eval::run(&eval)?;
    let mut samples: Vec<PathBuf> = std::fs::read_dir(args.assets.join("samples/digits"))
        .context("assets/samples/digits")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    samples.sort();
    let predict = PredictArgs { weights: run_dir.clone(), out: run_dir.join("predict"), json: None, images: samples };
    let preds = hitomi_classify::predict::run(&predict)?;
    let classify = json!({
        "train_images": 7000,
        "epochs": fit.epochs,
        "steps": fit.steps,
        "train_seconds": fit.seconds,
        "train_images_per_second": fit.images_per_second,
        "val_top1": fit.best,
        "test_n": report.n,
        "test_top1": report.top1,
        "test_top5": report.top5,
        "predictions": preds.iter().map(|p| json!({"file": p.file, "top1": p.top5[0].class, "probability": p.top5[0].probability})).collect::<Vec<_>>(),
        "files": ["classify/curves.png", "classify/confusion.png", "classify/metrics.csv", "classify/eval.json", "classify/predict/"],
        "seconds": t0.elapsed().as_secs_f64(),
    });

    // Adversarial examples: FGSM against the classifier just trained, on 200 t10k digits.
    eprintln!("== attack: FGSM on the tour classifier ==");
    let t1 = Instant::now();
    let attack_dir = args.out.join("attack");
    let attack = AttackArgs {
        weights: run_dir.clone(),
        data: mnist.clone(),
        split: "test".into(),
        method: Method::Fgsm,
        eps: vec![0.05, 0.1, 0.2, 0.25, 0.3],
        steps: 10,
        step_size: None,
        json: Some(attack_dir.join("fgsm.json")),
        out: Some(attack_dir.clone()),
        limit: Some(200),
    };
    let fgsm = hitomi_classify::attack::run(&attack)?;
    let attack_summary = json!({
        "method": "fgsm",
        "n": fgsm.n,
        "clean": fgsm.clean,
        "eps": fgsm.eps,
        "accuracy": fgsm.accuracy,
        "files": ["attack/robustness.png", "attack/panel.png", "attack/fgsm.json"],
        "seconds": t1.elapsed().as_secs_f64(),
    });

    let (segment_summary, segment_row) = segment(args, &run_dir)?;
    let (detect_summary, detect_row) = detect(args, &run_dir)?;
    let (restore_summary, restore_row) = restore(args)?;
    let (anomaly_summary, anomaly_row) = anomaly(args)?;

    let summary = json!({
        "hitomi": env!("CARGO_PKG_VERSION"),
        "seconds": started.elapsed().as_secs_f64(),
        "tasks": { "classify": classify, "attack": attack_summary, "segment": segment_summary, "detect": detect_summary, "restore": restore_summary, "anomaly": anomaly_summary },
    });
    write_atomic(&args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    let md = format!(
        "# hitomi tour\n\n| task | data | figure | value | time |\n|---|---|---|---|---|\n\
         | classify | MNIST 7,000 train / 1,000 t10k | top-1 (t10k) | {:.2}% | {:.0} s |\n\
         | attack | 200 t10k digits, FGSM | accuracy at eps 0.1 / 0.25 | {:.1}% / {:.1}% (clean {:.1}%) | {:.0} s |\n\
         {segment_row}\n\
         {detect_row}\n\
         {restore_row}\n\
         {anomaly_row}\n\n\
         Plots: `classify/curves.png`, `classify/confusion.png`, `attack/robustness.png`, `attack/panel.png`, \
         `segment/curves.png`, `segment/confusion.png`, `detect/curves.png`, `detect/pr_curve.png`, `restore/curves.png`, `restore/compare_astronaut.png`, \
         `anomaly/roc.png`; predictions: `classify/predict/`, `segment/predict/`, `detect/predict/`, `restore/predict/`, `anomaly/predict/`.\n",
        100.0 * report.top1,
        classify["seconds"].as_f64().unwrap_or(0.0),
        100.0 * fgsm.accuracy[1],
        100.0 * fgsm.accuracy[3],
        100.0 * fgsm.clean,
        attack_summary["seconds"].as_f64().unwrap_or(0.0)
    );
    write_atomic(&args.out.join("report.md"), md.as_bytes())?;
    println!("{md}\nreport folder: {}", args.out.display());
    Ok(summary)
}

/// Segmentation: digit canvases from the bundled train digits (train) and t10k digits (test), the
/// transposed-convolution decoder trained briefly on top of the backbone the classifier just learned
/// (pretrain once, fine-tune elsewhere); returns the summary and the report row.
fn segment(args: &TourArgs, classifier: &std::path::Path) -> Result<(serde_json::Value, String)> {
    eprintln!("== segment: U-Net decoder on digit canvases ==");
    let t0 = Instant::now();
    let canvases = args.out.join("data/canvases");
    let mnist = args.assets.join("mnist");
    let (n_train, n_test) = (600, 100);
    hitomi_data::canvas::write_canvases(&mnist, "train", n_train, 0, &canvases)?;
    hitomi_data::canvas::write_canvases(&mnist, "test", n_test, 1, &canvases)?;
    let data = canvases.join("segment");
    let run_dir = args.out.join("segment");
    let train = train_args(args, data.clone(), run_dir.clone(), Some(classifier.to_path_buf()));
    let fit = hitomi_segment::train::run(&train, None, None, false)?;
    let eval = EvalArgs {
        weights: run_dir.clone(),
        data: data.clone(),
        split: "test".into(),
        json: Some(run_dir.join("eval.json")),
        plots: Some(run_dir.clone()),
    };
    let outcome = hitomi_segment::eval::run(&eval)?;
    let images: Vec<PathBuf> = (0..3).map(|i| data.join(format!("images/test/test_{i:05}.png"))).collect();
    let predict = PredictArgs { weights: run_dir.clone(), out: run_dir.join("predict"), json: None, images };
    hitomi_segment::predict::run(&predict)?;
    let r = &outcome.report;
    let seconds = t0.elapsed().as_secs_f64();
    let summary = json!({
        "backbone": "the tour classifier's (transferred)",
        "train_canvases": n_train,
        "test_canvases": n_test,
        "epochs": fit.epochs,
        "steps": fit.steps,
        "train_seconds": fit.seconds,
        "train_images_per_second": fit.images_per_second,
        "val_miou": fit.best,
        "test_miou": r.miou,
        "test_pixel_accuracy": r.pixel_accuracy,
        "iou_per_class": r.iou_per_class,
        "parameters": outcome.parameters,
        "infer_images_per_second": outcome.images_per_second,
        "files": ["segment/curves.png", "segment/confusion.png", "segment/eval.json", "segment/predict/"],
        "seconds": seconds,
    });
    let row = format!(
        "| segment | {n_train} / {n_test} digit canvases (train / t10k digits) | mIoU / pixel accuracy | {:.1}% / {:.1}% | {seconds:.0} s |",
        100.0 * r.miou,
        100.0 * r.pixel_accuracy
    );
    Ok((summary, row))
}

/// Detection: the FCOS detector trained briefly on the YOLO half of the canvases the segmentation
/// step wrote, its backbone starting from the tour classifier's; COCO mAP on the t10k canvases.
fn detect(args: &TourArgs, classifier: &std::path::Path) -> Result<(serde_json::Value, String)> {
    eprintln!("== detect: FCOS head on a feature pyramid, digit canvases ==");
    let t0 = Instant::now();
    let data = args.out.join("data/canvases/detect");
    let run_dir = args.out.join("detect");
    let train = train_args(args, data.clone(), run_dir.clone(), Some(classifier.to_path_buf()));
    let fit = hitomi_detect::train::run(&train, false)?;
    let eval = hitomi_detect::eval::DetectEvalArgs {
        common: EvalArgs {
            weights: run_dir.clone(),
            data: data.clone(),
            split: "test".into(),
            json: Some(run_dir.join("eval.json")),
            plots: Some(run_dir.clone()),
        },
        coco_dir: Some(run_dir.join("coco")),
    };
    let e = hitomi_detect::eval::run(&eval)?;
    let images: Vec<PathBuf> = (0..3).map(|i| data.join(format!("images/test/test_{i:05}.png"))).collect();
    let common = PredictArgs { weights: run_dir.clone(), out: run_dir.join("predict"), json: None, images };
    hitomi_detect::predict::run(&hitomi_detect::predict::DetectPredictArgs { common, conf: 0.25 })?;
    let seconds = t0.elapsed().as_secs_f64();
    let s = &e.stats.stats;
    let summary = json!({
        "backbone": "the tour classifier's (transferred)",
        "test_canvases": e.detections.len(),
        "epochs": fit.epochs,
        "steps": fit.steps,
        "train_seconds": fit.seconds,
        "train_images_per_second": fit.images_per_second,
        "val_map": fit.best,
        "test_map": s[0],
        "test_map50": s[1],
        "test_map75": s[2],
        "stats": s.to_vec(),
        "infer_images_per_second": e.images_per_second,
        "files": ["detect/curves.png", "detect/pr_curve.png", "detect/eval.json", "detect/coco/", "detect/predict/"],
        "seconds": seconds,
    });
    let row = format!(
        "| detect | the same canvases, YOLO boxes | mAP@.5:.95 / mAP@.5 | {:.1}% / {:.1}% | {seconds:.0} s |",
        100.0 * s[0].max(0.0),
        100.0 * s[1].max(0.0)
    );
    Ok((summary, row))
}

/// Restoration: a small denoiser (sigma 25) trained on patches of the bundled photos with
/// astronaut.png held out, evaluated on it against the tuned classical filters; returns summary and row.
fn restore(args: &TourArgs) -> Result<(serde_json::Value, String)> {
    eprintln!("== restore: residual encoder-decoder denoiser (sigma 25) on the bundled photos ==");
    let t0 = Instant::now();
    let photos = args.assets.join("photos");
    let run_dir = args.out.join("restore");
    let mut cfg = hitomi_restore::config::RestoreConfig {
        width: 16,
        patches_per_epoch: 256,
        holdout: Some("astronaut.png".into()),
        ..Default::default()
    };
    cfg.train.epochs = args.epochs;
    cfg.train.seed = 0;
    let train = train_args(args, photos.clone(), run_dir.clone(), None);
    let fit = hitomi_restore::train::run_with_config(&train, cfg, false)?;
    let eval = hitomi_restore::eval::RestoreEvalArgs {
        common: EvalArgs {
            weights: run_dir.clone(),
            data: photos.clone(),
            split: "val".into(),
            json: Some(run_dir.join("eval.json")),
            plots: Some(run_dir.clone()),
        },
        distortion: None,
        no_baselines: false,
    };
    let r = hitomi_restore::eval::run(&eval)?;
    let predict = hitomi_restore::predict::RestorePredictArgs {
        common: PredictArgs {
            weights: run_dir.clone(),
            out: run_dir.join("predict"),
            json: None,
            images: vec![photos.join("camera.png")],
        },
        distort: Some("noise:25".parse()?),
        seed: 0,
    };
    hitomi_restore::predict::run(&predict)?;
    let seconds = t0.elapsed().as_secs_f64();
    let (best_name, best_psnr) =
        r.baselines.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(n, p)| (n.clone(), *p)).unwrap_or_default();
    let summary = json!({
        "data": "7 bundled photos (patches, noise sigma 25 on the fly), astronaut.png held out",
        "steps": fit.steps,
        "train_seconds": fit.seconds,
        "psnr_input": r.psnr_input,
        "psnr": r.psnr,
        "ssim": r.ssim,
        "baselines": r.baselines,
        "files": ["restore/curves.png", "restore/compare_astronaut.png", "restore/eval.json", "restore/predict/"],
        "seconds": seconds,
    });
    let row = format!(
        "| restore | 7 photos, noise sigma 25; held-out astronaut | PSNR input / best filter ({best_name}) / hitomi | \
         {:.2} / {best_psnr:.2} / {:.2} dB | {seconds:.0} s |",
        r.psnr_input, r.psnr
    );
    Ok((summary, row))
}

/// Anomaly detection: a brick-texture category from the generator, fitted on its normal crops with
/// the shipped label-free backbone, scored on good and defective crops; returns summary and row.
fn anomaly(args: &TourArgs) -> Result<(serde_json::Value, String)> {
    eprintln!("== anomaly: frozen-feature memory on generated brick defects ==");
    let t0 = Instant::now();
    let data = args.out.join("data/brick");
    let texture = args.assets.join("textures/brick.png");
    hitomi_data::textures::write_textures(&texture, &data, 0, &hitomi_data::textures::TextureOptions::default())?;
    let run_dir = args.out.join("anomaly");
    let train = hitomi_anomaly::train::AnomalyTrainArgs {
        data: data.clone(),
        out: run_dir.clone(),
        backbone_weights: None,
        config: None,
        image_size: None,
        // A texture is not aligned like digits: PatchCore's largest patch distance scores its images
        // (brick 0.980 image AUROC against 0.530 for PANDA's pooled-feature kNN, the default).
        image_score: Some(hitomi_anomaly::config::ImageScore::MaxPatch),
    };
    hitomi_anomaly::train::run(&train, false)?;
    let eval = hitomi_anomaly::eval::AnomalyEvalArgs {
        weights: run_dir.clone(),
        data: data.clone(),
        json: Some(run_dir.join("eval.json")),
        plots: Some(run_dir.clone()),
    };
    let r = hitomi_anomaly::eval::run(&eval, false)?;
    let images =
        vec![data.join("test/good/000.png"), data.join("test/hole/000.png"), data.join("test/scratch/000.png")];
    let predict = PredictArgs { weights: run_dir.clone(), out: run_dir.join("predict"), json: None, images };
    hitomi_anomaly::predict::run(&predict)?;
    let seconds = t0.elapsed().as_secs_f64();
    let summary = json!({
        "category": "brick (generated: 60 train/good, 20 test/good, 40 defective)",
        "image_score": "max-patch",
        "image_auroc": r.image_auroc,
        "pixel_auroc": r.pixel_auroc,
        "per_defect": r.per_defect,
        "files": ["anomaly/roc.png", "anomaly/eval.json", "anomaly/predict/"],
        "seconds": seconds,
    });
    let row = format!(
        "| anomaly | brick texture, 60 normal crops / 60 test crops | image (max-patch) / pixel AUROC | {:.3} / {} | {seconds:.0} s |",
        r.image_auroc,
        r.pixel_auroc.map_or("-".into(), |p| format!("{p:.3}"))
    );
    Ok((summary, row))
}
