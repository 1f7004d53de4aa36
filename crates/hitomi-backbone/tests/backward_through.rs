//! Training works through every layer: a gradient reaches every trainable tensor of ResNets with
//! the torchvision stem (7x7 stride-2 conv, 3x3 stride-2 max-pool) and of the small variant.

use candle_core::{Device, Tensor};
use hitomi_backbone::{Arch, Backbone, ResNet, ResNetConfig};
use hitomi_core::ParamStore;

fn every_tensor_gets_a_gradient(cfg: &ResNetConfig, side: usize) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(0, &dev);
    let net = ResNet::new(&store.root(), cfg)?;
    let x = Tensor::randn(0f32, 1.0, (2, cfg.in_channels, side, side), &dev)?;
    let feats = net.forward(&x, true)?;
    let mut loss = Tensor::new(0f32, &dev)?;
    for f in &feats {
        loss = (loss + f.sqr()?.mean_all()?)?;
    }
    let grads = loss.backward()?;
    let mut missing = Vec::new();
    for (name, var, _) in store.trainable() {
        match grads.get(var.as_tensor()) {
            Some(g) if g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0 => {}
            _ => missing.push(name),
        }
    }
    assert!(missing.is_empty(), "{:?}: no gradient for {missing:?}", cfg.stem);
    Ok(())
}

#[test]
fn gradients_reach_every_layer_including_the_max_pool_stem() -> anyhow::Result<()> {
    let mut tv_like = ResNetConfig::from_arch(Arch::Resnet18, 3);
    // torchvision's stem and stage layout, thinner so the test is quick.
    tv_like.widths = vec![8, 16, 16, 32];
    tv_like.stem.channels = 8;
    tv_like.depths = vec![1, 1, 1, 1];
    every_tensor_gets_a_gradient(&tv_like, 64)?;
    let mut bottleneck = ResNetConfig::from_arch(Arch::Resnet50, 3);
    bottleneck.widths = vec![4, 8, 8, 8];
    bottleneck.stem.channels = 8;
    bottleneck.depths = vec![1, 1, 1, 1];
    every_tensor_gets_a_gradient(&bottleneck, 64)?;
    every_tensor_gets_a_gradient(&ResNetConfig::from_arch(Arch::Small, 1), 28)
}
