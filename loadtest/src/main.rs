//! The `asobi-loadtest` binary; see the library documentation for what it does.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    asobi_loadtest::cli::dispatch(asobi_loadtest::cli::Cli::parse())
}
