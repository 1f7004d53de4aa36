//! Pooling with PyTorch semantics (floor mode; padding never wins a max). candle has no backward
//! for max-pool with padding or overlapping windows (ResNet's 3x3 stride-2 stem), so max-pool is a
//! `CustomOp1` whose backward routes each output gradient to the argmax of its window.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl PoolGeom {
    fn out(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Flat index (in the h x w plane) of the maximum of window (oy, ox); ties keep the first.
    fn argmax(&self, plane: &[f32], h: usize, w: usize, oy: usize, ox: usize) -> usize {
        let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
        for ky in 0..self.kernel {
            let iy = (oy * self.stride + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            for kx in 0..self.kernel {
                let ix = (ox * self.stride + kx) as isize - self.padding as isize;
                if ix < 0 || ix >= w as isize {
                    continue;
                }
                let i = iy as usize * w + ix as usize;
                // `>` keeps the first maximum; NaN propagates like PyTorch.
                if plane[i] > best || plane[i].is_nan() || at == usize::MAX {
                    best = plane[i];
                    at = i;
                    if best.is_nan() {
                        return at;
                    }
                }
            }
        }
        at
    }
}

fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("max_pool2d: f32 input expected") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("max_pool2d: contiguous input expected"),
    }
}

struct MaxPool(PoolGeom);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "hitomi-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = f32s(s, l)?;
        let g = self.0;
        let (ho, wo) = (g.out(h), g.out(w));
        let mut y = vec![0f32; b * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(p, yp)| {
            let plane = &x[p * h * w..(p + 1) * h * w];
            for oy in 0..ho {
                for ox in 0..wo {
                    yp[oy * wo + ox] = plane[g.argmax(plane, h, w, oy, ox)];
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolBackward(self.0))?))
    }
}

/// (x, dy) -> dx: each dy goes to the argmax of its window (summed where windows overlap).
struct MaxPoolBackward(PoolGeom);

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "hitomi-max-pool2d-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let x = f32s(s1, l1)?;
        let dy = f32s(s2, l2)?;
        let g = self.0;
        let (ho, wo) = (g.out(h), g.out(w));
        let mut dx = vec![0f32; b * c * h * w];
        dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dxp)| {
            let plane = &x[p * h * w..(p + 1) * h * w];
            let dyp = &dy[p * ho * wo..(p + 1) * ho * wo];
            for oy in 0..ho {
                for ox in 0..wo {
                    dxp[g.argmax(plane, h, w, oy, ox)] += dyp[oy * wo + ox];
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Max pooling, PyTorch semantics. xs: (B, C, H, W) -> (B, C, (H + 2p - k)/s + 1, (W + 2p - k)/s + 1)
pub fn max_pool2d(xs: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if padding * 2 > kernel {
        candle_core::bail!("max_pool2d: padding {padding} must be at most half the kernel {kernel}");
    }
    xs.contiguous()?.apply_op1(MaxPool(PoolGeom { kernel, stride, padding }))
}

/// Average pooling without padding (floor mode), differentiable for any kernel and stride: the mean
/// of kernel x kernel strided views. xs: (B, C, H, W) -> (B, C, (H - k)/s + 1, (W - k)/s + 1)
pub fn avg_pool2d(xs: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    if kernel == stride && h % kernel == 0 && w % kernel == 0 {
        return xs.avg_pool2d(kernel);
    }
    let (ho, wo) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let mut acc: Option<Tensor> = None;
    for ky in 0..kernel {
        for kx in 0..kernel {
            // Rows ky, ky+s, ... and columns kx, kx+s, ...: select with index_select.
            let rows =
                Tensor::from_vec((0..ho).map(|o| (o * stride + ky) as u32).collect::<Vec<_>>(), ho, xs.device())?;
            let cols =
                Tensor::from_vec((0..wo).map(|o| (o * stride + kx) as u32).collect::<Vec<_>>(), wo, xs.device())?;
            let v = xs.index_select(&rows, 2)?.index_select(&cols, 3)?;
            acc = Some(match acc {
                Some(a) => (a + v)?,
                None => v,
            });
        }
    }
    acc.expect("kernel >= 1") / (kernel * kernel) as f64
}

/// Global average pooling: (B, C, H, W) -> (B, C).
pub fn global_avg_pool(xs: &Tensor) -> Result<Tensor> {
    xs.mean(D::Minus1)?.mean(D::Minus1)
}
