//! Opening classification datasets (the bundled MNIST, ImageFolder trees written to a temp dir),
//! their bad-input errors, and batches built through the loader.

mod common;

use std::sync::Arc;

use candle_core::Device;
use common::{mnist_dir, png_bytes, TempDir};
use hitomi_data::{classification_batch, AugmentConfig, ClassificationData, Loader, MakeBatch, OpenOptions};
use image::{DynamicImage, GrayImage, RgbImage};

const GREY: OpenOptions = OpenOptions { channels: 1, size: None };

fn open_err(root: &std::path::Path, split: &str, opts: &OpenOptions) -> String {
    format!("{:#}", ClassificationData::open(root, split, opts).unwrap_err())
}

/// A copy of `files` of the bundled MNIST folder in a temp dir.
fn mnist_copy(tag: &str, files: &[(&str, &str)]) -> TempDir {
    let t = TempDir::new(tag);
    for (from, to) in files {
        t.write(to, &std::fs::read(mnist_dir().join(from)).unwrap());
    }
    t
}

#[test]
fn mnist_folder_opens_both_splits() {
    let train = ClassificationData::open(&mnist_dir(), "train", &GREY).unwrap();
    assert_eq!(train.len(), 7000);
    assert_eq!(train.shape(), (1, 28, 28));
    assert_eq!(train.classes, (0..10).map(|c| c.to_string()).collect::<Vec<_>>());
    assert_eq!(train.class_counts(), vec![709, 790, 698, 744, 679, 610, 709, 732, 666, 663]);
    assert_eq!(train.image_u8(3).len(), 784);
    let f = train.image_f32(3);
    assert!(f.iter().all(|v| (0.0..=1.0).contains(v)) && f.contains(&1.0));
    assert!(train.sample_name(3).ends_with("train-images-idx3-ubyte.gz #3"), "{}", train.sample_name(3));
    for split in ["test", "val", "t10k"] {
        assert_eq!(ClassificationData::open(&mnist_dir(), split, &GREY).unwrap().len(), 1000, "{split}");
    }
}

#[test]
fn mnist_converts_to_rgb_and_resizes() {
    let opts = OpenOptions { channels: 3, size: Some((32, 30)) };
    let d = ClassificationData::open(&mnist_dir(), "test", &opts).unwrap();
    assert_eq!((d.len(), d.shape()), (1000, (3, 32, 30)));
    let img = d.image_u8(0);
    let plane = 32 * 30;
    assert_eq!(img[..plane], img[plane..2 * plane]);
    assert_eq!(img[..plane], img[2 * plane..]);
    let same = ClassificationData::open(&mnist_dir(), "test", &OpenOptions { channels: 1, size: Some((28, 28)) });
    assert_eq!(same.unwrap().image_u8(5), ClassificationData::open(&mnist_dir(), "test", &GREY).unwrap().image_u8(5));
}

#[test]
fn a_folder_with_only_t10k_files_serves_the_test_split() {
    let t = mnist_copy(
        "only-t10k",
        &[
            ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
            ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ],
    );
    assert_eq!(ClassificationData::open(t.path(), "test", &GREY).unwrap().len(), 1000);
    let e = open_err(t.path(), "train", &GREY);
    assert!(e.contains("train-images-idx3-ubyte[.gz]") && e.contains("ImageFolder"), "{e}");
    assert!(e.contains("found: t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn raw_idx_files_open_too() {
    let t = TempDir::new("raw-mnist");
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        t.write(f, &common::gunzip(&mnist_dir().join(format!("{f}.gz"))));
    }
    let raw = ClassificationData::open(t.path(), "test", &GREY).unwrap();
    let gz = ClassificationData::open(&mnist_dir(), "test", &GREY).unwrap();
    assert_eq!(raw.labels, gz.labels);
    assert_eq!(raw.image_u8(999), gz.image_u8(999));
}

#[test]
fn image_and_label_counts_must_agree() {
    let t = mnist_copy(
        "count-mismatch",
        &[
            ("t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
            ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ],
    );
    let e = open_err(t.path(), "train", &GREY);
    assert!(e.contains("1000 images") && e.contains("7000 labels") && e.contains("train-labels-idx1-ubyte.gz"), "{e}");
    let t = mnist_copy("labels-missing", &[("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")]);
    let e = open_err(t.path(), "test", &GREY);
    assert!(e.contains("no label file") && e.contains("t10k-labels-idx1-ubyte"), "{e}");
}

#[test]
fn neither_layout_lists_both() {
    let t = TempDir::new("nothing");
    t.write("readme.txt", b"hi");
    let e = open_err(t.path(), "train", &GREY);
    for want in
        ["train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]", "/train/<class>/*.png", "found: readme.txt"]
    {
        assert!(e.contains(want), "missing `{want}` in: {e}");
    }
    let e = open_err(&t.path().join("absent"), "train", &GREY);
    assert!(e.contains("absent") && e.contains("no such folder"), "{e}");
    let e = open_err(t.path(), "train", &OpenOptions { channels: 2, size: None });
    assert!(e.contains("channels = 2"), "{e}");
}

/// An ImageFolder tree of MNIST test digits: `split/<digit name>/<index>.png`.
fn digit_tree(t: &TempDir, split: &str, per_class: usize) -> ClassificationData {
    let src = ClassificationData::open(&mnist_dir(), "test", &GREY).unwrap();
    let names = ["zero", "one", "two"];
    let mut written = [0; 3];
    for i in 0..src.len() {
        let l = src.labels[i];
        if l < 3 && written[l] < per_class {
            written[l] += 1;
            let img = GrayImage::from_raw(28, 28, src.image_u8(i).to_vec()).unwrap();
            t.write(&format!("{split}/{}/{i:04}.png", names[l]), &png_bytes(&DynamicImage::ImageLuma8(img)));
        }
    }
    src
}

#[test]
fn image_folder_loads_classes_labels_and_pixels() {
    let t = TempDir::new("folder");
    let src = digit_tree(&t, "train", 4);
    t.write("train/one/notes.txt", b"ignored: not an image");
    t.write("train/.hidden/x.png", b"ignored: hidden folder");
    let d = ClassificationData::open(t.path(), "train", &GREY).unwrap();
    // Sorted folder names, not digit order.
    assert_eq!(d.classes, vec!["one", "two", "zero"]);
    assert_eq!(d.len(), 12);
    assert_eq!(d.class_counts(), vec![4, 4, 4]);
    assert_eq!(d.shape(), (1, 28, 28));
    for i in 0..d.len() {
        let name = d.sample_name(i);
        let stem: usize = name.rsplit('/').next().unwrap().trim_end_matches(".png").parse().unwrap();
        assert_eq!(d.image_u8(i), src.image_u8(stem), "{name}");
        assert_eq!(src.labels[stem], [1, 2, 0][d.labels[i]], "{name}");
    }
    let sub = d.subset(&[11, 0]);
    assert_eq!(sub.labels, vec![d.labels[11], d.labels[0]]);
    assert_eq!(sub.image_u8(0), d.image_u8(11));
    assert_eq!(sub.sample_name(1), d.sample_name(0));

    // RGB conversion and resizing of the same tree.
    let rgb = ClassificationData::open(t.path(), "train", &OpenOptions { channels: 3, size: Some((16, 16)) }).unwrap();
    assert_eq!((rgb.len(), rgb.shape()), (12, (3, 16, 16)));
}

#[test]
fn val_and_test_folders_stand_in_for_each_other() {
    let t = TempDir::new("val-test");
    digit_tree(&t, "test", 2);
    assert_eq!(ClassificationData::open(t.path(), "val", &GREY).unwrap().len(), 6);
    assert_eq!(ClassificationData::open(t.path(), "test", &GREY).unwrap().len(), 6);
    assert!(ClassificationData::open(t.path(), "train", &GREY).is_err());
}

#[test]
fn rgb_jpeg_and_mixed_sizes() {
    let t = TempDir::new("mixed");
    let a = RgbImage::from_fn(20, 10, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 200]));
    t.write("train/a/big.png", &png_bytes(&DynamicImage::ImageRgb8(a.clone())));
    t.write("train/a/big2.png", &png_bytes(&DynamicImage::ImageRgb8(a)));
    let mut jpg = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 6, image::Rgb([10, 200, 30])))
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    t.write("train/b/small.JPG", &jpg);
    let e = open_err(t.path(), "train", &OpenOptions { channels: 3, size: None });
    assert!(e.contains("differ in size") && e.contains("small.JPG: 6x8") && !e.contains("big.png"), "{e}");
    let d = ClassificationData::open(t.path(), "train", &OpenOptions { channels: 3, size: Some((10, 20)) }).unwrap();
    assert_eq!((d.len(), d.shape(), d.labels.clone()), (3, (3, 10, 20), vec![0, 0, 1]));
    // Planar RGB: the blue plane of the PNG is constant 200.
    assert!(d.image_u8(0)[2 * 200..].iter().all(|&v| v == 200));
}

#[test]
fn an_empty_class_folder_is_named() {
    let t = TempDir::new("empty-class");
    digit_tree(&t, "train", 2);
    t.mkdir("train/three");
    t.write("train/four/readme.txt", b"no images here");
    let e = open_err(t.path(), "train", &GREY);
    assert!(e.contains("2 class folder(s) hold no images") && e.contains("three") && e.contains("four"), "{e}");
    let t = TempDir::new("no-classes");
    t.write("train/loose.png", b"");
    let e = open_err(t.path(), "train", &GREY);
    assert!(e.contains("no class folders"), "{e}");
}

#[test]
fn all_bad_files_are_listed_in_one_error() {
    let t = TempDir::new("bad-files");
    digit_tree(&t, "train", 2);
    t.write("train/one/zero-bytes.png", b"");
    t.write("train/two/actually-text.png", b"this is a text file, not a PNG\n");
    let e = open_err(t.path(), "train", &GREY);
    assert!(e.contains("2 of 8 image files cannot be used"), "{e}");
    assert!(e.contains("zero-bytes.png: empty file"), "{e}");
    assert!(e.contains("actually-text.png: not an image"), "{e}");
}

#[test]
fn batches_are_deterministic_whatever_the_threads() {
    let d = Arc::new(ClassificationData::open(&mnist_dir(), "test", &GREY).unwrap());
    let aug = AugmentConfig::default();
    let idx = [3usize, 500, 999, 42];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| classification_batch(&d, &idx, 2, 11, Some(&aug), &Device::Cpu).unwrap())
    };
    let (x1, y1) = run(1);
    let (x4, _) = run(4);
    assert_eq!(x1.dims(), &[4, 1, 28, 28]);
    assert_eq!(y1.to_vec1::<u32>().unwrap(), idx.iter().map(|&i| d.labels[i] as u32).collect::<Vec<_>>());
    let v1: Vec<f32> = x1.flatten_all().unwrap().to_vec1().unwrap();
    let v4: Vec<f32> = x4.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v1, v4);
    assert!(v1.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)));

    // A sample's augmentation depends on (seed, epoch, index), not on its batch.
    let (alone, _) = classification_batch(&d, &[999], 2, 11, Some(&aug), &Device::Cpu).unwrap();
    assert_eq!(alone.flatten_all().unwrap().to_vec1::<f32>().unwrap(), v1[2 * 784..3 * 784]);
    let (next_epoch, _) = classification_batch(&d, &[999], 3, 11, Some(&aug), &Device::Cpu).unwrap();
    assert_ne!(next_epoch.flatten_all().unwrap().to_vec1::<f32>().unwrap(), v1[2 * 784..3 * 784]);

    // Without augmentation the batch is the stored pixels / 255.
    let (plain, _) = classification_batch(&d, &[999], 2, 11, None, &Device::Cpu).unwrap();
    assert_eq!(plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(), d.image_f32(999));
    let e = classification_batch(&d, &[1000], 0, 0, None, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("1000 out of range"), "{e}");
}

#[test]
fn loader_feeds_classification_batches() {
    let d = Arc::new(ClassificationData::open(&mnist_dir(), "test", &GREY).unwrap());
    let loader = Loader::new(d.len(), 64, true, true, 5);
    let data = d.clone();
    let make: MakeBatch<_> = Arc::new(move |idx: &[usize], epoch: usize| {
        classification_batch(&data, idx, epoch, 5, Some(&AugmentConfig::default()), &Device::Cpu)
    });
    let batches: Vec<_> = loader.iter(1, 0, make.clone()).map(|r| r.unwrap()).collect();
    assert_eq!(batches.len(), 15);
    let resumed: Vec<_> = loader.iter(1, 13, make).map(|r| r.unwrap()).collect();
    assert_eq!(resumed.len(), 2);
    for ((b, (x, y)), (rb, (rx, ry))) in batches[13..].iter().zip(&resumed) {
        assert_eq!(b, rb);
        assert_eq!(x.dims(), &[64, 1, 28, 28]);
        assert_eq!(
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            rx.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(y.to_vec1::<u32>().unwrap(), ry.to_vec1::<u32>().unwrap());
    }
}
