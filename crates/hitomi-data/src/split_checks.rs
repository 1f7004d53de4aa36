//! Checks shared by the dataset readers that load a whole split at open time (segmentation and
//! YOLO detection): all problems reported in one error, and one image size unless a size is given.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Problems shown in an open error; the count of all of them is given too.
pub const SHOWN: usize = 20;

/// Fails with every problem of the split (the first [`SHOWN`] listed, all counted), or passes.
pub fn report_problems(root: &Path, split: &str, problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = problems.iter().take(SHOWN).map(|p| format!("  {p}")).collect();
    bail!(
        "{}: {} problem(s) with the `{split}` split{}:\n{}",
        root.display(),
        problems.len(),
        if problems.len() > SHOWN { format!(" (first {SHOWN})") } else { String::new() },
        shown.join("\n")
    )
}

/// The (height, width) the model sees: `size` when given, else the one size all files share
/// (files of another size are listed). files[i] has sizes[i]; at least one file.
pub fn common_size(
    image_dir: &Path,
    files: &[PathBuf],
    sizes: &[(usize, usize)],
    size: Option<(usize, usize)>,
) -> Result<(usize, usize)> {
    if let Some(s) = size {
        return Ok(s);
    }
    let first = sizes[0];
    let odd: Vec<String> = files
        .iter()
        .zip(sizes)
        .filter(|(_, &s)| s != first)
        .map(|(f, s)| format!("  {}: {}x{}", f.display(), s.0, s.1))
        .take(SHOWN)
        .collect();
    if !odd.is_empty() {
        bail!(
            "{}: images differ in size from the first ({}x{}, HxW) and no image_size was given:\n{}",
            image_dir.display(),
            first.0,
            first.1,
            odd.join("\n")
        );
    }
    Ok(first)
}
