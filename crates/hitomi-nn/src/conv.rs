//! 2-D convolution with PyTorch weight layout, and the conv + batch-norm + activation unit.

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};

use crate::batch_norm::BatchNorm2d;
use crate::conv_op::{conv2d, conv2d_bias_act, conv2d_train, ConvGeom};

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

    fn geom(&self) -> ConvGeom {
        let c = &self.cfg;
        ConvGeom { stride: c.stride, padding: c.padding, dilation: c.dilation }
    }
}

impl Module for Conv2d {
    /// xs: (B, C_in, H, W) -> (B, C_out, H', W')
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match &self.bias {
            Some(b) => conv2d_bias_act(xs, &self.weight, b, self.geom(), false),
            None => conv2d(xs, &self.weight, self.geom()),
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
    /// the running ones) or running statistics. In eval mode the norm is folded into the
    /// convolution (w * scale, bias = shift) and the bias and ReLU run inside the conv kernel.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train && self.act != Activation::Silu {
            let (scale, shift) = self.bn.eval_scale_shift()?;
            let w = self.conv.weight.broadcast_mul(&scale.reshape((scale.dims1()?, 1, 1, 1))?)?;
            return Ok(conv2d_bias_act(xs, &w, &shift, self.conv.geom(), self.act == Activation::Relu)?);
        }
        let ys = self.conv_train(xs, train)?;
        match self.act {
            Activation::Relu => self.bn.forward_relu(&ys, train),
            act => Ok(act.apply(&self.bn.forward(&ys, train)?)?),
        }
    }

    /// relu(forward(xs) + skip) for a unit without its own activation (a residual block's last
    /// conv-BN): in training mode the norm, the add and the ReLU run as one op.
    /// xs: (B, C_in, H, W), skip: (B, C_out, H', W') -> (B, C_out, H', W')
    pub fn forward_add_relu(&self, xs: &Tensor, skip: &Tensor, train: bool) -> Result<Tensor> {
        anyhow::ensure!(self.act == Activation::None, "forward_add_relu: the unit has its own {:?}", self.act);
        if !train {
            return Ok(crate::relu_op::add_relu(&self.forward(xs, false)?, skip)?);
        }
        self.bn.forward_add_relu(&self.conv_train(xs, true)?, skip, true)
    }

    /// The convolution alone (no bias), keeping a Winograd layer's transformed input for the
    /// weight gradient in training mode (`conv2d_train`).
    fn conv_train(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if train {
            conv2d_train(xs, &self.conv.weight, self.conv.geom())
        } else {
            self.conv.forward(xs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;
    use hitomi_core::ParamStore;

    /// Eval mode folds the norm into the conv; output and the gradients of the input, the conv
    /// weight and the norm's weight and bias equal conv -> norm -> ReLU run separately.
    #[test]
    fn folded_eval_conv_bn_relu_matches_separate_layers() {
        let dev = Device::Cpu;
        for (act, stride, side) in [(Activation::Relu, 1, 9), (Activation::None, 2, 11), (Activation::Relu, 1, 50)] {
            let store = ParamStore::new(3, &dev);
            let p = store.root();
            let unit = ConvBnAct::new(&p.pp("conv"), &p.pp("bn"), 3, 5, Conv2dConfig::k(3, stride), act).unwrap();
            let stats = |lo: f32| Tensor::new(&[lo, lo + 0.3, lo + 0.1, lo + 0.7, lo + 0.2], &dev).unwrap();
            store.var("bn.running_mean").unwrap().set(&stats(-0.2)).unwrap();
            store.var("bn.running_var").unwrap().set(&stats(0.5)).unwrap();
            store.var("bn.weight").unwrap().set(&stats(-0.4)).unwrap();
            store.var("bn.bias").unwrap().set(&stats(-0.1)).unwrap();
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, side, side), &dev).unwrap()).unwrap();
            let folded = unit.forward(&x, false).unwrap();
            let separate = unit.bn.forward(&unit.conv.forward(&x).unwrap(), false).unwrap();
            let separate = if act == Activation::Relu { crate::relu_op::relu(&separate).unwrap() } else { separate };
            assert_close(&format!("{act:?}: output"), &folded, &separate, 0.0, 1e-5, false).unwrap();
            let probe = Tensor::randn(0f32, 1.0, folded.dims(), &dev).unwrap();
            let g1 = (folded * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (separate * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let leaves =
                [x.as_tensor().clone(), unit.conv.weight.clone(), unit.bn.weight.clone(), unit.bn.bias.clone()];
            for (i, t) in leaves.iter().enumerate() {
                let what = format!("{act:?}: gradient {i}");
                assert_close(&what, g1.get(t).unwrap(), g2.get(t).unwrap(), 0.0, 1e-4, false).unwrap();
            }
        }
    }
}
