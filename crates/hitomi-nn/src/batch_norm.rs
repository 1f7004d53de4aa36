//! Batch normalisation over (B, H, W) per channel, PyTorch semantics: biased variance to normalise,
//! unbiased variance in the running estimate, momentum 0.1, eps 1e-5.

use anyhow::Result;
use candle_core::{DType, Tensor, Var, D};
use hitomi_core::{Init, ParamPath};

use crate::batch_norm_op::{batch_norm_eval, batch_norm_train, batch_norm_train_add_relu};
use crate::relu_op::add_relu;

#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Var,
    pub running_var: Var,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm2d {
    /// Names as torchvision: `weight`, `bias`, `running_mean`, `running_var`.
    pub fn new(p: &ParamPath, c: usize) -> Result<Self> {
        Ok(Self {
            weight: p.no_decay("weight", &[c], Init::Const(1.0))?,
            bias: p.no_decay("bias", &[c], Init::Const(0.0))?,
            running_mean: p.buffer("running_mean", &[c], 0.0)?,
            running_var: p.buffer("running_var", &[c], 1.0)?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// xs: (B, C, H, W). In training mode normalises with the batch statistics and updates the
    /// running ones; in eval mode uses the running statistics (folded into one scale and shift).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(xs, train, false)
    }

    /// relu(forward(xs)), in one pass over the data (and one in the backward) on the CPU.
    pub fn forward_relu(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(xs, train, true)
    }

    /// relu(forward(xs) + skip), a residual block's tail; in training mode on the CPU one pass
    /// over the data (and one fewer tensor) instead of the norm, then the add and ReLU.
    /// xs, skip: (B, C, H, W).
    pub fn forward_add_relu(&self, xs: &Tensor, skip: &Tensor, train: bool) -> Result<Tensor> {
        let fused = xs.device().is_cpu() && xs.dtype() == DType::F32 && skip.dtype() == DType::F32;
        if !(train && fused) {
            return Ok(add_relu(&self.forward(xs, train)?, skip)?);
        }
        let (ys, mean, var) = batch_norm_train_add_relu(xs, &self.weight, &self.bias, skip, self.eps)?;
        self.update_running(xs, &mean, &var)?;
        Ok(ys)
    }

    /// Moves the running statistics towards the batch's (mean and biased variance of xs, (C)).
    fn update_running(&self, xs: &Tensor, mean: &Tensor, var: &Tensor) -> Result<()> {
        let (b, _, h, w) = xs.dims4()?;
        let n = (b * h * w) as f64;
        let m = self.momentum;
        let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?;
        let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean.detach() * m)?)?;
        let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        Ok(())
    }

    fn forward_act(&self, xs: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let c = self.weight.dims()[0];
        let shape = (1, c, 1, 1);
        let fused = xs.device().is_cpu() && xs.dtype() == DType::F32;
        if train {
            let (ys, mean, var) = if fused {
                batch_norm_train(xs, &self.weight, &self.bias, self.eps, relu)?
            } else {
                let (ys, mean, var) = self.train_with_tensor_ops(xs)?;
                (if relu { ys.relu()? } else { ys }, mean, var)
            };
            self.update_running(xs, &mean, &var)?;
            return Ok(ys);
        }
        if fused {
            let (rm, rv) = (self.running_mean.as_tensor(), self.running_var.as_tensor());
            return Ok(batch_norm_eval(xs, &self.weight, &self.bias, rm, rv, self.eps, relu)?);
        }
        let (scale, shift) = self.eval_scale_shift()?;
        let ys = xs.broadcast_mul(&scale.reshape(shape)?)?.broadcast_add(&shift.reshape(shape)?)?;
        Ok(if relu { ys.relu()? } else { ys })
    }

    /// The eval-mode map as y = x * scale + shift per channel: (scale, shift), each (C), as
    /// differentiable functions of the weight and bias (for folding into a preceding conv).
    pub fn eval_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let scale = (&self.weight / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
        let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
        Ok((scale, shift))
    }

    /// The same computation from candle tensor ops (other devices and dtypes):
    /// returns (output, batch mean, biased batch variance).
    fn train_with_tensor_ops(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let c = self.weight.dims()[0];
        let (b, _, h, w) = xs.dims4()?;
        let x3 = xs.transpose(0, 1)?.reshape((c, b * h * w))?;
        let mean = x3.mean(D::Minus1)?;
        let var = x3.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(D::Minus1)?;
        let scale = (&self.weight / (&var + self.eps)?.sqrt()?)?;
        let shift = (&self.bias - (&mean * &scale)?)?;
        let shape = (1, c, 1, 1);
        let ys = xs.broadcast_mul(&scale.reshape(shape)?)?.broadcast_add(&shift.reshape(shape)?)?;
        Ok((ys, mean, var))
    }
}
