//! Transposed 2-D convolution layer (the learnable up-step of an encoder-decoder), PyTorch layout.

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};

use crate::conv_op::{conv_transpose2d, ConvTransposeGeom};

/// `weight` (in, out, k, k) as PyTorch's `ConvTranspose2d`, optional `bias` (out).
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub geom: ConvTransposeGeom,
}

impl ConvTranspose2d {
    /// PyTorch's default initialisation: U(+-1/sqrt(fan_in)) with fan_in = out * k * k (PyTorch
    /// computes it from dimension 1 of the transposed weight).
    pub fn new(
        p: &ParamPath,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geom: ConvTransposeGeom,
        bias: bool,
    ) -> Result<Self> {
        let fan_in = c_out * kernel * kernel;
        let weight = p.weight("weight", &[c_in, c_out, kernel, kernel], Init::KaimingUniform { fan_in })?;
        let bias = if bias { Some(p.no_decay("bias", &[c_out], Init::KaimingUniform { fan_in })?) } else { None };
        Ok(Self { weight, bias, geom })
    }

    /// The 2x up-step: kernel 2, stride 2, no overlap between the output patches of two inputs.
    pub fn up2(p: &ParamPath, c_in: usize, c_out: usize) -> Result<Self> {
        Self::new(p, c_in, c_out, 2, ConvTransposeGeom { stride: 2, padding: 0, output_padding: 0, dilation: 1 }, true)
    }
}

impl Module for ConvTranspose2d {
    /// xs: (B, C_in, H, W) -> (B, C_out, (H-1)s - 2p + d(k-1) + op + 1, ...)
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let ys = conv_transpose2d(xs, &self.weight, self.geom)?;
        match &self.bias {
            Some(b) => ys.broadcast_add(&b.reshape((1, b.dims()[0], 1, 1))?),
            None => Ok(ys),
        }
    }
}
