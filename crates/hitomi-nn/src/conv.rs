//! 2-D convolution with PyTorch weight layout, and the conv + batch-norm + activation unit.

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};

use crate::batch_norm::BatchNorm2d;
use crate::conv_op::{conv2d, ConvGeom};

/// Geometry of a convolution (square kernels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self { kernel: 3, stride: 1, padding: 1, dilation: 1, bias: false }
    }
}

impl Conv2dConfig {
    /// k x k, stride s, "same"-style padding k/2, no bias (it is followed by a norm).
    pub fn k(kernel: usize, stride: usize) -> Self {
        Self { kernel, stride, padding: kernel / 2, dilation: 1, bias: false }
    }

    /// Output side: floor((w + 2p - d(k-1) - 1) / s) + 1, the lecture's floor((W + 2p - k)/s) + 1.
    pub fn out_size(&self, w: usize) -> usize {
        (w + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }
}

/// A convolution: `weight` (out, in, k, k), optional `bias` (out).
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub cfg: Conv2dConfig,
}

impl Conv2d {
    /// Weights as torchvision's ResNet initialises them: He normal over fan-out.
    pub fn new(p: &ParamPath, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Self> {
        let k = cfg.kernel;
        let weight = p.weight("weight", &[c_out, c_in, k, k], Init::KaimingNormal { fan: c_out * k * k })?;
        let bias = if cfg.bias {
            let fan_in = c_in * k * k;
            Some(p.no_decay("bias", &[c_out], Init::KaimingUniform { fan_in })?)
        } else {
            None
        };
        Ok(Self { weight, bias, cfg })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Conv2d {
    /// xs: (B, C_in, H, W) -> (B, C_out, H', W')
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let c = &self.cfg;
        let geom = ConvGeom { stride: c.stride, padding: c.padding, dilation: c.dilation };
        let ys = conv2d(xs, &self.weight, geom)?;
        match &self.bias {
            Some(b) => ys.broadcast_add(&b.reshape((1, b.dims()[0], 1, 1))?),
            None => Ok(ys),
        }
    }
}

/// The activation after a conv-BN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Silu,
}

impl Activation {
    pub fn apply(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::None => Ok(xs.clone()),
            Activation::Relu => crate::relu_op::relu(xs),
            Activation::Silu => xs.silu(),
        }
    }
}

/// conv (no bias) -> BN -> activation. Takes separate paths for the conv and the BN so that
/// torchvision names (`conv1` / `bn1`) are kept.
#[derive(Clone, Debug)]
pub struct ConvBnAct {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
    pub act: Activation,
}

impl ConvBnAct {
    pub fn new(
        conv_path: &ParamPath,
        bn_path: &ParamPath,
        c_in: usize,
        c_out: usize,
        cfg: Conv2dConfig,
        act: Activation,
    ) -> Result<Self> {
        let conv = Conv2d::new(conv_path, c_in, c_out, Conv2dConfig { bias: false, ..cfg })?;
        let bn = BatchNorm2d::new(bn_path, c_out)?;
        Ok(Self { conv, bn, act })
    }

    /// xs: (B, C_in, H, W) -> (B, C_out, H', W'); `train` selects batch statistics (and updates
    /// the running ones) or running statistics.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self.conv.forward(xs)?;
        match self.act {
            Activation::Relu => self.bn.forward_relu(&ys, train),
            act => Ok(act.apply(&self.bn.forward(&ys, train)?)?),
        }
    }
}
