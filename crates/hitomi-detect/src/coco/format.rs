//! Serde types for COCO instance ground truth (`images`, `categories`, `annotations`) and the COCO
//! results format (a list of `{image_id, category_id, bbox, score}`), with loaders whose errors
//! name the file and the offending field.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer, Serialize};

/// COCO instances ground truth. Keys other than these three (`info`, `licenses`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoGt {
    /// Every evaluated image, including those without any annotation.
    pub images: Vec<CocoImage>,
    /// The evaluated categories: detections of a category not listed here are never scored.
    pub categories: Vec<CocoCategory>,
    /// Object annotations.
    pub annotations: Vec<CocoAnnotation>,
}

/// One entry of `images`; only the id matters for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

/// One ground-truth object. `segmentation` is not read: bbox evaluation never looks at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels, top-left corner first.
    #[serde(deserialize_with = "bbox_xywh")]
    pub bbox: [f64; 4],
    /// Object area in pixels. Decides small/medium/large; for COCO it is the mask area, not w*h.
    pub area: f64,
    /// Crowd regions (non-zero) are matched by intersection over detection area and never count
    /// as misses. Missing means 0.
    #[serde(default)]
    pub iscrowd: u64,
}

/// One detection in the COCO results format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoDet {
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels, top-left corner first.
    #[serde(deserialize_with = "bbox_xywh")]
    pub bbox: [f64; 4],
    pub score: f64,
}

impl CocoGt {
    /// Reads and validates a COCO instances JSON file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = read_text(path, "COCO ground truth")?;
        Self::from_json(&text).with_context(|| format!("invalid COCO ground truth in {}", path.display()))
    }

    /// Parses and validates COCO instances JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let gt: CocoGt = serde_json::from_str(text)?;
        let bad: Vec<String> = gt
            .annotations
            .iter()
            .enumerate()
            .filter(|(_, a)| !(a.bbox.iter().all(|v| v.is_finite()) && a.area.is_finite()))
            .map(|(i, a)| format!("annotations[{i}] (id {}): `bbox` and `area` must be finite", a.id))
            .collect();
        anyhow::ensure!(bad.is_empty(), "{}", bad.join("; "));
        Ok(gt)
    }
}

/// Reads and validates a COCO results JSON file (a list of detections).
pub fn read_detections(path: &Path) -> Result<Vec<CocoDet>> {
    let text = read_text(path, "COCO detections")?;
    parse_detections(&text).with_context(|| format!("invalid COCO detections in {}", path.display()))
}

fn parse_detections(text: &str) -> Result<Vec<CocoDet>> {
    let dets: Vec<CocoDet> = serde_json::from_str(text)?;
    let bad: Vec<String> = dets
        .iter()
        .enumerate()
        .filter(|(_, d)| !(d.bbox.iter().all(|v| v.is_finite()) && d.score.is_finite()))
        .map(|(i, _)| format!("[{i}]: `bbox` and `score` must be finite"))
        .collect();
    anyhow::ensure!(bad.is_empty(), "{}", bad.join("; "));
    Ok(dets)
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Accepts exactly four numbers, so a malformed box fails with a message naming `bbox` (serde's
/// own fixed-array error does not name the field) and serde_json adds the line and column.
fn bbox_xywh<'de, D: Deserializer<'de>>(de: D) -> Result<[f64; 4], D::Error> {
    let v = Vec::<f64>::deserialize(de)?;
    <[f64; 4]>::try_from(v.as_slice()).map_err(|_| {
        serde::de::Error::custom(format!("field `bbox`: expected 4 numbers [x, y, w, h], got {}", v.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_chain(e: &anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn missing_annotations_names_file_and_field() {
        let dir = std::env::temp_dir().join(format!("hitomi-coco-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gt_no_annotations.json");
        std::fs::write(&path, r#"{"images": [{"id": 1}], "categories": [{"id": 1}]}"#).unwrap();
        let msg = err_chain(&CocoGt::from_path(&path).unwrap_err());
        assert!(msg.contains("gt_no_annotations.json"), "{msg}");
        assert!(msg.contains("annotations"), "{msg}");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn three_number_bbox_names_file_and_field() {
        let dir = std::env::temp_dir().join(format!("hitomi-coco-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gt_bad_bbox.json");
        let json = r#"{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "area": 6, "iscrowd": 0}]}"#;
        std::fs::write(&path, json).unwrap();
        let msg = err_chain(&CocoGt::from_path(&path).unwrap_err());
        assert!(msg.contains("gt_bad_bbox.json"), "{msg}");
        assert!(msg.contains("bbox") && msg.contains("got 3"), "{msg}");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn detections_with_bad_bbox_or_missing_score_fail() {
        let e = parse_detections(r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4, 5], "score": 0.5}]"#)
            .unwrap_err();
        assert!(err_chain(&e).contains("bbox"), "{e:#}");
        let e = parse_detections(r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}]"#).unwrap_err();
        assert!(err_chain(&e).contains("score"), "{e:#}");
    }

    #[test]
    fn iscrowd_defaults_to_zero_and_extra_keys_are_ignored() {
        let gt = CocoGt::from_json(
            r#"{"info": {}, "images": [{"id": 7, "file_name": "a.jpg"}], "categories": [{"id": 2, "name": "car"}],
                "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 5], "area": 20,
                                 "segmentation": [[0, 0, 4, 0, 4, 5]]}]}"#,
        )
        .unwrap();
        assert_eq!(gt.annotations[0].iscrowd, 0);
        assert_eq!(gt.annotations[0].bbox, [0.0, 0.0, 4.0, 5.0]);
    }
}
