//! The 12 COCO stats printed in pycocotools' `summarize()` layout.

use crate::coco::STAT_NAMES;

/// The 12 stats in pycocotools' layout, e.g.
/// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.981`.
pub fn format_stats(stats: &[f64; 12]) -> String {
    let mut s = String::new();
    for (i, v) in stats.iter().enumerate() {
        let (kind, short) = if i < 6 { ("Average Precision", "(AP)") } else { ("Average Recall", "(AR)") };
        let iou = match i {
            1 => "0.50     ",
            2 => "0.75     ",
            _ => "0.50:0.95",
        };
        let area = match i {
            3 | 9 => "small",
            4 | 10 => "medium",
            5 | 11 => "large",
            _ => "all",
        };
        let dets = match i {
            6 => 1,
            7 => 10,
            _ => 100,
        };
        s += &format!(" {kind:<18} {short} @[ IoU={iou} | area={area:>6} | maxDets={dets:>3} ] = {v:.3}\n");
    }
    debug_assert_eq!(STAT_NAMES.len(), 12);
    s
}
