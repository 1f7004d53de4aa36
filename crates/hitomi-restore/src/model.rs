//! The restorer: a residual encoder-decoder (U-Net shape) of residual blocks like the backbone's (minus BN).
//! It predicts the correction that is added to its input, so an identity mapping costs nothing and
//! the network spends its capacity on the distortion (DnCNN's residual learning).

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{ParamPath, ParamStore};
use hitomi_nn::relu_op::relu;
use hitomi_nn::{Conv2d, Conv2dConfig, ConvTranspose2d};

use crate::config::RestoreConfig;

/// A conv with bias (no normalisation follows it).
fn conv(p: &ParamPath, c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Result<Conv2d> {
    Conv2d::new(p, c_in, c_out, Conv2dConfig { bias: true, ..Conv2dConfig::k(kernel, stride) })
}

/// The backbone's residual block without batch norm (as EDSR): x + conv(relu(conv(x))). Batch norm
/// is left out on purpose: its running statistics shifted the colours of whole images in eval mode,
/// and a restorer must keep absolute levels, which per-batch normalisation throws away.
struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResBlock {
    fn new(p: &ParamPath, c: usize) -> Result<Self> {
        Ok(Self { conv1: conv(&p.pp("conv1"), c, c, 3, 1)?, conv2: conv(&p.pp("conv2"), c, c, 3, 1)? })
    }

    /// xs: (B, C, H, W) -> (B, C, H, W)
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok((xs + self.conv2.forward(&relu(&self.conv1.forward(xs)?)?)?)?)
    }
}

/// One encoder level: (a stride-2 conv + ReLU unless it is the first) then residual blocks.
struct EncoderLevel {
    down: Option<Conv2d>,
    blocks: Vec<ResBlock>,
}

/// One decoder level: FCN up-step (transposed conv initialised as bilinear), a 1x1 conv + ReLU to the
/// finer width, addition of the encoder's map of that size (skip), one residual block.
struct DecoderLevel {
    up: ConvTranspose2d,
    reduce: Conv2d,
    block: ResBlock,
}

pub struct Restorer {
    stem: Conv2d,
    encoder: Vec<EncoderLevel>,
    decoder: Vec<DecoderLevel>,
    tail: Conv2d,
    pub channels: usize,
    /// Input sides must be multiples of this (the tiler pads).
    pub size_multiple: usize,
}

impl Restorer {
    pub fn new(store: &ParamStore, cfg: &RestoreConfig) -> Result<Self> {
        let root = store.root().group("head");
        let w = cfg.width;
        let stem = conv(&root.pp("stem"), cfg.channels, w, 3, 1)?;
        let mut encoder = Vec::new();
        for l in 0..cfg.levels {
            let p = root.pp(format!("enc{l}"));
            let c = w << l;
            let down = if l == 0 { None } else { Some(conv(&p.pp("down"), c / 2, c, 3, 2)?) };
            let blocks =
                (0..cfg.blocks).map(|b| ResBlock::new(&p.pp(format!("block{b}")), c)).collect::<Result<_>>()?;
            encoder.push(EncoderLevel { down, blocks });
        }
        let mut decoder = Vec::new();
        for l in (0..cfg.levels - 1).rev() {
            let p = root.pp(format!("dec{l}"));
            let (c_coarse, c) = (w << (l + 1), w << l);
            let up = ConvTranspose2d::bilinear_up2(&p.pp("up"), c_coarse)?;
            let reduce = conv(&p.pp("reduce"), c_coarse, c, 1, 1)?;
            let block = ResBlock::new(&p.pp("block"), c)?;
            decoder.push(DecoderLevel { up, reduce, block });
        }
        let tail = conv(&root.pp("tail"), w, cfg.channels, 3, 1)?;
        // The correction starts at zero: the untrained network is the identity (its PSNR is the
        // input's), instead of adding a random image several times brighter than the input.
        for leaf in ["weight", "bias"] {
            let var = store.var(&root.pp("tail").full_name(leaf)).expect("tail created above");
            var.set(&var.as_tensor().zeros_like()?)?;
        }
        Ok(Self { stem, encoder, decoder, tail, channels: cfg.channels, size_multiple: cfg.size_multiple() })
    }

    /// xs: (B, C, H, W) on the 0..1 scale with H and W multiples of `size_multiple` -> restored
    /// (B, C, H, W) = xs + correction (not clamped: the loss sees the raw output).
    /// `_train` is accepted for symmetry with the other models; nothing here behaves differently.
    pub fn forward(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        anyhow::ensure!(
            h.is_multiple_of(self.size_multiple) && w.is_multiple_of(self.size_multiple),
            "restorer input {h}x{w}: sides must be multiples of {}",
            self.size_multiple
        );
        let mut x = relu(&self.stem.forward(&(xs - 0.5)?)?)?;
        let mut skips = Vec::with_capacity(self.encoder.len());
        for level in &self.encoder {
            if let Some(d) = &level.down {
                x = relu(&d.forward(&x)?)?;
            }
            for b in &level.blocks {
                x = b.forward(&x)?;
            }
            skips.push(x.clone());
        }
        skips.pop();
        for level in &self.decoder {
            let up = relu(&level.reduce.forward(&level.up.forward(&x)?)?)?;
            let skip = skips.pop().expect("one skip per decoder level");
            x = level.block.forward(&(up + skip)?)?;
        }
        Ok((xs + self.tail.forward(&x)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn output_has_the_input_shape_and_gradients_reach_every_parameter() -> Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let cfg = RestoreConfig { width: 8, levels: 3, ..RestoreConfig::default() };
        let net = Restorer::new(&store, &cfg)?;
        let xs = Tensor::rand(0f32, 1.0, (2, 3, 16, 24), &Device::Cpu)?;
        let ys = net.forward(&xs, true)?;
        assert_eq!(ys.dims(), xs.dims());
        // Untrained, it is the identity; give the tail weights so gradients reach everything.
        assert_eq!((&ys - &xs)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        let tail = store.var("tail.weight").unwrap();
        tail.set(&Tensor::randn(0f32, 0.1, tail.dims(), &Device::Cpu)?)?;
        let ys = net.forward(&xs, true)?;
        let grads = (ys - &xs)?.sqr()?.mean_all()?.backward()?;
        for (name, var, _) in store.trainable() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
            assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0, "{name}: zero gradient");
        }
        assert!(net.forward(&Tensor::zeros((1, 3, 18, 24), candle_core::DType::F32, &Device::Cpu)?, false).is_err());
        Ok(())
    }
}
