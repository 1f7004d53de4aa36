//! Restoration end to end: train on crops of the bundled photos with noise synthesised on the fly,
//! eval against the classical filters (JSON), predict (restored PNG + side-by-side), paired-folder
//! errors, and the shipped denoiser on its held-out photo.

use std::path::{Path, PathBuf};

use crate::common::{hitomi, read_json, repo, run, temp_dir};

/// Writes 96x96 centre crops of three bundled photos (camera is grey) into `dir`.
fn photo_crops(dir: &Path) -> PathBuf {
    let out = dir.join("photos");
    std::fs::create_dir_all(&out).unwrap();
    for name in ["astronaut.png", "camera.png", "coffee.png"] {
        let img = image::open(repo().join("assets/photos").join(name)).unwrap();
        let (w, h) = (img.width(), img.height());
        img.crop_imm((w - 96) / 2, (h - 96) / 2, 96, 96).save(out.join(name)).unwrap();
    }
    out
}

#[test]
fn restorer_trains_evaluates_against_filters_and_predicts() {
    let dir = temp_dir("restore-e2e");
    let data = photo_crops(&dir);
    let cfg = dir.join("tiny.toml");
    std::fs::write(
        &cfg,
        "distortion = \"noise:25\"\nholdout = \"coffee.png\"\nwidth = 8\nlevels = 2\npatch = 32\n\
         patches_per_epoch = 32\ntile = 64\n[train]\nepochs = 2\nbatch = 8\nlr = 1e-3\n\
         optimizer = { kind = \"adamw\", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }\n",
    )
    .unwrap();
    let out = dir.join("run");
    let (ok, log) =
        run(hitomi().args(["restore", "train", "--data"]).arg(&data).arg("--out").arg(&out).arg("--config").arg(&cfg));
    assert!(ok, "{log}");
    assert!(log.contains("validating on coffee.png"), "{log}");
    for f in ["best.safetensors", "last.safetensors", "metrics.csv", "config.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(metrics.lines().next().unwrap().contains("psnr"), "{metrics}");

    let eval_json = dir.join("eval/eval.json");
    let (ok, log) = run(hitomi()
        .args(["restore", "eval", "--weights"])
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .arg("--json")
        .arg(&eval_json));
    assert!(ok, "{log}");
    let v = read_json(&eval_json);
    assert_eq!((v["task"].as_str(), v["n"].as_u64()), (Some("restore"), Some(1)));
    // sigma 25 on 0..255 gives about 20.2 dB (a little more where 0/255 clip the noise).
    let input = v["psnr_input"].as_f64().unwrap();
    assert!((19.5..22.5).contains(&input), "input PSNR {input}");
    let baselines = v["baselines"].as_object().unwrap();
    for name in ["gaussian", "median", "bilateral", "nl_means"] {
        let p = baselines[name].as_f64().unwrap_or_else(|| panic!("{name} missing: {v}"));
        assert!(p > input + 2.0, "{name}: {p} dB does not improve on the noisy input {input}");
    }
    for k in ["psnr", "ssim", "ssim_input"] {
        assert!(v[k].as_f64().unwrap().is_finite(), "{k}: {v}");
    }
    assert!(dir.join("eval/compare_coffee.png").exists());

    // Predict on a grey and a colour image, distorting them first: files keep size and colour.
    let pred = dir.join("pred");
    let (ok, log) = run(hitomi()
        .args(["restore", "predict", "--weights"])
        .arg(&out)
        .arg("--out")
        .arg(&pred)
        .args(["--distort", "noise:25"])
        .arg(data.join("camera.png"))
        .arg(data.join("astronaut.png")));
    assert!(ok, "{log}");
    let preds = read_json(pred.join("predictions.json"));
    assert_eq!(preds.as_array().unwrap().len(), 2);
    let grey = image::open(pred.join("camera_restored.png")).unwrap();
    assert_eq!((grey.width(), grey.height(), grey.color().has_color()), (96, 96, false));
    let colour = image::open(pred.join("astronaut_restored.png")).unwrap();
    assert!(colour.color().has_color());
    let sbs = image::open(pred.join("astronaut_side_by_side.png")).unwrap();
    assert_eq!((sbs.width(), sbs.height()), (96 * 2 + 4, 96));
    assert!(preds[1]["psnr_input"].as_f64().unwrap() < 23.0);
}

#[test]
fn bad_restoration_input_names_files_and_specs() {
    let dir = temp_dir("restore-bad");
    let data = dir.join("pairs");
    for sub in ["lq", "gt"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let grey = |w, h| image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([90])));
    grey(64, 64).save(data.join("lq/a.png")).unwrap();
    grey(64, 64).save(data.join("gt/a.png")).unwrap();
    grey(64, 64).save(data.join("lq/only_lq.png")).unwrap();
    grey(64, 64).save(data.join("lq/sized.png")).unwrap();
    grey(64, 48).save(data.join("gt/sized.png")).unwrap();
    std::fs::write(data.join("gt/broken.png"), b"not a png").unwrap();
    std::fs::copy(data.join("gt/broken.png"), data.join("lq/broken.png")).unwrap();
    let out = dir.join("run");
    let (ok, log) = run(hitomi().args(["restore", "train", "--data"]).arg(&data).arg("--out").arg(&out));
    assert!(!ok, "{log}");
    for needle in [
        "lq/only_lq.png: no partner",
        "gt/only_lq.png",
        "lq/sized.png is 64x64 but",
        "gt/sized.png is 64x48",
        "gt/broken.png",
        "lq/broken.png",
    ] {
        assert!(log.contains(needle), "{needle} missing:\n{log}");
    }
    let (ok, log) = run(hitomi()
        .args(["restore", "train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--distortion", "noise:25+blurr:2"]));
    assert!(!ok && log.contains("blurr:2") && log.contains("noise:SIGMA"), "{log}");
    let (ok, log) = run(hitomi()
        .args(["data", "distort", "--image"])
        .arg(data.join("gt/broken.png"))
        .args(["--spec", "rain", "--out"])
        .arg(dir.join("sheet")));
    assert!(!ok && log.contains("gt/broken.png"), "{log}");
}

/// The shipped denoiser on the photo it never trained on (astronaut.png, noise sigma 25 from the
/// fixed evaluation stream): models/README.md records 30.36 dB in one pass and 30.73 dB with the x8
/// self-ensemble, against 29.52 for the best tuned classical filter (NL-means) and 20.86 for the
/// input; the restoration issue asks for 1 dB over the best filter.
#[test]
fn shipped_denoiser_beats_every_classical_filter_on_the_held_out_photo() {
    let dir = temp_dir("restore-shipped");
    let json_path = dir.join("eval.json");
    let (ok, log) = run(hitomi()
        .args(["restore", "eval", "--weights"])
        .arg(repo().join("models/restore/denoise-sigma25.safetensors"))
        .arg("--data")
        .arg(repo().join("assets/photos"))
        .args(["--split", "val", "--json"])
        .arg(&json_path));
    assert!(ok, "{log}");
    let v = read_json(&json_path);
    assert_eq!(v["per_image"][0]["file"].as_str(), Some("astronaut.png"), "{v}");
    let psnr = v["psnr"].as_f64().unwrap();
    let best = v["baselines"].as_object().unwrap().values().map(|p| p.as_f64().unwrap()).fold(f64::MIN, f64::max);
    assert!(psnr >= 30.2 && psnr > best + 0.7, "restorer {psnr} dB, best filter {best} dB\n{log}");
    assert!(v["ssim"].as_f64().unwrap() > v["baselines_ssim"]["nl_means"].as_f64().unwrap());

    let ens_path = dir.join("ensemble.json");
    let (ok, log) = run(hitomi()
        .args(["restore", "eval", "--weights"])
        .arg(repo().join("models/restore/denoise-sigma25.safetensors"))
        .arg("--data")
        .arg(repo().join("assets/photos"))
        .args(["--split", "val", "--no-baselines", "--self-ensemble", "--json"])
        .arg(&ens_path));
    assert!(ok, "{log}");
    let e = read_json(&ens_path);
    let ens = e["psnr"].as_f64().unwrap();
    assert!(
        ens > psnr && ens >= best + 1.0,
        "self-ensemble {ens} dB, one pass {psnr} dB, best filter {best} dB\n{log}"
    );
}
