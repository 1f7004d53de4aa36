//! COCO bbox evaluation exactly as pycocotools' `COCOeval(gt, dt, iouType='bbox')` with default
//! parameters: `evaluate()` (per image and category greedy matching), `accumulate()` (101-point
//! interpolated precision) and `summarize()` (the 12 standard stats).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{bail, Result};

use super::format::{CocoAnnotation, CocoDet, CocoGt};

/// What each entry of [`CocoStats::stats`] means, in pycocotools' order.
pub const STAT_NAMES: [&str; 12] = [
    "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AP @[IoU=0.50 | area=all | maxDets=100]",
    "AP @[IoU=0.75 | area=all | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
];

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct CocoStats {
    /// The 12 numbers of `COCOeval.stats`, named by [`STAT_NAMES`]; -1 where nothing was valid.
    pub stats: [f64; 12],
    /// For each ground-truth category id (ascending): AP over IoU .50:.95, area all, maxDets 100;
    /// -1 for a category without (non-crowd) ground truth.
    pub per_category_ap: Vec<(u64, f64)>,
    /// For each ground-truth category id (ascending, as `per_category_ap`): the 101 interpolated
    /// precisions at recall 0, .01, .., 1 for IoU .50, area all, maxDets 100 -- pycocotools'
    /// `precision[0, :, k, 0, 2]`. All -1 for a category without (non-crowd) ground truth; 0 past
    /// the highest recall reached. Their mean over the entries > -1 is the category's AP50.
    pub pr50: Vec<(u64, Vec<f64>)>,
}

/// pycocotools' default `Params(iouType='bbox')`.
struct Params {
    iou_thrs: Vec<f64>,
    rec_thrs: Vec<f64>,
    /// all, small, medium, large; inclusive on both ends.
    area_rngs: [[f64; 2]; 4],
    max_dets: [usize; 3],
}

impl Params {
    fn coco() -> Self {
        Self {
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            area_rngs: [[0.0, 1e10], [0.0, 32.0 * 32.0], [32.0 * 32.0, 96.0 * 96.0], [96.0 * 96.0, 1e10]],
            max_dets: [1, 10, 100],
        }
    }
}

/// `np.linspace(start, stop, num)` bit for bit: `i * step + start`, the last value exactly `stop`.
/// It matters: AP50/AP75 select thresholds by float equality, and the 9th IoU threshold is
/// 0.8999999999999999, not 0.9.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// IoU of a detection and a ground-truth box, both `[x, y, w, h]`, as pycocotools' `bbIou`:
/// for a crowd ground truth the denominator is the detection's area alone, so a detection lying
/// inside a crowd region scores 1 whatever the region's size.
pub fn box_iou(dt: &[f64; 4], gt: &[f64; 4], gt_is_crowd: bool) -> f64 {
    let w = (dt[0] + dt[2]).min(gt[0] + gt[2]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[1] + dt[3]).min(gt[1] + gt[3]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let dt_area = dt[2] * dt[3];
    let union = if gt_is_crowd { dt_area } else { dt_area + gt[2] * gt[3] - inter };
    inter / union
}

/// Descending score order, stable like numpy's mergesort argsort on `-score` (ties keep input
/// order; -0.0 and 0.0 tie as they do in numpy).
fn by_score_desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

/// pycocotools' `evaluateImg` result for one image, category and area range.
struct ImgEval {
    /// Scores of the kept detections, highest first.
    dt_scores: Vec<f64>,
    /// `[t][d]`: whether detection d matched a ground truth at IoU threshold t.
    dt_matched: Vec<Vec<bool>>,
    /// `[t][d]`: whether detection d is left out of precision/recall at threshold t.
    dt_ignore: Vec<Vec<bool>>,
    /// Per ground truth: crowd or outside the area range.
    gt_ignore: Vec<bool>,
}

/// Greedy matching of one image and category for one area range. `dts` are sorted by score and
/// already capped at maxDets[-1]; `ious[d][g]` follows `gts`' input order.
fn evaluate_img(p: &Params, gts: &[&CocoAnnotation], dts: &[&CocoDet], ious: &[Vec<f64>], area: [f64; 2]) -> ImgEval {
    let outside = |a: f64| a < area[0] || a > area[1];
    let ignored: Vec<bool> = gts.iter().map(|g| g.iscrowd != 0 || outside(g.area)).collect();
    // Ignored ground truths go last (stable), so the `break` below can stop at the first one.
    let mut order: Vec<usize> = (0..gts.len()).collect();
    order.sort_by_key(|&g| ignored[g]);
    let gt_ignore: Vec<bool> = order.iter().map(|&g| ignored[g]).collect();
    let crowd: Vec<bool> = order.iter().map(|&g| gts[g].iscrowd != 0).collect();
    // pycocotools records a match as the ground truth's id and later tests it for non-zero, so a
    // ground truth with id 0 never counts as matched. Kept for exactness.
    let counts_as_match: Vec<bool> = order.iter().map(|&g| gts[g].id != 0).collect();

    let (nt, nd, ng) = (p.iou_thrs.len(), dts.len(), gts.len());
    let mut dt_matched = vec![vec![false; nd]; nt];
    let mut dt_ignore = vec![vec![false; nd]; nt];
    for (t, &thr) in p.iou_thrs.iter().enumerate() {
        let mut gt_taken = vec![false; ng];
        for d in 0..nd {
            let mut best = thr.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for g in 0..ng {
                // Crowd regions may absorb any number of detections.
                if gt_taken[g] && !crowd[g] {
                    continue;
                }
                // Once matched to a real object, never trade it for an ignored one.
                if matches!(m, Some(mm) if !gt_ignore[mm] && gt_ignore[g]) {
                    break;
                }
                let iou = ious[d][order[g]];
                if iou < best {
                    continue;
                }
                best = iou;
                m = Some(g);
            }
            if let Some(g) = m {
                dt_ignore[t][d] = gt_ignore[g];
                dt_matched[t][d] = counts_as_match[g];
                gt_taken[g] = true;
            }
        }
    }
    // Unmatched detections outside the area range belong to objects of another size: ignore them.
    for (d, det) in dts.iter().enumerate() {
        if outside(det.bbox[2] * det.bbox[3]) {
            for t in 0..nt {
                if !dt_matched[t][d] {
                    dt_ignore[t][d] = true;
                }
            }
        }
    }
    ImgEval { dt_scores: dts.iter().map(|d| d.score).collect(), dt_matched, dt_ignore, gt_ignore }
}

/// Precision `[t][r][k][a][m]` and recall `[t][k][a][m]`, flattened; -1 where undefined.
struct Accumulated {
    precision: Vec<f64>,
    recall: Vec<f64>,
    dims: [usize; 5],
}

impl Accumulated {
    fn p_index(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        let [_, nr, nk, na, nm] = self.dims;
        (((t * nr + r) * nk + k) * na + a) * nm + m
    }

    fn r_index(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        let [_, _, nk, na, nm] = self.dims;
        ((t * nk + k) * na + a) * nm + m
    }
}

/// pycocotools' `accumulate`: `evals[k][a][i]` for category k, area range a, image i (ascending ids).
fn accumulate(p: &Params, evals: &[Vec<Vec<Option<ImgEval>>>]) -> Accumulated {
    let (nt, nr, nk, na, nm) = (p.iou_thrs.len(), p.rec_thrs.len(), evals.len(), p.area_rngs.len(), p.max_dets.len());
    let mut acc = Accumulated {
        precision: vec![-1.0; nt * nr * nk * na * nm],
        recall: vec![-1.0; nt * nk * na * nm],
        dims: [nt, nr, nk, na, nm],
    };
    for (k, per_area) in evals.iter().enumerate() {
        for (a, per_img) in per_area.iter().enumerate() {
            let es: Vec<&ImgEval> = per_img.iter().flatten().collect();
            if es.is_empty() {
                continue;
            }
            let npig = es.iter().map(|e| e.gt_ignore.iter().filter(|&&ig| !ig).count()).sum::<usize>();
            if npig == 0 {
                continue;
            }
            for (m, &max_det) in p.max_dets.iter().enumerate() {
                // (image, detection) pairs in concatenation order, then stably sorted by score.
                let mut pool: Vec<(usize, usize)> = es
                    .iter()
                    .enumerate()
                    .flat_map(|(e, ev)| (0..ev.dt_scores.len().min(max_det)).map(move |d| (e, d)))
                    .collect();
                pool.sort_by(|&(e1, d1), &(e2, d2)| by_score_desc(es[e1].dt_scores[d1], es[e2].dt_scores[d2]));
                for t in 0..nt {
                    let (rc, pr) = pr_curve(&es, &pool, t, npig);
                    let ri = acc.r_index(t, k, a, m);
                    acc.recall[ri] = rc.last().copied().unwrap_or(0.0);
                    for (r, &thr) in p.rec_thrs.iter().enumerate() {
                        // searchsorted(rc, thr, side='left'); past the curve's end precision is 0.
                        let i = rc.partition_point(|&x| x < thr);
                        let pi = acc.p_index(t, r, k, a, m);
                        acc.precision[pi] = pr.get(i).copied().unwrap_or(0.0);
                    }
                }
            }
        }
    }
    acc
}

/// Recall and right-to-left monotone precision after each detection of `pool` at threshold `t`.
/// Ignored detections stay in place (counting neither way), as in pycocotools.
fn pr_curve(es: &[&ImgEval], pool: &[(usize, usize)], t: usize, npig: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut rc = Vec::with_capacity(pool.len());
    let mut pr = Vec::with_capacity(pool.len());
    for &(e, d) in pool {
        if !es[e].dt_ignore[t][d] {
            if es[e].dt_matched[t][d] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let (tpf, fpf) = (tp as f64, fp as f64);
        rc.push(tpf / npig as f64);
        // np.spacing(1) keeps 0/0 finite before the first counted detection.
        pr.push(tpf / (fpf + tpf + f64::EPSILON));
    }
    for i in (1..pr.len()).rev() {
        if pr[i] > pr[i - 1] {
            pr[i - 1] = pr[i];
        }
    }
    (rc, pr)
}

/// Mean of the entries > -1, or -1 when there are none (`COCOeval.summarize`).
fn mean_valid(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.filter(|&v| v > -1.0).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        -1.0
    } else {
        sum / n as f64
    }
}

/// One line of `COCOeval.summarize`: `ap` picks precision or recall; `iou_thr` is matched to the
/// thresholds by float equality exactly as pycocotools' `np.where(iouThr == p.iouThrs)`.
fn summarize_one(p: &Params, acc: &Accumulated, ap: bool, iou_thr: Option<f64>, a: usize, max_det: usize) -> f64 {
    let [nt, nr, nk, _, _] = acc.dims;
    let ts: Vec<usize> = (0..nt).filter(|&t| iou_thr.is_none_or(|thr| p.iou_thrs[t] == thr)).collect();
    let ms: Vec<usize> = (0..p.max_dets.len()).filter(|&m| p.max_dets[m] == max_det).collect();
    let mut vals = Vec::new();
    for &t in &ts {
        if ap {
            for r in 0..nr {
                for k in 0..nk {
                    for &m in &ms {
                        vals.push(acc.precision[acc.p_index(t, r, k, a, m)]);
                    }
                }
            }
        } else {
            for k in 0..nk {
                for &m in &ms {
                    vals.push(acc.recall[acc.r_index(t, k, a, m)]);
                }
            }
        }
    }
    mean_valid(vals.into_iter())
}

/// Evaluates COCO-format detections against ground truth exactly as pycocotools'
/// `COCOeval(gt, gt.loadRes(dt), 'bbox')` followed by `evaluate(); accumulate(); summarize()`.
///
/// Images and categories are those listed in `gt` (images without annotations count). Detections
/// of unlisted categories are not scored; a detection on an image not in `gt` is an error, as in
/// `loadRes`.
pub fn evaluate(gt: &CocoGt, dt: &[CocoDet]) -> Result<CocoStats> {
    let p = Params::coco();
    let img_ids: Vec<u64> = gt.images.iter().map(|i| i.id).collect::<BTreeSet<_>>().into_iter().collect();
    let cat_ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect::<BTreeSet<_>>().into_iter().collect();
    let img_index: HashMap<u64, usize> = img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let cat_index: HashMap<u64, usize> = cat_ids.iter().enumerate().map(|(k, &id)| (id, k)).collect();

    let unknown: BTreeSet<u64> = dt.iter().map(|d| d.image_id).filter(|id| !img_index.contains_key(id)).collect();
    if !unknown.is_empty() {
        bail!("detections refer to image ids not in the ground truth `images`: {unknown:?}");
    }
    let bad: Vec<usize> =
        (0..dt.len()).filter(|&i| !(dt[i].score.is_finite() && dt[i].bbox.iter().all(|v| v.is_finite()))).collect();
    if !bad.is_empty() {
        bail!("detections {bad:?} have a non-finite `score` or `bbox`");
    }

    // Group by (image, category), keeping input order within a group (pycocotools' `_prepare`).
    let mut gts: HashMap<(usize, usize), Vec<&CocoAnnotation>> = HashMap::new();
    for a in &gt.annotations {
        if let (Some(&i), Some(&k)) = (img_index.get(&a.image_id), cat_index.get(&a.category_id)) {
            gts.entry((i, k)).or_default().push(a);
        }
    }
    let mut dts: HashMap<(usize, usize), Vec<&CocoDet>> = HashMap::new();
    for d in dt {
        if let (Some(&i), Some(&k)) = (img_index.get(&d.image_id), cat_index.get(&d.category_id)) {
            dts.entry((i, k)).or_default().push(d);
        }
    }

    let max_det = p.max_dets[p.max_dets.len() - 1];
    let (ni, nk, na) = (img_ids.len(), cat_ids.len(), p.area_rngs.len());
    let mut evals: Vec<Vec<Vec<Option<ImgEval>>>> =
        (0..nk).map(|_| (0..na).map(|_| (0..ni).map(|_| None).collect()).collect()).collect();
    let seen: HashSet<(usize, usize)> = gts.keys().chain(dts.keys()).copied().collect();
    for &(i, k) in &seen {
        let g = gts.get(&(i, k)).map(Vec::as_slice).unwrap_or_default();
        let mut d: Vec<&CocoDet> = dts.get(&(i, k)).cloned().unwrap_or_default();
        d.sort_by(|x, y| by_score_desc(x.score, y.score));
        d.truncate(max_det);
        let ious: Vec<Vec<f64>> =
            d.iter().map(|det| g.iter().map(|a| box_iou(&det.bbox, &a.bbox, a.iscrowd != 0)).collect()).collect();
        for (a, &rng) in p.area_rngs.iter().enumerate() {
            evals[k][a][i] = Some(evaluate_img(&p, g, &d, &ious, rng));
        }
    }

    let acc = accumulate(&p, &evals);
    let (all, small, medium, large) = (0, 1, 2, 3);
    let s = |ap, thr, a, m| summarize_one(&p, &acc, ap, thr, a, m);
    let stats = [
        s(true, None, all, 100),
        s(true, Some(0.5), all, 100),
        s(true, Some(0.75), all, 100),
        s(true, None, small, 100),
        s(true, None, medium, 100),
        s(true, None, large, 100),
        s(false, None, all, 1),
        s(false, None, all, 10),
        s(false, None, all, 100),
        s(false, None, small, 100),
        s(false, None, medium, 100),
        s(false, None, large, 100),
    ];
    let m100 = p.max_dets.len() - 1;
    let per_category_ap = cat_ids
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            let vals = (0..p.iou_thrs.len()).flat_map(|t| (0..p.rec_thrs.len()).map(move |r| (t, r)));
            let ap = mean_valid(vals.map(|(t, r)| acc.precision[acc.p_index(t, r, k, all, m100)]));
            (id, ap)
        })
        .collect();
    // Picked by float equality as summarize() picks AP50's threshold (it is the first one).
    let t50 = p.iou_thrs.iter().position(|&t| t == 0.5).expect("IoU threshold .50 is in the defaults");
    let pr50 = cat_ids
        .iter()
        .enumerate()
        .map(|(k, &id)| (id, (0..p.rec_thrs.len()).map(|r| acc.precision[acc.p_index(t50, r, k, all, m100)]).collect()))
        .collect();
    Ok(CocoStats { stats, per_category_ap, pr50 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coco::format::{CocoCategory, CocoImage};

    #[test]
    fn thresholds_match_numpy_linspace() {
        let p = Params::coco();
        assert_eq!(p.iou_thrs[0], 0.5);
        assert_eq!(p.iou_thrs[5], 0.75);
        assert_eq!(p.iou_thrs[8], 0.8999999999999999);
        assert_eq!(p.iou_thrs[9], 0.95);
        assert_eq!(p.rec_thrs.len(), 101);
        assert_eq!(p.rec_thrs[100], 1.0);
    }

    #[test]
    fn iou_of_overlapping_boxes() {
        // 10x10 boxes offset by 5 in x: intersection 50, union 150.
        let iou = box_iou(&[5.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0], false);
        assert!((iou - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(box_iou(&[0.0, 0.0, 4.0, 4.0], &[0.0, 0.0, 4.0, 4.0], false), 1.0);
    }

    #[test]
    fn iou_of_touching_or_disjoint_boxes_is_zero() {
        assert_eq!(box_iou(&[10.0, 0.0, 5.0, 5.0], &[0.0, 0.0, 10.0, 10.0], false), 0.0);
        assert_eq!(box_iou(&[0.0, 20.0, 5.0, 5.0], &[0.0, 0.0, 10.0, 10.0], true), 0.0);
    }

    #[test]
    fn crowd_iou_divides_by_detection_area() {
        // Detection inside a big crowd region: IoU 1 against crowd, tiny otherwise.
        let crowd = [0.0, 0.0, 100.0, 100.0];
        let det = [10.0, 10.0, 10.0, 10.0];
        assert_eq!(box_iou(&det, &crowd, true), 1.0);
        assert!((box_iou(&det, &crowd, false) - 0.01).abs() < 1e-15);
        // Half outside: intersection 50 over detection area 100.
        assert_eq!(box_iou(&[-5.0, 0.0, 10.0, 10.0], &crowd, true), 0.5);
    }

    fn ann(id: u64, bbox: [f64; 4], iscrowd: u64) -> CocoAnnotation {
        CocoAnnotation { id, image_id: 1, category_id: 1, bbox, area: bbox[2] * bbox[3], iscrowd }
    }

    fn det(bbox: [f64; 4], score: f64) -> CocoDet {
        CocoDet { image_id: 1, category_id: 1, bbox, score }
    }

    fn one_image(annotations: Vec<CocoAnnotation>) -> CocoGt {
        CocoGt {
            images: vec![CocoImage { id: 1, file_name: None, width: None, height: None }],
            categories: vec![CocoCategory { id: 1, name: "thing".into() }],
            annotations,
        }
    }

    #[test]
    fn perfect_detection_scores_one_and_crowd_hits_are_ignored() {
        let gt = one_image(vec![ann(1, [0.0, 0.0, 50.0, 50.0], 0), ann(2, [100.0, 100.0, 200.0, 200.0], 1)]);
        let dt = vec![
            det([0.0, 0.0, 50.0, 50.0], 0.9),
            // Inside the crowd region, higher score: must be neither a TP nor an FP.
            det([150.0, 150.0, 20.0, 20.0], 0.95),
        ];
        let s = evaluate(&gt, &dt).unwrap();
        // Precision is tp / (tp + fp + eps) as in pycocotools, so "1" is 1 - 1ulp.
        assert!((s.stats[0] - 1.0).abs() < 1e-12, "{:?}", s.stats);
        assert_eq!(s.stats[8], 1.0);
        assert_eq!(s.per_category_ap[0].0, 1);
        assert!((s.per_category_ap[0].1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_ground_truth_gives_minus_one() {
        let gt = one_image(vec![]);
        let s = evaluate(&gt, &[det([0.0, 0.0, 5.0, 5.0], 0.5)]).unwrap();
        assert!(s.stats.iter().all(|&v| v == -1.0));
        assert_eq!(s.per_category_ap, vec![(1, -1.0)]);
    }

    #[test]
    fn detection_on_unknown_image_is_an_error() {
        let gt = one_image(vec![ann(1, [0.0, 0.0, 5.0, 5.0], 0)]);
        let mut d = det([0.0, 0.0, 5.0, 5.0], 0.5);
        d.image_id = 9;
        let e = evaluate(&gt, &[d]).unwrap_err();
        assert!(format!("{e}").contains("{9}"), "{e}");
    }

    #[test]
    fn pr50_of_a_false_then_a_true_positive() {
        // Two objects; the best-scored detection misses, the second hits one. After them recall
        // is 0, .5 and (monotone) precision .5, .5: precision .5 up to recall .50, 0 beyond.
        let gt = one_image(vec![ann(1, [0.0, 0.0, 10.0, 10.0], 0), ann(2, [50.0, 50.0, 10.0, 10.0], 0)]);
        let dt = vec![det([200.0, 200.0, 10.0, 10.0], 0.9), det([0.0, 0.0, 10.0, 10.0], 0.8)];
        let s = evaluate(&gt, &dt).unwrap();
        let (id, curve) = &s.pr50[0];
        assert_eq!((*id, curve.len()), (1, 101));
        let half = 1.0 / (2.0 + f64::EPSILON);
        assert!(curve[..=50].iter().all(|&p| p == half), "{curve:?}");
        assert!(curve[51..].iter().all(|&p| p == 0.0), "{curve:?}");
        // The curve's mean is this category's AP50, and with one category the summary AP50.
        assert_eq!(s.stats[1], curve.iter().sum::<f64>() / 101.0);
    }

    #[test]
    fn pr50_is_minus_one_without_ground_truth() {
        let s = evaluate(&one_image(vec![]), &[det([0.0, 0.0, 5.0, 5.0], 0.5)]).unwrap();
        assert_eq!(s.pr50, vec![(1, vec![-1.0; 101])]);
    }

    /// pycocotools 2.0.11's `precision[0, r, k, 0, 2]` at r = 0, 10, .., 100 on two of the golden
    /// cases (the full curves of all four cases were compared bit for bit when `pr50` was added).
    #[test]
    fn pr50_matches_pycocotools_on_golden_cases() {
        type Points = (u64, [f64; 11]);
        let want: [(&str, &[Points]); 2] = [
            (
                "messy",
                &[
                    (
                        1,
                        [
                            1.0,
                            1.0,
                            0.5454545454545454,
                            0.2558139534883721,
                            0.24074074074074073,
                            0.21333333333333335,
                            0.18584070796460178,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                        ],
                    ),
                    (3, [1.0, 1.0, 1.0, 1.0, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0, 0.0]),
                    (
                        7,
                        [
                            0.75,
                            0.75,
                            0.75,
                            0.75,
                            0.5714285714285714,
                            0.5714285714285714,
                            0.5555555555555556,
                            0.42857142857142855,
                            0.0,
                            0.0,
                            0.0,
                        ],
                    ),
                ],
            ),
            (
                "empty_category",
                &[
                    (
                        1,
                        [
                            0.9999999999999998,
                            0.9999999999999998,
                            0.9999999999999998,
                            0.9999999999999998,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                        ],
                    ),
                    (2, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7142857142857143, 0.7142857142857143, 0.0, 0.0, 0.0]),
                    (3, [0.0; 11]),
                    (4, [-1.0; 11]),
                ],
            ),
        ];
        for (case, cats) in want {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/coco").join(case);
            let gt = CocoGt::from_path(&dir.join("gt.json")).unwrap();
            let dt = crate::coco::read_detections(&dir.join("dt.json")).unwrap();
            let s = evaluate(&gt, &dt).unwrap();
            assert_eq!(s.pr50.iter().map(|c| c.0).collect::<Vec<_>>(), cats.iter().map(|c| c.0).collect::<Vec<_>>());
            for ((id, curve), (_, points)) in s.pr50.iter().zip(cats.iter()) {
                let got: Vec<f64> = (0..=100).step_by(10).map(|r| curve[r]).collect();
                assert_eq!(got, points, "{case}: category {id}");
            }
            // Summing precision[0, r, k, 0, 2] in summarize's order (r outer, k inner) gives AP50 bit for bit.
            let valid: Vec<f64> =
                (0..101).flat_map(|r| s.pr50.iter().map(move |c| c.1[r])).filter(|&p| p > -1.0).collect();
            assert_eq!(s.stats[1], valid.iter().sum::<f64>() / valid.len() as f64, "{case}");
        }
    }
}
