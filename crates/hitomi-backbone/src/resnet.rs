//! The ResNet family from one config: a small variant for 28-128 px inputs and torchvision's
//! resnet18/34/50 with the same tensor names, so a torchvision state_dict saved as safetensors
//! loads directly (`conv1`, `bn1`, `layer{1..4}.{i}.{conv,bn}{1..3}`, `layerN.0.downsample.{0,1}`).

use anyhow::{bail, Result};
use candle_core::Tensor;
use hitomi_core::ParamPath;
use hitomi_nn::pool::max_pool2d;
use hitomi_nn::{Activation, BasicBlock, Bottleneck, Conv2dConfig, ConvBnAct};
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;

/// Named architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Basic blocks, widths 16-32-64-128, a 3x3 stride-1 stem without max-pool: for 28-128 px.
    Small,
    Resnet18,
    Resnet34,
    Resnet50,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

/// The stem: conv k x k stride s -> BN -> ReLU, then optionally max-pool 3x3 stride 2 padding 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemConfig {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub max_pool: bool,
}

/// Everything that defines a ResNet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    pub in_channels: usize,
    pub block: BlockKind,
    pub stem: StemConfig,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Inner width per stage (a bottleneck stage outputs 4x this).
    pub widths: Vec<usize>,
}

impl ResNetConfig {
    pub fn from_arch(arch: Arch, in_channels: usize) -> Self {
        let tv_stem = StemConfig { channels: 64, kernel: 7, stride: 2, max_pool: true };
        let tv_widths = vec![64, 128, 256, 512];
        match arch {
            Arch::Small => Self {
                in_channels,
                block: BlockKind::Basic,
                stem: StemConfig { channels: 16, kernel: 3, stride: 1, max_pool: false },
                depths: vec![1, 1, 1, 1],
                widths: vec![16, 32, 64, 128],
            },
            Arch::Resnet18 => Self {
                in_channels,
                block: BlockKind::Basic,
                stem: tv_stem,
                depths: vec![2, 2, 2, 2],
                widths: tv_widths,
            },
            Arch::Resnet34 => Self {
                in_channels,
                block: BlockKind::Basic,
                stem: tv_stem,
                depths: vec![3, 4, 6, 3],
                widths: tv_widths,
            },
            Arch::Resnet50 => Self {
                in_channels,
                block: BlockKind::Bottleneck,
                stem: tv_stem,
                depths: vec![3, 4, 6, 3],
                widths: tv_widths,
            },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.depths.is_empty() || self.depths.len() != self.widths.len() {
            bail!(
                "resnet config: `depths` ({:?}) and `widths` ({:?}) must be non-empty and of equal length",
                self.depths,
                self.widths
            );
        }
        if self.depths.contains(&0) || self.widths.contains(&0) || self.stem.channels == 0 {
            bail!("resnet config: depths, widths and stem.channels must be positive");
        }
        if !matches!(self.in_channels, 1 | 3) {
            bail!("resnet config: in_channels is {}; expected 1 or 3", self.in_channels);
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Block {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Block {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Block::Basic(b) => b.forward(xs, train),
            Block::Bottleneck(b) => b.forward(xs, train),
        }
    }
}

/// A ResNet returning the output of every stage (`layer1`, `layer2`, ...), finest first.
#[derive(Clone, Debug)]
pub struct ResNet {
    pub config: ResNetConfig,
    stem: ConvBnAct,
    stages: Vec<Vec<Block>>,
    out_channels: Vec<usize>,
    strides: Vec<usize>,
}

impl ResNet {
    /// Creates the tensors under `p` (use the store root to keep torchvision names).
    pub fn new(p: &ParamPath, config: &ResNetConfig) -> Result<Self> {
        config.validate()?;
        let p = p.group("backbone");
        let st = &config.stem;
        let stem_cfg =
            Conv2dConfig { kernel: st.kernel, stride: st.stride, padding: st.kernel / 2, dilation: 1, bias: false };
        let stem =
            ConvBnAct::new(&p.pp("conv1"), &p.pp("bn1"), config.in_channels, st.channels, stem_cfg, Activation::Relu)?;
        let mut c_in = st.channels;
        let mut stride = st.stride * if st.max_pool { 2 } else { 1 };
        let (mut stages, mut out_channels, mut strides) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (&depth, &width)) in config.depths.iter().zip(&config.widths).enumerate() {
            let s = if i == 0 { 1 } else { 2 };
            stride *= s;
            let lp = p.pp(format!("layer{}", i + 1));
            let mut blocks = Vec::with_capacity(depth);
            for j in 0..depth {
                let bs = if j == 0 { s } else { 1 };
                let bp = lp.pp(j.to_string());
                let block = match config.block {
                    BlockKind::Basic => {
                        let b = Block::Basic(BasicBlock::new(&bp, c_in, width, bs)?);
                        c_in = width;
                        b
                    }
                    BlockKind::Bottleneck => {
                        let b = Block::Bottleneck(Bottleneck::new(&bp, c_in, width, bs)?);
                        c_in = width * Bottleneck::EXPANSION;
                        b
                    }
                };
                blocks.push(block);
            }
            stages.push(blocks);
            out_channels.push(c_in);
            strides.push(stride);
        }
        Ok(Self { config: config.clone(), stem, stages, out_channels, strides })
    }

    /// xs: (B, C_in, H, W) -> stem output (B, stem.channels, H/s, W/s), after the max-pool if any.
    pub fn forward_stem(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self.stem.forward(xs, train)?;
        Ok(if self.config.stem.max_pool { max_pool2d(&ys, 3, 2, 1)? } else { ys })
    }
}

impl Backbone for ResNet {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let c = xs.dims4()?.1;
        if c != self.config.in_channels {
            bail!(
                "backbone expects {} input channel(s), got a tensor of shape {:?}",
                self.config.in_channels,
                xs.dims()
            );
        }
        let mut ys = self.forward_stem(xs, train)?;
        let mut feats = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            for block in stage {
                ys = block.forward(&ys, train)?;
            }
            feats.push(ys.clone());
        }
        Ok(feats)
    }

    fn out_channels(&self) -> Vec<usize> {
        self.out_channels.clone()
    }

    fn strides(&self) -> Vec<usize> {
        self.strides.clone()
    }

    fn in_channels(&self) -> usize {
        self.config.in_channels
    }
}
