//! Reproduces ../shared/reference/metrics/roc_auc.json (scikit-learn's roc_auc_score and
//! roc_curve with drop_intermediate=False), ties included.

use hitomi_anomaly::auroc::{roc_auc, roc_curve};
use hitomi_core::testing::load_reference_json;

#[test]
fn auroc_and_roc_curve_match_scikit_learn() {
    let spec = load_reference_json("metrics/roc_auc.json").unwrap();
    let cases = spec["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let labels: Vec<bool> = case["labels"].as_array().unwrap().iter().map(|v| v.as_i64() == Some(1)).collect();
        let scores: Vec<f64> = case["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let auc = roc_auc(&labels, &scores).unwrap();
        let want = case["roc_auc"].as_f64().unwrap();
        assert!((auc - want).abs() < 1e-12, "{name}: {auc} vs {want}");
        let c = roc_curve(&labels, &scores).unwrap();
        let roc = &case["roc_curve"];
        for (what, got) in [("fpr", &c.fpr), ("tpr", &c.tpr)] {
            let exp: Vec<f64> = roc[what].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(got.len(), exp.len(), "{name} {what} length");
            for (g, e) in got.iter().zip(&exp) {
                assert!((g - e).abs() < 1e-12, "{name} {what}: {g} vs {e}");
            }
        }
        let thr = roc["thresholds"].as_array().unwrap();
        assert!(thr[0].is_null() && c.thresholds[0].is_infinite());
        for (g, e) in c.thresholds.iter().zip(thr).skip(1) {
            assert_eq!(*g, e.as_f64().unwrap(), "{name} thresholds");
        }
    }
}
