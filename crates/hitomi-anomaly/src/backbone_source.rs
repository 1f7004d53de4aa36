//! Loading a frozen feature backbone from any weights file hitomi can read: a hitomi run or model of
//! any task (its config names the architecture and normalisation), or a torchvision ResNet saved as
//! safetensors (architecture recognised from its tensors, ImageNet normalisation).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use hitomi_backbone::{Arch, ResNet, ResNetConfig};
use hitomi_core::checkpoint::read_weights;
use hitomi_core::ParamStore;
use hitomi_data::Normalize;
use hitomi_train::run_dir::{model_tensors, resolve_weights};

/// A backbone ready for feature extraction.
pub struct FrozenBackbone {
    pub net: ResNet,
    pub store: ParamStore,
    pub arch: Arch,
    pub channels: usize,
    pub normalize: Normalize,
    pub source: String,
}

/// The architecture of a ResNet state dict, from its stem and which blocks exist.
pub fn arch_from_tensors(t: &HashMap<String, Tensor>, name: &str) -> Result<(Arch, usize)> {
    let stem = t.get("conv1.weight").with_context(|| {
        format!("{name}: no `conv1.weight`; expected the weights of a hitomi model or a torchvision ResNet")
    })?;
    let d = stem.dims();
    if d.len() != 4 {
        bail!("{name}: `conv1.weight` has shape {d:?}; expected (out, in, k, k)");
    }
    let arch = match (d[0], d[2]) {
        (16, 3) => Arch::Small,
        (64, 7) if t.contains_key("layer1.0.conv3.weight") => Arch::Resnet50,
        (64, 7) if t.contains_key("layer3.5.conv1.weight") => Arch::Resnet34,
        (64, 7) => Arch::Resnet18,
        _ => bail!("{name}: `conv1.weight` of shape {d:?} matches no known ResNet stem"),
    };
    Ok((arch, d[1]))
}

/// Loads the backbone tensors of `path` (a file or run folder); other tensors (heads) are ignored,
/// a missing or mis-shaped backbone tensor is an error listing all of them.
pub fn load_backbone(path: &Path, device: &Device) -> Result<FrozenBackbone> {
    let file = resolve_weights(path)?;
    let name = file.display().to_string();
    let w = read_weights(&file)?;
    let tensors = model_tensors(&w);
    let (arch, channels) = arch_from_tensors(&tensors, &name)?;
    // A hitomi file says how its inputs were normalised; torchvision weights expect ImageNet's.
    let normalize = match w.meta("hitomi.config").and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()) {
        Some(cfg) if cfg.get("normalize").is_some() => serde_json::from_value(cfg["normalize"].clone())
            .with_context(|| format!("{name}: bad normalize in hitomi.config"))?,
        _ if channels == 3 => Normalize::imagenet(),
        _ => Normalize { mean: vec![0.5; channels], std: vec![0.25; channels] },
    };
    normalize.validate(channels).with_context(|| name.clone())?;
    let store = ParamStore::new(0, device);
    let net = ResNet::new(&store.root(), &ResNetConfig::from_arch(arch, channels))?;
    store.load_checked(&tensors, &name, &|_| true)?;
    Ok(FrozenBackbone { net, store, arch, channels, normalize, source: name })
}
