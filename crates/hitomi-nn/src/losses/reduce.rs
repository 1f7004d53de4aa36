//! Applies a `Reduction` to per-element losses.

use candle_core::{Result, Tensor};

use super::Reduction;

pub(crate) fn reduce(per: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::None => Ok(per),
        Reduction::Sum => per.sum_all(),
        Reduction::Mean => per.mean_all(),
    }
}
