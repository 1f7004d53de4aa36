//! Golden-value helpers for tests: where the reference fixtures live and the tolerance check of
//! `tests/fixtures/reference/README.md`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor, Var};

/// `tests/fixtures/reference` of the workspace (copied from `../shared/reference`).
pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference")
}

/// The tensors of `ops/<name>.safetensors` (or any path under the reference folder).
pub fn load_reference(rel: &str) -> Result<HashMap<String, Tensor>> {
    let p = reference_dir().join(rel);
    candle_core::safetensors::load(&p, &Device::Cpu).with_context(|| format!("{}: cannot load fixture", p.display()))
}

/// The JSON of a reference file.
pub fn load_reference_json(rel: &str) -> Result<serde_json::Value> {
    let p = reference_dir().join(rel);
    let s = std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read fixture", p.display()))?;
    Ok(serde_json::from_str(&s)?)
}

/// Checks |got - exp| <= rtol*|exp| + atol*max(1, max|exp|) element-wise (the ops tolerance of the
/// reference README with rtol = atol = 1e-5; the resnet18 one uses max|exp| without the 1).
pub fn assert_close(what: &str, got: &Tensor, exp: &Tensor, rtol: f64, atol: f64, floor_one: bool) -> Result<()> {
    if got.dims() != exp.dims() {
        bail!("{what}: shape {:?}, expected {:?}", got.dims(), exp.dims());
    }
    let g: Vec<f32> = got.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
    let e: Vec<f32> = exp.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
    let emax = e.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    let scale = if floor_one { emax.max(1.0) } else { emax };
    let mut worst = (0usize, 0f64);
    for (i, (&a, &b)) in g.iter().zip(&e).enumerate() {
        let err = (a as f64 - b as f64).abs();
        let tol = rtol * (b as f64).abs() + atol * scale;
        // NaN compares false: count it as a failure too.
        let bad = err.partial_cmp(&tol).is_none_or(|o| o == std::cmp::Ordering::Greater);
        if bad && err - tol > worst.1 {
            worst = (i, err - tol);
        }
        if !err.is_finite() {
            bail!("{what}: element {i} is {a}, expected {b}");
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        bail!("{what}: element {i} is {}, expected {} (beyond tolerance by {:.3e})", g[i], e[i], worst.1);
    }
    Ok(())
}

/// Largest relative error max|got-exp| / max|exp| (for reporting parity).
pub fn max_rel_error(got: &Tensor, exp: &Tensor) -> Result<f64> {
    let d = (got - exp)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
    let m = exp.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
    Ok(d / m.max(1e-30))
}

/// Case `name` of the reference file `ops/<file>.json` with the tensors of `ops/<file>.safetensors`,
/// after checking that the case calls `function` with (at least) the given `params`, so a test
/// cannot silently drift from the case it claims to reproduce.
pub fn reference_case(
    file: &str,
    name: &str,
    function: &str,
    params: &serde_json::Value,
) -> Result<(serde_json::Value, HashMap<String, Tensor>)> {
    let all = load_reference_json(&format!("ops/{file}.json"))?;
    let tensors = load_reference(&format!("ops/{file}.safetensors"))?;
    let case = all["cases"]
        .as_array()
        .context("cases")?
        .iter()
        .find(|c| c["name"] == name)
        .with_context(|| format!("no case {name} in ops/{file}.json"))?
        .clone();
    if case["function"] != function {
        bail!("{name}: reference function is {}, the test calls {function}", case["function"]);
    }
    for (k, v) in params.as_object().context("params must be an object")? {
        if &case["params"][k] != v {
            bail!("{name}: param {k} is {} in the reference, the test uses {v}", case["params"][k]);
        }
    }
    Ok((case, tensors))
}

/// Checks that the case names of `ops/<file>.json` are exactly `ours` (the tests written for it).
pub fn assert_cases_covered(file: &str, ours: &[&str]) -> Result<()> {
    let all = load_reference_json(&format!("ops/{file}.json"))?;
    let mut names: Vec<&str> =
        all["cases"].as_array().context("cases")?.iter().filter_map(|c| c["name"].as_str()).collect();
    names.sort_unstable();
    let mut ours = ours.to_vec();
    ours.sort_unstable();
    ensure!(names == ours, "reference cases {names:?}, tests for {ours:?}");
    Ok(())
}

/// Reproduces a one-input case `name` of `ops/<file>.json` (see `reference_case`): applies `f` to its
/// `input` (a `Var`), compares with `<name>.output`, back-propagates sum(output * `<name>.grad_output`)
/// and compares the input gradient with `<name>.grad_input`, at the ops tolerance (1e-5).
pub fn reproduce_unary(
    file: &str,
    name: &str,
    function: &str,
    params: serde_json::Value,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<()> {
    let (_case, t) = reference_case(file, name, function, &params)?;
    let tensor = |key: String| t.get(&key).cloned().with_context(|| format!("{name}: no tensor {key}"));
    let input = Var::from_tensor(&tensor(format!("{name}.input"))?)?;
    let out = f(input.as_tensor())?;
    assert_close(&format!("{name} output"), &out, &tensor(format!("{name}.output"))?, 1e-5, 1e-5, true)?;
    let grads = (out * tensor(format!("{name}.grad_output"))?)?.sum_all()?.backward()?;
    let got = grads.get(input.as_tensor()).with_context(|| format!("{name}: no gradient reached the input"))?;
    assert_close(&format!("{name} grad_input"), got, &tensor(format!("{name}.grad_input"))?, 1e-5, 1e-5, true)
}
