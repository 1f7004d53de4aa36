//! The segmenter: the shared backbone as encoder, a U-Net style decoder that enlarges the coarsest
//! map by 2 per step (transposed convolution or bilinear) and fuses the encoder level of the same
//! size (skip connection), then 1x1 logits over the classes at the input's resolution.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};
use hitomi_backbone::{Backbone, ResNet, ResNetConfig};
use hitomi_core::{ParamPath, ParamStore};
use hitomi_nn::upsample::upsample_bilinear2d;
use hitomi_nn::{Activation, Conv2d, Conv2dConfig, ConvBnAct, ConvTranspose2d};

use crate::config::{SegmentConfig, Upsample};

/// Narrows a (B, C, h, w) map that a 2x step made one row or column too large (odd input sides
/// halve to ceil), or resizes it bilinearly when it is smaller.
fn fit_to(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if (xh, xw) == (h, w) {
        return Ok(x.clone());
    }
    if xh >= h && xw >= w {
        return Ok(x.narrow(2, 0, h)?.narrow(3, 0, w)?);
    }
    Ok(upsample_bilinear2d(x, (h, w))?)
}

/// One decoder step: enlarge by 2, concatenate the skip (if any), fuse with conv-BN-ReLU 3x3.
pub struct UpStep {
    /// `Some` for the transposed up-step; bilinear has no parameters.
    convt: Option<ConvTranspose2d>,
    fuse: ConvBnAct,
}

impl UpStep {
    /// c_in: channels coming up; c_skip: channels of the skip (0 = none); c_out: channels leaving.
    fn new(p: &ParamPath, mode: Upsample, c_in: usize, c_skip: usize, c_out: usize) -> Result<Self> {
        let (convt, c_up) = match mode {
            Upsample::Transposed => (Some(ConvTranspose2d::bilinear_up2(&p.pp("convt"), c_in)?), c_in),
            Upsample::Bilinear => (None, c_in),
        };
        let fuse =
            ConvBnAct::new(&p.pp("conv"), &p.pp("bn"), c_up + c_skip, c_out, Conv2dConfig::k(3, 1), Activation::Relu)?;
        Ok(Self { convt, fuse })
    }

    /// x: (B, C_in, h, w), skip: (B, C_skip, H, W) with H in {2h - 1, 2h} -> (B, C_out, H, W);
    /// without a skip the output is (B, C_out, size.0, size.1).
    fn forward(&self, x: &Tensor, skip: Option<&Tensor>, size: (usize, usize), train: bool) -> Result<Tensor> {
        let up = match &self.convt {
            Some(c) => fit_to(&c.forward(x)?, size.0, size.1)?,
            None => upsample_bilinear2d(x, size)?,
        };
        let joined = match skip {
            Some(s) => Tensor::cat(&[&up, s], 1)?,
            None => up,
        };
        self.fuse.forward(&joined, train)
    }
}

pub struct Segmenter {
    pub backbone: ResNet,
    /// Coarse to fine; the first `skips` steps fuse an encoder level.
    steps: Vec<UpStep>,
    skips: usize,
    head: Conv2d,
    mean: Tensor,
    std: Tensor,
    pub num_classes: usize,
}

impl Segmenter {
    /// Decoder channels at each level are the encoder's at that level; levels finer than the finest
    /// encoder map (ResNet-18's stride 4) halve the channels down to 16.
    pub fn new(store: &ParamStore, cfg: &SegmentConfig, num_classes: usize) -> Result<Self> {
        let backbone = ResNet::new(&store.root(), &ResNetConfig::from_arch(cfg.arch, cfg.channels))?;
        let chans = backbone.out_channels();
        let strides = backbone.strides();
        for w in strides.windows(2) {
            if w[1] != 2 * w[0] {
                bail!("segmenter: backbone strides {strides:?}; the decoder needs each level at half the size of the last");
            }
        }
        if !strides[0].is_power_of_two() {
            bail!("segmenter: finest backbone stride {} is not a power of two", strides[0]);
        }
        let dec = store.root().pp("decoder").group("head");
        let mut steps = Vec::new();
        let mut c = *chans.last().expect("a backbone has levels");
        for (i, &c_skip) in chans.iter().rev().skip(1).enumerate() {
            steps.push(UpStep::new(&dec.pp(format!("up{i}")), cfg.upsample, c, c_skip, c_skip)?);
            c = c_skip;
        }
        let skips = steps.len();
        let mut stride = strides[0];
        while stride > 1 {
            let c_out = (c / 2).max(16);
            steps.push(UpStep::new(&dec.pp(format!("up{}", steps.len())), cfg.upsample, c, 0, c_out)?);
            c = c_out;
            stride /= 2;
        }
        let head_cfg = Conv2dConfig { kernel: 1, stride: 1, padding: 0, dilation: 1, bias: true };
        let head = Conv2d::new(&store.root().pp("head").group("head"), c, num_classes, head_cfg)?;
        let (mean, std) = cfg.normalize.tensors(&store.device())?;
        Ok(Self { backbone, steps, skips, head, mean, std, num_classes })
    }

    /// xs: (B, C, H, W) in [0, 1] -> logits (B, num_classes, H, W).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let normed = xs.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let feats = self.backbone.forward(&normed, train)?;
        let mut x = feats.last().expect("a backbone has levels").clone();
        let levels = feats.len();
        for (i, step) in self.steps.iter().enumerate() {
            x = if i < self.skips {
                let skip = &feats[levels - 2 - i];
                let (_, _, sh, sw) = skip.dims4()?;
                step.forward(&x, Some(skip), (sh, sw), train)?
            } else {
                let (_, _, xh, xw) = x.dims4()?;
                let last = i + 1 == self.steps.len();
                let size = if last { (h, w) } else { (2 * xh, 2 * xw) };
                step.forward(&x, None, size, train)?
            };
        }
        let logits = self.head.forward(&x)?;
        fit_to(&logits, h, w)
    }
}
