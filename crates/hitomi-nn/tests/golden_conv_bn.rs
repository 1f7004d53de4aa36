//! Reproduces `reference/ops/conv2d.*` (torch.nn.functional.conv2d, forward and the gradients of
//! input, weight and bias) and `reference/ops/conv_transpose2d.*` with hitomi's im2col + gemm
//! kernels, and `reference/ops/batch_norm2d.*`
//! (training mode with the running-statistics update, and eval mode) with `BatchNorm2d`.

use candle_core::{Device, Tensor, Var};
use hitomi_core::testing::{assert_close, load_reference, load_reference_json};
use hitomi_core::ParamStore;
use hitomi_nn::conv_op::{conv2d, conv_transpose2d, ConvGeom, ConvTransposeGeom};
use hitomi_nn::BatchNorm2d;

fn check(what: &str, got: &Tensor, exp: &Tensor) {
    assert_close(what, got, exp, 1e-5, 1e-5, true).unwrap();
}

#[test]
fn conv2d_forward_and_backward_match_pytorch() {
    let t = load_reference("ops/conv2d.safetensors").unwrap();
    let cases = load_reference_json("ops/conv2d.json").unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let p = &case["params"];
        let geom = ConvGeom {
            stride: p["stride"][0].as_u64().unwrap() as usize,
            padding: p["padding"][0].as_u64().unwrap() as usize,
            dilation: p["dilation"][0].as_u64().unwrap() as usize,
        };
        let x = Var::from_tensor(&t[&format!("{name}.input")]).unwrap();
        let w = Var::from_tensor(&t[&format!("{name}.weight")]).unwrap();
        let bias = t.get(&format!("{name}.bias")).map(|b| Var::from_tensor(b).unwrap());
        let mut y = conv2d(x.as_tensor(), w.as_tensor(), geom).unwrap();
        if let Some(b) = &bias {
            y = y.broadcast_add(&b.as_tensor().reshape((1, b.dims()[0], 1, 1)).unwrap()).unwrap();
        }
        check(&format!("{name} output"), &y, &t[&format!("{name}.output")]);
        let go = &t[&format!("{name}.grad_output")];
        let grads = (y * go).unwrap().sum_all().unwrap().backward().unwrap();
        check(&format!("{name} grad_input"), grads.get(x.as_tensor()).unwrap(), &t[&format!("{name}.grad_input")]);
        check(&format!("{name} grad_weight"), grads.get(w.as_tensor()).unwrap(), &t[&format!("{name}.grad_weight")]);
        if let Some(b) = &bias {
            check(&format!("{name} grad_bias"), grads.get(b.as_tensor()).unwrap(), &t[&format!("{name}.grad_bias")]);
        }
    }
}

#[test]
fn conv_transpose2d_forward_and_backward_match_pytorch() {
    let t = load_reference("ops/conv_transpose2d.safetensors").unwrap();
    let cases = load_reference_json("ops/conv_transpose2d.json").unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let p = &case["params"];
        let geom = ConvTransposeGeom {
            stride: p["stride"][0].as_u64().unwrap() as usize,
            padding: p["padding"][0].as_u64().unwrap() as usize,
            output_padding: p["output_padding"][0].as_u64().unwrap() as usize,
            dilation: p["dilation"][0].as_u64().unwrap() as usize,
        };
        let x = Var::from_tensor(&t[&format!("{name}.input")]).unwrap();
        let w = Var::from_tensor(&t[&format!("{name}.weight")]).unwrap();
        let b = Var::from_tensor(&t[&format!("{name}.bias")]).unwrap();
        let y = conv_transpose2d(x.as_tensor(), w.as_tensor(), geom).unwrap();
        let y = y.broadcast_add(&b.as_tensor().reshape((1, b.dims()[0], 1, 1)).unwrap()).unwrap();
        check(&format!("{name} output"), &y, &t[&format!("{name}.output")]);
        let grads = (y * &t[&format!("{name}.grad_output")]).unwrap().sum_all().unwrap().backward().unwrap();
        for (role, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
            check(
                &format!("{name} grad_{role}"),
                grads.get(v.as_tensor()).unwrap(),
                &t[&format!("{name}.grad_{role}")],
            );
        }
    }
}

#[test]
fn batch_norm_train_and_eval_match_pytorch() {
    let t = load_reference("ops/batch_norm2d.safetensors").unwrap();
    for (case, train) in [("train", true), ("eval", false)] {
        let store = ParamStore::new(0, &Device::Cpu);
        let bn = BatchNorm2d::new(&store.root(), 4).unwrap();
        for leaf in ["weight", "bias", "running_mean", "running_var"] {
            store.var(leaf).unwrap().set(&t[&format!("{case}.{leaf}")]).unwrap();
        }
        let x = Var::from_tensor(&t[&format!("{case}.input")]).unwrap();
        let y = bn.forward(x.as_tensor(), train).unwrap();
        check(&format!("{case} output"), &y, &t[&format!("{case}.output")]);
        let grads = (y * &t[&format!("{case}.grad_output")]).unwrap().sum_all().unwrap().backward().unwrap();
        check(&format!("{case} grad_input"), grads.get(x.as_tensor()).unwrap(), &t[&format!("{case}.grad_input")]);
        for leaf in ["weight", "bias"] {
            let v = store.var(leaf).unwrap();
            check(
                &format!("{case} grad_{leaf}"),
                grads.get(v.as_tensor()).unwrap(),
                &t[&format!("{case}.grad_{leaf}")],
            );
        }
        if train {
            check(
                "running_mean_updated",
                store.var("running_mean").unwrap().as_tensor(),
                &t["train.running_mean_updated"],
            );
            check(
                "running_var_updated",
                store.var("running_var").unwrap().as_tensor(),
                &t["train.running_var_updated"],
            );
        }
    }
}
