//! The MVTec AD category layout for anomaly detection: `train/good/*.png` (normal images only),
//! `test/good/*.png`, `test/<defect>/*.png`, and optional `ground_truth/<defect>/<stem>_mask.png`
//! (0 = normal, non-zero = defect). Files are listed and checked here; decoding is the caller's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::image_folder::{entries, is_image};

/// One test image: its file, its defect type ("good" for normal ones) and its mask, if masks exist.
#[derive(Clone, Debug, PartialEq)]
pub struct TestImage {
    pub file: PathBuf,
    pub defect: String,
    /// `None` for good images (their mask is all normal) and for categories without masks.
    pub mask: Option<PathBuf>,
}

impl TestImage {
    pub fn is_anomalous(&self) -> bool {
        self.defect != "good"
    }
}

/// A category folder, listed.
#[derive(Clone, Debug)]
pub struct MvtecCategory {
    pub root: PathBuf,
    pub train: Vec<PathBuf>,
    pub test: Vec<TestImage>,
    /// Whether `ground_truth/` exists, so pixel metrics can be computed.
    pub has_masks: bool,
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_file() && is_image(p)).collect())
}

impl MvtecCategory {
    /// Lists `root`; `need_test` asks for a `test/` folder too (eval), training needs only `train/good`.
    pub fn open(root: &Path, need_test: bool) -> Result<Self> {
        let expected = "expected an MVTec AD category: train/good/*.png, test/good/*.png, test/<defect>/*.png, \
                        optional ground_truth/<defect>/<name>_mask.png";
        let good = root.join("train/good");
        if !good.is_dir() {
            bail!("{}: no train/good folder; {expected}", root.display());
        }
        let train = images_in(&good)?;
        if train.is_empty() {
            bail!("{}: no images; the normal training images go here ({expected})", good.display());
        }
        let test_dir = root.join("test");
        let gt_dir = root.join("ground_truth");
        let has_masks = gt_dir.is_dir();
        let mut test = Vec::new();
        let mut problems = Vec::new();
        if test_dir.is_dir() {
            for d in entries(&test_dir)?.into_iter().filter(|p| p.is_dir()) {
                let defect = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                for file in images_in(&d)? {
                    let mask = if defect != "good" && has_masks {
                        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                        let m = gt_dir.join(&defect).join(format!("{stem}_mask.png"));
                        if !m.is_file() {
                            problems.push(format!("{}: no mask; expected {}", file.display(), m.display()));
                        }
                        Some(m)
                    } else {
                        None
                    };
                    test.push(TestImage { file, defect: defect.clone(), mask });
                }
            }
        } else if need_test {
            bail!("{}: no test folder; {expected}", root.display());
        }
        if !problems.is_empty() {
            bail!(
                "{}: {} test image(s) without a mask while ground_truth/ exists:\n  {}",
                root.display(),
                problems.len(),
                problems.join("\n  ")
            );
        }
        let n_good = test.iter().filter(|t| !t.is_anomalous()).count();
        if need_test && (n_good == 0 || n_good == test.len()) {
            bail!(
                "{}: the test folder needs both good and defective images to score (found {n_good} good, {} defective)",
                test_dir.display(),
                test.len() - n_good
            );
        }
        Ok(Self { root: root.to_path_buf(), train, test, has_masks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn lists_the_layout_and_names_what_is_missing() {
        let root = std::env::temp_dir().join(format!("hitomi-mvtec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let e = MvtecCategory::open(&root, false).unwrap_err().to_string();
        assert!(e.contains("no train/good folder"), "{e}");
        touch(&root.join("train/good/000.png"));
        touch(&root.join("test/good/000.png"));
        touch(&root.join("test/hole/000.png"));
        touch(&root.join("test/hole/001.png"));
        touch(&root.join("ground_truth/hole/000_mask.png"));
        let e = MvtecCategory::open(&root, true).unwrap_err().to_string();
        assert!(e.contains("test/hole/001.png: no mask; expected") && e.contains("001_mask.png"), "{e}");
        touch(&root.join("ground_truth/hole/001_mask.png"));
        let c = MvtecCategory::open(&root, true).unwrap();
        assert_eq!((c.train.len(), c.test.len(), c.has_masks), (1, 3, true));
        assert_eq!(c.test[0].defect, "good");
        assert!(c.test[0].mask.is_none() && c.test[1].mask.is_some());
        std::fs::remove_dir_all(root.join("ground_truth")).unwrap();
        let c = MvtecCategory::open(&root, true).unwrap();
        assert!(!c.has_masks && c.test.iter().all(|t| t.mask.is_none()));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
