//! Reproduces ../shared/reference/metrics/segmentation (torchvision's segmentation reference
//! ConfusionMatrix): the confusion matrix exactly, pixel accuracy, per-class accuracy and IoU, mIoU.

use hitomi_core::testing::{load_reference_json, reference_dir};
use hitomi_data::index_mask::read_index_mask;
use hitomi_segment::metrics::ConfusionMatrix;

#[test]
fn segmentation_metrics_match_torchvision_reference() {
    let spec = load_reference_json("metrics/segmentation/expected.json").unwrap();
    let dir = reference_dir().join("metrics/segmentation");
    let n = spec["num_classes"].as_u64().unwrap() as usize;
    let classes: Vec<String> = (0..n).map(|c| c.to_string()).collect();
    let cases = spec["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut cm = ConfusionMatrix::new(n);
        let images = case["images"].as_array().unwrap();
        for im in images {
            let t = read_index_mask(&dir.join(im["target"].as_str().unwrap())).unwrap();
            let p = read_index_mask(&dir.join(im["pred"].as_str().unwrap())).unwrap();
            assert_eq!((t.height, t.width), (p.height, p.width));
            cm.add(&t.ids, &p.ids);
        }
        let r = cm.report(&classes, images.len());
        let want: Vec<Vec<u64>> = serde_json::from_value(case["confusion_matrix"].clone()).unwrap();
        assert_eq!(r.confusion, want, "{name}: confusion matrix");
        assert_eq!(r.counted_pixels, case["counted_pixels"].as_u64().unwrap(), "{name}");
        let close = |what: &str, got: Option<f64>, exp: &serde_json::Value| match exp.as_f64() {
            Some(e) => assert!((got.unwrap() - e).abs() <= 1e-9, "{name} {what}: {got:?} vs {e}"),
            None => assert!(got.is_none(), "{name} {what}: {got:?} vs null"),
        };
        close("pixel_accuracy", Some(r.pixel_accuracy), &case["pixel_accuracy"]);
        close("mean_iou", Some(r.miou), &case["mean_iou"]);
        for c in 0..n {
            close(&format!("iou[{c}]"), r.iou_per_class[c], &case["per_class_iou"][c]);
            close(&format!("accuracy[{c}]"), r.accuracy_per_class[c], &case["per_class_accuracy"][c]);
        }
    }
}
