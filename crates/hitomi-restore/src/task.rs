//! Restoration as a `Task` for the generic trainer: random distorted/clean patch pairs, the
//! Charbonnier or L1 loss, and PSNR on the held-out image(s) each epoch.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use candle_core::{Device, Tensor};
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::Planar;
use hitomi_nn::losses::{l1_loss, Reduction};
use hitomi_train::task::BatchFn;
use hitomi_train::{Metrics, StepLoss, Task};

use crate::config::{RestoreConfig, RestoreLoss};
use crate::data::{to_file_channels, RestoreData};
use crate::ensemble::{restore_self_ensemble, InferenceOptions};
use crate::model::Restorer;
use crate::quality::psnr;
use crate::tiles;

/// Stream key of the fixed distortion of the i-th image of a validation/evaluation list (the held-out
/// images in name order): (seed, EVAL_STREAM, i).
pub const EVAL_STREAM: u64 = 1 << 40;

pub struct RestoreTask {
    pub store: ParamStore,
    pub model: Restorer,
    pub cfg: RestoreConfig,
    pub train: Arc<RestoreData>,
    pub val: Option<RestoreData>,
    pub device: Device,
}

/// Planar patches (each (3, P, P), 0..255) -> (B, 3, P, P) on 0..1.
pub fn stack(patches: &[Planar], device: &Device) -> Result<Tensor> {
    let (c, h, w) = (patches[0].channels, patches[0].height, patches[0].width);
    let data: Vec<f32> = patches.iter().flat_map(|p| p.data.iter().map(|v| v / 255.0)).collect();
    Ok(Tensor::from_vec(data, (patches.len(), c, h, w), device)?)
}

/// The configured loss, mean over every value.
pub fn restore_loss(restored: &Tensor, clean: &Tensor, loss: RestoreLoss) -> Result<Tensor> {
    Ok(match loss {
        RestoreLoss::L1 => l1_loss(restored, clean, Reduction::Mean)?,
        RestoreLoss::Charbonnier { eps } => ((restored - clean)?.sqr()? + eps * eps)?.sqrt()?.mean_all()?,
    })
}

/// Restores `distorted` (3, H, W) with tiles, once or as the x8 self-ensemble, and returns it in
/// the file's channels, 8-bit levels: (1 or 3, H, W).
pub fn restore_for_file(
    model: &Restorer,
    cfg: &RestoreConfig,
    distorted: &Planar,
    grey: bool,
    opts: InferenceOptions,
    device: &Device,
) -> Result<Planar> {
    let out = if opts.self_ensemble {
        restore_self_ensemble(model, distorted, cfg.tile, cfg.tile_overlap, 4, device)?
    } else {
        tiles::restore(model, distorted, cfg.tile, cfg.tile_overlap, 4, device)?
    };
    Ok(to_file_channels(&out, grey).to_u8_levels())
}

/// Mean PSNR of (restored, input) over `data`, each distorted with the fixed evaluation streams.
/// A single pass, not the self-ensemble: it runs every epoch, and 8 times the cost would not change
/// which epoch is best by much.
pub fn mean_psnr(model: &Restorer, cfg: &RestoreConfig, data: &RestoreData, device: &Device) -> Result<(f64, f64)> {
    let (mut out, mut inp) = (0.0, 0.0);
    for i in 0..data.len() {
        let mut rng = SeededRng::derive(cfg.train.seed, &[EVAL_STREAM, i as u64]);
        let (lq, gt, grey) = data.pair(i, &cfg.distortion, &mut rng);
        let gt = to_file_channels(&gt, grey);
        out += psnr(&gt, &restore_for_file(model, cfg, &lq, grey, InferenceOptions::default(), device)?)?;
        inp += psnr(&gt, &to_file_channels(&lq, grey))?;
    }
    Ok((out / data.len() as f64, inp / data.len() as f64))
}

impl Task for RestoreTask {
    type Batch = (Tensor, Tensor);

    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn train_len(&self) -> usize {
        self.cfg.patches_per_epoch
    }

    /// Sample i of an epoch is a patch of image i mod n, from the stream (seed, epoch, i).
    fn batch_fn(&self) -> BatchFn<Self::Batch> {
        let (data, dev, cfg) = (self.train.clone(), self.device.clone(), self.cfg.clone());
        Arc::new(move |idx: &[usize], epoch: usize| {
            let (mut lq, mut gt) = (Vec::with_capacity(idx.len()), Vec::with_capacity(idx.len()));
            for &i in idx {
                let mut rng = SeededRng::derive(cfg.train.seed, &[epoch as u64, i as u64]);
                let (a, b) =
                    data.random_patch(i % data.len(), cfg.patch, &cfg.distortion, cfg.colour_augment, &mut rng);
                lq.push(a);
                gt.push(b);
            }
            Ok((stack(&lq, &dev)?, stack(&gt, &dev)?))
        })
    }

    fn loss(&mut self, batch: &Self::Batch, _rng: &mut SeededRng) -> Result<StepLoss> {
        let (lq, gt) = batch;
        let restored = self.model.forward(lq, true)?;
        let total = restore_loss(&restored, gt, self.cfg.loss)?;
        let name = match self.cfg.loss {
            RestoreLoss::L1 => "l1",
            RestoreLoss::Charbonnier { .. } => "charbonnier",
        };
        let parts = vec![(name.to_string(), total.to_scalar::<f32>()? as f64)];
        Ok(StepLoss { total, parts, images: lq.dims()[0] })
    }

    fn validate(&mut self) -> Result<Metrics> {
        let mut m = Metrics::new();
        if let Some(val) = &self.val {
            let (out, inp) = mean_psnr(&self.model, &self.cfg, val, &self.device)?;
            m.insert("psnr".into(), out);
            m.insert("psnr_input".into(), inp);
        }
        Ok(m)
    }

    fn primary_metric(&self) -> (&'static str, bool) {
        ("psnr", true)
    }

    fn metadata(&self) -> HashMap<String, String> {
        hitomi_train::task::task_metadata("restore", &"restorer", &[], &self.cfg)
    }
}
