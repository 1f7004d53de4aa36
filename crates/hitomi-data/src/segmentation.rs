//! Semantic segmentation datasets (GUIDE section 4): `data.yaml` with the class names,
//! `images/<split>/X.png` and `masks/<split>/X.png` of class ids (grey or palette; 255 = ignore).
//! Every pair is decoded and checked at open time and all bad files are reported in one error.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use hitomi_core::image_io::read_image;
use image::imageops::FilterType;
use rayon::prelude::*;

use crate::data_yaml::{read_data_yaml, split_folders};
use crate::image_folder::{entries, is_image};
use crate::index_mask::{read_index_mask, IndexMask};
use crate::pixels::to_chw;
use crate::split_checks::{common_size, report_problems};

/// Mask value that marks pixels left out of the loss and the metrics.
pub const IGNORE: u8 = 255;

/// One image and its mask as read, before any resizing.
struct Pair {
    image: Vec<u8>,
    mask: IndexMask,
}

/// A segmentation split held in memory: images (C, H, W) u8 and masks (H, W) ids, both at the
/// model's size, plus the masks at their own size so metrics are taken where the labels were drawn.
#[derive(Clone, Debug)]
pub struct SegmentationData {
    pub classes: Vec<String>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Image files, in sorted order; `masks_files[i]` is the mask of `files[i]`.
    pub files: Vec<PathBuf>,
    pub mask_files: Vec<PathBuf>,
    /// (N, C, H, W)
    pixels: Vec<u8>,
    /// (N, H, W), resized with nearest neighbour so ids stay ids.
    masks: Vec<u8>,
    /// The masks at their files' size.
    original: Vec<IndexMask>,
}

/// Nearest-neighbour resize of an id mask (ids must never be blended).
pub fn resize_mask(m: &IndexMask, h: usize, w: usize) -> Vec<u8> {
    if (m.height, m.width) == (h, w) {
        return m.ids.clone();
    }
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let sy = (((y as f64 + 0.5) * m.height as f64 / h as f64) as usize).min(m.height - 1);
        for x in 0..w {
            let sx = (((x as f64 + 0.5) * m.width as f64 / w as f64) as usize).min(m.width - 1);
            out.push(m.ids[sy * m.width + sx]);
        }
    }
    out
}

impl SegmentationData {
    /// Opens `split` of the dataset at `root`; images are converted to `channels` and resized to
    /// `size` (bilinear; masks nearest) when given, else must all share one size.
    pub fn open(root: &Path, split: &str, channels: usize, size: Option<(usize, usize)>) -> Result<Self> {
        let yaml = read_data_yaml(root)?;
        let n_classes = yaml.names.len();
        if n_classes > 255 {
            bail!("{}: {n_classes} class names; at most 255 (id 255 means ignore)", root.join("data.yaml").display());
        }
        let (image_dir, mask_dir) = split_folders(root, split, &yaml.splits, "masks", "*.png")?;
        let files: Vec<PathBuf> = entries(&image_dir)?.into_iter().filter(|p| p.is_file() && is_image(p)).collect();
        if files.is_empty() {
            bail!("{}: no images; expected *.png or *.jpg files", image_dir.display());
        }
        if !mask_dir.is_dir() {
            bail!(
                "{}: no mask folder beside {}; expected one mask PNG per image",
                mask_dir.display(),
                image_dir.display()
            );
        }
        let mask_files: Vec<PathBuf> =
            files.iter().map(|f| mask_dir.join(f.with_extension("png").file_name().expect("a file name"))).collect();
        let mut problems: Vec<String> = Vec::new();
        // Masks without an image are reported too: they usually mean a renamed or missing image.
        let image_stems: std::collections::HashSet<_> = files.iter().filter_map(|f| f.file_stem()).collect();
        for m in entries(&mask_dir)?.into_iter().filter(|p| p.is_file()) {
            if !m.file_stem().is_some_and(|s| image_stems.contains(s)) {
                problems.push(format!("{}: a mask without an image in {}", m.display(), image_dir.display()));
            }
        }
        let pairs: Vec<Result<Pair>> = files
            .par_iter()
            .zip(&mask_files)
            .map(|(f, mf)| {
                if !mf.is_file() {
                    bail!("{}: no mask; expected {}", f.display(), mf.display());
                }
                let img = read_image(f)?;
                let mask = read_index_mask(mf).with_context(|| format!("mask of {}", f.display()))?;
                if (mask.height, mask.width) != (img.height() as usize, img.width() as usize) {
                    bail!(
                        "{} is {}x{} (HxW) but its image {} is {}x{}; a mask must match its image",
                        mf.display(),
                        mask.height,
                        mask.width,
                        f.display(),
                        img.height(),
                        img.width()
                    );
                }
                if let Some(&bad) = mask.ids.iter().find(|&&v| v as usize >= n_classes && v != IGNORE) {
                    bail!(
                        "{} (mask of {}): class id {bad}; expected ids 0..{} ({} names in data.yaml) or 255 = ignore",
                        mf.display(),
                        f.display(),
                        n_classes - 1,
                        n_classes
                    );
                }
                let resized;
                let img = match size {
                    Some((h, w)) if (h as u32, w as u32) != (img.height(), img.width()) => {
                        resized = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
                        &resized
                    }
                    _ => &img,
                };
                let (_, _, image) = to_chw(img, channels, None).with_context(|| f.display().to_string())?;
                Ok(Pair { image, mask })
            })
            .collect();
        problems.extend(pairs.iter().filter_map(|r| r.as_ref().err()).map(|e| format!("{e:#}")));
        report_problems(root, split, &problems)?;
        let pairs: Vec<Pair> = pairs.into_iter().map(|r| r.expect("checked above")).collect();
        let file_sizes: Vec<(usize, usize)> = pairs.iter().map(|p| (p.mask.height, p.mask.width)).collect();
        let (height, width) = common_size(&image_dir, &files, &file_sizes, size)?;
        let masks = pairs.iter().flat_map(|p| resize_mask(&p.mask, height, width)).collect();
        let pixels = pairs.iter().flat_map(|p| p.image.iter().copied()).collect();
        let original = pairs.into_iter().map(|p| p.mask).collect();
        Ok(Self { classes: yaml.names, channels, height, width, files, mask_files, pixels, masks, original })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Sample i's pixels: (C, H, W) u8 at the model's size.
    pub fn image_u8(&self, i: usize) -> &[u8] {
        let n = self.channels * self.height * self.width;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Sample i's mask: (H, W) ids at the model's size.
    pub fn mask(&self, i: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.masks[i * n..(i + 1) * n]
    }

    /// Sample i's mask at its file's size.
    pub fn original_mask(&self, i: usize) -> &IndexMask {
        &self.original[i]
    }

    /// The samples `idx` as a subset (for a validation hold-out).
    pub fn subset(&self, idx: &[usize]) -> Self {
        Self {
            classes: self.classes.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            files: idx.iter().map(|&i| self.files[i].clone()).collect(),
            mask_files: idx.iter().map(|&i| self.mask_files[i].clone()).collect(),
            pixels: idx.iter().flat_map(|&i| self.image_u8(i).iter().copied()).collect(),
            masks: idx.iter().flat_map(|&i| self.mask(i).iter().copied()).collect(),
            original: idx.iter().map(|&i| self.original[i].clone()).collect(),
        }
    }

    /// The samples `idx` as xs: (B, C, H, W) f32 in [0, 1] and ys: (B, H, W) u32 ids (255 = ignore).
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            bail!("batch index {i} out of range; the dataset holds {} samples", self.len());
        }
        let xs: Vec<f32> = idx.iter().flat_map(|&i| self.image_u8(i).iter().map(|&v| v as f32 / 255.0)).collect();
        let ys: Vec<u32> = idx.iter().flat_map(|&i| self.mask(i).iter().map(|&v| v as u32)).collect();
        let (b, c, h, w) = (idx.len(), self.channels, self.height, self.width);
        Ok((Tensor::from_vec(xs, (b, c, h, w), device)?, Tensor::from_vec(ys, (b, h, w), device)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_resize_keeps_ids() {
        let m = IndexMask { height: 2, width: 2, ids: vec![1, 2, 3, 255] };
        assert_eq!(resize_mask(&m, 4, 4), vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 255, 255, 3, 3, 255, 255]);
        assert_eq!(resize_mask(&m, 1, 1), vec![255]);
    }
}
