//! Golden tests: the 12 `COCOeval(..., 'bbox').stats` and per-category AP of pycocotools on the
//! reference cases in `tests/fixtures/reference/coco/` (see that folder's README, section coco/).

use std::path::PathBuf;

use hitomi_detect::coco::{evaluate, read_detections, CocoGt, STAT_NAMES};

const TOL: f64 = 1e-6;

fn case_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/coco").join(case)
}

/// Returns the largest absolute error over stats and per-category AP.
fn check_case(case: &str) -> f64 {
    let dir = case_dir(case);
    let gt = CocoGt::from_path(&dir.join("gt.json")).unwrap();
    let dt = read_detections(&dir.join("dt.json")).unwrap();
    let got = evaluate(&gt, &dt).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();

    let mut max_err = 0.0f64;
    let want: Vec<f64> =
        expected["stats"].as_array().expect("expected.json: `stats`").iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(want.len(), 12, "{case}: expected.json has 12 stats");
    for (i, (&g, &w)) in got.stats.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        max_err = max_err.max(err);
        assert!(err <= TOL, "{case}: {} got {g} want {w}", STAT_NAMES[i]);
    }
    if let Some(per_cat) = expected["per_category_AP"].as_object() {
        assert_eq!(per_cat.len(), got.per_category_ap.len(), "{case}: number of categories");
        for (id, ap) in &got.per_category_ap {
            let w = per_cat[&id.to_string()].as_f64().unwrap();
            let err = (ap - w).abs();
            max_err = max_err.max(err);
            assert!(err <= TOL, "{case}: category {id} AP got {ap} want {w}");
        }
    }
    eprintln!("{case}: stats {:?} max abs err {max_err:e}", got.stats);
    max_err
}

#[test]
fn easy_matches_pycocotools() {
    check_case("easy");
}

#[test]
fn messy_matches_pycocotools() {
    check_case("messy");
}

#[test]
fn empty_category_matches_pycocotools() {
    check_case("empty_category");
}

#[test]
fn crowd_matches_pycocotools() {
    check_case("crowd");
}
