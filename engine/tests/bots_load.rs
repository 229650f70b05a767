//! Bots at load: many matches full of bots on one shard, each bot thinking at 10 Hz through a
//! small bot script. Asserts every bot keeps its 10 Hz pace and prints what it cost: the
//! server's CPU, and from it bots per core at 10 Hz. `ASOBI_BENCH_BOTS` sets the number of bots
//! (default 128); the benchmark in `bench-results/` ran this file in release with more.

mod common;

use std::time::{Duration, Instant};

use common::{Opts, Server, Ws};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const PER_MATCH: usize = 64;

const SWARM: &str = r#"
match_size = 1
max_players = 65
quick_play = true
state_strategy = "shared"
bots = { script = "bots/small.lua" }
function init(config) return { n = 0, players = {} } end
function join(p, state) state.players[p] = { x = 0, y = 0, hp = 1 } return state end
function leave(p, state) state.players[p] = nil return state end
function handle_input(p, input, state)
  if input.fill then
    for i = 1, input.fill do game.bots.add("b" .. i) end
  else
    state.n = state.n + 1
    local me = state.players[p]
    if me and input.dx then me.x = me.x + input.dx end
  end
  return state
end
function tick(state) return state end
function get_state(state) return { n = state.n } end
"#;

/// A small bot: steps towards the first other player it finds.
const SMALL: &str = r#"
function think(bot_id, state)
  return { dx = (state.n or 0) % 3 - 1 }
end
"#;

/// The shard threads' scheduler accounting (`/proc/<pid>/task/<tid>/schedstat`): nanoseconds
/// on a CPU and nanoseconds runnable but waiting for one, summed over shards. A shard is
/// pinned to its core, so on a shared machine other processes on that core take its time;
/// the second number says how much, which the CPU figure alone cannot tell apart from idling.
fn shard_sched(pid: u32) -> (u64, u64) {
    let mut on_cpu = 0;
    let mut waited = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("asobi-shard") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        let f: Vec<u64> = stat
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 2 {
            on_cpu += f[0];
            waited += f[1];
        }
    }
    (on_cpu, waited)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The match's input count now: everything already buffered is skipped, then the next state.
fn latest_n(ws: &mut Ws) -> (u64, Instant) {
    while ws.recv(Duration::from_millis(1)).is_some() {}
    let v = ws.expect("match.state", WAIT, |_| true);
    (v["payload"]["n"].as_u64().unwrap(), Instant::now())
}

#[test]
fn bots_keep_a_10_hz_think_pace_under_load() {
    let bots: usize = std::env::var("ASOBI_BENCH_BOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(game.path().join("bots")).unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { swarm = \"swarm.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("swarm.lua"), SWARM).unwrap();
    std::fs::write(game.path().join("bots/small.lua"), SMALL).unwrap();
    let s = Server::start(
        data.path(),
        game.path(),
        &Opts {
            shards: Some(1),
            ..Opts::default()
        },
    );
    let mut humans = Vec::new();
    let mut left = bots;
    while left > 0 {
        let k = left.min(PER_MATCH);
        let p = s.register("swarm");
        let (mut ws, _) = s.ws();
        ws.connect(&p.access);
        ws.send(json!({"type": "match.find_or_create", "cid": "j", "payload": {"mode": "swarm"}}));
        ws.expect("match.joined", WAIT, |_| true);
        ws.send(json!({"type": "match.input", "payload": {"fill": k}}));
        // Seated and thinking before the next match opens.
        ws.expect("match.state", WAIT, |v| {
            v["payload"]["n"].as_u64().unwrap_or(0) >= k as u64
        });
        humans.push(ws);
        left -= k;
        // Keep reading the earlier matches' state, or the server closes them as slow consumers.
        for h in humans.iter_mut() {
            while h.recv(Duration::from_millis(1)).is_some() {}
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let window = Duration::from_secs(5);
    let first: Vec<(u64, Instant)> = humans.iter_mut().map(latest_n).collect();
    let (c0, t0, q0) = (cpu_ticks(s.pid()), Instant::now(), shard_sched(s.pid()));
    std::thread::sleep(window);
    let (c1, t1, q1) = (cpu_ticks(s.pid()), Instant::now(), shard_sched(s.pid()));
    let second: Vec<(u64, Instant)> = humans.iter_mut().map(latest_n).collect();
    let secs = (t1 - t0).as_secs_f64();
    // Each match's own rate over its own sampling times, per bot.
    let mut turns_per_sec = 0.0;
    for ((n0, a), (n1, b)) in first.iter().zip(&second) {
        turns_per_sec += (n1 - n0) as f64 / (*b - *a).as_secs_f64();
    }
    let hz = turns_per_sec / bots as f64;
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cores = (c1 - c0) as f64 / ticks_per_sec / secs;
    let per_core = bots as f64 * (hz / 10.0) / cores.max(1e-9);
    // Server CPU per bot turn (think + the input's handle_input + the bot's share of state).
    let us_per_turn = cores * 1e6 / (bots as f64 * hz);
    // The shard's share of the window on a CPU, and waiting for one (runnable, not running).
    let shard_busy = (q1.0 - q0.0) as f64 / 1e9 / secs;
    let shard_starved = (q1.1 - q0.1) as f64 / 1e9 / secs;
    println!(
        "{}",
        json!({"bots": bots, "matches": humans.len(), "think_hz_per_bot": hz,
               "server_cores": cores, "bots_per_core_at_10hz": per_core,
               "server_cpu_us_per_bot_turn": us_per_turn, "server_rss_mib": s.rss_kib() / 1024,
               "shard_on_cpu": shard_busy, "shard_waiting_for_cpu": shard_starved,
               "release": !cfg!(debug_assertions)})
    );
    assert!(hz >= 8.0, "bots fell behind their 10 Hz pace: {hz:.2} Hz");
}
