//! Heartbeat round trips on one socket while 500 registrations arrive at once: shows that
//! password hashing runs off the shard and is bounded (excess registrations get 503 at once).
//!
//! ```text
//! ASOBI_SHARDS=1 ASOBI_RATE_LIMITS=register=100000/1000 target/release/asobi serve &
//! cargo run --release -p asobi-engine --example hash_flood -- 127.0.0.1:8080 500
//! ```
//! Prints one JSON object: heartbeat RTT percentiles before and during the flood, and what the
//! registrations got.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

fn post(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> Value {
    json!({
        "samples": v.len(),
        "p50_ms": pct(&mut v, 0.5),
        "p99_ms": pct(&mut v, 0.99),
        "max_ms": pct(&mut v, 1.0),
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 1_000_000_000;
    let (status, me) = post(
        &addr,
        "/api/v1/auth/register",
        &json!({"username": format!("hb{tag}"), "password": "secret123"}).to_string(),
    );
    assert_eq!(status, 200, "{me}");
    let token = me["access_token"].as_str().expect("token").to_owned();
    let stream = TcpStream::connect(&addr).expect("ws connect");
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(stream))
        .expect("handshake");
    let send = |ws: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>, v: Value| {
        ws.send(Message::text(v.to_string())).expect("send");
    };
    send(
        &mut ws,
        json!({"type": "session.connect", "payload": {"token": token}}),
    );
    loop {
        if let Ok(Message::Text(t)) = ws.read() {
            if t.contains("session.connected") {
                break;
            }
        }
    }
    let flooding = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let (before, during) = {
        let mut before = Vec::new();
        let mut during = Vec::new();
        let heartbeat = |ws: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>| {
            let t = Instant::now();
            send(ws, json!({"type": "session.heartbeat", "cid": "h"}));
            loop {
                if let Ok(Message::Text(t)) = ws.read() {
                    if t.contains("session.heartbeat") {
                        break;
                    }
                }
            }
            t.elapsed().as_secs_f64() * 1000.0
        };
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            before.push(heartbeat(&mut ws));
            std::thread::sleep(Duration::from_millis(10));
        }
        let barrier = Arc::new(Barrier::new(n + 1));
        let started = Instant::now();
        let workers: Vec<_> = (0..n)
            .map(|i| {
                let (addr, barrier, results) = (addr.clone(), barrier.clone(), results.clone());
                std::thread::spawn(move || {
                    let body = json!({"username": format!("fl{tag}_{i}"), "password": "secret123"})
                        .to_string();
                    barrier.wait();
                    let t = Instant::now();
                    let (status, _) = post(&addr, "/api/v1/auth/register", &body);
                    results
                        .lock()
                        .unwrap()
                        .push((status, t.elapsed().as_secs_f64() * 1000.0));
                })
            })
            .collect();
        flooding.store(true, Ordering::SeqCst);
        barrier.wait();
        while results.lock().unwrap().len() < n {
            during.push(heartbeat(&mut ws));
            std::thread::sleep(Duration::from_millis(10));
        }
        for w in workers {
            let _ = w.join();
        }
        eprintln!("flood done in {:.1} s", started.elapsed().as_secs_f64());
        (before, during)
    };
    let results = results.lock().unwrap();
    let count = |code: u16| results.iter().filter(|(s, _)| *s == code).count();
    let ok_ms: Vec<f64> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|r| r.1)
        .collect();
    let refused_ms: Vec<f64> = results
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|r| r.1)
        .collect();
    println!(
        "{}",
        json!({
            "registrations": n,
            "status_200": count(200),
            "status_503": count(503),
            "status_other": n - count(200) - count(503),
            "register_ok_latency": summary(ok_ms),
            "register_503_latency": summary(refused_ms),
            "heartbeat_rtt_before": summary(before),
            "heartbeat_rtt_during_flood": summary(during),
        })
    );
}
