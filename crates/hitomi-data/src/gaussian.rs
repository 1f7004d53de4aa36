//! Border handling and Gaussian smoothing shared by distortions, classical filters and SSIM:
//! scipy.ndimage's 'reflect' borders and its separable Gaussian, computed in f64.

use rayon::prelude::*;

/// Index `i` (possibly outside `0..n`) mirrored into `0..n` the way scipy.ndimage's 'reflect'
/// mode does (half-sample symmetric, periodic with period 2n), so any overhang is valid.
pub fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let m = i.rem_euclid(2 * n);
    (if m < n { m } else { 2 * n - 1 - m }) as usize
}

/// Normalised 1-D Gaussian taps `exp(-x^2 / (2 sigma^2))` for x in -radius..=radius.
fn gaussian_kernel(sigma: f64, radius: usize) -> Vec<f64> {
    let r = radius as isize;
    let taps: Vec<f64> = (-r..=r).map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp()).collect();
    let sum: f64 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

/// Separable Gaussian of one plane, as `scipy.ndimage.gaussian_filter(mode='reflect')` computes it
/// (rows first, then columns).
///
/// src: (H, W) row-major; returns (H, W). `radius` is scipy's `int(truncate * sigma + 0.5)`.
pub fn gaussian_plane_f64(src: &[f64], h: usize, w: usize, sigma: f64, radius: usize) -> Vec<f64> {
    if sigma <= 0.0 || radius == 0 {
        return src.to_vec();
    }
    let k = gaussian_kernel(sigma, radius);
    let r = radius as isize;
    // Vertical pass: whole rows at a time, which walks memory in order.
    let mut tmp = vec![0.0f64; h * w];
    tmp.par_chunks_mut(w).enumerate().for_each(|(y, out)| {
        for (j, &kj) in k.iter().enumerate() {
            let sy = reflect(y as isize + j as isize - r, h);
            for (o, &s) in out.iter_mut().zip(&src[sy * w..(sy + 1) * w]) {
                *o += kj * s;
            }
        }
    });
    // Horizontal pass over a mirrored copy of each row, so the inner loop has no index arithmetic.
    let mut out = vec![0.0f64; h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(y, out)| {
        let row = &tmp[y * w..(y + 1) * w];
        let padded: Vec<f64> = (-r..w as isize + r).map(|x| row[reflect(x, w)]).collect();
        for (x, o) in out.iter_mut().enumerate() {
            *o = k.iter().zip(&padded[x..x + k.len()]).map(|(a, b)| a * b).sum();
        }
    });
    out
}

/// `gaussian_plane_f64` for an f32 plane. src: (H, W) -> (H, W).
pub fn gaussian_plane(src: &[f32], h: usize, w: usize, sigma: f32, radius: usize) -> Vec<f32> {
    let p: Vec<f64> = src.iter().map(|&v| f64::from(v)).collect();
    gaussian_plane_f64(&p, h, w, f64::from(sigma), radius).into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_scipy() {
        // scipy 'reflect' on n = 3, indices -4..8: 2 | 2 1 0 | 0 1 2 | 2 1 0 | 0 1
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
    }

    #[test]
    fn blur_keeps_a_constant_and_the_sum_of_a_dot() {
        let c = gaussian_plane(&[7.0; 35], 5, 7, 1.5, 4);
        assert!(c.iter().all(|v| (v - 7.0).abs() < 1e-5));
        let mut dot = vec![0.0f32; 21 * 21];
        dot[10 * 21 + 10] = 100.0;
        let b = gaussian_plane(&dot, 21, 21, 1.0, 4);
        assert!((b.iter().sum::<f32>() - 100.0).abs() < 1e-3);
        assert!(b[10 * 21 + 10] < 20.0 && b[10 * 21 + 11] > 5.0);
    }
}
