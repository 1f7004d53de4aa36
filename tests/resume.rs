//! Kill a training process after a few steps, resume it, and compare the loss log with a run that
//! was never interrupted: every step's loss must be identical.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn killed_and_resumed_run_matches_a_straight_run() {
    let dir = temp_dir("resume");
    let data = dir.join("mnist");
    mnist_subset(&data, 400, 50);
    let cfg = tiny_config(&dir, 2, 16);
    let train = |out: &std::path::Path| {
        let mut c = train_cmd(&data, out, &cfg);
        c.args(["--save-every", "3"]);
        c
    };

    let straight = dir.join("straight");
    let (ok, log) = run(&mut train(&straight));
    assert!(ok, "{log}");
    let want = step_log(&straight);
    let total = 2 * (360 / 16);
    assert_eq!(want.len(), total);

    // Start the same run, kill -9 it once it has logged 7 steps (a checkpoint was written at 6).
    let killed = dir.join("killed");
    let mut child =
        train(&killed).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if step_log(&killed).len() >= 7 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "training ended before it could be killed");
        assert!(t0.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.try_wait().unwrap().is_none(), "training ended before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = step_log(&killed).len();
    assert!(at_kill < total, "killed after the end");

    let mut resume = train(&killed);
    resume.arg("--resume");
    let (ok, log) = run(&mut resume);
    assert!(ok, "{log}");
    assert!(log.contains("resuming"), "{log}");
    let got = step_log(&killed);
    assert_eq!(got.len(), want.len());
    for ((s1, l1), (s2, l2)) in got.iter().zip(&want) {
        assert_eq!(s1, s2);
        assert_eq!(l1, l2, "step {s1}: resumed loss {l1} != uninterrupted loss {l2}");
    }
    let m1 = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
    let m2 = std::fs::read_to_string(killed.join("metrics.csv")).unwrap();
    let strip = |s: &str| s.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect::<Vec<_>>();
    assert_eq!(strip(&m1), strip(&m2), "metrics differ (seconds column ignored)");
}

#[test]
fn resume_without_a_checkpoint_is_a_clear_error() {
    let dir = temp_dir("resume-none");
    let data = dir.join("mnist");
    mnist_subset(&data, 100, 10);
    let cfg = tiny_config(&dir, 1, 16);
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string(&hitomi_classify::ClassifyConfig::default()).unwrap(),
    )
    .unwrap();
    let (ok, log) = run(train_cmd(&data, &out, &cfg).arg("--resume"));
    assert!(!ok);
    assert!(log.contains("last.safetensors does not exist"), "{log}");
}

/// A loss that turns non-finite stops training with a clear message and leaves the existing
/// checkpoint byte for byte as it was.
#[test]
fn non_finite_loss_stops_without_touching_the_checkpoint() {
    let dir = temp_dir("nonfinite");
    let data = dir.join("mnist");
    mnist_subset(&data, 128, 10);
    let cfg = tiny_config(&dir, 1, 32);
    let out = dir.join("run");
    let (ok, log) = run(train_cmd(&data, &out, &cfg));
    assert!(ok, "{log}");
    let before = std::fs::read(out.join("last.safetensors")).unwrap();
    let (ok, log) = run(train_cmd(&data, &out, &cfg).args(["--lr", "1e38"]));
    assert!(!ok, "an exploding run must fail:\n{log}");
    assert!(log.contains("non-finite loss") && log.contains("left untouched"), "{log}");
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), before, "checkpoint changed");
}
