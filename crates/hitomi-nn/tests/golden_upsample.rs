//! Golden tests against `tests/fixtures/reference/ops/upsample.{json,safetensors}` (PyTorch 2.15): one
//! test per reference case, checking the resized output and the input gradient for the stored
//! upstream gradient `<case>.grad_output`, with the ops tolerance of the reference README.

use anyhow::Result;
use hitomi_core::testing::{assert_cases_covered, reproduce_unary};
use hitomi_nn::upsample::{upsample2d, upsample_bilinear2d, UpsampleMode};
use serde_json::json;

/// Every case of `ops/upsample.json`, each reproduced by the test of the same name below.
const CASES: [&str; 3] = ["bilinear_x2", "nearest_x2", "bilinear_size_13x17"];

#[test]
fn every_reference_case_has_a_test() -> Result<()> {
    assert_cases_covered("upsample", &CASES)
}

/// `bilinear_x2`: 5x7 -> 10x14 (scale_factor 2), align_corners=False; the clamp at 0 and the last
/// pixel's missing right neighbour both occur on every border.
#[test]
fn bilinear_x2() -> Result<()> {
    reproduce_unary(
        "upsample",
        "bilinear_x2",
        "torch.nn.functional.interpolate",
        json!({"mode": "bilinear", "align_corners": false, "output_size": [10, 14]}),
        |x| upsample_bilinear2d(x, (10, 14)),
    )
}

/// `nearest_x2`: 5x7 -> 10x14, each input pixel copied to a 2x2 block and receiving its 4 gradients.
#[test]
fn nearest_x2() -> Result<()> {
    reproduce_unary(
        "upsample",
        "nearest_x2",
        "torch.nn.functional.interpolate",
        json!({"mode": "nearest", "output_size": [10, 14]}),
        |x| upsample2d(x, (10, 14), UpsampleMode::Nearest),
    )
}

/// `bilinear_size_13x17`: 5x7 -> 13x17, a non-integer scale, so the taps drift across pixels unevenly.
#[test]
fn bilinear_size_13x17() -> Result<()> {
    reproduce_unary(
        "upsample",
        "bilinear_size_13x17",
        "torch.nn.functional.interpolate",
        json!({"mode": "bilinear", "size": [13, 17], "align_corners": false, "output_size": [13, 17]}),
        |x| upsample2d(x, (13, 17), UpsampleMode::Bilinear { align_corners: false }),
    )
}
