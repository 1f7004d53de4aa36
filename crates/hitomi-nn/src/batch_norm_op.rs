//! Fused batch norm for training on the CPU: one op computes the per-channel statistics, one
//! applies the normalisation and affine transform, and its backward computes the gradients of the
//! input, scale and shift in one pass (candle would build about fifteen separate tensor ops).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_slice::contiguous_f32;

/// Per-channel mean and biased variance of x (B, C, H, W) -> (2, C), computed in f64 in two passes.
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "hitomi-bn-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = contiguous_f32(s, l, "batch norm input")?;
        let hw = h * w;
        let n = (b * hw) as f64;
        let stats: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let planes = (0..b).map(|bi| &x[(bi * c + ci) * hw..][..hw]);
                let mean = planes.clone().map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / n;
                let var = planes.map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()).sum::<f64>() / n;
                (mean as f32, var as f32)
            })
            .collect();
        let mut out: Vec<f32> = stats.iter().map(|s| s.0).collect();
        out.extend(stats.iter().map(|s| s.1));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// y = (x - mean) * invstd * weight + bias with the batch statistics fixed at construction.
struct NormalizeAffine {
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl CustomOp3 for NormalizeAffine {
    fn name(&self) -> &'static str {
        "hitomi-bn-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, h, w) = l1.shape().dims4()?;
        let x = contiguous_f32(s1, l1, "batch norm input")?;
        let wt = contiguous_f32(s2, l2, "batch norm weight")?;
        let bias = contiguous_f32(s3, l3, "batch norm bias")?;
        let hw = h * w;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(i, (yp, xp))| {
            let ci = i % c;
            let scale = self.invstd[ci] * wt[ci];
            let shift = bias[ci] - self.mean[ci] * scale;
            for (o, &v) in yp.iter_mut().zip(xp) {
                *o = v * scale + shift;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let op = NormalizeBackward { mean: self.mean.clone(), invstd: self.invstd.clone(), weight: weight.to_vec1()? };
        let packed = x.apply_op2_no_bwd(&grad.contiguous()?, &op)?;
        let n = b * c * h * w;
        let dx = packed.narrow(0, 0, n)?.reshape((b, c, h, w))?;
        let dw = packed.narrow(0, n, c)?;
        let db = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// (x, dy) -> [dx (B*C*H*W), dweight (C), dbias (C)] packed in one vector:
/// dbias = sum dy, dweight = sum dy * xhat, dx = weight * invstd / N * (N dy - dbias - xhat dweight).
struct NormalizeBackward {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    weight: Vec<f32>,
}

impl candle_core::CustomOp2 for NormalizeBackward {
    fn name(&self) -> &'static str {
        "hitomi-bn-train-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let x = contiguous_f32(s1, l1, "batch norm input")?;
        let dy = contiguous_f32(s2, l2, "batch norm output gradient")?;
        let hw = h * w;
        let n = (b * hw) as f64;
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (m, is) = (self.mean[ci] as f64, self.invstd[ci] as f64);
                let (mut sg, mut sgx) = (0f64, 0f64);
                for bi in 0..b {
                    let off = (bi * c + ci) * hw;
                    for (&g, &v) in dy[off..off + hw].iter().zip(&x[off..off + hw]) {
                        sg += g as f64;
                        sgx += g as f64 * (v as f64 - m) * is;
                    }
                }
                (sg, sgx)
            })
            .collect();
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, rest) = out.split_at_mut(x.len());
        dx.par_chunks_mut(hw).enumerate().for_each(|(i, dxp)| {
            let ci = i % c;
            let (sg, sgx) = sums[ci];
            let (m, is) = (self.mean[ci], self.invstd[ci]);
            let k = self.weight[ci] * is;
            let (mg, mgx) = ((sg / n) as f32, (sgx / n) as f32);
            let off = i * hw;
            for ((o, &g), &v) in dxp.iter_mut().zip(&dy[off..off + hw]).zip(&x[off..off + hw]) {
                *o = k * (g - mg - (v - m) * is * mgx);
            }
        });
        for ci in 0..c {
            rest[ci] = sums[ci].1 as f32;
            rest[c + ci] = sums[ci].0 as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// Batch norm in training mode, fused. xs: (B, C, H, W), weight/bias: (C).
/// Returns the output and the batch mean and biased variance (C) for the running statistics.
pub fn batch_norm_train(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = xs.contiguous()?;
    let stats = xs.apply_op1_no_bwd(&ChannelStats)?;
    let mean_t = stats.get(0)?;
    let var_t = stats.get(1)?;
    let mean: Vec<f32> = mean_t.to_vec1()?;
    let invstd: Vec<f32> = var_t.to_vec1::<f32>()?.iter().map(|&v| 1.0 / ((v as f64 + eps).sqrt() as f32)).collect();
    let ys = xs.apply_op3(&weight.contiguous()?, &bias.contiguous()?, NormalizeAffine { mean, invstd })?;
    Ok((ys, mean_t, var_t))
}
