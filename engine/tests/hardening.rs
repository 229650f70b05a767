//! What a hostile client can do to the real binary over real sockets, and what it costs: ticket
//! properties that would be kept forever, clients that stop reading, invalid UTF-8.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{copy_example_game, Opts, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn server(env: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Opts::default()
        },
    );
    (dir, s)
}

/// Connections and sessions the (single) shard reports.
fn load(s: &Server) -> (u64, u64) {
    let (_, h) = s.http("GET", "/api/v1/health", None, None);
    let shard = &h["shards"][0];
    (
        shard["connections"].as_u64().unwrap(),
        shard["sessions"].as_u64().unwrap(),
    )
}

/// Waits until the shard holds only the probing connection and no session.
fn wait_until_released(s: &Server, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if load(s) == (1, 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn oversized_ticket_properties_are_refused_and_nothing_is_retained() {
    let (_dir, s) = server(&[]);
    let p = s.register("props");
    let rss_before = s.rss_kib();
    let big = "x".repeat(1_000_000);
    for _ in 0..30 {
        let body = json!({"mode": "duel", "properties": {"blob": big}}).to_string();
        let (status, v) = s.http("POST", "/api/v1/matchmaker", Some(&p.access), Some(&body));
        assert_eq!(status, 413, "{v}");
        assert_eq!(v["error"]["code"], "matchmaker.properties_too_large");
    }
    // Tickets under the cap still queue, and cancelled ones keep nothing.
    let fine = "y".repeat(3_000);
    for _ in 0..30 {
        let body = json!({"mode": "duel", "properties": {"blob": fine, "skill": 1200}}).to_string();
        let (status, v) = s.http("POST", "/api/v1/matchmaker", Some(&p.access), Some(&body));
        assert_eq!(status, 200, "{v}");
        let ticket = v["ticket_id"].as_str().unwrap().to_owned();
        let (status, _) = s.http(
            "DELETE",
            &format!("/api/v1/matchmaker/{ticket}"),
            Some(&p.access),
            None,
        );
        assert_eq!(status, 200);
    }
    let grown = s.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
    assert!(s.stop().success());
}

/// Sends `frame` over and over without ever reading, until the server stops taking them.
fn flood_without_reading(stream: &mut TcpStream, frame: &[u8]) {
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        if stream.write_all(frame).is_err() {
            return;
        }
    }
}

/// A masked client text frame carrying `payload` as is (valid UTF-8 or not).
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn client_text(text: &str) -> Vec<u8> {
    client_frame(text.as_bytes())
}

#[test]
fn a_client_that_stops_reading_is_dropped_in_a_match_before_auth_and_over_http() {
    let (_dir, s) = server(&[
        ("ASOBI_WRITE_TIMEOUT_MS", "1000"),
        ("ASOBI_WS_MSG_RATE", "0"),
        ("ASOBI_WS_CONNECT_TIMEOUT_MS", "60000"),
    ]);
    let p = s.register("reader");

    // Signed in: heartbeats, each answered, never read.
    let (mut w, _) = s.ws();
    w.connect(&p.access);
    let mut raw = match w.ws.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(t) => t.try_clone().unwrap(),
        _ => unreachable!(),
    };
    flood_without_reading(
        &mut raw,
        &client_text(r#"{"type":"session.heartbeat","cid":"h","payload":{}}"#),
    );
    assert!(
        wait_until_released(&s, Duration::from_secs(15)),
        "signed-in reader still held: {:?}",
        load(&s)
    );
    drop(w);

    // Before session.connect: every frame provokes an error reply.
    let (w, _) = s.ws();
    let mut raw = match w.ws.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(t) => t.try_clone().unwrap(),
        _ => unreachable!(),
    };
    flood_without_reading(&mut raw, &client_text(r#"{"type":"match.list","cid":"x"}"#));
    assert!(
        wait_until_released(&s, Duration::from_secs(15)),
        "unauthenticated reader still held: {:?}",
        load(&s)
    );
    drop(w);

    // HTTP pipelining: requests written, responses never read.
    let mut http = TcpStream::connect(s.addr()).unwrap();
    flood_without_reading(&mut http, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        wait_until_released(&s, Duration::from_secs(15)),
        "pipelining reader still held: {:?}",
        load(&s)
    );
    assert!(s.stop().success());
}

#[test]
fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let (_dir, s) = server(&[]);
    let (mut w, _) = s.ws();
    let mut raw = match w.ws.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(t) => t.try_clone().unwrap(),
        _ => unreachable!(),
    };
    raw.write_all(&client_frame(&[0x7b, 0xff, 0xfe, 0x7d]))
        .unwrap();
    assert_eq!(w.close_code(WAIT), Some(1007));
    assert!(s.stop().success());
}

#[test]
fn unknown_types_and_long_cids_are_not_echoed_in_full() {
    let (_dir, s) = server(&[("ASOBI_WS_MSG_RATE", "0")]);
    let p = s.register("echo");
    let (mut w, _) = s.ws();
    w.connect(&p.access);
    let long_type = "t".repeat(30_000);
    let long_cid = "c".repeat(30_000);
    w.send(json!({"type": long_type, "cid": long_cid, "payload": {}}));
    let v: Value = w.expect("error", WAIT, |_| true);
    let text = v.to_string();
    assert!(text.len() < 1_000, "the error echoes {} bytes", text.len());
    assert_eq!(v["payload"]["error"]["code"], "unknown_type");
    assert!(s.stop().success());
}
