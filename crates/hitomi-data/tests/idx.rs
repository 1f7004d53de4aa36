//! IDX reading on the bundled MNIST files, raw and gzip, and the named errors of broken files.

mod common;

use common::{gunzip, gzip, mnist_dir, TempDir};
use hitomi_data::idx::{read_idx_images, read_idx_labels};

fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn bundled_mnist_has_the_documented_counts() {
    let d = mnist_dir();
    let train = read_idx_images(&d.join("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((train.n, train.rows, train.cols, train.pixels.len()), (7000, 28, 28, 7000 * 784));
    let labels = read_idx_labels(&d.join("train-labels-idx1-ubyte.gz")).unwrap();
    let mut counts = [0usize; 10];
    for &l in &labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [709, 790, 698, 744, 679, 610, 709, 732, 666, 663]);
    let test = read_idx_images(&d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((test.n, test.rows, test.cols), (1000, 28, 28));
    assert_eq!(read_idx_labels(&d.join("t10k-labels-idx1-ubyte.gz")).unwrap().len(), 1000);
    // Digits are dark background with bright strokes.
    assert_eq!(train.pixels[0], 0);
    assert!(train.pixels.contains(&255));
}

#[test]
fn raw_and_gzip_are_told_apart_by_content_not_name() {
    let d = mnist_dir();
    let t = TempDir::new("idx-raw");
    let raw = gunzip(&d.join("t10k-images-idx3-ubyte.gz"));
    let gz_images = read_idx_images(&d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let p = t.write("t10k-images-idx3-ubyte", &raw);
    assert_eq!(read_idx_images(&p).unwrap(), gz_images);
    // Misleading extensions both ways still read.
    let p = t.write("gzip-without-extension", &gzip(&raw));
    assert_eq!(read_idx_images(&p).unwrap(), gz_images);
    let p = t.write("raw-named.gz", &raw);
    assert_eq!(read_idx_images(&p).unwrap(), gz_images);
    let labels = gunzip(&d.join("t10k-labels-idx1-ubyte.gz"));
    let p = t.write("t10k-labels-idx1-ubyte", &labels);
    assert_eq!(read_idx_labels(&p).unwrap(), read_idx_labels(&d.join("t10k-labels-idx1-ubyte.gz")).unwrap());
}

#[test]
fn wrong_magic_is_named() {
    let d = mnist_dir();
    let t = TempDir::new("idx-magic");
    let labels = gunzip(&d.join("t10k-labels-idx1-ubyte.gz"));
    let p = t.write("swapped-labels", &labels);
    let e = err(read_idx_images(&p));
    assert!(e.contains("swapped-labels") && e.contains("0x00000801") && e.contains("expected 0x00000803"), "{e}");
    assert!(e.contains("label file"), "{e}");
    let images = gunzip(&d.join("t10k-images-idx3-ubyte.gz"));
    let e = err(read_idx_labels(&t.write("swapped-images", &images)));
    assert!(e.contains("swapped-images") && e.contains("expected 0x00000801"), "{e}");
    let e = err(read_idx_labels(&t.write("text.idx", b"hello, this is not IDX")));
    assert!(e.contains("text.idx") && e.contains("not an IDX file"), "{e}");
    let e = err(read_idx_labels(&t.write("empty.idx", b"")));
    assert!(e.contains("empty.idx") && e.contains("header"), "{e}");
    let e = err(read_idx_images(&t.path().join("missing")));
    assert!(e.contains("missing") && e.contains("cannot open"), "{e}");
}

#[test]
fn truncated_and_excess_bytes_are_errors() {
    let d = mnist_dir();
    let t = TempDir::new("idx-count");
    let raw = gunzip(&d.join("t10k-images-idx3-ubyte.gz"));

    let e = err(read_idx_images(&t.write("short", &raw[..raw.len() - 100])));
    assert!(e.contains("short") && e.contains("truncated") && e.contains("1000 images of 28x28"), "{e}");
    assert!(e.contains(&format!("holds only {}", raw.len() - 100 - 16)), "{e}");

    let mut long = raw.clone();
    long.extend_from_slice(&[0; 5]);
    let e = err(read_idx_images(&t.write("long", &long)));
    assert!(e.contains("long") && e.contains("5 bytes beyond"), "{e}");

    // A header count that disagrees with the data: says 999 images, holds 1000.
    let mut lie = raw.clone();
    lie[4..8].copy_from_slice(&999u32.to_be_bytes());
    let e = err(read_idx_images(&t.write("lie", &lie)));
    assert!(e.contains("lie") && e.contains("784 bytes beyond") && e.contains("999 images"), "{e}");

    // Truncated inside the header.
    let e = err(read_idx_images(&t.write("header-only", &raw[..10])));
    assert!(e.contains("header-only") && e.contains("header"), "{e}");

    // A cut gzip stream.
    let gz = std::fs::read(d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let e = err(read_idx_images(&t.write("cut.gz", &gz[..gz.len() / 2])));
    assert!(e.contains("cut.gz") && (e.contains("truncated") || e.contains("corrupt")), "{e}");

    let labels = gunzip(&d.join("t10k-labels-idx1-ubyte.gz"));
    let e = err(read_idx_labels(&t.write("labels-short", &labels[..labels.len() - 1])));
    assert!(e.contains("labels-short") && e.contains("1000 labels") && e.contains("truncated"), "{e}");
}
