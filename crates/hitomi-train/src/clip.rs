//! Gradient clipping by global L2 norm.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::Var;

/// Scales all gradients of `vars` so their global norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let g = (g.detach() * scale)?;
                grads.insert(v.as_tensor(), g);
            }
        }
    }
    Ok(norm)
}
