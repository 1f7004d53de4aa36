//! Weight files: safetensors only, read whole and validated before use, written atomically
//! (temporary file, fsync, rename) so that a kill at any moment leaves the previous file loadable.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// The contents of a safetensors file.
pub struct WeightsFile {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

impl WeightsFile {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(|s| s.as_str())
    }
}

/// Reads a `.safetensors` file. Pickle files (`.pt`, `.pth`, `.bin`, `.ckpt`, zip or pickle magic)
/// are refused: they can run code on load.
pub fn read_weights(path: &Path) -> Result<WeightsFile> {
    let bytes = fs::read(path).with_context(|| format!("{}: cannot read weights file", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let parsed = safetensors::SafeTensors::read_metadata(&bytes);
    // The pickle diagnosis only for files that are not valid safetensors: a safetensors file starts
    // with its header length (u64, little endian), whose first byte is 0x80 (the pickle opcode)
    // whenever the length is 128 mod 256.
    let pickle_magic = bytes.first() == Some(&0x80) || bytes.starts_with(b"PK\x03\x04");
    if parsed.is_err() && (matches!(ext.as_str(), "pt" | "pth" | "bin" | "ckpt" | "pkl") || pickle_magic) {
        bail!(
            "{}: this looks like a PyTorch pickle file; hitomi loads safetensors only (pickles can run \
             code when loaded). Convert it in Python with \
             `safetensors.torch.save_file(torch.load(f, weights_only=True), 'weights.safetensors')`",
            path.display()
        );
    }
    let (_, meta) = parsed.map_err(|e| {
        anyhow::anyhow!("{}: not a valid safetensors file ({e}); expected a safetensors weights file", path.display())
    })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .with_context(|| format!("{}: cannot decode the tensors of this safetensors file", path.display()))?;
    Ok(WeightsFile { path: path.to_path_buf(), tensors, metadata })
}

/// Writes tensors and metadata as safetensors, atomically.
pub fn write_weights(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let data = safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .with_context(|| format!("{}: cannot serialise tensors", path.display()))?;
    write_atomic(path, &data)
}

/// Writes `bytes` to `path` through a temporary file in the same folder: fsync, rename, fsync folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
        f.sync_all().with_context(|| format!("{}: cannot sync", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn round_trip_and_refusals() {
        let dir = std::env::temp_dir().join(format!("hitomi-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.safetensors");
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let mut meta = HashMap::new();
        meta.insert("task".to_string(), "classify".to_string());
        write_weights(&p, &[("a".into(), t)], meta).unwrap();
        let w = read_weights(&p).unwrap();
        assert_eq!(w.meta("task"), Some("classify"));
        assert_eq!(w.tensors["a"].dims(), &[2, 3]);

        let pt = dir.join("model.pt");
        fs::write(&pt, [0x80u8, 0x02, 0x7d]).unwrap();
        let e = read_weights(&pt).err().unwrap().to_string();
        assert!(e.contains("model.pt") && e.contains("safetensors only"), "{e}");

        // A header of 128 mod 256 bytes puts 0x80 first, like a pickle; it still loads.
        let t = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let odd = dir.join("odd.safetensors");
        for pad in 0..256 {
            let mut meta = HashMap::new();
            meta.insert("pad".to_string(), "x".repeat(pad));
            write_weights(&odd, &[("b".into(), t.clone())], meta).unwrap();
            if fs::read(&odd).unwrap()[0] == 0x80 {
                break;
            }
        }
        assert_eq!(fs::read(&odd).unwrap()[0], 0x80);
        assert_eq!(read_weights(&odd).unwrap().tensors["b"].dims(), &[3]);

        let junk = dir.join("junk.safetensors");
        fs::write(&junk, b"hello world, not tensors").unwrap();
        let e = read_weights(&junk).err().unwrap().to_string();
        assert!(e.contains("junk.safetensors") && e.contains("not a valid safetensors"), "{e}");
        fs::remove_dir_all(&dir).ok();
    }
}
