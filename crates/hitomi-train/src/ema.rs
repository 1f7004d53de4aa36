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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use hitomi_core::Init;

    #[test]
    fn shadow_follows_the_ramped_decay() -> Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        store.root().weight("w", &[2], Init::Const(0.0))?;
        let mut ema = Ema::new(&store, 0.9)?;
        store.var("w").unwrap().set(&Tensor::new(&[1f32, 2.0], &Device::Cpu)?)?;
        ema.update(&store)?;
        let d = 0.9 * (1.0 - (-1.0f64 / 2000.0).exp());
        let got: Vec<f32> = ema.tensors()[0].1.to_vec1()?;
        assert!((got[0] as f64 - (1.0 - d)).abs() < 1e-6 && (got[1] as f64 - 2.0 * (1.0 - d)).abs() < 1e-6, "{got:?}");
        // Saved and restored state continues identically.
        let saved: HashMap<String, Tensor> = ema.state_tensors().into_iter().collect();
        let mut other = Ema::new(&store, 0.9)?;
        other.load_state(&saved, ema.updates)?;
        ema.update(&store)?;
        other.update(&store)?;
        assert_eq!(ema.tensors()[0].1.to_vec1::<f32>()?, other.tensors()[0].1.to_vec1::<f32>()?);
        Ok(())
    }
}
