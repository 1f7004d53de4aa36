//! Pooling with PyTorch semantics (floor mode; padding never wins a max). candle has no backward for
//! max- or average-pooling unless kernel == stride (ResNet's 3x3 stride-2 stem overlaps), so both are
//! `CustomOp`s whose backward is another `CustomOp` working on raw f32 slices, one B*C plane per task.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu_slice::{contiguous_f32, par_zeros};

/// Square window geometry shared by the pooling kernels.
#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl PoolGeom {
    fn new(what: &str, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        if kernel == 0 || stride == 0 {
            candle_core::bail!("{what}: kernel {kernel} and stride {stride} must be positive");
        }
        // PyTorch's rule: it also guarantees every window overlaps the input.
        if 2 * padding > kernel {
            candle_core::bail!("{what}: padding {padding} must be at most half the kernel {kernel}");
        }
        Ok(Self { kernel, stride, padding })
    }

    /// Output size (floor mode) of an input side of n, checked to hold at least one window.
    fn out(&self, what: &str, n: usize) -> Result<usize> {
        if n == 0 || n + 2 * self.padding < self.kernel {
            candle_core::bail!("{what}: input side {n} (padding {}) smaller than kernel {}", self.padding, self.kernel);
        }
        Ok((n + 2 * self.padding - self.kernel) / self.stride + 1)
    }

    /// Input range [lo, hi) of output position o along a side of n, clipped to the input.
    fn span(&self, o: usize, n: usize) -> (usize, usize) {
        let start = (o * self.stride) as isize - self.padding as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + self.kernel as isize) as usize).min(n);
        (lo, hi)
    }

    /// Flat index (in the h x w plane) of the maximum of window (oy, ox), scanned in PyTorch's order:
    /// the first maximum wins ties, a NaN wins over numbers, an all -inf window picks its first cell.
    fn argmax(&self, plane: &[f32], h: usize, w: usize, oy: usize, ox: usize) -> usize {
        let (y0, y1) = self.span(oy, h);
        let (x0, x1) = self.span(ox, w);
        let (mut best, mut at) = (f32::NEG_INFINITY, y0 * w + x0);
        for iy in y0..y1 {
            let row = &plane[iy * w..(iy + 1) * w];
            for (ix, &v) in row.iter().enumerate().take(x1).skip(x0) {
                if v > best || v.is_nan() {
                    best = v;
                    at = iy * w + ix;
                }
            }
        }
        at
    }
}

/// The f32 elements of a contiguous storage (callers make tensors contiguous before applying ops).
struct MaxPool(PoolGeom);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "hitomi-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = contiguous_f32(s, l, self.name())?;
        let g = self.0;
        let (ho, wo) = (g.out(self.name(), h)?, g.out(self.name(), w)?);
        let mut y = par_zeros(b * c * ho * wo, ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(yp, plane)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    yp[oy * wo + ox] = plane[g.argmax(plane, h, w, oy, ox)];
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
    }

    /// `arg` is the (contiguous) input the forward saw: the backward recomputes the argmaxes from it
    /// rather than storing indices, since a `CustomOp1` has a single output.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolBackward(self.0))?))
    }
}

/// (x, dy) -> dx: each dy goes to the argmax of its window, summed where windows overlap.
struct MaxPoolBackward(PoolGeom);

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "hitomi-max-pool2d-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        let g = self.0;
        let (ho, wo) = (g.out(self.name(), h)?, g.out(self.name(), w)?);
        if l2.shape().dims() != [b, c, ho, wo] {
            candle_core::bail!("{}: gradient {:?}, expected {:?}", self.name(), l2.shape(), (b, c, ho, wo));
        }
        let mut dx = par_zeros(b * c * h * w, h * w);
        dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(dy.par_chunks(ho * wo)).for_each(
            |((dxp, plane), dyp)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        dxp[g.argmax(plane, h, w, oy, ox)] += dyp[oy * wo + ox];
                    }
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

struct AvgPool(PoolGeom);

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "hitomi-avg-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = contiguous_f32(s, l, self.name())?;
        let g = self.0;
        let (ho, wo) = (g.out(self.name(), h)?, g.out(self.name(), w)?);
        let scale = 1.0 / (g.kernel * g.kernel) as f32;
        let mut y = par_zeros(b * c * ho * wo, ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(yp, plane)| {
            for oy in 0..ho {
                let (y0, y1) = g.span(oy, h);
                for ox in 0..wo {
                    let (x0, x1) = g.span(ox, w);
                    let sum: f32 = (y0..y1).map(|iy| plane[iy * w + x0..iy * w + x1].iter().sum::<f32>()).sum();
                    yp[oy * wo + ox] = sum * scale;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&AvgPoolBackward { geom: self.0, h, w })?))
    }
}

/// dy -> dx: each dy is spread evenly over its window (the input size is not recoverable from dy).
struct AvgPoolBackward {
    geom: PoolGeom,
    h: usize,
    w: usize,
}

impl CustomOp1 for AvgPoolBackward {
    fn name(&self) -> &'static str {
        "hitomi-avg-pool2d-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, ho, wo) = l.shape().dims4()?;
        let dy = contiguous_f32(s, l, self.name())?;
        let (g, h, w) = (self.geom, self.h, self.w);
        if (g.out(self.name(), h)?, g.out(self.name(), w)?) != (ho, wo) {
            candle_core::bail!("{}: gradient {ho}x{wo} does not fit input {h}x{w}", self.name());
        }
        let scale = 1.0 / (g.kernel * g.kernel) as f32;
        let mut dx = par_zeros(b * c * h * w, h * w);
        dx.par_chunks_mut(h * w).zip(dy.par_chunks(ho * wo)).for_each(|(dxp, dyp)| {
            for oy in 0..ho {
                let (y0, y1) = g.span(oy, h);
                for ox in 0..wo {
                    let (x0, x1) = g.span(ox, w);
                    let v = dyp[oy * wo + ox] * scale;
                    for iy in y0..y1 {
                        dxp[iy * w + x0..iy * w + x1].iter_mut().for_each(|d| *d += v);
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx), Shape::from((b, c, h, w))))
    }
}

/// Max pooling, PyTorch semantics (padding acts as -inf, floor mode), differentiable.
/// xs: (B, C, H, W) f32 -> (B, C, (H + 2p - k)/s + 1, (W + 2p - k)/s + 1)
pub fn max_pool2d(xs: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let geom = PoolGeom::new("max_pool2d", kernel, stride, padding)?;
    xs.contiguous()?.apply_op1(MaxPool(geom))
}

/// Average pooling without padding (floor mode), differentiable for any kernel and stride.
/// xs: (B, C, H, W) f32 -> (B, C, (H - k)/s + 1, (W - k)/s + 1)
pub fn avg_pool2d(xs: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let geom = PoolGeom::new("avg_pool2d", kernel, stride, 0)?;
    xs.contiguous()?.apply_op1(AvgPool(geom))
}

/// Global average pooling (adaptive average pooling to 1x1, flattened).
/// xs: (B, C, H, W) -> (B, C)
pub fn global_avg_pool(xs: &Tensor) -> Result<Tensor> {
    xs.flatten_from(2)?.mean(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// A non-contiguous input (a transposed view) pools like its contiguous copy.
    #[test]
    fn strided_input_matches_contiguous() -> Result<()> {
        let xs = Tensor::arange(0f32, 2.0 * 3.0 * 5.0 * 7.0, &Device::Cpu)?.reshape((2, 3, 7, 5))?.sin()?;
        let view = xs.transpose(2, 3)?;
        let copy = view.contiguous()?;
        for (a, b) in [
            (max_pool2d(&view, 3, 2, 1)?, max_pool2d(&copy, 3, 2, 1)?),
            (avg_pool2d(&view, 3, 2)?, avg_pool2d(&copy, 3, 2)?),
        ] {
            assert_eq!(a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }

    /// Overlapping windows accumulate: a 3x3/s1 average of a 4x4 input reaches the centre 4 times.
    #[test]
    fn avg_backward_sums_overlaps() -> Result<()> {
        let x = Var::from_tensor(&Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu)?)?;
        let g = avg_pool2d(x.as_tensor(), 3, 1)?.sum_all()?.backward()?;
        let dx = g.get(x.as_tensor()).expect("gradient").flatten_all()?.to_vec1::<f32>()?;
        let n = [1., 2., 2., 1., 2., 4., 4., 2., 2., 4., 4., 2., 1., 2., 2., 1.];
        for (a, b) in dx.iter().zip(n) {
            assert!((a - b / 9.0).abs() < 1e-7, "{dx:?}");
        }
        Ok(())
    }

    /// Ties go to the first cell in row-major order, as in PyTorch (the fixtures have no ties).
    #[test]
    fn max_backward_picks_first_of_ties() -> Result<()> {
        let x = Var::from_tensor(&Tensor::ones((1, 1, 2, 3), candle_core::DType::F32, &Device::Cpu)?)?;
        let g = max_pool2d(x.as_tensor(), 2, 1, 0)?.sum_all()?.backward()?;
        let dx = g.get(x.as_tensor()).expect("gradient").flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dx, [1., 1., 0., 0., 0., 0.]);
        Ok(())
    }

    #[test]
    fn rejects_bad_geometry() {
        let xs = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&xs, 3, 2, 2).is_err());
        assert!(max_pool2d(&xs, 3, 0, 1).is_err());
        assert!(avg_pool2d(&xs, 3, 1).is_err());
    }
}
