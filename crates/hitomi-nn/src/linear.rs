//! Fully connected layer with PyTorch layout: `weight` (out, in), `bias` (out).

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};

#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// PyTorch's default initialisation, U(+-1/sqrt(in)).
    pub fn new(p: &ParamPath, c_in: usize, c_out: usize) -> Result<Self> {
        let weight = p.weight("weight", &[c_out, c_in], Init::KaimingUniform { fan_in: c_in })?;
        let bias = p.no_decay("bias", &[c_out], Init::KaimingUniform { fan_in: c_in })?;
        Ok(Self { weight, bias })
    }
}

impl Module for Linear {
    /// xs: (B, in) -> (B, out)
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}
