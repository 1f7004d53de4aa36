//! FCOS target assignment: which ground-truth box (if any) each location of each pyramid level
//! learns. A location is a candidate for a box when it lies inside the box, within
//! `center_radius` strides of the box centre (center sampling), and the box's largest
//! location-to-side distance falls in the level's size range; among candidates the smallest box wins.

use hitomi_data::detection::DetBox;

use crate::model::Grid;

/// The centre (x, y) in input pixels of every location, level-major, row-major inside a level:
/// cell (i, j) of a stride-s grid covers pixels [j s, (j + 1) s), its centre is (j + 0.5) s.
pub fn locations(grids: &[Grid]) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(grids.iter().map(Grid::len).sum());
    for g in grids {
        let s = g.stride as f32;
        for i in 0..g.height {
            for j in 0..g.width {
                out.push([(j as f32 + 0.5) * s, (i as f32 + 0.5) * s]);
            }
        }
    }
    out
}

/// The (low, high] range of the largest side distance that each level takes: high = factor x
/// stride; the first level starts at 0 and the last is unbounded.
pub fn size_ranges(grids: &[Grid], factor: f32) -> Vec<(f32, f32)> {
    let n = grids.len();
    (0..n)
        .map(|l| {
            let lo = if l == 0 { -1.0 } else { factor * grids[l - 1].stride as f32 };
            let hi = if l + 1 == n { f32::INFINITY } else { factor * grids[l].stride as f32 };
            (lo, hi)
        })
        .collect()
}

/// Distances (left, top, right, bottom) from a point to the sides of a box.
pub fn ltrb(p: [f32; 2], b: &[f32; 4]) -> [f32; 4] {
    [p[0] - b[0], p[1] - b[1], b[2] - p[0], b[3] - p[1]]
}

/// FCOS centerness of a location from its side distances: sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)).
pub fn centerness(d: [f32; 4]) -> f32 {
    let lr = d[0].min(d[2]) / d[0].max(d[2]);
    let tb = d[1].min(d[3]) / d[1].max(d[3]);
    (lr * tb).max(0.0).sqrt()
}

/// For every location (as [`locations`] orders them) the index in `gt` of the box it learns, or None.
pub fn assign(grids: &[Grid], gt: &[DetBox], range_factor: f32, center_radius: f32) -> Vec<Option<usize>> {
    let ranges = size_ranges(grids, range_factor);
    let locs = locations(grids);
    let mut out = Vec::with_capacity(locs.len());
    let mut start = 0;
    for (g, &(lo, hi)) in grids.iter().zip(&ranges) {
        let radius = center_radius * g.stride as f32;
        for &p in &locs[start..start + g.len()] {
            let mut best: Option<(usize, f32)> = None;
            for (k, b) in gt.iter().enumerate() {
                let d = ltrb(p, &b.xyxy);
                if d.iter().any(|&v| v <= 0.0) {
                    continue;
                }
                let (cx, cy) = ((b.xyxy[0] + b.xyxy[2]) / 2.0, (b.xyxy[1] + b.xyxy[3]) / 2.0);
                if (p[0] - cx).abs() >= radius || (p[1] - cy).abs() >= radius {
                    continue;
                }
                let m = d.iter().copied().fold(0.0, f32::max);
                if m <= lo || m > hi {
                    continue;
                }
                let area = (b.xyxy[2] - b.xyxy[0]) * (b.xyxy[3] - b.xyxy[1]);
                if best.is_none_or(|(_, a)| area < a) {
                    best = Some((k, area));
                }
            }
            out.push(best.map(|(k, _)| k));
        }
        start += g.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grids() -> Vec<Grid> {
        vec![
            Grid { stride: 4, height: 24, width: 24 },
            Grid { stride: 8, height: 12, width: 12 },
            Grid { stride: 16, height: 6, width: 6 },
        ]
    }

    #[test]
    fn locations_are_cell_centres_level_major() {
        let l = locations(&grids());
        assert_eq!(l.len(), 576 + 144 + 36);
        assert_eq!(l[0], [2.0, 2.0]);
        assert_eq!(l[1], [6.0, 2.0]);
        assert_eq!(l[24], [2.0, 6.0]);
        assert_eq!(l[576], [4.0, 4.0]);
        assert_eq!(l[576 + 144 + 35], [88.0, 88.0]);
    }

    #[test]
    fn ranges_follow_fcos() {
        let r = size_ranges(&grids(), 8.0);
        assert_eq!(r[0], (-1.0, 32.0));
        assert_eq!(r[1], (32.0, 64.0));
        assert_eq!(r[2], (64.0, f32::INFINITY));
    }

    #[test]
    fn centre_locations_of_a_box_are_positive_on_the_right_level_and_smaller_boxes_win() {
        let g = grids();
        // A 30x30 box centred at (48, 48); radius 1.5 strides = 6 px at stride 4.
        let big = DetBox { xyxy: [33.0, 33.0, 63.0, 63.0], class: 3 };
        let a = assign(&g, &[big], 8.0, 1.5);
        let pos: Vec<usize> = a.iter().enumerate().filter(|(_, m)| m.is_some()).map(|(i, _)| i).collect();
        let locs = locations(&g);
        for &i in &pos {
            assert!(i < 576, "a 30 px box belongs to the stride-4 level, got location {i}");
            let p = locs[i];
            assert!((p[0] - 48.0).abs() < 6.0 && (p[1] - 48.0).abs() < 6.0);
        }
        // x, y in {46, 50} (42 and 54 are exactly 6 away and excluded).
        assert_eq!(pos.len(), 4);
        // A smaller box overlapping the same locations takes them.
        let small = DetBox { xyxy: [40.0, 40.0, 56.0, 56.0], class: 1 };
        let a = assign(&g, &[big, small], 8.0, 1.5);
        for &i in &pos {
            assert_eq!(a[i], Some(1));
        }
        // A 96 px box's central locations have largest distances in (32, 64]: the stride-8 level.
        let huge = DetBox { xyxy: [0.0, 0.0, 96.0, 96.0], class: 0 };
        let a = assign(&g, &[huge], 8.0, 1.5);
        assert!(a.iter().enumerate().all(|(i, m)| m.is_none() || (576..576 + 144).contains(&i)));
        assert!(a.iter().any(|m| m.is_some()));
    }

    #[test]
    fn centerness_is_one_at_the_centre_and_falls_off() {
        assert!((centerness([5.0, 5.0, 5.0, 5.0]) - 1.0).abs() < 1e-6);
        assert!((centerness([1.0, 4.0, 4.0, 4.0]) - 0.5).abs() < 1e-6);
    }
}
