//! Builders from a detector's pixel boxes to COCO ground truth and results, and the writer of the
//! `gt.json` / `dt.json` pair that pycocotools (or `hitomi-detect coco`) can re-score.
//!
//! ```no_run
//! use hitomi_detect::coco::{dets_from_boxes, evaluate, gt_from_boxes, write_coco_dir};
//! # fn main() -> anyhow::Result<()> {
//! let classes = vec!["cat".to_string(), "dog".to_string()];
//! let images = vec![("a.jpg".to_string(), 64, 48, vec![([4.0, 4.0, 20.0, 30.0], 1)])];
//! let gt = gt_from_boxes(&images, &classes);
//! let dt = dets_from_boxes(&[vec![([5.0, 4.0, 20.0, 30.0], 1, 0.9)]]);
//! println!("AP {:.3}", evaluate(&gt, &dt)?.stats[0]);
//! write_coco_dir("coco_out".as_ref(), &gt, &dt)?;
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use anyhow::{Context, Result};
use hitomi_core::checkpoint::write_atomic;

use super::format::{CocoAnnotation, CocoCategory, CocoDet, CocoGt, CocoImage};

/// One image of ground truth: file name, width and height in pixels, and its boxes as
/// (`[x1, y1, x2, y2]` in pixels, class index).
pub type PixelGtImage = (String, u32, u32, Vec<([f32; 4], usize)>);

/// One detection: (`[x1, y1, x2, y2]` in pixels, class index, score).
pub type PixelDet = ([f32; 4], usize, f32);

/// COCO category id of class index `class`: COCO ids start at 1 (0 is reserved by convention, and
/// pycocotools would never count a match to a ground truth whose *annotation* id is 0).
fn category_id(class: usize) -> u64 {
    class as u64 + 1
}

/// `[x1, y1, x2, y2]` to COCO `[x, y, w, h]`. Widening first makes the subtraction exact: two
/// f32 values differ by an f64 without rounding, so nothing is lost on the way to the JSON.
fn xywh(b: &[f32; 4]) -> [f64; 4] {
    let [x1, y1, x2, y2] = b.map(f64::from);
    [x1, y1, x2 - x1, y2 - y1]
}

/// COCO instances ground truth from per-image pixel boxes.
///
/// Image `i` of `images` gets id `i + 1`, class index `c` category id `c + 1` named
/// `class_names[c]`, and annotations ids 1, 2, .. in input order. Each annotation's `area` is the
/// box's w·h (there are no masks), `iscrowd` is 0. Boxes are expected with `x1 <= x2`, `y1 <= y2`.
///
/// # Panics
/// If a box's class index has no name: its category would be missing from `categories`, and both
/// [`super::evaluate`] and pycocotools would then silently leave that ground truth out.
pub fn gt_from_boxes(images: &[PixelGtImage], class_names: &[String]) -> CocoGt {
    let mut annotations = Vec::new();
    for (i, (_, _, _, boxes)) in images.iter().enumerate() {
        for (b, class) in boxes {
            assert!(
                *class < class_names.len(),
                "image {i}: ground-truth class index {class} but only {} class names",
                class_names.len()
            );
            let bbox = xywh(b);
            annotations.push(CocoAnnotation {
                id: annotations.len() as u64 + 1,
                image_id: i as u64 + 1,
                category_id: category_id(*class),
                bbox,
                area: bbox[2] * bbox[3],
                iscrowd: 0,
            });
        }
    }
    CocoGt {
        images: images
            .iter()
            .enumerate()
            .map(|(i, (name, w, h, _))| CocoImage {
                id: i as u64 + 1,
                file_name: Some(name.clone()),
                width: Some(*w),
                height: Some(*h),
            })
            .collect(),
        categories: class_names
            .iter()
            .enumerate()
            .map(|(c, name)| CocoCategory { id: category_id(c), name: name.clone() })
            .collect(),
        annotations,
    }
}

/// COCO results from per-image detections, with the ids [`gt_from_boxes`] gives: `per_image[i]`
/// is image id `i + 1`, class index `c` category id `c + 1`. Order is kept (scores decide ranking).
pub fn dets_from_boxes(per_image: &[Vec<PixelDet>]) -> Vec<CocoDet> {
    per_image
        .iter()
        .enumerate()
        .flat_map(|(i, dets)| {
            dets.iter().map(move |(b, class, score)| CocoDet {
                image_id: i as u64 + 1,
                category_id: category_id(*class),
                bbox: xywh(b),
                score: f64::from(*score),
            })
        })
        .collect()
}

/// Writes `dir/gt.json` (COCO instances: `images`, `annotations`, `categories`) and `dir/dt.json`
/// (COCO results: a list of `{image_id, category_id, bbox, score}`), each atomically, creating
/// `dir` if needed. Re-score with
/// `COCOeval(gt := COCO("gt.json"), gt.loadRes("dt.json"), "bbox")`; note that pycocotools'
/// `loadRes` fails on an empty result list (it reads `anns[0]`), whereas [`super::read_detections`]
/// accepts one.
pub fn write_coco_dir(dir: &Path, gt: &CocoGt, dt: &[CocoDet]) -> Result<()> {
    // Compact: for a full validation split the results file runs to tens of megabytes pretty-printed.
    let gt_json = serde_json::to_vec(gt).context("serialising COCO ground truth")?;
    let dt_json = serde_json::to_vec(dt).context("serialising COCO detections")?;
    write_atomic(&dir.join("gt.json"), &gt_json)?;
    write_atomic(&dir.join("dt.json"), &dt_json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coco::{evaluate, read_detections};

    /// A fresh folder under the system temp dir, unique per test and process.
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hitomi-coco-export-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn names() -> Vec<String> {
        vec!["cat".into(), "dog".into(), "bird".into()]
    }

    /// Two images; class 2 ("bird") has no ground truth at all.
    fn images() -> Vec<PixelGtImage> {
        vec![
            ("a.jpg".into(), 200, 100, vec![([10.5, 20.25, 60.0, 80.0], 0), ([100.0, 10.0, 190.0, 95.0], 1)]),
            ("b.png".into(), 50, 40, vec![([1.0, 2.0, 31.0, 22.0], 0)]),
        ]
    }

    /// Writes, reads back and evaluates; returns (in-memory stats, re-read stats).
    fn round_trip(name: &str, gt: &CocoGt, dt: &[CocoDet]) -> (crate::coco::CocoStats, crate::coco::CocoStats) {
        let dir = temp_dir(name);
        write_coco_dir(&dir, gt, dt).unwrap();
        let gt2 = CocoGt::from_path(&dir.join("gt.json")).unwrap();
        let dt2 = read_detections(&dir.join("dt.json")).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        // serde_json (without its `float_roundtrip` feature) may read a 17-digit float back one
        // ulp off, so the structure must match exactly and the numbers to 1e-12.
        assert_eq!(gt2.images, gt.images);
        assert_eq!(gt2.categories, gt.categories);
        assert_eq!(gt2.annotations.len(), gt.annotations.len());
        for (a, b) in gt2.annotations.iter().zip(&gt.annotations) {
            assert_eq!((a.id, a.image_id, a.category_id, a.iscrowd), (b.id, b.image_id, b.category_id, b.iscrowd));
            assert!(a.bbox.iter().zip(&b.bbox).all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0)));
        }
        assert_eq!(dt2.len(), dt.len());
        (evaluate(gt, dt).unwrap(), evaluate(&gt2, &dt2).unwrap())
    }

    #[test]
    fn ids_categories_and_boxes_follow_coco_conventions() {
        let gt = gt_from_boxes(&images(), &names());
        assert_eq!(gt.images.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(gt.images[1].file_name.as_deref(), Some("b.png"));
        assert_eq!((gt.images[0].width, gt.images[0].height), (Some(200), Some(100)));
        assert_eq!(
            gt.categories.iter().map(|c| (c.id, c.name.as_str())).collect::<Vec<_>>(),
            [(1, "cat"), (2, "dog"), (3, "bird")]
        );
        let a = &gt.annotations;
        assert_eq!(
            a.iter().map(|a| (a.id, a.image_id, a.category_id)).collect::<Vec<_>>(),
            [(1, 1, 1), (2, 1, 2), (3, 2, 1)]
        );
        assert_eq!(a[0].bbox, [10.5, 20.25, 49.5, 59.75]);
        assert_eq!(a[0].area, 49.5 * 59.75);
        assert!(a.iter().all(|a| a.iscrowd == 0));

        let dt = dets_from_boxes(&[vec![], vec![([1.0, 2.0, 31.0, 22.0], 2, 0.25)]]);
        assert_eq!(dt, vec![CocoDet { image_id: 2, category_id: 3, bbox: [1.0, 2.0, 30.0, 20.0], score: 0.25 }]);
    }

    #[test]
    fn written_gt_is_coco_instances_json() {
        let dir = temp_dir("json");
        write_coco_dir(&dir, &gt_from_boxes(&images(), &names()), &[]).unwrap();
        let gt: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("gt.json")).unwrap()).unwrap();
        let dt: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("dt.json")).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(gt["images"][0], serde_json::json!({"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}));
        assert_eq!(gt["categories"][2], serde_json::json!({"id": 3, "name": "bird"}));
        assert_eq!(
            gt["annotations"][2],
            serde_json::json!({"id": 3, "image_id": 2, "category_id": 1, "bbox": [1.0, 2.0, 30.0, 20.0],
                               "area": 600.0, "iscrowd": 0})
        );
        assert_eq!(dt, serde_json::json!([]));
    }

    #[test]
    fn perfect_detections_round_trip_to_ap_one() {
        let imgs = images();
        let gt = gt_from_boxes(&imgs, &names());
        // Every ground truth found, with distinct scores, plus nothing else.
        let per_image: Vec<Vec<PixelDet>> = imgs
            .iter()
            .map(|(_, _, _, boxes)| {
                boxes.iter().enumerate().map(|(j, (b, c))| (*b, *c, 0.9 - 0.1 * j as f32)).collect()
            })
            .collect();
        let dt = dets_from_boxes(&per_image);
        let (mem, file) = round_trip("perfect", &gt, &dt);
        for s in [&mem, &file] {
            // Precision is tp / (tp + fp + eps) as in pycocotools, so "1" is 1 - 1 ulp.
            for i in [0, 1, 2, 8] {
                assert!((s.stats[i] - 1.0).abs() < 1e-12, "{i}: {:?}", s.stats);
            }
            // "bird" has no ground truth: -1, and left out of the means above.
            assert_eq!(s.per_category_ap[2], (3, -1.0));
            assert!(s.pr50[2].1.iter().all(|&p| p == -1.0));
            assert!(s.pr50[..2].iter().all(|(_, c)| c.iter().all(|&p| (p - 1.0).abs() < 1e-12)));
        }
        assert_eq!(mem.stats, file.stats);
    }

    #[test]
    fn shifted_box_scores_the_thresholds_its_iou_passes() {
        // One 10x10 ground truth; the detection is shifted 2 px right: intersection 8x10 = 80,
        // union 100 + 100 - 80 = 120, IoU 2/3. That passes the IoU thresholds .50, .55, .60, .65
        // (precision 1 at every recall point) and fails .70 .. .95 (precision 0: the detection is
        // a false positive and the object is missed). AP = 4/10, AP50 = 1, AP75 = 0.
        let gt = gt_from_boxes(&[("a.jpg".into(), 32, 32, vec![([4.0, 4.0, 14.0, 14.0], 0)])], &names()[..1]);
        let dt = dets_from_boxes(&[vec![([6.0, 4.0, 16.0, 14.0], 0, 0.8)]]);
        let (mem, file) = round_trip("shifted", &gt, &dt);
        for s in [&mem, &file] {
            assert!((s.stats[0] - 0.4).abs() < 1e-12, "{:?}", s.stats);
            assert!((s.stats[1] - 1.0).abs() < 1e-12, "{:?}", s.stats);
            assert_eq!(s.stats[2], 0.0);
            // The object is small (area 100 < 32²): APs equals AP, medium and large have no objects.
            assert!((s.stats[3] - 0.4).abs() < 1e-12);
            assert_eq!((s.stats[4], s.stats[5]), (-1.0, -1.0));
            // Recall at maxDets 100, averaged over the 10 thresholds: found at 4 of them.
            assert!((s.stats[8] - 0.4).abs() < 1e-12);
            assert!((s.per_category_ap[0].1 - 0.4).abs() < 1e-12);
        }
        assert_eq!(mem.stats, file.stats);
    }
}
