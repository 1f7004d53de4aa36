//! Binary cross-entropy on logits, in the stable form max(x, 0) - x t + log(1 + exp(-|x|))
//! (candle's version overflows for large logits). Soft targets are allowed.

use candle_core::{Result, Tensor};

use super::reduce::reduce;
use super::Reduction;

/// logits, targets: same shape (any), targets in [0, 1]. Returns that shape or a scalar.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduce(bce_elementwise(logits, targets)?, reduction)
}

/// Per-element BCE. exp(-|x|) <= 1, so nothing overflows, and the gradient of every term stays finite
/// (candle's relu and abs both take the x >= 0 branch at 0, which keeps d/dx = sigmoid(x) - t there).
pub(crate) fn bce_elementwise(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    (x.relu()? - (x * t)?)? + log1p_exp_neg_abs(x)?
}

/// log(1 + exp(-|x|)), the bounded part of softplus: softplus(x) = relu(x) + log1p_exp_neg_abs(x).
pub(crate) fn log1p_exp_neg_abs(x: &Tensor) -> Result<Tensor> {
    (x.abs()?.neg()?.exp()? + 1.0)?.log()
}
