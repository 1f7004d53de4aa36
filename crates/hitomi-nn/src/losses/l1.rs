//! L1 and smooth L1 (Huber divided by beta) losses, PyTorch semantics.

use candle_core::{Result, Tensor};

use super::reduce::reduce;
use super::Reduction;

/// |input - target|. input, target: same shape (any); returns that shape or a scalar.
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduce((input - target)?.abs()?, reduction)
}

/// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = input - target (beta = 0 is plain L1).
/// input, target: same shape (any); returns that shape or a scalar.
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Result<Tensor> {
    if beta < 0.0 {
        candle_core::bail!("smooth_l1_loss: beta {beta} must be >= 0");
    }
    let d = (input - target)?.abs()?;
    if beta == 0.0 {
        return reduce(d, reduction);
    }
    let quad = (d.sqr()? * (0.5 / beta))?;
    let lin = (&d - 0.5 * beta)?;
    // where_cond routes each gradient to the branch that was taken.
    let per = d.lt(beta)?.where_cond(&quad, &lin)?;
    reduce(per, reduction)
}
