//! Texture anomaly data: crops of one grey texture photograph written as an MVTec AD category, with
//! synthetic defects (scratch, hole, stain, patch) painted onto clean test crops and ground-truth masks
//! that mark exactly the pixels the painting changed.

use std::f32::consts::PI;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::GrayImage;
use rand::Rng;
use rayon::prelude::*;

use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::read_image;
use hitomi_core::SeededRng;

/// Defect folder names; defect `d` draws from the streams (seed, 2 + d, index).
pub const DEFECTS: [&str; 4] = ["scratch", "hole", "stain", "patch"];
/// A pixel is in a defect mask when painting moved it by more than this many grey levels. Smaller
/// moves (the faint rim of soft edges) are put back to the clean value, so the mask is exactly the set
/// of changed pixels and every masked pixel differs from the clean crop by at least 9 levels.
pub const MASK_MIN_CHANGE: i16 = 8;
/// Train and test crops come from alternating square tiles of the photo (a checkerboard), so the two
/// regions never share a pixel yet see the same lighting and the same mix of the texture: a split into
/// a top and a bottom part made every test crop of grass look anomalous next to the train crops.
/// A tile's side is this many times the crop's (rounded up), which leaves room to move a crop in it.
pub const TILE_PER_CROP: f64 = 4.0 / 3.0;
/// Smallest crop side: the largest stain (about 33 px with its soft edge) fits with a margin.
pub const MIN_SIZE: usize = 48;
/// Attempts per defect image before giving up (only a near-flat texture runs out).
const TRIES: usize = 32;
/// A painted defect is kept when the pixels it really changed number at least this fraction of its
/// intended shape, so clipping at 0/255, a stain whose shift cancels its contrast loss, or a patch
/// copied from a look-alike spot cannot leave a faint or riddled defect.
const MIN_CHANGED_FRACTION: f64 = 0.7;

/// Crop counts; `test_defect` is per defect type.
#[derive(Clone, Copy, Debug)]
pub struct TextureOptions {
    pub size: usize,
    pub train: usize,
    pub test_good: usize,
    pub test_defect: usize,
}

impl Default for TextureOptions {
    fn default() -> Self {
        Self { size: 96, train: 60, test_good: 20, test_defect: 10 }
    }
}

/// What `write_textures` wrote: images per folder (each defect image also has its mask).
#[derive(Clone, Debug, PartialEq)]
pub struct TextureSummary {
    pub train_good: usize,
    pub test_good: usize,
    /// (defect folder, images), in `DEFECTS` order.
    pub test_defects: Vec<(String, usize)>,
}

/// A grey texture photograph: pixels (H*W) row-major.
#[derive(Clone, Debug)]
pub struct Texture {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Which tiles a crop may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Train,
    Test,
}

impl Texture {
    /// Reads `path` as grey (luma) and checks that it holds at least two tiles (one train, one test).
    pub fn open(path: &Path, size: usize) -> Result<Self> {
        let img = read_image(path)?.to_luma8();
        let tex = Self { width: img.width() as usize, height: img.height() as usize, pixels: img.into_raw() };
        let (nx, ny, tile) = tex.tiles(size);
        if nx * ny < 2 {
            bail!(
                "{}: texture is {}x{}; crops of {size}x{size} come from alternating {tile}x{tile} tiles (train and \
                 test from separate tiles), so it must be at least {}x{tile} or {tile}x{}",
                path.display(),
                tex.width,
                tex.height,
                2 * tile,
                2 * tile
            );
        }
        Ok(tex)
    }

    /// (tiles across, tiles down, tile side) for crops of `size`; the last partial row or column of
    /// tiles is not used.
    pub fn tiles(&self, size: usize) -> (usize, usize, usize) {
        let tile = (size as f64 * TILE_PER_CROP).ceil() as usize;
        (self.width / tile, self.height / tile, tile)
    }

    /// The region of tile (column i, row j): train where i + j is even, test where it is odd.
    pub fn tile_region(i: usize, j: usize) -> Region {
        if (i + j).is_multiple_of(2) {
            Region::Train
        } else {
            Region::Test
        }
    }

    /// A uniform crop origin (x, y) whose whole w x h crop lies inside one tile of `region` (the
    /// tile drawn uniformly among the region's); crops may overlap.
    pub fn crop_origin_sized(
        &self,
        region: Region,
        size: usize,
        w: usize,
        h: usize,
        rng: &mut impl Rng,
    ) -> (usize, usize) {
        let (nx, ny, tile) = self.tiles(size);
        let tiles: Vec<(usize, usize)> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (i, j)))
            .filter(|&(i, j)| Self::tile_region(i, j) == region)
            .collect();
        let (i, j) = tiles[rng.gen_range(0..tiles.len())];
        (i * tile + rng.gen_range(0..=tile - w), j * tile + rng.gen_range(0..=tile - h))
    }

    /// A uniform size x size crop origin inside one tile of `region`.
    pub fn crop_origin(&self, region: Region, size: usize, rng: &mut impl Rng) -> (usize, usize) {
        self.crop_origin_sized(region, size, size, size, rng)
    }

    /// The w x h pixels (h*w, row-major) at (x, y).
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Vec<u8> {
        (y..y + h).flat_map(|r| self.pixels[r * self.width + x..r * self.width + x + w].iter().copied()).collect()
    }
}

/// One defect test image: its crop origin in the texture, the clean crop, the painted image and its
/// mask (all size*size; mask 255 = changed pixel, 0 = untouched).
#[derive(Clone, Debug)]
pub struct DefectSample {
    pub origin: (usize, usize),
    pub clean: Vec<u8>,
    pub image: Vec<u8>,
    pub mask: Vec<u8>,
}

/// A painted defect before rounding: pixel values (size*size, unclamped) and how many pixels its
/// intended shape covers (the hard shape, without the soft rim).
struct Painted {
    values: Vec<f32>,
    shape_pixels: usize,
}

fn sign(rng: &mut impl Rng) -> f32 {
    if rng.gen_bool(0.5) {
        1.0
    } else {
        -1.0
    }
}

/// A uniform centre coordinate keeping [c - lo_extent, c + hi_extent] inside [0, size - 1].
fn centre(rng: &mut impl Rng, size: usize, lo_extent: f32, hi_extent: f32) -> f32 {
    let (lo, hi) = (lo_extent, size as f32 - 1.0 - hi_extent);
    if lo >= hi {
        (lo + hi) / 2.0
    } else {
        rng.gen_range(lo..=hi)
    }
}

/// Mean and standard deviation of `clean` over the square of half-side `r` around (cx, cy), clipped
/// to the crop: the level and contrast a defect is drawn relative to, so it is as visible on a busy,
/// high-contrast texture (grass, gravel) as on a calm one (brick).
fn local_stats(clean: &[u8], size: usize, cx: f32, cy: f32, r: f32) -> (f32, f32) {
    let (x0, x1) = (((cx - r).floor().max(0.0)) as usize, ((cx + r).ceil() as usize).min(size - 1));
    let (y0, y1) = (((cy - r).floor().max(0.0)) as usize, ((cy + r).ceil() as usize).min(size - 1));
    let (mut sum, mut sq) = (0.0f64, 0.0f64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let v = clean[y * size + x] as f64;
            sum += v;
            sq += v * v;
        }
    }
    let n = ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64;
    let mean = sum / n;
    (mean as f32, (sq / n - mean * mean).max(0.0).sqrt() as f32)
}

/// Grey levels a painted target is kept within, so a defect is not a saturated 0/255 blob that a
/// plain threshold would find.
const LEVELS: (f32, f32) = (6.0, 249.0);

/// A level `k` local standard deviations (at least `min_levels`) above or below `mean`, kept in LEVELS.
fn offset_level(mean: f32, std: f32, k: f32, min_levels: f32, sign: f32) -> f32 {
    (mean + sign * (k * std).max(min_levels)).clamp(LEVELS.0 + 10.0, LEVELS.1 - 10.0)
}

/// Distance from p to the segment a-b.
fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (abx, aby) = (b.0 - a.0, b.1 - a.1);
    let len2 = abx * abx + aby * aby;
    let t = if len2 > 0.0 { (((p.0 - a.0) * abx + (p.1 - a.1) * aby) / len2).clamp(0.0, 1.0) } else { 0.0 };
    ((p.0 - a.0 - t * abx).powi(2) + (p.1 - a.1 - t * aby).powi(2)).sqrt()
}

/// Scratch: a stroke 2-4 px wide and 25-60% of the crop long at a uniform angle, bent into a quadratic
/// curve whose middle sits up to 15% of its length off the chord. Under it the texture is pressed to
/// one level 2-3 local standard deviations (at least 40 grey levels) above or below the local mean,
/// keeping 15% of its own contrast, with a 1 px anti-aliased rim: a line no texture of the photo has.
fn scratch(clean: &[u8], size: usize, rng: &mut impl Rng) -> Painted {
    let len = rng.gen_range(0.25..=0.6) * size as f32;
    let angle = rng.gen_range(0.0..PI);
    let bend = rng.gen_range(-0.15..=0.15) * len;
    let width: f32 = rng.gen_range(2.0..=4.0);
    let k = rng.gen_range(2.0..=3.0);
    let sign = sign(rng);
    let (dx, dy) = (angle.cos(), angle.sin());
    // Quadratic Bezier from -len/2 to +len/2 along the direction, control point 2*bend along the
    // normal: its midpoint lies `bend` off the chord.
    let steps = (len.ceil() as usize).max(2);
    let mut pts: Vec<(f32, f32)> = (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let (a, b) = ((t - 0.5) * len, 4.0 * t * (1.0 - t) * bend);
            (a * dx - b * dy, a * dy + b * dx)
        })
        .collect();
    let pad = width / 2.0 + 2.0;
    let (minx, maxx) = pts.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (miny, maxy) = pts.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let cx = centre(rng, size, pad - minx, pad + maxx);
    let cy = centre(rng, size, pad - miny, pad + maxy);
    for p in &mut pts {
        *p = (p.0 + cx, p.1 + cy);
    }
    let (mean, std) = local_stats(clean, size, cx, cy, len / 2.0 + pad);
    let level = offset_level(mean, std, k, 40.0, sign);
    let mut values: Vec<f32> = clean.iter().map(|&v| v as f32).collect();
    let mut shape_pixels = 0;
    for y in 0..size {
        for x in 0..size {
            let p = (x as f32, y as f32);
            let d = pts.windows(2).map(|s| segment_distance(p, s[0], s[1])).fold(f32::MAX, f32::min);
            let cover = (width / 2.0 + 0.5 - d).clamp(0.0, 1.0);
            let o = y * size + x;
            let target = (level + 0.15 * (values[o] - mean)).clamp(LEVELS.0, LEVELS.1);
            values[o] += cover * (target - values[o]);
            shape_pixels += usize::from(d <= width / 2.0);
        }
    }
    Painted { values, shape_pixels }
}

/// Hole: a rotated ellipse 10-22 px across (the short axis 60-100% of the long one), filled with
/// 15-30% of the local mean level (10% darker at the centre) plus a tenth of the texture's local
/// contrast, blended in over a soft edge 1-2 px wide: a dark, nearly flat pit.
fn hole(clean: &[u8], size: usize, rng: &mut impl Rng) -> Painted {
    let a = rng.gen_range(10.0..=22.0) / 2.0;
    let b = a * rng.gen_range(0.6..=1.0);
    let angle = rng.gen_range(0.0..PI);
    let edge: f32 = rng.gen_range(1.0..=2.0);
    let darkness = rng.gen_range(0.15..=0.3);
    let reach = a + edge + 1.0;
    let (cx, cy) = (centre(rng, size, reach, reach), centre(rng, size, reach, reach));
    let (mean, _) = local_stats(clean, size, cx, cy, reach);
    let (cos, sin) = (angle.cos(), angle.sin());
    let mut values: Vec<f32> = clean.iter().map(|&v| v as f32).collect();
    let mut shape_pixels = 0;
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 - cx, y as f32 - cy);
            let (u, v) = (px * cos + py * sin, -px * sin + py * cos);
            let rho = ((u / a).powi(2) + (v / b).powi(2)).sqrt();
            // Radial distance to the outline, negative inside: exact on a circle, close on an ellipse.
            let r = (u * u + v * v).sqrt();
            let d = if rho > 0.0 { r * (1.0 - 1.0 / rho) } else { -b };
            let cover = (0.5 - d / edge).clamp(0.0, 1.0);
            let o = y * size + x;
            let target = (mean * darkness * (0.9 + 0.1 * rho.min(1.0)) + 0.1 * (clean[o] as f32 - mean))
                .clamp(LEVELS.0, LEVELS.1);
            values[o] += cover * (target - values[o]);
            shape_pixels += usize::from(rho <= 1.0);
        }
    }
    Painted { values, shape_pixels }
}

/// Stain: a blob 14-28 px across on average with a wobbly outline (radius modulated by 2nd-4th
/// harmonics of up to 12% each), inside which the texture keeps 10-30% of its contrast around the
/// local mean and is shifted by 1-1.5 local standard deviations (at least 30 levels) up or down,
/// blended in over a 2 px soft edge: a washed-out, discoloured spot.
fn stain(clean: &[u8], size: usize, rng: &mut impl Rng) -> Painted {
    let r0 = rng.gen_range(7.0..=14.0);
    let harmonics: Vec<(f32, f32, f32)> =
        (2..=4).map(|k| (k as f32, rng.gen_range(0.0..=0.12), rng.gen_range(0.0..2.0 * PI))).collect();
    let contrast = rng.gen_range(0.1..=0.3);
    let k = rng.gen_range(1.0..=1.5);
    let sign = sign(rng);
    let edge = 2.0;
    let reach = r0 * 1.36 + edge + 1.0;
    let (cx, cy) = (centre(rng, size, reach, reach), centre(rng, size, reach, reach));
    let (mean, std) = local_stats(clean, size, cx, cy, r0);
    let level = offset_level(mean, std, k, 30.0, sign);
    let mut values: Vec<f32> = clean.iter().map(|&v| v as f32).collect();
    let mut shape_pixels = 0;
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 - cx, y as f32 - cy);
            let theta = py.atan2(px);
            let outline = r0 * (1.0 + harmonics.iter().map(|&(k, amp, ph)| amp * (k * theta + ph).cos()).sum::<f32>());
            let d = (px * px + py * py).sqrt() - outline;
            let cover = (0.5 - d / edge).clamp(0.0, 1.0);
            let o = y * size + x;
            let target = (level + contrast * (clean[o] as f32 - mean)).clamp(LEVELS.0, LEVELS.1);
            values[o] += cover * (target - values[o]);
            shape_pixels += usize::from(d <= 0.0);
        }
    }
    Painted { values, shape_pixels }
}

/// Patch: a rectangle 14-26 px on each side replaced, with hard edges, by a piece of a test tile (never overlapping the destination) magnified 2x bilinearly, as if a piece of a
/// coarser surface had been set in: the texture's own grey levels at the wrong scale.
fn patch(tex: &Texture, origin: (usize, usize), clean: &[u8], size: usize, rng: &mut impl Rng) -> Painted {
    let (pw, ph) = (rng.gen_range(14..=26usize), rng.gen_range(14..=26usize));
    let (px, py) = (rng.gen_range(2..=size - pw - 2), rng.gen_range(2..=size - ph - 2));
    let (tx, ty) = (origin.0 + px, origin.1 + py);
    // The source covers half the patch in each direction, plus one pixel for interpolation.
    let (sw, sh) = (pw / 2 + 2, ph / 2 + 2);
    // A test tile is larger than a crop, so a source not overlapping the destination turns up within
    // a few draws; the last draw is used whatever it is.
    let mut source = (0, 0);
    for _ in 0..100 {
        source = tex.crop_origin_sized(Region::Test, size, sw, sh, rng);
        if source.0.abs_diff(tx) >= pw.max(sw) || source.1.abs_diff(ty) >= ph.max(sh) {
            break;
        }
    }
    let piece = tex.crop(source.0, source.1, sw, sh);
    let sample = |u: f32, v: f32| -> f32 {
        let (x0, y0) = (u.floor() as usize, v.floor() as usize);
        let (fx, fy) = (u - x0 as f32, v - y0 as f32);
        let at = |x: usize, y: usize| piece[y.min(sh - 1) * sw + x.min(sw - 1)] as f32;
        (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
            + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1))
    };
    let mut values: Vec<f32> = clean.iter().map(|&v| v as f32).collect();
    for r in 0..ph {
        for c in 0..pw {
            values[(py + r) * size + px + c] = sample(c as f32 / 2.0, r as f32 / 2.0);
        }
    }
    Painted { values, shape_pixels: pw * ph }
}

/// Rounds painted values to grey levels and puts every pixel that moved by <= MASK_MIN_CHANGE back
/// to its clean value; returns (image, mask), both size*size, and the number of masked pixels.
fn settle(clean: &[u8], painted: &[f32]) -> (Vec<u8>, Vec<u8>, usize) {
    let mut image = clean.to_vec();
    let mut mask = vec![0u8; clean.len()];
    let mut changed = 0;
    for (o, (&c, &p)) in clean.iter().zip(painted).enumerate() {
        let v = p.round().clamp(0.0, 255.0) as u8;
        if (v as i16 - c as i16).abs() > MASK_MIN_CHANGE {
            image[o] = v;
            mask[o] = 255;
            changed += 1;
        }
    }
    (image, mask, changed)
}

/// Paints defect `DEFECTS[defect]` onto a clean test-region crop of `tex`, all draws from `rng`:
/// crop origin, then defect parameters, retried (with fresh draws) until pixels changed by more than
/// MASK_MIN_CHANGE number at least 70% of the defect's shape.
pub fn paint_defect(tex: &Texture, defect: usize, size: usize, rng: &mut impl Rng) -> Result<DefectSample> {
    let origin = tex.crop_origin(Region::Test, size, rng);
    let clean = tex.crop(origin.0, origin.1, size, size);
    for _ in 0..TRIES {
        let painted = match DEFECTS[defect] {
            "scratch" => scratch(&clean, size, rng),
            "hole" => hole(&clean, size, rng),
            "stain" => stain(&clean, size, rng),
            _ => patch(tex, origin, &clean, size, rng),
        };
        let (image, mask, changed) = settle(&clean, &painted.values);
        if changed > 0 && changed as f64 >= MIN_CHANGED_FRACTION * painted.shape_pixels as f64 {
            return Ok(DefectSample { origin, clean, image, mask });
        }
    }
    bail!(
        "could not paint a visible {} on the crop at ({}, {}) in {TRIES} tries; is the texture nearly flat?",
        DEFECTS[defect],
        origin.0,
        origin.1
    )
}

fn png(path: &Path, pixels: &[u8], size: usize) -> Result<()> {
    let img = GrayImage::from_raw(size as u32, size as u32, pixels.to_vec()).expect("crop size");
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    write_atomic(path, &bytes)
}

/// `hitomi data textures`: an MVTec AD category in `out` from the photo `texture`:
/// `train/good/000.png` (crops from the train tiles), `test/good/000.png` and
/// `test/<defect>/000.png` (crops from the test tiles), `ground_truth/<defect>/000_mask.png`
/// (255 = changed pixel). Image i of train uses the stream (seed, 0, i), of test/good (seed, 1, i),
/// of defect d (seed, 2 + d, i).
pub fn write_textures(texture: &Path, out: &Path, seed: u64, opts: &TextureOptions) -> Result<TextureSummary> {
    let TextureOptions { size, train, test_good, test_defect } = *opts;
    if size < MIN_SIZE {
        bail!("--size {size}: crops must be at least {MIN_SIZE} px so every defect fits");
    }
    if train == 0 || test_good == 0 || test_defect == 0 {
        bail!("--train {train}, --test-good {test_good}, --test-defect {test_defect}: each must be at least 1");
    }
    let tex = Texture::open(texture, size)?;
    let mut dirs = vec![out.join("train/good"), out.join("test/good")];
    for d in DEFECTS {
        dirs.push(out.join("test").join(d));
        dirs.push(out.join("ground_truth").join(d));
    }
    for d in &dirs {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let counts = [train, test_good].into_iter().chain(DEFECTS.map(|_| test_defect));
    let jobs: Vec<(usize, usize)> = counts.enumerate().flat_map(|(kind, n)| (0..n).map(move |i| (kind, i))).collect();
    jobs.into_par_iter().try_for_each(|(kind, i)| -> Result<()> {
        let mut rng = SeededRng::derive(seed, &[kind as u64, i as u64]);
        let stem = format!("{i:03}");
        match kind {
            0 | 1 => {
                let region = if kind == 0 { Region::Train } else { Region::Test };
                let (x, y) = tex.crop_origin(region, size, &mut rng);
                let dir = if kind == 0 { "train/good" } else { "test/good" };
                png(&out.join(dir).join(format!("{stem}.png")), &tex.crop(x, y, size, size), size)
            }
            _ => {
                let defect = DEFECTS[kind - 2];
                let s = paint_defect(&tex, kind - 2, size, &mut rng)
                    .with_context(|| format!("{}: {defect} {stem}", texture.display()))?;
                png(&out.join("test").join(defect).join(format!("{stem}.png")), &s.image, size)?;
                png(&out.join("ground_truth").join(defect).join(format!("{stem}_mask.png")), &s.mask, size)
            }
        }
    })?;
    Ok(TextureSummary {
        train_good: train,
        test_good,
        test_defects: DEFECTS.iter().map(|d| (d.to_string(), test_defect)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn brick_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/textures/brick.png")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hitomi-textures-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const SMALL: TextureOptions = TextureOptions { size: 96, train: 6, test_good: 4, test_defect: 3 };

    /// Every file under `root`, as paths relative to it.
    fn files(root: &Path) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    fn grey(path: &Path) -> GrayImage {
        match read_image(path).unwrap() {
            image::DynamicImage::ImageLuma8(g) => g,
            other => panic!("{}: {:?}, expected 8-bit grey", path.display(), other.color()),
        }
    }

    #[test]
    fn layout_and_names_are_mvtec() {
        let out = temp_dir("layout");
        let s = write_textures(&brick_path(), &out, 0, &SMALL).unwrap();
        assert_eq!((s.train_good, s.test_good), (6, 4));
        assert_eq!(s.test_defects.iter().map(|(d, n)| (d.as_str(), *n)).collect::<Vec<_>>(), DEFECTS.map(|d| (d, 3)));
        let mut expected = BTreeSet::new();
        expected.extend((0..6).map(|i| format!("train/good/{i:03}.png")));
        expected.extend((0..4).map(|i| format!("test/good/{i:03}.png")));
        for d in DEFECTS {
            for i in 0..3 {
                expected.insert(format!("test/{d}/{i:03}.png"));
                expected.insert(format!("ground_truth/{d}/{i:03}_mask.png"));
            }
        }
        assert_eq!(files(&out), expected);
        for d in DEFECTS {
            for i in 0..3 {
                let img = grey(&out.join(format!("test/{d}/{i:03}.png")));
                let mask = grey(&out.join(format!("ground_truth/{d}/{i:03}_mask.png")));
                assert_eq!(img.dimensions(), (96, 96));
                assert_eq!(mask.dimensions(), img.dimensions());
                assert!(mask.iter().all(|&v| v == 0 || v == 255), "{d} {i}: mask values other than 0/255");
                assert!(mask.as_raw().contains(&255), "{d} {i}: empty mask");
            }
        }
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn train_and_test_crops_come_from_tiles_of_their_own_region() {
        let tex = Texture::open(&brick_path(), 96).unwrap();
        assert_eq!(tex.tiles(96), (4, 4, 128));
        let out = temp_dir("tiles");
        write_textures(&brick_path(), &out, 3, &SMALL).unwrap();
        // Both corners of a crop must lie in one tile of the expected region.
        let region_of = |(x, y): (usize, usize)| -> Region {
            let (i0, j0, i1, j1) = (x / 128, y / 128, (x + 95) / 128, (y + 95) / 128);
            assert_eq!((i0, j0), (i1, j1), "crop at ({x}, {y}) straddles two tiles");
            Texture::tile_region(i0, j0)
        };
        // Find each written crop in the photo (a real photo has no two identical 96x96 windows), then
        // check its tile: the written bytes, not just the sampler, respect the split.
        let locate = |img: &GrayImage| -> (usize, usize) {
            let px = img.as_raw();
            let mut hits = Vec::new();
            for y in 0..=tex.height - 96 {
                for x in 0..=tex.width - 96 {
                    if (0..96).all(|r| tex.pixels[(y + r) * tex.width + x..][..96] == px[r * 96..][..96]) {
                        hits.push((x, y));
                    }
                }
            }
            assert_eq!(hits.len(), 1, "crop found {} times", hits.len());
            hits[0]
        };
        let mut seen = BTreeSet::new();
        for i in 0..6 {
            let at = locate(&grey(&out.join(format!("train/good/{i:03}.png"))));
            assert_eq!(region_of(at), Region::Train, "train crop {i} at {at:?}");
            seen.insert((at.0 / 128, at.1 / 128));
        }
        for i in 0..4 {
            let at = locate(&grey(&out.join(format!("test/good/{i:03}.png"))));
            assert_eq!(region_of(at), Region::Test, "test crop {i} at {at:?}");
            seen.insert((at.0 / 128, at.1 / 128));
        }
        assert!(seen.len() >= 5, "10 crops fell in only {} tiles", seen.len());
        for d in 0..DEFECTS.len() {
            for i in 0..50u64 {
                let at = paint_defect(&tex, d, 96, &mut SeededRng::derive(3, &[2 + d as u64, i])).unwrap().origin;
                assert_eq!(region_of(at), Region::Test);
            }
        }
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let read_all = |root: &Path| -> Vec<(String, Vec<u8>)> {
            files(root).into_iter().map(|f| (f.clone(), std::fs::read(root.join(&f)).unwrap())).collect()
        };
        let (a, b, c) = (temp_dir("seed-a"), temp_dir("seed-b"), temp_dir("seed-c"));
        write_textures(&brick_path(), &a, 5, &SMALL).unwrap();
        write_textures(&brick_path(), &b, 5, &SMALL).unwrap();
        write_textures(&brick_path(), &c, 6, &SMALL).unwrap();
        let (fa, fb, fc) = (read_all(&a), read_all(&b), read_all(&c));
        assert_eq!(fa, fb);
        // Every image differs under another seed (masks are compared through their images).
        for ((name, x), (_, y)) in fa.iter().zip(&fc) {
            if !name.starts_with("ground_truth") {
                assert_ne!(x, y, "{name} is the same under seeds 5 and 6");
            }
        }
        for d in [a, b, c] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn defects_change_exactly_the_masked_pixels() {
        let tex = Texture::open(&brick_path(), 96).unwrap();
        for (d, name) in DEFECTS.iter().enumerate() {
            let (mut masked, mut moved, mut clipped) = (0usize, 0.0f64, 0usize);
            for i in 0..40u64 {
                let s = paint_defect(&tex, d, 96, &mut SeededRng::derive(11, &[2 + d as u64, i])).unwrap();
                assert_eq!(s.clean, tex.crop(s.origin.0, s.origin.1, 96, 96));
                assert!(s.mask.contains(&255), "{name} {i}: empty mask");
                for o in 0..96 * 96 {
                    let diff = (s.image[o] as i16 - s.clean[o] as i16).abs();
                    if s.mask[o] == 255 {
                        assert!(diff > MASK_MIN_CHANGE, "{name} {i}: masked pixel {o} moved only {diff}");
                        masked += 1;
                        moved += diff as f64;
                        clipped += usize::from(s.image[o] == 0 || s.image[o] == 255);
                    } else {
                        assert_eq!(s.mask[o], 0);
                        assert_eq!(diff, 0, "{name} {i}: unmasked pixel {o} changed");
                    }
                }
            }
            // Visible (a clear average move) but not a saturated blob that a threshold would find.
            let mean_move = moved / masked as f64;
            assert!(mean_move >= 15.0, "{name}: mean change {mean_move:.1} levels");
            assert!((clipped as f64) < 0.05 * masked as f64, "{name}: {clipped} of {masked} pixels at 0/255");
        }
    }

    #[test]
    fn too_small_texture_errors_with_its_name() {
        let dir = temp_dir("small");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny_texture.png");
        GrayImage::from_pixel(250, 200, image::Luma([128])).save(&path).unwrap();
        let err = write_textures(&path, &dir.join("out"), 0, &TextureOptions::default()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("tiny_texture.png") && msg.contains("250x200") && msg.contains("256x128"), "{msg}");
        assert!(!dir.join("out").exists(), "nothing written on error");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
