//! `hitomi`: the umbrella binary: every task's commands, the tour, and (later) the benchmark.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hitomi", version, about = "CNN image analysis in Rust: classify, segment, detect, restore, anomaly")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every task trained and evaluated briefly on the bundled data, with a report in runs/tour/.
    Tour(hitomi::tour::TourArgs),
    /// Speed of the two reference models (train, infer, latency, peak memory).
    Bench(hitomi::bench::BenchArgs),
    /// Object detection with boxes (FCOS): train | eval | predict | cocoeval.
    #[command(subcommand)]
    Detect(hitomi_detect::cli::DetectCommand),
    /// Dataset generators (digit canvases).
    #[command(subcommand)]
    Data(hitomi::data_cmd::DataCommand),
    /// Image classification: train | eval | predict | attack.
    #[command(subcommand)]
    Classify(hitomi_classify::cli::ClassifyCommand),
    /// Semantic segmentation: train | eval | predict.
    #[command(subcommand)]
    Segment(hitomi_segment::cli::SegmentCommand),
    /// Anomaly detection from pretrained features: train | eval | predict | bench-mnist.
    #[command(subcommand)]
    Anomaly(hitomi_anomaly::cli::AnomalyCommand),
    /// Image restoration from synthesised pairs (denoise, deblur, rain): train | eval | predict.
    #[command(subcommand)]
    Restore(hitomi_restore::cli::RestoreCommand),
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    match Cli::parse().cmd {
        Command::Tour(a) => hitomi::tour::run(&a).map(|_| ()),
        Command::Bench(a) => hitomi::bench::run(&a).map(|_| ()),
        Command::Data(c) => hitomi::data_cmd::run(&c),
        Command::Detect(c) => hitomi_detect::cli::run(&c),
        Command::Classify(c) => hitomi_classify::cli::run(&c),
        Command::Segment(c) => hitomi_segment::cli::run(&c),
        Command::Anomaly(c) => hitomi_anomaly::cli::run(&c),
        Command::Restore(c) => hitomi_restore::cli::run(&c),
    }
}
