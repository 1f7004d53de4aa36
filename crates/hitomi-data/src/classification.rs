//! Image classification datasets held in memory as u8 pixels: layout detection (MNIST IDX folder or
//! ImageFolder tree), per-sample access and subsets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{image_folder, mnist};

pub use crate::batch::classification_batch;

/// How images are presented, whatever the files hold.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenOptions {
    /// 1 (grey, luma) or 3 (RGB).
    pub channels: usize,
    /// (height, width) to resize every image to (bilinear); `None` keeps the files' size, which
    /// must then be the same for all images.
    pub size: Option<(usize, usize)>,
}

impl OpenOptions {
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.channels, 1 | 3) {
            bail!("channels = {}; expected 1 (grey) or 3 (RGB)", self.channels);
        }
        if let Some((h, w)) = self.size {
            if h == 0 || w == 0 || h > 16_384 || w > 16_384 {
                bail!("image size {h}x{w} (HxW); expected both sides in 1..=16384");
            }
        }
        Ok(())
    }
}

/// Where the samples came from, for naming a sample in reports.
#[derive(Clone, Debug)]
pub enum Source {
    /// An MNIST IDX pair; `index[i]` is sample i's position in the files.
    Idx { images: PathBuf, labels: PathBuf, index: Vec<usize> },
    /// An ImageFolder split folder; `files[i]` is sample i's file.
    Folder { dir: PathBuf, files: Vec<PathBuf> },
}

/// A labelled image set with every image decoded to (C, H, W) u8 in memory.
#[derive(Clone, Debug)]
pub struct ClassificationData {
    /// Class names; a label is an index into them.
    pub classes: Vec<String>,
    /// (N) class index of every sample.
    pub labels: Vec<usize>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// (N, C, H, W) row-major.
    pixels: Vec<u8>,
    source: Source,
}

impl ClassificationData {
    /// Opens `split` ("train", "val", "test") of the dataset at `root`, detecting its layout:
    ///
    /// - an MNIST IDX folder: `train-images-idx3-ubyte[.gz]` + `train-labels-idx1-ubyte[.gz]` for
    ///   "train", `t10k-*` for "test", "val" or "t10k";
    /// - an ImageFolder tree: `root/<split>/<class>/*.{png,jpg,jpeg}` ("val" falls back to a `test`
    ///   folder and vice versa); classes are the sorted class folder names.
    ///
    /// Every image is decoded and checked here; all bad files are reported in one error.
    pub fn open(root: &Path, split: &str, opts: &OpenOptions) -> Result<Self> {
        opts.validate()?;
        if !root.is_dir() {
            bail!("{}: no such folder; expected a dataset folder.\n{}", root.display(), expected_layouts(root, split));
        }
        if let Some(pair) = mnist::find(root, split)? {
            return mnist::load(&pair, opts);
        }
        if let Some(dir) = image_folder::split_dir(root, split) {
            return image_folder::load(&dir, opts);
        }
        let mut found: Vec<String> = std::fs::read_dir(root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        found.sort();
        let shown = found.len().min(20);
        bail!(
            "{}: no classification data for split `{split}`.\n{}\nfound: {}{}",
            root.display(),
            expected_layouts(root, split),
            if found.is_empty() { "(empty folder)".to_string() } else { found[..shown].join(", ") },
            if found.len() > shown { format!(", ... ({} entries)", found.len()) } else { String::new() }
        )
    }

    /// Assembles a dataset from decoded parts; `shape` = (C, H, W), `pixels`: (N, C, H, W).
    pub(crate) fn from_parts(
        classes: Vec<String>,
        labels: Vec<usize>,
        shape: (usize, usize, usize),
        pixels: Vec<u8>,
        source: Source,
    ) -> Self {
        let (channels, height, width) = shape;
        debug_assert_eq!(pixels.len(), labels.len() * channels * height * width);
        Self { classes, labels, channels, height, width, pixels, source }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// (C, H, W) of every image.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Image `i`: (C, H, W) row-major u8. Panics if `i >= len()`.
    pub fn image_u8(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Image `i`: (C, H, W) row-major f32 in [0, 1]. Panics if `i >= len()`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image_u8(i).iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// The samples at `idx` (in that order; repeats allowed), with the same classes.
    /// Panics if an index is out of range.
    pub fn subset(&self, idx: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(idx.len() * self.image_len());
        for &i in idx {
            pixels.extend_from_slice(self.image_u8(i));
        }
        let source = match &self.source {
            Source::Idx { images, labels, index } => Source::Idx {
                images: images.clone(),
                labels: labels.clone(),
                index: idx.iter().map(|&i| index[i]).collect(),
            },
            Source::Folder { dir, files } => {
                Source::Folder { dir: dir.clone(), files: idx.iter().map(|&i| files[i].clone()).collect() }
            }
        };
        Self {
            classes: self.classes.clone(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels,
            source,
        }
    }

    /// Number of samples of each class, indexed like `classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// A name for sample `i` in reports: its file, or the IDX file and position.
    pub fn sample_name(&self, i: usize) -> String {
        match &self.source {
            Source::Idx { images, index, .. } => format!("{} #{}", images.display(), index[i]),
            Source::Folder { files, .. } => files[i].display().to_string(),
        }
    }
}

/// The two layouts `open` understands, spelled out for `root` and `split`.
fn expected_layouts(root: &Path, split: &str) -> String {
    let r = root.display();
    let prefix = mnist::prefix_for(split).unwrap_or("{train|t10k}");
    format!(
        "expected one of:\n  \
         - an MNIST IDX folder: {r}/{prefix}-images-idx3-ubyte[.gz] and {r}/{prefix}-labels-idx1-ubyte[.gz] \
         (split train: train-*; split test, val or t10k: t10k-*)\n  \
         - an ImageFolder tree: {r}/{split}/<class>/*.png (or .jpg, .jpeg), one folder per class \
         (split val falls back to a test folder and vice versa)"
    )
}
