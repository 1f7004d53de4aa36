//! Losses with PyTorch / torchvision semantics, differentiable through candle's autograd.

mod cross_entropy;

pub use cross_entropy::{cross_entropy, log_softmax, softmax, CrossEntropyOptions};

/// How per-element losses are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Mean,
    Sum,
}
