//! Object detection datasets in the Ultralytics YOLO layout (GUIDE section 4): `data.yaml` with the
//! class names, `images/<split>/X.png` and `labels/<split>/X.txt` with rows `class cx cy w h`
//! normalised to [0, 1]. An image without a label file, or with an empty one, is a background image.
//! Every image and label file is decoded and checked at open time and all problems are reported in
//! one error, each bad row as `file:line: what is wrong`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use hitomi_core::image_io::read_image;
use rayon::prelude::*;

use crate::data_yaml::{read_data_yaml, split_folders};
use crate::image_folder::{entries, is_image};
use crate::pixels::to_chw;
use crate::split_checks::{common_size, report_problems};

/// How far a normalised coordinate or box edge may lie outside [0, 1] and still be accepted (then
/// clamped): labels written with 6 decimals overshoot by rounding alone.
const TOLERANCE: f64 = 1e-6;

/// One ground-truth box in pixels (x2, y2 exclusive edges as in hitomi_core::boxes::Xyxy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetBox {
    pub xyxy: [f32; 4],
    pub class: usize,
}

/// A box as read from a label row: normalised edges (x1, y1, x2, y2) in [0, 1], kept in f64 so the
/// boxes at the file's size and at the model's size are both scaled from the exact values.
#[derive(Clone, Copy, Debug)]
struct NormBox {
    edges: [f64; 4],
    class: usize,
}

impl NormBox {
    /// The box in pixels of a (height, width) image.
    fn to_pixels(self, height: usize, width: usize) -> DetBox {
        let [x1, y1, x2, y2] = self.edges;
        let (h, w) = (height as f64, width as f64);
        DetBox { xyxy: [(x1 * w) as f32, (y1 * h) as f32, (x2 * w) as f32, (y2 * h) as f32], class: self.class }
    }
}

/// The column names of a label row, for messages.
const COLUMNS: [&str; 5] = ["class", "cx", "cy", "w", "h"];

/// Checks one non-blank row; the error is the rule broken, without the `file:line` prefix.
fn parse_row(row: &str, n_classes: usize) -> std::result::Result<NormBox, String> {
    let tokens: Vec<&str> = row.split_whitespace().collect();
    if tokens.len() != 5 {
        let hint = if tokens.len() > 5 && !tokens.len().is_multiple_of(2) {
            " (a polygon row of a segmentation label? detection needs boxes)"
        } else {
            ""
        };
        return Err(format!("{} columns; expected 5 (class cx cy w h){hint}", tokens.len()));
    }
    let mut v = [0f64; 5];
    for (k, tok) in tokens.iter().enumerate() {
        let x: f64 = tok
            .parse()
            .map_err(|_| format!("{} `{tok}` is not a number; expected 5 numbers (class cx cy w h)", COLUMNS[k]))?;
        // Rust parses "nan" and "inf"; they would poison the loss and the box matching.
        if !x.is_finite() {
            return Err(format!("{} `{tok}` is not finite; expected a finite number", COLUMNS[k]));
        }
        v[k] = x;
    }
    let ids = match n_classes {
        0 => "data.yaml has no names".to_string(),
        n => format!("ids run 0..{} ({n} names in data.yaml)", n - 1),
    };
    // Ultralytics writes classes as integers but reads them as floats, so `3.0` is taken as 3.
    if v[0].fract() != 0.0 || v[0] < 0.0 {
        return Err(format!("class `{}` is not a class id; expected an integer, {ids}", tokens[0]));
    }
    if v[0] >= n_classes as f64 {
        return Err(format!("class {} out of range; {ids}", v[0]));
    }
    for k in 1..5 {
        if !(-TOLERANCE..=1.0 + TOLERANCE).contains(&v[k]) {
            return Err(format!(
                "{} {} outside [0, 1]; expected coordinates normalised by the image size",
                COLUMNS[k], tokens[k]
            ));
        }
    }
    let [_, cx, cy, w, h] = v;
    if w <= 0.0 {
        return Err(format!("w {} <= 0; a box needs a positive width", tokens[3]));
    }
    if h <= 0.0 {
        return Err(format!("h {} <= 0; a box needs a positive height", tokens[4]));
    }
    let edges = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
    const EDGES: [&str; 4] = ["x1 = cx - w/2", "y1 = cy - h/2", "x2 = cx + w/2", "y2 = cy + h/2"];
    for (e, name) in edges.iter().zip(EDGES) {
        if !(-TOLERANCE..=1.0 + TOLERANCE).contains(e) {
            // Rounded so that 0.95 + 0.1 reads 1.05, as the user would compute it.
            let shown = (e * 1e9).round() / 1e9;
            return Err(format!("box edge {name} = {shown} outside [0, 1]; the box must lie inside the image"));
        }
    }
    Ok(NormBox { edges: edges.map(|e| e.clamp(0.0, 1.0)), class: v[0] as usize })
}

/// All rows of a label file; `Err` holds every bad row as `path:line: rule`.
fn parse_rows(text: &str, path: &Path, n_classes: usize) -> std::result::Result<Vec<NormBox>, Vec<String>> {
    // A UTF-8 byte order mark (Windows editors) would otherwise make the first class a non-number.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (mut boxes, mut problems) = (Vec::new(), Vec::new());
    for (i, row) in text.lines().enumerate() {
        if row.trim().is_empty() {
            continue;
        }
        match parse_row(row, n_classes) {
            Ok(b) => boxes.push(b),
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(boxes)
    } else {
        Err(problems)
    }
}

/// Parses one YOLO label file's text; `path` is used only in messages. Boxes come back in pixels of
/// a (height, width) image.
///
/// Rows are `class cx cy w h`, normalised to [0, 1]; blank lines are skipped. The error lists every
/// bad row as `path:line: rule broken`, one per line.
pub fn parse_yolo_labels(
    text: &str,
    path: &Path,
    n_classes: usize,
    height: usize,
    width: usize,
) -> Result<Vec<DetBox>> {
    match parse_rows(text, path, n_classes) {
        Ok(boxes) => Ok(boxes.into_iter().map(|b| b.to_pixels(height, width)).collect()),
        Err(problems) => bail!("{}", problems.join("\n")),
    }
}

/// One image as read: pixels at the model's size, the file's (height, width) and its boxes.
struct Sample {
    pixels: Vec<u8>,
    size: (usize, usize),
    boxes: Vec<NormBox>,
}

/// Reads and checks one image and its label file (absent = background). The error holds every
/// problem found, so a bad image does not hide bad rows.
fn read_sample(
    image: &Path,
    label: &Path,
    n_classes: usize,
    channels: usize,
    size: Option<(usize, usize)>,
) -> std::result::Result<Sample, Vec<String>> {
    let mut problems = Vec::new();
    let boxes = if label.is_file() {
        match std::fs::read(label).with_context(|| format!("{}: cannot read label file", label.display())) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => parse_rows(&text, label, n_classes).unwrap_or_else(|e| {
                    problems.extend(e);
                    Vec::new()
                }),
                Err(_) => {
                    problems.push(format!("{}: not UTF-8 text; expected rows of class cx cy w h", label.display()));
                    Vec::new()
                }
            },
            Err(e) => {
                problems.push(format!("{e:#}"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let decoded = read_image(image).and_then(|img| {
        let orig = (img.height() as usize, img.width() as usize);
        let (_, _, pixels) = to_chw(&img, channels, size).with_context(|| image.display().to_string())?;
        Ok((orig, pixels))
    });
    match decoded {
        Ok((size, pixels)) if problems.is_empty() => Ok(Sample { pixels, size, boxes }),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.insert(0, format!("{e:#}"));
            Err(problems)
        }
    }
}

/// A detection split held in memory: images (C, H, W) u8 at the model's size, the boxes at the
/// model's size, and each file's own size so metrics are taken where the labels were drawn.
#[derive(Clone, Debug)]
pub struct DetectionData {
    pub classes: Vec<String>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Image files, in sorted order.
    pub files: Vec<PathBuf>,
    /// (N, C, H, W)
    pixels: Vec<u8>,
    /// Per sample, in pixels of the model's (height, width).
    boxes: Vec<Vec<DetBox>>,
    /// Per sample, normalised, so boxes at the file's size come from the label values themselves.
    norm: Vec<Vec<NormBox>>,
    /// Per sample, the file's (height, width).
    sizes: Vec<(usize, usize)>,
}

impl DetectionData {
    /// Opens `split` of the dataset at `root`; images are converted to `channels` (1 or 3).
    /// size: Some((h, w)) resizes images (bilinear/Triangle) and scales boxes; None requires one
    /// common size.
    pub fn open(root: &Path, split: &str, channels: usize, size: Option<(usize, usize)>) -> Result<Self> {
        if channels != 1 && channels != 3 {
            bail!("{channels} channels requested; expected 1 (grey) or 3 (RGB)");
        }
        let yaml = read_data_yaml(root)?;
        let n_classes = yaml.names.len();
        let (image_dir, label_dir) = split_folders(root, split, &yaml.splits, "labels", "*.txt")?;
        let files: Vec<PathBuf> = entries(&image_dir)?.into_iter().filter(|p| p.is_file() && is_image(p)).collect();
        if files.is_empty() {
            bail!("{}: no images; expected *.png or *.jpg files", image_dir.display());
        }
        // A missing folder is almost always a wrong path rather than a split of background images.
        if !label_dir.is_dir() {
            bail!(
                "{}: no label folder beside {}; expected labels/<split>/<stem>.txt (an image without a label file \
                 is a background image, but the folder must exist)",
                label_dir.display(),
                image_dir.display()
            );
        }
        let label_files: Vec<PathBuf> = files
            .iter()
            .map(|f| {
                // Not `with_extension`: the stem of `a.b.png` is `a.b`, and its labels are `a.b.txt`.
                let mut name = f.file_stem().expect("a file name").to_os_string();
                name.push(".txt");
                label_dir.join(name)
            })
            .collect();
        let mut problems: Vec<String> = Vec::new();
        // a.png and a.jpg would share labels/a.txt, so one of them would get the other's boxes.
        let mut by_stem: HashMap<&std::ffi::OsStr, &Path> = HashMap::new();
        for f in &files {
            let stem = f.file_stem().expect("a file name");
            if let Some(first) = by_stem.insert(stem, f) {
                problems.push(format!(
                    "{}: shares its stem with {}; both would take the same label file",
                    f.display(),
                    first.display()
                ));
            }
        }
        // Labels without an image are reported too: they usually mean a renamed or missing image.
        for l in entries(&label_dir)?.into_iter().filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt")) {
            if !l.file_stem().is_some_and(|s| by_stem.contains_key(s)) {
                problems.push(format!("{}: a label file without an image in {}", l.display(), image_dir.display()));
            }
        }
        let samples: Vec<std::result::Result<Sample, Vec<String>>> =
            files.par_iter().zip(&label_files).map(|(f, lf)| read_sample(f, lf, n_classes, channels, size)).collect();
        problems.extend(samples.iter().filter_map(|r| r.as_ref().err()).flatten().cloned());
        report_problems(root, split, &problems)?;
        let samples: Vec<Sample> = samples.into_iter().map(|r| r.expect("checked above")).collect();
        let file_sizes: Vec<(usize, usize)> = samples.iter().map(|s| s.size).collect();
        let (height, width) = common_size(&image_dir, &files, &file_sizes, size)?;
        let boxes = samples.iter().map(|s| s.boxes.iter().map(|b| b.to_pixels(height, width)).collect()).collect();
        let pixels = samples.iter().flat_map(|s| s.pixels.iter().copied()).collect();
        let norm = samples.into_iter().map(|s| s.boxes).collect();
        Ok(Self { classes: yaml.names, channels, height, width, files, pixels, boxes, norm, sizes: file_sizes })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Sample i's pixels: (C, H, W) u8 at the model's size.
    pub fn image_u8(&self, i: usize) -> &[u8] {
        let n = self.channels * self.height * self.width;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Sample i's boxes in pixels of the model's (height, width); empty for a background image.
    pub fn boxes(&self, i: usize) -> &[DetBox] {
        &self.boxes[i]
    }

    /// Sample i's file size, (h, w).
    pub fn original_size(&self, i: usize) -> (usize, usize) {
        self.sizes[i]
    }

    /// Sample i's boxes in pixels of its file.
    pub fn original_boxes(&self, i: usize) -> Vec<DetBox> {
        let (h, w) = self.sizes[i];
        self.norm[i].iter().map(|b| b.to_pixels(h, w)).collect()
    }

    /// The samples `idx` as a subset (for a validation hold-out).
    pub fn subset(&self, idx: &[usize]) -> Self {
        Self {
            classes: self.classes.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            files: idx.iter().map(|&i| self.files[i].clone()).collect(),
            pixels: idx.iter().flat_map(|&i| self.image_u8(i).iter().copied()).collect(),
            boxes: idx.iter().map(|&i| self.boxes[i].clone()).collect(),
            norm: idx.iter().map(|&i| self.norm[i].clone()).collect(),
            sizes: idx.iter().map(|&i| self.sizes[i]).collect(),
        }
    }

    /// xs: (B, C, H, W) f32 in [0, 1], and the boxes of each sample (model size).
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor, Vec<Vec<DetBox>>)> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            bail!("batch index {i} out of range; the dataset holds {} samples", self.len());
        }
        let xs: Vec<f32> = idx.iter().flat_map(|&i| self.image_u8(i).iter().map(|&v| v as f32 / 255.0)).collect();
        let boxes = idx.iter().map(|&i| self.boxes[i].clone()).collect();
        let (b, c, h, w) = (idx.len(), self.channels, self.height, self.width);
        Ok((Tensor::from_vec(xs, (b, c, h, w), device)?, boxes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::{compose, write_canvases};
    use crate::classification::{ClassificationData, OpenOptions};
    use hitomi_core::SeededRng;
    use image::{DynamicImage, GrayImage};

    /// A fresh folder under the system temp dir, removed on drop (the crate has no tempfile).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "hitomi-detection-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn write(&self, rel: &str, bytes: &[u8]) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }

        /// A grey PNG of (h, w) whose pixel (y, x) is (x + 3y) mod 256.
        fn png(&self, rel: &str, h: u32, w: u32) {
            let img = GrayImage::from_fn(w, h, |x, y| image::Luma([((x + 3 * y) % 256) as u8]));
            let mut bytes = Vec::new();
            DynamicImage::ImageLuma8(img)
                .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
                .unwrap();
            self.write(rel, &bytes);
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const YAML: &str = "path: .\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n";

    fn err(text: &str) -> String {
        parse_yolo_labels(text, Path::new("labels/train/a.txt"), 3, 10, 10).unwrap_err().to_string()
    }

    #[test]
    fn good_rows_become_pixel_boxes() {
        let text = "\n0 0.5 0.5 0.5 0.25\n  \n2 0.25 0.75 0.5 0.5\r\n1 0.0000005 0.5 0.000001 1.0000004\n";
        let b = parse_yolo_labels(text, Path::new("a.txt"), 3, 20, 40).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], DetBox { xyxy: [10.0, 7.5, 30.0, 12.5], class: 0 });
        assert_eq!(b[1], DetBox { xyxy: [0.0, 10.0, 20.0, 20.0], class: 2 });
        // Tiny overshoots of the edges are clamped into the image.
        assert_eq!(b[2].xyxy[1], 0.0);
        assert_eq!(b[2].xyxy[3], 20.0);
        assert!(b[2].xyxy[0] >= 0.0 && b[2].xyxy[2] <= 40.0);
        assert_eq!(parse_yolo_labels("", Path::new("a.txt"), 3, 20, 40).unwrap(), vec![]);
        assert_eq!(parse_yolo_labels("\u{feff}1.0 0.5 0.5 1 1", Path::new("a.txt"), 3, 2, 2).unwrap()[0].class, 1);
    }

    #[test]
    fn each_bad_row_names_file_line_and_rule() {
        let ok = "0 0.5 0.5 0.2 0.2\n";
        for (row, want) in [
            ("0 0.5 0.5 0.2", "4 columns; expected 5 (class cx cy w h)"),
            ("0 0.5 0.5 0.2 0.2 0.1", "6 columns; expected 5"),
            ("0 0.1 0.1 0.2 0.1 0.2 0.2", "polygon row"),
            ("0 0.5 abc 0.2 0.2", "cy `abc` is not a number"),
            ("0 0.5 0.5 nan 0.2", "w `nan` is not finite"),
            ("0 0.5 0.5 0.2 inf", "h `inf` is not finite"),
            ("1.5 0.5 0.5 0.2 0.2", "class `1.5` is not a class id; expected an integer, ids run 0..2 (3 names"),
            ("-1 0.5 0.5 0.2 0.2", "class `-1` is not a class id"),
            ("3 0.5 0.5 0.2 0.2", "class 3 out of range; ids run 0..2 (3 names in data.yaml)"),
            ("0 0.5 0.5 0 0.2", "w 0 <= 0; a box needs a positive width"),
            ("0 0.5 0.5 0.2 -0.1", "h -0.1 outside [0, 1]"),
            ("0 0.5 0.5 0.2 0", "h 0 <= 0; a box needs a positive height"),
            ("0 1.2 0.5 0.2 0.2", "cx 1.2 outside [0, 1]"),
            ("0 0.5 -0.01 0.2 0.2", "cy -0.01 outside [0, 1]"),
            ("0 0.5 0.5 1.5 0.2", "w 1.5 outside [0, 1]"),
            ("0 0.05 0.5 0.2 0.2", "box edge x1 = cx - w/2 = -0.05"),
            ("0 0.5 0.95 0.2 0.2", "box edge y2 = cy + h/2 = 1.05"),
            ("0 0.5 0.5 0.2 0.2 ", ""),
        ] {
            let text = format!("{ok}\n{row}\n{ok}");
            if want.is_empty() {
                assert_eq!(parse_yolo_labels(&text, Path::new("a.txt"), 3, 10, 10).unwrap().len(), 3);
                continue;
            }
            let e = err(&text);
            assert!(e.starts_with("labels/train/a.txt:3: ") && e.contains(want), "{row}: {e}");
            assert!(!e.contains('\n'), "one bad row, one line: {e}");
        }
        // Beyond the tolerance of 1e-6 an edge is an error.
        assert!(err("0 0.500002 0.5 1 0.5").contains("box edge x2 = cx + w/2 = 1.000002"));
        // Every bad row is listed, each with its own line number.
        let e = err("0 0.5 0.5 0.2\n\n1 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n");
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.contains("a.txt:1: 4 columns") && e.contains("a.txt:4: class 7 out of range"), "{e}");
    }

    /// A dataset of 20x40 images (HxW): a.png with two boxes, b.png background (no label file),
    /// c.png background (empty label file).
    fn small_dataset() -> TempDir {
        let t = TempDir::new("small");
        t.write("data.yaml", YAML.as_bytes());
        for name in ["a", "b", "c"] {
            t.png(&format!("images/train/{name}.png"), 20, 40);
        }
        t.write("labels/train/a.txt", b"0 0.5 0.5 0.5 0.5\n2 0.125 0.25 0.25 0.5\n");
        t.write("labels/train/c.txt", b"");
        t
    }

    #[test]
    fn background_images_and_boxes() {
        let t = small_dataset();
        let d = DetectionData::open(&t.0, "train", 1, None).unwrap();
        assert_eq!((d.len(), d.height, d.width, d.channels), (3, 20, 40, 1));
        assert_eq!(d.classes, ["a", "b", "c"]);
        assert_eq!(
            d.boxes(0),
            [DetBox { xyxy: [10., 5., 30., 15.], class: 0 }, DetBox { xyxy: [0., 0., 10., 10.], class: 2 }]
        );
        assert!(d.boxes(1).is_empty() && d.boxes(2).is_empty());
        assert_eq!(d.original_boxes(0), d.boxes(0));
        assert_eq!(d.original_size(1), (20, 40));
        assert_eq!(d.image_u8(0)[3 * 40 + 5], 3 * 3 + 5);
        let s = d.subset(&[2, 0]);
        assert_eq!(s.files, [d.files[2].clone(), d.files[0].clone()]);
        assert_eq!((s.boxes(0).len(), s.boxes(1).len()), (0, 2));
        assert_eq!(s.image_u8(1), d.image_u8(0));
    }

    #[test]
    fn resizing_scales_boxes() {
        let t = small_dataset();
        let d = DetectionData::open(&t.0, "train", 3, Some((10, 80))).unwrap();
        assert_eq!((d.height, d.width, d.image_u8(0).len()), (10, 80, 3 * 10 * 80));
        assert_eq!(d.boxes(0)[0], DetBox { xyxy: [20., 2.5, 60., 7.5], class: 0 });
        assert_eq!(d.boxes(0)[1], DetBox { xyxy: [0., 0., 20., 5.], class: 2 });
        assert_eq!(d.original_size(0), (20, 40));
        assert_eq!(d.original_boxes(0)[0], DetBox { xyxy: [10., 5., 30., 15.], class: 0 });
    }

    #[test]
    fn batch_shapes() {
        let t = small_dataset();
        let d = DetectionData::open(&t.0, "train", 3, Some((16, 24))).unwrap();
        let (xs, boxes) = d.batch(&[0, 1, 0], &Device::Cpu).unwrap();
        assert_eq!(xs.dims(), [3, 3, 16, 24]);
        assert_eq!(boxes.iter().map(Vec::len).collect::<Vec<_>>(), [2, 0, 2]);
        let max = xs.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(max > 0.0 && max <= 1.0);
        let e = d.batch(&[3], &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("index 3 out of range"), "{e}");
    }

    #[test]
    fn problems_are_reported_together() {
        let t = small_dataset();
        t.write("labels/train/b.txt", b"0 0.5 0.5 0.2\n\n5 0.5 0.5 0.2 0.2\n");
        t.write("labels/train/orphan.txt", b"0 0.5 0.5 0.2 0.2\n");
        t.write("labels/train/c.txt", b"0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 1.5\n");
        let e = format!("{:#}", DetectionData::open(&t.0, "train", 1, None).unwrap_err());
        assert!(e.contains("4 problem(s) with the `train` split"), "{e}");
        assert!(e.contains("b.txt:1: 4 columns; expected 5"), "{e}");
        assert!(e.contains("b.txt:3: class 5 out of range; ids run 0..2 (3 names in data.yaml)"), "{e}");
        assert!(e.contains("c.txt:2: h 1.5 outside [0, 1]"), "{e}");
        assert!(e.contains("orphan.txt: a label file without an image"), "{e}");
        // More than 20 problems: the count of all, the first 20 shown.
        let rows: String = (0..25).map(|_| "9 0.5 0.5 0.2 0.2\n").collect();
        t.write("labels/train/a.txt", rows.as_bytes());
        let e = format!("{:#}", DetectionData::open(&t.0, "train", 1, None).unwrap_err());
        assert!(e.contains("29 problem(s) with the `train` split (first 20)"), "{e}");
        assert_eq!(e.lines().count(), 21, "{e}");
    }

    #[test]
    fn layout_problems() {
        let t = small_dataset();
        // val is looked up through data.yaml (images/val), then images/test stands in for it.
        let e = DetectionData::open(&t.0, "val", 1, None).unwrap_err().to_string();
        assert!(e.contains("no image folder for split `val`") && e.contains("images/test"), "{e}");
        assert_eq!(e.matches("images/val").count(), 1, "{e}");
        t.png("images/test/x.png", 8, 8);
        let e = DetectionData::open(&t.0, "val", 1, None).unwrap_err().to_string();
        assert!(e.contains("no label folder"), "{e}");
        t.write("labels/test/x.txt", b"1 0.5 0.5 1 1\n");
        let d = DetectionData::open(&t.0, "val", 1, None).unwrap();
        assert_eq!(d.boxes(0), [DetBox { xyxy: [0., 0., 8., 8.], class: 1 }]);
        // Mixed sizes need a size; with one they are all resized.
        t.png("images/test/y.png", 9, 8);
        let e = DetectionData::open(&t.0, "test", 1, None).unwrap_err().to_string();
        assert!(e.contains("differ in size"), "{e}");
        assert_eq!(DetectionData::open(&t.0, "test", 1, Some((8, 8))).unwrap().len(), 2);
        // Two images sharing a stem would share one label file.
        t.png("images/test/x.jpg", 8, 8);
        let e = format!("{:#}", DetectionData::open(&t.0, "test", 1, None).unwrap_err());
        assert!(e.contains("shares its stem"), "{e}");
        assert!(DetectionData::open(&t.0, "train", 2, None).unwrap_err().to_string().contains("2 channels"));
    }

    #[test]
    fn canvases_round_trip() {
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/mnist");
        let t = TempDir::new("canvas");
        let (n, seed) = (6, 5);
        write_canvases(&mnist, "test", n, seed, &t.0).unwrap();
        let d = DetectionData::open(&t.0.join("detect"), "test", 1, None).unwrap();
        assert_eq!((d.len(), d.height, d.width), (n, 96, 96));
        assert_eq!(d.classes.len(), 10);
        let digits = ClassificationData::open(&mnist, "test", &OpenOptions { channels: 1, size: None }).unwrap();
        for i in 0..n {
            let c = compose(&digits, &mut SeededRng::derive(seed, &[1, i as u64]));
            assert_eq!(d.image_u8(i), c.pixels, "canvas {i}");
            assert_eq!(d.boxes(i).len(), c.digits.len());
            for (b, p) in d.boxes(i).iter().zip(&c.digits) {
                assert_eq!(b.class, p.class as usize);
                for (got, want) in b.xyxy.iter().zip(p.xyxy) {
                    assert!((got - want as f32).abs() < 1e-3, "canvas {i}: {:?} vs {:?}", b.xyxy, p.xyxy);
                }
            }
        }
        // At half size the boxes are halved.
        let h = DetectionData::open(&t.0.join("detect"), "val", 1, Some((48, 48))).unwrap();
        for (a, b) in h.boxes(0).iter().zip(d.boxes(0)) {
            assert!(a.xyxy.iter().zip(b.xyxy).all(|(x, y)| (x * 2.0 - y).abs() < 1e-3));
        }
        assert_eq!(h.original_boxes(0), d.boxes(0));
    }
}
