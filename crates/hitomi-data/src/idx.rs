//! MNIST IDX files (`*-images-idx3-ubyte`, `*-labels-idx1-ubyte`), raw or gzip, read with checks of
//! the magic number and of the counts against the bytes actually present.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;

/// IDX magic of unsigned-byte data with 3 dimensions (N, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of unsigned-byte data with 1 dimension (N).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Largest payload accepted (4 GiB) so a corrupt header cannot make us read without end.
const MAX_PAYLOAD: u64 = 1 << 32;

/// The contents of an IDX3 ubyte image file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    /// (N, rows, cols) row-major, 0 = background.
    pub pixels: Vec<u8>,
}

/// Reads an IDX3 ubyte image file (gzip detected by its magic bytes `1f 8b`, not by the extension).
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let mut r = IdxReader::open(path)?;
    r.magic(IMAGES_MAGIC, "an IDX3 ubyte image file such as train-images-idx3-ubyte")?;
    let n = r.u32("image count")? as usize;
    let rows = r.u32("row count")? as usize;
    let cols = r.u32("column count")? as usize;
    if n > 0 && (rows == 0 || cols == 0) {
        bail!("{}: header says {n} images of {rows}x{cols} pixels; expected both sides > 0", r.name);
    }
    let what = format!("{n} images of {rows}x{cols} pixels");
    let pixels = r.payload(n as u64 * rows as u64 * cols as u64, &what)?;
    Ok(IdxImages { n, rows, cols, pixels })
}

/// Reads an IDX1 ubyte label file (gzip detected by its magic bytes `1f 8b`, not by the extension).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let mut r = IdxReader::open(path)?;
    r.magic(LABELS_MAGIC, "an IDX1 ubyte label file such as train-labels-idx1-ubyte")?;
    let n = r.u32("label count")? as u64;
    r.payload(n, &format!("{n} labels"))
}

/// A byte stream over a raw or gzip IDX file that names the file in every error.
struct IdxReader {
    name: String,
    gz: bool,
    inner: Box<dyn Read>,
    /// Bytes consumed so far (decompressed), for error messages.
    pos: u64,
}

impl IdxReader {
    fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let mut file = File::open(path).with_context(|| format!("{name}: cannot open IDX file"))?;
        let mut head = [0u8; 2];
        let got = read_full(&mut file, &mut head).with_context(|| format!("{name}: cannot read"))?;
        let gz = got == 2 && head == [0x1f, 0x8b];
        // Re-open rather than seek so the gzip decoder sees the stream from its first byte.
        let file = File::open(path).with_context(|| format!("{name}: cannot open IDX file"))?;
        let inner: Box<dyn Read> =
            if gz { Box::new(MultiGzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) };
        Ok(Self { name, gz, inner, pos: 0 })
    }

    fn kind(&self) -> &'static str {
        if self.gz {
            "decompressed gzip stream"
        } else {
            "file"
        }
    }

    /// Reads into `buf` until full or end of stream; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let got = read_full(&mut self.inner, buf).map_err(|e| {
            anyhow::anyhow!(
                "{}: read failed after {} bytes ({e}); the {} is truncated or corrupt",
                self.name,
                self.pos,
                if self.gz { "gzip file" } else { "file" }
            )
        })?;
        self.pos += got as u64;
        Ok(got)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        let at = self.pos;
        if self.fill(&mut b)? < 4 {
            bail!(
                "{}: {} ends at byte {} inside the header ({what} at byte {at}); expected a 4-byte big-endian {what}",
                self.name,
                self.kind(),
                self.pos
            );
        }
        Ok(u32::from_be_bytes(b))
    }

    fn magic(&mut self, expected: u32, what: &str) -> Result<()> {
        let m = self.u32("magic number")?;
        if m != expected {
            let hint = match m {
                IMAGES_MAGIC => " (this is an IDX3 image file)",
                LABELS_MAGIC => " (this is an IDX1 label file)",
                _ if m >> 16 != 0 => " (not an IDX file)",
                _ => "",
            };
            bail!("{}: magic number 0x{m:08x}{hint}; expected 0x{expected:08x}, {what}", self.name);
        }
        Ok(())
    }

    /// Reads exactly `len` payload bytes and checks that nothing follows them.
    fn payload(&mut self, len: u64, what: &str) -> Result<Vec<u8>> {
        if len > MAX_PAYLOAD {
            bail!("{}: header says {what} = {len} bytes; expected at most {MAX_PAYLOAD} bytes", self.name);
        }
        let header = self.pos;
        // Grow with the data rather than trusting the header for one big allocation.
        let mut data = Vec::with_capacity(len.min(64 << 20) as usize);
        let got = (&mut self.inner).take(len).read_to_end(&mut data).map_err(|e| {
            anyhow::anyhow!(
                "{}: read failed after {} bytes ({e}); expected {what} ({len} bytes after the {header}-byte header): the file is truncated or corrupt",
                self.name,
                header + data.len() as u64,
            )
        })? as u64;
        self.pos += got;
        if got < len {
            bail!(
                "{}: truncated: header says {what} ({len} bytes after the {header}-byte header) but the {} holds only {got}",
                self.name,
                self.kind()
            );
        }
        let extra = std::io::copy(&mut (&mut self.inner).take(MAX_PAYLOAD), &mut std::io::sink()).map_err(|e| {
            anyhow::anyhow!(
                "{}: read failed after the {what} ({e}); the {} is truncated or corrupt",
                self.name,
                if self.gz { "gzip file" } else { "file" }
            )
        })?;
        if extra > 0 {
            bail!(
                "{}: {extra} bytes beyond the {what} the header announces ({} bytes expected in all); \
                 the count in the header does not match the {}",
                self.name,
                header + len,
                self.kind()
            );
        }
        Ok(data)
    }
}

/// Like `read_exact` but reports a short read as a count instead of an error.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
