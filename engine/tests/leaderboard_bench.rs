//! The 1M-entry leaderboard benchmark through the real binary (ignored by default; run it in
//! release: `cargo test --release -p asobi-engine --test leaderboard_bench -- --ignored
//! --nocapture`). It writes its figures to stdout; `bench-results/leaderboards-1m.md` records a
//! run.
//!
//! 1. Seeds boards of 10k, 100k and 1M entries into SQLite (the storage the server reads back).
//! 2. Starts the server (2 shards) and times the first read of each board: the rebuild of its
//!    rank index from storage on its owning shard; RSS before and after gives bytes per entry
//!    and its growth from 10k to 1M.
//! 3. Score submits to the 1M board through the real path: `POST /api/v1/leaderboards/:id` over
//!    keep-alive HTTP from several threads, each request by a random existing player (a token
//!    minted for it), routed over the mesh to the owning shard. Board operator `set`, so every
//!    submit moves the player in the index.
//! 4. `GET` top-100 and around-me (±5) latency as seen by one client on loopback (an upper
//!    bound of the server-side time: it includes HTTP parsing, token checks, the mesh hop and
//!    JSON encoding).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use sha2::Sha256;

use asobi_storage::{BoardEntry, StoreConfig, StoreHandle};
use common::{Opts, Server};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

fn token(player: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let c = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"sub": player, "iat": now, "exp": now + 3600, "typ": "access"})
            .to_string(),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{h}.{c}").as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{c}.{s}")
}

fn pid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

fn seed(data: &std::path::Path, boards: &[(&str, usize)]) {
    let store = StoreHandle::start(StoreConfig::Sqlite {
        path: data.join("asobi.db"),
    })
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (board, n) in boards {
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..*n {
            batch.push(BoardEntry {
                player_id: pid(i),
                score: rng.random_range(0..10_000_000),
                sub_score: 0,
                seq: i as i64,
                metadata: None,
                updated_at: 1_700_000_000_000,
            });
            if batch.len() == 10_000 {
                futures::executor::block_on(
                    store.save_leaderboard_entries(board, std::mem::take(&mut batch)),
                )
                .unwrap();
            }
        }
        futures::executor::block_on(store.save_leaderboard_entries(board, batch)).unwrap();
    }
    store.shutdown();
}

/// One keep-alive request; returns the status.
fn request(s: &mut BufReader<TcpStream>, method: &str, path: &str, tok: &str, body: &str) -> u16 {
    exchange(s, method, path, tok, body).0
}

/// One request on a keep-alive connection: the status and the body.
fn exchange(
    s: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    tok: &str,
    body: &str,
) -> (u16, Vec<u8>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.get_mut().write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    s.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if h == "\r\n" {
            break;
        }
    }
    let mut b = vec![0; len];
    s.read_exact(&mut b).unwrap();
    (status, b)
}

/// Cumulative bucket counts (upper bound in seconds → count) of one of the server's histograms,
/// summed over shards.
fn buckets(c: &mut BufReader<TcpStream>, name: &str) -> Vec<(f64, f64)> {
    let (status, body) = exchange(c, "GET", "/metrics", "", "");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for sample in scrape.samples.iter().filter(|s| s.metric == name) {
        if let prometheus_parse::Value::Histogram(hs) = &sample.value {
            for h in hs {
                match sum.iter_mut().find(|(le, _)| *le == h.less_than) {
                    Some(slot) => slot.1 += h.count,
                    None => sum.push((h.less_than, h.count)),
                }
            }
        }
    }
    sum.sort_by(|a, b| a.0.total_cmp(&b.0));
    sum
}

/// The server-side quantile `q` (µs, an upper bound at bucket precision) of what was observed
/// between two scrapes.
fn server_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let window: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, n - b)
        })
        .collect();
    let total = window.last().map_or(0.0, |x| x.1);
    let want = (q * total).ceil().max(1.0);
    window
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(f64::INFINITY, |(le, _)| le * 1e6)
}

fn conn(addr: &str) -> BufReader<TcpStream> {
    let t = TcpStream::connect(addr).unwrap();
    t.set_nodelay(true).unwrap();
    BufReader::new(t)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
#[ignore = "a benchmark: run in release with --ignored"]
fn one_million_entries_through_the_real_binary() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(game.path().join("config.lua"), "return {}\n").unwrap();
    let sizes = [("b10k", 10_000), ("b100k", 100_000), ("b1m", 1_000_000)];
    let t = Instant::now();
    seed(data.path(), &sizes);
    println!(
        "seeded 1.11M entries into SQLite in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let opts = Opts {
        shards: Some(2),
        database_url: None,
        env: vec![
            ("ASOBI_JWT_SECRET".into(), SECRET.into()),
            ("ASOBI_LEADERBOARD_CLIENT_SUBMIT".into(), "b1m".into()),
            (
                "ASOBI_LEADERBOARDS".into(),
                r#"{"b1m": {"operator": "set"}}"#.into(),
            ),
        ],
    };
    let s = Server::start(data.path(), game.path(), &opts);
    let me = token(&pid(7));
    let addr = s.addr();
    let mut c = conn(&addr);
    // Warm the process (allocator, first requests) on an empty board.
    for _ in 0..100 {
        request(&mut c, "GET", "/api/v1/leaderboards/empty", &me, "");
    }
    let base = s.rss_kib();
    let mut prev = base;
    for (board, n) in sizes {
        let t = Instant::now();
        let status = request(
            &mut c,
            "GET",
            &format!("/api/v1/leaderboards/{board}?limit=100"),
            &me,
            "",
        );
        // A rebuild that outlasts the storage call deadline (5 s) answers 503.
        println!("{board}: first read answered {status}");
        let rebuild = t.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        let rss = s.rss_kib();
        println!(
            "{board}: {n} entries rebuilt in {:.3} s; RSS +{} KiB = {:.0} B/entry",
            rebuild.as_secs_f64(),
            rss - prev,
            (rss - prev) as f64 * 1024.0 / n as f64
        );
        prev = rss;
    }
    println!(
        "RSS total for 1.11M entries: +{} KiB over {} KiB",
        prev - base,
        base
    );

    // Submits through REST → mesh → owner.
    const THREADS: usize = 8;
    const SECS: u64 = 10;
    let submits_before = buckets(&mut c, "asobi_leaderboard_submit_seconds");
    let stop = Instant::now() + Duration::from_secs(SECS);
    let t = Instant::now();
    let counts: Vec<(u64, Vec<f64>)> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..THREADS)
            .map(|th| {
                let addr = addr.clone();
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(th as u64);
                    let toks: Vec<String> = (0..2000)
                        .map(|_| token(&pid(rng.random_range(0..1_000_000))))
                        .collect();
                    let mut c = conn(&addr);
                    let mut n = 0u64;
                    let mut lat = Vec::new();
                    while Instant::now() < stop {
                        let tok = &toks[rng.random_range(0..toks.len())];
                        let body = format!("{{\"score\":{}}}", rng.random_range(0..10_000_000));
                        let t = Instant::now();
                        assert_eq!(
                            request(&mut c, "POST", "/api/v1/leaderboards/b1m", tok, &body),
                            200
                        );
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        n += 1;
                    }
                    (n, lat)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = counts.iter().map(|(n, _)| n).sum();
    let mut lat: Vec<f64> = counts.into_iter().flat_map(|(_, l)| l).collect();
    println!(
        "submits to b1m: {total} in {:.1} s = {:.0}/s over {THREADS} keep-alive connections; RTT p50 {:.3} p99 {:.3} ms",
        t.elapsed().as_secs_f64(),
        total as f64 / t.elapsed().as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    let submits_after = buckets(&mut c, "asobi_leaderboard_submit_seconds");
    println!(
        "submits on the owning shard: p50 ≤ {} p99 ≤ {} p999 ≤ {} µs",
        server_quantile(&submits_before, &submits_after, 0.5),
        server_quantile(&submits_before, &submits_after, 0.99),
        server_quantile(&submits_before, &submits_after, 0.999)
    );

    // Read latency, one client, sequential.
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for (what, path, metric) in [
        (
            "top-100",
            "/api/v1/leaderboards/b1m?limit=100".to_owned(),
            "asobi_leaderboard_top_seconds",
        ),
        (
            "around-me ±5",
            String::new(),
            "asobi_leaderboard_around_seconds",
        ),
    ] {
        let before = buckets(&mut c, metric);
        let mut lat = Vec::new();
        for _ in 0..3000 {
            let p = if path.is_empty() {
                format!(
                    "/api/v1/leaderboards/b1m/around/{}?range=5",
                    pid(rng.random_range(0..1_000_000))
                )
            } else {
                path.clone()
            };
            let t = Instant::now();
            assert_eq!(request(&mut c, "GET", &p, &me, ""), 200);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let after = buckets(&mut c, metric);
        println!(
            "{what} on b1m: RTT p50 {:.3} p99 {:.3} ms (3000 sequential requests); on the owning shard p50 ≤ {} p99 ≤ {} µs",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            server_quantile(&before, &after, 0.5),
            server_quantile(&before, &after, 0.99)
        );
    }
    assert!(s.stop().success());
}
