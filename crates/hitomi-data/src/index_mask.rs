//! Class-index masks read from PNG as stored: grey values or palette indices, never colours. The
//! `image` crate expands palettes to RGB, so masks are decoded with the `png` crate and no
//! transformations; colour masks are refused because their classes would be guesses.

use std::path::Path;

use anyhow::{bail, Context, Result};
use png::{BitDepth, ColorType, Decoder, Limits, Transformations};

use hitomi_core::image_io::{MAX_ALLOC, MAX_SIDE};

/// A mask of class ids: (height, width, ids row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexMask {
    pub height: usize,
    pub width: usize,
    pub ids: Vec<u8>,
}

/// Unpacks rows of 1-, 2- or 4-bit samples to one byte each.
fn unpack(buf: &[u8], line_size: usize, width: usize, height: usize, bits: usize) -> Vec<u8> {
    let per_byte = 8 / bits;
    let mask = (1u16 << bits) as u8 - 1;
    let mut out = Vec::with_capacity(width * height);
    for row in buf.chunks(line_size).take(height) {
        for x in 0..width {
            let byte = row[x / per_byte];
            let shift = 8 - bits * (x % per_byte + 1);
            out.push((byte >> shift) & mask);
        }
    }
    out
}

/// Decodes PNG bytes as class ids; `name` is used in errors.
pub fn decode_index_mask(bytes: &[u8], name: &str) -> Result<IndexMask> {
    let mut decoder = Decoder::new_with_limits(bytes, Limits { bytes: MAX_ALLOC as usize });
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| anyhow::anyhow!("{name}: not a readable PNG mask ({e})"))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w > MAX_SIDE || h > MAX_SIDE {
        bail!("{name}: mask is {w}x{h}; sides above {MAX_SIDE} are refused");
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(|e| anyhow::anyhow!("{name}: cannot decode PNG mask ({e})"))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let ids = match (frame.color_type, frame.bit_depth) {
        (ColorType::Grayscale | ColorType::Indexed, BitDepth::Eight) => {
            buf.chunks(frame.line_size).take(height).flat_map(|r| r[..width].iter().copied()).collect()
        }
        (ColorType::Grayscale | ColorType::Indexed, d @ (BitDepth::One | BitDepth::Two | BitDepth::Four)) => {
            unpack(&buf, frame.line_size, width, height, d as usize)
        }
        (ColorType::Grayscale, BitDepth::Sixteen) => {
            let mut ids = Vec::with_capacity(width * height);
            for row in buf.chunks(frame.line_size).take(height) {
                for px in row[..2 * width].chunks_exact(2) {
                    let v = u16::from_be_bytes([px[0], px[1]]);
                    if v > 255 {
                        bail!("{name}: 16-bit grey mask holds the value {v}; class ids must be 0..=255 (255 = ignore)");
                    }
                    ids.push(v as u8);
                }
            }
            ids
        }
        (c, _) => bail!(
            "{name}: a {c:?} mask; expected class ids as an 8-bit grey or palette PNG (colour masks are not read \
             as classes: convert them to ids first)"
        ),
    };
    Ok(IndexMask { height, width, ids })
}

/// Reads a mask file as class ids.
pub fn read_index_mask(path: &Path) -> Result<IndexMask> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read mask", path.display()))?;
    decode_index_mask(&bytes, &path.display().to_string())
}

/// Encodes ids as an 8-bit grey PNG.
pub fn encode_index_mask(mask: &IndexMask) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, mask.width as u32, mask.height as u32);
        enc.set_color(ColorType::Grayscale);
        enc.set_depth(BitDepth::Eight);
        enc.write_header()?.write_image_data(&mask.ids)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, color: ColorType, depth: BitDepth, palette: Option<Vec<u8>>, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            if let Some(p) = palette {
                enc.set_palette(p);
            }
            enc.write_header().unwrap().write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn palette_masks_give_indices_not_colours() {
        // Palette: 0 black, 1 red, 2 green; the image crate would turn these into RGB triples.
        let pal = vec![0, 0, 0, 255, 0, 0, 0, 255, 0];
        let png = encode(3, 2, ColorType::Indexed, BitDepth::Eight, Some(pal.clone()), &[0, 1, 2, 2, 1, 0]);
        let m = decode_index_mask(&png, "m.png").unwrap();
        assert_eq!((m.height, m.width, m.ids), (2, 3, vec![0, 1, 2, 2, 1, 0]));
        assert_eq!(image::load_from_memory(&png).unwrap().color(), image::ColorType::Rgb8, "image expands palettes");
        // 2-bit palette, width 3 (a partial last byte per row).
        let png = encode(3, 2, ColorType::Indexed, BitDepth::Two, Some(pal), &[0b00_01_10_00, 0b10_01_00_00]);
        assert_eq!(decode_index_mask(&png, "m.png").unwrap().ids, vec![0, 1, 2, 2, 1, 0]);
    }

    #[test]
    fn grey_round_trips_and_colour_is_refused() {
        let m = IndexMask { height: 2, width: 2, ids: vec![0, 255, 3, 10] };
        assert_eq!(decode_index_mask(&encode_index_mask(&m).unwrap(), "m").unwrap(), m);
        let png = encode(2, 1, ColorType::Grayscale, BitDepth::Sixteen, None, &[0, 7, 1, 0]);
        let e = decode_index_mask(&png, "m16.png").unwrap_err().to_string();
        assert!(e.contains("m16.png") && e.contains("256"), "{e}");
        let png = encode(1, 1, ColorType::Rgb, BitDepth::Eight, None, &[1, 2, 3]);
        let e = decode_index_mask(&png, "rgb.png").unwrap_err().to_string();
        assert!(e.contains("rgb.png") && e.contains("Rgb") && e.contains("grey or palette"), "{e}");
        let e = decode_index_mask(b"nope", "x.png").unwrap_err().to_string();
        assert!(e.contains("x.png"), "{e}");
    }
}
