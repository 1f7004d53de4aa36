//! The contract between a backbone and the task heads built on it.

use anyhow::Result;
use candle_core::Tensor;

/// A feature extractor giving multi-scale maps, finest first (as segmentation_models_pytorch's
/// encoders). Tasks build their heads on `out_channels()` and never look inside.
pub trait Backbone: Send + Sync {
    /// xs: (B, C_in, H, W) -> for each level i: (B, out_channels()[i], H / strides()[i], W / strides()[i])
    /// (rounded as the convolutions round). `train` selects batch statistics in the norms.
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Vec<Tensor>>;
    /// Channels of each returned level, finest first.
    fn out_channels(&self) -> Vec<usize>;
    /// Total stride of each returned level, finest first.
    fn strides(&self) -> Vec<usize>;
    /// Channels the input must have.
    fn in_channels(&self) -> usize;
}
