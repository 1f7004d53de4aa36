//! Golden values for PSNR and SSIM: reproduces every pair of
//! `tests/fixtures/reference/metrics/image_quality/expected.json`, computed there with
//! `skimage.metrics.peak_signal_noise_ratio` / `structural_similarity` (data_range 255, Gaussian
//! window sigma 1.5, population covariance) and an explicit float64 BasicSR `calculate_psnr` /
//! `calculate_ssim` (crop_border 0, RGB; the `_y` luma variants are not part of this API).

use std::path::{Path, PathBuf};

use hitomi_data::Planar;
use hitomi_restore::quality::{psnr, ssim};
use serde_json::Value;

/// Agreement asked of every golden value (they match to ~1e-12 in f64).
const REL_TOL: f64 = 1e-9;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/metrics/image_quality")
}

fn load(dir: &Path, file: &str, channels: usize) -> Planar {
    let path = dir.join(file);
    let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Planar::from_image(&img, channels).unwrap()
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn psnr_and_ssim_match_scikit_image_on_every_pair() {
    let dir = fixture_dir();
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    let json: Value = serde_json::from_str(&text).unwrap();
    let pairs = json["pairs"].as_array().expect("`pairs` array");
    assert!(!pairs.is_empty(), "expected.json lists no pairs");

    let mut checked = 0;
    let (mut max_psnr, mut max_ssim) = (0.0f64, 0.0f64);
    for pair in pairs {
        let name = pair["name"].as_str().unwrap();
        let channels = match pair["mode"].as_str().unwrap() {
            "RGB" => 3,
            "gray" => 1,
            m => panic!("{name}: unknown mode {m}"),
        };
        let reference = load(&dir, pair["ref"].as_str().unwrap(), channels);
        let test = load(&dir, pair["test"].as_str().unwrap(), channels);
        // shape is [H, W] or [H, W, C], as numpy reports it.
        let shape: Vec<usize> =
            pair["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!((reference.height, reference.width), (shape[0], shape[1]), "{name}: shape");
        assert_eq!(shape.get(2).copied().unwrap_or(1), channels, "{name}: channels");

        let p = psnr(&reference, &test).unwrap();
        let s = ssim(&reference, &test).unwrap();
        for (key, got) in [("skimage_psnr", p), ("basicsr_psnr", p), ("skimage_ssim", s), ("basicsr_ssim", s)] {
            let want = pair[key].as_f64().unwrap_or_else(|| panic!("{name}: no {key}"));
            let err = rel_err(got, want);
            println!("{name} {key}: got {got:.15} want {want:.15} rel err {err:.2e}");
            assert!(err < REL_TOL, "{name} {key}: got {got}, want {want} (rel err {err:e})");
            if key.starts_with("skimage") {
                if key.ends_with("psnr") {
                    max_psnr = max_psnr.max(err);
                } else {
                    max_ssim = max_ssim.max(err);
                }
            }
        }
        checked += 1;
    }
    println!("max rel err vs scikit-image: psnr {max_psnr:.2e}, ssim {max_ssim:.2e}");
    assert_eq!(checked, pairs.len(), "every pair in expected.json must be checked");
}
