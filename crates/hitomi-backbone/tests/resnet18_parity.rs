//! Reproduces `reference/resnet18/io.safetensors`: torchvision resnet18 (eval mode, randomised BN
//! statistics) loaded from its state_dict saved as safetensors; stem, layer1..4, pooled, logits.

use candle_core::{Device, Module, D};
use hitomi_backbone::{Arch, Backbone, ResNet, ResNetConfig};
use hitomi_core::checkpoint::read_weights;
use hitomi_core::testing::{assert_close, load_reference, max_rel_error, reference_dir};
use hitomi_core::ParamStore;
use hitomi_nn::Linear;

#[test]
fn resnet18_matches_torchvision_within_1e4() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(0, &dev);
    let net = ResNet::new(&store.root(), &ResNetConfig::from_arch(Arch::Resnet18, 3))?;
    let fc = Linear::new(&store.root().pp("fc").group("head"), 512, 1000)?;
    let w = read_weights(&reference_dir().join("resnet18/weights.safetensors"))?;
    // torchvision stores a step counter per BN that we do not use.
    store.load_checked(&w.tensors, "resnet18/weights.safetensors", &|n| n.ends_with("num_batches_tracked"))?;

    let io = load_reference("resnet18/io.safetensors")?;
    let x = &io["input"];
    let stem = net.forward_stem(x, false)?;
    let feats = net.forward(x, false)?;
    let pooled = feats[3].mean(D::Minus1)?.mean(D::Minus1)?;
    let logits = fc.forward(&pooled)?;
    let mut report = Vec::new();
    for (name, got) in [
        ("stem", &stem),
        ("layer1", &feats[0]),
        ("layer2", &feats[1]),
        ("layer3", &feats[2]),
        ("layer4", &feats[3]),
        ("pooled", &pooled),
        ("logits", &logits),
    ] {
        assert_close(name, got, &io[name], 1e-4, 1e-4, false)?;
        report.push(format!("{name} {:.2e}", max_rel_error(got, &io[name])?));
    }
    println!("resnet18 parity, max |err| / max |exp|: {}", report.join(", "));
    assert_eq!(net.strides(), vec![4, 8, 16, 32]);
    assert_eq!(net.out_channels(), vec![64, 128, 256, 512]);
    Ok(())
}

#[test]
fn resnet34_and_50_have_torchvision_shapes() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for (arch, n, last) in [(Arch::Resnet34, 218, 512), (Arch::Resnet50, 320, 2048)] {
        let store = ParamStore::new(0, &dev);
        let net = ResNet::new(&store.root(), &ResNetConfig::from_arch(arch, 3))?;
        // torchvision state_dict minus fc.{weight,bias} and num_batches_tracked per BN.
        let n_bn = store.entries().iter().filter(|(k, _)| k.ends_with("running_mean")).count();
        assert_eq!(store.entries().len() + n_bn + 2, n, "{arch:?}: tensor count");
        assert_eq!(*net.out_channels().last().unwrap(), last);
        let x = candle_core::Tensor::zeros((1, 3, 64, 64), candle_core::DType::F32, &dev)?;
        let f = net.forward(&x, false)?;
        assert_eq!(f[3].dims(), &[1, last, 2, 2]);
    }
    Ok(())
}
