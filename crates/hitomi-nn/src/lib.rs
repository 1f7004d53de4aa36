//! hitomi-nn: layers and losses with no task knowledge, built on the parameter store of hitomi-core.

pub mod batch_norm;
pub mod batch_norm_op;
pub mod blocks;
pub mod channel_bias;
pub mod conv;
pub mod conv_op;
pub mod conv_transpose;
mod cpu_slice;
pub mod linear;
pub mod losses;
mod phase_conv;
pub mod pool;
pub mod relu_op;
mod scratch_pool;
pub mod upsample;
mod winograd;

pub use batch_norm::BatchNorm2d;
pub use blocks::{BasicBlock, Bottleneck};
pub use conv::{Activation, Conv2d, Conv2dConfig, ConvBnAct};
pub use conv_transpose::ConvTranspose2d;
pub use linear::Linear;
pub use upsample::{upsample2d, upsample_bilinear2d, UpsampleMode};
