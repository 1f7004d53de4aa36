//! Sigmoid focal loss (Lin et al. 2017) as torchvision.ops.sigmoid_focal_loss:
//! alpha_t (1 - p_t)^gamma BCE(x, t), p_t = p t + (1 - p)(1 - t).

use candle_core::{Result, Tensor};

use super::bce::bce_elementwise;
use super::reduce::reduce;
use super::Reduction;

/// logits and targets of the same shape; `alpha` < 0 disables the class weighting.
pub fn sigmoid_focal_loss(
    logits: &Tensor,
    targets: &Tensor,
    alpha: f32,
    gamma: f32,
    reduction: Reduction,
) -> Result<Tensor> {
    let p = (logits.neg()?.exp()? + 1.0)?.recip()?;
    let ce = bce_elementwise(logits, targets)?;
    let one_minus_t = targets.affine(-1.0, 1.0)?;
    let p_t = ((&p * targets)? + (p.affine(-1.0, 1.0)? * &one_minus_t)?)?;
    let mut loss = (ce * p_t.affine(-1.0, 1.0)?.powf(gamma as f64)?)?;
    if alpha >= 0.0 {
        let alpha_t = ((targets * alpha as f64)? + (one_minus_t * (1.0 - alpha as f64))?)?;
        loss = (loss * alpha_t)?;
    }
    reduce(loss, reduction)
}
