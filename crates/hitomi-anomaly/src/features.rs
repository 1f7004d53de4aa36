//! Descriptors from a frozen backbone: one pooled vector per image (PANDA) and one locally averaged
//! vector per position of a mid-level map (PatchCore's layer2 + layer3, the coarser resized to the
//! finer), all in eval mode without gradients.

use anyhow::Result;
use candle_core::{Tensor, D};
use hitomi_backbone::Backbone;
use hitomi_nn::pool::{avg_pool2d, global_avg_pool};
use hitomi_nn::upsample::upsample_bilinear2d;

use crate::backbone_source::FrozenBackbone;

/// Features of one batch.
pub struct Features {
    /// (B, D_img): global average of the last level.
    pub image: Tensor,
    /// (B, D_patch, h, w) at the resolution of the finest patch level.
    pub patches: Tensor,
}

/// Average over a `window` x `window` neighbourhood, same size out (edges replicated).
/// xs: (B, C, h, w) -> (B, C, h, w)
fn local_average(xs: &Tensor, window: usize) -> Result<Tensor> {
    if window <= 1 {
        return Ok(xs.clone());
    }
    let r = window / 2;
    let padded = xs.pad_with_same(2, r, r)?.pad_with_same(3, r, r)?;
    Ok(avg_pool2d(&padded, window, 1)?)
}

/// Which levels make which descriptor.
pub struct FeatureSpec<'a> {
    /// Pooled into the image feature (empty = the last level).
    pub image_levels: &'a [usize],
    /// Scale each pooled level to unit length before joining them.
    pub unit_image_levels: bool,
    /// Pool each image level to grid x grid cells (1 = global).
    pub image_grid: usize,
    /// Joined into patch features (0 = finest).
    pub patch_levels: &'a [usize],
    /// Side of the local averaging window of patch features.
    pub window: usize,
}

/// Average over grid x grid cells, flattened: (B, C, h, w) -> (B, C * grid^2); the cells must tile
/// the map exactly.
fn grid_pool(xs: &Tensor, grid: usize) -> Result<Tensor> {
    if grid == 1 {
        return Ok(global_avg_pool(xs)?);
    }
    let (_, _, h, w) = xs.dims4()?;
    anyhow::ensure!(
        h % grid == 0 && w % grid == 0 && h == w,
        "image_grid {grid} does not tile a {h}x{w} feature map; choose a grid that divides it"
    );
    Ok(avg_pool2d(xs, h / grid, h / grid)?.flatten_from(1)?)
}

/// xs: (B, C, H, W) in [0, 1] -> features.
pub fn extract(bb: &FrozenBackbone, xs: &Tensor, spec: &FeatureSpec) -> Result<Features> {
    let (levels, window) = (spec.patch_levels, spec.window);
    let (mean, std) = bb.normalize.tensors(xs.device())?;
    let normed = xs.broadcast_sub(&mean)?.broadcast_div(&std)?;
    let maps = bb.net.forward(&normed, false)?;
    let last = [maps.len() - 1];
    let image_levels = if spec.image_levels.is_empty() { &last[..] } else { spec.image_levels };
    let mut pooled = Vec::with_capacity(image_levels.len());
    for &l in image_levels {
        let v = grid_pool(&maps[l], spec.image_grid)?;
        pooled.push(if spec.unit_image_levels {
            v.broadcast_div(&(row_sq_norms(&v)?.sqrt()? + 1e-12)?.unsqueeze(1)?)?
        } else {
            v
        });
    }
    let image = Tensor::cat(&pooled, 1)?;
    let finest = levels.iter().copied().min().expect("validated non-empty");
    let (_, _, h, w) = maps[finest].dims4()?;
    let mut parts = Vec::with_capacity(levels.len());
    for &l in levels {
        let m = local_average(&maps[l], window)?;
        let m = if m.dims()[2..] == [h, w] { m } else { upsample_bilinear2d(&m, (h, w))? };
        parts.push(m);
    }
    let patches = Tensor::cat(&parts, 1)?;
    Ok(Features { image: image.detach(), patches: patches.detach() })
}

/// (B, D, h, w) -> (B * h * w, D), rows ordered by image then position.
pub fn patch_rows(patches: &Tensor) -> Result<Tensor> {
    let (b, d, h, w) = patches.dims4()?;
    Ok(patches.permute((0, 2, 3, 1))?.reshape((b * h * w, d))?.contiguous()?)
}

/// Squared L2 norm of each row: (N, D) -> (N).
pub fn row_sq_norms(xs: &Tensor) -> Result<Tensor> {
    Ok(xs.sqr()?.sum(D::Minus1)?)
}
