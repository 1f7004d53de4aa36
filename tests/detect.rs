//! Object detection end to end on digit canvases made from the bundled MNIST: train, eval (JSON
//! keys, PR curves, COCO files that re-score identically through `cocoeval`), predict (boxes drawn,
//! JSON), the shipped weights reach their mAP on canvases of held-out digits, and bad YOLO labels
//! are named by file:line.

use std::path::{Path, PathBuf};

use crate::common::{hitomi, read_json, repo, run, temp_dir};

/// `hitomi data canvases` of the bundled digits of `split`; returns OUT/detect.
fn canvases(dir: &Path, split: &str, n: usize, seed: u64) -> PathBuf {
    crate::common::digit_canvases(dir, split, n, seed).join("detect")
}

#[test]
fn detector_trains_evaluates_and_predicts() {
    let dir = temp_dir("detect-e2e");
    let data = canvases(&dir, "train", 40, 3);
    canvases(&dir, "test", 12, 4);
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, "val_fraction = 0.2\nneck_channels = 32\n[train]\nepochs = 2\nbatch = 8\n").unwrap();
    let out = dir.join("run");
    let (ok, log) = run(hitomi()
        .args(["detect", "train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .arg("--backbone-weights")
        .arg(repo().join("models/classify/mnist.safetensors")));
    assert!(ok, "{log}");
    assert!(log.contains("pyramid strides [4, 8, 16]") && log.contains("32 training images"), "{log}");
    for f in ["best.safetensors", "last.safetensors", "metrics.csv", "curves.png", "config.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(["map", "cls", "box", "ctr"].iter().all(|k| header.contains(k)), "{csv}");
    let steps = crate::common::step_log(&out);
    assert!(steps.iter().all(|s| s.1.is_finite()) && steps.len() == 8, "{steps:?}");

    let json = dir.join("eval/metrics.json");
    let coco = dir.join("coco");
    let (ok, log) = run(hitomi()
        .args(["detect", "eval", "--weights"])
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .args(["--split", "test", "--json"])
        .arg(&json)
        .arg("--coco-dir")
        .arg(&coco));
    assert!(ok, "{log}");
    assert!(log.contains("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]"), "{log}");
    let v: serde_json::Value = read_json(&json);
    assert_eq!((v["task"].as_str(), v["n_images"].as_u64()), (Some("detect"), Some(12)));
    let stats: Vec<f64> = v["stats"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(stats.len(), 12);
    assert_eq!([v["map"].as_f64().unwrap(), v["map50"].as_f64().unwrap(), v["map75"].as_f64().unwrap()], stats[..3]);
    assert!(json.parent().unwrap().join("pr_curve.png").exists());
    // The exported COCO files score the same through the stand-alone evaluator.
    let rescored = dir.join("rescored.json");
    let (ok, log) = run(hitomi()
        .args(["detect", "cocoeval", "--gt"])
        .arg(coco.join("gt.json"))
        .arg("--dt")
        .arg(coco.join("dt.json"))
        .arg("--json")
        .arg(&rescored));
    assert!(ok, "{log}");
    let r: serde_json::Value = read_json(&rescored);
    let again: Vec<f64> = r["stats"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(stats.iter().zip(&again).all(|(a, b)| (a - b).abs() < 1e-9), "{stats:?} vs {again:?}");

    // predict on a canvas and on an RGB photo of another size: boxes inside each image.
    let canvas = data.join("images/train/train_00000.png");
    let photo = repo().join("assets/samples/digits").read_dir().unwrap().next().unwrap().unwrap().path();
    let pred = dir.join("pred");
    let (ok, log) = run(hitomi()
        .args(["detect", "predict", "--weights"])
        .arg(&out)
        .arg("--out")
        .arg(&pred)
        .arg(&canvas)
        .arg(&photo));
    assert!(ok, "{log}");
    let preds: serde_json::Value = read_json(pred.join("predictions.json"));
    assert_eq!(preds.as_array().unwrap().len(), 2);
    for (p, src) in preds.as_array().unwrap().iter().zip([&canvas, &photo]) {
        let img = image::open(src).unwrap();
        assert!(Path::new(p["image"].as_str().unwrap()).exists());
        for b in p["boxes"].as_array().unwrap() {
            let xyxy: Vec<f64> = b["xyxy"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(xyxy[0] <= xyxy[2] && xyxy[1] <= xyxy[3] && xyxy[2] <= img.width() as f64 + 1e-3, "{b}");
            assert!(b["class"].as_str().is_some_and(|c| c.len() == 1) && b["score"].as_f64().unwrap() > 0.0, "{b}");
        }
    }
}

/// The shipped weights on canvases of digits they never saw (the bundled t10k digits).
#[test]
fn shipped_detector_scores_on_held_out_digits() {
    let dir = temp_dir("detect-shipped");
    let data = canvases(&dir, "test", 150, 11);
    let json = dir.join("eval.json");
    let (ok, log) = run(hitomi()
        .args(["detect", "eval", "--weights"])
        .arg(repo().join("models/detect/digits.safetensors"))
        .arg("--data")
        .arg(&data)
        .args(["--split", "test", "--json"])
        .arg(&json));
    assert!(ok, "{log}");
    let v: serde_json::Value = read_json(&json);
    let (map, map50) = (v["map"].as_f64().unwrap(), v["map50"].as_f64().unwrap());
    assert!(map >= SHIPPED_MIN_MAP && map50 >= SHIPPED_MIN_MAP50, "mAP {map}, mAP@.5 {map50}\n{log}");
}

/// Bad label rows are reported with file:line and the rule; a label file without an image too;
/// an image without labels is a background image and training on it stays finite.
#[test]
fn bad_yolo_labels_are_named() {
    let dir = temp_dir("detect-bad");
    let data = canvases(&dir, "train", 6, 5);
    let labels = data.join("labels/train");
    let good = std::fs::read_to_string(labels.join("train_00000.txt")).unwrap();
    let cases = [
        ("0 0.5 0.5 0.2", "4 columns"),
        ("0 0.5 0.5 0.2 zero", "not a number"),
        ("0 0.5 nan 0.2 0.2", "finite"),
        ("10 0.5 0.5 0.2 0.2", "10 names"),
        ("0 0.5 0.5 0.0 0.2", "positive width"),
        ("0 1.5 0.5 0.2 0.2", "[0, 1]"),
    ];
    for (row, expect) in cases {
        std::fs::write(labels.join("train_00001.txt"), format!("{good}{row}\n")).unwrap();
        let (ok, log) = run(hitomi().args(["detect", "train", "--data"]).arg(&data).arg("--out").arg(dir.join("x")));
        let line = good.lines().count() + 1;
        assert!(!ok && log.contains(&format!("train_00001.txt:{line}")) && log.contains(expect), "{row}: {log}");
    }
    std::fs::write(labels.join("train_00001.txt"), &good).unwrap();
    std::fs::write(labels.join("orphan.txt"), "0 0.5 0.5 0.2 0.2\n").unwrap();
    let (ok, log) = run(hitomi().args(["detect", "train", "--data"]).arg(&data).arg("--out").arg(dir.join("x")));
    assert!(!ok && log.contains("orphan.txt"), "{log}");
    std::fs::remove_file(labels.join("orphan.txt")).unwrap();
    // Background images: one label file emptied, one removed.
    std::fs::write(labels.join("train_00002.txt"), "").unwrap();
    std::fs::remove_file(labels.join("train_00003.txt")).unwrap();
    let out = dir.join("bg");
    let (ok, log) = run(hitomi()
        .args(["detect", "train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--epochs", "1", "--batch", "3"]));
    assert!(ok, "{log}");
    assert!(crate::common::step_log(&out).iter().all(|s| s.1.is_finite()));
}
/// The detection issue's targets; on these 150 canvases the shipped weights score mAP 0.832 and
/// mAP@.5 0.976 (0.841 / 0.981 on the 500 canvases of models/README.md).
const SHIPPED_MIN_MAP: f64 = 0.80;
const SHIPPED_MIN_MAP50: f64 = 0.97;
