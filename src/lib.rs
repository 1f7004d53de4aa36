//! The `hitomi` umbrella package: the tour that runs every task on the bundled data, and the
//! speed benchmark against the PyTorch reference.

pub mod bench;
pub mod data_cmd;
pub mod tour;
