//! hitomi-train: the generic trainer (any `Task`), optimizers with savable state, LR schedules,
//! gradient clipping, EMA, checkpoints with exact resume, progress and reports (CSV, plots).

pub mod cli;
pub mod clip;
pub mod config;
pub mod draw;
pub mod ema;
pub mod optim;
pub mod plot;
pub mod run_dir;
pub mod schedule;
pub mod setup;
pub mod task;
pub mod trainer;
pub mod weights;

pub use config::{OptimizerConfig, ScheduleConfig, TrainConfig};
pub use task::{Metrics, StepLoss, Task};
pub use trainer::{fit, FitSummary};
