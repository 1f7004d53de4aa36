//! Classification metrics: top-1, top-5, per-class accuracy and the confusion matrix.

use serde::Serialize;

/// The `eval --json` document (fractions, not percents).
#[derive(Clone, Debug, Serialize)]
pub struct ClassificationReport {
    pub task: &'static str,
    pub n: usize,
    pub top1: f64,
    pub top5: f64,
    /// Per true class; null for a class without samples.
    pub per_class_accuracy: Vec<Option<f64>>,
    /// Rows: true class, columns: predicted class.
    pub confusion: Vec<Vec<u64>>,
}

/// Accumulates predictions batch by batch.
pub struct Accumulator {
    k: usize,
    n: usize,
    top1: usize,
    top5: usize,
    confusion: Vec<Vec<u64>>,
}

impl Accumulator {
    pub fn new(num_classes: usize) -> Self {
        Self { k: num_classes, n: 0, top1: 0, top5: 0, confusion: vec![vec![0; num_classes]; num_classes] }
    }

    /// scores: one row of class scores per sample; labels: true classes.
    pub fn add(&mut self, scores: &[Vec<f32>], labels: &[usize]) {
        for (row, &y) in scores.iter().zip(labels) {
            let order = ranked(row);
            self.n += 1;
            if order[0] == y {
                self.top1 += 1;
            }
            if order.iter().take(5).any(|&c| c == y) {
                self.top5 += 1;
            }
            self.confusion[y][order[0]] += 1;
        }
    }

    pub fn report(&self) -> ClassificationReport {
        let per_class = (0..self.k)
            .map(|c| {
                let total: u64 = self.confusion[c].iter().sum();
                (total > 0).then(|| self.confusion[c][c] as f64 / total as f64)
            })
            .collect();
        let n = self.n.max(1) as f64;
        ClassificationReport {
            task: "classify",
            n: self.n,
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            per_class_accuracy: per_class,
            confusion: self.confusion.clone(),
        }
    }
}

/// Class indices sorted by descending score (ties: lower index first).
pub fn ranked(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

impl ClassificationReport {
    /// A plain-text table: overall figures, then per-class accuracy and the confusion matrix.
    pub fn table(&self, classes: &[String]) -> String {
        let mut s =
            format!("n = {}   top-1 = {:.2}%   top-5 = {:.2}%\n\n", self.n, 100.0 * self.top1, 100.0 * self.top5);
        s += &format!("{:>8} {:>8} {:>9} |", "class", "n", "accuracy");
        for c in classes {
            s += &format!("{:>5}", truncate(c, 5));
        }
        s.push('\n');
        for (i, row) in self.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum();
            let acc = self.per_class_accuracy[i].map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
            s += &format!("{:>8} {:>8} {:>9} |", truncate(&classes[i], 8), total, acc);
            for v in row {
                s += &format!("{v:>5}");
            }
            s.push('\n');
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_top5_and_confusion() {
        let mut acc = Accumulator::new(6);
        let s = |best: usize, second: usize| {
            let mut v = vec![0.0f32; 6];
            v[best] = 2.0;
            v[second] = 1.0;
            v
        };
        acc.add(&[s(0, 1), s(1, 0), s(2, 3), s(4, 3)], &[0, 0, 3, 5]);
        let r = acc.report();
        assert_eq!(r.n, 4);
        assert!((r.top1 - 0.25).abs() < 1e-12);
        // label 5 scores 0 and ranks among the zeros at position >= 5 only if ties break by index:
        // order for s(4,3) is 4,3,0,1,2,5 -> label 5 is 6th: not in top-5.
        assert!((r.top5 - 0.75).abs() < 1e-12);
        assert_eq!(r.confusion[0], vec![1, 1, 0, 0, 0, 0]);
        assert_eq!(r.per_class_accuracy[0], Some(0.5));
        assert_eq!(r.per_class_accuracy[1], None);
        assert_eq!(r.per_class_accuracy[3], Some(0.0));
    }
}
