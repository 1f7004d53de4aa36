//! Geometric self-ensemble (x8, as EDSR): the restorer runs on the 8 flips/rotations of an image and
//! the outputs, mapped back, are averaged. The network is not exactly equivariant to these
//! symmetries, so its errors differ between views and partly cancel; the cost is 8 passes.

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use hitomi_data::Planar;

use crate::data::{dihedral, dihedral_inverse};
use crate::model::Restorer;
use crate::tiles;

/// How `eval` and `predict` run the restorer.
#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferenceOptions {
    /// Average the restorer over the 8 flips/rotations of each image (x8 geometric self-ensemble, as
    /// EDSR): usually a little more PSNR, at 8 times the time.
    #[arg(long)]
    pub self_ensemble: bool,
}

/// Restores `img` with tiles (as [`tiles::restore`]) once per symmetry and averages the 8 outputs
/// after undoing each symmetry. img: (3, H, W) on 0..255 -> (3, H, W) on 0..255, unclamped.
pub fn restore_self_ensemble(
    model: &Restorer,
    img: &Planar,
    tile: usize,
    overlap: usize,
    batch: usize,
    device: &Device,
) -> Result<Planar> {
    let mut acc = Planar::zeros(img.channels, img.height, img.width);
    for k in 0..8 {
        let out = tiles::restore(model, &dihedral(img, k), tile, overlap, batch, device)?;
        for (a, v) in acc.data.iter_mut().zip(dihedral_inverse(&out, k).data) {
            *a += v;
        }
    }
    acc.data.iter_mut().for_each(|a| *a /= 8.0);
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RestoreConfig;
    use candle_core::Tensor;
    use hitomi_core::ParamStore;

    #[test]
    fn with_the_identity_model_the_ensemble_is_the_single_pass() -> Result<()> {
        // The untrained restorer is the identity (its tail is zero): every view must come back to
        // the input's place, on a non-square image whose sides are not multiples of the tile.
        let store = ParamStore::new(0, &Device::Cpu);
        let cfg = RestoreConfig { width: 4, levels: 2, ..RestoreConfig::default() };
        let model = Restorer::new(&store, &cfg)?;
        let img = Planar::new(3, 37, 70, (0..3 * 37 * 70).map(|i| ((i * 13) % 251) as f32).collect())?;
        let single = tiles::restore(&model, &img, 32, 8, 3, &Device::Cpu)?;
        let ens = restore_self_ensemble(&model, &img, 32, 8, 3, &Device::Cpu)?;
        assert_eq!((ens.channels, ens.height, ens.width), (3, 37, 70));
        let err = ens.data.iter().zip(&single.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-3, "max difference {err}");
        Ok(())
    }

    #[test]
    fn with_a_real_network_the_ensemble_is_the_mean_of_the_views() -> Result<()> {
        // A random network differs between views; the ensemble must be their mapped-back mean.
        let store = ParamStore::new(2, &Device::Cpu);
        let cfg = RestoreConfig { width: 4, levels: 2, ..RestoreConfig::default() };
        let model = Restorer::new(&store, &cfg)?;
        let tail = store.var("tail.weight").unwrap();
        tail.set(&Tensor::randn(0f32, 0.05, tail.dims(), &Device::Cpu)?)?;
        let img = Planar::new(3, 24, 40, (0..3 * 24 * 40).map(|i| ((i * 37) % 256) as f32).collect())?;
        let ens = restore_self_ensemble(&model, &img, 64, 8, 2, &Device::Cpu)?;
        let views: Vec<Planar> = (0..8)
            .map(|k| Ok(dihedral_inverse(&tiles::restore(&model, &dihedral(&img, k), 64, 8, 2, &Device::Cpu)?, k)))
            .collect::<Result<_>>()?;
        let spread = views[0].data.iter().zip(&views[5].data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(spread > 0.01, "the views should differ for a random network");
        for (i, e) in ens.data.iter().enumerate() {
            let mean = views.iter().map(|v| v.data[i]).sum::<f32>() / 8.0;
            assert!((e - mean).abs() < 1e-3, "value {i}: {e} vs {mean}");
        }
        Ok(())
    }
}
