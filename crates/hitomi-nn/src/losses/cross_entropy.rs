//! Cross-entropy over class logits, rank 2 (N, C) or per pixel (N, C, H, W), with label smoothing
//! and an ignore index; log-softmax is stabilised by subtracting the row maximum.

use candle_core::{DType, Result, Tensor, D};

use super::Reduction;

/// log softmax along `dim`, stable for large offsets.
pub fn log_softmax(xs: &Tensor, dim: usize) -> Result<Tensor> {
    let max = xs.max_keepdim(dim)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(dim)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// softmax along `dim`, stable for large offsets.
pub fn softmax(xs: &Tensor, dim: usize) -> Result<Tensor> {
    let max = xs.max_keepdim(dim)?.detach();
    let e = xs.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(dim)?)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// ε: the loss is (1-ε)·NLL + ε·mean_c(-log p_c).
    pub label_smoothing: f32,
    /// Targets equal to this are left out (and out of the mean).
    pub ignore_index: Option<u32>,
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self { label_smoothing: 0.0, ignore_index: None, reduction: Reduction::Mean }
    }
}

/// logits: (N, C) with targets (N), or (N, C, H, W) with targets (N, H, W); targets u32.
/// Reduction::None returns the per-position losses (0 at ignored positions).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, opts: &CrossEntropyOptions) -> Result<Tensor> {
    // Move classes last and flatten positions: (P, C).
    let (flat, c) = match logits.rank() {
        2 => (logits.clone(), logits.dim(1)?),
        4 => {
            let (n, c, h, w) = logits.dims4()?;
            (logits.permute((0, 2, 3, 1))?.reshape((n * h * w, c))?, c)
        }
        r => candle_core::bail!("cross_entropy: logits of rank {r}; expected (N, C) or (N, C, H, W)"),
    };
    let t = targets.flatten_all()?.to_dtype(DType::U32)?;
    let p = flat.dim(0)?;
    if t.dim(0)? != p {
        candle_core::bail!("cross_entropy: {} targets for {p} positions", t.dim(0)?);
    }
    let valid = match opts.ignore_index {
        Some(ig) => t.ne(ig)?,
        None => Tensor::ones(p, DType::U8, t.device())?,
    };
    // Ignored targets may be out of range: point them at class 0 before gathering.
    let safe = valid.where_cond(&t, &Tensor::zeros(p, DType::U32, t.device())?)?;
    if let Some(bad) = safe.to_vec1::<u32>()?.iter().find(|&&v| v as usize >= c) {
        candle_core::bail!("cross_entropy: target {bad} is not a class index below {c}");
    }
    let lsm = log_softmax(&flat, 1)?;
    let nll = lsm.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let eps = opts.label_smoothing as f64;
    let per = if eps > 0.0 {
        let smooth = lsm.mean(D::Minus1)?.neg()?;
        ((nll * (1.0 - eps))? + (smooth * eps)?)?
    } else {
        nll
    };
    let mask = valid.to_dtype(per.dtype())?;
    let per = (per * &mask)?;
    match opts.reduction {
        Reduction::None => per.reshape(targets.shape()),
        Reduction::Sum => per.sum_all(),
        Reduction::Mean => per.sum_all()?.broadcast_div(&mask.sum_all()?),
    }
}
