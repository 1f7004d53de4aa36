//! Exponential moving average of all model tensors (weights and BN statistics), as Ultralytics keeps
//! it, with the decay ramped up over the first updates.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::Tensor;
use hitomi_core::ParamStore;

pub struct Ema {
    decay: f64,
    pub updates: u64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    pub fn new(store: &ParamStore, decay: f64) -> Result<Self> {
        Ok(Self { decay, updates: 0, shadow: store.tensors()? })
    }

    /// shadow = d * shadow + (1 - d) * current, d = decay * (1 - exp(-updates / 2000)).
    pub fn update(&mut self, store: &ParamStore) -> Result<()> {
        self.updates += 1;
        let d = self.decay * (1.0 - (-(self.updates as f64) / 2000.0).exp());
        let current: HashMap<String, Tensor> =
            store.entries().into_iter().map(|(n, e)| (n, e.var.as_tensor().detach())).collect();
        for (name, s) in &mut self.shadow {
            *s = ((&*s * d)? + (&current[name] * (1.0 - d))?)?;
        }
        Ok(())
    }

    /// The averaged tensors, by model name.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    /// Named `ema.<name>` for the checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.shadow.iter().map(|(n, t)| (format!("ema.{n}"), t.clone())).collect()
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        for (name, s) in &mut self.shadow {
            match tensors.get(&format!("ema.{name}")) {
                Some(t) if t.dims() == s.dims() => *s = t.clone(),
                _ => bail!("checkpoint lacks EMA tensor `ema.{name}` of shape {:?}", s.dims()),
            }
        }
        self.updates = updates;
        Ok(())
    }
}
