//! hitomi-backbone: the `Backbone` trait and the ResNet family, shared by every task.

pub mod backbone;
pub mod resnet;

pub use backbone::Backbone;
pub use resnet::{Arch, BlockKind, ResNet, ResNetConfig, StemConfig};
