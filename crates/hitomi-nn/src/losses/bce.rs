//! Binary cross-entropy on logits, in the stable form max(x, 0) - x t + log(1 + exp(-|x|))
//! (candle's version overflows for large logits). Soft targets are allowed.

use candle_core::{Result, Tensor};

use super::reduce::reduce;
use super::Reduction;

/// logits and targets of the same shape; targets in [0, 1].
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduce(bce_elementwise(logits, targets)?, reduction)
}

pub(crate) fn bce_elementwise(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    let softplus_neg_abs = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (x.relu()? - (x * t)?)? + softplus_neg_abs
}
