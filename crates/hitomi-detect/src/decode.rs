//! Decoding the head's outputs into detections, as torchvision's FCOS `postprocess_detections`:
//! score = sqrt(sigmoid(class) x sigmoid(centerness)), a score threshold, the best `pre_nms_top_k`
//! candidates per level, boxes from the side distances clipped to the image, class-wise NMS and
//! the best `max_detections`.

use anyhow::Result;
use candle_core::Tensor;
use hitomi_core::boxes::{batched_nms, Xyxy};
use serde::Serialize;

use crate::assign::locations;
use crate::config::DetectConfig;
use crate::model::DetectorOutput;

/// One detection in pixels of the image it was decoded for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    pub xyxy: Xyxy,
    pub class: usize,
    pub score: f32,
}

/// out: outputs for B images of (height, width) input pixels -> each image's detections, by
/// decreasing score.
pub fn decode(out: &DetectorOutput, cfg: &DetectConfig, height: usize, width: usize) -> Result<Vec<Vec<Detection>>> {
    let (b, n, k) = out.cls.dims3()?;
    let p_cls = sigmoid(&out.cls)?;
    let p_ctr = sigmoid(&out.ctr)?;
    let ltrb: Vec<f32> = out.ltrb.flatten_all()?.to_vec1()?;
    let locs = locations(&out.grids);
    let (w, h) = (width as f32, height as f32);
    let mut all = Vec::with_capacity(b);
    for i in 0..b {
        let mut boxes: Vec<Xyxy> = Vec::new();
        let mut scores: Vec<f32> = Vec::new();
        let mut classes: Vec<usize> = Vec::new();
        let mut start = 0;
        for g in &out.grids {
            // (score, location, class) above the threshold on this level, best first.
            let mut cand: Vec<(f32, usize, usize)> = Vec::new();
            for j in start..start + g.len() {
                let c = p_ctr[i * n + j];
                for cl in 0..k {
                    let s = (p_cls[(i * n + j) * k + cl] * c).sqrt();
                    if s > cfg.score_threshold {
                        cand.push((s, j, cl));
                    }
                }
            }
            cand.sort_by(|a, b| b.0.total_cmp(&a.0));
            cand.truncate(cfg.pre_nms_top_k);
            for (s, j, cl) in cand {
                let d = &ltrb[(i * n + j) * 4..(i * n + j) * 4 + 4];
                let p = locs[j];
                boxes.push([
                    (p[0] - d[0]).clamp(0.0, w),
                    (p[1] - d[1]).clamp(0.0, h),
                    (p[0] + d[2]).clamp(0.0, w),
                    (p[1] + d[3]).clamp(0.0, h),
                ]);
                scores.push(s);
                classes.push(cl);
            }
            start += g.len();
        }
        let mut keep = batched_nms(&boxes, &scores, &classes, cfg.nms_iou);
        keep.truncate(cfg.max_detections);
        all.push(keep.into_iter().map(|q| Detection { xyxy: boxes[q], class: classes[q], score: scores[q] }).collect());
    }
    Ok(all)
}

/// Logistic sigmoid of every element, flattened: 1 / (1 + exp(-x)) (exp overflowing to inf
/// gives exactly 0, which is the right limit).
fn sigmoid(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect())
}

/// Scales detections from the model's (height, width) input to an image of (oh, ow) pixels.
pub fn rescale(dets: &[Detection], from: (usize, usize), to: (usize, usize)) -> Vec<Detection> {
    let sy = to.0 as f32 / from.0 as f32;
    let sx = to.1 as f32 / from.1 as f32;
    dets.iter()
        .map(|d| Detection { xyxy: [d.xyxy[0] * sx, d.xyxy[1] * sy, d.xyxy[2] * sx, d.xyxy[3] * sy], ..*d })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Grid;
    use candle_core::Device;

    /// One 2x2 level of stride 8, two classes; every location predicts distances `d`.
    fn output(cls: Vec<f32>, ctr: Vec<f32>, d: f32) -> DetectorOutput {
        let dev = Device::Cpu;
        DetectorOutput {
            cls: Tensor::from_vec(cls, (1, 4, 2), &dev).unwrap(),
            ltrb: Tensor::from_vec(vec![d; 16], (1, 4, 4), &dev).unwrap(),
            ctr: Tensor::from_vec(ctr, (1, 4), &dev).unwrap(),
            grids: vec![Grid { stride: 8, height: 2, width: 2 }],
        }
    }

    #[test]
    fn boxes_come_from_locations_and_nms_is_class_wise() {
        // Location 3 (centre (12, 12)) says class 1 strongly; location 2 (centre (4, 12)) says class
        // 1 less strongly (its box [0, 6, 10, 16] overlaps with IoU 40 / 160 = 0.25, suppressed at
        // 0.2) and class 0.
        let mut cls = vec![-10f32; 8];
        cls[3 * 2 + 1] = 5.0;
        cls[2 * 2 + 1] = 2.0;
        cls[2 * 2] = 1.0;
        let out = output(cls, vec![10.0; 4], 6.0);
        let cfg = DetectConfig { nms_iou: 0.2, ..DetectConfig::default() };
        let dets = decode(&out, &cfg, 16, 16).unwrap().remove(0);
        assert_eq!(dets.len(), 2, "{dets:?}");
        assert_eq!(dets[0].class, 1);
        // (12 - 6, 12 - 6, 12 + 6, 12 + 6) clipped to the 16x16 image.
        assert_eq!(dets[0].xyxy, [6.0, 6.0, 16.0, 16.0]);
        let p = 1.0 / (1.0 + (-5f32).exp());
        let c = 1.0 / (1.0 + (-10f32).exp());
        assert!((dets[0].score - (p * c).sqrt()).abs() < 1e-6);
        // Class 0 at location 2 survives: NMS never compares different classes.
        assert_eq!((dets[1].class, dets[1].xyxy), (0, [0.0, 6.0, 10.0, 16.0]));
        // A low centerness pulls every score under the threshold.
        let quiet = output(vec![-10.0; 8], vec![-10.0; 4], 6.0);
        assert!(decode(&quiet, &cfg, 16, 16).unwrap()[0].is_empty());
    }

    #[test]
    fn rescale_maps_model_pixels_to_file_pixels() {
        let d = Detection { xyxy: [10.0, 20.0, 30.0, 40.0], class: 2, score: 0.5 };
        let r = rescale(&[d], (96, 96), (192, 48));
        assert_eq!(r[0].xyxy, [5.0, 40.0, 15.0, 80.0]);
    }
}
