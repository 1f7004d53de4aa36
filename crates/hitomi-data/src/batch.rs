//! Assembly of a classification batch (images + labels as tensors), augmenting each sample from its
//! own seeded stream so a batch is the same whatever the thread count or resume point.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use hitomi_core::SeededRng;
use rayon::prelude::*;

use crate::augment::{augment, AugmentConfig};
use crate::classification::ClassificationData;

/// The samples `idx` of `data` as tensors, augmented with `aug` if given.
///
/// Sample `i` is augmented with `SeededRng::derive(seed, &[epoch, i])`, so its draw depends only on
/// (seed, epoch, dataset index), never on the batch it lands in or on thread scheduling.
///
/// Returns xs: (B, C, H, W) f32 in [0, 1] (bilinear sampling with zero fill keeps augmented
/// values there) and ys: (B) u32 class indices.
pub fn classification_batch(
    data: &ClassificationData,
    idx: &[usize],
    epoch: usize,
    seed: u64,
    aug: Option<&AugmentConfig>,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if let Some(&i) = idx.iter().find(|&&i| i >= data.len()) {
        bail!("batch index {i} out of range; the dataset holds {} samples", data.len());
    }
    let aug = match aug {
        Some(a) if !a.is_identity() => {
            a.validate()?;
            Some(a)
        }
        _ => None,
    };
    let (c, h, w) = data.shape();
    let images: Vec<Vec<f32>> = idx
        .par_iter()
        .map(|&i| {
            let img = data.image_f32(i);
            match aug {
                Some(cfg) => augment(&img, c, h, w, cfg, &mut SeededRng::derive(seed, &[epoch as u64, i as u64])),
                None => img,
            }
        })
        .collect();
    let xs: Vec<f32> = images.concat();
    let ys: Vec<u32> = idx.iter().map(|&i| data.labels[i] as u32).collect();
    let b = idx.len();
    Ok((Tensor::from_vec(xs, (b, c, h, w), device)?, Tensor::from_vec(ys, b, device)?))
}
