//! Classical restoration filters (the baselines learning must beat): Gaussian, median, bilateral and
//! non-local means on [`Planar`] images, plus [`tuned_baselines`], which picks each filter's best
//! setting on the evaluation pairs themselves.
//!
//! Borders are mirrored everywhere with scipy.ndimage's 'reflect' rule (`d c b a | a b c d`), the
//! same rule SSIM's Gaussian uses, so that a filter never darkens or brightens the frame.

use std::fmt;

use hitomi_data::gaussian::{gaussian_plane_f64, reflect};
use hitomi_data::Planar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::quality::{psnr, ssim};

/// Gaussian blur with scipy's default truncation (4 sigma), separable, reflect borders.
///
/// img: (C, H, W); returns (C, H, W). `sigma <= 0` returns a copy.
pub fn gaussian(img: &Planar, sigma: f32) -> Planar {
    let radius = (4.0 * sigma + 0.5).max(0.0) as usize;
    let mut out = img.clone();
    for c in 0..img.channels {
        let plane: Vec<f64> = img.plane(c).iter().map(|&v| f64::from(v)).collect();
        let blurred = gaussian_plane_f64(&plane, img.height, img.width, f64::from(sigma), radius);
        for (o, b) in out.plane_mut(c).iter_mut().zip(blurred) {
            *o = b as f32;
        }
    }
    out
}

/// One plane mirrored by `pad` on every side: (H + 2 pad, W + 2 pad).
fn pad_plane(src: &[f32], h: usize, w: usize, pad: usize) -> Vec<f32> {
    let p = pad as isize;
    let mut out = Vec::with_capacity((h + 2 * pad) * (w + 2 * pad));
    for y in -p..h as isize + p {
        let row = &src[reflect(y, h) * w..][..w];
        out.extend((-p..w as isize + p).map(|x| row[reflect(x, w)]));
    }
    out
}

/// All channels mirrored by `pad` and interleaved: (H + 2 pad, W + 2 pad, C), so that the filters
/// comparing whole colours read one contiguous run per pixel.
fn pad_interleaved(img: &Planar, pad: usize) -> Vec<f32> {
    let planes: Vec<Vec<f32>> =
        (0..img.channels).map(|c| pad_plane(img.plane(c), img.height, img.width, pad)).collect();
    let n = planes[0].len();
    let mut out = Vec::with_capacity(n * img.channels);
    for i in 0..n {
        out.extend(planes.iter().map(|p| p[i]));
    }
    out
}

/// Median over a square (2 radius + 1)^2 window per channel, reflect borders.
///
/// img: (C, H, W); returns (C, H, W). Each pixel selects the middle of its window with
/// `select_nth_unstable` (values need not be integers, which rules out a 256-bin histogram); at
/// radius <= 3 that is at most 49 values, fast enough for 512x512x3 in well under a second.
pub fn median(img: &Planar, radius: usize) -> Planar {
    if radius == 0 {
        return img.clone();
    }
    let (h, w) = (img.height, img.width);
    let k = 2 * radius + 1;
    let pw = w + 2 * radius;
    let mut out = img.clone();
    for c in 0..img.channels {
        let padded = pad_plane(img.plane(c), h, w, radius);
        out.plane_mut(c).par_chunks_mut(w).enumerate().for_each(|(y, out_row)| {
            let mut window = Vec::with_capacity(k * k);
            for (x, o) in out_row.iter_mut().enumerate() {
                window.clear();
                for dy in 0..k {
                    window.extend_from_slice(&padded[(y + dy) * pw + x..][..k]);
                }
                let mid = window.len() / 2;
                *o = *window.select_nth_unstable_by(mid, f32::total_cmp).1;
            }
        });
    }
    out
}

/// Bilateral filter: weights `exp(-|dp|^2 / (2 sigma_space^2)) * exp(-|dI|^2 / (2 sigma_color^2))`
/// over a square window of radius `ceil(2 sigma_space)`, reflect borders.
///
/// img: (C, H, W); returns (C, H, W). For RGB, |dI| is the Euclidean distance between whole
/// colours (as scikit-image's `denoise_bilateral`), so channels are smoothed together and edges do
/// not grow colour fringes. `sigma_color` is on the 0..255 scale. Non-positive sigmas return a copy.
pub fn bilateral(img: &Planar, sigma_color: f32, sigma_space: f32) -> Planar {
    if sigma_color <= 0.0 || sigma_space <= 0.0 {
        return img.clone();
    }
    let (ch, h, w) = (img.channels, img.height, img.width);
    let radius = (2.0 * sigma_space).ceil() as usize;
    let k = 2 * radius + 1;
    let pw = w + 2 * radius;
    let padded = pad_interleaved(img, radius);
    let spatial: Vec<f32> = (0..k * k)
        .map(|i| {
            let (dy, dx) = ((i / k) as f32 - radius as f32, (i % k) as f32 - radius as f32);
            (-(dy * dy + dx * dx) / (2.0 * sigma_space * sigma_space)).exp()
        })
        .collect();
    let inv_2sc2 = 1.0 / (2.0 * sigma_color * sigma_color);

    // Output interleaved (H, W, C) by rows, then split back into planes.
    let mut inter = vec![0.0f32; h * w * ch];
    inter.par_chunks_mut(w * ch).enumerate().for_each(|(y, out_row)| {
        let mut acc = vec![0.0f32; ch];
        for x in 0..w {
            let centre = &padded[((y + radius) * pw + x + radius) * ch..][..ch];
            acc.iter_mut().for_each(|a| *a = 0.0);
            let mut wsum = 0.0f32;
            for dy in 0..k {
                let row = &padded[((y + dy) * pw + x) * ch..][..k * ch];
                for (dx, px) in row.chunks_exact(ch).enumerate() {
                    let d2: f32 = px.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
                    let wgt = spatial[dy * k + dx] * (-d2 * inv_2sc2).exp();
                    wsum += wgt;
                    acc.iter_mut().zip(px).for_each(|(a, &v)| *a += wgt * v);
                }
            }
            // The centre tap has weight 1, so wsum >= 1.
            for (o, a) in out_row[x * ch..][..ch].iter_mut().zip(&acc) {
                *o = a / wsum;
            }
        }
    });
    deinterleave(&inter, ch, h, w)
}

/// (H, W, C) interleaved -> [`Planar`] (C, H, W).
fn deinterleave(inter: &[f32], ch: usize, h: usize, w: usize) -> Planar {
    let mut out = Planar::zeros(ch, h, w);
    for c in 0..ch {
        for (o, px) in out.plane_mut(c).iter_mut().zip(inter.chunks_exact(ch)) {
            *o = px[c];
        }
    }
    out
}

/// Patch distances above this (in units of h^2) get no weight: exp(-5) < 0.7%, and skipping them
/// saves the accumulation (scikit-image's `DISTANCE_CUTOFF`).
const NLM_DISTANCE_CUTOFF: f32 = 5.0;

/// Non-local means in the fast integral-image form (Darbon et al. 2008; scikit-image's
/// `denoise_nl_means(fast_mode=True)`).
///
/// img: (C, H, W); returns (C, H, W). Every pixel becomes a weighted mean of the pixels within
/// `search_radius` (a (2s+1)^2 window). For an offset t the patch distance is
/// `d = sum over the (2 patch_radius + 1)^2 patch and all channels of ((x(q) - x(q+t))^2 - 2 sigma^2)`,
/// one box sum of a whole-image difference map read from its integral image, so the cost per
/// offset does not grow with the patch. The weight is `exp(-max(d, 0) / (C h^2 P))` with P the
/// patch area, exactly scikit-image's normalisation, so `h` and `sigma` are both on the 0..255
/// scale: pass the noise level as `sigma` (0 if unknown) and `h` around 0.6-1.0 sigma. RGB
/// channels share one distance (colours are compared whole). Offsets are split across rayon
/// threads, each with its own accumulators. `h <= 0` returns a copy.
pub fn nl_means(img: &Planar, h: f32, sigma: f32, patch_radius: usize, search_radius: usize) -> Planar {
    if h <= 0.0 || search_radius == 0 {
        return img.clone();
    }
    let (ch, ih, iw) = (img.channels, img.height, img.width);
    let (f, s) = (patch_radius, search_radius);
    let pad = s + f;
    let pw = iw + 2 * pad;
    let padded = pad_interleaved(img, pad);
    // The difference map covers every patch of every output pixel: (H + 2f, W + 2f), and its
    // integral image has one extra leading row and column of zeros.
    let (dh, dw) = (ih + 2 * f, iw + 2 * f);
    let iw1 = dw + 1;
    let patch = 2 * f + 1;
    let norm = 1.0 / (ch as f64 * f64::from(h) * f64::from(h) * (patch * patch) as f64);
    let var_diff = 2.0 * sigma * sigma * ch as f32;

    let si = s as isize;
    let offsets: Vec<(isize, isize)> = (-si..=si).flat_map(|dy| (-si..=si).map(move |dx| (dy, dx))).collect();
    let threads = rayon::current_num_threads().max(1);
    let per = offsets.len().div_ceil(threads);

    let (num, den) = offsets
        .par_chunks(per)
        .map(|chunk| {
            // num: (H, W, C) interleaved weighted sums; den: (H, W) weight totals.
            let mut num = vec![0.0f32; ih * iw * ch];
            let mut den = vec![0.0f32; ih * iw];
            let mut integral = vec![0.0f64; (dh + 1) * iw1];
            for &(oy, ox) in chunk {
                for y in 0..dh {
                    let a_row = &padded[((y + pad - f) * pw + pad - f) * ch..][..dw * ch];
                    let b_start = ((y + pad - f) as isize + oy) as usize * pw + ((pad - f) as isize + ox) as usize;
                    let b_row = &padded[b_start * ch..][..dw * ch];
                    let mut run = 0.0f64;
                    for x in 0..dw {
                        let d2: f32 = a_row[x * ch..][..ch]
                            .iter()
                            .zip(&b_row[x * ch..][..ch])
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum();
                        run += f64::from(d2 - var_diff);
                        integral[(y + 1) * iw1 + x + 1] = integral[y * iw1 + x + 1] + run;
                    }
                }
                for y in 0..ih {
                    let top = &integral[y * iw1..][..iw1];
                    let bottom = &integral[(y + patch) * iw1..][..iw1];
                    let src_start = ((y + pad) as isize + oy) as usize * pw + (pad as isize + ox) as usize;
                    let src = &padded[src_start * ch..][..iw * ch];
                    for x in 0..iw {
                        let d = bottom[x + patch] - top[x + patch] - bottom[x] + top[x];
                        let dist = (d.max(0.0) * norm) as f32;
                        if dist > NLM_DISTANCE_CUTOFF {
                            continue;
                        }
                        let wgt = (-dist).exp();
                        den[y * iw + x] += wgt;
                        let acc = &mut num[(y * iw + x) * ch..][..ch];
                        acc.iter_mut().zip(&src[x * ch..][..ch]).for_each(|(a, &v)| *a += wgt * v);
                    }
                }
            }
            (num, den)
        })
        .reduce(
            || (vec![0.0f32; ih * iw * ch], vec![0.0f32; ih * iw]),
            |(mut n1, mut d1), (n2, d2)| {
                n1.iter_mut().zip(n2).for_each(|(a, b)| *a += b);
                d1.iter_mut().zip(d2).for_each(|(a, b)| *a += b);
                (n1, d1)
            },
        );
    // The zero offset always has distance max(negative, 0) = 0 and weight 1, so den >= 1.
    let inter: Vec<f32> = num.chunks_exact(ch).zip(&den).flat_map(|(px, &d)| px.iter().map(move |v| v / d)).collect();
    deinterleave(&inter, ch, ih, iw)
}

/// Blind estimate of additive white Gaussian noise (Immerkaer 1996): the image convolved with the
/// Laplacian-difference mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (which cancels locally linear structure),
/// `sigma = sqrt(pi/2) / (6 (H-2)(W-2)) * sum |response|`, averaged over channels.
///
/// img: (C, H, W), 0..255 scale; returns sigma on the same scale (0 for images under 3x3). Edges
/// and texture leak into the estimate, so clean photos read a few levels above zero.
pub fn estimate_noise_sigma(img: &Planar) -> f32 {
    let (h, w) = (img.height, img.width);
    if h < 3 || w < 3 || img.channels == 0 {
        return 0.0;
    }
    let mask = [1.0f64, -2.0, 1.0, -2.0, 4.0, -2.0, 1.0, -2.0, 1.0];
    let mut total = 0.0f64;
    for c in 0..img.channels {
        let p = img.plane(c);
        let mut sum = 0.0f64;
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let mut r = 0.0f64;
                for (i, m) in mask.iter().enumerate() {
                    r += m * f64::from(p[(y + i / 3 - 1) * w + x + i % 3 - 1]);
                }
                sum += r.abs();
            }
        }
        total += (std::f64::consts::FRAC_PI_2).sqrt() * sum / (6.0 * ((h - 2) * (w - 2)) as f64);
    }
    (total / img.channels as f64) as f32
}

/// One classical filter with its parameters (all on the 0..255 pixel scale).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "filter", rename_all = "snake_case")]
pub enum Filter {
    Gaussian {
        sigma: f32,
    },
    Median {
        radius: usize,
    },
    Bilateral {
        sigma_color: f32,
        sigma_space: f32,
    },
    /// `sigma`: the noise level subtracted from patch distances (see [`nl_means`]).
    NlMeans {
        h: f32,
        sigma: f32,
        patch_radius: usize,
        search_radius: usize,
    },
}

impl Filter {
    /// img: (C, H, W); returns the filtered (C, H, W).
    pub fn apply(&self, img: &Planar) -> Planar {
        match *self {
            Filter::Gaussian { sigma } => gaussian(img, sigma),
            Filter::Median { radius } => median(img, radius),
            Filter::Bilateral { sigma_color, sigma_space } => bilateral(img, sigma_color, sigma_space),
            Filter::NlMeans { h, sigma, patch_radius, search_radius } => {
                nl_means(img, h, sigma, patch_radius, search_radius)
            }
        }
    }

    /// The family name: "gaussian", "median", "bilateral" or "nl_means".
    pub fn name(&self) -> &'static str {
        match self {
            Filter::Gaussian { .. } => "gaussian",
            Filter::Median { .. } => "median",
            Filter::Bilateral { .. } => "bilateral",
            Filter::NlMeans { .. } => "nl_means",
        }
    }
}

/// `name(param=value, ...)`, for tables and logs.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Filter::Gaussian { sigma } => write!(f, "gaussian(sigma={sigma})"),
            Filter::Median { radius } => write!(f, "median(radius={radius})"),
            Filter::Bilateral { sigma_color, sigma_space } => {
                write!(f, "bilateral(sigma_color={sigma_color:.1}, sigma_space={sigma_space})")
            }
            Filter::NlMeans { h, sigma, patch_radius, search_radius } => write!(
                f,
                "nl_means(h={h:.1}, sigma={sigma:.1}, patch_radius={patch_radius}, search_radius={search_radius})"
            ),
        }
    }
}

/// A filter family's best setting on an evaluation set and its scores there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`Filter::name`] of `filter`.
    pub name: String,
    pub filter: Filter,
    /// Mean over the pairs of PSNR(clean, filtered), dB.
    pub psnr: f64,
    /// Mean over the pairs of SSIM(clean, filtered).
    pub ssim: f64,
}

/// The parameter grid of each family, in the order the baselines are reported. `noise` is the
/// estimated noise level of the distorted inputs; the colour and NLM strengths scale with it.
fn grids(noise: f32) -> Vec<Vec<Filter>> {
    let gaussian = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0].map(|sigma| Filter::Gaussian { sigma }).to_vec();
    let median = (1..=3).map(|radius| Filter::Median { radius }).collect();
    let bilateral = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|&sigma_space| [1.0f32, 2.0, 3.0].map(|m| Filter::Bilateral { sigma_color: m * noise, sigma_space }))
        .collect();
    // Patches of 3x3 to 7x7 (scikit-image's default is 7x7; Buades et al. use 5x5 at sigma 25).
    let nl_means = [(1usize, 5usize), (1, 7), (2, 5), (2, 7), (3, 5), (3, 7)]
        .iter()
        .flat_map(|&(patch_radius, search_radius)| {
            [0.6f32, 0.8, 1.0, 1.2].map(|m| Filter::NlMeans { h: m * noise, sigma: noise, patch_radius, search_radius })
        })
        .collect();
    vec![gaussian, median, bilateral, nl_means]
}

/// Oracle-tuned classical baselines for an evaluation table.
///
/// pairs: (distorted, clean), each (C, H, W) with matching shapes within a pair. For each family
/// (gaussian, median, bilateral, nl_means) a small grid of settings is run on every distorted
/// image and the setting with the best mean PSNR against the clean images is kept. Choosing on
/// the test pairs themselves favours the baselines, which is the honest direction when claiming a
/// learned restorer beats them. The bilateral colour sigma and the NLM h/sigma are tied to the
/// mean blind noise estimate of the distorted images ([`estimate_noise_sigma`], at least 1).
/// Scores are on the filters' float output (they are weighted means or order statistics of the
/// input, so they stay inside its range). Grid points run in parallel; 42 settings in all.
///
/// Returns one [`Baseline`] per family, in the order above; no pairs give no baselines.
///
/// # Panics
/// If a pair's two images differ in shape: the caller builds the pairs, so that is a bug, not bad
/// input. Images under 11x11 (too small for SSIM's window) report `ssim` as NaN.
pub fn tuned_baselines(pairs: &[(Planar, Planar)]) -> Vec<Baseline> {
    if pairs.is_empty() {
        return Vec::new();
    }
    for (i, (d, c)) in pairs.iter().enumerate() {
        assert!(
            (d.channels, d.height, d.width) == (c.channels, c.height, c.width),
            "tuned_baselines: pair {i}: distorted is {}x{}x{} but clean is {}x{}x{} (CxHxW)",
            d.channels,
            d.height,
            d.width,
            c.channels,
            c.height,
            c.width
        );
    }
    let noise = (pairs.iter().map(|(d, _)| f64::from(estimate_noise_sigma(d))).sum::<f64>() / pairs.len() as f64)
        .max(1.0) as f32;

    let n = pairs.len() as f64;
    let score = |filter: &Filter| -> (f64, f64) {
        let (mut p, mut s) = (0.0, 0.0);
        for (distorted, clean) in pairs {
            let out = filter.apply(distorted);
            p += psnr(clean, &out).expect("shapes checked above");
            s += ssim(clean, &out).unwrap_or(f64::NAN);
        }
        (p / n, s / n)
    };

    grids(noise)
        .into_iter()
        .map(|grid| {
            let scored: Vec<(Filter, (f64, f64))> = grid.par_iter().map(|f| (*f, score(f))).collect();
            let (filter, (psnr, ssim)) = scored
                .into_iter()
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                .expect("every grid has at least one setting");
            Baseline { name: filter.name().to_string(), filter, psnr, ssim }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;

    fn add_noise(img: &Planar, sigma: f32, seed: u64) -> Planar {
        let mut rng = SeededRng::new(seed);
        Planar { data: img.data.iter().map(|&v| v + sigma * rng.normal()).collect(), ..img.clone() }
    }

    /// Smooth shapes on a gradient: a disc, a rectangle and a ramp, different per channel.
    /// (3, h, w)
    fn shapes(h: usize, w: usize) -> Planar {
        let mut img = Planar::zeros(3, h, w);
        for c in 0..3 {
            let plane = img.plane_mut(c);
            for y in 0..h {
                for x in 0..w {
                    let (fy, fx) = (y as f32 / h as f32, x as f32 / w as f32);
                    let mut v = 60.0 + 60.0 * fx + 20.0 * c as f32;
                    if (fx - 0.35).powi(2) + (fy - 0.4).powi(2) < 0.05 {
                        v = 200.0 - 30.0 * c as f32;
                    }
                    if (0.55..0.9).contains(&fx) && (0.6..0.85).contains(&fy) {
                        v = 30.0 + 50.0 * c as f32;
                    }
                    plane[y * w + x] = v;
                }
            }
        }
        img
    }

    #[test]
    fn gaussian_of_constant_is_constant() {
        let img = Planar::new(3, 9, 13, vec![117.0; 3 * 9 * 13]).unwrap();
        for sigma in [0.5, 1.5, 4.0] {
            let out = gaussian(&img, sigma);
            assert!(out.data.iter().all(|&v| (v - 117.0).abs() < 1e-4), "sigma {sigma}");
        }
    }

    #[test]
    fn gaussian_preserves_mean_and_smooths_an_impulse() {
        // Reflect borders conserve the total for an impulse away from the edges.
        let mut img = Planar::zeros(1, 21, 21);
        img.data[10 * 21 + 10] = 100.0;
        let out = gaussian(&img, 1.0);
        let total: f32 = out.data.iter().sum();
        assert!((total - 100.0).abs() < 1e-3, "{total}");
        assert!(out.data[10 * 21 + 10] < 20.0 && out.data[10 * 21 + 11] > 5.0);
        assert!((out.data[10 * 21 + 11] - out.data[11 * 21 + 10]).abs() < 1e-5);
    }

    #[test]
    fn median_removes_salt_and_pepper_exactly() {
        let (h, w) = (24, 30);
        let mut img = Planar::new(3, h, w, vec![90.0; 3 * h * w]).unwrap();
        // Isolated dots at least 3 apart (incl. the borders), so every 3x3 and 5x5 window holds a
        // clear majority of the flat value.
        let mut rng = SeededRng::new(5);
        for c in 0..3 {
            for y in (0..h).step_by(4) {
                for x in (1..w).step_by(4) {
                    let v = if rng.uniform(0.0, 1.0) < 0.5 { 0.0 } else { 255.0 };
                    img.plane_mut(c)[y * w + x] = v;
                }
            }
        }
        for radius in [1, 2] {
            let out = median(&img, radius);
            assert!(out.data.iter().all(|&v| v == 90.0), "radius {radius}");
        }
    }

    #[test]
    fn median_keeps_a_step_edge() {
        let (h, w) = (10, 12);
        let data: Vec<f32> = (0..h * w).map(|i| if i % w < 6 { 20.0 } else { 220.0 }).collect();
        let img = Planar::new(1, h, w, data).unwrap();
        assert_eq!(median(&img, 2), img);
    }

    /// A vertical step 60 | 190 plus noise: the bilateral filter smooths the flat parts about as
    /// much as a Gaussian of the same spatial sigma, but keeps the edge where the Gaussian smears it.
    #[test]
    fn bilateral_preserves_edges_better_than_gaussian() {
        let (h, w) = (48, 48);
        let clean_data: Vec<f32> = (0..h * w).map(|i| if i % w < w / 2 { 60.0 } else { 190.0 }).collect();
        let clean = Planar::new(1, h, w, clean_data).unwrap();
        let noisy = add_noise(&clean, 10.0, 11);
        let bil = bilateral(&noisy, 30.0, 2.0);
        let gau = gaussian(&noisy, 2.0);

        // Mean squared error against the clean step over a column band.
        let band_mse = |img: &Planar, cols: &dyn Fn(usize) -> bool| {
            let (mut s, mut n) = (0.0f64, 0usize);
            for y in 0..h {
                for x in (0..w).filter(|&x| cols(x)) {
                    s += f64::from(img.data[y * w + x] - clean.data[y * w + x]).powi(2);
                    n += 1;
                }
            }
            s / n as f64
        };
        let near = |x: usize| (w / 2 - 3..w / 2 + 3).contains(&x);
        let flat = |x: usize| (8..w / 2 - 8).contains(&x) || (w / 2 + 8..w - 8).contains(&x);
        let (noisy_flat, bil_flat, gau_flat) = (band_mse(&noisy, &flat), band_mse(&bil, &flat), band_mse(&gau, &flat));
        let (bil_edge, gau_edge) = (band_mse(&bil, &near), band_mse(&gau, &near));
        // Comparable smoothing: both remove most of the noise variance away from the edge.
        assert!(bil_flat < 0.25 * noisy_flat && gau_flat < 0.25 * noisy_flat, "{noisy_flat} {bil_flat} {gau_flat}");
        assert!(bil_flat < 4.0 * gau_flat, "{bil_flat} vs {gau_flat}");
        // At the edge the Gaussian's error is far larger.
        assert!(bil_edge * 10.0 < gau_edge, "edge mse: bilateral {bil_edge}, gaussian {gau_edge}");
    }

    #[test]
    fn nl_means_beats_the_noisy_input_and_the_best_gaussian() {
        let clean = shapes(96, 96);
        let noisy = add_noise(&clean, 25.0, 7);
        let input_psnr = psnr(&clean, &noisy).unwrap();
        let nlm = nl_means(&noisy, 0.8 * 25.0, 25.0, 1, 7);
        let nlm_psnr = psnr(&clean, &nlm).unwrap();
        let best_gaussian = [0.5f32, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
            .iter()
            .map(|&s| psnr(&clean, &gaussian(&noisy, s)).unwrap())
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(nlm_psnr >= input_psnr + 5.0, "nl_means {nlm_psnr} dB vs input {input_psnr} dB");
        assert!(nlm_psnr > best_gaussian, "nl_means {nlm_psnr} dB vs best gaussian {best_gaussian} dB");
    }

    #[test]
    fn nl_means_leaves_a_constant_image_alone() {
        let img = Planar::new(3, 20, 20, vec![42.0; 1200]).unwrap();
        let out = nl_means(&img, 10.0, 5.0, 1, 3);
        assert!(out.data.iter().all(|&v| (v - 42.0).abs() < 1e-4));
    }

    #[test]
    fn noise_estimate_tracks_the_added_noise() {
        let clean = shapes(96, 96);
        let est = estimate_noise_sigma(&add_noise(&clean, 20.0, 3));
        assert!((17.0..25.0).contains(&est), "{est}");
        assert!(estimate_noise_sigma(&clean) < 5.0);
    }

    #[test]
    fn tuned_baselines_beat_the_noisy_input() {
        let clean = shapes(48, 56);
        let pairs: Vec<(Planar, Planar)> = (0..2).map(|i| (add_noise(&clean, 20.0, 100 + i), clean.clone())).collect();
        let input_psnr = pairs.iter().map(|(d, c)| psnr(c, d).unwrap()).sum::<f64>() / 2.0;
        let input_ssim = pairs.iter().map(|(d, c)| ssim(c, d).unwrap()).sum::<f64>() / 2.0;
        let baselines = tuned_baselines(&pairs);
        let names: Vec<&str> = baselines.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["gaussian", "median", "bilateral", "nl_means"]);
        for b in &baselines {
            assert_eq!(b.name, b.filter.name());
            assert!(b.psnr > input_psnr + 1.0, "{} {} vs input {input_psnr}", b.filter, b.psnr);
            assert!(b.ssim > input_ssim, "{} {} vs input {input_ssim}", b.filter, b.ssim);
        }
        // The reported scores are those of the chosen setting.
        let best = baselines.iter().max_by(|a, b| a.psnr.total_cmp(&b.psnr)).unwrap();
        let again = pairs.iter().map(|(d, c)| psnr(c, &best.filter.apply(d)).unwrap()).sum::<f64>() / 2.0;
        assert!((again - best.psnr).abs() < 1e-9);
    }

    #[test]
    fn tuned_baselines_of_nothing_is_empty() {
        assert!(tuned_baselines(&[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "distorted is 3x16x16 but clean is 1x16x16")]
    fn tuned_baselines_panic_on_mismatched_pairs() {
        tuned_baselines(&[(Planar::zeros(3, 16, 16), Planar::zeros(1, 16, 16))]);
    }

    #[test]
    fn filter_names_and_display() {
        let f = Filter::NlMeans { h: 20.0, sigma: 25.0, patch_radius: 1, search_radius: 7 };
        assert_eq!(f.name(), "nl_means");
        assert_eq!(f.to_string(), "nl_means(h=20.0, sigma=25.0, patch_radius=1, search_radius=7)");
        assert_eq!(Filter::Median { radius: 2 }.name(), "median");
        assert_eq!(Filter::Gaussian { sigma: 1.0 }.name(), "gaussian");
        assert_eq!(Filter::Bilateral { sigma_color: 1.0, sigma_space: 1.0 }.name(), "bilateral");
    }
}
