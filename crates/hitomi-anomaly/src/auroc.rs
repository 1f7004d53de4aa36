//! ROC curve and the area under it as scikit-learn's `roc_curve(drop_intermediate=False)` and
//! `roc_auc_score` define them: tied scores form one ROC point, so the area is the Mann-Whitney U
//! statistic with ties counted 1/2, divided by n_pos * n_neg.

use anyhow::{bail, Result};

/// Points of the ROC curve, thresholds descending; the first threshold is +inf (no positives).
#[derive(Clone, Debug, PartialEq)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// labels: true = anomalous (positive); scores: higher = more anomalous. Errors if a class is
/// missing (the area is undefined) or a score is NaN.
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<RocCurve> {
    if labels.len() != scores.len() {
        bail!("roc_curve: {} labels for {} scores", labels.len(), scores.len());
    }
    if scores.iter().any(|s| s.is_nan()) {
        bail!("roc_curve: a score is NaN");
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        bail!("ROC AUC is undefined with {n_pos} positive and {n_neg} negative samples; both classes are needed");
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = RocCurve { fpr: vec![0.0], tpr: vec![0.0], thresholds: vec![f64::INFINITY] };
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // One point per distinct score: emit after the last sample of a tie group.
        let last_of_group = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_group {
            curve.fpr.push(fp as f64 / n_neg as f64);
            curve.tpr.push(tp as f64 / n_pos as f64);
            curve.thresholds.push(scores[i]);
        }
    }
    Ok(curve)
}

/// Trapezoidal area under the ROC curve.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = roc_curve(labels, scores)?;
    Ok(c.fpr.windows(2).zip(c.tpr.windows(2)).map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) / 2.0).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_half_and_one_class_is_an_error() {
        assert_eq!(roc_auc(&[false, true], &[0.1, 0.9]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[false, true], &[0.9, 0.1]).unwrap(), 0.0);
        assert_eq!(roc_auc(&[false, true], &[0.5, 0.5]).unwrap(), 0.5);
        let c = roc_curve(&[false, true, true], &[0.5, 0.5, 0.7]).unwrap();
        assert_eq!(c.thresholds, vec![f64::INFINITY, 0.7, 0.5]);
        let e = roc_auc(&[true, true], &[0.1, 0.2]).unwrap_err().to_string();
        assert!(e.contains("2 positive and 0 negative"), "{e}");
    }
}
