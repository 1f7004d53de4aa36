//! Random affine augmentation (rotation, scale, shear, translation, optional horizontal flip) of
//! planar f32 images, drawn from a caller-given RNG so results are reproducible per sample.

use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Ranges of the random affine applied to each training image.
///
/// The default suits digits (MNIST): small shifts, rotations, zoom and shear, and no flip, because a
/// mirrored digit is another glyph (or none).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Random translation by a whole number of pixels in -pad..=pad on each axis, the effect of
    /// padding by `pad` and cropping at a random position.
    pub shift_pad: usize,
    /// Rotation drawn uniformly from [-rotate_deg, rotate_deg] degrees.
    pub rotate_deg: f32,
    /// Isotropic scale drawn uniformly from [scale.0, scale.1].
    pub scale: (f32, f32),
    /// Horizontal shear angle drawn uniformly from [-shear_deg, shear_deg] degrees.
    pub shear_deg: f32,
    /// Mirror left-right with probability 1/2 (false for digits and text).
    pub hflip: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { shift_pad: 2, rotate_deg: 10.0, scale: (0.9, 1.1), shear_deg: 5.0, hflip: false }
    }
}

impl AugmentConfig {
    /// No augmentation: `augment` returns its input unchanged.
    pub fn none() -> Self {
        Self { shift_pad: 0, rotate_deg: 0.0, scale: (1.0, 1.0), shear_deg: 0.0, hflip: false }
    }

    /// Whether every draw is the identity, so images pass through untouched.
    pub fn is_identity(&self) -> bool {
        self.shift_pad == 0
            && self.rotate_deg == 0.0
            && self.scale == (1.0, 1.0)
            && self.shear_deg == 0.0
            && !self.hflip
    }

    /// Checks the ranges; errors name the field and the valid range.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            bail!("augment.scale = ({lo}, {hi}); expected 0 < min <= max, e.g. (0.9, 1.1)");
        }
        if !(self.rotate_deg.is_finite() && (0.0..=180.0).contains(&self.rotate_deg)) {
            bail!("augment.rotate_deg = {}; expected degrees in 0..=180", self.rotate_deg);
        }
        // tan() of the shear grows without bound near 90 degrees.
        if !(self.shear_deg.is_finite() && (0.0..=60.0).contains(&self.shear_deg)) {
            bail!("augment.shear_deg = {}; expected degrees in 0..=60", self.shear_deg);
        }
        Ok(())
    }
}

/// Uniform in [-a, a].
fn symmetric<R: Rng>(rng: &mut R, a: f32) -> f32 {
    (2.0 * rng.gen::<f32>() - 1.0) * a
}

/// One draw of the random affine: the parameters `augment` applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    pub rotate_deg: f32,
    pub scale: f32,
    pub shear_deg: f32,
    /// Translation in pixels (x right, y down).
    pub shift: (f32, f32),
    pub hflip: bool,
}

impl Affine {
    /// Draws one affine from `cfg`'s ranges, always consuming the same number of values from `rng`.
    pub fn draw(cfg: &AugmentConfig, rng: &mut impl Rng) -> Self {
        let rotate_deg = symmetric(rng, cfg.rotate_deg);
        let scale = cfg.scale.0 + (cfg.scale.1 - cfg.scale.0) * rng.gen::<f32>();
        let shear_deg = symmetric(rng, cfg.shear_deg);
        let pad = cfg.shift_pad as i64;
        let tx = rng.gen_range(-pad..=pad) as f32;
        let ty = rng.gen_range(-pad..=pad) as f32;
        let hflip = rng.gen::<bool>() && cfg.hflip;
        Self { rotate_deg, scale, shear_deg, shift: (tx, ty), hflip }
    }

    /// The 2x2 linear part M = rotation * shear * scale * flip, row-major; a point maps as
    /// out = M (in - centre) + centre + shift.
    fn matrix(&self) -> [f32; 4] {
        let (s, c) = self.rotate_deg.to_radians().sin_cos();
        let k = self.shear_deg.to_radians().tan();
        let f = if self.hflip { -1.0 } else { 1.0 };
        let z = self.scale;
        [c * z * f, (c * k - s) * z, s * z * f, (s * k + c) * z]
    }

    /// Warps `img` by inverse mapping with bilinear sampling about the image centre; points that
    /// fall outside the source read as 0.
    ///
    /// img: (C, H, W) row-major; returns (C, H, W). Panics if `img.len() != c * h * w`.
    pub fn apply(&self, img: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
        assert_eq!(img.len(), c * h * w, "augment: image of {} values is not {c}x{h}x{w}", img.len());
        let m = self.matrix();
        let det = m[0] * m[3] - m[1] * m[2];
        let inv = [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det];
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let (tx, ty) = self.shift;
        let plane = h * w;
        let mut out = vec![0f32; img.len()];
        for oy in 0..h {
            for ox in 0..w {
                let (dx, dy) = (ox as f32 - cx - tx, oy as f32 - cy - ty);
                let sx = inv[0] * dx + inv[1] * dy + cx;
                let sy = inv[2] * dx + inv[3] * dy + cy;
                if !(sx > -1.0 && sy > -1.0 && sx < w as f32 && sy < h as f32) {
                    continue;
                }
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as isize, y0 as isize);
                // Neighbours outside the image count as 0 so content fades out at the border.
                let taps = [
                    (x0, y0, (1.0 - fx) * (1.0 - fy)),
                    (x0 + 1, y0, fx * (1.0 - fy)),
                    (x0, y0 + 1, (1.0 - fx) * fy),
                    (x0 + 1, y0 + 1, fx * fy),
                ];
                for ch in 0..c {
                    let src = &img[ch * plane..(ch + 1) * plane];
                    let mut v = 0f32;
                    for &(x, y, wgt) in &taps {
                        if wgt != 0.0 && x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                            v += wgt * src[y as usize * w + x as usize];
                        }
                    }
                    out[ch * plane + oy * w + ox] = v;
                }
            }
        }
        out
    }
}

/// Applies one random affine (rotation, scale, shear, translation, flip about the image centre)
/// drawn from `cfg` and `rng`; see [`Affine::apply`] for the sampling.
///
/// img: (C, H, W) row-major; returns (C, H, W). An identity config returns `img` exactly and draws
/// nothing from `rng`. Panics if `img.len() != c * h * w`.
pub fn augment(img: &[f32], c: usize, h: usize, w: usize, cfg: &AugmentConfig, rng: &mut impl Rng) -> Vec<f32> {
    assert_eq!(img.len(), c * h * w, "augment: image of {} values is not {c}x{h}x{w}", img.len());
    if cfg.is_identity() || img.is_empty() {
        return img.to_vec();
    }
    Affine::draw(cfg, rng).apply(img, c, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;

    fn ramp(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| ((i * 37) % 101) as f32 / 100.0).collect()
    }

    #[test]
    fn identity_config_is_exact() {
        let img = ramp(3, 9, 7);
        let out = augment(&img, 3, 9, 7, &AugmentConfig::none(), &mut SeededRng::derive(1, &[]));
        assert_eq!(out, img);
    }

    #[test]
    fn same_seed_same_result_and_different_seed_differs() {
        let img = ramp(1, 28, 28);
        let cfg = AugmentConfig::default();
        let a = augment(&img, 1, 28, 28, &cfg, &mut SeededRng::derive(5, &[0, 3]));
        let b = augment(&img, 1, 28, 28, &cfg, &mut SeededRng::derive(5, &[0, 3]));
        let d = augment(&img, 1, 28, 28, &cfg, &mut SeededRng::derive(5, &[1, 3]));
        assert_eq!(a, b);
        assert_ne!(a, d);
        assert!(a.iter().all(|v| v.is_finite() && (-1e-6..=1.0 + 1e-6).contains(v)));
    }

    #[test]
    fn pure_shift_moves_pixels_exactly_and_fills_zero() {
        let (h, w) = (6, 8);
        let img: Vec<f32> = (0..h * w).map(|i| 1.0 + i as f32).collect();
        let cfg = AugmentConfig { shift_pad: 2, ..AugmentConfig::none() };
        let mut seen_shift = false;
        for s in 0..20u64 {
            let out = augment(&img, 1, h, w, &cfg, &mut SeededRng::derive(9, &[s]));
            // Recover the shift from where pixel (0, 0)'s value went, then check every pixel.
            let (tx, ty) = (-2..=2)
                .flat_map(|ty| (-2..=2).map(move |tx| (tx, ty)))
                .find(|&(tx, ty)| {
                    (0..h as i64).all(|y| {
                        (0..w as i64).all(|x| {
                            let (sx, sy) = (x - tx, y - ty);
                            let exp = if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                                img[(sy * w as i64 + sx) as usize]
                            } else {
                                0.0
                            };
                            out[(y * w as i64 + x) as usize] == exp
                        })
                    })
                })
                .expect("output is an exact integer shift of the input");
            if (tx, ty) != (0, 0) {
                seen_shift = true;
                assert_ne!(out, img);
            }
        }
        assert!(seen_shift);
    }

    fn affine(rotate_deg: f32, scale: f32) -> Affine {
        Affine { rotate_deg, scale, shear_deg: 0.0, shift: (0.0, 0.0), hflip: false }
    }

    #[test]
    fn rotation_turns_about_the_centre() {
        let (h, w) = (5, 7);
        let img: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        let half_turn = affine(180.0, 1.0).apply(&img, 1, h, w);
        let rev: Vec<f32> = img.iter().rev().copied().collect();
        for (o, e) in half_turn.iter().zip(&rev) {
            assert!((o - e).abs() < 1e-3, "{half_turn:?}");
        }
        // A quarter turn of a square image moves (x, y) to (n-1-y, x): angles grow clockwise on
        // screen because y points down.
        let n = 6;
        let sq: Vec<f32> = (0..n * n).map(|i| i as f32).collect();
        let q = affine(90.0, 1.0).apply(&sq, 1, n, n);
        for y in 0..n {
            for x in 0..n {
                assert!((q[x * n + (n - 1 - y)] - sq[y * n + x]).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn scale_keeps_the_centre_and_zooms() {
        let n = 9;
        let mut img = vec![0f32; n * n];
        img[4 * n + 4] = 1.0;
        img[4 * n + 6] = 0.5;
        let z = affine(0.0, 2.0).apply(&img, 1, n, n);
        assert_eq!(z[4 * n + 4], 1.0);
        // Two pixels right of centre land four pixels right.
        assert_eq!(z[4 * n + 8], 0.5);
        assert_eq!(z[4 * n + 7], 0.25);
    }

    #[test]
    fn hflip_mirrors_rows() {
        let (h, w) = (3, 4);
        let img: Vec<f32> = (0..2 * h * w).map(|i| i as f32).collect();
        let cfg = AugmentConfig { hflip: true, ..AugmentConfig::none() };
        let mut flipped = 0;
        for s in 0..16u64 {
            let out = augment(&img, 2, h, w, &cfg, &mut SeededRng::derive(4, &[s]));
            if out != img {
                flipped += 1;
                for ch in 0..2 {
                    for y in 0..h {
                        for x in 0..w {
                            assert_eq!(out[ch * h * w + y * w + x], img[ch * h * w + y * w + (w - 1 - x)]);
                        }
                    }
                }
            }
        }
        assert!(flipped > 0 && flipped < 16);
    }

    #[test]
    fn config_from_json_rejects_unknown_keys_and_fills_defaults() {
        let c: AugmentConfig = serde_json::from_str(r#"{"hflip": true}"#).unwrap();
        assert_eq!(c, AugmentConfig { hflip: true, ..AugmentConfig::default() });
        let e = serde_json::from_str::<AugmentConfig>(r#"{"rotate": 3}"#).unwrap_err().to_string();
        assert!(e.contains("rotate") && e.contains("rotate_deg"), "{e}");
        assert!(AugmentConfig { scale: (1.2, 1.1), ..AugmentConfig::none() }.validate().is_err());
        assert!(AugmentConfig::default().validate().is_ok());
    }
}
