//! Golden tests against `tests/fixtures/reference/ops/losses.{json,safetensors}` (PyTorch 2.15,
//! torchvision 0.29): one test per reference case, checking the forward value and the input
//! gradients for the stored upstream gradient, with the ops tolerances of the reference README.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Tensor, Var};
use hitomi_core::testing::{assert_close, load_reference_json, reference_case};
use hitomi_nn::losses::{
    bce_with_logits, cross_entropy, giou_loss, l1_loss, log_softmax, sigmoid_focal_loss, smooth_l1_loss, softmax,
    CrossEntropyOptions, Reduction,
};
use serde_json::{json, Value};

/// A case's inputs by role (`logits`, `target`, ...), as in its `inputs` object.
type Inputs = HashMap<String, Tensor>;

/// Every case of `ops/losses.json`, each reproduced by the test of the same name below.
const CASES: [&str; 14] = [
    "ce_nc",
    "ce_nc_label_smoothing",
    "ce_nchw_ignore255",
    "ce_nchw_ignore255_label_smoothing",
    "bce_logits_mean",
    "bce_logits_none",
    "sigmoid_focal_sum",
    "giou_loss_none",
    "giou_loss_mean",
    "l1_mean",
    "smooth_l1_beta1_mean",
    "smooth_l1_beta0.125_sum",
    "softmax_dim1",
    "log_softmax_dim1",
];

/// Reproduces case `name` of `ops/losses.json`: checks that the case's function and `params` include
/// what the test passes (`function`, `params`), runs `f` on the inputs (those with reference gradients
/// as `Var`s), compares the output with `scalars.output` (relative 1e-5) or `outputs.output`, then
/// back-propagates `output * upstream` and compares every reference gradient.
fn reproduce(
    name: &str,
    function: &str,
    params: Value,
    f: impl Fn(&Inputs) -> candle_core::Result<Tensor>,
) -> Result<()> {
    let (case, t) = reference_case("losses", name, function, &params)?;
    let tensor = |spec: &Value| -> Result<Tensor> {
        let key = spec["key"].as_str().context("key")?;
        t.get(key).cloned().with_context(|| format!("{name}: no tensor {key}"))
    };

    let mut inputs = Inputs::new();
    let mut vars = HashMap::new();
    for (role, spec) in case["inputs"].as_object().context("inputs")? {
        let x = tensor(spec)?;
        if case["gradients"].get(role).is_some() {
            let v = Var::from_tensor(&x)?;
            inputs.insert(role.clone(), v.as_tensor().clone());
            vars.insert(role.clone(), v);
        } else {
            inputs.insert(role.clone(), x);
        }
    }
    let out = f(&inputs)?;

    let up = &case["upstream_gradient"];
    let objective = if let Some(exp) = case["scalars"]["output"].as_f64() {
        let got = out.to_scalar::<f32>().with_context(|| format!("{name}: scalar output expected"))? as f64;
        ensure!((got - exp).abs() <= 1e-5 * exp.abs(), "{name}: loss {got}, expected {exp}");
        (out * up["value"].as_f64().context("upstream_gradient.value")?)?
    } else {
        assert_close(&format!("{name} output"), &out, &tensor(&case["outputs"]["output"])?, 1e-5, 1e-5, true)?;
        (out * tensor(up)?)?.sum_all()?
    };

    let grads = objective.backward()?;
    let expected = case["gradients"].as_object().context("gradients")?;
    ensure!(!expected.is_empty(), "{name}: no reference gradients");
    for (role, spec) in expected {
        let Some(got) = grads.get(vars[role].as_tensor()) else { bail!("{name}: no gradient reached {role}") };
        assert_close(&format!("{name} grad_{role}"), got, &tensor(spec)?, 1e-5, 1e-5, true)?;
    }
    Ok(())
}

/// Class targets are int64 in the fixtures; the losses take u32 (255 stays 255).
fn classes(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::U32)
}

#[test]
fn every_reference_case_has_a_test() -> Result<()> {
    let all = load_reference_json("ops/losses.json")?;
    let names: Vec<&str> =
        all["cases"].as_array().context("cases")?.iter().filter_map(|c| c["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut ours = CASES.to_vec();
    ours.sort_unstable();
    ensure!(sorted == ours, "reference cases {names:?}, tests for {CASES:?}");
    Ok(())
}

/// `ce_nc`: (8, 5) logits, mean over all rows.
#[test]
fn ce_nc() -> Result<()> {
    reproduce("ce_nc", "torch.nn.functional.cross_entropy", json!({"reduction": "mean", "label_smoothing": 0.0}), |i| {
        let opts = CrossEntropyOptions { label_smoothing: 0.0, ignore_index: None, reduction: Reduction::Mean };
        cross_entropy(&i["logits"], &classes(&i["target"])?, &opts)
    })
}

/// `ce_nc_label_smoothing`: (8, 5) logits, ε = 0.1.
#[test]
fn ce_nc_label_smoothing() -> Result<()> {
    reproduce(
        "ce_nc_label_smoothing",
        "torch.nn.functional.cross_entropy",
        json!({"reduction": "mean", "label_smoothing": 0.1}),
        |i| {
            let opts = CrossEntropyOptions { label_smoothing: 0.1, ignore_index: None, reduction: Reduction::Mean };
            cross_entropy(&i["logits"], &classes(&i["target"])?, &opts)
        },
    )
}

/// `ce_nchw_ignore255`: (2, 5, 6, 7) logits, 17 pixels ignored, mean over the others.
#[test]
fn ce_nchw_ignore255() -> Result<()> {
    reproduce(
        "ce_nchw_ignore255",
        "torch.nn.functional.cross_entropy",
        json!({"reduction": "mean", "ignore_index": 255, "label_smoothing": 0.0}),
        |i| {
            let opts =
                CrossEntropyOptions { label_smoothing: 0.0, ignore_index: Some(255), reduction: Reduction::Mean };
            cross_entropy(&i["logits"], &classes(&i["target"])?, &opts)
        },
    )
}

/// `ce_nchw_ignore255_label_smoothing`: per-pixel, 15 ignored, ε = 0.1 (smoothing term masked too).
#[test]
fn ce_nchw_ignore255_label_smoothing() -> Result<()> {
    reproduce(
        "ce_nchw_ignore255_label_smoothing",
        "torch.nn.functional.cross_entropy",
        json!({"reduction": "mean", "ignore_index": 255, "label_smoothing": 0.1}),
        |i| {
            let opts =
                CrossEntropyOptions { label_smoothing: 0.1, ignore_index: Some(255), reduction: Reduction::Mean };
            cross_entropy(&i["logits"], &classes(&i["target"])?, &opts)
        },
    )
}

/// `bce_logits_mean`: soft targets, mean.
#[test]
fn bce_logits_mean() -> Result<()> {
    reproduce(
        "bce_logits_mean",
        "torch.nn.functional.binary_cross_entropy_with_logits",
        json!({"reduction": "mean", "pos_weight": null}),
        |i| bce_with_logits(&i["logits"], &i["target"], Reduction::Mean),
    )
}

/// `bce_logits_none`: soft targets, per element.
#[test]
fn bce_logits_none() -> Result<()> {
    reproduce(
        "bce_logits_none",
        "torch.nn.functional.binary_cross_entropy_with_logits",
        json!({"reduction": "none", "pos_weight": null}),
        |i| bce_with_logits(&i["logits"], &i["target"], Reduction::None),
    )
}

/// `sigmoid_focal_sum`: alpha 0.25, gamma 2, sum.
#[test]
fn sigmoid_focal_sum() -> Result<()> {
    reproduce(
        "sigmoid_focal_sum",
        "torchvision.ops.sigmoid_focal_loss",
        json!({"alpha": 0.25, "gamma": 2.0, "reduction": "sum"}),
        |i| sigmoid_focal_loss(&i["inputs"], &i["targets"], 0.25, 2.0, Reduction::Sum),
    )
}

/// `giou_loss_none`: 8 pairs (near-identical, disjoint, contained, ...), per pair.
#[test]
fn giou_loss_none() -> Result<()> {
    reproduce(
        "giou_loss_none",
        "torchvision.ops.generalized_box_iou_loss",
        json!({"reduction": "none", "eps": 1e-7, "box_format": "xyxy"}),
        |i| giou_loss(&i["boxes1"], &i["boxes2"], Reduction::None),
    )
}

/// `giou_loss_mean`: the same kinds of pairs, mean.
#[test]
fn giou_loss_mean() -> Result<()> {
    reproduce(
        "giou_loss_mean",
        "torchvision.ops.generalized_box_iou_loss",
        json!({"reduction": "mean", "eps": 1e-7, "box_format": "xyxy"}),
        |i| giou_loss(&i["boxes1"], &i["boxes2"], Reduction::Mean),
    )
}

/// `l1_mean`.
#[test]
fn l1_mean() -> Result<()> {
    reproduce("l1_mean", "torch.nn.functional.l1_loss", json!({"reduction": "mean"}), |i| {
        l1_loss(&i["input"], &i["target"], Reduction::Mean)
    })
}

/// `smooth_l1_beta1_mean`: beta 1, mean.
#[test]
fn smooth_l1_beta1_mean() -> Result<()> {
    reproduce(
        "smooth_l1_beta1_mean",
        "torch.nn.functional.smooth_l1_loss",
        json!({"reduction": "mean", "beta": 1.0}),
        |i| smooth_l1_loss(&i["input"], &i["target"], 1.0, Reduction::Mean),
    )
}

/// `smooth_l1_beta0.125_sum`: beta 0.125, sum.
#[test]
fn smooth_l1_beta0_125_sum() -> Result<()> {
    reproduce(
        "smooth_l1_beta0.125_sum",
        "torch.nn.functional.smooth_l1_loss",
        json!({"reduction": "sum", "beta": 0.125}),
        |i| smooth_l1_loss(&i["input"], &i["target"], 0.125, Reduction::Sum),
    )
}

/// `softmax_dim1`: (4, 10), row 2 offset by +100.
#[test]
fn softmax_dim1() -> Result<()> {
    reproduce("softmax_dim1", "torch.nn.functional.softmax", json!({"dim": 1}), |i| softmax(&i["input"], 1))
}

/// `log_softmax_dim1`: (4, 10), row 2 offset by +100.
#[test]
fn log_softmax_dim1() -> Result<()> {
    reproduce("log_softmax_dim1", "torch.nn.functional.log_softmax", json!({"dim": 1}), |i| log_softmax(&i["input"], 1))
}
