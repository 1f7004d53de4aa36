//! Per-class precision-recall curves at IoU 0.5 (COCO's 101-point interpolated precision) as a PNG.

use std::path::Path;

use anyhow::Result;

/// The recall points COCO interpolates precision at: 0, .01, .., 1.
fn recall_points(n: usize) -> Vec<f64> {
    (0..n).map(|r| r as f64 / (n - 1).max(1) as f64).collect()
}

/// A class's AP50: the mean of its curve's defined (non-negative) values, as pycocotools averages
/// `precision[0, :, k, 0, 2]`; `None` when the class has no ground truth (all -1).
pub fn ap50(curve: &[f64]) -> Option<f64> {
    let valid: Vec<f64> = curve.iter().copied().filter(|&p| p >= 0.0).collect();
    (!valid.is_empty()).then(|| valid.iter().sum::<f64>() / valid.len() as f64)
}

/// Writes `path` (PNG): one precision-recall line per class from [`crate::coco::CocoStats::pr50`],
/// recall on x and precision on y, with a legend entry "name  AP50 0.xxx" per class.
///
/// `names[id - 1]` names category `id` (the ids [`crate::coco::gt_from_boxes`] assigns); an id
/// without a name is shown as "class {id}". Classes without ground truth have no curve and are
/// left out, so the legend only lists what is drawn.
pub fn plot_pr_curves(path: &Path, pr50: &[(u64, Vec<f64>)], names: &[String]) -> Result<()> {
    let mut labels = Vec::new();
    let mut curves = Vec::new();
    for (id, curve) in pr50 {
        let Some(ap) = ap50(curve) else { continue };
        let name = usize::try_from(*id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| names.get(i))
            .cloned()
            .unwrap_or_else(|| format!("class {id}"));
        labels.push(format!("{name}  AP50 {ap:.3}"));
        // Interpolated precision is -1 only for a class without ground truth, skipped above; the
        // filter keeps a malformed curve from plotting below the axis.
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            recall_points(curve.len()).into_iter().zip(curve.iter().copied()).filter(|p| p.1 >= 0.0).unzip();
        curves.push((xs, ys));
    }
    let series: Vec<(&str, Vec<f64>, Vec<f64>)> =
        labels.iter().zip(curves).map(|(label, (xs, ys))| (label.as_str(), xs, ys)).collect();
    hitomi_train::plot::xy(path, "precision-recall @ IoU 0.50", "recall", "precision", &series)
}

#[cfg(test)]
mod tests {
    use plotters::style::{Color, Palette, Palette99};

    use super::*;

    #[test]
    fn ap50_ignores_undefined_points() {
        assert_eq!(ap50(&[-1.0; 101]), None);
        assert_eq!(ap50(&[1.0, 0.5, 0.0]), Some(0.5));
    }

    #[test]
    fn writes_a_png_of_the_plot_size() {
        let dir = std::env::temp_dir().join(format!("hitomi-pr-curve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pr_curve.png");
        // A perfect class, one that tails off at recall .6, one without ground truth, and an id
        // beyond `names`.
        let perfect = vec![1.0; 101];
        let tail: Vec<f64> = (0..101).map(|r| if r <= 60 { 1.0 - r as f64 / 200.0 } else { 0.0 }).collect();
        let pr50 = vec![(1, perfect), (2, tail.clone()), (3, vec![-1.0; 101]), (7, tail)];
        let names = vec!["cat".to_string(), "dog".to_string(), "bird".to_string()];
        plot_pr_curves(&path, &pr50, &names).unwrap();
        let img = image::open(&path).unwrap();
        // hitomi_train::plot::xy draws 640x420.
        assert_eq!((img.width(), img.height()), (640, 420));
        // The first class's curve is drawn in the first palette colour.
        let c = Palette99::pick(0).to_rgba();
        assert!(img.to_rgb8().pixels().any(|p| p.0 == [c.0, c.1, c.2]));

        // No class with ground truth: still a valid (empty) chart.
        plot_pr_curves(&path, &[(1, vec![-1.0; 101])], &names).unwrap();
        assert_eq!(image::open(&path).unwrap().width(), 640);
        std::fs::remove_dir_all(&dir).ok();
    }
}
