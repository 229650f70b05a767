//! Micro-benchmark of one leaderboard board (the owner shard's in-memory work): submits per
//! second, top-100 / rank / around-me latency percentiles and memory per entry, at 10k, 100k and
//! 1M entries. Run: `cargo run --release -p asobi-rules --example leaderboard_bench`.

use std::time::Instant;

use asobi_rules::leaderboards::{Board, BoardConfig, Operator, Order, Schedule};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn pct(samples: &mut [u64], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i] as f64 / 1000.0
}

/// A player id shaped like asobi's (a UUID string, 36 bytes).
fn player(i: usize) -> String {
    format!("0190a5c4-7e2b-7000-8000-{i:012x}")
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').map(|n| n.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    println!(
        "| entries | insert submits/s | update submits/s (best) | top-100 p50/p99 µs | rank p50/p99 µs | around ±5 p50/p99 µs | index+entries bytes/entry | RSS bytes/entry |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let ids: Vec<String> = (0..n).map(player).collect();
        let mut rng = StdRng::seed_from_u64(n as u64);
        let rss_before = rss_kib();
        let mut board = Board::new(
            BoardConfig {
                order: Order::Desc,
                operator: Operator::Best,
                reset: Schedule::Never,
            },
            0,
        );
        let t = Instant::now();
        for id in &ids {
            board.submit(id, rng.random_range(0..10_000_000), 0, None, 1);
        }
        let insert_rate = n as f64 / t.elapsed().as_secs_f64();
        let _ = board.take_dirty();
        let rss_after = rss_kib();

        let updates = 1_000_000.min(n * 2);
        let picks: Vec<(usize, i64)> = (0..updates)
            .map(|_| (rng.random_range(0..n), rng.random_range(0..10_000_000)))
            .collect();
        let t = Instant::now();
        for (i, score) in &picks {
            board.submit(&ids[*i], *score, 0, None, 2);
        }
        let update_rate = updates as f64 / t.elapsed().as_secs_f64();

        let q = 20_000;
        let mut top = Vec::with_capacity(q);
        let mut rank = Vec::with_capacity(q);
        let mut around = Vec::with_capacity(q);
        let mut sink = 0u64;
        for _ in 0..q {
            let t = Instant::now();
            sink += board.top(100).len() as u64;
            top.push(t.elapsed().as_nanos() as u64);
            let id = &ids[rng.random_range(0..n)];
            let t = Instant::now();
            sink += board.rank(id).unwrap_or(0);
            rank.push(t.elapsed().as_nanos() as u64);
            let t = Instant::now();
            sink += board.around(id, 5).len() as u64;
            around.push(t.elapsed().as_nanos() as u64);
        }
        assert!(sink > 0);
        println!(
            "| {n} | {:.0} | {:.0} | {:.1} / {:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} |",
            insert_rate,
            update_rate,
            pct(&mut top, 0.5),
            pct(&mut top, 0.99),
            pct(&mut rank, 0.5),
            pct(&mut rank, 0.99),
            pct(&mut around, 0.5),
            pct(&mut around, 0.99),
            board.heap_bytes() / n,
            (rss_after.saturating_sub(rss_before) * 1024) as usize / n,
        );
        drop(board);
    }
}
