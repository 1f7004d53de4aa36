//! Generalized IoU loss (Rezatofighi et al. 2019) as torchvision.ops.generalized_box_iou_loss:
//! 1 - IoU + (area(C) - area(A ∪ B)) / area(C), C the smallest box enclosing both, eps 1e-7.

use candle_core::{Result, Tensor, D};

use super::reduce::reduce;
use super::Reduction;

const EPS: f64 = 1e-7;

/// boxes1, boxes2: (N, 4) xyxy; row i is compared with row i. Returns (N) or a scalar.
pub fn giou_loss(boxes1: &Tensor, boxes2: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if boxes1.dims() != boxes2.dims() || boxes1.dims().last() != Some(&4) {
        candle_core::bail!("giou_loss: boxes {:?} and {:?}; expected two (N, 4)", boxes1.dims(), boxes2.dims());
    }
    let col = |b: &Tensor, i: usize| b.narrow(D::Minus1, i, 1).and_then(|t| t.squeeze(D::Minus1));
    let (x1, y1, x2, y2) = (col(boxes1, 0)?, col(boxes1, 1)?, col(boxes1, 2)?, col(boxes1, 3)?);
    let (u1, v1, u2, v2) = (col(boxes2, 0)?, col(boxes2, 1)?, col(boxes2, 2)?, col(boxes2, 3)?);
    let ix1 = x1.maximum(&u1)?;
    let iy1 = y1.maximum(&v1)?;
    let ix2 = x2.minimum(&u2)?;
    let iy2 = y2.minimum(&v2)?;
    // Clamping the overlap at 0 equals torchvision's mask (both sides positive) in value, and in
    // gradient except for boxes that exactly touch.
    let zero = ix1.zeros_like()?;
    let inter = ((&ix2 - &ix1)?.maximum(&zero)? * (&iy2 - &iy1)?.maximum(&zero)?)?;
    let area1 = ((&x2 - &x1)? * (&y2 - &y1)?)?;
    let area2 = ((&u2 - &u1)? * (&v2 - &v1)?)?;
    let union = ((area1 + area2)? - &inter)?;
    let iou = (&inter / (&union + EPS)?)?;
    let cx1 = x1.minimum(&u1)?;
    let cy1 = y1.minimum(&v1)?;
    let cx2 = x2.maximum(&u2)?;
    let cy2 = y2.maximum(&v2)?;
    let area_c = ((cx2 - cx1)? * (cy2 - cy1)?)?;
    let giou = (iou - ((&area_c - &union)? / (&area_c + EPS)?)?)?;
    reduce(giou.affine(-1.0, 1.0)?, reduction)
}
