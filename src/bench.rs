//! `hitomi bench`: the two models of the team's speed reference (`bench/README.md` in the shared
//! folder), built from hitomi's layers and timed exactly as `torch_reference.py` times PyTorch:
//! median training step (forward, cross-entropy, backward, SGD momentum 0.9) over 20 steps after 3
//! warm-up steps; eval-mode forward at batch 64 (images/s) and at batch 1 (latency); peak memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Module, Tensor};
use clap::Args;
use hitomi_core::{ParamPath, ParamStore};
use hitomi_nn::conv_op::{conv_transpose2d, ConvTransposeGeom};
use hitomi_nn::losses::{cross_entropy, CrossEntropyOptions};
use hitomi_nn::pool::global_avg_pool;
use hitomi_nn::{Activation, BasicBlock, BatchNorm2d, Conv2d, Conv2dConfig, ConvBnAct, Linear};
use hitomi_train::optim::Optimizer;
use hitomi_train::OptimizerConfig;
use serde_json::{json, Value};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Write {"model_a": {...}, "model_b": {...}} here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Time only this model (a or b), e.g. under a profiler; the JSON then holds only its key.
    #[arg(long, value_parser = ["a", "b"])]
    pub model: Option<String>,
    /// Time only this phase (train, infer or latency), e.g. under a profiler; `--steps` sets how
    /// many times it is timed and the JSON then holds only its figure.
    #[arg(long, value_parser = ["train", "infer", "latency"])]
    pub phase: Option<String>,
}

/// relu(ConvBn(cin, 32, 3, 1, 1)) then the six blocks of the reference.
struct Backbone {
    stem: ConvBnAct,
    blocks: Vec<BasicBlock>,
}

impl Backbone {
    const SPEC: [(usize, usize, usize); 6] =
        [(32, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)];

    fn new(p: &ParamPath, cin: usize) -> Result<Self> {
        let stem =
            ConvBnAct::new(&p.pp("stem.conv"), &p.pp("stem.bn"), cin, 32, Conv2dConfig::k(3, 1), Activation::Relu)?;
        let blocks = Self::SPEC
            .iter()
            .enumerate()
            .map(|(i, &(a, b, s))| BasicBlock::new(&p.pp(format!("blocks.{i}")), a, b, s))
            .collect::<Result<_>>()?;
        Ok(Self { stem, blocks })
    }

    /// xs: (B, C, H, W) -> (B, 128, H/4, W/4)
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.stem.forward(xs, train)?;
        for b in &self.blocks {
            h = b.forward(&h, train)?;
        }
        Ok(h)
    }
}

/// A bench model: logits from images.
trait BenchModel {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

/// Model A: backbone(1) on 1x28x28, global average pool, Linear(128, 10).
struct ModelA {
    backbone: Backbone,
    fc: Linear,
}

impl BenchModel for ModelA {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.fc.forward(&global_avg_pool(&self.backbone.forward(xs, train)?)?)?)
    }
}

/// Model B: backbone(3) on 3x64x64, two (ConvTranspose2d k2 s2 -> BN -> ReLU), Conv2d(32, 11, 1).
struct ModelB {
    backbone: Backbone,
    up: Vec<(Tensor, BatchNorm2d)>,
    head: Conv2d,
}

impl BenchModel for ModelB {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.backbone.forward(xs, train)?;
        let g = ConvTransposeGeom { stride: 2, padding: 0, output_padding: 0, dilation: 1 };
        for (w, bn) in &self.up {
            h = bn.forward_relu(&conv_transpose2d(&h, w, g)?, train)?;
        }
        Ok(self.head.forward(&h)?)
    }
}

fn model_a(store: &ParamStore) -> Result<ModelA> {
    let p = store.root();
    Ok(ModelA { backbone: Backbone::new(&p.pp("backbone"), 1)?, fc: Linear::new(&p.pp("fc"), 128, 10)? })
}

fn model_b(store: &ParamStore) -> Result<ModelB> {
    let p = store.root();
    let mut up = Vec::new();
    for (i, (cin, cout)) in [(128, 64), (64, 32)].into_iter().enumerate() {
        let w = p.weight(
            &format!("up{i}.weight"),
            &[cin, cout, 2, 2],
            hitomi_core::Init::KaimingUniform { fan_in: cout * 4 },
        )?;
        up.push((w, BatchNorm2d::new(&p.pp(format!("bn{i}")), cout)?));
    }
    let head =
        Conv2d::new(&p.pp("head"), 32, 11, Conv2dConfig { kernel: 1, stride: 1, padding: 0, dilation: 1, bias: true })?;
    Ok(ModelB { backbone: Backbone::new(&p.pp("backbone"), 3)?, up, head })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak resident memory of this process in bytes (Linux), and a way to reset it.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[derive(Clone, Copy)]
/// One benchmark setting: batch, input shape (C, H, W), classes, per-pixel labels or not.
struct Case {
    name: &'static str,
    batch: usize,
    shape: [usize; 3],
    classes: u32,
    per_pixel: bool,
}

fn measure(case: &Case, model: &dyn BenchModel, store: &ParamStore, a: &BenchArgs) -> Result<Value> {
    let Case { name, batch, shape, classes, per_pixel } = *case;
    let dev = Device::Cpu;
    let mut rng = hitomi_core::SeededRng::new(0);
    let data: Vec<(Tensor, Tensor)> = (0..8)
        .map(|_| {
            let n = batch * shape.iter().product::<usize>();
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let m = if per_pixel { batch * shape[1] * shape[2] } else { batch };
            let y: Vec<u32> = (0..m).map(|_| (rng.uniform(0.0, classes as f32) as u32).min(classes - 1)).collect();
            let ys = if per_pixel {
                Tensor::from_vec(y, (batch, shape[1], shape[2]), &dev)
            } else {
                Tensor::from_vec(y, batch, &dev)
            };
            Ok((Tensor::from_vec(x, (batch, shape[0], shape[1], shape[2]), &dev)?, ys?))
        })
        .collect::<Result<_>>()?;
    let runs = |phase: &str, default: usize| match a.phase.as_deref() {
        None => default,
        Some(p) if p == phase => a.steps,
        Some(_) => 0,
    };
    let mut out = json!({});
    let train_steps = runs("train", a.steps);
    if train_steps > 0 {
        let mut opt = Optimizer::new(store, &OptimizerConfig::Sgd { momentum: 0.9, nesterov: false }, 0.0);
        reset_peak_rss();
        let mut times = Vec::new();
        for i in 0..a.warmup + train_steps {
            let (x, y) = &data[i % data.len()];
            let t = Instant::now();
            let loss = cross_entropy(&model.forward(x, true)?, y, &CrossEntropyOptions::default())?;
            opt.step(&loss.backward()?, 0.01)?;
            if i >= a.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        out["train_img_s"] = json!(batch as f64 / median(times));
        out["train_peak_rss_mb"] = json!(peak_rss().map(|b| b as f64 / 1048576.0));
    }
    // Eval-mode forward passes timed `n` times after `warm` untimed ones; the median in seconds.
    let time_forward = |xs: &Tensor, warm: usize, n: usize| -> Result<f64> {
        for _ in 0..warm {
            model.forward(xs, false)?;
        }
        let mut ts = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            model.forward(xs, false)?;
            ts.push(t.elapsed().as_secs_f64());
        }
        Ok(median(ts))
    };
    let infer_runs = runs("infer", 10);
    if infer_runs > 0 {
        let x64 = Tensor::randn(0f32, 1.0, (64, shape[0], shape[1], shape[2]), &dev)?;
        out["infer_img_s"] = json!(64.0 / time_forward(&x64, 2, infer_runs)?);
    }
    let latency_runs = runs("latency", 50);
    if latency_runs > 0 {
        let x1 = Tensor::randn(0f32, 1.0, (1, shape[0], shape[1], shape[2]), &dev)?;
        out["latency_ms"] = json!(1e3 * time_forward(&x1, 5, latency_runs)?);
    }
    let fig = |k: &str, label: &str, unit: &str| out[k].as_f64().map(|v| format!("{label} {v:.2} {unit}"));
    let figures: Vec<String> = [
        fig("train_img_s", "train", "img/s"),
        fig("infer_img_s", "infer", "img/s"),
        fig("latency_ms", "latency", "ms"),
        fig("train_peak_rss_mb", "training peak RSS", "MB"),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!("hitomi {name}: {}", figures.join(", "));
    Ok(out)
}

pub fn run(a: &BenchArgs) -> Result<Value> {
    let dev = Device::Cpu;
    let mut res = json!({"threads": rayon_threads()});
    if a.model.as_deref() != Some("b") {
        let sa = ParamStore::new(0, &dev);
        let ma = model_a(&sa)?;
        let case_a = Case { name: "model_a", batch: 64, shape: [1, 28, 28], classes: 10, per_pixel: false };
        res["model_a"] = measure(&case_a, &ma, &sa, a)?;
    }
    if a.model.as_deref() != Some("a") {
        let sb = ParamStore::new(0, &dev);
        let mb = model_b(&sb)?;
        let case_b = Case { name: "model_b", batch: 16, shape: [3, 64, 64], classes: 11, per_pixel: true };
        res["model_b"] = measure(&case_b, &mb, &sb, a)?;
    }
    if let Some(p) = &a.json {
        hitomi_core::checkpoint::write_atomic(p, serde_json::to_string_pretty(&res)?.as_bytes())?;
    }
    Ok(res)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
