//! Times each pass of hitomi's conv2d kernels (forward, input gradient, weight gradient) on the
//! convolution shapes of the speed benchmark's models, in GFLOP/s, to find the slow one, beside a
//! 1024^3 matrix product as the machine's practical peak.
//! `cargo run --release -p hitomi-nn --example conv_timing`

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use hitomi_nn::conv_op::{conv2d, conv2d_input_grad, conv2d_weight_grad, ConvGeom};

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[3]
}

fn main() -> candle_core::Result<()> {
    // As every hitomi binary: freed tensors stay in the heap, so the timings are not page faults.
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    let dev = Device::Cpu;
    // (label, batch, c_in, c_out, side, kernel, stride)
    let cases = [
        ("A 32->32 3x3 28px", 64, 32, 32, 28, 3, 1),
        ("A 64->64 3x3 14px", 64, 64, 64, 14, 3, 1),
        ("A 128->128 3x3 7px", 64, 128, 128, 7, 3, 1),
        ("B 32->32 3x3 64px", 16, 32, 32, 64, 3, 1),
        ("B 64->64 3x3 32px", 16, 64, 64, 32, 3, 1),
        ("B 128->128 3x3 16px", 16, 128, 128, 16, 3, 1),
        ("B 32->11 1x1 64px", 16, 32, 11, 64, 1, 1),
    ];
    // The machine's practical peak: one large f32 matrix product (the same gemm kernels).
    let (a, b) = (Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?, Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?);
    let mm = median_ms(|| {
        a.matmul(&b).unwrap();
    });
    println!("matmul 1024^3: {mm:.2} ms, {:.1} GFLOP/s (peak reference)", 2.0 * 1024f64.powi(3) / mm / 1e6);
    println!("{:24} {:>9} {:>9} {:>9} {:>9}", "layer", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s");
    for (label, b, ci, co, side, k, stride) in cases {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, ci, side, side), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (co, ci, k, k), &dev)?)?;
        let g = ConvGeom { stride, padding: k / 2, dilation: 1 };
        let y = conv2d(&x, &w, g)?;
        let probe = Tensor::randn(0f32, 1.0, y.dims(), &dev)?;
        let fwd = median_ms(|| {
            conv2d(&x, &w, g).unwrap();
        });
        let both = median_ms(|| {
            (conv2d(&x, &w, g).unwrap() * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        });
        // The loss around the conv (product, sum and their backward) timed alone, to subtract.
        let yv = Var::from_tensor(&y)?;
        let loss_only = median_ms(|| {
            (yv.as_tensor() * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        });
        let flop = 2.0 * (b * co * ci * k * k * y.dims()[2] * y.dims()[3]) as f64;
        let bwd = (both - fwd - loss_only).max(1e-9);
        let dx = median_ms(|| {
            conv2d_input_grad(&probe, &w, g, x.dims4().unwrap()).unwrap();
        });
        let dw = median_ms(|| {
            conv2d_weight_grad(&x, &probe, g, w.dims4().unwrap()).unwrap();
        });
        println!(
            "{label:24} {fwd:9.2} {bwd:9.2} {:9.1} {:9.1}   dx {dx:6.2} ms {:6.1} GF/s, dw {dw:6.2} ms {:6.1} GF/s",
            flop / fwd / 1e6,
            2.0 * flop / bwd / 1e6,
            flop / dx / 1e6,
            flop / dw / 1e6
        );
    }
    Ok(())
}
