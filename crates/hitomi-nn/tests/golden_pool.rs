//! Golden tests against `tests/fixtures/reference/ops/pool.{json,safetensors}` (PyTorch 2.15): one
//! test per reference case, checking the pooled output and the input gradient for the stored
//! upstream gradient `<case>.grad_output`, with the ops tolerance of the reference README.

use anyhow::{ensure, Context, Result};
use candle_core::{Tensor, Var};
use hitomi_core::testing::{assert_close, load_reference_json, reference_case};
use hitomi_nn::pool::{avg_pool2d, global_avg_pool, max_pool2d};
use serde_json::{json, Value};

/// Every case of `ops/pool.json`, each reproduced by the test of the same name below.
const CASES: [&str; 4] = ["max_k3_s2_p1", "max_k2_s2", "avg_k2_s2", "adaptive_avg_1x1"];

/// Reproduces case `name` of `ops/pool.json`: checks that the case's function and `params` include
/// what the test passes, pools its `input` (a `Var`) with `f`, compares with `<name>.output`, then
/// back-propagates sum(output * `<name>.grad_output`) and compares with `<name>.grad_input`.
fn reproduce(
    name: &str,
    function: &str,
    params: Value,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<()> {
    let (_case, t) = reference_case("pool", name, function, &params)?;
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
    let all = load_reference_json("ops/pool.json")?;
    let mut names: Vec<&str> =
        all["cases"].as_array().context("cases")?.iter().filter_map(|c| c["name"].as_str()).collect();
    names.sort_unstable();
    let mut ours = CASES.to_vec();
    ours.sort_unstable();
    ensure!(names == ours, "reference cases {names:?}, tests for {CASES:?}");
    Ok(())
}

/// `max_k3_s2_p1`: ResNet's stem pool, 11x14 -> 6x7, overlapping windows and -inf padding.
#[test]
fn max_k3_s2_p1() -> Result<()> {
    reproduce(
        "max_k3_s2_p1",
        "torch.nn.functional.max_pool2d",
        json!({"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": false}),
        |x| max_pool2d(x, 3, 2, 1),
    )
}

/// `max_k2_s2`: 10x13 -> 5x6, the last column dropped (floor mode).
#[test]
fn max_k2_s2() -> Result<()> {
    reproduce(
        "max_k2_s2",
        "torch.nn.functional.max_pool2d",
        json!({"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1], "ceil_mode": false}),
        |x| max_pool2d(x, 2, 2, 0),
    )
}

/// `avg_k2_s2`: 9x12 -> 4x6, the last row dropped (floor mode): candle's own backward (the gradient
/// upsampled to 9x12 by nearest neighbour) would misplace rows and feed the dropped one.
#[test]
fn avg_k2_s2() -> Result<()> {
    reproduce(
        "avg_k2_s2",
        "torch.nn.functional.avg_pool2d",
        json!({"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": false}),
        |x| avg_pool2d(x, 2, 2),
    )
}

/// `adaptive_avg_1x1`: adaptive_avg_pool2d to 1x1, i.e. `global_avg_pool` with the two unit dims kept.
#[test]
fn adaptive_avg_1x1() -> Result<()> {
    reproduce("adaptive_avg_1x1", "torch.nn.functional.adaptive_avg_pool2d", json!({"output_size": [1, 1]}), |x| {
        global_avg_pool(x)?.unsqueeze(2)?.unsqueeze(3)
    })
}
