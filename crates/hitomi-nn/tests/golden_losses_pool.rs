//! Reproduces every case of `reference/ops/losses.*` (cross-entropy with label smoothing and
//! ignore index, BCE with logits, sigmoid focal, GIoU, L1, smooth L1, softmax, log-softmax) and of
//! `reference/ops/pool.*` (max 3x3/s2/p1, max 2x2, avg 2x2 on an odd size, adaptive avg 1x1):
//! forward values and the gradients of the inputs for the stored upstream gradient.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use hitomi_core::testing::{assert_close, load_reference, load_reference_json};
use hitomi_nn::losses::*;
use hitomi_nn::pool::{avg_pool2d, global_avg_pool, max_pool2d};
use serde_json::Value;

/// A reference case's computation from its named inputs.
type CaseFn = Box<dyn Fn(&HashMap<String, Tensor>) -> Tensor>;

fn reduction(p: &Value) -> Reduction {
    match p["reduction"].as_str() {
        Some("none") => Reduction::None,
        Some("sum") => Reduction::Sum,
        _ => Reduction::Mean,
    }
}

/// Runs `f` on the case's inputs (the differentiated ones as variables) and checks the output
/// (scalar or tensor) and every listed gradient.
fn check_case(case: &Value, t: &HashMap<String, Tensor>, f: &dyn Fn(&HashMap<String, Tensor>) -> Tensor) {
    let name = case["name"].as_str().unwrap();
    let mut inputs = HashMap::new();
    let mut vars = HashMap::new();
    for (role, spec) in case["inputs"].as_object().unwrap() {
        let tensor = t[spec["key"].as_str().unwrap()].clone();
        if case["gradients"].get(role).is_some() {
            let v = Var::from_tensor(&tensor).unwrap();
            inputs.insert(role.clone(), v.as_tensor().clone());
            vars.insert(role.clone(), v);
        } else {
            inputs.insert(role.clone(), tensor);
        }
    }
    let out = f(&inputs);
    let up = &case["upstream_gradient"];
    let objective = if let Some(v) = case["scalars"]["output"].as_f64() {
        let got = out.to_scalar::<f32>().unwrap() as f64;
        assert!((got - v).abs() <= 1e-5 * v.abs().max(1e-6), "{name}: loss {got}, expected {v}");
        (out * up["value"].as_f64().unwrap()).unwrap()
    } else {
        let exp = &t[case["outputs"]["output"]["key"].as_str().unwrap()];
        assert_close(&format!("{name} output"), &out, exp, 1e-5, 1e-5, true).unwrap();
        (out * &t[up["key"].as_str().unwrap()]).unwrap().sum_all().unwrap()
    };
    let grads = objective.backward().unwrap();
    for (role, spec) in case["gradients"].as_object().unwrap() {
        let got = grads.get(vars[role].as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient for {role}"));
        assert_close(&format!("{name} grad_{role}"), got, &t[spec["key"].as_str().unwrap()], 1e-5, 1e-5, true).unwrap();
    }
}

#[test]
fn losses_match_pytorch_and_torchvision() {
    let t = load_reference("ops/losses.safetensors").unwrap();
    let cases = load_reference_json("ops/losses.json").unwrap();
    let mut seen = 0;
    for case in cases["cases"].as_array().unwrap() {
        let p = case["params"].clone();
        let red = reduction(&p);
        let f: CaseFn = match case["function"].as_str().unwrap() {
            "torch.nn.functional.cross_entropy" => {
                let opts = CrossEntropyOptions {
                    label_smoothing: p["label_smoothing"].as_f64().unwrap_or(0.0) as f32,
                    ignore_index: p["ignore_index"].as_u64().map(|v| v as u32),
                    reduction: red,
                };
                Box::new(move |i| {
                    cross_entropy(&i["logits"], &i["target"].to_dtype(DType::U32).unwrap(), &opts).unwrap()
                })
            }
            "torch.nn.functional.binary_cross_entropy_with_logits" => {
                Box::new(move |i| bce_with_logits(&i["logits"], &i["target"], red).unwrap())
            }
            "torchvision.ops.sigmoid_focal_loss" => {
                let (a, g) = (p["alpha"].as_f64().unwrap() as f32, p["gamma"].as_f64().unwrap() as f32);
                Box::new(move |i| sigmoid_focal_loss(&i["inputs"], &i["targets"], a, g, red).unwrap())
            }
            "torchvision.ops.generalized_box_iou_loss" => {
                Box::new(move |i| giou_loss(&i["boxes1"], &i["boxes2"], red).unwrap())
            }
            "torch.nn.functional.l1_loss" => Box::new(move |i| l1_loss(&i["input"], &i["target"], red).unwrap()),
            "torch.nn.functional.smooth_l1_loss" => {
                let beta = p["beta"].as_f64().unwrap();
                Box::new(move |i| smooth_l1_loss(&i["input"], &i["target"], beta, red).unwrap())
            }
            "torch.nn.functional.softmax" => Box::new(|i| softmax(&i["input"], 1).unwrap()),
            "torch.nn.functional.log_softmax" => Box::new(|i| log_softmax(&i["input"], 1).unwrap()),
            other => panic!("unexpected reference function {other}"),
        };
        check_case(case, &t, f.as_ref());
        seen += 1;
    }
    assert_eq!(seen, 14);
}

#[test]
fn pooling_matches_pytorch() {
    let t = load_reference("ops/pool.safetensors").unwrap();
    let cases = load_reference_json("ops/pool.json").unwrap();
    let mut seen = 0;
    for case in cases["cases"].as_array().unwrap() {
        let p = case["params"].clone();
        let k = p["kernel_size"][0].as_u64().unwrap_or(0) as usize;
        let s = p["stride"][0].as_u64().unwrap_or(0) as usize;
        let pad = p["padding"][0].as_u64().unwrap_or(0) as usize;
        let f: CaseFn = match case["function"].as_str().unwrap() {
            "torch.nn.functional.max_pool2d" => Box::new(move |i| max_pool2d(&i["input"], k, s, pad).unwrap()),
            "torch.nn.functional.avg_pool2d" => Box::new(move |i| avg_pool2d(&i["input"], k, s).unwrap()),
            "torch.nn.functional.adaptive_avg_pool2d" => {
                Box::new(|i| global_avg_pool(&i["input"]).unwrap().unsqueeze(2).unwrap().unsqueeze(3).unwrap())
            }
            other => panic!("unexpected reference function {other}"),
        };
        check_case(case, &t, f.as_ref());
        seen += 1;
    }
    assert_eq!(seen, 4);
}
