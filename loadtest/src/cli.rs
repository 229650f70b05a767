//! Command line and orchestration: which servers a scenario runs against, in which order,
//! with which authentication and cores, and where the result goes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::auth::{default_cache_path, Accounts};
use crate::result::{self, ResultFile, Run, ServerInfo, SCHEMA};
use crate::runner::{AuthMode, PlayerSet};
use crate::scenario::blast::BlastParams;
use crate::scenario::idle::IdleParams;
use crate::scenario::play::{default_match_size, PlayParams, Ramp, RampMetric};
use crate::scenario::reload::ReloadParams;
use crate::scenario::{self, RunSpec};
use crate::{baseline, fakegame, report, server, sys, ws};

/// Load generator for asobi-rs and any asobi-compatible WebSocket server.
#[derive(Parser)]
#[command(name = "asobi-loadtest", version)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// asobi's benchmark: C connections, each sends M heartbeats back to back (or R/s with --rate).
    Blast {
        #[command(flatten)]
        target: TargetArgs,
        /// Connections.
        #[arg(long, default_value_t = 3500)]
        connections: usize,
        /// Heartbeats per connection (burst mode).
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        /// Connections opened per wave.
        #[arg(long, default_value_t = 200)]
        wave: usize,
        /// Milliseconds between waves.
        #[arg(long, default_value_t = 100)]
        wave_ms: u64,
        /// Paced mode: heartbeats per second per connection (bare `--rate` = 24, asobi's
        /// 3,500 × 24/s ≈ 84k msg/s total load).
        #[arg(long, num_args = 0..=1, default_missing_value = "24")]
        rate: Option<f64>,
        /// Paced mode: seconds of sending.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Give up on a connection after this many seconds without a reply.
        #[arg(long, default_value_t = 15.0)]
        idle_timeout: f64,
        /// Distinct players to authenticate as, reused round-robin (default: one per connection).
        #[arg(long)]
        players: Option<usize>,
    },
    /// P players queue a mode, get matched, send inputs and read state.
    Play {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        game: GameArgs,
        /// Players (one socket and one account each; rounded down to whole matches).
        #[arg(long, default_value_t = 1000)]
        players: usize,
        /// Measured seconds once everyone is matched.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Seconds allowed for everyone to get matched.
        #[arg(long, default_value_t = 60.0)]
        match_timeout: f64,
        /// Increase CCU in steps until input→state p99 exceeds --p99-bound-ms.
        #[arg(long)]
        ramp: bool,
        /// Ramp: first step's CCU.
        #[arg(long, default_value_t = 200)]
        ramp_start: usize,
        /// Ramp: CCU added per step.
        #[arg(long, default_value_t = 200)]
        ramp_step: usize,
        /// Ramp: highest CCU tried.
        #[arg(long, default_value_t = 20_000)]
        ramp_max: usize,
        /// Ramp: measured seconds per step.
        #[arg(long, default_value_t = 10.0)]
        step_secs: f64,
        /// Ramp: p99 bound in ms on --ramp-metric.
        #[arg(long, default_value_t = 20.0)]
        p99_bound_ms: f64,
        /// Ramp: which latency the bound applies to (input→state includes waiting for the
        /// next tick, so it is at least the tick period at any load).
        #[arg(long, value_enum, default_value = "tick-jitter")]
        ramp_metric: RampMetric,
    },
    /// Open N quiet sockets, hold them, report server memory per connection and time to open.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// Sockets to open.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Distinct players reused round-robin (registering 100k accounts takes long; e.g. 1000).
        #[arg(long)]
        players: Option<usize>,
        /// Connections per wave.
        #[arg(long, default_value_t = 500)]
        wave: usize,
        /// Milliseconds between waves.
        #[arg(long, default_value_t = 20)]
        wave_ms: u64,
        /// Seconds to hold the sockets.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
    },
    /// Hot-reload the mode's Lua file under load; measure save → new rules seen by each client.
    Reload {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        game: GameArgs,
        /// Players.
        #[arg(long, default_value_t = 100)]
        players: usize,
        /// Reloads to perform.
        #[arg(long, default_value_t = 5)]
        reloads: usize,
        /// Seconds of play before the first reload.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds to wait for all clients to see a new version.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Seconds between reloads.
        #[arg(long, default_value_t = 2.0)]
        gap: f64,
        /// File holding `RULES_VERSION`, relative to --game-dir.
        #[arg(long, default_value = "arena.lua")]
        rules_file: PathBuf,
    },
    /// The bare baseline WebSocket server (glommio + async-tungstenite), heartbeats only.
    BaselineServer {
        /// Port.
        #[arg(long, default_value_t = 18081)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Cores, one executor each (default: core 0).
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// tungstenite read buffer in bytes (default: tungstenite's own, 128 KiB, which is
        /// what asobi-rs uses; note tungstenite zero-fills it on every read).
        #[arg(long)]
        read_buffer: Option<usize>,
    },
    /// Regenerate bench-results/README.md from the JSON results.
    Report {
        /// Results directory (default: <repo>/bench-results).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Development stand-in for the real server (REST auth, matchmaking, ticking matches,
    /// RULES_VERSION reload); used by this crate's tests, not a benchmark subject.
    #[command(hide = true)]
    FakeGameServer {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        game_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        tick_ms: u64,
    },
}

#[derive(Args, Clone)]
struct GameArgs {
    /// Game mode to queue.
    #[arg(long, default_value = "duel")]
    mode: String,
    /// Players per match (default: duel 2, brawl 8).
    #[arg(long)]
    match_size: Option<usize>,
    /// match.input per second per player.
    #[arg(long, default_value_t = 20.0)]
    input_hz: f64,
    /// The server's tick period in ms (for jitter).
    #[arg(long, default_value_t = 100.0)]
    tick_ms: f64,
}

#[derive(Args, Clone)]
struct TargetArgs {
    /// Server to measure when nothing is spawned.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Spawn this asobi binary (`asobi serve --port P --game-dir D`) and measure it.
    #[arg(long)]
    spawn_server: Option<PathBuf>,
    /// Game directory for a spawned server (and reload's Lua file).
    #[arg(long, default_value = "examples/arena")]
    game_dir: PathBuf,
    /// ASOBI_DATA_DIR for a spawned server (default ~/.cache/asobi-loadtest/server-data,
    /// kept so cached players stay valid).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Extra environment for a spawned asobi server, KEY=VALUE (repeatable). By default the
    /// per-connection message and connect rate limits are off (ASOBI_WS_MSG_RATE=0,
    /// ASOBI_WS_CONNECT_RATE=0) because the scenarios measure capacity, not the limiter;
    /// give `--server-env ASOBI_WS_MSG_RATE=60` to measure with it.
    #[arg(long = "server-env", value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// Port for a spawned asobi server.
    #[arg(long, default_value_t = 18080)]
    server_port: u16,
    /// Cores for spawned servers (ASOBI_SHARDS = their count).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    server_cores: Vec<usize>,
    /// Pid of an already running server, for its CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Measure only the built-in baseline server.
    #[arg(long, conflicts_with = "compare")]
    baseline: bool,
    /// Measure the baseline, then the target, and report the ratio.
    #[arg(long)]
    compare: bool,
    /// Port for the spawned baseline.
    #[arg(long, default_value_t = 18081)]
    baseline_port: u16,
    /// No REST registration and no session.connect (third-party servers).
    #[arg(long)]
    no_auth: bool,
    /// Player cache file (default ~/.cache/asobi-loadtest/players-<host>.json).
    #[arg(long)]
    players_file: Option<PathBuf>,
    /// Registrations/logins in flight while preparing players.
    #[arg(long, default_value_t = 32)]
    register_concurrency: usize,
    /// Client worker cores, one thread each (default: every core not in --server-cores).
    #[arg(long, value_delimiter = ',')]
    client_cores: Vec<usize>,
    /// Loopback source addresses (127.0.0.1..n) to spread sockets over.
    #[arg(long, default_value_t = 16)]
    source_ips: usize,
    /// Nice value for the client and spawned servers (-20 = highest). On a shared machine
    /// this keeps other work from stealing the measured cores; 0 to leave priorities alone.
    #[arg(long, default_value_t = -20, allow_negative_numbers = true)]
    nice: i32,
    /// Before each run, wait up to this many seconds for other processes to use less than
    /// --idle-below cores (a shared machine makes numbers noisy); 0 to start at once.
    #[arg(long, default_value_t = 120.0)]
    wait_idle: f64,
    /// Background CPU (cores busy) considered quiet enough to measure.
    #[arg(long, default_value_t = 0.3)]
    idle_below: f64,
    /// Seconds allowed to open one connection.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Results directory (default <repo>/bench-results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Do not write result files.
    #[arg(long)]
    no_write: bool,
    /// No per-second progress lines.
    #[arg(long)]
    quiet: bool,
}

enum Scenario {
    Blast(BlastParams),
    Idle(IdleParams),
    Play(PlayParams),
    Reload(ReloadParams),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Blast(p) if p.rate.is_some() => "blast-rate",
            Scenario::Blast(_) => "blast",
            Scenario::Idle(_) => "idle",
            Scenario::Play(p) if p.ramp.is_some() => "play-ramp",
            Scenario::Play(_) => "play",
            Scenario::Reload(_) => "reload",
        }
    }

    fn params(&self) -> Value {
        match self {
            Scenario::Blast(p) => serde_json::to_value(p),
            Scenario::Idle(p) => serde_json::to_value(p),
            Scenario::Play(p) => serde_json::to_value(p),
            Scenario::Reload(p) => serde_json::to_value(p),
        }
        .unwrap_or(Value::Null)
    }

    /// Accounts needed when authenticating with real players.
    fn accounts(&self, players: Option<usize>) -> usize {
        match self {
            Scenario::Blast(p) => players.unwrap_or(p.connections).min(p.connections),
            Scenario::Idle(p) => players.unwrap_or(p.connections).min(p.connections),
            // A ramp registers more players as it climbs (it usually stops well short of max).
            Scenario::Play(p) => p.ramp.as_ref().map_or(p.players, |r| r.start),
            Scenario::Reload(p) => p.players,
        }
        .max(1)
    }

    async fn run(&self, spec: &RunSpec) -> anyhow::Result<Run> {
        match self {
            Scenario::Blast(p) => scenario::blast::run(spec, p).await,
            Scenario::Idle(p) => scenario::idle::run(spec, p).await,
            Scenario::Play(p) => scenario::play::run(spec, p).await,
            Scenario::Reload(p) => scenario::reload::run(spec, p).await,
        }
    }
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::BaselineServer {
            port,
            bind,
            cores,
            read_buffer,
        } => baseline::run(&bind, port, &cores, read_buffer),
        Cmd::FakeGameServer {
            port,
            game_dir,
            tick_ms,
        } => fakegame::run(port, &game_dir, tick_ms),
        Cmd::Report { dir } => {
            let dir = dir.unwrap_or_else(default_out_dir);
            let n = report::write_readme(&dir)?;
            eprintln!("{}: {n} scenarios", dir.join("README.md").display());
            Ok(())
        }
        Cmd::Blast {
            target,
            connections,
            messages,
            wave,
            wave_ms,
            rate,
            duration,
            idle_timeout,
            players,
        } => {
            let s = Scenario::Blast(BlastParams {
                connections,
                messages,
                wave,
                wave_ms,
                rate,
                duration_s: duration,
                idle_timeout_s: idle_timeout,
            });
            let accounts = s.accounts(players);
            orchestrate(&target, s, accounts)
        }
        Cmd::Idle {
            target,
            connections,
            players,
            wave,
            wave_ms,
            hold,
        } => {
            let s = Scenario::Idle(IdleParams {
                connections,
                wave,
                wave_ms,
                hold_s: hold,
            });
            let accounts = s.accounts(players);
            orchestrate(&target, s, accounts)
        }
        Cmd::Play {
            target,
            game,
            players,
            duration,
            match_timeout,
            ramp,
            ramp_start,
            ramp_step,
            ramp_max,
            step_secs,
            p99_bound_ms,
            ramp_metric,
        } => {
            let s = Scenario::Play(PlayParams {
                players,
                match_size: game
                    .match_size
                    .unwrap_or_else(|| default_match_size(&game.mode)),
                mode: game.mode,
                input_hz: game.input_hz,
                tick_ms: game.tick_ms,
                duration_s: duration,
                wave: 200,
                wave_ms: 100,
                match_timeout_s: match_timeout,
                ramp: ramp.then_some(Ramp {
                    start: ramp_start,
                    step: ramp_step,
                    max: ramp_max,
                    step_s: step_secs,
                    p99_bound_ms,
                    metric: ramp_metric,
                }),
            });
            let accounts = s.accounts(None);
            orchestrate(&target, s, accounts)
        }
        Cmd::Reload {
            target,
            game,
            players,
            reloads,
            warmup,
            timeout,
            gap,
            rules_file,
        } => {
            let s = Scenario::Reload(ReloadParams {
                players,
                match_size: game
                    .match_size
                    .unwrap_or_else(|| default_match_size(&game.mode)),
                mode: game.mode,
                input_hz: game.input_hz,
                tick_ms: game.tick_ms,
                reloads,
                warmup_s: warmup,
                timeout_s: timeout,
                gap_s: gap,
                rules_file,
                wave: 200,
                wave_ms: 100,
            });
            let accounts = s.accounts(None);
            orchestrate(&target, s, accounts)
        }
    }
}

/// Waits (bounded by --wait-idle) until the machine's busy CPU, measured over 2 s, is below
/// --idle-below cores; returns the last measurement.
fn wait_for_quiet(t: &TargetArgs) -> Option<f64> {
    if t.wait_idle <= 0.0 {
        return None;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(t.wait_idle);
    let mut warned = false;
    loop {
        let a = sys::system_busy_seconds()?;
        std::thread::sleep(Duration::from_secs(2));
        let busy = (sys::system_busy_seconds()? - a) / 2.0;
        if busy < t.idle_below {
            return Some(busy);
        }
        if std::time::Instant::now() >= deadline {
            eprintln!(
                "warning: machine still busy ({busy:.2} cores used by others); measuring anyway"
            );
            return Some(busy);
        }
        if !warned {
            eprintln!(
                "waiting up to {:.0} s for background load ({busy:.2} cores) to drop below {} cores",
                t.wait_idle, t.idle_below
            );
            warned = true;
        }
    }
}

fn note_background(run: &mut Run, background: Option<f64>) {
    if let Some(b) = background {
        run.figures
            .insert("background_cores_before".into(), result::round3(b).into());
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s}"))
}

/// Environment for a spawned asobi: benchmark defaults overridden by `--server-env`.
fn server_env(t: &TargetArgs) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        [("ASOBI_WS_MSG_RATE", "0"), ("ASOBI_WS_CONNECT_RATE", "0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    for (k, v) in &t.server_env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

fn default_out_dir() -> PathBuf {
    sys::git_toplevel().map_or_else(
        || PathBuf::from("bench-results"),
        |t| t.join("bench-results"),
    )
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache")
        .join("asobi-loadtest")
        .join("server-data")
}

/// Client worker cores: the requested ones, else every core the servers do not use.
fn client_cores(t: &TargetArgs) -> Vec<Option<usize>> {
    if !t.client_cores.is_empty() {
        return t.client_cores.iter().map(|&c| Some(c)).collect();
    }
    let free: Vec<Option<usize>> = (0..sys::cpu_count())
        .filter(|c| !t.server_cores.contains(c))
        .map(Some)
        .collect();
    if free.is_empty() {
        vec![None]
    } else {
        free
    }
}

fn orchestrate(t: &TargetArgs, mut s: Scenario, accounts: usize) -> anyhow::Result<()> {
    let nofile = sys::raise_nofile();
    sys::raise_memlock();
    let name = s.name();
    // Before any thread starts, so every worker inherits it.
    let nice = (t.nice != 0).then_some(t.nice);
    if let Some(n) = nice {
        if let Err(e) = sys::set_nice(n) {
            eprintln!("warning: cannot set nice {n}: {e}; measuring at normal priority");
        }
    }
    eprintln!("{name}: fd limit {nofile}, nice {}", t.nice);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cores = client_cores(t);
    let mut runs: Vec<Run> = Vec::new();
    let base_spec =
        |role: &str, url: String, server: ServerInfo, auth: AuthMode, label: &str| RunSpec {
            role: role.to_string(),
            url,
            server,
            auth,
            client_cores: cores.clone(),
            source_ips: t.source_ips,
            connect_timeout: Duration::from_secs_f64(t.connect_timeout),
            label: label.to_string(),
            quiet: t.quiet,
        };

    if t.baseline || t.compare {
        if matches!(s, Scenario::Play(_) | Scenario::Reload(_)) {
            bail!("{name} needs game logic; the baseline only answers heartbeats (drop --baseline/--compare)");
        }
        let mut srv = server::spawn_baseline(t.baseline_port, &t.server_cores, nice)?;
        srv.wait_ready(Duration::from_secs(10))?;
        let info = ServerInfo {
            kind: "baseline".into(),
            pid: Some(srv.pid),
            command: Some(srv.command.clone()),
            cores: srv.cores.clone(),
        };
        let auth = if t.no_auth {
            AuthMode::None
        } else {
            AuthMode::Placeholder
        };
        let role = if t.compare { "baseline" } else { "target" };
        let spec = base_spec(role, srv.url.clone(), info, auth, "baseline");
        let background = wait_for_quiet(t);
        let mut run = rt.block_on(s.run(&spec))?;
        note_background(&mut run, background);
        runs.push(run);
        drop(srv);
        if t.compare {
            // Let the kernel retire the baseline's sockets before the next run opens as many.
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    if !t.baseline {
        let mut _game_copy: Option<TempDir> = None;
        let mut _srv: Option<server::ServerProc> = None;
        let (url, info) = if let Some(bin) = &t.spawn_server {
            let game_dir = if let Scenario::Reload(p) = &mut s {
                // Reload edits the game; never touch the checked-in copy.
                let tmp = TempDir::new("reload")?;
                copy_dir(&t.game_dir, &tmp.0)?;
                p.rules_file = tmp.0.join(&p.rules_file);
                let dir = tmp.0.clone();
                _game_copy = Some(tmp);
                dir
            } else {
                t.game_dir.clone()
            };
            let data_dir = t.data_dir.clone().unwrap_or_else(default_data_dir);
            let mut srv = server::spawn_asobi(
                bin,
                t.server_port,
                &game_dir,
                &data_dir,
                &t.server_cores,
                &server_env(t),
                nice,
            )?;
            eprintln!("asobi pid {} log {}", srv.pid, srv.log.display());
            srv.wait_ready(Duration::from_secs(60))?;
            let info = ServerInfo {
                kind: "asobi".into(),
                pid: Some(srv.pid),
                command: Some(srv.command.clone()),
                cores: srv.cores.clone(),
            };
            let url = srv.url.clone();
            _srv = Some(srv);
            (url, info)
        } else {
            if let Scenario::Reload(p) = &mut s {
                p.rules_file = t.game_dir.join(&p.rules_file);
            }
            let info = ServerInfo {
                kind: "external".into(),
                pid: t.server_pid,
                command: None,
                cores: vec![],
            };
            (t.url.clone(), info)
        };
        let auth = if t.no_auth {
            AuthMode::None
        } else {
            let ep = ws::Endpoint::parse(&url)?;
            let base = ep.http_base();
            let cache = t
                .players_file
                .clone()
                .unwrap_or_else(|| default_cache_path(&base));
            let acc = Arc::new(Accounts::open(&base, &cache));
            let players = acc
                .ensure(accounts, t.register_concurrency)
                .context("preparing players")?;
            AuthMode::Players(Arc::new(PlayerSet {
                players: Mutex::new(players),
                accounts: acc,
                concurrency: t.register_concurrency,
            }))
        };
        let label = info.kind.clone();
        let spec = base_spec("target", url, info, auth.clone(), &label);
        let background = wait_for_quiet(t);
        let run = rt.block_on(s.run(&spec)).map(|mut r| {
            note_background(&mut r, background);
            r
        });
        if let AuthMode::Players(set) = &auth {
            let _ = set.accounts.save();
        }
        if let Some(srv) = &mut _srv {
            if !srv.alive() {
                eprintln!(
                    "warning: the asobi server exited during the run (log {})",
                    srv.log.display()
                );
            }
        }
        runs.push(run?);
    }

    let ratio = match (
        runs.iter().find(|r| r.role == "baseline"),
        runs.iter().find(|r| r.role == "target"),
    ) {
        (Some(b), Some(tg)) => Some(result::ratios(b, tg)),
        _ => None,
    };
    let target = runs.last().map(|r| r.headline.clone()).unwrap_or_default();
    let headline = match ratio.as_ref().and_then(|m| {
        [
            "throughput_msg_s",
            "achieved_msg_s",
            "server_mem_per_conn_bytes",
        ]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_f64).map(|v| (*k, v)))
    }) {
        Some((k, v)) => format!("{target} ({k} = {v:.2}× baseline)"),
        None => target,
    };
    let (ts, stamp) = sys::utc_now();
    let file = ResultFile {
        schema: SCHEMA.into(),
        scenario: name.into(),
        timestamp: ts,
        command: sys::command_line(),
        git_commit: sys::git_commit(),
        machine: sys::machine(),
        params: {
            let mut p = s.params();
            if let Value::Object(m) = &mut p {
                m.insert("nice".into(), t.nice.into());
                m.insert("source_ips".into(), t.source_ips.into());
            }
            p
        },
        runs,
        ratio,
        headline,
    };
    for r in &file.runs {
        println!("{} [{}]: {}", file.scenario, r.role, r.headline);
    }
    if let Some(r) = &file.ratio {
        println!("ratio target/baseline: {}", Value::Object(r.clone()));
    }
    if !t.no_write {
        let dir = t.out_dir.clone().unwrap_or_else(default_out_dir);
        let path = result::write(&dir, &stamp, &file)?;
        report::write_readme(&dir)?;
        println!(
            "wrote {} (+ .svg), updated {}",
            path.display(),
            dir.join("README.md").display()
        );
    }
    Ok(())
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> anyhow::Result<TempDir> {
        let (_, stamp) = sys::utc_now();
        let p = std::env::temp_dir().join(format!(
            "asobi-loadtest-{tag}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}
