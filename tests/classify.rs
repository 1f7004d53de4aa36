//! End to end: train a tiny classifier on real digits, evaluate it, predict on sample images.

use crate::common::*;

#[test]
fn train_eval_predict_on_real_digits() {
    let dir = temp_dir("classify");
    let data = dir.join("mnist");
    mnist_subset(&data, 600, 200);
    let cfg = tiny_config(&dir, 3, 32);
    let run_dir = dir.join("run");
    let (ok, log) = run(train_cmd(&data, &run_dir, &cfg));
    assert!(ok, "train failed:\n{log}");
    for f in
        ["config.json", "last.safetensors", "best.safetensors", "state.json", "metrics.csv", "curves.png", "steps.csv"]
    {
        assert!(run_dir.join(f).exists(), "missing {f} in the run folder");
    }
    // It learns: the mean loss of the last epoch is well below that of the first steps.
    let losses = step_log(&run_dir);
    assert_eq!(losses.len(), 3 * (540 / 32));
    let first: f64 = losses[..5].iter().map(|r| r.1).sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().map(|r| r.1).sum::<f64>() / 5.0;
    // (label smoothing 0.1 keeps the loss of a perfect model near 0.5; chance is ln 10 = 2.30)
    assert!(last < 0.8 * first, "loss did not fall: first {first:.3}, last {last:.3}");
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");

    let json = dir.join("eval.json");
    let (ok, log) = run(hitomi()
        .args(["classify", "eval", "--weights"])
        .arg(&run_dir)
        .arg("--data")
        .arg(&data)
        .args(["--split", "test", "--json"])
        .arg(&json));
    assert!(ok, "eval failed:\n{log}");
    assert!(log.contains("top-1"), "{log}");
    let v: serde_json::Value = read_json(&json);
    assert_eq!(v["task"], "classify");
    assert_eq!(v["n"], 200);
    let top1 = v["top1"].as_f64().unwrap();
    assert!(top1 > 0.6 && top1 <= 1.0, "top1 {top1} after a tiny run on 540 digits");
    assert!(v["top5"].as_f64().unwrap() >= top1);
    assert_eq!(v["per_class_accuracy"].as_array().unwrap().len(), 10);
    let conf = v["confusion"].as_array().unwrap();
    let total: u64 = conf.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap())).sum();
    assert_eq!(total, 200);
    assert!(dir.join("confusion.png").exists());

    let pred = dir.join("pred");
    let samples = repo().join("assets/samples/digits");
    let mut imgs: Vec<_> = std::fs::read_dir(&samples).unwrap().map(|e| e.unwrap().path()).collect();
    imgs.sort();
    let (ok, log) = run(hitomi()
        .args(["classify", "predict", "--weights"])
        .arg(run_dir.join("best.safetensors"))
        .arg("--out")
        .arg(&pred)
        .args(&imgs));
    assert!(ok, "predict failed:\n{log}");
    let v: serde_json::Value = read_json(pred.join("predictions.json"));
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), imgs.len());
    for p in arr {
        let top5 = p["top5"].as_array().unwrap();
        assert_eq!(top5.len(), 5);
        let probs: Vec<f64> = top5.iter().map(|c| c["probability"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "top-5 not sorted: {probs:?}");
        assert!(probs.iter().sum::<f64>() <= 1.0 + 1e-5);
    }
    let pngs = std::fs::read_dir(&pred)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(pngs, imgs.len());
    // The tiny model already reads most of the clean sample digits (file names carry the truth).
    let right = arr
        .iter()
        .filter(|p| {
            let f = p["file"].as_str().unwrap();
            let truth = f.rsplit('/').next().unwrap().chars().nth(5).unwrap().to_string();
            p["top5"][0]["class"] == truth.as_str()
        })
        .count();
    assert!(right >= 6, "only {right}/10 sample digits right:\n{log}");
}

#[test]
fn backbone_transfer_reports_what_moved() {
    let dir = temp_dir("transfer");
    let data = dir.join("mnist");
    mnist_subset(&data, 200, 50);
    let cfg = tiny_config(&dir, 1, 32);
    let a = dir.join("a");
    let (ok, log) = run(train_cmd(&data, &a, &cfg));
    assert!(ok, "{log}");
    let b = dir.join("b");
    let (ok, log) = run(train_cmd(&data, &b, &cfg).arg("--backbone-weights").arg(a.join("best.safetensors")));
    assert!(ok, "{log}");
    // small ResNet: stem conv + bn (1 + 4) + 4 basic blocks (2 + 2 * 4 each) + 3 projections (1 + 4 each) = 60:
    // every backbone tensor moves; the head (fc) is skipped.
    assert!(log.contains("transferred 60 tensors"), "{log}");
    assert!(log.contains("skipped fc.weight: not a backbone tensor"), "{log}");

    // A torchvision resnet18 into a 1-channel small ResNet: nothing fits by shape -> clear error.
    let tv = repo().join("tests/fixtures/reference/resnet18/weights.safetensors");
    let (ok, log) = run(train_cmd(&data, dir.join("c"), &cfg).arg("--backbone-weights").arg(&tv));
    assert!(!ok);
    assert!(log.contains("weights.safetensors") && log.contains("no backbone tensor matched"), "{log}");
}

/// The shipped weights reach top-1 >= 99% on the bundled t10k digits, from a folder that holds
/// only the t10k files (gzip).
#[test]
fn shipped_mnist_weights_score_99_on_t10k_only_folder() {
    let dir = temp_dir("shipped");
    let data = dir.join("t10k-only");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(repo().join("assets/mnist").join(f), data.join(f)).unwrap();
    }
    let json = dir.join("eval.json");
    let (ok, log) = run(hitomi()
        .args(["classify", "eval", "--weights"])
        .arg(repo().join("models/classify/mnist.safetensors"))
        .arg("--data")
        .arg(&data)
        .args(["--split", "test", "--json"])
        .arg(&json));
    assert!(ok, "{log}");
    let v: serde_json::Value = read_json(&json);
    assert_eq!(v["n"], 1000);
    assert!(v["top1"].as_f64().unwrap() >= 0.99, "{log}");
}

/// FGSM and PGD against the shipped model on real digits: perturbations stay in the eps ball,
/// accuracy falls as eps grows, PGD is at least as strong as FGSM, files and JSON are written.
#[test]
fn fgsm_and_pgd_attacks_on_the_shipped_model() {
    let dir = temp_dir("attack");
    let attack = |method: &str, json: &std::path::Path| {
        let (ok, log) = run(hitomi()
            .args(["classify", "attack", "--weights"])
            .arg(repo().join("models/classify/mnist.safetensors"))
            .arg("--data")
            .arg(repo().join("assets/mnist"))
            .args([
                "--split",
                "test",
                "--method",
                method,
                "--eps",
                "0.05,0.15,0.3",
                "--steps",
                "5",
                "--limit",
                "100",
                "--json",
            ])
            .arg(json)
            .arg("--out")
            .arg(dir.join(method)));
        assert!(ok, "{log}");
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(json).unwrap()).unwrap()
    };
    let f = attack("fgsm", &dir.join("fgsm.json"));
    let p = attack("pgd", &dir.join("pgd.json"));
    for v in [&f, &p] {
        assert_eq!(v["task"], "attack");
        assert_eq!(v["n"], 100);
        let eps: Vec<f64> = v["eps"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let acc: Vec<f64> = v["accuracy"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let linf: Vec<f64> = v["max_linf"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        for (e, d) in eps.iter().zip(&linf) {
            assert!(*d <= e + 1e-6, "perturbation {d} outside the eps {e} ball");
        }
        assert!(v["clean"].as_f64().unwrap() >= 0.97);
        assert!(acc[2] < acc[0] && acc[0] <= v["clean"].as_f64().unwrap() + 1e-9, "{acc:?}");
    }
    assert_eq!(f["method"], "fgsm");
    let (fa, pa) = (f["accuracy"][1].as_f64().unwrap(), p["accuracy"][1].as_f64().unwrap());
    assert!(pa <= fa + 0.02, "PGD ({pa}) weaker than FGSM ({fa})");
    for m in ["fgsm", "pgd"] {
        assert!(dir.join(m).join("robustness.png").exists());
        assert!(dir.join(m).join("panel.png").exists());
    }
}

/// The shipped adversarially trained model keeps its accuracy under FGSM at eps 0.25 where the
/// standard one collapses (first 200 t10k digits).
#[test]
fn shipped_adversarial_weights_resist_fgsm() {
    let dir = temp_dir("adv-shipped");
    let fgsm = |model: &str| {
        let json = dir.join(format!("{model}.json"));
        let (ok, log) = run(hitomi()
            .args(["classify", "attack", "--weights"])
            .arg(repo().join(format!("models/classify/{model}.safetensors")))
            .arg("--data")
            .arg(repo().join("assets/mnist"))
            .args(["--method", "fgsm", "--eps", "0.25", "--limit", "200", "--json"])
            .arg(&json));
        assert!(ok, "{log}");
        let v: serde_json::Value = read_json(&json);
        (v["clean"].as_f64().unwrap(), v["accuracy"][0].as_f64().unwrap())
    };
    let (clean, attacked) = fgsm("mnist");
    assert!(clean >= 0.98 && attacked < 0.2, "standard model: clean {clean}, FGSM {attacked}");
    let (clean, attacked) = fgsm("mnist-adv");
    assert!(clean >= 0.98 && attacked >= 0.85, "adversarial model: clean {clean}, FGSM {attacked}");
}

/// `hitomi data canvases` writes the YOLO and mask datasets over the same images.
#[test]
fn digit_canvases_in_yolo_and_mask_layouts() {
    let dir = temp_dir("canvases");
    let out = dir.join("canvases");
    let (ok, log) = run(hitomi()
        .args(["data", "canvases", "--digits"])
        .arg(repo().join("assets/mnist"))
        .args(["--split", "test", "--n", "20", "--seed", "3", "--out"])
        .arg(&out));
    assert!(ok, "{log}");
    let yaml = std::fs::read_to_string(out.join("detect/data.yaml")).unwrap();
    assert!(yaml.contains("names: [\"0\", \"1\"") && yaml.contains("val: images/test"), "{yaml}");
    assert!(std::fs::read_to_string(out.join("segment/data.yaml")).unwrap().contains("names: [background, \"0\""));
    for i in 0..20 {
        let stem = format!("test_{i:05}");
        let img = image::open(out.join(format!("detect/images/test/{stem}.png"))).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (96, 96));
        let mask = image::open(out.join(format!("segment/masks/test/{stem}.png"))).unwrap().to_luma8();
        assert!(mask.pixels().all(|p| p.0[0] <= 10));
        let labels = std::fs::read_to_string(out.join(format!("detect/labels/test/{stem}.txt"))).unwrap();
        for line in labels.lines() {
            let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
            assert_eq!(f.len(), 5);
            assert!(f[0] < 10.0 && f[1..].iter().all(|&v| v > 0.0 && v <= 1.0), "{line}");
            // Every box holds pixels of its digit: the brightest pixel inside is a digit pixel.
            let (cx, cy, w, h) = (f[1] * 96.0, f[2] * 96.0, f[3] * 96.0, f[4] * 96.0);
            let mut max = 0u8;
            for y in (cy - h / 2.0).round() as u32..(cy + h / 2.0).round() as u32 {
                for x in (cx - w / 2.0).round() as u32..(cx + w / 2.0).round() as u32 {
                    max = max.max(img.get_pixel(x, y).0[0]);
                }
            }
            assert!(max >= 64, "box {line} holds no digit");
        }
    }
    let (ok, log) = run(hitomi()
        .args(["data", "canvases", "--digits"])
        .arg(repo().join("assets/mnist"))
        .args(["--split", "val", "--n", "1", "--out"])
        .arg(&out));
    assert!(!ok && log.contains("expected train or test"), "{log}");
}

/// `hitomi detect cocoeval` prints pycocotools' 12 lines and writes the stats as JSON.
#[test]
fn cocoeval_command_reproduces_pycocotools() {
    let dir = temp_dir("cocoeval");
    let case = repo().join("tests/fixtures/reference/coco/messy");
    let json = dir.join("stats.json");
    let (ok, log) = run(hitomi()
        .args(["detect", "cocoeval", "--gt"])
        .arg(case.join("gt.json"))
        .arg("--dt")
        .arg(case.join("dt.json"))
        .arg("--json")
        .arg(&json));
    assert!(ok, "{log}");
    assert!(log.contains(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.313"), "{log}");
    let got: serde_json::Value = read_json(&json);
    let exp: serde_json::Value = read_json(case.join("expected.json"));
    for i in 0..12 {
        let (g, e) = (got["stats"][i].as_f64().unwrap(), exp["stats"][i].as_f64().unwrap());
        assert!((g - e).abs() <= 1e-6, "stat {i}: {g} vs {e}");
    }
}
