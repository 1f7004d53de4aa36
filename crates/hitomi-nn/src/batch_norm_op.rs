//! Fused batch norm for training on the CPU: one op computes the per-channel statistics, one
//! applies the normalisation and affine transform (and, optionally, the ReLU that follows it), and
//! its backward computes the gradients of the input, scale and shift in one pass (candle would
//! build about fifteen separate tensor ops, and five more for the ReLU's backward).

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

/// y = (x - mean) * invstd * weight + bias with the statistics fixed at construction, then
/// max(y, 0) when `relu` is set. `batch_stats`: the statistics are the batch's own (training
/// mode), so the input gradient flows through them too; otherwise they are the running ones.
struct NormalizeAffine {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    relu: bool,
    batch_stats: bool,
}

/// The per-channel (scale, shift) of y = x * scale + shift; forward and backward both use these
/// exact f32 values, so the backward's ReLU mask is the forward's, bit for bit.
fn scale_shift(mean: &[f32], invstd: &[f32], weight: &[f32], bias: &[f32]) -> Vec<(f32, f32)> {
    (0..mean.len())
        .map(|ci| {
            let scale = invstd[ci] * weight[ci];
            (scale, bias[ci] - mean[ci] * scale)
        })
        .collect()
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
        let ss = scale_shift(&self.mean, &self.invstd, wt, bias);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(i, (yp, xp))| {
            let (scale, shift) = ss[i % c];
            if self.relu {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = (v * scale + shift).max(0.0);
                }
            } else {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = v * scale + shift;
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let weight: Vec<f32> = weight.to_vec1()?;
        // Only the ReLU mask needs the shift (recomputed rather than stored).
        let relu_mask = if self.relu {
            Some(scale_shift(&self.mean, &self.invstd, &weight, &bias.to_vec1::<f32>()?))
        } else {
            None
        };
        let op = NormalizeBackward {
            mean: self.mean.clone(),
            invstd: self.invstd.clone(),
            weight,
            relu_mask,
            batch_stats: self.batch_stats,
        };
        let packed = x.apply_op2_no_bwd(&grad.contiguous()?, &op)?;
        let n = b * c * h * w;
        let dx = packed.narrow(0, 0, n)?.reshape((b, c, h, w))?;
        let dw = packed.narrow(0, n, c)?;
        let db = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// (x, dy) -> [dx (B*C*H*W), dweight (C), dbias (C)] packed in one vector:
/// dbias = sum dy, dweight = sum dy * xhat, dx = weight * invstd / N * (N dy - dbias - xhat dweight)
/// with batch statistics, dx = weight * invstd * dy with running ones.
/// With a ReLU after the norm, dy is first zeroed where the forward output was not positive
/// (PyTorch's threshold_backward: the gradient at exactly 0 is 0).
struct NormalizeBackward {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    weight: Vec<f32>,
    /// Per-channel (scale, shift) of the forward, when a ReLU followed it.
    relu_mask: Option<Vec<(f32, f32)>>,
    batch_stats: bool,
}

impl NormalizeBackward {
    /// The gradient reaching the norm's output: dy, or dy where x * scale + shift > 0.
    #[inline(always)]
    fn masked(&self, ci: usize, g: f32, v: f32) -> f32 {
        match &self.relu_mask {
            Some(ss) if v * ss[ci].0 + ss[ci].1 <= 0.0 => 0.0,
            _ => g,
        }
    }
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
                        let g = self.masked(ci, g, v);
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
            let (mg, mgx) = if self.batch_stats { ((sg / n) as f32, (sgx / n) as f32) } else { (0.0, 0.0) };
            let off = i * hw;
            for ((o, &g), &v) in dxp.iter_mut().zip(&dy[off..off + hw]).zip(&x[off..off + hw]) {
                let g = self.masked(ci, g, v);
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

/// Batch norm in training mode, fused, followed by a ReLU when `relu` is set.
/// xs: (B, C, H, W), weight/bias: (C).
/// Returns the output and the batch mean and biased variance (C) for the running statistics.
pub fn batch_norm_train(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = xs.contiguous()?;
    let stats = xs.apply_op1_no_bwd(&ChannelStats)?;
    let mean_t = stats.get(0)?;
    let var_t = stats.get(1)?;
    let mean: Vec<f32> = mean_t.to_vec1()?;
    let invstd: Vec<f32> = var_t.to_vec1::<f32>()?.iter().map(|&v| 1.0 / ((v as f64 + eps).sqrt() as f32)).collect();
    let ys = xs.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        NormalizeAffine { mean, invstd, relu, batch_stats: true },
    )?;
    Ok((ys, mean_t, var_t))
}

/// Batch norm in eval mode with the running statistics, fused, followed by a ReLU when `relu` is
/// set; differentiable in the input, scale and shift (FGSM and fine-tuning with frozen statistics
/// need it). xs: (B, C, H, W); weight, bias, running_mean, running_var: (C).
pub fn batch_norm_eval(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<Tensor> {
    let mean: Vec<f32> = running_mean.to_vec1()?;
    let invstd: Vec<f32> =
        running_var.to_vec1::<f32>()?.iter().map(|&v| 1.0 / ((v as f64 + eps).sqrt() as f32)).collect();
    let op = NormalizeAffine { mean, invstd, relu, batch_stats: false };
    xs.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}
