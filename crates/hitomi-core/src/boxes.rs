//! Axis-aligned boxes in xyxy pixels (x2, y2 exclusive edges, no +1 in areas): IoU, generalized
//! IoU, and non-maximum suppression with torchvision's rules.

/// A box (x1, y1, x2, y2).
pub type Xyxy = [f32; 4];

pub fn area(b: &Xyxy) -> f64 {
    ((b[2] - b[0]).max(0.0) as f64) * ((b[3] - b[1]).max(0.0) as f64)
}

fn intersection(a: &Xyxy, b: &Xyxy) -> f64 {
    let w = (a[2].min(b[2]) as f64 - a[0].max(b[0]) as f64).max(0.0);
    let h = (a[3].min(b[3]) as f64 - a[1].max(b[1]) as f64).max(0.0);
    w * h
}

/// Intersection over union (0 when the union is empty).
pub fn iou(a: &Xyxy, b: &Xyxy) -> f64 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// IoU - (area(C) - union) / area(C), C the smallest box enclosing both (Rezatofighi et al.).
pub fn generalized_iou(a: &Xyxy, b: &Xyxy) -> f64 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    let c = (a[2].max(b[2]) as f64 - a[0].min(b[0]) as f64) * (a[3].max(b[3]) as f64 - a[1].min(b[1]) as f64);
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    if c > 0.0 {
        iou - (c - union) / c
    } else {
        iou
    }
}

/// Pairwise matrix (N, M) of `f` between two box lists, row-major.
pub fn pairwise(a: &[Xyxy], b: &[Xyxy], f: fn(&Xyxy, &Xyxy) -> f64) -> Vec<f64> {
    a.iter().flat_map(|x| b.iter().map(move |y| f(x, y))).collect()
}

/// Indices of kept boxes, by decreasing score: a box is dropped when its IoU with a kept,
/// higher-scoring box exceeds `iou_threshold` (torchvision.ops.nms). Equal scores keep index order.
pub fn nms(boxes: &[Xyxy], scores: &[f32], iou_threshold: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| iou(&boxes[k], &boxes[i]) <= iou_threshold) {
            keep.push(i);
        }
    }
    keep
}

/// Class-wise NMS: boxes of different `classes` never suppress each other; the kept indices of all
/// classes together, by decreasing score (torchvision.ops.batched_nms).
pub fn batched_nms(boxes: &[Xyxy], scores: &[f32], classes: &[usize], iou_threshold: f64) -> Vec<usize> {
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &c) in classes.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut keep = Vec::new();
    for idx in by_class.values() {
        let b: Vec<Xyxy> = idx.iter().map(|&i| boxes[i]).collect();
        let s: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
        keep.extend(nms(&b, &s, iou_threshold).into_iter().map(|k| idx[k]));
    }
    keep.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{load_reference, load_reference_json};

    fn boxes(t: &candle_core::Tensor) -> Vec<Xyxy> {
        t.to_vec2::<f32>().unwrap().into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect()
    }

    /// Reproduces `reference/ops/boxes.*`: torchvision box_iou, generalized_box_iou (float64, abs
    /// 1e-5 in float32 terms), nms and batched_nms (indices exact, in order).
    #[test]
    fn boxes_match_torchvision() {
        let t = load_reference("ops/boxes.safetensors").unwrap();
        let cases = load_reference_json("ops/boxes.json").unwrap();
        let thr = |name: &str| {
            cases["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["params"]["iou_threshold"]
                .as_f64()
                .unwrap()
        };
        for (name, f) in [("box_iou", iou as fn(&Xyxy, &Xyxy) -> f64), ("generalized_box_iou", generalized_iou)] {
            let got = pairwise(&boxes(&t[&format!("{name}.boxes1")]), &boxes(&t[&format!("{name}.boxes2")]), f);
            let exp: Vec<f32> = t[&format!("{name}.output")].flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), exp.len());
            for (g, e) in got.iter().zip(&exp) {
                assert!((g - *e as f64).abs() <= 1e-5 * (e.abs() as f64).max(1.0), "{name}: {g} vs {e}");
            }
        }
        let keep: Vec<i64> = t["nms.keep"].to_vec1().unwrap();
        let scores: Vec<f32> = t["nms.scores"].to_vec1().unwrap();
        let got: Vec<i64> = nms(&boxes(&t["nms.boxes"]), &scores, thr("nms")).into_iter().map(|i| i as i64).collect();
        assert_eq!(got, keep);
        let keep: Vec<i64> = t["batched_nms.keep"].to_vec1().unwrap();
        let scores: Vec<f32> = t["batched_nms.scores"].to_vec1().unwrap();
        let classes: Vec<usize> =
            t["batched_nms.idxs"].to_vec1::<i64>().unwrap().into_iter().map(|c| c as usize).collect();
        let got: Vec<i64> = batched_nms(&boxes(&t["batched_nms.boxes"]), &scores, &classes, thr("batched_nms"))
            .into_iter()
            .map(|i| i as i64)
            .collect();
        assert_eq!(got, keep);
    }
}
