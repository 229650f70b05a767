//! The `asobi` binary: `serve` (default), `migrate`, `check`, `import`.

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
    // `ASOBI_LOG_FORMAT=json`: one JSON object per line, fields at the top level, so a log
    // shipper can key on `event` (stable names: `server_started`, `drain_started`,
    // `match_finished`, `ops_action`, ...). The human format stays the default.
    let json = std::env::var("ASOBI_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }

    let cli = Cli::parse();
    let result = match cli.command {
        None => node::serve(cli.serve),
        Some(Command::Serve(args)) => node::serve(*args),
        Some(Command::Migrate(db)) => migrate(&db),
        Some(Command::Check { game_dir }) => return check(&game_dir),
        Some(Command::Import { from, db }) => {
            services::accounts::import::run(&from, &db.store_config()).map(|r| println!("{r}"))
        }
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

#[cfg(test)]
mod layout {
    //! The engine's layers import one way (engine/README.md): main → node → edge → services →
    //! shard → wire. A module may name only the layers below it.

    /// Layers from the top; each may import the ones after it, never the ones before.
    const LAYERS: [&str; 5] = ["node", "edge", "services", "shard", "wire"];

    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn imports_point_down_only() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut wrong = Vec::new();
        for (i, layer) in LAYERS.iter().enumerate() {
            let mut files = Vec::new();
            sources(&src.join(layer), &mut files);
            assert!(!files.is_empty(), "{layer}/ has no sources");
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                for above in &LAYERS[..i] {
                    if text.contains(&format!("crate::{above}")) {
                        wrong.push(format!("{} names crate::{above}", file.display()));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "imports against the layering: {wrong:#?}");
    }

    #[test]
    fn the_rules_crate_does_no_io() {
        let manifest = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/Cargo.toml"),
        )
        .unwrap();
        for dep in [
            "glommio",
            "asobi-storage",
            "asobi-script",
            "tokio",
            "socket2",
            "quinn",
        ] {
            assert!(!manifest.contains(dep), "asobi-rules depends on {dep}");
        }
    }
}
