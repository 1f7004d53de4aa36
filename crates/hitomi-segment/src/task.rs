//! Segmentation as a `Task` for the generic trainer, and dataset evaluation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::index_mask::IndexMask;
use hitomi_data::segmentation::{SegmentationData, IGNORE};
use hitomi_nn::losses::{cross_entropy, dice_loss, CrossEntropyOptions, Reduction};
use hitomi_nn::upsample::upsample_bilinear2d;
use hitomi_train::task::BatchFn;
use hitomi_train::{Metrics, StepLoss, Task};

use crate::config::SegmentConfig;
use crate::metrics::ConfusionMatrix;
use crate::model::Segmenter;

pub struct SegmentTask {
    pub store: ParamStore,
    pub model: Segmenter,
    pub cfg: SegmentConfig,
    pub classes: Vec<String>,
    pub train: Arc<SegmentationData>,
    pub val: Option<Arc<SegmentationData>>,
    pub device: Device,
}

/// Class ids of a batch at each image's own size: logits are resized bilinearly to (h, w) before
/// the argmax, so scores are taken where the labels were drawn.
/// logits: (B, K, H, W), sizes: B x (h, w) -> B masks.
pub fn logits_to_masks(logits: &Tensor, sizes: &[(usize, usize)]) -> Result<Vec<IndexMask>> {
    let (_, _, h, w) = logits.dims4()?;
    let mut out = Vec::with_capacity(sizes.len());
    for (i, &(oh, ow)) in sizes.iter().enumerate() {
        let mut l = logits.narrow(0, i, 1)?;
        if (oh, ow) != (h, w) {
            l = upsample_bilinear2d(&l, (oh, ow))?;
        }
        let ids: Vec<u8> = l.argmax(D::Minus(3))?.flatten_all()?.to_dtype(DType::U8)?.to_vec1()?;
        out.push(IndexMask { height: oh, width: ow, ids });
    }
    Ok(out)
}

/// Runs the model in eval mode over `data`; returns the confusion matrix and images/s.
pub fn evaluate(
    model: &Segmenter,
    data: &SegmentationData,
    batch: usize,
    device: &Device,
) -> Result<(ConfusionMatrix, f64)> {
    let mut cm = ConfusionMatrix::new(model.num_classes);
    let idx: Vec<usize> = (0..data.len()).collect();
    let start = Instant::now();
    for chunk in idx.chunks(batch.max(1)) {
        let (xs, _) = data.batch(chunk, device)?;
        let logits = model.forward(&xs, false)?;
        let sizes: Vec<(usize, usize)> =
            chunk.iter().map(|&i| (data.original_mask(i).height, data.original_mask(i).width)).collect();
        for (&i, pred) in chunk.iter().zip(logits_to_masks(&logits, &sizes)?) {
            cm.add(&data.original_mask(i).ids, &pred.ids);
        }
    }
    Ok((cm, data.len() as f64 / start.elapsed().as_secs_f64().max(1e-9)))
}

impl SegmentTask {
    /// Per-pixel cross-entropy (ignore 255) plus the weighted Dice term; returns (total, parts).
    pub fn loss_of(&self, xs: &Tensor, ys: &Tensor) -> Result<(Tensor, Vec<(String, f64)>)> {
        let logits = self.model.forward(xs, true)?;
        let opts =
            CrossEntropyOptions { label_smoothing: 0.0, ignore_index: Some(IGNORE as u32), reduction: Reduction::Mean };
        let ce = cross_entropy(&logits, ys, &opts)?;
        let mut parts = vec![("ce".to_string(), ce.to_scalar::<f32>()? as f64)];
        if self.cfg.dice_weight == 0.0 {
            return Ok((ce, parts));
        }
        let dice = dice_loss(&logits, ys, Some(IGNORE as u32), 1.0)?;
        parts.push(("dice".into(), dice.to_scalar::<f32>()? as f64));
        Ok(((ce + (dice * self.cfg.dice_weight)?)?, parts))
    }
}

impl Task for SegmentTask {
    type Batch = (Tensor, Tensor);

    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batch_fn(&self) -> BatchFn<Self::Batch> {
        let data = self.train.clone();
        let dev = self.device.clone();
        Arc::new(move |idx: &[usize], _epoch: usize| data.batch(idx, &dev))
    }

    fn loss(&mut self, batch: &Self::Batch, _rng: &mut SeededRng) -> Result<StepLoss> {
        let (xs, ys) = batch;
        let (total, parts) = self.loss_of(xs, ys)?;
        Ok(StepLoss { total, parts, images: xs.dims()[0] })
    }

    fn validate(&mut self) -> Result<Metrics> {
        let mut m = Metrics::new();
        if let Some(val) = &self.val {
            let (cm, _) = evaluate(&self.model, val, 32, &self.device)?;
            let r = cm.report(&self.classes, val.len());
            m.insert("miou".into(), r.miou);
            m.insert("pixel_accuracy".into(), r.pixel_accuracy);
        }
        Ok(m)
    }

    fn primary_metric(&self) -> (&'static str, bool) {
        ("miou", true)
    }

    fn metadata(&self) -> HashMap<String, String> {
        hitomi_train::task::task_metadata("segment", &self.cfg.arch, &self.classes, &self.cfg)
    }
}
