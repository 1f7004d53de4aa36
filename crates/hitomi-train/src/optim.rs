//! Optimizers with state we own (momentum buffers, Adam moments, step count), so that a checkpoint
//! can hold it and `--resume` continues exactly. No weight decay on norms and biases.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use hitomi_core::{ParamKind, ParamStore};

use crate::config::OptimizerConfig;

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    /// SGD: [momentum]; AdamW: [exp_avg, exp_avg_sq]. Empty until the first step.
    state: Vec<Tensor>,
}

pub struct Optimizer {
    cfg: OptimizerConfig,
    weight_decay: f64,
    slots: Vec<Slot>,
    /// Updates taken so far.
    pub step: u64,
}

impl Optimizer {
    pub fn new(store: &ParamStore, cfg: &OptimizerConfig, weight_decay: f64) -> Self {
        let slots = store
            .trainable()
            .into_iter()
            .map(|(name, var, kind)| Slot { name, var, decay: kind == ParamKind::Weight, state: Vec::new() })
            .collect();
        Self { cfg: cfg.clone(), weight_decay, slots, step: 0 }
    }

    fn state_names(&self) -> &'static [&'static str] {
        match self.cfg {
            OptimizerConfig::Sgd { .. } => &["momentum"],
            OptimizerConfig::Adamw { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let wd = self.weight_decay;
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            // Gradients keep their graph: detach before storing anything built from them.
            let g = g.detach();
            let p = slot.var.as_tensor().detach();
            match self.cfg {
                OptimizerConfig::Sgd { momentum, nesterov } => {
                    let g = if slot.decay && wd > 0.0 { (g + (&p * wd)?)? } else { g };
                    let buf = match slot.state.first() {
                        Some(b) if momentum > 0.0 => ((b * momentum)? + &g)?,
                        _ => g.clone(),
                    };
                    let dir = if nesterov && momentum > 0.0 { (&g + (&buf * momentum)?)? } else { buf.clone() };
                    slot.var.set(&(p - (dir * lr)?)?)?;
                    slot.state = vec![buf];
                }
                OptimizerConfig::Adamw { beta1, beta2, eps } => {
                    let p = if slot.decay && wd > 0.0 { (&p * (1.0 - lr * wd))? } else { p };
                    let (m, v) = match slot.state.as_slice() {
                        [m, v] => {
                            (((m * beta1)? + (&g * (1.0 - beta1))?)?, ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?)
                        }
                        _ => ((&g * (1.0 - beta1))?, (g.sqr()? * (1.0 - beta2))?),
                    };
                    let (m, v) = (m.detach(), v.detach());
                    let mhat = (&m / (1.0 - beta1.powi(t)))?;
                    let vhat = (&v / (1.0 - beta2.powi(t)))?;
                    let upd = (mhat / (vhat.sqrt()? + eps)?)?;
                    slot.var.set(&(p - (upd * lr)?)?)?;
                    slot.state = vec![m, v];
                }
            }
        }
        Ok(())
    }

    /// State as named tensors `optim.<param>.<buffer>` (for the checkpoint).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let names = self.state_names();
        let mut out = Vec::new();
        for slot in &self.slots {
            for (buf, t) in names.iter().zip(&slot.state) {
                out.push((format!("optim.{}.{}", slot.name, buf), t.clone()));
            }
        }
        out
    }

    /// Restores the state saved by `state_tensors` and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        let names = self.state_names();
        for slot in &mut self.slots {
            let found: Vec<Option<&Tensor>> =
                names.iter().map(|b| tensors.get(&format!("optim.{}.{}", slot.name, b))).collect();
            if found.iter().all(|f| f.is_none()) {
                // No update had touched this parameter yet.
                slot.state.clear();
                continue;
            }
            let mut state = Vec::new();
            for (b, f) in names.iter().zip(found) {
                match f {
                    Some(t) if t.dims() == slot.var.dims() => state.push(t.clone()),
                    Some(t) => bail!(
                        "optimizer state `optim.{}.{b}` has shape {:?}, expected {:?}",
                        slot.name,
                        t.dims(),
                        slot.var.dims()
                    ),
                    None => bail!("optimizer state `optim.{}.{b}` is missing", slot.name),
                }
            }
            slot.state = state;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use hitomi_core::Init;

    /// Minimises (w - 3)^2 and checks the first SGD-momentum steps against hand-computed values.
    #[test]
    fn sgd_momentum_matches_pytorch_recurrence() -> Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let w = store.root().weight("w", &[1], Init::Const(0.0))?;
        let cfg = OptimizerConfig::Sgd { momentum: 0.9, nesterov: false };
        let mut opt = Optimizer::new(&store, &cfg, 0.0);
        // step 1: g = -6, buf = -6, w = 0.6; step 2: g = -4.8, buf = -10.2, w = 1.62
        for expected in [0.6f32, 1.62] {
            let loss = (store.var("w").unwrap().as_tensor() - 3.0)?.sqr()?.sum_all()?;
            opt.step(&loss.backward()?, 0.1)?;
            let got = store.var("w").unwrap().as_tensor().to_vec1::<f32>()?[0];
            assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        }
        let _ = w;
        Ok(())
    }

    #[test]
    fn adamw_state_round_trip_gives_identical_next_step() -> Result<()> {
        let run = |resume_after: Option<usize>| -> Result<f32> {
            let store = ParamStore::new(0, &Device::Cpu);
            store.root().weight("w", &[3], Init::Normal { std: 1.0 })?;
            let cfg = OptimizerConfig::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
            let mut opt = Optimizer::new(&store, &cfg, 0.01);
            for i in 0..4 {
                if resume_after == Some(i) {
                    let saved: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
                    let step = opt.step;
                    opt = Optimizer::new(&store, &cfg, 0.01);
                    opt.load_state(&saved, step)?;
                }
                let loss = store.var("w").unwrap().as_tensor().sqr()?.sum_all()?;
                opt.step(&loss.backward()?, 0.05)?;
            }
            Ok(store.var("w").unwrap().as_tensor().sum_all()?.to_scalar::<f32>()?)
        };
        assert_eq!(run(None)?, run(Some(2))?);
        Ok(())
    }
}
