//! Inference on images of any size with bounded memory: overlapping tiles, each restored on its
//! own, blended with weights that ramp down across the overlap so no seam shows.

use anyhow::Result;
use candle_core::{Device, Tensor};
use hitomi_data::Planar;

use crate::model::Restorer;

/// Tile origins along one axis of length `n`: tiles of `tile` stepping by `tile - overlap`, the last
/// one flush with the end (a single origin 0 when n <= tile).
pub fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let step = tile - overlap;
    let mut starts: Vec<usize> = (0..).map(|i| i * step).take_while(|&s| s + tile < n).collect();
    starts.push(n - tile);
    starts
}

/// Blending weight of position i in a tile of length t: 1 inside, falling linearly to
/// 1/(overlap+1) at an edge that meets a neighbour; edges on the image border keep weight 1.
fn ramp(i: usize, t: usize, overlap: usize, first: bool, last: bool) -> f32 {
    let r = (overlap + 1) as f32;
    let lo = if first { 1.0 } else { ((i + 1) as f32 / r).min(1.0) };
    let hi = if last { 1.0 } else { ((t - i) as f32 / r).min(1.0) };
    lo.min(hi)
}

/// Replicates edge pixels so the image is at least `min_h` x `min_w` and its sides are multiples of
/// `multiple`. (C, H, W) -> (C, H', W')
fn pad_replicate(img: &Planar, min_h: usize, min_w: usize, multiple: usize) -> Planar {
    let round = |n: usize| n.div_ceil(multiple) * multiple;
    let (h, w) = (round(img.height.max(min_h)), round(img.width.max(min_w)));
    if (h, w) == (img.height, img.width) {
        return img.clone();
    }
    let mut out = Planar::zeros(img.channels, h, w);
    for c in 0..img.channels {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for y in 0..h {
            let sy = y.min(img.height - 1);
            for x in 0..w {
                dst[y * w + x] = src[sy * img.width + x.min(img.width - 1)];
            }
        }
    }
    out
}

/// Restores a (3, H, W) image on the 0..255 scale; returns (3, H, W) on the same scale, unclamped.
/// Each tile is `tile` x `tile` (the image is edge-padded when smaller or not a multiple of the
/// model's size multiple); at most `batch` tiles are in memory at once.
pub fn restore(
    model: &Restorer,
    img: &Planar,
    tile: usize,
    overlap: usize,
    batch: usize,
    device: &Device,
) -> Result<Planar> {
    let m = model.size_multiple;
    let padded = pad_replicate(img, tile.min(img.height), tile.min(img.width), m);
    let (ph, pw) = (padded.height, padded.width);
    let (th, tw) = (tile.min(ph), tile.min(pw));
    let (ys, xs) = (tile_starts(ph, th, overlap), tile_starts(pw, tw, overlap));
    let mut origins = Vec::with_capacity(ys.len() * xs.len());
    for (j, &y) in ys.iter().enumerate() {
        for (i, &x) in xs.iter().enumerate() {
            origins.push((x, y, i == 0, i + 1 == xs.len(), j == 0, j + 1 == ys.len()));
        }
    }
    let c = img.channels;
    let mut acc = vec![0f32; c * ph * pw];
    let mut wsum = vec![0f32; ph * pw];
    for chunk in origins.chunks(batch.max(1)) {
        let mut data = Vec::with_capacity(chunk.len() * c * th * tw);
        for &(x, y, ..) in chunk {
            data.extend(padded.crop(x, y, tw, th).data.iter().map(|v| v / 255.0));
        }
        let input = Tensor::from_vec(data, (chunk.len(), c, th, tw), device)?;
        let out: Vec<f32> = model.forward(&input, false)?.flatten_all()?.to_vec1()?;
        for (k, &(x, y, left, right, top, bottom)) in chunk.iter().enumerate() {
            for ty in 0..th {
                let wy = ramp(ty, th, overlap, top, bottom);
                for tx in 0..tw {
                    let wgt = wy * ramp(tx, tw, overlap, left, right);
                    let o = (y + ty) * pw + x + tx;
                    wsum[o] += wgt;
                    for ch in 0..c {
                        acc[ch * ph * pw + o] += wgt * out[((k * c + ch) * th + ty) * tw + tx] * 255.0;
                    }
                }
            }
        }
    }
    for ch in 0..c {
        for o in 0..ph * pw {
            acc[ch * ph * pw + o] /= wsum[o];
        }
    }
    Ok(Planar::new(c, ph, pw, acc)?.crop(0, 0, img.width, img.height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RestoreConfig;
    use hitomi_core::ParamStore;

    #[test]
    fn starts_cover_the_axis_with_the_overlap() {
        assert_eq!(tile_starts(100, 128, 16), vec![0]);
        assert_eq!(tile_starts(128, 128, 16), vec![0]);
        assert_eq!(tile_starts(300, 128, 16), vec![0, 112, 172]);
        for n in [129, 250, 513] {
            let s = tile_starts(n, 64, 8);
            assert_eq!(*s.last().unwrap() + 64, n);
            assert!(s.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 56));
        }
    }

    #[test]
    fn tiled_equals_whole_image_for_a_pointwise_model_and_sizes_are_kept() -> Result<()> {
        // With the tail's weights zero the restorer is the identity, so any tiling must give back
        // the input exactly: this checks the bookkeeping of tiles and weights.
        let store = ParamStore::new(0, &Device::Cpu);
        let cfg = RestoreConfig { width: 4, levels: 2, ..RestoreConfig::default() };
        let model = Restorer::new(&store, &cfg)?;
        for (name, var, _) in store.trainable() {
            if name.starts_with("tail") {
                var.set(&var.as_tensor().zeros_like()?)?;
            }
        }
        let img = Planar::new(3, 37, 70, (0..3 * 37 * 70).map(|i| (i % 251) as f32).collect())?;
        let out = restore(&model, &img, 32, 8, 3, &Device::Cpu)?;
        assert_eq!((out.channels, out.height, out.width), (3, 37, 70));
        let err = out.data.iter().zip(&img.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-3, "max error {err}");
        Ok(())
    }

    #[test]
    fn tiling_matches_one_pass_away_from_tile_edges() -> Result<()> {
        // A real (random) network: tiles with a generous overlap agree with a single pass over the
        // whole image except for the receptive-field effect at tile seams, which the ramp hides.
        let store = ParamStore::new(1, &Device::Cpu);
        let cfg = RestoreConfig { width: 4, levels: 2, ..RestoreConfig::default() };
        let model = Restorer::new(&store, &cfg)?;
        // The tail starts at zero (identity); give it weights so the network does something.
        let tail = store.var("tail.weight").unwrap();
        tail.set(&Tensor::randn(0f32, 0.05, tail.dims(), &Device::Cpu)?)?;
        let img = Planar::new(3, 64, 96, (0..3 * 64 * 96).map(|i| ((i * 37) % 256) as f32).collect())?;
        let whole = restore(&model, &img, 128, 16, 1, &Device::Cpu)?;
        let tiled = restore(&model, &img, 48, 16, 4, &Device::Cpu)?;
        let mean_abs = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        let (seam, correction) = (mean_abs(&whole.data, &tiled.data), mean_abs(&whole.data, &img.data));
        assert!(seam < 0.1 * correction, "tiles differ by {seam} levels on average; the correction is {correction}");
        Ok(())
    }
}
