//! Soft multi-class Dice loss (Milletari et al. 2016), as segmentation_models_pytorch's multiclass
//! DiceLoss: softmax probabilities against one-hot targets, classes absent from the batch's targets
//! left out of the mean, ignored pixels left out everywhere.

use candle_core::{DType, Result, Tensor};

use super::softmax;

/// 1 - mean over present classes c of (2 sum p_c t_c + eps) / (sum p_c + sum t_c + eps).
/// logits: (N, C, H, W), targets: (N, H, W) u32 ids (`ignore_index` pixels excluded) -> scalar.
pub fn dice_loss(logits: &Tensor, targets: &Tensor, ignore_index: Option<u32>, eps: f64) -> Result<Tensor> {
    let (n, c, h, w) = logits.dims4()?;
    if targets.dims() != [n, h, w] {
        candle_core::bail!(
            "dice_loss: targets {:?}; expected ({n}, {h}, {w}) for logits {:?}",
            targets.dims(),
            logits.dims()
        );
    }
    let dev = logits.device();
    let t = targets.to_dtype(DType::U32)?.unsqueeze(1)?;
    let classes = Tensor::arange(0u32, c as u32, dev)?.reshape((1, c, 1, 1))?;
    let onehot = t.broadcast_eq(&classes)?.to_dtype(DType::F32)?;
    let valid = match ignore_index {
        Some(ig) => t.ne(ig)?.to_dtype(DType::F32)?,
        None => Tensor::ones((n, 1, h, w), DType::F32, dev)?,
    };
    let p = softmax(logits, 1)?.broadcast_mul(&valid)?;
    // Sums over batch and pixels, per class: (C).
    let per_class = |x: &Tensor| x.transpose(0, 1)?.reshape((c, n * h * w))?.sum(1);
    let inter = per_class(&(&p * &onehot)?)?;
    let card = (per_class(&p)? + per_class(&onehot)?)?;
    let dice = ((inter * 2.0)? + eps)?.div(&(card + eps)?)?;
    let present = per_class(&onehot)?.gt(0.0)?.to_dtype(DType::F32)?;
    let n_present = present.sum_all()?.to_scalar::<f32>()?;
    if n_present == 0.0 {
        // Only ignored pixels: nothing to score; a zero that still reaches every logit.
        return logits.sum_all()? * 0.0;
    }
    (dice * present)?.sum_all()?.affine(-1.0 / n_present as f64, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn perfect_is_zero_wrong_is_one_and_ignored_pixels_do_not_count() {
        let dev = Device::Cpu;
        // Two classes, one image of 1x3; very confident logits.
        let t = Tensor::new(&[[[0u32, 1, 1]]], &dev).unwrap();
        let right = Tensor::new(&[[[[50f32, -50., -50.]], [[-50., 50., 50.]]]], &dev).unwrap();
        let l = dice_loss(&right, &t, None, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!(l.abs() < 1e-6, "{l}");
        let wrong = right.neg().unwrap();
        let l = dice_loss(&wrong, &t, None, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((l - 1.0).abs() < 1e-6, "{l}");
        // Everything predicted as class 1: right on pixels 1-2, wrong on pixel 0 unless it is ignored.
        let all_one = Tensor::new(&[[[[-50f32, -50., -50.]], [[50., 50., 50.]]]], &dev).unwrap();
        let l = dice_loss(&all_one, &t, Some(255), 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!(l > 0.4, "{l}");
        let t = Tensor::new(&[[[255u32, 1, 1]]], &dev).unwrap();
        let l = dice_loss(&all_one, &t, Some(255), 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn dice_matches_a_hand_computation_and_has_gradients() {
        let dev = Device::Cpu;
        let logits = candle_core::Var::new(&[[[[0.3f32, -0.2]], [[0.1, 0.4]]]], &dev).unwrap();
        let t = Tensor::new(&[[[1u32, 1]]], &dev).unwrap();
        let l = dice_loss(logits.as_tensor(), &t, None, 1.0).unwrap();
        // Only class 1 is present: p1 = sigmoid(l1 - l0) per pixel.
        let s = |d: f32| 1.0 / (1.0 + (-d).exp());
        let (a, b) = (s(0.1 - 0.3), s(0.4 + 0.2));
        let want = 1.0 - (2.0 * (a + b) + 1.0) / ((a + b) + 2.0 + 1.0);
        assert!((l.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        let g = l.backward().unwrap();
        let g = g.get(&logits).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.abs() > 1e-4), "{g:?}");
    }
}
