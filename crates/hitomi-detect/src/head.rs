//! The FCOS head (Tian et al. 2019), shared by all pyramid levels: a classification tower ending
//! in per-class logits and centerness, and a box tower ending in the four distances from each
//! location to its box's sides. Convolutions are shared across levels, batch norms are not (each
//! level has its own statistics, which is why FCOS uses group norm there).

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};
use hitomi_nn::{BatchNorm2d, Conv2d, Conv2dConfig};

/// Prior probability of an object at initialisation (RetinaNet): the classification bias starts
/// at -log((1 - p) / p) so the focal loss is not swamped by background in the first steps.
const PRIOR: f32 = 0.01;

/// A tower: shared 3x3 convs, per-level BN, ReLU.
struct Tower {
    convs: Vec<Conv2d>,
    /// bns[level][layer]
    bns: Vec<Vec<BatchNorm2d>>,
}

impl Tower {
    fn new(p: &ParamPath, channels: usize, layers: usize, levels: usize) -> Result<Self> {
        let mut convs = Vec::new();
        for i in 0..layers {
            convs.push(Conv2d::new(&p.pp(format!("conv{i}")), channels, channels, Conv2dConfig::k(3, 1))?);
        }
        let mut bns = Vec::new();
        for l in 0..levels {
            bns.push(
                (0..layers).map(|i| BatchNorm2d::new(&p.pp(format!("bn{l}_{i}")), channels)).collect::<Result<_>>()?,
            );
        }
        Ok(Self { convs, bns })
    }

    fn forward(&self, x: &Tensor, level: usize, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, bn) in self.convs.iter().zip(&self.bns[level]) {
            x = bn.forward_relu(&conv.forward(&x)?, train)?;
        }
        Ok(x)
    }
}

/// One level's raw outputs.
pub struct LevelOutput {
    /// (B, K, H, W) class logits.
    pub cls: Tensor,
    /// (B, 4, H, W) distances left, top, right, bottom in pixels (positive).
    pub ltrb: Tensor,
    /// (B, 1, H, W) centerness logits.
    pub ctr: Tensor,
}

pub struct FcosHead {
    cls_tower: Tower,
    box_tower: Tower,
    cls_out: Conv2d,
    box_out: Conv2d,
    ctr_out: Conv2d,
    /// (L) learned per-level scale of the box logits (FCOS's `Scale`).
    scales: Tensor,
    strides: Vec<usize>,
}

/// A 3x3 output conv with small normal weights (std 0.01) and a constant bias, as RetinaNet/FCOS.
fn output_conv(p: &ParamPath, c_in: usize, c_out: usize, bias: f32) -> Result<Conv2d> {
    let weight = p.weight("weight", &[c_out, c_in, 3, 3], Init::Normal { std: 0.01 })?;
    let bias = p.no_decay("bias", &[c_out], Init::Const(bias))?;
    Ok(Conv2d { weight, bias: Some(bias), cfg: Conv2dConfig { bias: true, ..Conv2dConfig::k(3, 1) } })
}

impl FcosHead {
    pub fn new(p: &ParamPath, channels: usize, convs: usize, num_classes: usize, strides: &[usize]) -> Result<Self> {
        let levels = strides.len();
        let prior_bias = -((1.0 - PRIOR) / PRIOR).ln();
        Ok(Self {
            cls_tower: Tower::new(&p.pp("cls_tower"), channels, convs, levels)?,
            box_tower: Tower::new(&p.pp("box_tower"), channels, convs, levels)?,
            cls_out: output_conv(&p.pp("cls_logits"), channels, num_classes, prior_bias)?,
            box_out: output_conv(&p.pp("box_ltrb"), channels, 4, 0.0)?,
            ctr_out: output_conv(&p.pp("centerness"), channels, 1, 0.0)?,
            scales: p.no_decay("scales", &[levels], Init::Const(1.0))?,
            strides: strides.to_vec(),
        })
    }

    /// x: (B, C, H, W) of pyramid level `level` -> its outputs. Distances are exp(scale * logit) *
    /// stride: positive, and at initialisation one stride, the typical size of an object there.
    pub fn forward(&self, x: &Tensor, level: usize, train: bool) -> Result<LevelOutput> {
        let c = self.cls_tower.forward(x, level, train)?;
        let b = self.box_tower.forward(x, level, train)?;
        let cls = self.cls_out.forward(&c)?;
        // Centerness on the box tower (FCOS's later "centerness on reg" variant, better boxes).
        let ctr = self.ctr_out.forward(&b)?;
        let scale = self.scales.narrow(0, level, 1)?.reshape((1, 1, 1, 1))?;
        let logits = self.box_out.forward(&b)?.broadcast_mul(&scale)?;
        // The clamp keeps exp finite while a level is still untrained.
        let ltrb = (logits.clamp(-8f32, 8f32)?.exp()? * self.strides[level] as f64)?;
        Ok(LevelOutput { cls, ltrb, ctr })
    }
}
