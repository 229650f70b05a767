//! The `asobi` binary: `serve` (default), `migrate`, `check`.

mod edge;
mod node;
mod services;
mod shard;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use node::config::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASOBI_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        None => node::serve(cli.serve),
        Some(Command::Serve(args)) => node::serve(*args),
        Some(Command::Migrate(db)) => migrate(&db),
        Some(Command::Check { game_dir }) => return check(&game_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(db: &node::config::DbArgs) -> anyhow::Result<()> {
    let cfg = db.store_config();
    let applied = asobi_storage::migrate(&cfg)?;
    if applied.is_empty() {
        println!("{}: up to date", cfg.describe());
    } else {
        for name in &applied {
            println!("applied {name}");
        }
        println!("{}: {} migration(s) applied", cfg.describe(), applied.len());
    }
    Ok(())
}

fn check(dir: &std::path::Path) -> ExitCode {
    let diagnostics = asobi_script::check(dir);
    if diagnostics.is_empty() {
        println!("{}: ok", dir.display());
        return ExitCode::SUCCESS;
    }
    for d in &diagnostics {
        println!("{d}");
    }
    ExitCode::FAILURE
}
