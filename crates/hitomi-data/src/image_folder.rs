//! The ImageFolder layout (`root/<split>/<class>/*.png`, as torchvision and Ultralytics use): class
//! discovery, and decoding of every file at open time so bad files are reported together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hitomi_core::image_io::read_image;
use rayon::prelude::*;

use crate::classification::{ClassificationData, OpenOptions, Source};
use crate::pixels::to_chw;

/// File extensions taken as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The folder of `split` under `root`; "val" and "test" stand in for each other because datasets
/// ship one or the other as their held-out split.
pub fn split_dir(root: &Path, split: &str) -> Option<PathBuf> {
    let names: &[&str] = match split {
        "val" => &["val", "test"],
        "test" => &["test", "val"],
        s => &[s][..],
    };
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

pub(crate) fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Sorted entries of `dir`, hidden ones (`.DS_Store`, `.ipynb_checkpoints`) left out.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list folder", dir.display()))? {
        let p = e.with_context(|| format!("{}: cannot list folder", dir.display()))?.path();
        if !is_hidden(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Image files under `dir`, recursively (as torchvision's ImageFolder walks), in sorted order.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in entries(dir)? {
        if p.is_dir() {
            image_files(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Scans `dir` = `root/<split>` and decodes every image, converting to `opts`.
pub fn load(dir: &Path, opts: &OpenOptions) -> Result<ClassificationData> {
    let class_dirs: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        bail!(
            "{}: no class folders; expected {}/<class>/*.png (or .jpg, .jpeg), one folder per class",
            dir.display(),
            dir.display()
        );
    }
    let mut classes = Vec::new();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut empty = Vec::new();
    for (label, cdir) in class_dirs.iter().enumerate() {
        let name = cdir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let before = files.len();
        image_files(cdir, &mut files)?;
        if files.len() == before {
            empty.push(cdir.display().to_string());
        }
        labels.resize(files.len(), label);
        classes.push(name);
    }
    if !empty.is_empty() {
        bail!(
            "{}: {} class folder(s) hold no images: {}; expected *.png, *.jpg or *.jpeg files in every class folder",
            dir.display(),
            empty.len(),
            empty.join(", ")
        );
    }

    let decoded: Vec<Result<(usize, usize, Vec<u8>)>> = files
        .par_iter()
        .map(|p| {
            let img = read_image(p)?;
            to_chw(&img, opts.channels, opts.size).with_context(|| p.display().to_string())
        })
        .collect();
    let bad: Vec<String> = decoded.iter().filter_map(|r| r.as_ref().err()).map(|e| format!("  {e:#}")).collect();
    if !bad.is_empty() {
        bail!(
            "{}: {} of {} image files cannot be used (expected PNG or JPEG images):\n{}",
            dir.display(),
            bad.len(),
            files.len(),
            bad.join("\n")
        );
    }
    let decoded: Vec<(usize, usize, Vec<u8>)> = decoded.into_iter().map(|r| r.expect("checked above")).collect();
    let (height, width) = common_size(dir, &files, &decoded)?;
    Ok(ClassificationData::from_parts(
        classes,
        labels,
        (opts.channels, height, width),
        decoded.into_iter().flat_map(|d| d.2).collect(),
        Source::Folder { dir: dir.to_path_buf(), files },
    ))
}

/// The one (height, width) all images share; an error listing every file of another size.
fn common_size(dir: &Path, files: &[PathBuf], decoded: &[(usize, usize, Vec<u8>)]) -> Result<(usize, usize)> {
    let mut by_size: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for d in decoded {
        *by_size.entry((d.0, d.1)).or_default() += 1;
    }
    // The most common size is taken as the intended one, so the list names the odd files out.
    let (&size, _) = by_size.iter().max_by_key(|(_, &n)| n).expect("at least one image");
    if by_size.len() == 1 {
        return Ok(size);
    }
    let odd: Vec<String> = files
        .iter()
        .zip(decoded)
        .filter(|(_, d)| (d.0, d.1) != size)
        .map(|(p, d)| format!("  {}: {}x{} (HxW)", p.display(), d.0, d.1))
        .collect();
    bail!(
        "{}: images differ in size and no size to resize to was given; {} of {} are {}x{} (HxW), these are not:\n{}\n\
         expected one size for all images, or a size option (e.g. image_size in the config) to resize them to",
        dir.display(),
        files.len() - odd.len(),
        files.len(),
        size.0,
        size.1,
        odd.join("\n")
    )
}
