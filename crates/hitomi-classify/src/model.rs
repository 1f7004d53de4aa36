//! The classifier: backbone -> global average pool -> linear (`fc`, torchvision's name).

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_backbone::{Backbone, ResNet, ResNetConfig};
use hitomi_core::ParamStore;
use hitomi_nn::pool::global_avg_pool;
use hitomi_nn::Linear;

use crate::config::ClassifyConfig;

pub struct Classifier {
    pub backbone: ResNet,
    pub fc: Linear,
    mean: Tensor,
    std: Tensor,
}

impl Classifier {
    pub fn new(store: &ParamStore, cfg: &ClassifyConfig, num_classes: usize) -> Result<Self> {
        let backbone = ResNet::new(&store.root(), &ResNetConfig::from_arch(cfg.arch, cfg.channels))?;
        let c = *backbone.out_channels().last().expect("a backbone has levels");
        let fc = Linear::new(&store.root().pp("fc").group("head"), c, num_classes)?;
        let (mean, std) = cfg.normalize.tensors(&store.device())?;
        Ok(Self { backbone, fc, mean, std })
    }

    /// Normalises raw [0, 1] images: (B, C, H, W) -> (B, C, H, W).
    pub fn normalize(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?)
    }

    /// xs: (B, C, H, W) in [0, 1] -> logits (B, num_classes).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let feats = self.backbone.forward(&self.normalize(xs)?, train)?;
        let pooled = global_avg_pool(feats.last().expect("a backbone has levels"))?;
        Ok(self.fc.forward(&pooled)?)
    }
}
