//! Colour augmentation of clean training windows: synthetic colour for grey crops (a smooth random
//! chroma field over the luminance) and a random channel order for colour crops.
//!
//! Why: a grey photo is replicated into three identical channels and then noised independently per
//! channel, so on grey crops the best estimate is the channel mean. With most training photos grey
//! the net learns to average channels, which smears colour on colour photos. Natural images keep
//! their detail in luminance and their colour smooth, so a grey crop times a slowly varying gain per
//! channel is a plausible colour image: its edges stay aligned across channels (what the net should
//! exploit) but its channels differ (what it must preserve).

use hitomi_data::Planar;
use rand::Rng;

/// Control points per side of the random chroma field: 3 x 3 over a window gives at most one or
/// two slow colour changes across it, far coarser than the detail, as the chroma of photos is.
const CHROMA_GRID: usize = 3;

/// Range of the field's amplitude (relative gain): drawn per window, so crops range from faintly to
/// clearly coloured; 0.3 is about the saturation of the colour training photos.
const CHROMA_AMPLITUDE: (f32, f32) = (0.1, 0.3);

/// The six orders of three channels, the identity included (a colour crop may stay as it is).
const PERMUTATIONS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/// `window` recoloured: a grey window gets [`synthetic_chroma`], a colour one [`permute_channels`].
/// window: (3, H, W) on 0..255 -> (3, H, W) on 0..255 (8-bit levels for grey windows).
pub fn colour_augment(window: &Planar, grey: bool, rng: &mut impl Rng) -> Planar {
    if grey {
        synthetic_chroma(window, rng)
    } else {
        permute_channels(window, rng)
    }
}

/// Gain `g` applied to level `l` without leaving 0..255: below 1 it darkens towards black
/// (`l g`), above 1 it lightens towards white (`l + (g - 1)(255 - l)`). Both are affine in `l`
/// with a positive slope of at least `1 - |g - 1|`, so an edge keeps its sign and nearly its size,
/// and unlike a plain product nothing clips (clipping would add flat saturated areas to white
/// pages, where noise is no longer zero-mean).
fn apply_gain(l: f32, g: f32) -> f32 {
    if g <= 1.0 {
        l * g
    } else {
        l + (g - 1.0) * (255.0 - l)
    }
}

/// A grey window coloured by a smooth random gain per channel: each channel's gain is
/// 1 + a bilinear interpolation of a [`CHROMA_GRID`]^2 grid of values uniform in (-a, a), with a
/// drawn from [`CHROMA_AMPLITUDE`]. The luminance is the channel mean (the channels of a grey file
/// are equal). Rounded to 8-bit levels like the photos the net is validated on.
/// window: (C, H, W) with C = 1 or 3 -> (3, H, W).
pub fn synthetic_chroma(window: &Planar, rng: &mut impl Rng) -> Planar {
    let (h, w) = (window.height, window.width);
    let hw = h * w;
    let amp = rng.gen_range(CHROMA_AMPLITUDE.0..CHROMA_AMPLITUDE.1);
    let grids: Vec<[f32; CHROMA_GRID * CHROMA_GRID]> =
        (0..3).map(|_| std::array::from_fn(|_| rng.gen_range(-amp..amp))).collect();
    let luma: Vec<f32> = (0..hw)
        .map(|i| (0..window.channels).map(|c| window.data[c * hw + i]).sum::<f32>() / window.channels as f32)
        .collect();
    // Pixel position -> grid coordinate: the grid's corners sit on the window's corners.
    let to_grid = |i: usize, n: usize| if n > 1 { i as f32 * (CHROMA_GRID - 1) as f32 / (n - 1) as f32 } else { 0.0 };
    let mut out = Planar::zeros(3, h, w);
    for (c, grid) in grids.iter().enumerate() {
        let plane = out.plane_mut(c);
        for y in 0..h {
            let gy = to_grid(y, h);
            let (y0, fy) = ((gy as usize).min(CHROMA_GRID - 2), gy - (gy as usize).min(CHROMA_GRID - 2) as f32);
            for x in 0..w {
                let gx = to_grid(x, w);
                let (x0, fx) = ((gx as usize).min(CHROMA_GRID - 2), gx - (gx as usize).min(CHROMA_GRID - 2) as f32);
                let at = |yy: usize, xx: usize| grid[yy * CHROMA_GRID + xx];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
                let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
                let field = top * (1.0 - fy) + bottom * fy;
                plane[y * w + x] = apply_gain(luma[y * w + x], 1.0 + field).round().clamp(0.0, 255.0);
            }
        }
    }
    out
}

/// The three channels in a random order (one of six, uniformly): colour statistics that do not
/// favour the order of the few colour photos. window: (3, H, W) -> (3, H, W).
pub fn permute_channels(window: &Planar, rng: &mut impl Rng) -> Planar {
    let perm = PERMUTATIONS[rng.gen_range(0..PERMUTATIONS.len())];
    let mut out = window.clone();
    for (c, &src) in perm.iter().enumerate() {
        out.plane_mut(c).copy_from_slice(window.plane(src));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;
    use std::collections::HashSet;

    /// A grey (3 identical channels) 40 x 48 window with strong edges: stripes, a disc and a ramp.
    fn grey_window() -> Planar {
        let (h, w) = (40, 48);
        let plane: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f32, (i % w) as f32);
                let stripes = if (x as usize / 6).is_multiple_of(2) { 60.0 } else { 0.0 };
                let disc = if (x - 30.0).powi(2) + (y - 20.0).powi(2) < 64.0 { 90.0 } else { 0.0 };
                (40.0 + stripes + disc + 1.5 * y).min(255.0)
            })
            .collect();
        Planar::new(3, h, w, plane.repeat(3)).unwrap()
    }

    /// Horizontal and vertical differences of plane c, one after the other.
    fn gradients(img: &Planar, c: usize) -> Vec<f32> {
        let (h, w, p) = (img.height, img.width, img.plane(c));
        let dx = (0..h).flat_map(|y| (0..w - 1).map(move |x| p[y * w + x + 1] - p[y * w + x]));
        let dy = (0..h - 1).flat_map(|y| (0..w).map(move |x| p[(y + 1) * w + x] - p[y * w + x]));
        dx.chain(dy).collect()
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() as f32;
        let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn grey_gets_distinct_channels_with_the_same_edges() {
        let grey = grey_window();
        for seed in 0..8 {
            let out = colour_augment(&grey, true, &mut SeededRng::derive(seed, &[]));
            assert_eq!((out.channels, out.height, out.width), (3, grey.height, grey.width));
            assert!(out.data.iter().all(|v| (0.0..=255.0).contains(v) && v.fract() == 0.0), "8-bit levels");
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                let diff = out.plane(a).iter().zip(out.plane(b)).map(|(x, y)| (x - y).abs()).sum::<f32>()
                    / (grey.height * grey.width) as f32;
                assert!(diff > 1.0, "seed {seed}: channels {a} and {b} differ by only {diff} levels on average");
            }
            let g0 = gradients(&grey, 0);
            for c in 0..3 {
                let r = correlation(&g0, &gradients(&out, c));
                assert!(r > 0.95, "seed {seed}: channel {c}'s edges correlate {r} with the grey original");
            }
        }
    }

    #[test]
    fn colour_permutation_keeps_the_channels_and_uses_all_orders() {
        let img = Planar::new(3, 5, 7, (0..105).map(|v| (v * 7 % 256) as f32).collect()).unwrap();
        let planes = |p: &Planar| -> Vec<Vec<u32>> {
            let mut v: Vec<Vec<u32>> = (0..3).map(|c| p.plane(c).iter().map(|x| x.to_bits()).collect()).collect();
            v.sort();
            v
        };
        let mut orders = HashSet::new();
        for seed in 0..60 {
            let out = colour_augment(&img, false, &mut SeededRng::derive(seed, &[]));
            assert_eq!(planes(&out), planes(&img), "seed {seed}: the same three channels");
            orders.insert(out.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
        assert_eq!(orders.len(), 6, "all six channel orders appear");
    }

    #[test]
    fn the_same_stream_gives_the_same_colours() {
        let grey = grey_window();
        let a = colour_augment(&grey, true, &mut SeededRng::derive(3, &[1, 2]));
        let b = colour_augment(&grey, true, &mut SeededRng::derive(3, &[1, 2]));
        let c = colour_augment(&grey, true, &mut SeededRng::derive(3, &[1, 3]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
