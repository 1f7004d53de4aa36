//! Anomaly heat maps drawn over the image: a fixed colour scale (the model's calibrated pixel
//! scale), so colours mean the same score in every picture, unlike per-image normalisation.

use image::{Rgb, RgbImage};

/// The "jet" colour map at t in [0, 1] (blue - cyan - yellow - red).
pub fn jet(t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    let ch = |c: f32| ((1.5 - (4.0 * t - c).abs()).clamp(0.0, 1.0) * 255.0) as u8;
    Rgb([ch(3.0), ch(2.0), ch(1.0)])
}

/// The image with the map blended over it (alpha growing with the score) beside the plain image.
/// gray: (H * W) u8 of the image as the model saw it; map: (H * W) scores; scale: score shown red.
pub fn overlay(gray: &[u8], map: &[f32], h: usize, w: usize, scale: f32, upscale: u32) -> RgbImage {
    let (ow, oh) = (w as u32 * upscale, h as u32 * upscale);
    let mut out = RgbImage::new(2 * ow + 4, oh);
    for y in 0..oh {
        for x in 0..ow {
            let i = (y / upscale) as usize * w + (x / upscale) as usize;
            let g = gray[i];
            out.put_pixel(x, y, Rgb([g, g, g]));
            let t = map[i] / scale;
            let c = jet(t).0;
            let a = 0.25 + 0.5 * t.clamp(0.0, 1.0);
            let blend = |k: usize| (g as f32 * (1.0 - a) + c[k] as f32 * a) as u8;
            out.put_pixel(ow + 4 + x, y, Rgb([blend(0), blend(1), blend(2)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_ends() {
        assert_eq!(jet(0.0), Rgb([0, 0, 127]));
        assert_eq!(jet(1.0), Rgb([127, 0, 0]));
        assert_eq!(jet(0.5), Rgb([127, 255, 127]));
    }
}
