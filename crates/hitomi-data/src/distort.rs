//! Seeded, composable distortions that make the degraded half of a restoration pair: a spec such as
//! `blur:1.5+noise:10+jpeg:30` parsed from the command line or a config, applied to a `Planar` image.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gaussian::{gaussian_plane, reflect};
use crate::planar::Planar;

/// One degradation. Parameters are on the scales a user thinks in: levels of 0..255, pixels, JPEG quality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distortion {
    /// Additive Gaussian noise, independent per pixel and channel; `sigma` in levels of 0..255.
    Noise { sigma: f32 },
    /// Separable Gaussian blur; `sigma` in pixels, radius ceil(3 sigma), borders reflected.
    Blur { sigma: f32 },
    /// Motion blur along a line of `length` pixels at a uniform random angle per image.
    Motion { length: usize },
    /// Thin, long, semi-transparent white streaks at one near-vertical angle per image.
    Rain,
    /// A few drops on the lens that show a flipped, blurred view of the scene behind them.
    Raindrop,
    /// Encode to JPEG at `quality` (1..=100) and decode back.
    Jpeg { quality: u8 },
}

/// Distortions applied left to right (`+` on the command line).
#[derive(Clone, Debug, PartialEq)]
pub struct DistortionSpec(pub Vec<Distortion>);

// Upper bounds keep a typo (`blur:200`) from allocating huge kernels; they are far beyond useful values.
const MAX_BLUR_SIGMA: f32 = 100.0;
const MAX_MOTION_LENGTH: usize = 1000;
const VALID_FORMS: &str =
    "valid forms: noise:SIGMA, blur:SIGMA, motion:LENGTH, rain, raindrop, jpeg:QUALITY, joined with '+'";

impl FromStr for Distortion {
    type Err = String;

    /// The error is the "expected ..." part; `DistortionSpec::from_str` adds the context.
    fn from_str(part: &str) -> std::result::Result<Self, String> {
        let (name, arg) = match part.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (part.trim(), None),
        };
        let positive = |what: &str, max: f32| -> std::result::Result<f32, String> {
            let expected = if max.is_finite() {
                format!("expected {what}:SIGMA with SIGMA a number > 0 and <= {max}")
            } else {
                format!("expected {what}:SIGMA with SIGMA a number > 0")
            };
            match arg.map(str::parse::<f32>) {
                Some(Ok(v)) if v.is_finite() && v > 0.0 && v <= max => Ok(v),
                _ => Err(expected),
            }
        };
        match name {
            "noise" => Ok(Distortion::Noise { sigma: positive("noise", f32::INFINITY)? }),
            "blur" => Ok(Distortion::Blur { sigma: positive("blur", MAX_BLUR_SIGMA)? }),
            "motion" => match arg.map(str::parse::<usize>) {
                Some(Ok(length)) if (1..=MAX_MOTION_LENGTH).contains(&length) => Ok(Distortion::Motion { length }),
                _ => Err(format!(
                    "expected motion:LENGTH with LENGTH a whole number of pixels in 1..={MAX_MOTION_LENGTH}"
                )),
            },
            "jpeg" => match arg.map(str::parse::<u8>) {
                Some(Ok(quality)) if (1..=100).contains(&quality) => Ok(Distortion::Jpeg { quality }),
                _ => Err("expected jpeg:QUALITY with QUALITY a whole number in 1..=100".into()),
            },
            "rain" | "raindrop" if arg.is_some() => Err(format!("expected plain \"{name}\", which takes no parameter")),
            "rain" => Ok(Distortion::Rain),
            "raindrop" => Ok(Distortion::Raindrop),
            "" => Err("expected a distortion, found an empty part".into()),
            _ => Err(format!("unknown distortion \"{name}\"")),
        }
    }
}

impl FromStr for DistortionSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        if spec.trim().is_empty() {
            bail!("distortion \"{spec}\": empty; expected at least one distortion ({VALID_FORMS})");
        }
        spec.split('+')
            .map(|part| {
                part.parse::<Distortion>()
                    .map_err(|why| anyhow!("distortion \"{spec}\": \"{part}\": {why} ({VALID_FORMS})"))
            })
            .collect::<Result<Vec<_>>>()
            .map(DistortionSpec)
    }
}

impl fmt::Display for Distortion {
    // f32's Display is the shortest string that parses back to the same value, so specs round-trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distortion::Noise { sigma } => write!(f, "noise:{sigma}"),
            Distortion::Blur { sigma } => write!(f, "blur:{sigma}"),
            Distortion::Motion { length } => write!(f, "motion:{length}"),
            Distortion::Rain => write!(f, "rain"),
            Distortion::Raindrop => write!(f, "raindrop"),
            Distortion::Jpeg { quality } => write!(f, "jpeg:{quality}"),
        }
    }
}

impl fmt::Display for DistortionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Stored in configs as the command-line string, so a config reads the same as the flag.
impl Serialize for DistortionSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DistortionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

impl DistortionSpec {
    /// img: (C, H, W) with C = 1 or 3, on the 0..255 scale. Returns the same shape, every value an
    /// 8-bit level. Each stage's output is rounded and clamped, as if saved to a file, so applying
    /// `a+b` equals applying `a` then `b`, and JPEG sees exactly what a saved image would hold. All
    /// randomness comes from `rng`: the same seed gives the same bytes.
    pub fn apply(&self, img: &Planar, rng: &mut impl Rng) -> Planar {
        assert!(img.channels == 1 || img.channels == 3, "distortions need 1 or 3 channels, got {}", img.channels);
        let mut cur = img.to_u8_levels();
        if img.height == 0 || img.width == 0 {
            return cur;
        }
        for d in &self.0 {
            cur = match *d {
                Distortion::Noise { sigma } => noise(&cur, sigma, rng),
                Distortion::Blur { sigma } => map_planes(&cur, |p| gaussian_blur(p, cur.height, cur.width, sigma)),
                Distortion::Motion { length } => motion_blur(&cur, length, rng),
                Distortion::Rain => rain(&cur, rng),
                Distortion::Raindrop => raindrop(&cur, rng),
                Distortion::Jpeg { quality } => jpeg(&cur, quality),
            }
            .to_u8_levels();
        }
        cur
    }
}

fn map_planes(img: &Planar, f: impl Fn(&[f32]) -> Vec<f32>) -> Planar {
    let data = (0..img.channels).flat_map(|c| f(img.plane(c))).collect();
    Planar { data, ..*img }
}

fn noise(img: &Planar, sigma: f32, rng: &mut impl Rng) -> Planar {
    let data = img.data.iter().map(|&v| v + sigma * hitomi_core::rng::normal(rng)).collect();
    Planar { data, ..*img }
}

/// plane: (H, W) -> (H, W): Gaussian blur with radius ceil(3 sigma), reflect borders.
fn gaussian_blur(plane: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    gaussian_plane(plane, h, w, sigma, (3.0 * sigma).ceil().max(1.0) as usize)
}

/// Anti-aliased line of `length` pixels through the centre of a (K, K) grid, K = 2 floor(L / 2) + 1
/// (L rounded up to odd so the kernel has a centre pixel and does not shift the image). Returned
/// sparse as (dy, dx, weight) with weights summing to 1: only ~2L taps are non-zero.
fn line_kernel(length: usize, angle: f32) -> Vec<(isize, isize, f32)> {
    let r = (length / 2) as isize;
    let k = (2 * r + 1) as usize;
    let mut grid = vec![0.0f32; k * k];
    let (dx, dy) = (angle.cos(), angle.sin());
    let half = (length as f32 - 1.0) / 2.0;
    // Dense samples along the segment, each splatted bilinearly onto its four neighbours.
    let n = 4 * length + 1;
    for s in 0..n {
        let t = if n > 1 { -half + 2.0 * half * s as f32 / (n - 1) as f32 } else { 0.0 };
        let (x, y) = (r as f32 + t * dx, r as f32 + t * dy);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        for (oy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (ox, wx) in [(0, 1.0 - fx), (1, fx)] {
                let (gx, gy) = (x0 as isize + ox, y0 as isize + oy);
                if (0..k as isize).contains(&gx) && (0..k as isize).contains(&gy) {
                    grid[gy as usize * k + gx as usize] += wx * wy;
                }
            }
        }
    }
    let sum: f32 = grid.iter().sum();
    (0..k * k)
        .filter(|&i| grid[i] > 1e-6 * sum)
        .map(|i| ((i / k) as isize - r, (i % k) as isize - r, grid[i] / sum))
        .collect()
}

fn motion_blur(img: &Planar, length: usize, rng: &mut impl Rng) -> Planar {
    let angle = rng.gen_range(0.0..std::f32::consts::PI);
    let taps = line_kernel(length, angle);
    let (h, w) = (img.height, img.width);
    let r = (length / 2) as isize;
    let (pw, pr) = (w + 2 * r as usize, r as usize);
    map_planes(img, |plane| {
        // Pad once with reflected borders so each tap is a plain shifted row: (H + 2r, W + 2r).
        let mut padded = vec![0.0f32; (h + 2 * pr) * pw];
        for (py, row) in padded.chunks_exact_mut(pw).enumerate() {
            let sy = reflect(py as isize - r, h);
            for (px, p) in row.iter_mut().enumerate() {
                *p = plane[sy * w + reflect(px as isize - r, w)];
            }
        }
        let mut out = vec![0.0f32; h * w];
        for &(dy, dx, wt) in &taps {
            for y in 0..h {
                let start = (y + (dy + r) as usize) * pw + (dx + r) as usize;
                for (d, &s) in out[y * w..(y + 1) * w].iter_mut().zip(&padded[start..start + w]) {
                    *d += wt * s;
                }
            }
        }
        out
    })
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Streaks drawn into one alpha layer (H, W) shared by all channels, since rain is colourless.
fn rain(img: &Planar, rng: &mut impl Rng) -> Planar {
    let (h, w) = (img.height, img.width);
    let theta = rng.gen_range(-25.0f32..=25.0).to_radians();
    let (dx, dy) = (theta.sin(), theta.cos());
    // Streaks per pixel: light to heavy rain, so counts scale with area (~30-110 on 128x128).
    let density = rng.gen_range(1.0 / 500.0..1.0 / 150.0);
    let n = ((h * w) as f32 * density).round().max(1.0) as usize;
    let mut layer = vec![0.0f32; h * w];
    for _ in 0..n {
        let len = rng.gen_range(10.0f32..=40.0);
        let thick = rng.gen_range(1.0f32..=2.0);
        let alpha = rng.gen_range(0.15f32..=0.5);
        // Centres may lie off the image so streaks enter and leave through the borders.
        let cx = rng.gen_range(-len / 2.0..w as f32 + len / 2.0);
        let cy = rng.gen_range(-len / 2.0..h as f32 + len / 2.0);
        let (ax, ay) = (cx - dx * len / 2.0, cy - dy * len / 2.0);
        let reach = thick / 2.0 + 1.0;
        let x_lo = (ax.min(ax + dx * len) - reach).floor().max(0.0) as usize;
        let x_hi = ((ax.max(ax + dx * len) + reach).ceil().max(0.0) as usize).min(w);
        let y_lo = (ay - reach).floor().max(0.0) as usize;
        let y_hi = ((ay + dy * len + reach).ceil().max(0.0) as usize).min(h);
        for y in y_lo..y_hi {
            for x in x_lo..x_hi {
                // Coverage from the distance to the segment: an anti-aliased stroke of width `thick`.
                let (px, py) = (x as f32 - ax, y as f32 - ay);
                let t = (px * dx + py * dy).clamp(0.0, len);
                let dist = ((px - t * dx).powi(2) + (py - t * dy).powi(2)).sqrt();
                let cover = (thick / 2.0 + 0.5 - dist).clamp(0.0, 1.0);
                let a = &mut layer[y * w + x];
                *a = a.max(alpha * cover);
            }
        }
    }
    // Real streaks are out of focus; a slight blur removes the drawn look.
    let layer = gaussian_blur(&layer, h, w, 0.6);
    let mut out = img.clone();
    for c in 0..img.channels {
        for (v, &a) in out.plane_mut(c).iter_mut().zip(&layer) {
            *v = *v * (1.0 - a) + 255.0 * a;
        }
    }
    out
}

/// plane: (H, W); bilinear sample at (x, y) with coordinates clamped to the image.
fn bilinear(plane: &[f32], h: usize, w: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
    let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Drops on the lens. Each drop is a small lens: its inside shows the scene around it flipped,
/// slightly magnified and out of focus, with a darker rim, a specular highlight and a soft edge.
fn raindrop(img: &Planar, rng: &mut impl Rng) -> Planar {
    let (h, w) = (img.height, img.width);
    // Drop sizes are tuned for ~128 px and larger; smaller images get proportionally smaller drops.
    let scale = (h.min(w) as f32 / 128.0).min(1.0);
    let n = (rng.gen_range(2.0f32..=8.0) * (h * w) as f32 / (128.0 * 128.0)).round().max(1.0) as usize;
    // The scene behind a drop is out of focus (the camera focuses past the glass): blur it once.
    let defocus = rng.gen_range(1.5f32..3.0) * scale.max(0.5);
    let behind: Vec<Vec<f32>> = (0..img.channels).map(|c| gaussian_blur(img.plane(c), h, w, defocus)).collect();
    let mut out = img.clone();
    for _ in 0..n {
        let r = (rng.gen_range(4.0f32..=20.0) * scale).max(1.5);
        // Drops on a window are a little taller than wide as they start to run.
        let (rx, ry) = (r, r * rng.gen_range(0.85f32..1.3));
        let (cx, cy) = (rng.gen_range(0.0..w as f32), rng.gen_range(0.0..h as f32));
        let mag = rng.gen_range(1.1f32..1.5);
        let (ox, oy) = (rng.gen_range(-0.5..0.5) * rx, rng.gen_range(-0.5..0.5) * ry);
        let rim = rng.gen_range(0.15f32..0.35);
        let spec = rng.gen_range(0.5f32..0.9);
        let x_lo = (cx - rx - 1.0).floor().max(0.0) as usize;
        let x_hi = ((cx + rx + 1.0).ceil() as usize).min(w);
        let y_lo = (cy - ry - 1.0).floor().max(0.0) as usize;
        let y_hi = ((cy + ry + 1.0).ceil() as usize).min(h);
        for y in y_lo..y_hi {
            for x in x_lo..x_hi {
                let (u, v) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
                let rho = (u * u + v * v).sqrt();
                if rho >= 1.0 {
                    continue;
                }
                let alpha = smoothstep(1.0, 0.8, rho);
                // Flipped (minus sign) and magnified by `mag` at the centre, less towards the edge,
                // like the barrel distortion of a ball lens.
                let f = (0.75 + 0.25 * rho * rho) / mag;
                let (sx, sy) = (cx + ox - u * rx * f, cy + oy - v * ry * f);
                let shade = 1.0 - rim * smoothstep(0.6, 1.0, rho);
                let hd = ((u + 0.35).powi(2) + (v + 0.4).powi(2)).sqrt();
                let hl = spec * (-(hd / 0.15).powi(2)).exp();
                for (c, src) in behind.iter().enumerate() {
                    let seen = bilinear(src, h, w, sx, sy) * shade;
                    let drop = seen * (1.0 - hl) + 255.0 * hl;
                    let px = &mut out.plane_mut(c)[y * w + x];
                    *px = *px * (1.0 - alpha) + drop * alpha;
                }
            }
        }
    }
    out
}

/// Round trip through the image crate's baseline JPEG codec; grey stays grey, RGB stays RGB.
fn jpeg(img: &Planar, quality: u8) -> Planar {
    let im = img.to_image();
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(im.as_bytes(), im.width(), im.height(), im.color().into())
        .expect("JPEG encoding of an in-memory 8-bit image (sides must be <= 65535)");
    let decoded =
        image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg).expect("decoding the JPEG just encoded");
    Planar::from_image(&decoded, img.channels).expect("1 or 3 channels checked in apply")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;

    fn spec(s: &str) -> DistortionSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e:#}"))
    }

    fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
        SeededRng::derive(seed, &[0])
    }

    fn constant(c: usize, h: usize, w: usize, v: f32) -> Planar {
        Planar::new(c, h, w, vec![v; c * h * w]).unwrap()
    }

    fn random_image(c: usize, h: usize, w: usize, seed: u64) -> Planar {
        let mut r = rng(seed);
        Planar::new(c, h, w, (0..c * h * w).map(|_| r.gen_range(0..=255) as f32).collect()).unwrap()
    }

    /// A smooth gradient with a few sharp-edged rectangles: (3, 64, 64).
    fn natural(h: usize, w: usize) -> Planar {
        let mut p = Planar::zeros(3, h, w);
        for c in 0..3 {
            let plane = p.plane_mut(c);
            for y in 0..h {
                for x in 0..w {
                    let mut v = 40.0 + 150.0 * (x + y) as f32 / (h + w) as f32 + 20.0 * c as f32;
                    if (10..30).contains(&x) && (12..40).contains(&y) {
                        v = 230.0 - 60.0 * c as f32;
                    }
                    if (40..55).contains(&x) && (5..60).contains(&y) {
                        v = 15.0;
                    }
                    plane[y * w + x] = v;
                }
            }
        }
        p
    }

    fn mean(v: &[f32]) -> f32 {
        v.iter().sum::<f32>() / v.len() as f32
    }

    fn std(v: &[f32]) -> f32 {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    }

    fn psnr(a: &Planar, b: &Planar) -> f32 {
        let mse = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.data.len() as f32;
        10.0 * (255.0f32 * 255.0 / mse).log10()
    }

    #[test]
    fn parses_valid_forms_and_round_trips() {
        use Distortion::*;
        let s = spec("blur:1.5+noise:10+jpeg:30+motion:9+rain+raindrop");
        let want = vec![
            Blur { sigma: 1.5 },
            Noise { sigma: 10.0 },
            Jpeg { quality: 30 },
            Motion { length: 9 },
            Rain,
            Raindrop,
        ];
        assert_eq!(s.0, want);
        assert_eq!(s.to_string(), "blur:1.5+noise:10+jpeg:30+motion:9+rain+raindrop");
        assert_eq!(spec(&s.to_string()), s);
        assert_eq!(spec("noise:25.0").to_string(), "noise:25");
        let odd = spec("noise:0.1+blur:0.333");
        assert_eq!(spec(&odd.to_string()), odd);
        assert_eq!(spec("jpeg:1").0, vec![Jpeg { quality: 1 }]);
        assert_eq!(spec("jpeg:100").0, vec![Jpeg { quality: 100 }]);
    }

    #[test]
    fn serde_uses_the_command_line_string() {
        let s = spec("blur:2+jpeg:50");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"blur:2+jpeg:50\"");
        assert_eq!(serde_json::from_str::<DistortionSpec>(&json).unwrap(), s);
        let err = serde_json::from_str::<DistortionSpec>("\"blur:2+fog\"").unwrap_err().to_string();
        assert!(err.contains("\"fog\"") && err.contains("unknown distortion"), "{err}");
    }

    #[test]
    fn parse_errors_name_spec_part_and_expectation() {
        let cases = [
            ("noise:abc+blur:2", "noise:abc", "expected noise:SIGMA with SIGMA a number > 0"),
            ("noise", "noise", "expected noise:SIGMA"),
            ("noise:0", "noise:0", "number > 0"),
            ("noise:-3", "noise:-3", "number > 0"),
            ("noise:nan", "noise:nan", "number > 0"),
            ("noise:inf", "noise:inf", "number > 0"),
            ("blur:0", "blur:0", "expected blur:SIGMA"),
            ("blur:1e9", "blur:1e9", "<= 100"),
            ("motion:0", "motion:0", "expected motion:LENGTH"),
            ("motion:2.5", "motion:2.5", "whole number"),
            ("jpeg:0", "jpeg:0", "1..=100"),
            ("jpeg:101", "jpeg:101", "1..=100"),
            ("jpeg:5.5", "jpeg:5.5", "expected jpeg:QUALITY"),
            ("rain:3", "rain:3", "takes no parameter"),
            ("blur:1+raindrop:2", "raindrop:2", "takes no parameter"),
            ("fog:1", "fog:1", "unknown distortion \"fog\""),
            ("blur:2++noise:1", "\"\"", "empty part"),
            ("blur:2+", "\"\"", "empty part"),
            ("noise:1:2", "noise:1:2", "expected noise:SIGMA"),
        ];
        for (s, part, expect) in cases {
            let err = format!("{:#}", s.parse::<DistortionSpec>().unwrap_err());
            assert!(err.starts_with(&format!("distortion \"{s}\"")), "{s}: {err}");
            assert!(err.contains(part), "{s}: {err}");
            assert!(err.contains(expect), "{s}: {err}");
            assert!(err.contains("valid forms: noise:SIGMA, blur:SIGMA"), "{s}: {err}");
        }
        let err = format!("{:#}", "".parse::<DistortionSpec>().unwrap_err());
        assert!(err.contains("empty") && err.contains("valid forms"), "{err}");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let img = natural(64, 64);
        for s in ["noise:10", "motion:7", "rain", "raindrop", "blur:1+noise:5+jpeg:40"] {
            let d = spec(s);
            let a = d.apply(&img, &mut rng(1));
            assert_eq!(a, d.apply(&img, &mut rng(1)), "{s}");
            assert_ne!(a, d.apply(&img, &mut rng(2)), "{s}");
            assert_eq!((a.channels, a.height, a.width), (3, 64, 64), "{s}");
            assert!(a.data.iter().all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)), "{s}");
        }
    }

    #[test]
    fn noise_std_matches_sigma() {
        let img = constant(1, 128, 128, 128.0);
        for sigma in [5.0f32, 25.0] {
            let out = spec(&format!("noise:{sigma}")).apply(&img, &mut rng(3));
            let diff: Vec<f32> = out.data.iter().zip(&img.data).map(|(o, i)| o - i).collect();
            let s = std(&diff);
            assert!((s - sigma).abs() < 0.05 * sigma, "sigma {sigma}: measured {s}");
            assert!(mean(&diff).abs() < 0.1 * sigma, "sigma {sigma}: mean {}", mean(&diff));
        }
    }

    #[test]
    fn blur_keeps_mean_and_smooths_noise() {
        let img = random_image(3, 64, 80, 4);
        let out = spec("blur:2").apply(&img, &mut rng(0));
        assert!((mean(&out.data) - mean(&img.data)).abs() < 0.5);
        assert!(std(&out.data) < std(&img.data) / 3.0, "{} vs {}", std(&out.data), std(&img.data));
    }

    #[test]
    fn blur_and_motion_keep_a_constant_image() {
        // Small images too: kernels wider than the image must still reflect correctly.
        for (h, w) in [(32, 40), (3, 5)] {
            let img = constant(3, h, w, 77.0);
            for s in ["blur:2", "blur:0.3", "motion:9", "motion:4", "motion:1"] {
                assert_eq!(spec(s).apply(&img, &mut rng(5)), img, "{s} on {h}x{w}");
            }
        }
    }

    #[test]
    fn motion_blur_spreads_a_dot_along_a_line() {
        let len = 9;
        let mut img = constant(1, 41, 41, 0.0);
        img.data[20 * 41 + 20] = 255.0;
        for seed in 0..8 {
            let out = spec(&format!("motion:{len}")).apply(&img, &mut rng(seed));
            let lit: Vec<(f32, f32, f32)> = (0..41 * 41)
                .filter(|&i| out.data[i] > 0.0)
                .map(|i| ((i % 41) as f32, (i / 41) as f32, out.data[i]))
                .collect();
            let total: f32 = lit.iter().map(|p| p.2).sum();
            assert!((total - 255.0).abs() < 20.0, "seed {seed}: total {total}");
            let extent = lit
                .iter()
                .flat_map(|a| lit.iter().map(move |b| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()))
                .fold(0.0f32, f32::max);
            assert!((len as f32 - 2.0..=len as f32 + 1.0).contains(&extent), "seed {seed}: extent {extent}");
            // A line: the weighted spread across its direction is small, along it about L/sqrt(12).
            let (mx, my) = lit.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 * p.2 / total, y + p.1 * p.2 / total));
            let (mut sxx, mut syy, mut sxy) = (0.0f32, 0.0f32, 0.0f32);
            for p in &lit {
                let (dx, dy, wt) = (p.0 - mx, p.1 - my, p.2 / total);
                sxx += wt * dx * dx;
                syy += wt * dy * dy;
                sxy += wt * dx * dy;
            }
            let tr = sxx + syy;
            let disc = ((sxx - syy).powi(2) + 4.0 * sxy * sxy).sqrt();
            let (major, minor) = (((tr + disc) / 2.0).sqrt(), ((tr - disc) / 2.0).max(0.0).sqrt());
            assert!(minor < 0.6, "seed {seed}: minor {minor}");
            assert!(major > 2.0, "seed {seed}: major {major}");
        }
    }

    #[test]
    fn jpeg_quality_orders_psnr_and_keeps_channels() {
        let img = natural(64, 64);
        let q10 = spec("jpeg:10").apply(&img, &mut rng(0));
        let q90 = spec("jpeg:90").apply(&img, &mut rng(0));
        assert!(psnr(&q10, &img) + 3.0 < psnr(&q90, &img), "{} vs {}", psnr(&q10, &img), psnr(&q90, &img));
        let grey = Planar::new(1, 64, 64, img.plane(0).to_vec()).unwrap();
        let g = spec("jpeg:50").apply(&grey, &mut rng(0));
        assert_eq!((g.channels, g.height, g.width), (1, 64, 64));
        assert!(psnr(&g, &grey) > 25.0);
    }

    #[test]
    fn rain_and_raindrop_change_and_keep_shape() {
        for c in [1, 3] {
            let img = constant(c, 96, 128, 100.0);
            let wet = spec("rain").apply(&img, &mut rng(6));
            assert_eq!((wet.channels, wet.height, wet.width), (c, 96, 128));
            assert!(mean(&wet.data) > mean(&img.data) + 1.0, "rain mean {}", mean(&wet.data));
            assert!(wet.data.iter().all(|&v| v >= 100.0), "rain only brightens");
            let changed = wet.data.iter().filter(|&&v| v != 100.0).count();
            assert!(changed > wet.data.len() / 50, "rain changed {changed}");

            let scene = natural(64, 64);
            let scene = if c == 1 { Planar::new(1, 64, 64, scene.plane(1).to_vec()).unwrap() } else { scene };
            let dropped = spec("raindrop").apply(&scene, &mut rng(7));
            assert_eq!((dropped.channels, dropped.height, dropped.width), (c, 64, 64));
            let changed = dropped.data.iter().zip(&scene.data).filter(|(a, b)| (*a - *b).abs() >= 2.0).count();
            assert!(changed > 20, "raindrop changed {changed}");
        }
    }

    #[test]
    fn composition_applies_in_order() {
        let img = natural(48, 56);
        let together = spec("blur:2+noise:10+jpeg:50").apply(&img, &mut rng(9));
        let mut r = rng(9);
        let mut step = img.clone();
        for s in ["blur:2", "noise:10", "jpeg:50"] {
            step = spec(s).apply(&step, &mut r);
        }
        assert_eq!(together, step);
        // Order matters: noise blurred away is not the same image as blurred then noised.
        assert_ne!(spec("noise:10+blur:2+jpeg:50").apply(&img, &mut rng(9)), together);
    }
}
