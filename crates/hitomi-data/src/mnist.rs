//! The MNIST IDX folder layout: `train-*` and `t10k-*` image + label files (raw or gzip) in one
//! folder, opened as a [`ClassificationData`] with classes "0".."9".

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rayon::prelude::*;

use crate::classification::{ClassificationData, OpenOptions, Source};
use crate::idx::{read_idx_images, read_idx_labels};
use crate::pixels::to_chw;

/// MNIST has ten digit classes; a label outside them means a wrong or corrupt file.
const NUM_CLASSES: usize = 10;

/// The image and label files of one split.
#[derive(Clone, Debug)]
pub struct IdxPair {
    pub images: PathBuf,
    pub labels: PathBuf,
}

/// The file-name prefix of `split`: "train", or "t10k" for test/val/t10k.
pub fn prefix_for(split: &str) -> Option<&'static str> {
    match split {
        "train" => Some("train"),
        "test" | "val" | "t10k" => Some("t10k"),
        _ => None,
    }
}

/// Accepted names of one file, in order of preference: the canonical names with and without
/// `.gz`, then the dotted spelling some mirrors use (`train-images.idx3-ubyte`).
fn candidates(prefix: &str, kind: &str, ext: &str) -> [String; 4] {
    [
        format!("{prefix}-{kind}-{ext}"),
        format!("{prefix}-{kind}-{ext}.gz"),
        format!("{prefix}-{kind}.{ext}"),
        format!("{prefix}-{kind}.{ext}.gz"),
    ]
}

fn first_existing(root: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_file())
}

/// The IDX files of `split` in `root`: `Ok(None)` when neither is there (not this layout), an
/// error when only one of the pair is.
pub fn find(root: &Path, split: &str) -> Result<Option<IdxPair>> {
    let Some(prefix) = prefix_for(split) else { return Ok(None) };
    let img_names = candidates(prefix, "images", "idx3-ubyte");
    let lab_names = candidates(prefix, "labels", "idx1-ubyte");
    match (first_existing(root, &img_names), first_existing(root, &lab_names)) {
        (None, None) => Ok(None),
        (Some(images), Some(labels)) => Ok(Some(IdxPair { images, labels })),
        (Some(images), None) => bail!(
            "{}: found {} but no label file for split `{split}`; expected {}[.gz] beside it",
            root.display(),
            images.display(),
            lab_names[0]
        ),
        (None, Some(labels)) => bail!(
            "{}: found {} but no image file for split `{split}`; expected {}[.gz] beside it",
            root.display(),
            labels.display(),
            img_names[0]
        ),
    }
}

/// Reads and checks both files, converting to `opts` (channels, size) when they differ from the
/// 1 x rows x cols grey digits of the files.
pub fn load(pair: &IdxPair, opts: &OpenOptions) -> Result<ClassificationData> {
    let (images, labels) = rayon::join(|| read_idx_images(&pair.images), || read_idx_labels(&pair.labels));
    let (images, labels) = (images?, labels?);
    if images.n != labels.len() {
        bail!(
            "{} holds {} images but {} holds {} labels; expected one label per image",
            pair.images.display(),
            images.n,
            pair.labels.display(),
            labels.len()
        );
    }
    if images.n == 0 {
        bail!("{}: no images (count 0 in the header); expected at least one", pair.images.display());
    }
    let bad: Vec<String> = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l as usize >= NUM_CLASSES)
        .take(10)
        .map(|(i, l)| format!("#{i} = {l}"))
        .collect();
    if !bad.is_empty() {
        let count = labels.iter().filter(|&&l| l as usize >= NUM_CLASSES).count();
        bail!(
            "{}: {count} labels outside 0..=9 ({}{}); expected MNIST digit classes",
            pair.labels.display(),
            bad.join(", "),
            if count > bad.len() { ", ..." } else { "" }
        );
    }
    let (rows, cols) = (images.rows, images.cols);
    let native = opts.channels == 1 && opts.size.is_none_or(|s| s == (rows, cols));
    let (height, width, pixels) = if native {
        (rows, cols, images.pixels)
    } else {
        let converted: Vec<(usize, usize, Vec<u8>)> = images
            .pixels
            .par_chunks(rows * cols)
            .map(|px| {
                let grey = image::GrayImage::from_raw(cols as u32, rows as u32, px.to_vec()).expect("IDX image size");
                to_chw(&image::DynamicImage::ImageLuma8(grey), opts.channels, opts.size)
            })
            .collect::<Result<_>>()?;
        let (h, w) = (converted[0].0, converted[0].1);
        (h, w, converted.into_iter().flat_map(|c| c.2).collect())
    };
    Ok(ClassificationData::from_parts(
        (0..NUM_CLASSES).map(|c| c.to_string()).collect(),
        labels.into_iter().map(usize::from).collect(),
        (opts.channels, height, width),
        pixels,
        Source::Idx { images: pair.images.clone(), labels: pair.labels.clone(), index: (0..images.n).collect() },
    ))
}
