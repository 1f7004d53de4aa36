//! The lecture's worked examples, reproduced with hitomi's layers: convolution as a sum of
//! products, output sizes, ReLU, pooling, softmax, cross-entropy, backprop by hand, batch norm and
//! the residual block.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use hitomi_core::ParamStore;
use hitomi_nn::losses::{cross_entropy, softmax, CrossEntropyOptions, Reduction};
use hitomi_nn::pool::{avg_pool2d, max_pool2d};
use hitomi_nn::{BasicBlock, BatchNorm2d, Conv2d, Conv2dConfig};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
}

/// 1 / (1 + e^-x), from candle ops (autograd follows).
fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

fn flat(x: &Tensor) -> Vec<f32> {
    x.flatten_all().unwrap().to_vec1().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

/// A 4x4 image and a 3x3 filter: each output is the sum of the element-wise products of the filter
/// with the window under it.
#[test]
fn convolution_is_a_sum_of_products() {
    let img = [1., 2., 0., 1., 0., 1., 3., 1., 2., 1., 0., 0., 1., 0., 2., 1.];
    let k = [1., 0., -1., 2., 0., -2., 1., 0., -1.];
    let store = ParamStore::new(0, &Device::Cpu);
    let conv =
        Conv2d::new(&store.root(), 1, 1, Conv2dConfig { kernel: 3, stride: 1, padding: 0, dilation: 1, bias: false })
            .unwrap();
    store.var("weight").unwrap().set(&t(&k, &[1, 1, 3, 3])).unwrap();
    let y = flat(&conv.forward(&t(&img, &[1, 1, 4, 4])).unwrap());
    // By hand, top-left window [[1,2,0],[0,1,3],[2,1,0]]: 1*1 + 0*2 - 1*0 + 2*0 + 0*1 - 2*3 + 1*2 + 0*1 - 1*0 = -3
    let mut want = Vec::new();
    for oy in 0..2 {
        for ox in 0..2 {
            let mut s = 0.0;
            for ky in 0..3 {
                for kx in 0..3 {
                    s += img[(oy + ky) * 4 + ox + kx] * k[ky * 3 + kx];
                }
            }
            want.push(s);
        }
    }
    assert_eq!(want[0], -3.0);
    close(&y, &want, 1e-6);
}

/// Output side = floor((W + 2p - k) / s) + 1, for several paddings and strides.
#[test]
fn output_size_formula() {
    let store = ParamStore::new(0, &Device::Cpu);
    for (w, k, s, p) in [(28, 3, 1, 1), (28, 3, 2, 1), (32, 5, 1, 0), (7, 3, 2, 0), (224, 7, 2, 3), (10, 1, 3, 0)] {
        let cfg = Conv2dConfig { kernel: k, stride: s, padding: p, dilation: 1, bias: false };
        let formula = (w + 2 * p - k) / s + 1;
        assert_eq!(cfg.out_size(w), formula);
        let conv = Conv2d::new(&store.root().pp(format!("c{w}_{k}_{s}_{p}")), 1, 2, cfg).unwrap();
        let y = conv.forward(&Tensor::zeros((1, 1, w, w), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(y.dims(), &[1, 2, formula, formula], "W={w} k={k} s={s} p={p}");
    }
}

#[test]
fn relu_keeps_positives_only() {
    let y = flat(&t(&[-2.0, -0.5, 0.0, 1.5, 3.0], &[5]).relu().unwrap());
    assert_eq!(y, vec![0.0, 0.0, 0.0, 1.5, 3.0]);
}

/// 2x2 pooling with stride 2 on a 4x4 map: the max and the mean of each block.
#[test]
fn max_and_average_pooling_2x2() {
    let x = t(&[1., 3., 2., 1., 4., 6., 5., 0., 3., 1., 1., 0., 1., 2., 2., 4.], &[1, 1, 4, 4]);
    assert_eq!(flat(&max_pool2d(&x, 2, 2, 0).unwrap()), vec![6., 5., 3., 4.]);
    close(&flat(&avg_pool2d(&x, 2, 2).unwrap()), &[3.5, 2.0, 1.75, 1.75], 1e-6);
}

#[test]
fn softmax_turns_scores_into_probabilities() {
    let p = flat(&softmax(&t(&[1.0, 2.0, 3.0], &[1, 3]), 1).unwrap());
    close(&p, &[0.090_030_57, 0.244_728_48, 0.665_240_94], 1e-6);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
}

/// y = (1, 0, 0, 0), p = (0.2, 0.2, 0.1, 0.5): E = -sum y log p = -log 0.2.
#[test]
fn cross_entropy_of_the_lecture_example() {
    let p = [0.2f64, 0.2, 0.1, 0.5];
    assert!((-(p[0].log10()) - 0.69897).abs() < 1e-5, "log10 as the lecture writes it");
    // Our loss takes logits: log p is a valid choice since softmax(log p) = p.
    let logits = t(&p.map(|v| v.ln() as f32), &[1, 4]);
    let y = Tensor::from_slice(&[0u32], 1, &Device::Cpu).unwrap();
    let opts = CrossEntropyOptions { label_smoothing: 0.0, ignore_index: None, reduction: Reduction::Mean };
    let e = cross_entropy(&logits, &y, &opts).unwrap().to_scalar::<f32>().unwrap();
    assert!((e - 1.6094).abs() < 1e-4, "natural log: {e}");
}

/// A 3-layer network (2 -> 2 -> 2 -> 1, sigmoid units, squared error): the deltas computed by hand
/// with the chain rule equal the gradients from autograd.
#[test]
fn backprop_by_hand_equals_autograd() {
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let x = [0.5f64, -1.0];
    let target = 0.25f64;
    let w1 = [[0.1f64, -0.2], [0.4, 0.3]];
    let w2 = [[0.7f64, -0.5], [0.2, 0.6]];
    let w3 = [[-0.3f64, 0.8]];
    let mv = |w: &[[f64; 2]], v: &[f64]| w.iter().map(|r| r[0] * v[0] + r[1] * v[1]).collect::<Vec<f64>>();
    // forward
    let z1 = mv(&w1, &x);
    let a1: Vec<f64> = z1.iter().map(|&z| sig(z)).collect();
    let z2 = mv(&w2, &a1);
    let a2: Vec<f64> = z2.iter().map(|&z| sig(z)).collect();
    let z3 = mv(&w3, &a2);
    let a3 = sig(z3[0]);
    // backward: delta_L = (a - t) * s'(z); delta_l = (W_{l+1}^T delta_{l+1}) * s'(z_l); dE/dW_l = delta_l a_{l-1}^T
    let d3 = (a3 - target) * a3 * (1.0 - a3);
    let d2: Vec<f64> = (0..2).map(|i| w3[0][i] * d3 * a2[i] * (1.0 - a2[i])).collect();
    let d1: Vec<f64> = (0..2).map(|i| (w2[0][i] * d2[0] + w2[1][i] * d2[1]) * a1[i] * (1.0 - a1[i])).collect();
    let g3 = [d3 * a2[0], d3 * a2[1]];
    let g2 = [d2[0] * a1[0], d2[0] * a1[1], d2[1] * a1[0], d2[1] * a1[1]];
    let g1 = [d1[0] * x[0], d1[0] * x[1], d1[1] * x[0], d1[1] * x[1]];

    let dev = Device::Cpu;
    let f = |w: &[f64]| {
        Var::from_tensor(&Tensor::from_vec(w.iter().map(|&v| v as f32).collect::<Vec<_>>(), w.len(), &dev).unwrap())
            .unwrap()
    };
    let (v1, v2, v3) = (f(&w1.concat()), f(&w2.concat()), f(&w3.concat()));
    let xs = Tensor::from_slice(&[0.5f32, -1.0], (2, 1), &dev).unwrap();
    let l1 = v1.as_tensor().reshape((2, 2)).unwrap().matmul(&xs).unwrap();
    let a1t = sigmoid(&l1).unwrap();
    let a2t = sigmoid(&v2.as_tensor().reshape((2, 2)).unwrap().matmul(&a1t).unwrap()).unwrap();
    let a3t = sigmoid(&v3.as_tensor().reshape((1, 2)).unwrap().matmul(&a2t).unwrap()).unwrap();
    let e = ((a3t - target).unwrap().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
    let grads = e.backward().unwrap();
    let g = |v: &Var| flat(grads.get(v.as_tensor()).unwrap());
    let c = |a: Vec<f32>, b: &[f64]| close(&a, &b.iter().map(|&v| v as f32).collect::<Vec<_>>(), 1e-6);
    c(g(&v3), &g3);
    c(g(&v2), &g2);
    c(g(&v1), &g1);
    assert!(g1.iter().all(|v| v.abs() > 1e-6), "the first layer receives a gradient");
}

/// Batch norm in training mode: each channel of the output has mean 0 and variance 1 (before the
/// affine part, here the identity).
#[test]
fn batch_norm_normalises_each_channel() {
    let store = ParamStore::new(0, &Device::Cpu);
    let bn = BatchNorm2d::new(&store.root(), 3).unwrap();
    let x = ((Tensor::randn(0f32, 1.0, (8, 3, 5, 5), &Device::Cpu).unwrap() * 4.0).unwrap() + 10.0).unwrap();
    let y = bn.forward(&x, true).unwrap();
    let per_c = y.transpose(0, 1).unwrap().reshape((3, 200)).unwrap();
    let mean = flat(&per_c.mean(D::Minus1).unwrap());
    let var = flat(
        &per_c.broadcast_sub(&per_c.mean_keepdim(D::Minus1).unwrap()).unwrap().sqr().unwrap().mean(D::Minus1).unwrap(),
    );
    close(&mean, &[0.0; 3], 1e-5);
    close(&var, &[1.0; 3], 1e-3);
}

/// y = F(x) + x: with the last BN of F zeroed, the block passes x through (then ReLU).
#[test]
fn residual_block_adds_its_input() {
    let store = ParamStore::new(1, &Device::Cpu);
    let block = BasicBlock::new(&store.root(), 4, 4, 1).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 6), &Device::Cpu).unwrap();
    // F(x) computed from the block's own layers.
    let f = block.conv2.forward(&block.conv1.forward(&x, false).unwrap(), false).unwrap();
    let y = block.forward(&x, false).unwrap();
    close(&flat(&y), &flat(&(f + &x).unwrap().relu().unwrap()), 1e-6);
    store.var("bn2.weight").unwrap().set(&Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let y0 = block.forward(&x, false).unwrap();
    close(&flat(&y0), &flat(&x.relu().unwrap()), 1e-6);
}
