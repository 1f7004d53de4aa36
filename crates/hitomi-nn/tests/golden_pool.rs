//! Golden tests against `tests/fixtures/reference/ops/pool.{json,safetensors}` (PyTorch 2.15): one
//! test per reference case, checking the pooled output and the input gradient for the stored
//! upstream gradient `<case>.grad_output`, with the ops tolerance of the reference README.

use anyhow::Result;
use hitomi_core::testing::{assert_cases_covered, reproduce_unary};
use hitomi_nn::pool::{avg_pool2d, global_avg_pool, max_pool2d};
use serde_json::json;

/// Every case of `ops/pool.json`, each reproduced by the test of the same name below.
const CASES: [&str; 4] = ["max_k3_s2_p1", "max_k2_s2", "avg_k2_s2", "adaptive_avg_1x1"];

#[test]
fn every_reference_case_has_a_test() -> Result<()> {
    assert_cases_covered("pool", &CASES)
}

/// `max_k3_s2_p1`: ResNet's stem pool, 11x14 -> 6x7, overlapping windows and -inf padding.
#[test]
fn max_k3_s2_p1() -> Result<()> {
    reproduce_unary(
        "pool",
        "max_k3_s2_p1",
        "torch.nn.functional.max_pool2d",
        json!({"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": false}),
        |x| max_pool2d(x, 3, 2, 1),
    )
}

/// `max_k2_s2`: 10x13 -> 5x6, the last column dropped (floor mode).
#[test]
fn max_k2_s2() -> Result<()> {
    reproduce_unary(
        "pool",
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
    reproduce_unary(
        "pool",
        "avg_k2_s2",
        "torch.nn.functional.avg_pool2d",
        json!({"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": false}),
        |x| avg_pool2d(x, 2, 2),
    )
}

/// `adaptive_avg_1x1`: adaptive_avg_pool2d to 1x1, i.e. `global_avg_pool` with the two unit dims kept.
#[test]
fn adaptive_avg_1x1() -> Result<()> {
    reproduce_unary(
        "pool",
        "adaptive_avg_1x1",
        "torch.nn.functional.adaptive_avg_pool2d",
        json!({"output_size": [1, 1]}),
        |x| global_avg_pool(x)?.unsqueeze(2)?.unsqueeze(3),
    )
}
