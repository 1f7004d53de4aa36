//! Image quality: PSNR and SSIM as scikit-image defines them.
//!
//! Both take [`Planar`] images (C, H, W) on the 0..255 scale, so `data_range` is fixed at 255, and
//! accumulate in f64 so that they reproduce `skimage.metrics` to about 1e-12 (see
//! `tests/golden_quality.rs`).

use anyhow::{bail, Result};
use hitomi_data::Planar;

use hitomi_data::gaussian::gaussian_plane_f64;

/// The dynamic range of a [`Planar`] image (its values live on 0..255).
pub const DATA_RANGE: f64 = 255.0;

/// SSIM Gaussian window: sigma 1.5 truncated at 3.5 sigma, i.e. radius 5 and an 11x11 window.
const SSIM_SIGMA: f64 = 1.5;
const SSIM_TRUNCATE: f64 = 3.5;
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;

/// `skimage.metrics.peak_signal_noise_ratio(reference, test, data_range=255)`:
/// `10 log10(255^2 / MSE)` with the MSE over all pixels and channels.
///
/// reference, test: (C, H, W) of the same shape. Identical images have MSE 0 and give
/// `f64::INFINITY` (scikit-image returns `inf` too, with a divide-by-zero warning); callers that
/// average PSNR over a data set should decide how to treat that case.
pub fn psnr(reference: &Planar, test: &Planar) -> Result<f64> {
    check_same_shape(reference, test)?;
    let mse = mse(reference, test);
    Ok(if mse == 0.0 { f64::INFINITY } else { 10.0 * (DATA_RANGE * DATA_RANGE / mse).log10() })
}

/// Mean squared error over all pixels and channels, in f64. Shapes must already match.
fn mse(reference: &Planar, test: &Planar) -> f64 {
    let sum: f64 = reference
        .data
        .iter()
        .zip(&test.data)
        .map(|(&a, &b)| {
            let d = f64::from(a) - f64::from(b);
            d * d
        })
        .sum();
    sum / reference.data.len() as f64
}

/// `skimage.metrics.structural_similarity(reference, test, gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False, data_range=255[, channel_axis=...])`.
///
/// reference, test: (C, H, W) of the same shape with H, W >= 11 (scikit-image refuses images
/// smaller than the window). Local statistics come from an 11x11 Gaussian (sigma 1.5, truncate
/// 3.5) applied to the whole image with `scipy.ndimage` 'reflect' borders; the SSIM map is then
/// averaged over pixels at least 5 from every border. With several channels the result is the
/// mean of the per-channel SSIMs. Returns a value in [-1, 1]; identical images give 1.
pub fn ssim(reference: &Planar, test: &Planar) -> Result<f64> {
    check_same_shape(reference, test)?;
    let radius = gaussian_radius();
    let win = 2 * radius + 1;
    if reference.height < win || reference.width < win {
        bail!("ssim: image {}x{} is smaller than the {win}x{win} Gaussian window", reference.height, reference.width);
    }
    let total: f64 = (0..reference.channels)
        .map(|c| ssim_plane(reference.plane(c), test.plane(c), reference.height, reference.width, radius))
        .sum();
    Ok(total / reference.channels as f64)
}

/// The window radius scikit-image derives: `int(truncate * sigma + 0.5)`.
fn gaussian_radius() -> usize {
    (SSIM_TRUNCATE * SSIM_SIGMA + 0.5) as usize
}

/// Mean SSIM of one (H, W) plane pair, cropped by `radius` on every side.
fn ssim_plane(x: &[f32], y: &[f32], h: usize, w: usize, radius: usize) -> f64 {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    let blur = |p: &[f64]| gaussian_plane_f64(p, h, w, SSIM_SIGMA, radius);
    let (ux, uy, uxx, uyy, uxy) = (blur(&x), blur(&y), blur(&xx), blur(&yy), blur(&xy));

    let c1 = (SSIM_K1 * DATA_RANGE).powi(2);
    let c2 = (SSIM_K2 * DATA_RANGE).powi(2);
    let mut sum = 0.0f64;
    for r in radius..h - radius {
        for col in radius..w - radius {
            let i = r * w + col;
            // Population (co)variances: use_sample_covariance=False means cov_norm = 1.
            let vx = uxx[i] - ux[i] * ux[i];
            let vy = uyy[i] - uy[i] * uy[i];
            let vxy = uxy[i] - ux[i] * uy[i];
            let a1 = 2.0 * ux[i] * uy[i] + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
            let b2 = vx + vy + c2;
            sum += (a1 * a2) / (b1 * b2);
        }
    }
    sum / ((h - 2 * radius) * (w - 2 * radius)) as f64
}

fn check_same_shape(reference: &Planar, test: &Planar) -> Result<()> {
    let shape = |p: &Planar| (p.channels, p.height, p.width);
    if shape(reference) != shape(test) {
        let (rc, rh, rw) = shape(reference);
        let (tc, th, tw) = shape(test);
        bail!("image quality: reference is {rc}x{rh}x{rw} (CxHxW) but test is {tc}x{th}x{tw}; they must match");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;

    fn ramp(channels: usize, h: usize, w: usize) -> Planar {
        let data = (0..channels * h * w).map(|i| ((i * 37) % 251) as f32).collect();
        Planar::new(channels, h, w, data).unwrap()
    }

    fn noisy(img: &Planar, sigma: f32, seed: u64) -> Planar {
        let mut rng = SeededRng::new(seed);
        let data = img.data.iter().map(|&v| v + sigma * rng.normal()).collect();
        Planar { data, ..img.clone() }
    }

    #[test]
    fn psnr_of_known_mse() {
        let a = Planar::new(1, 4, 4, vec![10.0; 16]).unwrap();
        let b = Planar::new(1, 4, 4, vec![15.0; 16]).unwrap();
        let expected = 10.0 * (255.0f64 * 255.0 / 25.0).log10();
        assert!((psnr(&a, &b).unwrap() - expected).abs() < 1e-12);
        // Half the pixels off by 10: MSE = 50.
        let mut c = a.clone();
        for v in c.data.iter_mut().step_by(2) {
            *v += 10.0;
        }
        let expected = 10.0 * (255.0f64 * 255.0 / 50.0).log10();
        assert!((psnr(&a, &c).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn psnr_of_identical_is_infinite() {
        let a = ramp(3, 8, 9);
        assert_eq!(psnr(&a, &a).unwrap(), f64::INFINITY);
    }

    #[test]
    fn ssim_of_identical_is_one() {
        for c in [1, 3] {
            let a = ramp(c, 20, 23);
            assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn ssim_decreases_with_noise() {
        let a = ramp(3, 32, 40);
        let s5 = ssim(&a, &noisy(&a, 5.0, 1)).unwrap();
        let s20 = ssim(&a, &noisy(&a, 20.0, 2)).unwrap();
        let s60 = ssim(&a, &noisy(&a, 60.0, 3)).unwrap();
        assert!(s5 < 1.0 && s20 < s5 && s60 < s20, "{s5} {s20} {s60}");
    }

    #[test]
    fn mismatch_is_an_error_naming_both_shapes() {
        let a = ramp(3, 16, 16);
        for b in [ramp(1, 16, 16), ramp(3, 16, 17), ramp(3, 15, 16)] {
            for err in [psnr(&a, &b).unwrap_err(), ssim(&a, &b).unwrap_err()] {
                let msg = err.to_string();
                assert!(msg.contains("3x16x16"), "{msg}");
                assert!(msg.contains(&format!("{}x{}x{}", b.channels, b.height, b.width)), "{msg}");
            }
        }
    }

    #[test]
    fn ssim_rejects_images_smaller_than_the_window() {
        let a = ramp(1, 10, 30);
        assert!(ssim(&a, &a).unwrap_err().to_string().contains("11x11"));
    }
}
