//! hitomi-restore: image restoration learned from clean/distorted pairs (denoise, deblur, rain
//! removal): a residual encoder-decoder, PSNR/SSIM as scikit-image, classical filter baselines.

pub mod cli;
pub mod colour;
pub mod config;
pub mod data;
pub mod ensemble;
pub mod eval;
pub mod filters;
pub mod model;
pub mod predict;
pub mod quality;
pub mod sheet;
pub mod task;
pub mod tiles;
pub mod train;
