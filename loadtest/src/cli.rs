//! The command line: subcommands, their flags and defaults. Running a scenario is
//! [`orchestrate`](crate::orchestrate)'s job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::conn::{Transport, Wire};
use crate::orchestrate::{default_out_dir, orchestrate, Scenario, Target};
use crate::scenario::blast::BlastParams;
use crate::scenario::chat::ChatParams;
use crate::scenario::idle::IdleParams;
use crate::scenario::party::{PartyParams, DEFAULT_MIX};
use crate::scenario::play::{default_match_size, PlayParams, Ramp, RampMetric};
use crate::scenario::purchase::PurchaseParams;
use crate::scenario::reload::ReloadParams;
use crate::scenario::world::{WorldParams, WorldRamp};
use crate::{baseline, fakegame, report};

/// The RPC the `leaderboard` scenario calls, and how many scores one call submits.
const LEADERBOARD_METHOD: &str = "bench.lb_submit";
const LEADERBOARD_BATCH: u64 = 50;

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
    /// Lua RPC throughput: C connections, each sends M `rpc.call`s of --method back to back
    /// (pipelined, like `blast`); needs a game with an `rpc.lua` (e.g. examples/rpc-bench).
    Rpc {
        #[command(flatten)]
        target: TargetArgs,
        /// The RPC method to call (examples/rpc-bench: `bench.ping`, `bench.read`).
        #[arg(long, default_value = "bench.ping")]
        method: String,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Calls per connection.
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        /// Connections opened per wave.
        #[arg(long, default_value_t = 100)]
        wave: usize,
        /// Milliseconds between waves.
        #[arg(long, default_value_t = 100)]
        wave_ms: u64,
        /// Give up on a connection after this many seconds without a reply.
        #[arg(long, default_value_t = 15.0)]
        idle_timeout: f64,
        /// Distinct players to authenticate as (default: one per connection).
        #[arg(long)]
        players: Option<usize>,
    },
    /// Leaderboard submits to the board's owning shard: C connections each send M `rpc.call`s
    /// of `bench.lb_submit` (examples/rpc-bench), each of which submits 50 scores to board
    /// `bench` through `game.leaderboard.submit` (players drawn from 1M ids, so the board grows
    /// toward 1M entries). Figure: `submits_per_s`. Server-side latency per operation is in the
    /// server's `/metrics` (`asobi_leaderboard_*_seconds`).
    Leaderboard {
        #[command(flatten)]
        target: TargetArgs,
        /// Connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Calls per connection.
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// Give up on a connection after this many seconds without a reply.
        #[arg(long, default_value_t = 30.0)]
        idle_timeout: f64,
        /// Distinct players to authenticate as (default: one per connection).
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
    /// One world (default mode `walk`, examples/world-walk): players join it and walk randomly,
    /// sending `world.input` at --input-hz. Reports zone tick lateness (the server's
    /// `asobi_zone_tick_lateness_seconds`), `world.tick` bytes per player per second, input →
    /// `world.ack` latency and CPU; `--ramp` finds the highest CCU with lateness p99 within
    /// --lateness-bound-ms.
    World {
        #[command(flatten)]
        target: TargetArgs,
        /// World mode to create.
        #[arg(long, default_value = "walk")]
        mode: String,
        /// Players (one socket and one account each).
        #[arg(long, default_value_t = 1000)]
        players: usize,
        /// `world.input` per second per player.
        #[arg(long, default_value_t = 10.0)]
        input_hz: f64,
        /// Measured seconds once everyone is in the world.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Seconds allowed for everyone to be in the world.
        #[arg(long, default_value_t = 120.0)]
        join_timeout: f64,
        /// Increase CCU in steps until zone tick lateness p99 exceeds --lateness-bound-ms.
        #[arg(long)]
        ramp: bool,
        /// Ramp: first step's CCU.
        #[arg(long, default_value_t = 500)]
        ramp_start: usize,
        /// Ramp: CCU added per step.
        #[arg(long, default_value_t = 500)]
        ramp_step: usize,
        /// Ramp: highest CCU tried.
        #[arg(long, default_value_t = 20_000)]
        ramp_max: usize,
        /// Ramp: measured seconds per step.
        #[arg(long, default_value_t = 10.0)]
        step_secs: f64,
        /// Ramp: bound in ms on zone tick lateness p99 (use a bucket bound of the server's
        /// histogram: 1, 2.5, 5, 10, 25, ...).
        #[arg(long, default_value_t = 10.0)]
        lateness_bound_ms: f64,
    },
    /// M members join one chat channel; S of them send at R/s: deliveries/s and fan-out latency.
    Chat {
        #[command(flatten)]
        target: TargetArgs,
        /// Channel members (one socket each).
        #[arg(long, default_value_t = 10_000)]
        members: usize,
        /// Members that send.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second per sender.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Steps of messages per second per sender, comma-separated, `--duration` seconds
        /// each, in one run (instead of `--rate`): climbs to the saturation point.
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Seconds of sending (per step).
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Distinct players reused round-robin.
        #[arg(long)]
        players: Option<usize>,
        /// Connections per wave.
        #[arg(long, default_value_t = 500)]
        wave: usize,
        /// Milliseconds between waves.
        #[arg(long, default_value_t = 50)]
        wave_ms: u64,
    },
    /// Store purchases over REST from C keep-alive connections (M each), every wallet funded
    /// through the ops plane first and audited after: purchases/s, round trip, and the server's
    /// tick lateness meanwhile (run `play` against the same server to have matches ticking).
    Purchase {
        #[command(flatten)]
        target: TargetArgs,
        /// Concurrent connections (one client thread each).
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Purchases per connection.
        #[arg(long, default_value_t = 200)]
        purchases: u64,
        /// Players (wallets) the purchases are spread over.
        #[arg(long, default_value_t = 100)]
        players: usize,
        /// Send every n-th purchase twice with the same idempotency key (0 = never).
        #[arg(long, default_value_t = 50)]
        replay_every: u64,
        /// The server's ops secret (ASOBI_OPS_SECRET), used to fund the wallets.
        #[arg(long, env = "ASOBI_OPS_SECRET", hide_env_values = true)]
        ops_secret: String,
    },
    /// P players in parties of 1–4 (invite/accept over WS) queue a team mode at a fixed
    /// arrival rate: matchmaking wait p50/p99 (overall and per party size), team rating gap
    /// and match spread, and checks that no party was split and no player matched twice.
    Party {
        #[command(flatten)]
        target: TargetArgs,
        /// Players (one socket and one account each).
        #[arg(long, default_value_t = 2000)]
        players: usize,
        /// Weights of party sizes 1,2,3,4 (default: half solos, then 25/15/10 %).
        #[arg(long, value_delimiter = ',', num_args = 4, default_values_t = DEFAULT_MIX)]
        mix: Vec<u32>,
        /// Solos only (the comparison run): same players, ratings and arrival rate.
        #[arg(long, conflicts_with = "mix")]
        solos: bool,
        /// Team mode to queue (examples/arena `squad`: 4v4, skill_based, party_rating mean).
        #[arg(long, default_value = "squad")]
        mode: String,
        /// Players arriving in the queue per second.
        #[arg(long, default_value_t = 50.0)]
        arrival_rate: f64,
        /// Seed of party sizes and ratings (0x5EED, the simulated run's).
        #[arg(long, default_value_t = 0x5EED)]
        seed: u64,
        /// Mean player rating.
        #[arg(long, default_value_t = 1000.0)]
        rating_mean: f64,
        /// Standard deviation of player ratings.
        #[arg(long, default_value_t = 200.0)]
        rating_sd: f64,
        /// Seconds after the last arrival for every ticket to match or expire (asobi's
        /// max_wait is 60 s).
        #[arg(long, default_value_t = 75.0)]
        settle: f64,
        /// Connections per wave.
        #[arg(long, default_value_t = 200)]
        wave: usize,
        /// Milliseconds between waves.
        #[arg(long, default_value_t = 100)]
        wave_ms: u64,
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
        /// tungstenite read buffer in bytes. 8 KiB by default: tungstenite's own default
        /// (128 KiB) is zero-filled on every read, which makes a fresh connection fault in
        /// 128 KiB and dominates per-connection memory; a lean server would not pay that.
        #[arg(long, default_value_t = 8192)]
        read_buffer: usize,
    },
    /// Regenerate bench-results/README.md (and every plot) from the JSON results.
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
    /// tungstenite read buffer (bytes) of the spawned baseline (default: the baseline's
    /// 8 KiB; 131072 reproduces tungstenite's default).
    #[arg(long)]
    baseline_read_buffer: Option<usize>,
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
    /// Measure each server this many times, alternating baseline and target, and report
    /// medians (damps background noise on a shared machine).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Results directory (default <repo>/bench-results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Do not write result files.
    #[arg(long)]
    no_write: bool,
    /// No per-second progress lines.
    #[arg(long)]
    quiet: bool,
    /// Wire encoding: asobi's JSON text frames, `asobi.fb.1` FlatBuffers, or JSON with
    /// asobi's binary `world.tick` (`binary`: session.connect asks for `"wire": "binary"`).
    #[arg(long, value_enum, default_value = "json")]
    wire: Wire,
    /// Transport: WebSocket, or QUIC (ALPN asobi/1, one stream; a spawned server gets
    /// ASOBI_DEV_CERT=true and ASOBI_QUIC_PORT=--quic-port).
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    /// Measure asobi-rs over ws+json, ws+fb, quic+json and quic+fb (same server) and report
    /// msgs/s and bytes per message of each, with fb÷JSON and QUIC÷WS ratios.
    #[arg(long, conflicts_with_all = ["baseline", "compare"])]
    compare_wires: bool,
    /// UDP port of the server's QUIC listener.
    #[arg(long, default_value_t = 18443)]
    quic_port: u16,
    /// PEM certificate to trust for QUIC (default: the dev certificate in --data-dir).
    #[arg(long)]
    quic_ca: Option<PathBuf>,
}

impl TargetArgs {
    fn into_target(self) -> Target {
        Target {
            url: self.url,
            spawn_server: self.spawn_server,
            game_dir: self.game_dir,
            data_dir: self.data_dir,
            server_env: self.server_env,
            server_port: self.server_port,
            server_cores: self.server_cores,
            server_pid: self.server_pid,
            baseline: self.baseline,
            compare: self.compare,
            baseline_port: self.baseline_port,
            baseline_read_buffer: self.baseline_read_buffer,
            no_auth: self.no_auth,
            players_file: self.players_file,
            register_concurrency: self.register_concurrency,
            client_cores: self.client_cores,
            source_ips: self.source_ips,
            nice: self.nice,
            wait_idle: self.wait_idle,
            idle_below: self.idle_below,
            connect_timeout: self.connect_timeout,
            repeat: self.repeat.max(1),
            out_dir: self.out_dir,
            no_write: self.no_write,
            quiet: self.quiet,
            wire: self.wire,
            transport: self.transport,
            compare_wires: self.compare_wires,
            quic_port: self.quic_port,
            quic_ca: self.quic_ca,
        }
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s}"))
}

/// Accounts a scenario needs when authenticating with real players.
fn accounts(s: &Scenario, players: Option<usize>) -> usize {
    match s {
        Scenario::Blast(p) => players.unwrap_or(p.connections).min(p.connections),
        Scenario::Idle(p) => players.unwrap_or(p.connections).min(p.connections),
        // A ramp registers more players as it climbs (it usually stops well short of max).
        Scenario::Play(p) => p.ramp.as_ref().map_or(p.players, |r| r.start),
        Scenario::Reload(p) => p.players,
        Scenario::Chat(p) => players.unwrap_or(p.members).min(p.members),
        Scenario::Purchase(p) => p.connections,
        Scenario::Party(p) => p.players,
        Scenario::World(p) => p.ramp.as_ref().map_or(p.players, |r| r.start),
    }
    .max(1)
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::BaselineServer {
            port,
            bind,
            cores,
            read_buffer,
        } => baseline::run(&bind, port, &cores, Some(read_buffer)),
        Cmd::FakeGameServer {
            port,
            game_dir,
            tick_ms,
        } => fakegame::run(port, &game_dir, tick_ms),
        Cmd::Report { dir } => {
            let dir = dir.unwrap_or_else(default_out_dir);
            report::replot(&dir)?;
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
                rpc_method: None,
                submits_per_call: None,
            });
            let accounts = accounts(&s, players);
            orchestrate(&target.into_target(), s, accounts)
        }
        Cmd::Rpc {
            target,
            method,
            connections,
            messages,
            wave,
            wave_ms,
            idle_timeout,
            players,
        } => {
            let s = Scenario::Blast(BlastParams {
                connections,
                messages,
                wave,
                wave_ms,
                rate: None,
                duration_s: 0.0,
                idle_timeout_s: idle_timeout,
                rpc_method: Some(method),
                submits_per_call: None,
            });
            let accounts = accounts(&s, players);
            orchestrate(&target.into_target(), s, accounts)
        }
        Cmd::Leaderboard {
            target,
            connections,
            messages,
            idle_timeout,
            players,
        } => {
            let s = Scenario::Blast(BlastParams {
                connections,
                messages,
                wave: connections.max(1),
                wave_ms: 100,
                rate: None,
                duration_s: 0.0,
                idle_timeout_s: idle_timeout,
                rpc_method: Some(LEADERBOARD_METHOD.into()),
                submits_per_call: Some(LEADERBOARD_BATCH),
            });
            let accounts = accounts(&s, players);
            orchestrate(&target.into_target(), s, accounts)
        }
        Cmd::Chat {
            target,
            members,
            senders,
            rate,
            rates,
            duration,
            players,
            wave,
            wave_ms,
        } => {
            let s = Scenario::Chat(ChatParams {
                members,
                senders: senders.min(members),
                rates: if rates.is_empty() { vec![rate] } else { rates },
                duration_s: duration,
                wave,
                wave_ms,
            });
            let accounts = accounts(&s, players);
            orchestrate(&target.into_target(), s, accounts)
        }
        Cmd::Purchase {
            target,
            connections,
            purchases,
            players,
            replay_every,
            ops_secret,
        } => {
            let s = Scenario::Purchase(PurchaseParams {
                connections,
                purchases,
                replay_every,
                ops_secret,
            });
            orchestrate(&target.into_target(), s, players.max(1))
        }
        Cmd::Party {
            target,
            players,
            mix,
            solos,
            mode,
            arrival_rate,
            seed,
            rating_mean,
            rating_sd,
            settle,
            wave,
            wave_ms,
        } => {
            let mut weights = DEFAULT_MIX;
            if solos {
                weights = [1, 0, 0, 0];
            } else {
                for (w, m) in weights.iter_mut().zip(&mix) {
                    *w = *m;
                }
            }
            if weights.iter().all(|w| *w == 0) {
                anyhow::bail!("--mix needs at least one non-zero weight");
            }
            let s = Scenario::Party(PartyParams {
                players,
                mix: weights,
                mode,
                arrival_rate,
                seed,
                rating_mean,
                rating_sd,
                wave,
                wave_ms,
                settle_s: settle,
            });
            let accounts = accounts(&s, None);
            orchestrate(&target.into_target(), s, accounts)
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
            let accounts = accounts(&s, players);
            orchestrate(&target.into_target(), s, accounts)
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
            let accounts = accounts(&s, None);
            orchestrate(&target.into_target(), s, accounts)
        }
        Cmd::World {
            target,
            mode,
            players,
            input_hz,
            duration,
            join_timeout,
            ramp,
            ramp_start,
            ramp_step,
            ramp_max,
            step_secs,
            lateness_bound_ms,
        } => {
            let s = Scenario::World(WorldParams {
                mode,
                players,
                input_hz,
                duration_s: duration,
                wave: 200,
                wave_ms: 100,
                join_timeout_s: join_timeout,
                ramp: ramp.then_some(WorldRamp {
                    start: ramp_start,
                    step: ramp_step,
                    max: ramp_max,
                    step_s: step_secs,
                    lateness_p99_bound_ms: lateness_bound_ms,
                }),
            });
            let accounts = accounts(&s, None);
            orchestrate(&target.into_target(), s, accounts)
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
            let accounts = accounts(&s, None);
            orchestrate(&target.into_target(), s, accounts)
        }
    }
}
