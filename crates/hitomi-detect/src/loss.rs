//! The FCOS loss with named parts, each normalised by the number of positive locations (as
//! torchvision's `FCOSHead.compute_loss`): sigmoid focal classification over all locations and
//! classes, GIoU of the decoded boxes and binary cross-entropy of centerness on the positives.

use anyhow::Result;
use candle_core::Tensor;
use hitomi_data::detection::DetBox;
use hitomi_nn::losses::{bce_with_logits, giou_loss, sigmoid_focal_loss, Reduction};

use crate::assign::{assign, centerness, locations, ltrb};
use crate::config::DetectConfig;
use crate::model::DetectorOutput;

/// The loss of one batch: the total and its parts.
pub struct DetectLoss {
    pub total: Tensor,
    /// ("cls", ..), ("box", ..), ("ctr", ..).
    pub parts: Vec<(String, f64)>,
}

/// out: the detector's outputs for B images; gts: each image's boxes in input pixels.
pub fn fcos_loss(out: &DetectorOutput, gts: &[Vec<DetBox>], cfg: &DetectConfig) -> Result<DetectLoss> {
    let (b, n, k) = out.cls.dims3()?;
    anyhow::ensure!(gts.len() == b, "loss: {} box lists for a batch of {b}", gts.len());
    let locs = locations(&out.grids);
    let mut cls_target = vec![0f32; b * n * k];
    let (mut pos_index, mut pos_loc, mut pos_box, mut pos_ctr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, gt) in gts.iter().enumerate() {
        for (j, m) in assign(&out.grids, gt, cfg.range_factor, cfg.center_radius).into_iter().enumerate() {
            let Some(g) = m else { continue };
            let bx = &gt[g];
            anyhow::ensure!(bx.class < k, "loss: box class {} but the head has {k} classes", bx.class);
            let flat = i * n + j;
            cls_target[flat * k + bx.class] = 1.0;
            pos_index.push(flat as u32);
            let p = locs[j];
            pos_loc.extend_from_slice(&[p[0], p[1], p[0], p[1]]);
            pos_box.extend_from_slice(&bx.xyxy);
            pos_ctr.push(centerness(ltrb(p, &bx.xyxy)));
        }
    }
    let dev = out.cls.device();
    let positives = pos_index.len();
    let norm = positives.max(1) as f64;
    let cls_target = Tensor::from_vec(cls_target, (b, n, k), dev)?;
    let cls = (sigmoid_focal_loss(&out.cls, &cls_target, cfg.focal_alpha, cfg.focal_gamma, Reduction::Sum)? / norm)?;
    let mut total = cls.clone();
    let mut parts = vec![("cls".to_string(), cls.to_scalar::<f32>()? as f64)];
    let (mut box_value, mut ctr_value) = (0.0, 0.0);
    if positives > 0 {
        let idx = Tensor::from_vec(pos_index, positives, dev)?;
        let ltrb_pos = out.ltrb.reshape((b * n, 4))?.index_select(&idx, 0)?;
        let sign = Tensor::new(&[-1f32, -1.0, 1.0, 1.0], dev)?.reshape((1, 4))?;
        let loc = Tensor::from_vec(pos_loc, (positives, 4), dev)?;
        let pred = (loc + ltrb_pos.broadcast_mul(&sign)?)?;
        let target = Tensor::from_vec(pos_box, (positives, 4), dev)?;
        let giou = (giou_loss(&pred, &target, Reduction::Sum)? / norm)?;
        let ctr_logits = out.ctr.reshape(b * n)?.index_select(&idx, 0)?;
        let ctr_target = Tensor::from_vec(pos_ctr, positives, dev)?;
        let ctr = (bce_with_logits(&ctr_logits, &ctr_target, Reduction::Sum)? / norm)?;
        box_value = giou.to_scalar::<f32>()? as f64;
        ctr_value = ctr.to_scalar::<f32>()? as f64;
        total = ((total + giou)? + ctr)?;
    }
    parts.push(("box".into(), box_value));
    parts.push(("ctr".into(), ctr_value));
    Ok(DetectLoss { total, parts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Detector, Grid};
    use candle_core::{DType, Device};
    use hitomi_core::ParamStore;

    #[test]
    fn perfect_boxes_cost_nothing_and_background_images_keep_the_loss_finite() {
        let dev = Device::Cpu;
        let cfg = DetectConfig::default();
        let grids = vec![Grid { stride: 8, height: 4, width: 4 }];
        let gt = DetBox { xyxy: [4.0, 6.0, 20.0, 22.0], class: 1 };
        // Distances that decode exactly to the box at every location.
        let locs = locations(&grids);
        let ltrb_v: Vec<f32> = locs.iter().flat_map(|&p| ltrb(p, &gt.xyxy)).collect();
        let out = DetectorOutput {
            cls: Tensor::zeros((2, 16, 3), DType::F32, &dev).unwrap(),
            ltrb: Tensor::from_vec([ltrb_v.clone(), ltrb_v].concat(), (2, 16, 4), &dev).unwrap(),
            ctr: Tensor::zeros((2, 16), DType::F32, &dev).unwrap(),
            grids,
        };
        let l = fcos_loss(&out, &[vec![gt], vec![]], &cfg).unwrap();
        let part = |n: &str| l.parts.iter().find(|p| p.0 == n).unwrap().1;
        assert!(part("box").abs() < 1e-5, "{:?}", l.parts);
        assert!(part("cls") > 0.0 && part("ctr") > 0.0);
        // Only background: the classification part alone, finite.
        let bg = fcos_loss(&out, &[vec![], vec![]], &cfg).unwrap();
        assert!(bg.total.to_scalar::<f32>().unwrap().is_finite());
        assert!(bg.parts.iter().any(|p| p.0 == "box" && p.1 == 0.0), "{:?}", bg.parts);
    }

    /// The whole model: the loss backpropagates to every trainable tensor and falls when a
    /// single batch is fitted for a few steps.
    #[test]
    fn a_tiny_detector_fits_one_batch() {
        let dev = Device::Cpu;
        let cfg = DetectConfig { neck_channels: 16, head_convs: 1, ..DetectConfig::default() };
        let store = ParamStore::new(0, &dev);
        let model = Detector::new(&store, &DetectConfig { image_size: [32, 32], ..cfg.clone() }, 3).unwrap();
        let xs = Tensor::rand(0f32, 1.0, (2, 1, 32, 32), &dev).unwrap();
        let gts = vec![vec![DetBox { xyxy: [4.0, 4.0, 20.0, 18.0], class: 2 }], vec![]];
        let vars: Vec<candle_core::Var> = store.trainable().into_iter().map(|(_, v, _)| v).collect();
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..12 {
            let out = model.forward(&xs, true).unwrap();
            let l = fcos_loss(&out, &gts, &cfg).unwrap();
            let v = l.total.to_scalar::<f32>().unwrap();
            first.get_or_insert(v);
            last = v;
            let grads = l.total.backward().unwrap();
            for var in &vars {
                let g = grads.get(var.as_tensor()).expect("every trainable tensor gets a gradient");
                var.set(&(var.as_tensor() - (g * 0.01).unwrap()).unwrap()).unwrap();
            }
        }
        assert!(last < 0.8 * first.unwrap(), "loss {} -> {last}", first.unwrap());
    }
}
