//! Cost of the callbacks a shard runs every tick, on the example arena game
//! (`tests/games/arena`): one `handle_input`, and one `tick` plus `get_state` for every player,
//! for a 2- and a 16-player match. Also the cost of a VM (create + load + init) and the raw
//! interpreter speed the instruction budget is sized against.
//!
//! Run: `cargo bench -p asobi-script --bench callbacks`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use asobi_script::{Budgets, Envelope, Game, Host, MatchVm, VmPool};
use bytes::Bytes;
use serde_json::json;

/// Counts bytes so encoded output is not optimised away.
#[derive(Default)]
struct Sink {
    bytes: usize,
}

impl Host for Sink {
    fn broadcast(&mut self, _: &str, payload: Bytes) {
        self.bytes += payload.len();
    }
    fn send(&mut self, _: &str, message: Bytes) {
        self.bytes += message.len();
    }
    fn set_joinable(&mut self, _: bool) {}
}

fn per_op(total: Duration, ops: u64) -> f64 {
    total.as_nanos() as f64 / ops as f64 / 1000.0
}

fn arena_match(pool: &mut VmPool, game: &Game, players: usize) -> (MatchVm, Vec<String>) {
    let mut host = Sink::default();
    let mut vm = pool
        .acquire(game.mode("default").unwrap(), "bench")
        .unwrap();
    vm.init(
        &json!({"width": 64, "height": 64, "target": 1_000_000, "time_limit": 1_000_000_000}),
        &mut host,
    )
    .unwrap()
    .done()
    .unwrap();
    let ids: Vec<String> = (0..players)
        .map(|i| format!("player-{i:02}-0190f3a2-7c4e"))
        .collect();
    for id in &ids {
        vm.join(id, Some(&json!({"name": id})), &mut host)
            .unwrap()
            .done()
            .unwrap();
    }
    (vm, ids)
}

fn bench_match(pool: &mut VmPool, game: &Game, players: usize) {
    let (mut vm, ids) = arena_match(pool, game, players);
    let mut host = Sink::default();
    let inputs = [
        json!({"action": "move", "dx": 1, "dy": 0}),
        json!({"action": "move", "dx": 0, "dy": 1}),
        json!({"action": "move", "dx": -1, "dy": -1}),
        json!({"action": "stop"}),
    ];

    // Warm up.
    for i in 0..2_000 {
        vm.handle_input(&ids[i % ids.len()], &inputs[i % inputs.len()], &mut host)
            .unwrap()
            .done()
            .unwrap();
        if i % 10 == 0 {
            vm.tick(&mut host).unwrap().done().unwrap();
        }
    }

    let n = 100_000u64;
    let started = Instant::now();
    for i in 0..n as usize {
        vm.handle_input(&ids[i % ids.len()], &inputs[i % inputs.len()], &mut host)
            .unwrap()
            .done()
            .unwrap();
    }
    let input_us = per_op(started.elapsed(), n);

    let ticks = if players > 8 { 5_000u64 } else { 20_000 };
    let mut tick_total = Duration::ZERO;
    let mut state_total = Duration::ZERO;
    let mut state_bytes = 0usize;
    for t in 0..ticks as usize {
        // Keep players moving so ticks do real work.
        vm.handle_input(&ids[t % ids.len()], &inputs[t % 3], &mut host)
            .unwrap()
            .done()
            .unwrap();
        let a = Instant::now();
        vm.tick(&mut host).unwrap().done().unwrap();
        let b = Instant::now();
        for id in &ids {
            state_bytes += black_box(vm.state_for(Some(id), &mut host).unwrap()).len();
        }
        let c = Instant::now();
        tick_total += b - a;
        state_total += c - b;
    }
    assert!(vm.finished().is_none());
    let tick_us = per_op(tick_total, ticks);
    let state_us = per_op(state_total, ticks);
    println!(
        "{players:>2} players | handle_input {input_us:>6.2} µs | tick {tick_us:>6.2} µs | get_state ×{players} {state_us:>7.2} µs ({:>5.2} µs/player, {:>4} B/player) | tick+get_state {:>7.2} µs | VM memory {} KiB",
        state_us / players as f64,
        state_bytes / (ticks as usize * players),
        tick_us + state_us,
        vm.memory_used() / 1024,
    );
    black_box(host.bytes);
    pool.release(vm);
}

/// A shard's Lua work in `play --mode duel` (the `duel` mode of `examples/arena`, which the
/// loadtest plays), for `matches` live duels: per tick period each
/// player sends two inputs (20 Hz, as JSON text as they arrive from the socket), the match ticks
/// once (10 Hz) and each player gets its own `get_state`. Matches are visited in turn, as the
/// shard's timer queue visits them, so each VM's memory is cold again by its next turn.
/// Prints the cost per player per tick period, and what it means for one core.
fn bench_duel_shard(pool: &mut VmPool, game: &Game, matches: usize, rounds: usize) {
    let mut host = Sink::default();
    let mut live: Vec<(MatchVm, Vec<String>)> = (0..matches)
        .map(|m| {
            let mut vm = pool.acquire(game.mode("duel").unwrap(), "bench").unwrap();
            vm.init(&json!({}), &mut host).unwrap().done().unwrap();
            let ids: Vec<String> = (0..2)
                .map(|p| format!("0190f3a2-7c4e-7b1a-9d2e-{:012x}", m * 2 + p))
                .collect();
            for id in &ids {
                vm.join(id, None, &mut host).unwrap().done().unwrap();
            }
            (vm, ids)
        })
        .collect();
    let inputs = [
        r#"{"action":"move","dx":1,"dy":0,"seq":1001}"#,
        r#"{"action":"move","dx":0,"dy":1,"seq":1002}"#,
        r#"{"action":"move","dx":-1,"dy":-1,"seq":1003}"#,
        r#"{"action":"stop","seq":1004}"#,
    ];
    for r in 0..rounds / 10 {
        duel_round(&mut live, &inputs, r, &mut host);
    }
    let started = Instant::now();
    for r in 0..rounds {
        duel_round(&mut live, &inputs, r, &mut host);
    }
    let per_player_tick = per_op(started.elapsed(), (rounds * matches * 2) as u64);
    println!(
        "duel shard: {matches} matches × {rounds} ticks (+{} warm-up; {} player-ticks in duel_round)",
        rounds / 10,
        (rounds + rounds / 10) * matches * 2
    );
    println!(
        "duel shard: {matches} matches × {rounds} ticks | {per_player_tick:>6.2} µs per player per tick (2 inputs + ½ tick + 1 get_state) → {:.0} players per core in Lua at 10 Hz",
        1e6 / (per_player_tick * 10.0)
    );
    black_box(host.bytes);
    for (vm, _) in live {
        pool.release(vm);
    }
}

/// One tick period of every duel (kept out of line so `valgrind --tool=callgrind
/// --toggle-collect='*duel_round*'` counts exactly this work).
#[inline(never)]
fn duel_round(live: &mut [(MatchVm, Vec<String>)], inputs: &[&str], r: usize, host: &mut Sink) {
    for (vm, ids) in live.iter_mut() {
        for (p, id) in ids.iter().enumerate() {
            for k in 0..2 {
                let input = inputs[(r + p + k) % inputs.len()];
                vm.handle_input_json(id, input, host)
                    .unwrap()
                    .done()
                    .unwrap();
            }
        }
        vm.tick(host).unwrap().done().unwrap();
        for id in ids.iter() {
            black_box(vm.state_frame(Some(id), STATE_ENVELOPE, host).unwrap());
        }
    }
}

/// The engine's `match.state` envelope, written around each state as the server does.
const STATE_ENVELOPE: Envelope = Envelope {
    head: br#"{"type":"match.state","payload":"#,
    tail: b"}",
};

fn bench_vm_lifecycle(game: &Game) {
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut host = Sink::default();
    let n = 2_000u64;
    let started = Instant::now();
    for _ in 0..n {
        let mut vm = pool
            .acquire(game.mode("default").unwrap(), "bench")
            .unwrap();
        vm.init(&json!({}), &mut host).unwrap().done().unwrap();
        pool.release(vm); // drops the state and builds a fresh sandbox for the pool
    }
    println!(
        "VM lifecycle (acquire: load chunk + require, init, release: drop + fresh sandbox) {:.1} µs",
        per_op(started.elapsed(), n)
    );
}

fn bench_interpreter(dir: &Path) {
    // A loop of exactly `iterations` FORLOOP instructions (plus a handful of setup ones).
    std::fs::write(
        dir.join("match.lua"),
        "match_size = 1\nfunction init() return {} end\nfunction handle_input(p, i, s) for _ = 1, i.n do end return s end\n",
    )
    .unwrap();
    let game = Game::load(dir).unwrap();
    let budgets = Budgets {
        instructions: u64::MAX / 8,
        wall: Duration::from_secs(60),
        ..Budgets::default()
    };
    let mut pool = VmPool::new(budgets, 0).unwrap();
    let mut vm = pool
        .acquire(game.mode("default").unwrap(), "bench")
        .unwrap();
    let mut host = Sink::default();
    vm.init(&json!({}), &mut host).unwrap().done().unwrap();
    let iterations = 200_000_000u64;
    let started = Instant::now();
    // A long callback runs in time slices; resume it after each until it completes.
    let mut step = vm
        .handle_input("p", &json!({"n": iterations}), &mut host)
        .unwrap();
    let mut slices = 1u64;
    while let asobi_script::Call::Waiting(call) = step {
        assert!(call.is_slice(), "the loop calls no service");
        step = vm
            .resume(serde_json::Value::Null, &mut host)
            .unwrap()
            .map(|_| ());
        slices += 1;
    }
    let elapsed = started.elapsed();
    println!("interpreter: the loop ran in {slices} time slices");
    let per_sec = iterations as f64 / elapsed.as_secs_f64();
    println!(
        "interpreter: {:.0} M VM instructions/s (empty for-loop, budget hook on) → the default 10 M budget ≈ {:.1} ms",
        per_sec / 1e6,
        10_000_000.0 / per_sec * 1000.0
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() {
    let arena = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/games/arena");
    let game = Game::load(&arena).expect("the arena example loads");
    println!("asobi-script callbacks bench — arena example, Lua 5.4 (mlua, vendored), one thread");
    println!(
        "cpu: {} ({} logical cores visible)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut pool = VmPool::new(Budgets::default(), 2).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena");
    let example = Game::load(&examples).expect("examples/arena loads");
    // `-- duel` runs only the shard-sized duel (for `perf stat` / `valgrind` on a fixed workload).
    // `ASOBI_BENCH_DUEL=matches,ticks` sizes it (callgrind runs a small one).
    if std::env::args().any(|a| a == "duel") {
        let (matches, ticks) = std::env::var("ASOBI_BENCH_DUEL")
            .ok()
            .and_then(|v| {
                let (m, t) = v.split_once(',')?;
                Some((m.parse().ok()?, t.parse().ok()?))
            })
            .unwrap_or((500, 200));
        bench_duel_shard(&mut pool, &example, matches, ticks);
        return;
    }
    bench_match(&mut pool, &game, 2);
    bench_match(&mut pool, &game, 16);
    bench_duel_shard(&mut pool, &example, 500, 200);
    bench_vm_lifecycle(&game);
    let scratch = std::env::temp_dir().join(format!("asobi-script-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    bench_interpreter(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
}
