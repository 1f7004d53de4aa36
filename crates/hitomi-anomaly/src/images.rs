//! Decoding a list of image files into the (C, H, W) f32 batches the backbone takes, reporting every
//! unreadable file at once.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use hitomi_core::image_io::read_image;
use hitomi_data::pixels::to_chw;
use rayon::prelude::*;

/// Images resized to `size` (H, W) with `channels` planes, kept as u8.
pub struct ImageSet {
    pub files: Vec<PathBuf>,
    pub channels: usize,
    pub size: (usize, usize),
    pixels: Vec<Vec<u8>>,
}

impl ImageSet {
    pub fn load(files: &[PathBuf], channels: usize, size: (usize, usize)) -> Result<Self> {
        let decoded: Vec<Result<Vec<u8>>> = files
            .par_iter()
            .map(|f| {
                let img = read_image(f)?;
                Ok(to_chw(&img, channels, Some(size)).with_context(|| f.display().to_string())?.2)
            })
            .collect();
        let bad: Vec<String> = decoded.iter().filter_map(|r| r.as_ref().err()).map(|e| format!("  {e:#}")).collect();
        if !bad.is_empty() {
            bail!("{} of {} images cannot be read:\n{}", bad.len(), files.len(), bad.join("\n"));
        }
        let pixels = decoded.into_iter().map(|r| r.expect("checked above")).collect();
        Ok(Self { files: files.to_vec(), channels, size, pixels })
    }

    /// Wraps pixels already in memory: (C, H, W) u8 each.
    pub fn from_pixels(pixels: Vec<Vec<u8>>, channels: usize, size: (usize, usize)) -> Self {
        let files = (0..pixels.len()).map(|i| PathBuf::from(format!("#{i}"))).collect();
        Self { files, channels, size, pixels }
    }

    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Images `idx` as (B, C, H, W) f32 in [0, 1].
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let v: Vec<f32> = idx.iter().flat_map(|&i| self.pixels[i].iter().map(|&p| p as f32 / 255.0)).collect();
        Ok(Tensor::from_vec(v, (idx.len(), self.channels, self.size.0, self.size.1), device)?)
    }
}
