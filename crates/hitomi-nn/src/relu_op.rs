//! ReLU, and the residual block's relu(a + b), as CPU `CustomOp`s with a one-pass backward.
//! candle's own ReLU backward builds a zero tensor, a comparison, a dtype cast and a product
//! (four passes and allocations); here the gradient is masked by the saved output in one pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::cpu_slice::{chunk_of, contiguous_f32, cpu_f32, par_collect};

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

/// y = max(x, 0).
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "hitomi-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "relu input")?;
        let y = par_collect(x.len(), CHUNK, |i| chunk_of(x, i, CHUNK).iter().map(|&v| v.max(0.0)));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &ReluBackward)?))
    }
}

/// y = max(a + b, 0), a and b of one shape.
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "hitomi-add-relu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            candle_core::bail!("add_relu: shapes {:?} and {:?} differ", l1.dims(), l2.dims());
        }
        let a = contiguous_f32(s1, l1, "add_relu first input")?;
        let b = contiguous_f32(s2, l2, "add_relu second input")?;
        let y = par_collect(a.len(), CHUNK, |i| {
            chunk_of(a, i, CHUNK).iter().zip(chunk_of(b, i, CHUNK)).map(|(&u, &v)| (u + v).max(0.0))
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, _b: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &ReluBackward)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// (y, dy) -> dy where y > 0, else 0 (PyTorch's threshold_backward: no gradient at exactly 0).
struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "hitomi-relu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, "relu output")?;
        let dy = contiguous_f32(s2, l2, "relu output gradient")?;
        let dx = par_collect(y.len(), CHUNK, |i| {
            chunk_of(y, i, CHUNK).iter().zip(chunk_of(dy, i, CHUNK)).map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// dy where the ReLU's output y was positive, else 0 (f32 CPU tensors of one shape).
pub(crate) fn relu_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    y.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &ReluBackward)
}

/// max(xs, 0), any shape; candle's op on other devices and dtypes.
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    if !cpu_f32(xs) {
        return xs.relu();
    }
    xs.contiguous()?.apply_op1(Relu)
}

/// max(a + b, 0) for a and b of one shape (a residual block's output).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !cpu_f32(a) || !cpu_f32(b) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;

    /// Forward and backward against candle's own ops (no element sits at exactly 0, where
    /// candle's gradient is 1 and PyTorch's 0).
    #[test]
    fn relu_and_add_relu_match_candle_ops() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 70, 50), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 70, 50), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 4, 70, 50), &dev).unwrap();
        let ours = (add_relu(&a, &b).unwrap() + relu(&a).unwrap()).unwrap();
        let theirs = ((a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap() + a.relu().unwrap()).unwrap();
        assert_close("forward", &ours, &theirs, 0.0, 0.0, true).unwrap();
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("a", &a), ("b", &b)] {
            assert_close(&format!("grad {name}"), g1.get(v).unwrap(), g2.get(v).unwrap(), 0.0, 1e-6, true).unwrap();
        }
        // The gradient at exactly 0 is 0, as PyTorch's.
        let z = Var::from_tensor(&Tensor::new(&[0f32, 1.0, -1.0], &dev).unwrap()).unwrap();
        let g = relu(&z).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&z).unwrap().to_vec1::<f32>().unwrap(), [0.0, 1.0, 0.0]);
    }
}
