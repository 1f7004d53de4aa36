//! Sigmoid focal loss (Lin et al. 2017) as torchvision.ops.sigmoid_focal_loss:
//! alpha_t (1 - p_t)^gamma BCE(x, t), p_t = p t + (1 - p)(1 - t), p = sigmoid(x).

use candle_core::{Result, Tensor};

use super::bce::{bce_elementwise, log1p_exp_neg_abs};
use super::reduce::reduce;
use super::Reduction;

/// logits, targets: same shape (any), targets in [0, 1]; `alpha` < 0 disables the class weighting.
/// Returns that shape or a scalar.
pub fn sigmoid_focal_loss(
    logits: &Tensor,
    targets: &Tensor,
    alpha: f32,
    gamma: f32,
    reduction: Reduction,
) -> Result<Tensor> {
    if gamma < 0.0 {
        candle_core::bail!("sigmoid_focal_loss: gamma {gamma} must be >= 0");
    }
    // p and 1 - p as exp(-softplus(∓x)): 1 / (1 + exp(-x)) would overflow exp for x < -88 and turn
    // the gradient into inf * 0 = NaN; computing 1 - p directly also avoids cancellation near p = 1.
    let sp = log1p_exp_neg_abs(logits)?;
    let p = (logits.neg()?.relu()? + &sp)?.neg()?.exp()?;
    let q = (logits.relu()? + &sp)?.neg()?.exp()?;
    let one_minus_t = targets.affine(-1.0, 1.0)?;
    // 1 - p_t = (1 - p) t + p (1 - t).
    let one_minus_pt = ((q * targets)? + (p * &one_minus_t)?)?;
    let ce = bce_elementwise(logits, targets)?;
    // Integer powers by multiplication: powf's gradient gamma x^(gamma-1) is 0 * inf at x = 0 for gamma = 0.
    let mut loss = if gamma == 0.0 {
        ce
    } else if gamma == 1.0 {
        (ce * one_minus_pt)?
    } else if gamma == 2.0 {
        (ce * one_minus_pt.sqr()?)?
    } else {
        (ce * one_minus_pt.powf(gamma as f64)?)?
    };
    if alpha >= 0.0 {
        let alpha_t = ((targets * alpha as f64)? + (one_minus_t * (1.0 - alpha as f64))?)?;
        loss = (loss * alpha_t)?;
    }
    reduce(loss, reduction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Saturated logits (exp(100) overflows f32) keep a finite loss and gradient for every gamma.
    #[test]
    fn saturated_logits_stay_finite() -> Result<()> {
        let x = Var::new(&[-100f32, -30.0, 0.0, 30.0, 100.0], &Device::Cpu)?;
        let t = Tensor::new(&[1f32, 0.0, 0.5, 1.0, 0.0], &Device::Cpu)?;
        for gamma in [0.0, 0.5, 1.0, 2.0, 3.0] {
            let loss = sigmoid_focal_loss(x.as_tensor(), &t, 0.25, gamma, Reduction::Sum)?;
            let g = loss.backward()?;
            let dx = g.get(x.as_tensor()).expect("gradient").to_vec1::<f32>()?;
            let l = loss.to_scalar::<f32>()?;
            assert!(l.is_finite() && dx.iter().all(|v| v.is_finite()), "gamma {gamma}: loss {l}, grad {dx:?}");
        }
        Ok(())
    }
}
