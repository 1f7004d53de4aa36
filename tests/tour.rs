//! The README's main command, `hitomi tour`, as a smoke run: every task a few steps, the report
//! and the summary written with a figure for every task.

use crate::common::{hitomi, read_json, repo, run, temp_dir};

#[test]
fn tour_runs_every_task_and_writes_the_report() {
    let out = temp_dir("tour").join("tour");
    let (ok, log) =
        run(hitomi().current_dir(repo()).args(["tour", "--epochs", "1", "--max-steps", "3", "--out"]).arg(&out));
    assert!(ok, "{log}");
    let summary: serde_json::Value = read_json(out.join("summary.json"));
    let tasks = summary["tasks"].as_object().unwrap();
    for task in ["classify", "attack", "segment", "detect", "restore", "anomaly"] {
        assert!(tasks.contains_key(task), "{task} missing from {summary}");
    }
    assert!((0.0..=1.0).contains(&tasks["classify"]["test_top1"].as_f64().unwrap()));
    assert!((0.0..=1.0).contains(&tasks["segment"]["test_miou"].as_f64().unwrap()));
    assert!((-1.0..=1.0).contains(&tasks["detect"]["test_map"].as_f64().unwrap()));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for row in ["| classify |", "| attack |", "| segment |", "| detect |", "| restore |", "| anomaly |"] {
        assert!(report.contains(row), "{row} missing:\n{report}");
    }
    assert!(tasks["restore"]["psnr_input"].as_f64().unwrap() > 15.0);
    for f in [
        "classify/confusion.png",
        "segment/confusion.png",
        "segment/predict/predictions.json",
        "detect/pr_curve.png",
        "detect/coco/dt.json",
        "detect/predict/predictions.json",
        "restore/eval.json",
        "restore/compare_astronaut.png",
        "restore/predict/camera_side_by_side.png",
        "anomaly/roc.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}
