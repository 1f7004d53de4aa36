//! `hitomi-detect train|eval|predict|cocoeval`: parses flags and calls the library.

use clap::Parser;
use hitomi_detect::cli::{run, DetectCommand};

#[derive(Parser)]
#[command(name = "hitomi-detect", version, about = "Object detection with hitomi")]
struct Cli {
    #[command(subcommand)]
    cmd: DetectCommand,
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    run(&Cli::parse().cmd)
}
