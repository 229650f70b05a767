//! Running a scenario end to end: which servers it measures and in which order (the baseline,
//! then the target, alternating when repeated so slow drifts in background load hit both
//! alike), authentication, priorities and cores, and assembling and writing the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{Map, Value};

use crate::auth::{default_cache_path, Accounts};
use crate::conn::{QuicPlan, Transport, Wire};
use crate::result::{self, ResultFile, Run, ServerInfo, SCHEMA};
use crate::runner::{AuthMode, PlayerSet};
use crate::scenario::blast::BlastParams;
use crate::scenario::chat::ChatParams;
use crate::scenario::idle::IdleParams;
use crate::scenario::party::PartyParams;
use crate::scenario::play::PlayParams;
use crate::scenario::purchase::PurchaseParams;
use crate::scenario::reload::ReloadParams;
use crate::scenario::world::WorldParams;
use crate::scenario::{self, RunSpec};
use crate::{report, server, sys, ws};

/// Where and how to run: the options every scenario shares (see `cli::TargetArgs` for the
/// meaning of each field).
#[derive(Debug, Clone)]
pub struct Target {
    /// WebSocket URL of an already running server.
    pub url: String,
    /// asobi binary to spawn.
    pub spawn_server: Option<PathBuf>,
    /// Game directory for a spawned server and for reload.
    pub game_dir: PathBuf,
    /// ASOBI_DATA_DIR for a spawned server.
    pub data_dir: Option<PathBuf>,
    /// Extra environment for a spawned server.
    pub server_env: Vec<(String, String)>,
    /// Port of a spawned asobi.
    pub server_port: u16,
    /// Cores for spawned servers.
    pub server_cores: Vec<usize>,
    /// Pid of an external server.
    pub server_pid: Option<u32>,
    /// Baseline only.
    pub baseline: bool,
    /// Baseline, then target.
    pub compare: bool,
    /// Port of the spawned baseline.
    pub baseline_port: u16,
    /// tungstenite read buffer of the spawned baseline (its default when `None`).
    pub baseline_read_buffer: Option<usize>,
    /// Skip REST and session.connect.
    pub no_auth: bool,
    /// Player cache file.
    pub players_file: Option<PathBuf>,
    /// Registrations in flight.
    pub register_concurrency: usize,
    /// Client worker cores.
    pub client_cores: Vec<usize>,
    /// Loopback source addresses.
    pub source_ips: usize,
    /// Nice value for client and spawned servers (0 = unchanged).
    pub nice: i32,
    /// Max seconds to wait for a quiet machine before each run.
    pub wait_idle: f64,
    /// Background cores considered quiet.
    pub idle_below: f64,
    /// Seconds to open one connection.
    pub connect_timeout: f64,
    /// Measure each server this many times, alternating.
    pub repeat: usize,
    /// Results directory.
    pub out_dir: Option<PathBuf>,
    /// Do not write results.
    pub no_write: bool,
    /// No progress lines.
    pub quiet: bool,
    /// Wire encoding of the target's connections.
    pub wire: Wire,
    /// Transport of the target's connections.
    pub transport: Transport,
    /// Run the target over ws+json, ws+fb, quic+json and quic+fb against the same server.
    pub compare_wires: bool,
    /// UDP port of the server's QUIC listener (set for a spawned server).
    pub quic_port: u16,
    /// Certificate to trust for QUIC (default `<data dir>/dev-cert.pem`).
    pub quic_ca: Option<PathBuf>,
}

/// The four wire × transport combinations `--compare-wires` measures, WS+JSON first.
const WIRE_COMBOS: [(Transport, Wire); 4] = [
    (Transport::Ws, Wire::Json),
    (Transport::Ws, Wire::Fb),
    (Transport::Quic, Wire::Json),
    (Transport::Quic, Wire::Fb),
];

/// A scenario with its parameters.
pub enum Scenario {
    /// `blast` (burst or paced).
    Blast(BlastParams),
    /// `idle`.
    Idle(IdleParams),
    /// `play` (fixed or ramp).
    Play(PlayParams),
    /// `reload`.
    Reload(ReloadParams),
    /// `chat`.
    Chat(ChatParams),
    /// `purchase`.
    Purchase(PurchaseParams),
    /// `party`.
    Party(PartyParams),
    /// `world` (fixed or ramp).
    World(WorldParams),
}

impl Scenario {
    /// Result name (file prefix and README row): paced blasts carry their rate and play its
    /// mode, so runs at different settings keep separate rows.
    pub fn name(&self) -> String {
        match self {
            Scenario::Blast(p) if p.submits_per_call.is_some() => "leaderboard".into(),
            Scenario::Blast(p) => match (&p.rpc_method, p.rate) {
                (Some(m), _) => format!(
                    "rpc-{}",
                    m.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                ),
                (None, Some(r)) => format!("blast-rate-{r}"),
                (None, None) => "blast".into(),
            },
            Scenario::Idle(_) => "idle".into(),
            Scenario::Play(p) if p.ramp.is_some() => format!("play-ramp-{}", p.mode),
            Scenario::Play(p) => format!("play-{}", p.mode),
            Scenario::Reload(_) => "reload".into(),
            Scenario::Chat(_) => "chat".into(),
            Scenario::Purchase(_) => "purchase".into(),
            Scenario::Party(p) if p.solos_only() => "party-solos".into(),
            Scenario::Party(p) if p.mix == scenario::party::DEFAULT_MIX => "party".into(),
            Scenario::Party(p) => {
                format!("party-{}", scenario::party::mix_label(p).replace('/', "-"))
            }
            Scenario::World(p) if p.ramp.is_some() => format!("world-ramp-{}", p.mode),
            Scenario::World(p) => format!("world-{}", p.mode),
        }
    }

    fn params(&self) -> Value {
        match self {
            Scenario::Blast(p) => serde_json::to_value(p),
            Scenario::Idle(p) => serde_json::to_value(p),
            Scenario::Play(p) => serde_json::to_value(p),
            Scenario::Reload(p) => serde_json::to_value(p),
            Scenario::Chat(p) => serde_json::to_value(p),
            Scenario::Purchase(p) => serde_json::to_value(p),
            Scenario::Party(p) => serde_json::to_value(p),
            Scenario::World(p) => serde_json::to_value(p),
        }
        .unwrap_or(Value::Null)
    }

    /// The figure that picks the representative run among repeats.
    fn key_figure(&self) -> &'static str {
        match self {
            Scenario::Blast(p) if p.rate.is_some() => "rtt_p99_ms",
            Scenario::Blast(_) => "steady_throughput_msg_s",
            Scenario::Idle(_) => "server_mem_per_conn_bytes",
            Scenario::Play(p) if p.ramp.is_some() => "max_ccu_within_bound",
            Scenario::Play(_) => "input_to_state_p99_ms",
            Scenario::Reload(_) => "reload_p99_ms",
            Scenario::Chat(_) => "deliveries_per_s",
            Scenario::Purchase(_) => "purchases_per_s",
            Scenario::Party(_) => "wait_p99_ms",
            Scenario::World(p) if p.ramp.is_some() => "max_ccu_within_bound",
            Scenario::World(_) => "world_tick_bytes_per_player_s",
        }
    }

    async fn run(&self, spec: &RunSpec) -> anyhow::Result<Run> {
        match self {
            Scenario::Blast(p) => scenario::blast::run(spec, p).await,
            Scenario::Idle(p) => scenario::idle::run(spec, p).await,
            Scenario::Play(p) => scenario::play::run(spec, p).await,
            Scenario::Reload(p) => scenario::reload::run(spec, p).await,
            Scenario::Chat(p) => scenario::chat::run(spec, p).await,
            Scenario::Purchase(p) => scenario::purchase::run(spec, p).await,
            Scenario::Party(p) => scenario::party::run(spec, p).await,
            Scenario::World(p) => scenario::world::run(spec, p).await,
        }
    }
}

/// Default results directory: `<repo>/bench-results`.
pub fn default_out_dir() -> PathBuf {
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
fn client_cores(t: &Target) -> Vec<Option<usize>> {
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

/// Environment for a spawned asobi: rate limits off (the scenarios measure capacity, not
/// the limiter), QUIC on (dev certificate) when a run uses it, then `--server-env` overrides.
fn server_env(t: &Target) -> Vec<(String, String)> {
    // Every simulated player comes from 127.0.0.1, so asobi's per-IP REST limits are lifted too
    // (a limit of 0 disables a group).
    let rest_limits = "register=0/1000,auth=0/1000,erase=0/1000,iap=0/1000,api=0/1000,join=0/1000,guest_global=0/1000";
    let mut env: Vec<(String, String)> = [
        ("ASOBI_WS_MSG_RATE", "0"),
        ("ASOBI_WS_CONNECT_RATE", "0"),
        ("ASOBI_RATE_LIMITS", rest_limits),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if uses_quic(t) {
        env.push(("ASOBI_DEV_CERT".into(), "true".into()));
        env.push(("ASOBI_QUIC_PORT".into(), t.quic_port.to_string()));
    }
    for (k, v) in &t.server_env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

fn uses_quic(t: &Target) -> bool {
    t.compare_wires || t.transport == Transport::Quic
}

/// Waits (bounded by `wait_idle`) until the machine's busy CPU, measured over 2 s, is below
/// `idle_below` cores; returns the last measurement.
fn wait_for_quiet(t: &Target) -> Option<f64> {
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

/// The scenario's inputs that must differ per server (reload edits a private game copy).
struct Prepared {
    _game_copy: Option<TempDir>,
    game_dir: PathBuf,
}

/// The result's name: the scenario's, plus the wire and transport when they are not the
/// default WS+JSON, so those runs keep rows of their own beside the baseline comparisons.
fn result_name(t: &Target, s: &Scenario) -> String {
    if t.compare_wires {
        format!("{}-wires", s.name())
    } else if t.wire != Wire::Json || t.transport != Transport::Ws {
        format!("{}-{}-{}", s.name(), t.transport.name(), t.wire.name())
    } else {
        s.name()
    }
}

/// Runs `s` as `t` describes and writes the result.
pub fn orchestrate(t: &Target, mut s: Scenario, accounts: usize) -> anyhow::Result<()> {
    let nofile = sys::raise_nofile();
    sys::raise_memlock();
    let name = result_name(t, &s);
    // Before any thread starts, so every worker inherits it.
    let nice = (t.nice != 0).then_some(t.nice);
    if let Some(n) = nice {
        if let Err(e) = sys::set_nice(n) {
            eprintln!("warning: cannot set nice {n}: {e}; measuring at normal priority");
        }
    }
    eprintln!("{name}: fd limit {nofile}, nice {}", t.nice);
    if t.compare_wires && (t.baseline || t.compare) {
        bail!("--compare-wires compares asobi-rs with itself; drop --baseline/--compare");
    }
    let rpc = matches!(&s, Scenario::Blast(p) if p.rpc_method.is_some());
    let needs_asobi = matches!(
        s,
        Scenario::Play(_)
            | Scenario::Reload(_)
            | Scenario::Chat(_)
            | Scenario::Purchase(_)
            | Scenario::Party(_)
            | Scenario::World(_)
    );
    if (t.baseline || t.compare) && (rpc || needs_asobi) {
        bail!("{name} needs game logic; the baseline only answers heartbeats (drop --baseline/--compare)");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cores = client_cores(t);
    let spec = |role: &str,
                url: String,
                server: ServerInfo,
                auth: AuthMode,
                label: &str,
                wire: Wire,
                quic: Option<QuicPlan>| RunSpec {
        role: role.to_string(),
        url,
        server,
        auth,
        client_cores: cores.clone(),
        source_ips: t.source_ips,
        connect_timeout: Duration::from_secs_f64(t.connect_timeout),
        label: label.to_string(),
        quiet: t.quiet,
        wire,
        quic,
    };

    // Reload edits the game: a spawned server gets a private copy, never the checked-in one.
    let prepared = match (&mut s, &t.spawn_server) {
        (Scenario::Reload(p), Some(_)) if !t.baseline => {
            let tmp = TempDir::new("reload")?;
            copy_dir(&t.game_dir, &tmp.0)?;
            p.rules_file = tmp.0.join(&p.rules_file);
            Prepared {
                game_dir: tmp.0.clone(),
                _game_copy: Some(tmp),
            }
        }
        (Scenario::Reload(p), None) => {
            p.rules_file = t.game_dir.join(&p.rules_file);
            Prepared {
                game_dir: t.game_dir.clone(),
                _game_copy: None,
            }
        }
        _ => Prepared {
            game_dir: t.game_dir.clone(),
            _game_copy: None,
        },
    };

    let target_url = if t.spawn_server.is_some() {
        format!("ws://127.0.0.1:{}/ws", t.server_port)
    } else {
        t.url.clone()
    };
    let data_dir = t.data_dir.clone().unwrap_or_else(default_data_dir);
    let quic_plan = || -> anyhow::Result<QuicPlan> {
        let ip = ws::Endpoint::parse(&target_url)?.addr.ip();
        let ca = t
            .quic_ca
            .clone()
            .unwrap_or_else(|| data_dir.join("dev-cert.pem"));
        QuicPlan::new(std::net::SocketAddr::new(ip, t.quic_port), "localhost", &ca)
    };
    let combos: Vec<(Transport, Wire)> = if t.compare_wires {
        WIRE_COMBOS.to_vec()
    } else {
        vec![(t.transport, t.wire)]
    };
    let mut players: Option<Arc<PlayerSet>> = None;
    let mut runs: Vec<Run> = Vec::new();
    for rep in 0..t.repeat.max(1) {
        if t.repeat > 1 {
            eprintln!("--- repeat {}/{}", rep + 1, t.repeat);
        }
        if t.baseline || t.compare {
            let mut srv = server::spawn_baseline(
                t.baseline_port,
                &t.server_cores,
                nice,
                t.baseline_read_buffer,
            )?;
            srv.wait_ready(Duration::from_secs(10))?;
            let info = ServerInfo {
                kind: "baseline".into(),
                pid: Some(srv.pid),
                command: Some(srv.command.clone()),
                cores: srv.cores.clone(),
                binary: std::env::current_exe()
                    .ok()
                    .and_then(|p| sys::describe_file(&p)),
            };
            let auth = if t.no_auth {
                AuthMode::None
            } else {
                AuthMode::Placeholder
            };
            let role = if t.compare { "baseline" } else { "target" };
            let background = wait_for_quiet(t);
            let mut run = rt.block_on(s.run(&spec(
                role,
                srv.url.clone(),
                info,
                auth,
                "baseline",
                Wire::Json,
                None,
            )))?;
            note_background(&mut run, background);
            runs.push(run);
            drop(srv);
            if t.compare {
                // Let the kernel retire the baseline's sockets before the next run opens as many.
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        if t.baseline {
            continue;
        }
        // A fresh server per combination: a play run leaves matches (and players in them)
        // behind that would receive state alongside the next run's.
        for (i, &(transport, wire)) in combos.iter().enumerate() {
            let mut srv = match &t.spawn_server {
                Some(bin) => {
                    let mut srv = server::spawn_asobi(
                        bin,
                        t.server_port,
                        &prepared.game_dir,
                        &data_dir,
                        &t.server_cores,
                        &server_env(t),
                        nice,
                    )?;
                    eprintln!("asobi pid {} log {}", srv.pid, srv.log.display());
                    srv.wait_ready(Duration::from_secs(60))?;
                    Some(srv)
                }
                None => None,
            };
            let info = match &srv {
                Some(srv) => ServerInfo {
                    kind: "asobi".into(),
                    pid: Some(srv.pid),
                    command: Some(srv.command.clone()),
                    cores: srv.cores.clone(),
                    binary: t.spawn_server.as_deref().and_then(sys::describe_file),
                },
                None => ServerInfo {
                    kind: "external".into(),
                    pid: t.server_pid,
                    command: None,
                    cores: vec![],
                    binary: t
                        .server_pid
                        .and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
                        .and_then(|p| sys::describe_file(&p)),
                },
            };
            let auth = if t.no_auth {
                AuthMode::None
            } else {
                if players.is_none() {
                    let base = ws::Endpoint::parse(&target_url)?.http_base();
                    let cache = t
                        .players_file
                        .clone()
                        .unwrap_or_else(|| default_cache_path(&base));
                    let acc = Arc::new(Accounts::open(&base, &cache));
                    let list = acc
                        .ensure(accounts, t.register_concurrency)
                        .context("preparing players")?;
                    players = Some(Arc::new(PlayerSet {
                        players: Mutex::new(list),
                        accounts: acc,
                        concurrency: t.register_concurrency,
                    }));
                }
                AuthMode::Players(players.clone().expect("set above"))
            };
            let (role, label) = if t.compare_wires {
                let r = format!("{}+{}", transport.name(), wire.name());
                (r.clone(), r)
            } else {
                ("target".to_string(), info.kind.clone())
            };
            let quic = match transport {
                Transport::Quic => Some(quic_plan()?),
                Transport::Ws => None,
            };
            if i > 0 {
                // Let the kernel retire the previous run's sockets first.
                std::thread::sleep(Duration::from_secs(2));
            }
            let background = wait_for_quiet(t);
            let run = rt.block_on(s.run(&spec(
                &role,
                target_url.clone(),
                info.clone(),
                auth.clone(),
                &label,
                wire,
                quic,
            )));
            if let Some(set) = &players {
                let _ = set.accounts.save();
            }
            if let Some(srv) = &mut srv {
                if !srv.alive() {
                    eprintln!(
                        "warning: the asobi server exited during the run (log {})",
                        srv.log.display()
                    );
                }
            }
            let mut run = run?;
            note_background(&mut run, background);
            runs.push(run);
            drop(srv);
        }
    }
    finish(t, &s, runs)
}

fn note_background(run: &mut Run, background: Option<f64>) {
    if let Some(b) = background {
        run.figures
            .insert("background_cores_before".into(), result::round3(b).into());
    }
}

/// Median of every numeric figure over `runs`.
pub fn medians(runs: &[&Run]) -> Map<String, Value> {
    let mut by_key: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.figures {
            if let Some(x) = v.as_f64() {
                by_key.entry(k.as_str()).or_default().push(x);
            }
        }
    }
    by_key
        .into_iter()
        .map(|(k, mut xs)| {
            xs.sort_by(f64::total_cmp);
            let n = xs.len();
            let m = if n % 2 == 1 {
                xs[n / 2]
            } else {
                (xs[n / 2 - 1] + xs[n / 2]) / 2.0
            };
            (k.to_string(), Value::from(result::round3(m)))
        })
        .collect()
}

/// The run whose `key` figure is the median among `runs` (lower median for an even count).
fn representative<'a>(runs: &[&'a Run], key: &str) -> Option<&'a Run> {
    let mut v: Vec<&Run> = runs.to_vec();
    v.sort_by(|a, b| {
        let f = |r: &Run| {
            r.figures
                .get(key)
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        f(a).total_cmp(&f(b))
    });
    v.get(v.len().saturating_sub(1) / 2).copied()
}

fn finish(t: &Target, s: &Scenario, runs: Vec<Run>) -> anyhow::Result<()> {
    let by_role = |role: &str| runs.iter().filter(|r| r.role == role).collect::<Vec<_>>();
    let (base_runs, target_runs) = (by_role("baseline"), by_role("target"));
    let repeated = t.repeat > 1;
    let mut summary = Map::new();
    if repeated {
        for (role, rs) in [("baseline", &base_runs), ("target", &target_runs)] {
            if !rs.is_empty() {
                summary.insert(role.into(), Value::Object(medians(rs)));
            }
        }
    }
    let ratio = if base_runs.is_empty() || target_runs.is_empty() {
        None
    } else if repeated {
        let as_run = |m: &Value, like: &Run| Run {
            figures: m.as_object().cloned().unwrap_or_default(),
            ..like.clone()
        };
        Some(result::ratios(
            &as_run(&summary["baseline"], base_runs[0]),
            &as_run(&summary["target"], target_runs[0]),
        ))
    } else {
        Some(result::ratios(base_runs[0], target_runs[0]))
    };
    let mut headlines = BTreeMap::new();
    for (role, rs) in [("baseline", &base_runs), ("target", &target_runs)] {
        if let Some(r) = representative(rs, s.key_figure()) {
            headlines.insert(role.to_string(), r.headline.clone());
        }
    }
    let wire_ratios = t.compare_wires.then(|| wire_comparison(&runs));
    let mut headline = headlines
        .get("target")
        .or(headlines.get("baseline"))
        .cloned()
        .unwrap_or_default();
    if let Some((_, text)) = &wire_ratios {
        for r in &runs {
            headlines.insert(r.role.clone(), r.headline.clone());
        }
        headline = text.clone();
    }
    let wire_ratios = wire_ratios.map(|(w, _)| w);
    if repeated {
        headline = format!("{headline} (median run of {})", t.repeat);
    }
    if let Some((k, v)) = ratio.as_ref().and_then(|m| {
        [
            "steady_throughput_msg_s",
            "achieved_msg_s",
            "server_mem_per_conn_bytes",
        ]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_f64).map(|v| (*k, v)))
    }) {
        headline = format!("{headline}; {k} = {v:.2}× baseline");
    }
    let (ts, stamp) = sys::utc_now();
    let mut params = s.params();
    if let Value::Object(m) = &mut params {
        m.insert("nice".into(), t.nice.into());
        m.insert("source_ips".into(), t.source_ips.into());
        m.insert("repeat".into(), t.repeat.into());
    }
    let file = ResultFile {
        schema: SCHEMA.into(),
        scenario: result_name(t, s),
        timestamp: ts,
        command: sys::command_line(),
        git_commit: sys::git_commit(),
        machine: sys::machine(),
        params,
        runs,
        medians: repeated.then_some(summary),
        ratio,
        wire_ratios,
        headlines,
        headline,
    };
    for r in &file.runs {
        println!("{} [{}]: {}", file.scenario, r.role, r.headline);
    }
    println!("{}: {}", file.scenario, file.headline);
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

/// The throughput figure a scenario is judged by across wires.
const RATE_FIGURES: [&str; 3] = ["steady_throughput_msg_s", "achieved_msg_s", "msgs_in_per_s"];

/// `--compare-wires`: ratios between the four runs (fb ÷ JSON on each transport, QUIC ÷ WS
/// for each wire) and a headline with msgs/s and bytes per message of each.
fn wire_comparison(runs: &[Run]) -> (Map<String, Value>, String) {
    let find = |role: &str| runs.iter().find(|r| r.role == role);
    let mut out = Map::new();
    for (name, base, other) in [
        ("fb_vs_json_ws", "ws+json", "ws+fb"),
        ("fb_vs_json_quic", "quic+json", "quic+fb"),
        ("quic_vs_ws_json", "ws+json", "quic+json"),
        ("quic_vs_ws_fb", "ws+fb", "quic+fb"),
    ] {
        if let (Some(b), Some(o)) = (find(base), find(other)) {
            out.insert(name.into(), Value::Object(result::ratios(b, o)));
        }
    }
    let fig = |r: &Run, k: &str| r.figures.get(k).and_then(Value::as_f64);
    let rate_key = runs
        .first()
        .and_then(|r| RATE_FIGURES.iter().find(|k| fig(r, k).is_some()))
        .copied()
        .unwrap_or("steady_throughput_msg_s");
    let mut parts = Vec::new();
    for r in runs {
        let rate = fig(r, rate_key).map_or("n/a".into(), scenario::thousands);
        let bo = fig(r, "bytes_per_msg_out").map_or("n/a".into(), |v| format!("{v:.1}"));
        let bi = fig(r, "bytes_per_msg_in").map_or("n/a".into(), |v| format!("{v:.1}"));
        let lost = fig(r, "lost").map_or(String::new(), |v| format!(", lost {v}"));
        parts.push(format!(
            "{}: {rate} msg/s, {bo}/{bi} B/msg out/in{lost}",
            r.role
        ));
    }
    let ratio = |cmp: &str, k: &str| {
        out.get(cmp)
            .and_then(|m| m.get(k))
            .and_then(Value::as_f64)
            .map_or("n/a".into(), |v| format!("{v:.2}×"))
    };
    let text = format!(
        "{} ({rate_key}); fb/json msg/s ws {} quic {}, bytes in ws {} quic {}; quic/ws msg/s json {} fb {}",
        parts.join("; "),
        ratio("fb_vs_json_ws", rate_key),
        ratio("fb_vs_json_quic", rate_key),
        ratio("fb_vs_json_ws", "bytes_per_msg_in"),
        ratio("fb_vs_json_quic", "bytes_per_msg_in"),
        ratio("quic_vs_ws_json", rate_key),
        ratio("quic_vs_ws_fb", rate_key),
    );
    (out, text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Cpu;

    fn run(role: &str, tput: f64, headline: &str) -> Run {
        Run {
            role: role.into(),
            url: String::new(),
            server: ServerInfo {
                kind: "x".into(),
                pid: None,
                command: None,
                cores: vec![],
                binary: None,
            },
            client_cores: vec![],
            auth: "none".into(),
            cpu: Cpu::default(),
            figures: serde_json::json!({"steady_throughput_msg_s": tput, "label": "s"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            latency: BTreeMap::new(),
            errors: vec![],
            timeline: vec![],
            headline: headline.into(),
        }
    }

    #[test]
    fn medians_and_representative_run() {
        let (a, b, c) = (
            run("target", 3.0, "a"),
            run("target", 1.0, "b"),
            run("target", 2.0, "c"),
        );
        let rs = [&a, &b, &c];
        assert_eq!(medians(&rs)["steady_throughput_msg_s"], 2.0);
        assert!(!medians(&rs).contains_key("label"));
        assert_eq!(
            representative(&rs, "steady_throughput_msg_s")
                .unwrap()
                .headline,
            "c"
        );
        let d = run("target", 4.0, "d");
        assert_eq!(medians(&[&a, &b, &c, &d])["steady_throughput_msg_s"], 2.5);
    }

    #[test]
    fn rate_limits_are_off_unless_overridden() {
        let mut t = Target {
            url: String::new(),
            spawn_server: None,
            game_dir: PathBuf::new(),
            data_dir: None,
            server_env: vec![("ASOBI_WS_MSG_RATE".into(), "60".into())],
            server_port: 0,
            server_cores: vec![0],
            server_pid: None,
            baseline: false,
            compare: false,
            baseline_port: 0,
            baseline_read_buffer: None,
            no_auth: false,
            players_file: None,
            register_concurrency: 1,
            client_cores: vec![],
            source_ips: 1,
            nice: 0,
            wait_idle: 0.0,
            idle_below: 0.0,
            connect_timeout: 1.0,
            repeat: 1,
            out_dir: None,
            no_write: true,
            quiet: true,
            wire: Wire::Json,
            transport: Transport::Ws,
            compare_wires: false,
            quic_port: 0,
            quic_ca: None,
        };
        let env = server_env(&t);
        assert!(env.contains(&("ASOBI_WS_MSG_RATE".into(), "60".into())));
        assert!(env.contains(&("ASOBI_WS_CONNECT_RATE".into(), "0".into())));
        assert!(env
            .iter()
            .any(|(k, v)| k == "ASOBI_RATE_LIMITS" && v.contains("register=0/")));
        assert_eq!(env.len(), 3);
        t.client_cores = vec![3];
        assert_eq!(client_cores(&t), vec![Some(3)]);
    }
}
