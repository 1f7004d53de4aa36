//! Golden tests against `tests/fixtures/reference/ops/upsample.{json,safetensors}` (PyTorch 2.15): one
//! test per reference case, checking the resized output and the input gradient for the stored
//! upstream gradient `<case>.grad_output`, with the ops tolerance of the reference README.

use anyhow::{ensure, Context, Result};
use candle_core::{Tensor, Var};
use hitomi_core::testing::{assert_close, load_reference_json, reference_case};
use hitomi_nn::upsample::{upsample2d, upsample_bilinear2d, UpsampleMode};
use serde_json::{json, Value};

/// Every case of `ops/upsample.json`, each reproduced by the test of the same name below.
const CASES: [&str; 3] = ["bilinear_x2", "nearest_x2", "bilinear_size_13x17"];

/// Reproduces case `name` of `ops/upsample.json`: checks that the case's function and `params` include
/// what the test passes, resizes its `input` (a `Var`) with `f`, compares with `<name>.output`, then
/// back-propagates sum(output * `<name>.grad_output`) and compares with `<name>.grad_input`.
fn reproduce(
    name: &str,
    function: &str,
    params: Value,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<()> {
    let (_case, t) = reference_case("upsample", name, function, &params)?;
    let tensor = |key: String| t.get(&key).cloned().with_context(|| format!("{name}: no tensor {key}"));

    let input = Var::from_tensor(&tensor(format!("{name}.input"))?)?;
    let out = f(input.as_tensor())?;
    assert_close(&format!("{name} output"), &out, &tensor(format!("{name}.output"))?, 1e-5, 1e-5, true)?;

    let grads = (out * tensor(format!("{name}.grad_output"))?)?.sum_all()?.backward()?;
    let got = grads.get(input.as_tensor()).with_context(|| format!("{name}: no gradient reached the input"))?;
    assert_close(&format!("{name} grad_input"), got, &tensor(format!("{name}.grad_input"))?, 1e-5, 1e-5, true)
}

#[test]
fn every_reference_case_has_a_test() -> Result<()> {
    let all = load_reference_json("ops/upsample.json")?;
    let mut names: Vec<&str> =
        all["cases"].as_array().context("cases")?.iter().filter_map(|c| c["name"].as_str()).collect();
    names.sort_unstable();
    let mut ours = CASES.to_vec();
    ours.sort_unstable();
    ensure!(names == ours, "reference cases {names:?}, tests for {CASES:?}");
    Ok(())
}

/// `bilinear_x2`: 5x7 -> 10x14 (scale_factor 2), align_corners=False; the clamp at 0 and the last
/// pixel's missing right neighbour both occur on every border.
#[test]
fn bilinear_x2() -> Result<()> {
    reproduce(
        "bilinear_x2",
        "torch.nn.functional.interpolate",
        json!({"mode": "bilinear", "align_corners": false, "output_size": [10, 14]}),
        |x| upsample_bilinear2d(x, (10, 14)),
    )
}

/// `nearest_x2`: 5x7 -> 10x14, each input pixel copied to a 2x2 block and receiving its 4 gradients.
#[test]
fn nearest_x2() -> Result<()> {
    reproduce(
        "nearest_x2",
        "torch.nn.functional.interpolate",
        json!({"mode": "nearest", "output_size": [10, 14]}),
        |x| upsample2d(x, (10, 14), UpsampleMode::Nearest),
    )
}

/// `bilinear_size_13x17`: 5x7 -> 13x17, a non-integer scale, so the taps drift across pixels unevenly.
#[test]
fn bilinear_size_13x17() -> Result<()> {
    reproduce(
        "bilinear_size_13x17",
        "torch.nn.functional.interpolate",
        json!({"mode": "bilinear", "size": [13, 17], "align_corners": false, "output_size": [13, 17]}),
        |x| upsample2d(x, (13, 17), UpsampleMode::Bilinear { align_corners: false }),
    )
}
