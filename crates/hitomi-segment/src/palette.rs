//! Class colours for masks and overlays: the PASCAL VOC colour map (bits of the class id spread over
//! R, G and B), which every segmentation tool draws with, so hitomi's pictures read the same.

use image::Rgb;

/// Colour of class `id` in the VOC colour map (0 = black).
pub fn class_color(id: u8) -> Rgb<u8> {
    let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
    let mut c = id;
    for j in 0..8 {
        r |= (c & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
    }
    Rgb([r, g, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_colours() {
        assert_eq!(class_color(0), Rgb([0, 0, 0]));
        assert_eq!(class_color(1), Rgb([128, 0, 0]));
        assert_eq!(class_color(2), Rgb([0, 128, 0]));
        assert_eq!(class_color(15), Rgb([192, 128, 128]));
    }
}
