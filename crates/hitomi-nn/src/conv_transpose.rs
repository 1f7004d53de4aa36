//! Transposed 2-D convolution layer (the learnable up-step of an encoder-decoder), PyTorch layout.

use anyhow::Result;
use candle_core::{Module, Tensor};
use hitomi_core::{Init, ParamPath};

use crate::conv_op::{conv_transpose2d, ConvTransposeGeom};

/// `weight` (in, out, k, k) as PyTorch's `ConvTranspose2d`, optional `bias` (out).
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub geom: ConvTransposeGeom,
}

impl ConvTranspose2d {
    /// PyTorch's default initialisation: U(+-1/sqrt(fan_in)) with fan_in = out * k * k (PyTorch
    /// computes it from dimension 1 of the transposed weight).
    pub fn new(
        p: &ParamPath,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geom: ConvTransposeGeom,
        bias: bool,
    ) -> Result<Self> {
        let fan_in = c_out * kernel * kernel;
        let weight = p.weight("weight", &[c_in, c_out, kernel, kernel], Init::KaimingUniform { fan_in })?;
        let bias = if bias { Some(p.no_decay("bias", &[c_out], Init::KaimingUniform { fan_in })?) } else { None };
        Ok(Self { weight, bias, geom })
    }

    /// The 2x up-step of FCN (Long et al. 2015): kernel 4, stride 2, padding 1, C -> C channels,
    /// initialised to bilinear interpolation (each channel to itself with the separable kernel
    /// [1, 3, 3, 1] / 4 per axis; the border sees zero padding where bilinear would clamp) and zero
    /// bias, then learned. It starts as the parameter-free decoder and can only improve on it, and the
    /// overlapping kernels leave no checkerboard. (B, C, H, W) -> (B, C, 2H, 2W).
    pub fn bilinear_up2(p: &ParamPath, channels: usize) -> Result<Self> {
        let geom = ConvTransposeGeom { stride: 2, padding: 1, output_padding: 0, dilation: 1 };
        let layer = Self::new(p, channels, channels, 4, geom, true)?;
        let taps = [0.25f32, 0.75, 0.75, 0.25];
        let mut w = vec![0f32; channels * channels * 16];
        for c in 0..channels {
            for (i, a) in taps.iter().enumerate() {
                for (j, b) in taps.iter().enumerate() {
                    w[((c * channels + c) * 4 + i) * 4 + j] = a * b;
                }
            }
        }
        let store = p.store();
        let set = |leaf: &str, t: Tensor| -> Result<()> {
            let name = p.full_name(leaf);
            let var = store.var(&name).ok_or_else(|| anyhow::anyhow!("{name} was not created"))?;
            var.set(&t)?;
            Ok(())
        };
        set("weight", Tensor::from_vec(w, (channels, channels, 4, 4), &p.device())?)?;
        set("bias", Tensor::zeros(channels, candle_core::DType::F32, &p.device())?)?;
        Ok(layer)
    }
}

impl Module for ConvTranspose2d {
    /// xs: (B, C_in, H, W) -> (B, C_out, (H-1)s - 2p + d(k-1) + op + 1, ...)
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let ys = conv_transpose2d(xs, &self.weight, self.geom)?;
        match &self.bias {
            Some(b) => crate::channel_bias::add_channel_bias(&ys, b),
            None => Ok(ys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upsample::upsample_bilinear2d;
    use hitomi_core::ParamStore;

    #[test]
    fn bilinear_up2_starts_as_bilinear_interpolation_away_from_the_border() -> Result<()> {
        let store = ParamStore::new(0, &candle_core::Device::Cpu);
        let up = ConvTranspose2d::bilinear_up2(&store.root().pp("up"), 3)?;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &store.device())?;
        let y = up.forward(&x)?;
        assert_eq!(y.dims(), &[2, 3, 10, 12]);
        let want = upsample_bilinear2d(&x, (10, 12))?;
        // Rows/columns 1..2H-1 are interpolated between two inputs in both; the outermost ones differ
        // only in how the border is padded.
        let inner = |t: &Tensor| t.narrow(2, 1, 8).and_then(|t| t.narrow(3, 1, 10));
        let diff = (inner(&y)? - inner(&want)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        // The weights are trainable parameters, not constants.
        assert_eq!(store.num_trainable(), 3 * 3 * 16 + 3);
        Ok(())
    }
}
