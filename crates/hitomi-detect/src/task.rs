//! Detection as a `Task` for the generic trainer, and dataset evaluation with COCO mAP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::detection::{DetBox, DetectionData};
use hitomi_train::task::BatchFn;
use hitomi_train::{Metrics, StepLoss, Task};

use crate::coco::{
    dets_from_boxes, evaluate as coco_evaluate, gt_from_boxes, CocoDet, CocoGt, CocoStats, PixelDet, PixelGtImage,
};
use crate::config::DetectConfig;
use crate::decode::{decode, rescale, Detection};
use crate::loss::fcos_loss;
use crate::model::Detector;

pub struct DetectTask {
    pub store: ParamStore,
    pub model: Detector,
    pub cfg: DetectConfig,
    pub classes: Vec<String>,
    pub train: Arc<DetectionData>,
    pub val: Option<Arc<DetectionData>>,
    pub device: Device,
}

/// What [`evaluate`] measured.
pub struct Evaluation {
    pub stats: CocoStats,
    /// Each image's detections at its file's size.
    pub detections: Vec<Vec<Detection>>,
    pub gt: CocoGt,
    pub dt: Vec<CocoDet>,
    pub images_per_second: f64,
}

/// Runs the detector in eval mode over `data`, decodes at each file's size and scores with COCO
/// evaluation (pycocotools' rules).
pub fn evaluate(
    model: &Detector,
    cfg: &DetectConfig,
    data: &DetectionData,
    classes: &[String],
    batch: usize,
    device: &Device,
) -> Result<Evaluation> {
    let start = Instant::now();
    let mut detections = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (xs, _) = data.batch(chunk, device)?;
        let out = model.forward(&xs, false)?;
        for (&i, dets) in chunk.iter().zip(decode(&out, cfg, data.height, data.width)?) {
            detections.push(rescale(&dets, (data.height, data.width), data.original_size(i)));
        }
    }
    let images_per_second = data.len() as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let images: Vec<PixelGtImage> = (0..data.len())
        .map(|i| {
            let (h, w) = data.original_size(i);
            let name = data.files[i].file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let boxes = data.original_boxes(i).iter().map(|b| (b.xyxy, b.class)).collect();
            (name, w as u32, h as u32, boxes)
        })
        .collect();
    let gt = gt_from_boxes(&images, classes);
    let per_image: Vec<Vec<PixelDet>> =
        detections.iter().map(|d| d.iter().map(|d| (d.xyxy, d.class, d.score)).collect()).collect();
    let dt = dets_from_boxes(&per_image);
    let stats = coco_evaluate(&gt, &dt)?;
    Ok(Evaluation { stats, detections, gt, dt, images_per_second })
}

impl Task for DetectTask {
    type Batch = (Tensor, Vec<Vec<DetBox>>);

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
        let (xs, boxes) = batch;
        let out = self.model.forward(xs, true)?;
        let l = fcos_loss(&out, boxes, &self.cfg)?;
        Ok(StepLoss { total: l.total, parts: l.parts, images: xs.dims()[0] })
    }

    fn validate(&mut self) -> Result<Metrics> {
        let mut m = Metrics::new();
        if let Some(val) = &self.val {
            let e = evaluate(&self.model, &self.cfg, val, &self.classes, 32, &self.device)?;
            m.insert("map".into(), e.stats.stats[0].max(0.0));
            m.insert("map50".into(), e.stats.stats[1].max(0.0));
            m.insert("map75".into(), e.stats.stats[2].max(0.0));
        }
        Ok(m)
    }

    fn primary_metric(&self) -> (&'static str, bool) {
        ("map", true)
    }

    fn metadata(&self) -> HashMap<String, String> {
        hitomi_train::task::task_metadata("detect", &self.cfg.arch, &self.classes, &self.cfg)
    }
}
