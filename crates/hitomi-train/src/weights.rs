//! Opening the weights of a trained model for eval and predict: the file is resolved from a run
//! folder, its metadata must name the expected task, and config and classes come from it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hitomi_core::checkpoint::{read_weights, WeightsFile};
use hitomi_core::ParamStore;
use serde::de::DeserializeOwned;

use crate::run_dir::{model_tensors, resolve_weights};

/// A weights file of a known task, with its class names read.
pub struct TaskWeights {
    pub path: PathBuf,
    pub file: WeightsFile,
    pub classes: Vec<String>,
}

impl TaskWeights {
    /// `--weights DIR_OR_FILE` of a `task` model ("classify", "segment", ...); files of another task
    /// or without hitomi metadata are refused, naming the file.
    pub fn open(weights: &Path, task: &str) -> Result<Self> {
        let path = resolve_weights(weights)?;
        let file = read_weights(&path)?;
        let name = path.display().to_string();
        match file.meta("hitomi.task") {
            Some(t) if t == task => {}
            Some(other) => bail!("{name}: weights of a `{other}` model; expected a `{task}` model"),
            None => bail!("{name}: no hitomi metadata (hitomi.task); expected weights written by `{task} train`"),
        }
        let classes: Vec<String> = serde_json::from_str(file.meta("hitomi.classes").context("no hitomi.classes")?)
            .with_context(|| format!("{name}: bad hitomi.classes metadata"))?;
        Ok(Self { path, file, classes })
    }

    /// The config the model was trained with (`hitomi.config`).
    pub fn config<C: DeserializeOwned>(&self) -> Result<C> {
        let name = self.path.display();
        serde_json::from_str(self.file.meta("hitomi.config").with_context(|| format!("{name}: no hitomi.config"))?)
            .with_context(|| format!("{name}: bad hitomi.config metadata"))
    }

    /// Loads the model tensors (EMA ones if present) into `store`, all or nothing, listing every
    /// missing, extra or mis-shaped tensor.
    pub fn load_into(&self, store: &ParamStore) -> Result<()> {
        store.load_checked(&model_tensors(&self.file), &self.path.display().to_string(), &|_| false)
    }
}
