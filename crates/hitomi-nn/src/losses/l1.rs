//! L1 and smooth L1 (Huber with slope 1) losses, PyTorch semantics.

use candle_core::{Result, Tensor};

use super::reduce::reduce;
use super::Reduction;

pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduce((input - target)?.abs()?, reduction)
}

/// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0 is plain L1).
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Result<Tensor> {
    let d = (input - target)?.abs()?;
    if beta <= 0.0 {
        return reduce(d, reduction);
    }
    let quad = (d.sqr()? * (0.5 / beta))?;
    let lin = (&d - 0.5 * beta)?;
    let per = d.lt(beta)?.where_cond(&quad, &lin)?;
    reduce(per, reduction)
}
