//! The parameter store: every trainable weight and every buffer (BN running statistics) of a model,
//! by PyTorch-style dotted name, created from the seeded RNG, with all-or-nothing checked loading.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::rng::SeededRng;

/// How the optimizer treats a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Trained, with weight decay (conv and linear weights).
    Weight,
    /// Trained, without weight decay (biases and norm scales/shifts, as Ultralytics and timm do).
    NoDecay,
    /// Not trained by the optimizer (BN running statistics); saved and loaded like weights.
    Buffer,
}

/// How a new tensor is initialised (drawn from the store's seeded RNG).
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Const(f32),
    Normal {
        std: f32,
    },
    Uniform {
        lo: f32,
        hi: f32,
    },
    /// He normal for ReLU networks: std = sqrt(2 / fan_in) (torchvision's ResNet uses fan_out).
    KaimingNormal {
        fan: usize,
    },
    /// PyTorch's default for conv/linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    KaimingUniform {
        fan_in: usize,
    },
}

/// One stored tensor.
#[derive(Clone, Debug)]
pub struct Entry {
    pub var: Var,
    pub kind: ParamKind,
    /// Which part of the model made it ("backbone", "head", ...): used for backbone transfer.
    pub group: String,
}

struct Inner {
    entries: BTreeMap<String, Entry>,
    order: Vec<String>,
    rng: SeededRng,
    device: Device,
}

/// A shared, cloneable handle on a model's tensors.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
}

/// A name prefix inside a store, the way a `VarBuilder` is used: `p.pp("layer1").pp("0")`.
#[derive(Clone)]
pub struct ParamPath {
    store: ParamStore,
    prefix: String,
    group: String,
}

/// What `ParamStore::transfer` did.
#[derive(Debug, Default, Clone)]
pub struct TransferReport {
    pub transferred: usize,
    /// (tensor name, why it was not transferred)
    pub skipped: Vec<(String, String)>,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                entries: BTreeMap::new(),
                order: Vec::new(),
                rng: SeededRng::new(seed),
                device: device.clone(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("parameter store lock poisoned")
    }

    pub fn root(&self) -> ParamPath {
        ParamPath { store: self.clone(), prefix: String::new(), group: "model".into() }
    }

    pub fn device(&self) -> Device {
        self.lock().device.clone()
    }

    /// Creates `name` (or returns it if it exists with the same shape).
    pub fn get_or_create(&self, name: &str, shape: &[usize], init: Init, kind: ParamKind, group: &str) -> Result<Var> {
        let mut g = self.lock();
        if let Some(e) = g.entries.get(name) {
            if e.var.dims() != shape {
                bail!("parameter {name} exists with shape {:?}, asked for {:?}", e.var.dims(), shape);
            }
            return Ok(e.var.clone());
        }
        let n: usize = shape.iter().product();
        let device = g.device.clone();
        let rng = &mut g.rng;
        let data: Vec<f32> = match init {
            Init::Const(v) => vec![v; n],
            Init::Normal { std } => (0..n).map(|_| rng.normal() * std).collect(),
            Init::Uniform { lo, hi } => (0..n).map(|_| rng.uniform(lo, hi)).collect(),
            Init::KaimingNormal { fan } => {
                let std = (2.0 / fan.max(1) as f32).sqrt();
                (0..n).map(|_| rng.normal() * std).collect()
            }
            Init::KaimingUniform { fan_in } => {
                let b = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| rng.uniform(-b, b)).collect()
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, Shape::from(shape), &device)?)?;
        g.entries.insert(name.to_string(), Entry { var: var.clone(), kind, group: group.to_string() });
        g.order.push(name.to_string());
        Ok(var)
    }

    /// All entries in creation order.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        let g = self.lock();
        g.order.iter().map(|n| (n.clone(), g.entries[n].clone())).collect()
    }

    /// Trainable entries (not buffers), in creation order.
    pub fn trainable(&self) -> Vec<(String, Var, ParamKind)> {
        self.entries()
            .into_iter()
            .filter(|(_, e)| e.kind != ParamKind::Buffer)
            .map(|(n, e)| (n, e.var, e.kind))
            .collect()
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.trainable().iter().map(|(_, v, _)| v.elem_count()).sum()
    }

    /// Detached copies of every tensor, by name (what a weights file holds).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.entries().into_iter().map(|(n, e)| Ok((n, e.var.as_tensor().copy()?.detach()))).collect()
    }

    pub fn var(&self, name: &str) -> Option<Var> {
        self.lock().entries.get(name).map(|e| e.var.clone())
    }

    /// Loads every tensor of the store from `tensors`, checking the whole file first: any missing,
    /// mis-shaped or (unless `ignore_extra` says so) extra tensor is reported, all at once, before
    /// a single variable changes. `source` names the file in the error.
    pub fn load_checked(
        &self,
        tensors: &HashMap<String, Tensor>,
        source: &str,
        ignore_extra: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        let entries = self.entries();
        let mut problems = Vec::new();
        for (name, e) in &entries {
            match tensors.get(name) {
                None => problems.push(format!("missing tensor `{name}` (expected shape {:?})", e.var.dims())),
                Some(t) if t.dims() != e.var.dims() => {
                    problems.push(format!("tensor `{name}` has shape {:?}, expected {:?}", t.dims(), e.var.dims()))
                }
                _ => {}
            }
        }
        let known: std::collections::HashSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<&String> =
            tensors.keys().filter(|k| !known.contains(k.as_str()) && !ignore_extra(k)).collect();
        extra.sort();
        for k in extra {
            problems.push(format!("unexpected tensor `{k}` {:?}", tensors[k].dims()));
        }
        if !problems.is_empty() {
            bail!(
                "{source}: weights do not fit this model ({} problem(s)); nothing was loaded:\n  {}",
                problems.len(),
                problems.join("\n  ")
            );
        }
        for (name, e) in &entries {
            e.var.set(&tensors[name].to_dtype(DType::F32)?.to_device(&e.var.device().clone())?)?;
        }
        Ok(())
    }

    /// Copies the tensors of `group` whose name and shape match, e.g. a backbone from another run or
    /// from a torchvision ResNet. Reports what was skipped and why; fails if nothing matched.
    pub fn transfer(&self, tensors: &HashMap<String, Tensor>, group: &str, source: &str) -> Result<TransferReport> {
        let mut report = TransferReport::default();
        let mut updates = Vec::new();
        let entries = self.entries();
        for (name, e) in &entries {
            if e.group != group {
                continue;
            }
            match tensors.get(name) {
                None => report.skipped.push((name.clone(), "not in the file".into())),
                Some(t) if t.dims() != e.var.dims() => report
                    .skipped
                    .push((name.clone(), format!("shape {:?} in the file, {:?} in the model", t.dims(), e.var.dims()))),
                Some(t) => updates.push((e.var.clone(), t.clone())),
            }
        }
        let ours: std::collections::HashSet<&str> =
            entries.iter().filter(|(_, e)| e.group == group).map(|(n, _)| n.as_str()).collect();
        let mut others: Vec<&String> = tensors.keys().filter(|k| !ours.contains(k.as_str())).collect();
        others.sort();
        for k in others {
            report.skipped.push((k.clone(), format!("not a {group} tensor of this model")));
        }
        if updates.is_empty() {
            bail!("{source}: no {group} tensor matched this model by name and shape; skipped: {:?}", report.skipped);
        }
        for (var, t) in updates {
            var.set(&t.to_dtype(DType::F32)?)?;
            report.transferred += 1;
        }
        Ok(report)
    }
}

impl ParamPath {
    /// A sub-path: `layer1` then `0` gives names `layer1.0.*`.
    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Self { store: self.store.clone(), prefix, group: self.group.clone() }
    }

    /// The same path, tagging what it creates as part of `group`.
    pub fn group(&self, group: &str) -> Self {
        Self { store: self.store.clone(), prefix: self.prefix.clone(), group: group.to_string() }
    }

    pub fn full_name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    pub fn device(&self) -> Device {
        self.store.device()
    }

    fn make(&self, leaf: &str, shape: &[usize], init: Init, kind: ParamKind) -> Result<Tensor> {
        Ok(self.store.get_or_create(&self.full_name(leaf), shape, init, kind, &self.group)?.as_tensor().clone())
    }

    /// A decayed weight (conv, linear).
    pub fn weight(&self, leaf: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        self.make(leaf, shape, init, ParamKind::Weight)
    }

    /// A trained tensor without weight decay (bias, norm affine).
    pub fn no_decay(&self, leaf: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        self.make(leaf, shape, init, ParamKind::NoDecay)
    }

    /// A buffer (not trained): returns the `Var` so the layer can update it.
    pub fn buffer(&self, leaf: &str, shape: &[usize], value: f32) -> Result<Var> {
        self.store.get_or_create(&self.full_name(leaf), shape, Init::Const(value), ParamKind::Buffer, &self.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_init_and_checked_load_reports_everything() {
        let dev = Device::Cpu;
        let a = ParamStore::new(3, &dev);
        let b = ParamStore::new(3, &dev);
        for s in [&a, &b] {
            let p = s.root().pp("conv");
            p.weight("weight", &[4, 2, 3, 3], Init::KaimingNormal { fan: 18 }).unwrap();
            p.no_decay("bias", &[4], Init::Const(0.0)).unwrap();
        }
        let ta = a.tensors().unwrap();
        let tb = b.tensors().unwrap();
        assert_eq!(
            ta[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tb[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );

        let mut bad: HashMap<String, Tensor> = HashMap::new();
        bad.insert("conv.weight".into(), Tensor::zeros((4, 2, 5, 5), DType::F32, &dev).unwrap());
        bad.insert("extra".into(), Tensor::zeros(3, DType::F32, &dev).unwrap());
        let before = a.var("conv.weight").unwrap().as_tensor().copy().unwrap();
        let err = a.load_checked(&bad, "x.safetensors", &|_| false).unwrap_err().to_string();
        assert!(err.contains("x.safetensors"), "{err}");
        assert!(err.contains("missing tensor `conv.bias`"), "{err}");
        assert!(err.contains("`conv.weight` has shape [4, 2, 5, 5]"), "{err}");
        assert!(err.contains("unexpected tensor `extra`"), "{err}");
        let after = a.var("conv.weight").unwrap().as_tensor().copy().unwrap();
        let diff = (before - after).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "a failed load must not change any variable");
    }
}
