//! Helpers shared by the integration tests: temp folders, a small MNIST subset, the binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hitomi-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// Writes raw (not gzipped) IDX files with the first `n_train` train and `n_test` t10k digits of
/// the bundled MNIST into `dir`.
pub fn mnist_subset(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (split, n) in [("train", n_train), ("t10k", n_test)] {
        let imgs = gunzip(&repo().join(format!("assets/mnist/{split}-images-idx3-ubyte.gz")));
        let labs = gunzip(&repo().join(format!("assets/mnist/{split}-labels-idx1-ubyte.gz")));
        let mut hi = imgs[..16].to_vec();
        hi[4..8].copy_from_slice(&(n as u32).to_be_bytes());
        hi.extend_from_slice(&imgs[16..16 + n * 784]);
        let mut hl = labs[..8].to_vec();
        hl[4..8].copy_from_slice(&(n as u32).to_be_bytes());
        hl.extend_from_slice(&labs[8..8 + n]);
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), hi).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), hl).unwrap();
    }
}

/// A tiny, fast classification config for tests.
pub fn tiny_config(dir: &Path, epochs: usize, batch: usize) -> PathBuf {
    let p = dir.join("tiny.toml");
    let s = format!(
        "arch = \"small\"\nval_fraction = 0.1\n[train]\nepochs = {epochs}\nbatch = {batch}\nlr = 0.1\n\
         [train.schedule]\nkind = \"cosine\"\nwarmup_epochs = 0.5\nfinal_frac = 0.05\n"
    );
    std::fs::write(&p, s).unwrap();
    p
}

/// A JSON file the binary wrote, parsed (panics with the error if it is missing or malformed).
pub fn read_json(path: impl AsRef<Path>) -> serde_json::Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The umbrella binary.
pub fn hitomi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hitomi"))
}

/// `hitomi classify train --data DATA --out OUT --config CFG`, for more flags to be added.
pub fn train_cmd(data: impl AsRef<Path>, out: impl AsRef<Path>, cfg: impl AsRef<Path>) -> Command {
    let mut c = hitomi();
    c.args(["classify", "train", "--data"])
        .arg(data.as_ref())
        .arg("--out")
        .arg(out.as_ref())
        .arg("--config")
        .arg(cfg.as_ref());
    c
}

/// Runs a command, returning (success, stdout + stderr).
pub fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> (bool, String) {
    let out = cmd.borrow_mut().output().expect("spawn");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// (step, loss) rows of a run's `steps.csv`.
pub fn step_log(run: &Path) -> Vec<(usize, f64)> {
    let s = std::fs::read_to_string(run.join("steps.csv")).unwrap_or_default();
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

/// `hitomi data canvases` of the bundled digits of `split` into DIR/canvases; returns that folder
/// (it holds `detect/` and `segment/`).
pub fn digit_canvases(dir: &Path, split: &str, n: usize, seed: u64) -> PathBuf {
    let out = dir.join("canvases");
    let (ok, log) = run(hitomi()
        .args(["data", "canvases", "--digits"])
        .arg(repo().join("assets/mnist"))
        .args(["--split", split, "--n", &n.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(&out));
    assert!(ok, "{log}");
    out
}
