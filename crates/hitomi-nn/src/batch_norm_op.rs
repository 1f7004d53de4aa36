//! Fused batch norm for training on the CPU: one op computes the per-channel statistics, one
//! applies the normalisation and affine transform (and, optionally, the ReLU that follows it, or a
//! residual block's relu(norm + shortcut)), and its backward computes the gradients of the input,
//! scale and shift in one pass (candle would build about fifteen separate tensor ops, and five more
//! for the ReLU's backward).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_slice::{chunk_of, contiguous_f32, par_collect, par_fill};

/// Elements summed in f32 lanes before the partial sums move to f64: short enough that f32
/// rounding stays far below the statistics' tolerance, long enough for the loop to vectorise.
const BLOCK: usize = 1024;
const LANES: usize = 16;

/// (sum of f(a_i, b_i).0, sum of f(a_i, b_i).1) in f64, accumulated in 16 f32 lanes per block of
/// 1024 elements (a plain f64 running sum is scalar and was the batch norm's bottleneck).
#[inline(always)]
fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
    let (mut t0, mut t1) = (0f64, 0f64);
    for (ab, bb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let (mut s0, mut s1) = ([0f32; LANES], [0f32; LANES]);
        let (ac, bc) = (ab.chunks_exact(LANES), bb.chunks_exact(LANES));
        for (&x, &y) in ac.remainder().iter().zip(bc.remainder()) {
            let (p, q) = f(x, y);
            t0 += p as f64;
            t1 += q as f64;
        }
        for (x, y) in ac.zip(bc) {
            for l in 0..LANES {
                let (p, q) = f(x[l], y[l]);
                s0[l] += p;
                s1[l] += q;
            }
        }
        t0 += s0.iter().map(|&v| v as f64).sum::<f64>();
        t1 += s1.iter().map(|&v| v as f64).sum::<f64>();
    }
    (t0, t1)
}

/// Per-channel mean and biased variance of x (B, C, H, W) -> (2, C), in two passes.
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
                let mean = planes.clone().map(|p| sum2(p, p, |v, _| (v, 0.0)).0).sum::<f64>() / n;
                let m = mean as f32;
                let var = planes.map(|p| sum2(p, p, |v, _| ((v - m) * (v - m), 0.0)).0).sum::<f64>() / n;
                (m, var as f32)
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
        let relu = self.relu;
        let y = par_collect(x.len(), hw, |i| {
            let (scale, shift) = ss[i % c];
            chunk_of(x, i, hw).iter().map(move |&v| if relu { (v * scale + shift).max(0.0) } else { v * scale + shift })
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

/// y = max((x - mean) * invstd * weight + bias + skip, 0): a residual block's last norm, its
/// shortcut and the ReLU in one pass. The weight and bias come packed as one (2, C) tensor, as a
/// `CustomOp3` takes three inputs. Training mode only: the statistics are the batch's.
struct NormalizeAddRelu {
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl CustomOp3 for NormalizeAddRelu {
    fn name(&self) -> &'static str {
        "hitomi-bn-add-relu"
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
        if l3.dims() != l1.dims() {
            candle_core::bail!("batch norm + add: shortcut {:?} vs input {:?}", l3.dims(), l1.dims());
        }
        let x = contiguous_f32(s1, l1, "batch norm input")?;
        let wb = contiguous_f32(s2, l2, "batch norm weight and bias")?;
        let skip = contiguous_f32(s3, l3, "residual shortcut")?;
        let hw = h * w;
        let ss = scale_shift(&self.mean, &self.invstd, &wb[..c], &wb[c..]);
        let y = par_collect(x.len(), hw, |i| {
            let (scale, shift) = ss[i % c];
            chunk_of(x, i, hw).iter().zip(chunk_of(skip, i, hw)).map(move |(&v, &r)| (v * scale + shift + r).max(0.0))
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        _skip: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        // The ReLU's mask comes from the saved output; the shortcut's gradient is the masked one.
        let g = crate::relu_op::relu_backward(res, grad)?;
        let op = NormalizeBackward {
            mean: self.mean.clone(),
            invstd: self.invstd.clone(),
            weight: wb.get(0)?.to_vec1()?,
            relu_mask: None,
            batch_stats: true,
        };
        let packed = x.apply_op2_no_bwd(&g, &op)?;
        let n = b * c * h * w;
        let dx = packed.narrow(0, 0, n)?.reshape((b, c, h, w))?;
        // NormalizeBackward packs (dweight, dbias) in the order of the (2, C) input.
        let dwb = packed.narrow(0, n, 2 * c)?.reshape((2, c))?;
        Ok((Some(dx), Some(dwb), Some(g)))
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
        // (sum of dy', sum of dy' * xhat) per channel, dy' the gradient after the ReLU's mask.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (m, is) = (self.mean[ci], self.invstd[ci]);
                let (s, t) = self.relu_mask.as_ref().map_or((f32::NAN, f32::NAN), |ss| ss[ci]);
                (0..b)
                    .map(|bi| {
                        let off = (bi * c + ci) * hw;
                        let (g, v) = (&dy[off..off + hw], &x[off..off + hw]);
                        if self.relu_mask.is_some() {
                            sum2(g, v, |g, v| {
                                let g = if v * s + t > 0.0 { g } else { 0.0 };
                                (g, g * (v - m) * is)
                            })
                        } else {
                            sum2(g, v, |g, v| (g, g * (v - m) * is))
                        }
                    })
                    .fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1))
            })
            .collect();
        let mut out = Vec::with_capacity(x.len() + 2 * c);
        par_fill(&mut out, x.len(), hw, |i| {
            let ci = i % c;
            let (sg, sgx) = sums[ci];
            let (m, is) = (self.mean[ci], self.invstd[ci]);
            let k = self.weight[ci] * is;
            let (mg, mgx) = if self.batch_stats { ((sg / n) as f32, (sgx / n) as f32) } else { (0.0, 0.0) };
            // dx = k (dy' - mg - (x - m) is mgx) = k dy' - (k mg - k m is mgx) - x (k is mgx)
            let (a, c0) = (k * is * mgx, k * (mg - m * is * mgx));
            let (masked, (s, t)) = (self.relu_mask.is_some(), self.relu_mask.as_ref().map_or((0.0, 0.0), |ss| ss[ci]));
            chunk_of(dy, i, hw).iter().zip(chunk_of(x, i, hw)).map(move |(&g, &v)| {
                let g = if !masked || v * s + t > 0.0 { g } else { 0.0 };
                k * g - c0 - v * a
            })
        });
        out.extend(sums.iter().map(|s| s.1 as f32));
        out.extend(sums.iter().map(|s| s.0 as f32));
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// The batch's per-channel mean and biased variance of contiguous xs (B, C, H, W), as tensors (C)
/// and as the mean and 1 / sqrt(var + eps) vectors the normalisation uses.
fn batch_statistics(xs: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Vec<f32>, Vec<f32>)> {
    let stats = xs.apply_op1_no_bwd(&ChannelStats)?;
    let (mean_t, var_t) = (stats.get(0)?, stats.get(1)?);
    let mean: Vec<f32> = mean_t.to_vec1()?;
    let invstd: Vec<f32> = var_t.to_vec1::<f32>()?.iter().map(|&v| 1.0 / ((v as f64 + eps).sqrt() as f32)).collect();
    Ok((mean_t, var_t, mean, invstd))
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
    let (mean_t, var_t, mean, invstd) = batch_statistics(&xs, eps)?;
    let ys = xs.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        NormalizeAffine { mean, invstd, relu, batch_stats: true },
    )?;
    Ok((ys, mean_t, var_t))
}

/// relu(batch_norm(xs) + skip) in training mode, fused (a residual block's tail).
/// xs, skip: (B, C, H, W), weight/bias: (C). Returns the output and the batch mean and biased
/// variance (C) for the running statistics.
pub fn batch_norm_train_add_relu(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    skip: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = xs.contiguous()?;
    let (mean_t, var_t, mean, invstd) = batch_statistics(&xs, eps)?;
    let wb = Tensor::stack(&[weight, bias], 0)?;
    let ys = xs.apply_op3(&wb, &skip.contiguous()?, NormalizeAddRelu { mean, invstd })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relu_op::{add_relu, relu};
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;

    /// The fused norm + ReLU equals the norm followed by a separate ReLU, forward and backward,
    /// in training mode (batch statistics) and eval mode (running statistics).
    #[test]
    fn fused_relu_matches_norm_then_relu() {
        let dev = Device::Cpu;
        let shape = (3, 5, 37, 29);
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, shape, &dev).unwrap() + 0.5).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::new(&[1.5f32, -0.7, 0.2, 1.0, 2.0], &dev).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::new(&[0.1f32, -0.3, 0.0, 0.4, -1.0], &dev).unwrap()).unwrap();
        let rm = Tensor::new(&[0.4f32, 0.6, 0.5, 0.3, 0.7], &dev).unwrap();
        let rv = Tensor::new(&[3.5f32, 4.2, 4.0, 3.9, 4.1], &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        for train in [true, false] {
            let run = |fused: bool| {
                let y = if train {
                    batch_norm_train(&x, &wt, &bias, 1e-5, fused).unwrap().0
                } else {
                    batch_norm_eval(&x, &wt, &bias, &rm, &rv, 1e-5, fused).unwrap()
                };
                let y = if fused { y } else { relu(&y).unwrap() };
                let g = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let grads: Vec<Tensor> = [&x, &wt, &bias].iter().map(|v| g.get(v).unwrap().clone()).collect();
                (y, grads)
            };
            let ((y1, g1), (y2, g2)) = (run(true), run(false));
            assert_close(&format!("train={train}: output"), &y1, &y2, 0.0, 1e-6, true).unwrap();
            for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
                assert_close(&format!("train={train}: gradient {i}"), a, b, 0.0, 1e-4, true).unwrap();
            }
        }
    }

    /// The fused block tail relu(norm(x) + skip) equals the norm followed by the add and ReLU ops,
    /// output and the gradients of the input, scale, shift and shortcut (training mode).
    #[test]
    fn fused_add_relu_matches_norm_then_add_relu() {
        let dev = Device::Cpu;
        let shape = (3, 4, 23, 31);
        let var = |t: Tensor| Var::from_tensor(&t).unwrap();
        let x = var((Tensor::randn(0f32, 2.0, shape, &dev).unwrap() + 0.5).unwrap());
        let skip = var(Tensor::randn(0f32, 1.0, shape, &dev).unwrap());
        let wt = var(Tensor::new(&[1.5f32, -0.7, 0.2, 1.0], &dev).unwrap());
        let bias = var(Tensor::new(&[0.1f32, -0.3, 0.0, 0.4], &dev).unwrap());
        let probe = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let run = |fused: bool| {
            let (y, mean, var) = if fused {
                batch_norm_train_add_relu(&x, &wt, &bias, &skip, 1e-5).unwrap()
            } else {
                let (y, mean, var) = batch_norm_train(&x, &wt, &bias, 1e-5, false).unwrap();
                (add_relu(&y, &skip).unwrap(), mean, var)
            };
            let g = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let grads: Vec<Tensor> = [&x, &wt, &bias, &skip].iter().map(|v| g.get(v).unwrap().clone()).collect();
            (y, mean, var, grads)
        };
        let ((y1, m1, v1, g1), (y2, m2, v2, g2)) = (run(true), run(false));
        assert_close("output", &y1, &y2, 0.0, 1e-6, true).unwrap();
        assert_close("mean", &m1, &m2, 0.0, 0.0, true).unwrap();
        assert_close("variance", &v1, &v2, 0.0, 0.0, true).unwrap();
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            assert_close(&format!("gradient {i}"), a, b, 0.0, 1e-4, true).unwrap();
        }
    }
}
