//! Losses with PyTorch / torchvision semantics, differentiable through candle's autograd.

mod bce;
mod cross_entropy;
mod dice;
mod focal;
mod giou;
mod l1;
mod reduce;

pub use bce::bce_with_logits;
pub use cross_entropy::{cross_entropy, log_softmax, softmax, CrossEntropyOptions};
pub use dice::dice_loss;
pub use focal::sigmoid_focal_loss;
pub use giou::giou_loss;
pub use l1::{l1_loss, smooth_l1_loss};

/// How per-element losses are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Mean,
    Sum,
}
