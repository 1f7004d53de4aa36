//! `hitomi-segment train|eval|predict`: parses flags and calls the library.

use clap::Parser;
use hitomi_segment::cli::{run, SegmentCommand};

#[derive(Parser)]
#[command(name = "hitomi-segment", version, about = "Semantic segmentation with hitomi")]
struct Cli {
    #[command(subcommand)]
    cmd: SegmentCommand,
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    run(&Cli::parse().cmd)
}
