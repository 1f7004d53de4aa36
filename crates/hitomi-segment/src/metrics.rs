//! Segmentation metrics from one confusion matrix accumulated over the whole dataset, as
//! torchvision's segmentation reference `ConfusionMatrix`: rows are targets, columns predictions,
//! target pixels equal to 255 (ignore) are skipped.

use serde::Serialize;

/// Counts of (target, prediction) pixel pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    pub num_classes: usize,
    /// (num_classes * num_classes), row-major: mat[t * n + p].
    pub counts: Vec<u64>,
}

/// What `eval` reports (fractions). Classes with no pixel in targets nor predictions have no IoU
/// (`None`, written as null) and are left out of the mean, as mmsegmentation's nanmean does.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    pub task: &'static str,
    pub n_images: usize,
    pub miou: f64,
    pub pixel_accuracy: f64,
    pub iou_per_class: Vec<Option<f64>>,
    pub accuracy_per_class: Vec<Option<f64>>,
    pub classes: Vec<String>,
    pub counted_pixels: u64,
    pub confusion: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    pub fn new(num_classes: usize) -> Self {
        Self { num_classes, counts: vec![0; num_classes * num_classes] }
    }

    /// Adds one image: `target` and `pred` of equal length; targets outside [0, n) (255) are skipped.
    pub fn add(&mut self, target: &[u8], pred: &[u8]) {
        assert_eq!(target.len(), pred.len(), "target and prediction sizes differ");
        let n = self.num_classes;
        for (&t, &p) in target.iter().zip(pred) {
            let (t, p) = (t as usize, p as usize);
            if t < n {
                // A prediction outside the classes cannot come from an argmax; count it nowhere.
                if p < n {
                    self.counts[t * n + p] += 1;
                }
            }
        }
    }

    fn row_sum(&self, c: usize) -> u64 {
        self.counts[c * self.num_classes..(c + 1) * self.num_classes].iter().sum()
    }

    fn col_sum(&self, c: usize) -> u64 {
        (0..self.num_classes).map(|t| self.counts[t * self.num_classes + c]).sum()
    }

    pub fn report(&self, classes: &[String], n_images: usize) -> SegmentReport {
        let n = self.num_classes;
        let diag: Vec<u64> = (0..n).map(|c| self.counts[c * n + c]).collect();
        let total: u64 = self.counts.iter().sum();
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let iou: Vec<Option<f64>> =
            (0..n).map(|c| ratio(diag[c], self.row_sum(c) + self.col_sum(c) - diag[c])).collect();
        let acc: Vec<Option<f64>> = (0..n).map(|c| ratio(diag[c], self.row_sum(c))).collect();
        let defined: Vec<f64> = iou.iter().flatten().copied().collect();
        SegmentReport {
            task: "segment",
            n_images,
            miou: if defined.is_empty() { 0.0 } else { defined.iter().sum::<f64>() / defined.len() as f64 },
            pixel_accuracy: ratio(diag.iter().sum(), total).unwrap_or(0.0),
            iou_per_class: iou,
            accuracy_per_class: acc,
            classes: classes.to_vec(),
            counted_pixels: total,
            confusion: self.counts.chunks(n).map(<[u64]>::to_vec).collect(),
        }
    }
}

impl SegmentReport {
    /// A printable table: one row per class, then the means.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("     -".to_string(), |v| format!("{:6.2}", 100.0 * v));
        let mut s = format!("{:<14} {:>6} {:>6}\n", "class", "IoU%", "acc%");
        for (i, name) in self.classes.iter().enumerate() {
            s += &format!("{:<14} {} {}\n", name, pct(self.iou_per_class[i]), pct(self.accuracy_per_class[i]));
        }
        s += &format!(
            "mIoU {:.2}%, pixel accuracy {:.2}% over {} images ({} pixels)",
            100.0 * self.miou,
            100.0 * self.pixel_accuracy,
            self.n_images,
            self.counted_pixels
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_matrix_by_hand() {
        let mut m = ConfusionMatrix::new(3);
        // targets 0 0 1 1 255 ; preds 0 1 1 1 2
        m.add(&[0, 0, 1, 1, 255], &[0, 1, 1, 1, 2]);
        let r = m.report(&["a".into(), "b".into(), "c".into()], 1);
        assert_eq!(r.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![0, 0, 0]]);
        assert_eq!(r.iou_per_class, vec![Some(0.5), Some(2.0 / 3.0), None]);
        assert_eq!(r.accuracy_per_class, vec![Some(0.5), Some(1.0), None]);
        assert!((r.miou - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((r.pixel_accuracy - 0.75).abs() < 1e-12);
        assert!(r.table().contains("mIoU 58.33%"));
    }
}
