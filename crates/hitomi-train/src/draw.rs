//! Text and shapes on images for annotated outputs, with the bundled DejaVu Sans font.

use std::sync::Once;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};

/// DejaVu Sans (assets/fonts, Bitstream Vera license), embedded so binaries need no font files.
pub static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

pub fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT_BYTES).expect("bundled font is valid")
}

/// Makes the font known to plotters under the family name "sans-serif".
pub fn register_plot_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT_BYTES);
    });
}

/// Draws `text` at (x, y) with a filled background box for legibility.
pub fn label(img: &mut RgbImage, x: i32, y: i32, size: f32, text: &str, fg: Rgb<u8>, bg: Rgb<u8>) {
    let f = font();
    let scale = PxScale::from(size);
    let (w, h) = imageproc::drawing::text_size(scale, &f, text);
    let rect = imageproc::rect::Rect::at(x, y).of_size(w + 4, h + 4);
    imageproc::drawing::draw_filled_rect_mut(img, rect, bg);
    imageproc::drawing::draw_text_mut(img, fg, x + 2, y + 2, scale, &f, text);
}
