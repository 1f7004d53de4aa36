//! Classification as a `Task` for the generic trainer.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use candle_core::{Device, Tensor};
use hitomi_core::{ParamStore, SeededRng};
use hitomi_data::{classification_batch, ClassificationData};
use hitomi_nn::losses::{cross_entropy, CrossEntropyOptions, Reduction};
use hitomi_train::task::BatchFn;
use hitomi_train::{Metrics, StepLoss, Task};

use crate::config::ClassifyConfig;
use crate::metrics::{Accumulator, ClassificationReport};
use crate::model::Classifier;

pub struct ClassifyTask {
    pub store: ParamStore,
    pub model: Classifier,
    pub cfg: ClassifyConfig,
    pub classes: Vec<String>,
    pub train: Arc<ClassificationData>,
    pub val: Option<Arc<ClassificationData>>,
    pub device: Device,
}

/// Runs the model in eval mode over `data` in batches of `batch`.
pub fn evaluate(
    model: &Classifier,
    data: &ClassificationData,
    batch: usize,
    device: &Device,
) -> Result<ClassificationReport> {
    let mut acc = Accumulator::new(data.classes.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (xs, ys) = classification_batch(data, chunk, 0, 0, None, device)?;
        let logits = model.forward(&xs, false)?;
        let scores: Vec<Vec<f32>> = logits.to_vec2()?;
        let labels: Vec<usize> = ys.to_vec1::<u32>()?.into_iter().map(|v| v as usize).collect();
        acc.add(&scores, &labels);
    }
    Ok(acc.report())
}

impl ClassifyTask {
    /// Cross-entropy of a training batch; with adversarial training, clean and FGSM examples go
    /// through the network as one batch (one set of BN statistics) and their losses are mixed.
    pub fn loss_of(&self, xs: &Tensor, ys: &Tensor) -> Result<Tensor> {
        let opts = CrossEntropyOptions {
            label_smoothing: self.cfg.label_smoothing,
            ignore_index: None,
            reduction: Reduction::Mean,
        };
        let Some(adv) = self.cfg.adversarial else {
            return Ok(cross_entropy(&self.model.forward(xs, true)?, ys, &opts)?);
        };
        let x_adv = crate::attack::fgsm(&self.model, xs, ys, adv.eps, true)?;
        let b = xs.dims()[0];
        let logits = self.model.forward(&Tensor::cat(&[xs, &x_adv], 0)?, true)?;
        let clean = cross_entropy(&logits.narrow(0, 0, b)?, ys, &opts)?;
        let attacked = cross_entropy(&logits.narrow(0, b, b)?, ys, &opts)?;
        Ok(((clean * adv.alpha)? + (attacked * (1.0 - adv.alpha))?)?)
    }
}

impl Task for ClassifyTask {
    type Batch = (Tensor, Tensor);

    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batch_fn(&self) -> BatchFn<Self::Batch> {
        let data = self.train.clone();
        let aug = self.cfg.augment.clone();
        let seed = self.cfg.train.seed;
        let dev = self.device.clone();
        Arc::new(move |idx: &[usize], epoch: usize| classification_batch(&data, idx, epoch, seed, Some(&aug), &dev))
    }

    fn loss(&mut self, batch: &Self::Batch, _rng: &mut SeededRng) -> Result<StepLoss> {
        let (xs, ys) = batch;
        let total = self.loss_of(xs, ys)?;
        Ok(StepLoss { total, parts: Vec::new(), images: xs.dims()[0] })
    }

    fn validate(&mut self) -> Result<Metrics> {
        let mut m = Metrics::new();
        if let Some(val) = &self.val {
            let r = evaluate(&self.model, val, 256, &self.device)?;
            m.insert("top1".into(), r.top1);
            m.insert("top5".into(), r.top5);
        }
        Ok(m)
    }

    fn primary_metric(&self) -> (&'static str, bool) {
        ("top1", true)
    }

    fn metadata(&self) -> HashMap<String, String> {
        hitomi_train::task::task_metadata("classify", &self.cfg.arch, &self.classes, &self.cfg)
    }
}
