//! A per-channel bias on (B, C, ...) activations and its gradient, the per-channel sum.
//! candle reduces over dims (0, 2, 3) of a contiguous (B, C, H, W) tensor about 80 times slower
//! than over its last dim (a (16, 11, 64, 64) gradient: 6.4 ms against 0.08 ms for the last-dim
//! sum of the planes then a sum over the batch), and `broadcast_add`'s backward takes that path
//! for a bias shaped (1, C, 1, 1).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::cpu_slice::{contiguous_f32, cpu_f32, par_collect};

/// t (B, C, ...) -> (C): the sum over the batch and every position of each channel, through
/// last-dim sums of the flattened planes.
pub fn channel_sums(t: &Tensor) -> Result<Tensor> {
    let t = if t.rank() == 2 { t.unsqueeze(2)? } else { t.flatten_from(2)? };
    t.sum(2)?.sum(0)
}

/// Floats per parallel task of the forward.
const CHUNK: usize = 1 << 15;

/// y = x + b over channels: x (B, C, ...), b (C).
struct AddChannelBias;

impl CustomOp2 for AddChannelBias {
    fn name(&self) -> &'static str {
        "hitomi-add-channel-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        if dims.len() < 2 || l2.dims() != [dims[1]] {
            candle_core::bail!(
                "add_channel_bias: bias {:?} for activations {dims:?}, expected ({})",
                l2.dims(),
                dims[1]
            );
        }
        let x = contiguous_f32(s1, l1, "add_channel_bias input")?;
        let b = contiguous_f32(s2, l2, "add_channel_bias bias")?;
        let (c, plane) = (dims[1], dims[2..].iter().product::<usize>().max(1));
        // Tasks of whole (image, channel) planes, about CHUNK floats each.
        let per_task = (CHUNK / plane).max(1);
        let planes = x.len() / plane;
        let y = par_collect(x.len(), per_task * plane, |i| {
            (i * per_task..((i + 1) * per_task).min(planes)).flat_map(move |p| {
                let bias = b[p % c];
                x[p * plane..(p + 1) * plane].iter().map(move |&v| v + bias)
            })
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(channel_sums(grad)?)))
    }
}

/// x (B, C, ...) + b (C) per channel; on other devices and dtypes candle's `broadcast_add`.
pub fn add_channel_bias(xs: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !cpu_f32(xs) || !cpu_f32(b) {
        let mut shape = vec![1; xs.rank()];
        shape[1] = b.dims1()?;
        return xs.broadcast_add(&b.reshape(shape)?);
    }
    xs.contiguous()?.apply_op2(&b.contiguous()?, AddChannelBias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;

    /// Forward and both gradients against candle's broadcast add, on 4-d and 3-d activations.
    #[test]
    fn matches_broadcast_add_forward_and_backward() {
        let dev = Device::Cpu;
        for dims in [vec![3usize, 5, 7, 6], vec![2, 4, 9], vec![7, 3], vec![2, 3, 150, 160]] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims.as_slice(), &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims[1], &dev).unwrap()).unwrap();
            let probe = Tensor::randn(0f32, 1.0, dims.as_slice(), &dev).unwrap();
            let mut shape = vec![1; dims.len()];
            shape[1] = dims[1];
            let theirs = x.broadcast_add(&b.reshape(shape).unwrap()).unwrap();
            let ours = add_channel_bias(&x, &b).unwrap();
            let case = format!("{dims:?}");
            assert_close(&format!("{case}: output"), &ours, &theirs, 0.0, 1e-6, false).unwrap();
            let g_theirs = (&theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ours = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("bias", &b)] {
                let (o, t) = (g_ours.get(v).unwrap(), g_theirs.get(v).unwrap());
                assert_close(&format!("{case}: d{name}"), o, t, 0.0, 1e-5, false).unwrap();
            }
            assert_close(
                &format!("{case}: sums"),
                &channel_sums(&probe).unwrap(),
                g_theirs.get(&b).unwrap(),
                0.0,
                1e-5,
                false,
            )
            .unwrap();
        }
        let err = add_channel_bias(
            &Tensor::zeros((2, 3, 4), candle_core::DType::F32, &dev).unwrap(),
            &Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap(),
        );
        assert!(err.unwrap_err().to_string().contains("expected (3)"));
    }
}
