//! The fitted anomaly model: a frozen backbone, the normal image features (PANDA's kNN bank) and a
//! coreset of normal patch features (PatchCore's memory), with a threshold and heat-map scale
//! calibrated on held-out normal images. Fitting needs no gradients and no labels of any kind.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use hitomi_backbone::{Backbone, ResNet, ResNetConfig};
use hitomi_core::checkpoint::{write_atomic, write_weights};
use hitomi_core::ParamStore;
use hitomi_nn::upsample::upsample_bilinear2d;
use hitomi_train::setup::holdout_split;
use hitomi_train::weights::TaskWeights;
use image::{ImageBuffer, Luma};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backbone_source::FrozenBackbone;
use crate::config::{AnomalyConfig, FittedMeta, ImageScore};
use crate::coreset::greedy_coreset;
use crate::features::{extract, patch_rows, FeatureSpec};
use crate::images::ImageSet;
use crate::knn::{mean_knn_distance, nearest_distance};
use crate::whiten::Whitening;

/// Images per forward pass.
const BATCH: usize = 32;

pub struct AnomalyModel {
    pub backbone: FrozenBackbone,
    pub meta: FittedMeta,
    /// (N_memory_images, D_img)
    image_bank: Tensor,
    /// (M, D_patch), whitened when `whitening` is set.
    patch_bank: Tensor,
    /// Applied to every patch feature before the memory and the search (`whiten_patches`).
    whitening: Option<Whitening>,
}

/// Scores of a set of images.
pub struct Scores {
    pub image: Vec<f64>,
    /// Per image, the smoothed anomaly map at the model's image size, (H * W) row-major.
    pub maps: Vec<Vec<f32>>,
}

fn progress(n: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} images [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Image and patch features of all images: (N, D_img) and (N * h * w, D_patch) with (h, w).
fn features_of(
    bb: &FrozenBackbone,
    cfg: &AnomalyConfig,
    set: &ImageSet,
    idx: &[usize],
    quiet: bool,
) -> Result<(Tensor, Tensor, (usize, usize))> {
    let pb = progress(idx.len(), "features", quiet);
    let (mut images, mut patches, mut hw) = (Vec::new(), Vec::new(), (0, 0));
    for chunk in idx.chunks(BATCH) {
        let spec = FeatureSpec {
            image_levels: &cfg.image_levels,
            unit_image_levels: cfg.unit_image_levels,
            image_grid: cfg.image_grid,
            patch_levels: &cfg.patch_levels,
            window: cfg.local_window,
        };
        let f = extract(bb, &set.batch(chunk, &Device::Cpu)?, &spec)?;
        let (_, _, h, w) = f.patches.dims4()?;
        hw = (h, w);
        images.push(f.image);
        patches.push(patch_rows(&f.patches)?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok((Tensor::cat(&images, 0)?, Tensor::cat(&patches, 0)?, hw))
}

/// Replaces the outer `band` pixels of an (h, w) map by the value of the nearest pixel inside it.
fn fill_border(map: &mut [f32], h: usize, w: usize, band: usize) {
    if band == 0 || 2 * band >= h.min(w) {
        return;
    }
    for y in 0..h {
        let sy = y.clamp(band, h - 1 - band);
        for x in 0..w {
            let sx = x.clamp(band, w - 1 - band);
            if (sy, sx) != (y, x) {
                map[y * w + x] = map[sy * w + sx];
            }
        }
    }
}

/// Gaussian smoothing of an (h, w) map.
fn smooth(map: Vec<f32>, h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return map;
    }
    let img: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_raw(w as u32, h as u32, map).expect("map size");
    imageproc::filter::gaussian_blur_f32(&img, sigma).into_raw()
}

/// A model fitted before a setting existed is used as it was fitted, not with the setting's
/// default: `stored` is the config as written in the model file, `config` as deserialised from it.
fn as_fitted(config: &mut AnomalyConfig, stored: &serde_json::Value) {
    // Before the ignored border band, the whole map was measured.
    if stored.get("border_ignore").is_none() {
        config.border_ignore = 0;
    }
    // Before the image score had its own smoothing, it read the pixel map's.
    if stored.get("image_smoothing_sigma").is_none() {
        config.image_smoothing_sigma = config.smoothing_sigma;
    }
}

impl AnomalyModel {
    /// Fits on the normal images `train` (already sized to the config's image size).
    pub fn fit(backbone: FrozenBackbone, cfg: &AnomalyConfig, train: &ImageSet, quiet: bool) -> Result<Self> {
        cfg.validate(backbone.net.out_channels().len())?;
        let (memory_idx, holdout_idx) = if train.len() >= 2 {
            let (m, h) = holdout_split(train.len(), cfg.holdout_fraction, cfg.seed);
            if h.is_empty() && cfg.holdout_fraction > 0.0 {
                // Too few images for the fraction: keep one aside anyway, calibration needs it.
                (m[1..].to_vec(), vec![m[0]])
            } else {
                (m, h)
            }
        } else {
            bail!(
                "anomaly training needs at least 2 normal images (one is held out to calibrate); got {}",
                train.len()
            );
        };
        let (image_bank, all_patches, _) = features_of(&backbone, cfg, train, &memory_idx, quiet)?;
        let whitening = if cfg.whiten_patches { Some(Whitening::fit(&all_patches)?) } else { None };
        let all_patches = match &whitening {
            Some(w) => w.apply(&all_patches)?,
            None => all_patches,
        };
        let n_patches = all_patches.dim(0)?;
        let n_keep = ((n_patches as f64 * cfg.coreset_fraction).ceil() as usize).clamp(1, cfg.coreset_max);
        if !quiet {
            eprintln!("coreset: {n_keep} of {n_patches} patch features");
        }
        let keep = greedy_coreset(&all_patches, n_keep, cfg.projection_dim, cfg.seed)?;
        let keep_t = Tensor::from_vec(keep.iter().map(|&i| i as u32).collect::<Vec<u32>>(), keep.len(), &Device::Cpu)?;
        let patch_bank = all_patches.index_select(&keep_t, 0)?.contiguous()?;
        let meta = FittedMeta {
            config: cfg.clone(),
            arch: backbone.arch,
            channels: backbone.channels,
            normalize: backbone.normalize.clone(),
            backbone_source: backbone.source.clone(),
            image_threshold: 0.0,
            pixel_scale: 1.0,
            n_train: memory_idx.len(),
            n_memory_patches: keep.len(),
        };
        let mut model = Self { backbone, meta, image_bank, patch_bank, whitening };
        // Calibration on normal images the memory has not seen.
        let s = model.score(train, &holdout_idx, quiet)?;
        model.meta.image_threshold = s.image.iter().copied().fold(f64::MIN, f64::max);
        let mut px: Vec<f32> = s.maps.concat();
        px.sort_by(f32::total_cmp);
        let p999 = px[((px.len() - 1) as f64 * 0.999) as usize] as f64;
        model.meta.pixel_scale = (2.0 * p999).max(1e-6);
        Ok(model)
    }

    /// Scores images `idx` of `set`.
    pub fn score(&self, set: &ImageSet, idx: &[usize], quiet: bool) -> Result<Scores> {
        let cfg = &self.meta.config;
        let (ih, iw) = set.size;
        if [ih, iw] != cfg.image_size {
            bail!("images are {ih}x{iw}; this model was fitted at {:?}", cfg.image_size);
        }
        let (feats, patches, (h, w)) = features_of(&self.backbone, cfg, set, idx, quiet)?;
        let patches = match &self.whitening {
            Some(wh) => wh.apply(&patches)?,
            None => patches,
        };
        let d = nearest_distance(&patches, &self.patch_bank)?;
        let low = Tensor::from_vec(d, (idx.len(), 1, h, w), &Device::Cpu)?;
        let full = if (h, w) == (ih, iw) { low } else { upsample_bilinear2d(&low, (ih, iw))? };
        let raw_maps: Vec<Vec<f32>> = full
            .flatten_from(1)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|mut m| {
                fill_border(&mut m, ih, iw, cfg.border_ignore);
                m
            })
            .collect();
        let image = match cfg.image_score {
            ImageScore::Knn => mean_knn_distance(&feats, &self.image_bank, cfg.k)?.into_iter().map(f64::from).collect(),
            ImageScore::MaxPatch => {
                let peak = |m: &[f32]| m.iter().copied().fold(f32::MIN, f32::max) as f64;
                raw_maps
                    .iter()
                    .map(|m| {
                        if cfg.image_smoothing_sigma > 0.0 {
                            peak(&smooth(m.clone(), ih, iw, cfg.image_smoothing_sigma))
                        } else {
                            peak(m)
                        }
                    })
                    .collect()
            }
        };
        let maps = raw_maps.into_iter().map(|m| smooth(m, ih, iw, cfg.smoothing_sigma)).collect();
        Ok(Scores { image, maps })
    }

    /// Writes `dir/model.safetensors` (backbone + memory banks + metadata) and `dir/config.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tensors = self.backbone.store.tensors()?;
        tensors.push(("memory.images".into(), self.image_bank.clone()));
        tensors.push(("memory.patches".into(), self.patch_bank.clone()));
        if let Some(wh) = &self.whitening {
            tensors.push(("memory.whiten_mean".into(), wh.mean.clone()));
            tensors.push(("memory.whiten".into(), wh.w.clone()));
        }
        let mut meta = HashMap::new();
        meta.insert("hitomi.task".into(), "anomaly".into());
        meta.insert("hitomi.classes".into(), r#"["good","anomalous"]"#.into());
        meta.insert("hitomi.arch".into(), serde_json::to_string(&self.meta.arch)?.trim_matches('"').to_string());
        meta.insert("hitomi.config".into(), serde_json::to_string(&self.meta)?);
        write_weights(&dir.join("model.safetensors"), &tensors, meta)?;
        write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(&self.meta)?.as_bytes())
    }

    /// Loads a fitted model (`--weights DIR_OR_FILE`).
    pub fn load(weights: &Path) -> Result<Self> {
        let w = TaskWeights::open(weights, "anomaly")?;
        let mut meta: FittedMeta = w.config()?;
        let name = w.path.display().to_string();
        let raw: serde_json::Value = w.config()?;
        as_fitted(&mut meta.config, &raw["config"]);
        let store = ParamStore::new(0, &Device::Cpu);
        let net = ResNet::new(&store.root(), &ResNetConfig::from_arch(meta.arch, meta.channels))?;
        store.load_checked(&w.file.tensors, &name, &|n| n.starts_with("memory."))?;
        let bank = |k: &str| -> Result<Tensor> {
            w.file.tensors.get(k).cloned().ok_or_else(|| anyhow::anyhow!("{name}: no `{k}` tensor; not a fitted model"))
        };
        let (image_bank, patch_bank) = (bank("memory.images")?, bank("memory.patches")?);
        // A model fitted before whitening existed has neither tensor and is used as it was fitted.
        let whitening = match (w.file.tensors.get("memory.whiten_mean"), w.file.tensors.get("memory.whiten")) {
            (Some(mean), Some(wm)) => Some(Whitening { mean: mean.clone(), w: wm.clone() }),
            (None, None) => None,
            _ => anyhow::bail!("{name}: has only one of `memory.whiten_mean` and `memory.whiten`; refit the model"),
        };
        if let Some(wh) = &whitening {
            wh.check(patch_bank.dim(1)?, &name)?;
        }
        meta.config.whiten_patches = whitening.is_some();
        let backbone = FrozenBackbone {
            net,
            store,
            arch: meta.arch,
            channels: meta.channels,
            normalize: meta.normalize.clone(),
            source: meta.backbone_source.clone(),
        };
        Ok(Self { backbone, meta, image_bank, patch_bank, whitening })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_border_copies_the_nearest_inner_pixel() {
        // 5x5 map 0..25, band 1: the inner 3x3 stays, each border pixel takes its clamped neighbour.
        let mut m: Vec<f32> = (0..25).map(|v| v as f32).collect();
        fill_border(&mut m, 5, 5, 1);
        #[rustfmt::skip]
        let want = [
            6.0, 6.0, 7.0, 8.0, 8.0,
            6.0, 6.0, 7.0, 8.0, 8.0,
            11.0, 11.0, 12.0, 13.0, 13.0,
            16.0, 16.0, 17.0, 18.0, 18.0,
            16.0, 16.0, 17.0, 18.0, 18.0,
        ];
        assert_eq!(m, want);
        let mut same: Vec<f32> = (0..25).map(|v| v as f32).collect();
        fill_border(&mut same, 5, 5, 0);
        assert_eq!(same, (0..25).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn settings_missing_from_an_older_model_file_take_the_values_it_was_fitted_with() {
        let read = |json: &str| {
            let stored: serde_json::Value = serde_json::from_str(json).unwrap();
            let mut config: AnomalyConfig = serde_json::from_value(stored.clone()).unwrap();
            as_fitted(&mut config, &stored);
            config
        };
        let old = read(r#"{"smoothing_sigma": 3.0}"#);
        assert_eq!((old.border_ignore, old.image_smoothing_sigma), (0, 3.0));
        let new = read(r#"{"smoothing_sigma": 3.0, "border_ignore": 5, "image_smoothing_sigma": 0.0}"#);
        assert_eq!((new.border_ignore, new.image_smoothing_sigma), (5, 0.0));
        // A current file keeps whatever it stored, defaults included.
        let current = serde_json::to_value(AnomalyConfig::default()).unwrap();
        let mut config = AnomalyConfig::default();
        as_fitted(&mut config, &current);
        assert_eq!(config, AnomalyConfig::default());
    }
}
