//! `hitomi-classify train|eval|predict`: parses flags and calls the library.

use clap::Parser;
use hitomi_classify::cli::{run, ClassifyCommand};

#[derive(Parser)]
#[command(name = "hitomi-classify", version, about = "Image classification with hitomi")]
struct Cli {
    #[command(subcommand)]
    cmd: ClassifyCommand,
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    run(&Cli::parse().cmd)
}
