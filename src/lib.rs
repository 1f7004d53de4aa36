//! The `hitomi` umbrella package: the tour that runs every task on the bundled data.

pub mod tour;
