//! The `data.yaml` of Ultralytics-style datasets (YOLO detection, segmentation): `path`, `train`,
//! `val`, `test` and `names`. Only this subset of YAML is read, so no YAML library is pulled in;
//! anything else in the file is ignored, and a malformed `names` is an error naming file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What hitomi uses of a `data.yaml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataYaml {
    /// Class names, in class-id order.
    pub names: Vec<String>,
    /// Split name ("train", "val", "test") -> folder relative to the dataset root (e.g. `images/train`).
    pub splits: BTreeMap<String, String>,
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    // A comment after a value starts with " #" (YAML needs the space).
    let s = match s.find(" #") {
        Some(i) if !s.starts_with(['"', '\'']) => s[..i].trim(),
        _ => s,
    };
    let q = |c: char| s.len() >= 2 && s.starts_with(c) && s.ends_with(c);
    if q('"') || q('\'') {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Splits a flow sequence body `a, "b, c", d` at top-level commas.
fn split_flow(body: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None);
    for ch in body.chars() {
        match (ch, quote) {
            ('"' | '\'', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => {
                out.push(unquote(&cur));
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(unquote(&cur));
    }
    out
}

/// Parses `text` (the file `name` is used in errors). `names` may be a flow list (`[a, b]`), a
/// block list (`- a`), or a mapping from ids (`0: a`, block or `{0: a, 1: b}`); ids must be 0..n.
pub fn parse_data_yaml(text: &str, name: &str) -> Result<DataYaml> {
    let mut out = DataYaml::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.starts_with([' ', '\t', '#']) || line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "train" | "val" | "test" => {
                out.splits.insert(key.to_string(), unquote(value));
            }
            "names" => {
                let line_no = i;
                let mut by_id: BTreeMap<usize, String> = BTreeMap::new();
                let mut list: Vec<String> = Vec::new();
                let v = unquote(value);
                if let Some(body) = v.strip_prefix('[') {
                    let body = body.strip_suffix(']').with_context(|| {
                        format!("{name}:{line_no}: names: unclosed `[`; expected names: [a, b, ...] on one line")
                    })?;
                    list = split_flow(body);
                } else if let Some(body) = v.strip_prefix('{') {
                    let body = body.strip_suffix('}').with_context(|| {
                        format!("{name}:{line_no}: names: unclosed `{{`; expected names: {{0: a, 1: b}} on one line")
                    })?;
                    for item in split_flow(body) {
                        let (k, n) = item
                            .split_once(':')
                            .with_context(|| format!("{name}:{line_no}: names entry `{item}`: expected ID: NAME"))?;
                        insert_id(&mut by_id, k, n, name, line_no)?;
                    }
                } else if v.is_empty() {
                    while i < lines.len() && (lines[i].starts_with([' ', '\t']) || lines[i].trim().is_empty()) {
                        let item = lines[i].trim();
                        i += 1;
                        if item.is_empty() || item.starts_with('#') {
                            continue;
                        }
                        if let Some(n) = item.strip_prefix('-') {
                            list.push(unquote(n));
                        } else if let Some((k, n)) = item.split_once(':') {
                            insert_id(&mut by_id, k, n, name, i)?;
                        } else {
                            bail!("{name}:{i}: names entry `{item}`: expected `- NAME` or `ID: NAME`");
                        }
                    }
                } else {
                    bail!("{name}:{line_no}: names: `{v}`; expected a list [a, b], `- a` lines or `0: a` lines");
                }
                if !by_id.is_empty() {
                    if !list.is_empty() {
                        bail!("{name}:{line_no}: names mixes `- NAME` and `ID: NAME` entries");
                    }
                    for (expect, (&id, _)) in by_id.iter().enumerate() {
                        if id != expect {
                            bail!("{name}:{line_no}: names has no id {expect}; ids must run 0..{}", by_id.len());
                        }
                    }
                    list = by_id.into_values().collect();
                }
                if list.is_empty() || list.iter().any(String::is_empty) {
                    bail!("{name}:{line_no}: names is empty or has an empty name");
                }
                out.names = list;
            }
            _ => {}
        }
    }
    if out.names.is_empty() {
        bail!("{name}: no `names:` entry; expected the class names, e.g. names: [background, cat, dog]");
    }
    Ok(out)
}

fn insert_id(by_id: &mut BTreeMap<usize, String>, k: &str, n: &str, name: &str, line: usize) -> Result<()> {
    let id: usize =
        k.trim().parse().map_err(|_| anyhow::anyhow!("{name}:{line}: names id `{}` is not a number", k.trim()))?;
    if by_id.insert(id, unquote(n)).is_some() {
        bail!("{name}:{line}: names id {id} given twice");
    }
    Ok(())
}

/// Reads `root/data.yaml`.
pub fn read_data_yaml(root: &Path) -> Result<DataYaml> {
    let p = root.join("data.yaml");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!("{}: cannot read; expected a data.yaml with the class names (Ultralytics layout)", p.display())
    })?;
    parse_data_yaml(&text, &p.display().to_string())
}

/// The image folder of `split` and its companion (`labels` for detection, `masks` for
/// segmentation): the `data.yaml` entry if any (e.g. `images/train`), else `images/<split>` (val and
/// test stand in for each other); the companion lives where `images` is replaced by its name, as
/// Ultralytics looks labels up. `pattern` (e.g. `*.txt`) is what the companion holds, for the error.
pub fn split_folders(
    root: &Path,
    split: &str,
    yaml_splits: &BTreeMap<String, String>,
    companion: &str,
    pattern: &str,
) -> Result<(PathBuf, PathBuf)> {
    let mut candidates: Vec<String> = Vec::new();
    let alts: &[&str] = match split {
        "val" => &["val", "test"],
        "test" => &["test", "val"],
        s => &[s][..],
    };
    for s in alts {
        // data.yaml usually names the default folder itself; each place is listed once in the error.
        for rel in yaml_splits.get(*s).cloned().into_iter().chain([format!("images/{s}")]) {
            if !candidates.contains(&rel) {
                candidates.push(rel);
            }
        }
    }
    for rel in &candidates {
        let images = root.join(rel);
        if images.is_dir() {
            let companion_rel: Vec<String> = Path::new(rel)
                .iter()
                .map(|c| if c == "images" { companion.into() } else { c.to_string_lossy().into_owned() })
                .collect();
            return Ok((images, root.join(companion_rel.join("/"))));
        }
    }
    bail!(
        "{}: no image folder for split `{split}`; looked for {}; expected data.yaml, images/<split>/*.png and \
         {companion}/<split>/{pattern}",
        root.display(),
        candidates.iter().map(|c| root.join(c).display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_form() {
        let want = vec!["background".to_string(), "0".into(), "a b".into()];
        for text in [
            "path: .\ntrain: images/train\nnames: [background, \"0\", 'a b']\n",
            "names:\n  - background\n  - \"0\"\n  - a b  # comment\n",
            "names:\n  0: background\n  2: a b\n  1: '0'\n",
            "names: {0: background, 1: \"0\", 2: a b}\n",
        ] {
            let y = parse_data_yaml(text, "d.yaml").unwrap();
            assert_eq!(y.names, want, "{text}");
        }
        let y = parse_data_yaml("train: images/train\nval: images/val\nnames: [x]", "d").unwrap();
        assert_eq!(y.splits["val"], "images/val");
    }

    #[test]
    fn bad_names_say_file_line_and_rule() {
        for (text, what) in [
            ("path: .\nnames: [a, b\n", "d.yaml:2: names: unclosed"),
            ("names:\n  0: a\n  2: b\n", "no id 1"),
            ("names:\n  x: a\n", "not a number"),
            ("path: .\n", "no `names:`"),
            ("names: cats\n", "expected a list"),
        ] {
            let e = parse_data_yaml(text, "d.yaml").unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("d.yaml"), "{text}: {e}");
        }
    }
}
