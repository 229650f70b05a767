//! A tiny client for the quick start: registers two players, queues them for the `duel` mode of
//! the example game, and has one of them walk right while both print the state they receive.
//! Edit `examples/arena/arena.lua` (e.g. `STEP = 3`) while it runs and watch the steps change
//! without a disconnect.
//!
//! `cargo run -p asobi-engine --example play -- [host:port] [seconds]`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

fn post(addr: &str, path: &str, body: &Value) -> Value {
    let mut s = TcpStream::connect(addr).expect("is the server running? (cargo run --release -p asobi-engine -- serve --game-dir examples/arena)");
    let body = body.to_string();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
    serde_json::from_str(json).unwrap_or(Value::Null)
}

fn player(addr: &str, name: &str) -> (String, String) {
    let creds = json!({"username": name, "password": "secret123"});
    let mut r = post(addr, "/api/v1/auth/register", &creds);
    if r.get("access_token").is_none() {
        r = post(addr, "/api/v1/auth/login", &creds);
    }
    (
        r["player_id"].as_str().unwrap().to_owned(),
        r["access_token"].as_str().unwrap().to_owned(),
    )
}

fn socket(addr: &str, token: &str) -> WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
    ws.send(Message::Text(
        json!({"type": "session.connect", "payload": {"token": token}})
            .to_string()
            .into(),
    ))
    .unwrap();
    ws
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let suffix = std::process::id();
    let (a_id, a_token) = player(&addr, &format!("alice{suffix}"));
    let (_, b_token) = player(&addr, &format!("bob{suffix}"));
    let mut a = socket(&addr, &a_token);
    let mut b = socket(&addr, &b_token);
    for ws in [&mut a, &mut b] {
        ws.send(Message::Text(
            json!({"type": "matchmaker.add", "payload": {"mode": "duel"}})
                .to_string()
                .into(),
        ))
        .unwrap();
    }
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = b.get_mut() {
        s.set_nonblocking(true).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seq = 0;
    let mut last_input = Instant::now();
    while Instant::now() < end {
        let msg = a.read().unwrap();
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str().unwrap_or("") {
            "match.state" => {
                let me = &v["payload"]["players"][a_id.as_str()];
                println!(
                    "tick {:>4}  rules v{}  alice at ({}, {})  score {}",
                    v["payload"]["tick"], v["payload"]["rules"], me["x"], me["y"], me["score"]
                );
                if last_input.elapsed() > Duration::from_millis(500) {
                    seq += 1;
                    let dx = if (seq / 10) % 2 == 0 { 1 } else { -1 };
                    let input = json!({"type": "match.input", "payload": {"action": "move", "dx": dx, "dy": 0, "seq": seq}});
                    a.send(Message::Text(input.to_string().into())).unwrap();
                    last_input = Instant::now();
                }
            }
            "session.connected" | "matchmaker.queued" | "match.matched" | "match.finished"
            | "module.message" | "match.coin" => println!("{v}"),
            _ => {}
        }
        // Drain bob's socket so the server never sees him as a slow reader.
        while let Ok(_m) = b.read() {}
    }
}
