//! Cost of the callbacks a shard runs every tick, on the example arena game
//! (`tests/games/arena`): one `handle_input`, and one `tick` plus `get_state` for every player,
//! for a 2- and a 16-player match. Also the cost of a VM (create + load + init) and the raw
//! interpreter speed the instruction budget is sized against.
//!
//! Run: `cargo bench -p asobi-script --bench callbacks`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use asobi_script::{Budgets, Game, Host, MatchVm, VmPool};
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
    vm.handle_input("p", &json!({"n": iterations}), &mut host)
        .unwrap()
        .done()
        .unwrap();
    let elapsed = started.elapsed();
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
    bench_match(&mut pool, &game, 2);
    bench_match(&mut pool, &game, 16);
    bench_vm_lifecycle(&game);
    let scratch = std::env::temp_dir().join(format!("asobi-script-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    bench_interpreter(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
}
