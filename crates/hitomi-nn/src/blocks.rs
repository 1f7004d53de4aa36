//! Residual blocks, y = relu(F(x) + shortcut(x)), with torchvision's tensor names; the last
//! norm, the add and the ReLU run fused (`ConvBnAct::forward_add_relu`).

use anyhow::Result;
use candle_core::Tensor;
use hitomi_core::ParamPath;

use crate::conv::{Activation, Conv2dConfig, ConvBnAct};

/// Projection shortcut `downsample.0` (1x1 conv, stride s) + `downsample.1` (BN), used when the
/// block changes resolution or width.
fn downsample(p: &ParamPath, c_in: usize, c_out: usize, stride: usize) -> Result<Option<ConvBnAct>> {
    if stride == 1 && c_in == c_out {
        return Ok(None);
    }
    let d = p.pp("downsample");
    let cfg = Conv2dConfig { kernel: 1, stride, padding: 0, dilation: 1, bias: false };
    Ok(Some(ConvBnAct::new(&d.pp("0"), &d.pp("1"), c_in, c_out, cfg, Activation::None)?))
}

/// The block's shortcut: the projection when there is one, else the input itself.
fn shortcut(downsample: &Option<ConvBnAct>, xs: &Tensor, train: bool) -> Result<Tensor> {
    match downsample {
        Some(d) => d.forward(xs, train),
        None => Ok(xs.clone()),
    }
}

/// ResNet-18/34 block: 3x3 (stride s) -> BN -> ReLU -> 3x3 -> BN, plus shortcut, then ReLU.
#[derive(Clone, Debug)]
pub struct BasicBlock {
    pub conv1: ConvBnAct,
    pub conv2: ConvBnAct,
    pub downsample: Option<ConvBnAct>,
}

impl BasicBlock {
    pub const EXPANSION: usize = 1;

    pub fn new(p: &ParamPath, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        Ok(Self {
            conv1: ConvBnAct::new(
                &p.pp("conv1"),
                &p.pp("bn1"),
                c_in,
                c_out,
                Conv2dConfig::k(3, stride),
                Activation::Relu,
            )?,
            conv2: ConvBnAct::new(&p.pp("conv2"), &p.pp("bn2"), c_out, c_out, Conv2dConfig::k(3, 1), Activation::None)?,
            downsample: downsample(p, c_in, c_out, stride)?,
        })
    }

    /// xs: (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let skip = shortcut(&self.downsample, xs, train)?;
        self.conv2.forward_add_relu(&self.conv1.forward(xs, train)?, &skip, train)
    }
}

/// ResNet-50 block: 1x1 -> 3x3 (stride s, as torchvision "v1.5") -> 1x1 (x4 width), plus shortcut.
#[derive(Clone, Debug)]
pub struct Bottleneck {
    pub conv1: ConvBnAct,
    pub conv2: ConvBnAct,
    pub conv3: ConvBnAct,
    pub downsample: Option<ConvBnAct>,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    /// `width` is the inner width; the block outputs `width * 4` channels.
    pub fn new(p: &ParamPath, c_in: usize, width: usize, stride: usize) -> Result<Self> {
        let c_out = width * Self::EXPANSION;
        Ok(Self {
            conv1: ConvBnAct::new(&p.pp("conv1"), &p.pp("bn1"), c_in, width, Conv2dConfig::k(1, 1), Activation::Relu)?,
            conv2: ConvBnAct::new(
                &p.pp("conv2"),
                &p.pp("bn2"),
                width,
                width,
                Conv2dConfig::k(3, stride),
                Activation::Relu,
            )?,
            conv3: ConvBnAct::new(&p.pp("conv3"), &p.pp("bn3"), width, c_out, Conv2dConfig::k(1, 1), Activation::None)?,
            downsample: downsample(p, c_in, c_out, stride)?,
        })
    }

    /// xs: (B, C_in, H, W) -> (B, 4 * width, H/s, W/s)
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let skip = shortcut(&self.downsample, xs, train)?;
        let ys = self.conv2.forward(&self.conv1.forward(xs, train)?, train)?;
        self.conv3.forward_add_relu(&ys, &skip, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;
    use hitomi_core::ParamStore;

    /// A block's input feeds both the residual branch and the shortcut, so its gradient is the sum
    /// of the two paths' (the backward pass adds up a tensor's gradients over its uses; the
    /// vendored candle stores the first one and adds the rest): the full gradient equals the
    /// branch's alone plus the shortcut's alone, each taken with the other path's input detached.
    /// Training mode, so the fused norm + add + ReLU is in the graph.
    #[test]
    fn input_gradient_sums_the_branch_and_the_shortcut() {
        let dev = Device::Cpu;
        let store = ParamStore::new(5, &dev);
        let block = BasicBlock::new(&store.root().pp("b"), 4, 4, 1).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 4, 9, 9), &dev).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 4, 9, 9), &dev).unwrap();
        let grad_with = |branch_in: &Tensor, skip: &Tensor| {
            let h = block.conv1.forward(branch_in, true).unwrap();
            let y = block.conv2.forward_add_relu(&h, skip, true).unwrap();
            let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(&x).expect("x has a gradient").clone()
        };
        let both = grad_with(&x, &x);
        let (branch, shortcut) = (grad_with(&x, &x.detach()), grad_with(&x.detach(), &x));
        assert_close("x gradient", &both, &(branch + shortcut).unwrap(), 0.0, 1e-5, false).unwrap();
        let y = block.forward(&x, true).unwrap();
        let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close("forward()", g.get(&x).unwrap(), &both, 0.0, 1e-6, false).unwrap();
    }
}
