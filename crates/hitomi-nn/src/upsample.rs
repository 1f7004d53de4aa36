//! 2-D resizing (nearest and bilinear) with PyTorch's `interpolate` semantics. candle has no backward for
//! `upsample_bilinear2d`, so resizing is a `CustomOp1` whose backward is another `CustomOp1` scattering the
//! gradient through the same per-axis taps, one B*C plane per rayon task.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_slice::{contiguous_f32, par_zeros};

/// How `upsample2d` maps output pixels to input pixels (PyTorch's `mode` of `interpolate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// PyTorch's "nearest": src = floor(dst * in/out), not the centre-aligned "nearest-exact".
    Nearest,
    /// Bilinear with align_corners = false: src = (dst + 0.5) * in/out - 0.5, clamped below at 0;
    /// with align_corners = true: src = dst * (in - 1)/(out - 1), corners map onto corners.
    Bilinear { align_corners: bool },
}

/// Where output position o along one axis reads: `i0` with weight 1 - `lambda`, `i1` with weight `lambda`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    lambda: f32,
}

/// The taps of every output position along an axis of `n_in` -> `n_out` (both positive).
fn axis_taps(mode: UpsampleMode, n_in: usize, n_out: usize) -> Vec<Tap> {
    // PyTorch copies when sizes agree rather than trusting the formula to round back onto the grid.
    if n_in == n_out {
        return (0..n_out).map(|o| Tap { i0: o, i1: o, lambda: 0.0 }).collect();
    }
    match mode {
        UpsampleMode::Nearest => {
            // PyTorch computes this index in f32 (scale and product), and f32 rounding can move a
            // floor across an integer compared with exact arithmetic, so we round the same way.
            let scale = n_in as f32 / n_out as f32;
            (0..n_out)
                .map(|o| {
                    let i = if n_out == 2 * n_in { o / 2 } else { ((o as f32 * scale).floor() as usize).min(n_in - 1) };
                    Tap { i0: i, i1: i, lambda: 0.0 }
                })
                .collect()
        }
        UpsampleMode::Bilinear { align_corners } => {
            // The weights come from f64 positions so they carry no error of their own beyond the final
            // f32 rounding (the reference values were computed in f64).
            let scale = match (align_corners, n_out) {
                (true, 1) => 0.0,
                (true, _) => (n_in - 1) as f64 / (n_out - 1) as f64,
                (false, _) => n_in as f64 / n_out as f64,
            };
            (0..n_out)
                .map(|o| {
                    let src = if align_corners { o as f64 * scale } else { ((o as f64 + 0.5) * scale - 0.5).max(0.0) };
                    // Guards as in PyTorch, so a position rounded just past the last pixel cannot index out.
                    let i0 = (src.floor() as usize).min(n_in - 1);
                    let i1 = (i0 + 1).min(n_in - 1);
                    Tap { i0, i1, lambda: (src - i0 as f64).clamp(0.0, 1.0) as f32 }
                })
                .collect()
        }
    }
}

/// Everything both directions need, built once per `upsample2d` call and shared with the backward.
#[derive(Debug)]
struct Plan {
    nearest: bool,
    /// Input plane (H, W) and output plane (H_out, W_out).
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    rows: Vec<Tap>,
    cols: Vec<Tap>,
}

impl Plan {
    fn new(mode: UpsampleMode, (h, w): (usize, usize), (ho, wo): (usize, usize)) -> Self {
        let nearest = mode == UpsampleMode::Nearest;
        Self { nearest, h, w, ho, wo, rows: axis_taps(mode, h, ho), cols: axis_taps(mode, w, wo) }
    }

    /// One output plane from one input plane.
    fn forward(&self, x: &[f32], y: &mut [f32]) {
        let w = self.w;
        for (yr, ty) in y.chunks_exact_mut(self.wo).zip(&self.rows) {
            let r0 = &x[ty.i0 * w..(ty.i0 + 1) * w];
            let r1 = &x[ty.i1 * w..(ty.i1 + 1) * w];
            if self.nearest {
                // A pure gather: the weighted form would turn an inf into NaN (0 * inf).
                yr.iter_mut().zip(&self.cols).for_each(|(v, tx)| *v = r0[tx.i0]);
            } else {
                let (ly0, ly1) = (1.0 - ty.lambda, ty.lambda);
                for (v, tx) in yr.iter_mut().zip(&self.cols) {
                    let (lx0, lx1) = (1.0 - tx.lambda, tx.lambda);
                    *v = ly0 * (lx0 * r0[tx.i0] + lx1 * r0[tx.i1]) + ly1 * (lx0 * r1[tx.i0] + lx1 * r1[tx.i1]);
                }
            }
        }
    }

    /// One input-gradient plane (zeroed) from one output-gradient plane: the transpose of `forward`,
    /// accumulating where several outputs read the same input pixel.
    fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let w = self.w;
        for (gr, ty) in dy.chunks_exact(self.wo).zip(&self.rows) {
            let (o0, o1) = (ty.i0 * w, ty.i1 * w);
            if self.nearest {
                gr.iter().zip(&self.cols).for_each(|(&g, tx)| dx[o0 + tx.i0] += g);
            } else {
                let (ly0, ly1) = (1.0 - ty.lambda, ty.lambda);
                for (&g, tx) in gr.iter().zip(&self.cols) {
                    let (lx0, lx1) = (1.0 - tx.lambda, tx.lambda);
                    let (g0, g1) = (ly0 * g, ly1 * g);
                    dx[o0 + tx.i0] += g0 * lx0;
                    dx[o0 + tx.i1] += g0 * lx1;
                    dx[o1 + tx.i0] += g1 * lx0;
                    dx[o1 + tx.i1] += g1 * lx1;
                }
            }
        }
    }
}

/// x -> y. The plan is behind an `Arc` so the backward reuses its tables.
struct Upsample(Arc<Plan>);

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "hitomi-upsample2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = contiguous_f32(s, l, self.name())?;
        let p = &self.0;
        if (h, w) != (p.h, p.w) {
            candle_core::bail!("{}: input {h}x{w}, planned for {}x{}", self.name(), p.h, p.w);
        }
        let mut y = par_zeros(b * c * p.ho * p.wo, p.ho * p.wo);
        y.par_chunks_mut(p.ho * p.wo).zip(x.par_chunks(h * w)).for_each(|(yp, xp)| p.forward(xp, yp));
        Ok((CpuStorage::F32(y), Shape::from((b, c, p.ho, p.wo))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&UpsampleBackward(self.0.clone()))?))
    }
}

/// dy -> dx (the input size is not recoverable from dy, hence the plan).
struct UpsampleBackward(Arc<Plan>);

impl CustomOp1 for UpsampleBackward {
    fn name(&self) -> &'static str {
        "hitomi-upsample2d-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, ho, wo) = l.shape().dims4()?;
        let dy = contiguous_f32(s, l, self.name())?;
        let p = &self.0;
        if (ho, wo) != (p.ho, p.wo) {
            candle_core::bail!("{}: gradient {ho}x{wo}, expected {}x{}", self.name(), p.ho, p.wo);
        }
        let mut dx = par_zeros(b * c * p.h * p.w, p.h * p.w);
        dx.par_chunks_mut(p.h * p.w).zip(dy.par_chunks(ho * wo)).for_each(|(dxp, dyp)| p.backward(dyp, dxp));
        Ok((CpuStorage::F32(dx), Shape::from((b, c, p.h, p.w))))
    }
}

/// Resizes every (H, W) plane to `size` = (H_out, W_out) like `torch.nn.functional.interpolate(xs,
/// size=size, mode=...)`, differentiable with respect to `xs`; shrinking uses the same formulas (no
/// antialiasing). f32 on the CPU only.
/// xs: (B, C, H, W) -> (B, C, H_out, W_out)
pub fn upsample2d(xs: &Tensor, size: (usize, usize), mode: UpsampleMode) -> Result<Tensor> {
    let (_, _, h, w) = match xs.dims() {
        &[b, c, h, w] => (b, c, h, w),
        d => candle_core::bail!("upsample2d: input must be (B, C, H, W), got shape {d:?}"),
    };
    if xs.dtype() != DType::F32 {
        candle_core::bail!("upsample2d: f32 input expected, got {:?}", xs.dtype());
    }
    if h == 0 || w == 0 || size.0 == 0 || size.1 == 0 {
        candle_core::bail!("upsample2d: sizes must be positive, input {h}x{w}, output {}x{}", size.0, size.1);
    }
    xs.contiguous()?.apply_op1(Upsample(Arc::new(Plan::new(mode, (h, w), size))))
}

/// Bilinear resizing with align_corners = false, PyTorch's default (`interpolate(xs, size=size,
/// mode="bilinear")`).
/// xs: (B, C, H, W) -> (B, C, H_out, W_out)
pub fn upsample_bilinear2d(xs: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    upsample2d(xs, size, UpsampleMode::Bilinear { align_corners: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const MODES: [UpsampleMode; 3] = [
        UpsampleMode::Nearest,
        UpsampleMode::Bilinear { align_corners: false },
        UpsampleMode::Bilinear { align_corners: true },
    ];

    /// Deterministic values in [-1, 1) (a fixed LCG), so a failure reproduces.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn values(t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all()?.to_vec1::<f32>()
    }

    /// align_corners = true by hand: 2x3 -> 3x5 steps half a pixel along both axes, and a 1-pixel
    /// output takes the first corner (PyTorch's scale 0 for out = 1).
    #[test]
    fn align_corners_true_by_hand() -> Result<()> {
        let x = Tensor::new(&[[[[0f32, 1., 2.], [3., 4., 5.]]]], &Device::Cpu)?;
        let mode = UpsampleMode::Bilinear { align_corners: true };
        let y = upsample2d(&x, (3, 5), mode)?;
        assert_eq!(y.dims(), [1, 1, 3, 5]);
        #[rustfmt::skip]
        let want = [
            0.0, 0.5, 1.0, 1.5, 2.0,
            1.5, 2.0, 2.5, 3.0, 3.5,
            3.0, 3.5, 4.0, 4.5, 5.0,
        ];
        assert_eq!(values(&y)?, want);
        assert_eq!(values(&upsample2d(&x, (1, 1), mode)?)?, [0.0]);
        // align_corners = false on the same input: src = (dst + 0.5) * 2/3 - 0.5 along the rows.
        let y = upsample2d(&x, (3, 3), UpsampleMode::Bilinear { align_corners: false })?;
        let want = [0., 1., 2., 1.5, 2.5, 3.5, 3., 4., 5.];
        values(&y)?.iter().zip(want).for_each(|(a, b)| assert!((a - b).abs() < 1e-6, "{y}"));
        Ok(())
    }

    /// Sizes equal to the input's give the input back in every mode.
    #[test]
    fn same_size_is_identity() -> Result<()> {
        let x = Tensor::from_vec(noise(2 * 3 * 4 * 5, 7), (2, 3, 4, 5), &Device::Cpu)?;
        for mode in MODES {
            assert_eq!(values(&upsample2d(&x, (4, 5), mode)?)?, values(&x)?, "{mode:?}");
        }
        Ok(())
    }

    /// The input gradient of L = sum(y * r) for random r matches central differences of L, for up-,
    /// down- and mixed resizing in every mode. L is linear in x, so the differences are exact up to
    /// rounding, which the f64 sum of L keeps small.
    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let cases = [((1, 2, 3, 4), (5, 7)), ((2, 1, 5, 6), (3, 4)), ((1, 1, 4, 3), (2, 7)), ((1, 1, 1, 2), (3, 1))];
        for (k, ((b, c, h, w), size)) in cases.into_iter().enumerate() {
            for mode in MODES {
                let n = b * c * h * w;
                let x0 = noise(n, 2 * k as u64);
                let r = noise(b * c * size.0 * size.1, 2 * k as u64 + 1);
                let rt = Tensor::from_vec(r.clone(), (b, c, size.0, size.1), &dev)?;
                let x = Var::from_tensor(&Tensor::from_vec(x0.clone(), (b, c, h, w), &dev)?)?;
                let grads = (upsample2d(x.as_tensor(), size, mode)? * &rt)?.sum_all()?.backward()?;
                let got = values(grads.get(x.as_tensor()).expect("gradient"))?;
                let loss = |xs: &[f32]| -> Result<f64> {
                    let y = upsample2d(&Tensor::from_slice(xs, (b, c, h, w), &dev)?, size, mode)?;
                    Ok(values(&y)?.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum())
                };
                let eps = 0.125;
                for i in 0..n {
                    let (mut hi, mut lo) = (x0.clone(), x0.clone());
                    hi[i] += eps;
                    lo[i] -= eps;
                    let fd = (loss(&hi)? - loss(&lo)?) / (2.0 * eps as f64);
                    let tol = 1e-4 * (1.0 + fd.abs());
                    assert!((got[i] as f64 - fd).abs() < tol, "{mode:?} {h}x{w}->{size:?} [{i}]: {} vs {fd}", got[i]);
                }
            }
        }
        Ok(())
    }

    /// A non-contiguous input (a transposed view) resizes like its contiguous copy.
    #[test]
    fn strided_input_matches_contiguous() -> Result<()> {
        let xs = Tensor::from_vec(noise(2 * 3 * 5 * 7, 3), (2, 3, 7, 5), &Device::Cpu)?;
        let view = xs.transpose(2, 3)?;
        let copy = view.contiguous()?;
        for mode in MODES {
            assert_eq!(values(&upsample2d(&view, (9, 4), mode)?)?, values(&upsample2d(&copy, (9, 4), mode)?)?);
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_input() -> Result<()> {
        let dev = Device::Cpu;
        let err = |r: Result<Tensor>| r.expect_err("an error").to_string();
        let e = err(upsample_bilinear2d(&Tensor::zeros((3, 4, 5), DType::F32, &dev)?, (8, 10)));
        assert!(e.contains("upsample2d") && e.contains("(B, C, H, W)") && e.contains("[3, 4, 5]"), "{e}");
        let x = Tensor::zeros((1, 2, 4, 5), DType::F32, &dev)?;
        for size in [(0, 10), (8, 0)] {
            let e = err(upsample2d(&x, size, UpsampleMode::Nearest));
            assert!(e.contains("upsample2d") && e.contains("must be positive"), "{e}");
        }
        let e = err(upsample_bilinear2d(&Tensor::zeros((1, 1, 0, 5), DType::F32, &dev)?, (4, 4)));
        assert!(e.contains("must be positive"), "{e}");
        let e = err(upsample_bilinear2d(&x.to_dtype(DType::F64)?, (8, 10)));
        assert!(e.contains("upsample2d") && e.contains("F64"), "{e}");
        Ok(())
    }
}
