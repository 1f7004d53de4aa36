//! The feature pyramid (Lin et al. 2017, FPN) over the backbone's coarsest levels: 1x1 laterals,
//! a top-down path of nearest-neighbour 2x enlargements added to the laterals, a 3x3 conv per
//! level, and extra coarser levels by stride-2 3x3 convs (FCOS's P6/P7).

use anyhow::{ensure, Result};
use candle_core::{Module, Tensor};
use hitomi_core::ParamPath;
use hitomi_nn::{upsample2d, Conv2d, Conv2dConfig, UpsampleMode};

pub struct Fpn {
    laterals: Vec<Conv2d>,
    outputs: Vec<Conv2d>,
    extras: Vec<Conv2d>,
    /// Stride of every output level, finest first.
    pub strides: Vec<usize>,
}

impl Fpn {
    /// in_channels / in_strides: of the backbone levels used, finest first; every output level has
    /// `channels` channels.
    pub fn new(
        p: &ParamPath,
        in_channels: &[usize],
        in_strides: &[usize],
        extra: usize,
        channels: usize,
    ) -> Result<Self> {
        ensure!(!in_channels.is_empty() && in_channels.len() == in_strides.len(), "fpn: need at least one level");
        let with_bias =
            |k: usize, s: usize| Conv2dConfig { kernel: k, stride: s, padding: k / 2, dilation: 1, bias: true };
        let mut laterals = Vec::new();
        let mut outputs = Vec::new();
        for (i, &c) in in_channels.iter().enumerate() {
            laterals.push(Conv2d::new(&p.pp(format!("lateral{i}")), c, channels, with_bias(1, 1))?);
            outputs.push(Conv2d::new(&p.pp(format!("output{i}")), channels, channels, with_bias(3, 1))?);
        }
        let mut strides = in_strides.to_vec();
        let mut extras = Vec::new();
        for i in 0..extra {
            extras.push(Conv2d::new(&p.pp(format!("extra{i}")), channels, channels, with_bias(3, 2))?);
            strides.push(strides.last().expect("at least one level") * 2);
        }
        Ok(Self { laterals, outputs, extras, strides })
    }

    /// feats: the backbone levels used, finest first, (B, C_i, H_i, W_i) -> pyramid levels
    /// (B, channels, H_l, W_l), finest first.
    pub fn forward(&self, feats: &[Tensor]) -> Result<Vec<Tensor>> {
        ensure!(
            feats.len() == self.laterals.len(),
            "fpn: {} levels given, {} expected",
            feats.len(),
            self.laterals.len()
        );
        let mut tops: Vec<Tensor> = Vec::with_capacity(feats.len());
        // Top-down: the coarsest lateral first, each finer one adds the enlarged coarser sum.
        for (i, f) in feats.iter().enumerate().rev() {
            let lat = self.laterals[i].forward(f)?;
            let merged = match tops.last() {
                Some(coarser) => {
                    let (_, _, h, w) = lat.dims4()?;
                    (lat + upsample2d(coarser, (h, w), UpsampleMode::Nearest)?)?
                }
                None => lat,
            };
            tops.push(merged);
        }
        tops.reverse();
        let mut out: Vec<Tensor> =
            tops.iter().zip(&self.outputs).map(|(t, c)| c.forward(t)).collect::<Result<_, _>>()?;
        for (i, e) in self.extras.iter().enumerate() {
            let last = out.last().expect("at least one level");
            // FCOS: P7 = conv(relu(P6)); P6 takes the pyramid's top directly.
            let x = if i == 0 { last.clone() } else { hitomi_nn::relu_op::relu(last)? };
            out.push(e.forward(&x)?);
        }
        Ok(out)
    }
}
