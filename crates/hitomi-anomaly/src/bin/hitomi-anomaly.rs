//! `hitomi-anomaly train|eval|predict|bench-mnist`: parses flags and calls the library.

use clap::Parser;
use hitomi_anomaly::cli::{run, AnomalyCommand};

#[derive(Parser)]
#[command(name = "hitomi-anomaly", version, about = "Anomaly detection from pretrained CNN features with hitomi")]
struct Cli {
    #[command(subcommand)]
    cmd: AnomalyCommand,
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    run(&Cli::parse().cmd)
}
