//! The detector: the shared backbone, the feature pyramid over its coarsest levels, and the FCOS
//! head on every pyramid level; outputs are flattened over levels so the loss and the decoder see
//! one list of locations.

use anyhow::{ensure, Result};
use candle_core::Tensor;
use hitomi_backbone::{Backbone, ResNet, ResNetConfig};
use hitomi_core::ParamStore;

use crate::config::DetectConfig;
use crate::head::FcosHead;
use crate::neck::Fpn;

/// One pyramid level's grid of locations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub stride: usize,
    pub height: usize,
    pub width: usize,
}

impl Grid {
    pub fn len(&self) -> usize {
        self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The head's outputs over all levels; N = sum of the grids' sizes, level-major, row-major inside.
pub struct DetectorOutput {
    /// (B, N, K) class logits.
    pub cls: Tensor,
    /// (B, N, 4) distances left, top, right, bottom in pixels of the model's input.
    pub ltrb: Tensor,
    /// (B, N) centerness logits.
    pub ctr: Tensor,
    pub grids: Vec<Grid>,
}

pub struct Detector {
    pub backbone: ResNet,
    fpn: Fpn,
    head: FcosHead,
    mean: Tensor,
    std: Tensor,
    pub num_classes: usize,
    backbone_levels: usize,
}

/// (B, C, H, W) -> (B, H*W, C).
fn flatten_level(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()?)
}

impl Detector {
    pub fn new(store: &ParamStore, cfg: &DetectConfig, num_classes: usize) -> Result<Self> {
        let backbone = ResNet::new(&store.root(), &ResNetConfig::from_arch(cfg.arch, cfg.channels))?;
        let chans = backbone.out_channels();
        let strides = backbone.strides();
        let n = cfg.fpn_backbone_levels;
        ensure!(
            n <= chans.len(),
            "config: fpn_backbone_levels = {n} but the {:?} backbone has {} levels",
            cfg.arch,
            chans.len()
        );
        let first = chans.len() - n;
        let neck = store.root().pp("neck").group("head");
        let fpn = Fpn::new(&neck, &chans[first..], &strides[first..], cfg.fpn_extra_levels, cfg.neck_channels)?;
        let head = FcosHead::new(
            &store.root().pp("head").group("head"),
            cfg.neck_channels,
            cfg.head_convs,
            num_classes,
            &fpn.strides,
        )?;
        let (mean, std) = cfg.normalize.tensors(&store.device())?;
        Ok(Self { backbone, fpn, head, mean, std, num_classes, backbone_levels: n })
    }

    /// Strides of the pyramid levels, finest first.
    pub fn strides(&self) -> &[usize] {
        &self.fpn.strides
    }

    /// xs: (B, C, H, W) in [0, 1] -> the head's outputs over all levels.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<DetectorOutput> {
        let normed = xs.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let feats = self.backbone.forward(&normed, train)?;
        let used = &feats[feats.len() - self.backbone_levels..];
        let levels = self.fpn.forward(used)?;
        let (mut cls, mut ltrb, mut ctr, mut grids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (l, x) in levels.iter().enumerate() {
            let (_, _, h, w) = x.dims4()?;
            let o = self.head.forward(x, l, train)?;
            cls.push(flatten_level(&o.cls)?);
            ltrb.push(flatten_level(&o.ltrb)?);
            ctr.push(flatten_level(&o.ctr)?.squeeze(2)?);
            grids.push(Grid { stride: self.fpn.strides[l], height: h, width: w });
        }
        Ok(DetectorOutput {
            cls: Tensor::cat(&cls, 1)?,
            ltrb: Tensor::cat(&ltrb, 1)?,
            ctr: Tensor::cat(&ctr, 1)?,
            grids,
        })
    }
}
