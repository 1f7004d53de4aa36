//! `hitomi-restore train|eval|predict`: parses flags and calls the library.

use clap::Parser;
use hitomi_restore::cli::{run, RestoreCommand};

#[derive(Parser)]
#[command(name = "hitomi-restore", version, about = "Image restoration (denoise, deblur, rain removal) with hitomi")]
struct Cli {
    #[command(subcommand)]
    cmd: RestoreCommand,
}

fn main() -> anyhow::Result<()> {
    hitomi_core::alloc::keep_freed_memory();
    hitomi_core::threads::join_pool_from_main();
    run(&Cli::parse().cmd)
}
