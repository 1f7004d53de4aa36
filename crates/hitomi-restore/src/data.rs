//! Restoration data: a folder of clean images (the distorted half is synthesised on the fly) or a
//! paired folder `lq/` + `gt/` with the same file names; and the random training pairs cut from them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use hitomi_core::image_io::read_image;
use hitomi_data::distort::DistortionSpec;
use hitomi_data::Planar;
use rand::Rng;

/// Extensions read as images.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One image as the network sees it: 3 channels (a grey file replicated), and whether the file was
/// grey, so results are written and scored in the file's own colour space.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    pub path: PathBuf,
    pub image: Planar,
    pub grey: bool,
}

impl LoadedImage {
    pub fn open(path: &Path) -> Result<Self> {
        let img = read_image(path)?;
        let grey = !img.color().has_color();
        Ok(Self { path: path.to_path_buf(), image: Planar::from_image(&img, 3)?, grey })
    }

    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// Back to the file's colour space: grey files get the mean of the three channels.
/// img: (3, H, W) -> (1 or 3, H, W)
pub fn to_file_channels(img: &Planar, grey: bool) -> Planar {
    if !grey || img.channels == 1 {
        return img.clone();
    }
    let hw = img.height * img.width;
    let data = (0..hw).map(|i| (img.data[i] + img.data[hw + i] + img.data[2 * hw + i]) / 3.0).collect();
    Planar { channels: 1, height: img.height, width: img.width, data }
}

/// What a data folder holds.
pub enum RestoreData {
    /// Clean images only.
    Clean(Vec<LoadedImage>),
    /// (distorted, clean) pairs, matched by file name.
    Paired(Vec<(LoadedImage, LoadedImage)>),
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: cannot list ({e})", dir.display()))?;
    for e in entries {
        let p = e?.path();
        let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        if p.is_file() && EXTENSIONS.contains(&ext.as_str()) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

impl RestoreData {
    /// `root/lq` + `root/gt` -> paired; else the images directly in `root` are clean images.
    /// Missing partners, size mismatches and unreadable files are all reported at once.
    pub fn open(root: &Path) -> Result<Self> {
        let (lq_dir, gt_dir) = (root.join("lq"), root.join("gt"));
        if lq_dir.is_dir() || gt_dir.is_dir() {
            return Self::open_paired(root, &lq_dir, &gt_dir);
        }
        if !root.is_dir() {
            bail!("{}: not a folder; expected a folder of clean images or one with lq/ and gt/", root.display());
        }
        let files = image_files(root)?;
        if files.is_empty() {
            bail!(
                "{}: no images (.png, .jpg); expected a folder of clean images or a paired folder with lq/ and gt/",
                root.display()
            );
        }
        let mut images = Vec::new();
        let mut problems = Vec::new();
        for f in &files {
            match LoadedImage::open(f) {
                Ok(i) => images.push(i),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        if !problems.is_empty() {
            bail!("{} unreadable image(s):\n  {}", problems.len(), problems.join("\n  "));
        }
        Ok(Self::Clean(images))
    }

    fn open_paired(root: &Path, lq_dir: &Path, gt_dir: &Path) -> Result<Self> {
        for (d, other) in [(lq_dir, "gt"), (gt_dir, "lq")] {
            if !d.is_dir() {
                bail!("{}: missing; a paired folder needs both lq/ and gt/ (found only {other}/)", d.display());
            }
        }
        let names = |d: &Path| -> Result<BTreeSet<String>> {
            Ok(image_files(d)?.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect())
        };
        let (lq, gt) = (names(lq_dir)?, names(gt_dir)?);
        let mut problems = Vec::new();
        for n in lq.difference(&gt) {
            problems.push(format!("{}: no partner {}", lq_dir.join(n).display(), gt_dir.join(n).display()));
        }
        for n in gt.difference(&lq) {
            problems.push(format!("{}: no partner {}", gt_dir.join(n).display(), lq_dir.join(n).display()));
        }
        let mut pairs = Vec::new();
        for n in lq.intersection(&gt) {
            let (a, b) = (LoadedImage::open(&lq_dir.join(n)), LoadedImage::open(&gt_dir.join(n)));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    let (sa, sb) = ((a.image.width, a.image.height), (b.image.width, b.image.height));
                    if sa != sb {
                        problems.push(format!(
                            "{} is {}x{} but {} is {}x{}; a pair must have the same size",
                            a.path.display(),
                            sa.0,
                            sa.1,
                            b.path.display(),
                            sb.0,
                            sb.1
                        ));
                    } else {
                        pairs.push((a, b));
                    }
                }
                (a, b) => {
                    for e in [a.err(), b.err()].into_iter().flatten() {
                        problems.push(format!("{e:#}"));
                    }
                }
            }
        }
        if !problems.is_empty() {
            bail!("{}: {} problem(s) in the pairs:\n  {}", root.display(), problems.len(), problems.join("\n  "));
        }
        if pairs.is_empty() {
            bail!("{}: lq/ and gt/ hold no images", root.display());
        }
        Ok(Self::Paired(pairs))
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Clean(v) => v.len(),
            Self::Paired(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File names (of the clean / gt image), in order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Clean(v) => v.iter().map(LoadedImage::name).collect(),
            Self::Paired(v) => v.iter().map(|(_, g)| g.name()).collect(),
        }
    }

    /// The images at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        match self {
            Self::Clean(v) => Self::Clean(idx.iter().map(|&i| v[i].clone()).collect()),
            Self::Paired(v) => Self::Paired(idx.iter().map(|&i| v[i].clone()).collect()),
        }
    }

    /// (distorted, clean, grey) for image `i`: paired data as stored, clean data distorted by `spec`
    /// with `rng` (whole image).
    pub fn pair(&self, i: usize, spec: &DistortionSpec, rng: &mut impl Rng) -> (Planar, Planar, bool) {
        match self {
            Self::Clean(v) => (spec.apply(&v[i].image, rng), v[i].image.clone(), v[i].grey),
            Self::Paired(v) => (v[i].0.image.clone(), v[i].1.image.clone(), v[i].1.grey),
        }
    }

    /// A random training pair of `patch` x `patch` (distorted, clean) from image `i`: a random
    /// window, one of the 8 flips/rotations, and for clean data the distortion applied to the
    /// window plus a margin that is then cut away (blur near the window's edge sees real pixels).
    /// With `colour_augment` a clean window is recoloured before it is distorted
    /// ([`crate::colour::colour_augment`]); paired data is left as stored, since its distortion is
    /// baked into `lq` and a chroma gain would scale the noise too. Without it no extra random
    /// value is drawn, so the patches are exactly those of configs written before the option.
    /// Returns (lq, gt), each (3, patch, patch) on 0..255.
    pub fn random_patch(
        &self,
        i: usize,
        patch: usize,
        spec: &DistortionSpec,
        colour_augment: bool,
        rng: &mut impl Rng,
    ) -> (Planar, Planar) {
        const MARGIN: usize = 16;
        match self {
            Self::Clean(v) => {
                let img = &v[i].image;
                let m = MARGIN.min((img.width - patch) / 2).min((img.height - patch) / 2);
                let (x, y) =
                    (rng.gen_range(0..=img.width - patch - 2 * m), rng.gen_range(0..=img.height - patch - 2 * m));
                let flip = rng.gen_range(0..8);
                let mut window = dihedral(&img.crop(x, y, patch + 2 * m, patch + 2 * m), flip);
                if colour_augment {
                    window = crate::colour::colour_augment(&window, v[i].grey, rng);
                }
                let lq = spec.apply(&window, rng);
                (lq.crop(m, m, patch, patch), window.crop(m, m, patch, patch))
            }
            Self::Paired(v) => {
                let (lq, gt) = (&v[i].0.image, &v[i].1.image);
                let (x, y) = (rng.gen_range(0..=gt.width - patch), rng.gen_range(0..=gt.height - patch));
                let flip = rng.gen_range(0..8);
                (dihedral(&lq.crop(x, y, patch, patch), flip), dihedral(&gt.crop(x, y, patch, patch), flip))
            }
        }
    }

    /// Checks that every image can give a training patch of `patch` x `patch`.
    pub fn check_patch_size(&self, patch: usize) -> Result<()> {
        let small: Vec<String> = match self {
            Self::Clean(v) => v.iter().map(|i| (&i.path, &i.image)).collect::<Vec<_>>(),
            Self::Paired(v) => v.iter().map(|(_, g)| (&g.path, &g.image)).collect(),
        }
        .into_iter()
        .filter(|(_, im)| im.width < patch || im.height < patch)
        .map(|(p, im)| format!("{} is {}x{}", p.display(), im.width, im.height))
        .collect();
        if !small.is_empty() {
            bail!("training patches are {patch}x{patch}; smaller images:\n  {}", small.join("\n  "));
        }
        Ok(())
    }
}

/// One of the 8 symmetries of the square, on any H x W: bit 0 flips left-right, bit 1 flips
/// top-bottom, bit 2 transposes (applied first: it reads the source transposed, so a transposed
/// output is W x H). img: (C, H, W) -> (C, H, W), or (C, W, H) when bit 2 is set.
/// Undo it with [`dihedral_inverse`].
pub fn dihedral(img: &Planar, k: usize) -> Planar {
    let (h, w) = (img.height, img.width);
    let transpose = k & 4 != 0;
    let (oh, ow) = if transpose { (w, h) } else { (h, w) };
    let mut out = Planar::zeros(img.channels, oh, ow);
    for c in 0..img.channels {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for y in 0..oh {
            for x in 0..ow {
                let (mut sx, mut sy) = if transpose { (y, x) } else { (x, y) };
                if k & 1 != 0 {
                    sx = w - 1 - sx;
                }
                if k & 2 != 0 {
                    sy = h - 1 - sy;
                }
                dst[y * ow + x] = src[sy * w + sx];
            }
        }
    }
    out
}

/// The index of the symmetry that undoes `dihedral(_, k)`. Flips and plain transposes are their own
/// inverses, and so is the anti-transpose (7); the two quarter turns (5 and 6) undo each other.
pub fn dihedral_inverse_index(k: usize) -> usize {
    let one_flip = (k & 1) != ((k >> 1) & 1);
    if k & 4 != 0 && one_flip {
        k ^ 3
    } else {
        k
    }
}

/// Undoes [`dihedral`]: `dihedral_inverse(&dihedral(img, k), k) == img` for every k and any H x W.
/// img: (C, H', W') as `dihedral` returned it -> (C, H, W) of the original.
pub fn dihedral_inverse(img: &Planar, k: usize) -> Planar {
    dihedral(img, dihedral_inverse_index(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;
    use std::collections::HashSet;

    #[test]
    fn dihedral_gives_eight_distinct_views_and_identity_first() {
        let img = Planar::new(1, 3, 3, (0..9).map(|v| v as f32).collect()).unwrap();
        assert_eq!(dihedral(&img, 0), img);
        let views: HashSet<Vec<u32>> =
            (0..8).map(|k| dihedral(&img, k).data.iter().map(|v| *v as u32).collect()).collect();
        assert_eq!(views.len(), 8);
    }

    #[test]
    fn dihedral_inverse_undoes_all_eight_on_a_non_square_image() {
        // 2 channels of 3 x 5 with distinct values, so any misplaced pixel shows.
        let img = Planar::new(2, 3, 5, (0..30).map(|v| v as f32).collect()).unwrap();
        for k in 0..8 {
            let t = dihedral(&img, k);
            let expect = if k & 4 != 0 { (5, 3) } else { (3, 5) };
            assert_eq!((t.height, t.width), expect, "k = {k}");
            assert_eq!(dihedral_inverse(&t, k), img, "k = {k}");
        }
        // Square windows keep the old meaning: 4 transposes, 5 turns one way and 6 the other.
        let sq = Planar::new(1, 2, 2, vec![1., 2., 3., 4.]).unwrap();
        assert_eq!(dihedral(&sq, 4).data, vec![1., 3., 2., 4.]);
        assert_eq!(dihedral(&dihedral(&sq, 5), 6), sq);
    }

    #[test]
    fn colour_augment_recolours_grey_training_windows_before_the_noise_and_cuts_the_margin() {
        // A grey 100 x 90 photo: its windows have a margin, which must still be cut after the noise.
        let plane: Vec<f32> = (0..100 * 90).map(|i| ((i % 90) * 2 + (i / 90) % 17) as f32).collect();
        let img = Planar::new(3, 100, 90, plane.repeat(3)).unwrap();
        let data = RestoreData::Clean(vec![LoadedImage { path: "grey.png".into(), image: img, grey: true }]);
        let spec: DistortionSpec = "noise:25".parse().unwrap();
        let patch =
            |colour: bool, seed: u64| data.random_patch(0, 32, &spec, colour, &mut SeededRng::derive(seed, &[7]));
        let same_channels = |p: &Planar| p.plane(0) == p.plane(1) && p.plane(1) == p.plane(2);
        let (lq, gt) = patch(false, 0);
        assert!(same_channels(&gt), "off: grey stays grey");
        assert!(!same_channels(&lq), "the noise is independent per channel");
        let (lq, gt) = patch(true, 0);
        assert_eq!((lq.channels, lq.height, lq.width, gt.height, gt.width), (3, 32, 32, 32, 32));
        assert!(!same_channels(&gt), "on: grey windows get colour");
        // The noise was added to the recoloured window: lq - gt has about sigma 25 in every channel.
        let sd =
            (lq.data.iter().zip(&gt.data).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / lq.data.len() as f32).sqrt();
        assert!((18.0..30.0).contains(&sd), "noise sd {sd}");
        assert_eq!(patch(true, 0), patch(true, 0), "deterministic for a stream");
        assert_ne!(patch(true, 0).1, patch(true, 1).1);
    }

    #[test]
    fn grey_back_to_one_channel() {
        let img = Planar::new(3, 1, 2, vec![3., 6., 6., 6., 9., 6.]).unwrap();
        assert_eq!(to_file_channels(&img, true).data, vec![6., 6.]);
        assert_eq!(to_file_channels(&img, false), img);
    }
}
