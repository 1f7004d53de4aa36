//! Bad input gives an error naming the file and what was expected, and changes nothing.

use std::path::Path;

use crate::common::*;

fn predict_err(weights: &Path, img: &Path) -> String {
    let (ok, log) = run(hitomi()
        .args(["classify", "predict", "--weights"])
        .arg(weights)
        .arg("--out")
        .arg(img.with_extension("out"))
        .arg(img));
    assert!(!ok, "predict should fail on {}", img.display());
    log
}

/// One tiny trained model shared by the checks below.
fn tiny_model(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("mnist");
    mnist_subset(&data, 64, 16);
    let cfg = tiny_config(dir, 1, 32);
    let out = dir.join("run");
    let (ok, log) = run(train_cmd(&data, &out, &cfg));
    assert!(ok, "{log}");
    out.join("best.safetensors")
}

#[test]
fn bad_images_weights_and_datasets_are_named() {
    let dir = temp_dir("bad");
    let weights = tiny_model(&dir);

    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let e = predict_err(&weights, &empty);
    assert!(e.contains("empty.png") && e.contains("empty file"), "{e}");

    let text = dir.join("notes.png");
    std::fs::write(&text, b"just some text, not pixels").unwrap();
    let e = predict_err(&weights, &text);
    assert!(e.contains("notes.png") && e.contains("not an image"), "{e}");

    let good = repo().join("assets/samples/digits/digit2_t10k0.png");
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("truncated.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = predict_err(&weights, &cut);
    assert!(e.contains("truncated.png") && e.contains("truncated"), "{e}");

    // A pickle file is refused before anything is read from it.
    let pt = dir.join("model.pt");
    std::fs::write(&pt, [0x80u8, 0x02, b'c', b'o', b's']).unwrap();
    let e = predict_err(&pt, &good);
    assert!(e.contains("model.pt") && e.contains("safetensors only"), "{e}");

    // Weights of another architecture: every mismatch listed, nothing loaded.
    let w = hitomi_core::checkpoint::read_weights(&weights).unwrap();
    let mut meta = w.metadata.clone();
    let mut cfg: serde_json::Value = serde_json::from_str(&meta["hitomi.config"]).unwrap();
    cfg["arch"] = "resnet18".into();
    meta.insert("hitomi.config".into(), cfg.to_string());
    let tensors: Vec<(String, candle_core::Tensor)> = w.tensors.clone().into_iter().collect();
    let other = dir.join("other-arch.safetensors");
    hitomi_core::checkpoint::write_weights(&other, &tensors, meta).unwrap();
    let e = predict_err(&other, &good);
    assert!(e.contains("other-arch.safetensors") && e.contains("nothing was loaded"), "{e}");
    assert!(e.contains("`conv1.weight` has shape [16, 1, 3, 3], expected [64, 1, 7, 7]"), "{e}");
    assert!(e.contains("missing tensor `layer1.1.conv1.weight`"), "{e}");

    // A weights file of another task.
    let mut meta = w.metadata.clone();
    meta.insert("hitomi.task".into(), "detect".into());
    let det = dir.join("detector.safetensors");
    hitomi_core::checkpoint::write_weights(&det, &tensors, meta).unwrap();
    let e = predict_err(&det, &good);
    assert!(e.contains("detector.safetensors") && e.contains("`detect` model"), "{e}");
}

#[test]
fn bad_datasets_are_named() {
    let dir = temp_dir("bad-data");
    let cfg = tiny_config(&dir, 1, 8);
    let train_err = |data: &Path| {
        let (ok, log) = run(train_cmd(data, dir.join("run"), &cfg));
        assert!(!ok, "training should fail on {}", data.display());
        log
    };

    // IDX with a wrong magic number.
    let m = dir.join("magic");
    mnist_subset(&m, 20, 5);
    let p = m.join("train-images-idx3-ubyte");
    let mut b = std::fs::read(&p).unwrap();
    b[3] = 0x01;
    std::fs::write(&p, &b).unwrap();
    let e = train_err(&m);
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("magic"), "{e}");

    // IDX whose header count does not match its bytes.
    let c = dir.join("count");
    mnist_subset(&c, 20, 5);
    let p = c.join("train-images-idx3-ubyte");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    let e = train_err(&c);
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");

    // ImageFolder with an empty class.
    let f = dir.join("folder");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(f.join("train").join(class)).unwrap();
    }
    image::GrayImage::new(8, 8).save(f.join("train/cat/a.png")).unwrap();
    let e = train_err(&f);
    assert!(e.contains("train/dog") && e.contains("hold no images"), "{e}");

    // Neither layout.
    let n = dir.join("nothing");
    std::fs::create_dir_all(&n).unwrap();
    let e = train_err(&n);
    assert!(e.contains("nothing") && e.contains("train-images-idx3-ubyte"), "{e}");
}
