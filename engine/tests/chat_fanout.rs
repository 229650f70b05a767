//! Chat fan-out over real sockets, on SQLite and PostgreSQL, with two shards: a member that
//! stops reading never holds up the rest of its channel. Its socket fills, its bounded outbox
//! overflows, and the server drops it (1013 `slow_consumer`, or the write deadline when its
//! write never progresses), while members on both shards — one of them on the slow member's
//! own shard — receive every message, in order, long before the server gives up on it.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{pg_db, Opts, Server, Ws};
use serde_json::json;
use tungstenite::stream::MaybeTlsStream;

const CHANNEL: &str = "global:fanout";
/// Messages sent; with ~2 KB each, far more than a socket's kernel buffers hold.
const MESSAGES: usize = 3000;
/// How long the server lets one write to a client block before dropping it.
const WRITE_TIMEOUT_MS: u64 = 10_000;

fn member(s: &Server, prefix: &str, shard: usize) -> Ws {
    let p = s.register(prefix);
    let mut ws = s.ws_on(shard);
    ws.connect(&p.access);
    ws.send(json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": CHANNEL}}));
    ws.expect("chat.joined", Duration::from_secs(10), |_| true);
    ws
}

/// Reads `n` chat messages and checks they are `0..n` in order; returns when it got them.
fn read_all(mut ws: Ws, n: usize) -> Instant {
    for i in 0..n {
        let m = ws.expect("chat.message", Duration::from_secs(30), |_| true);
        let content = m["payload"]["content"].as_str().unwrap();
        let seq: usize = content.split(':').next().unwrap().parse().unwrap();
        assert_eq!(seq, i, "messages arrive in order, none lost");
    }
    Instant::now()
}

fn run(db: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    common::copy_example_game(game.path());
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        env: vec![
            env("ASOBI_WS_MSG_RATE", "0"),
            env("ASOBI_WS_OUTBOX", "64"),
            env("ASOBI_WRITE_TIMEOUT_MS", &WRITE_TIMEOUT_MS.to_string()),
        ],
    };
    let s = Server::start(data.path(), game.path(), &opts);
    let slow = member(&s, "slow", 0);
    let fast: Vec<Ws> = [0, 1, 0]
        .into_iter()
        .map(|shard| member(&s, "fast", shard))
        .collect();
    // The sender is not a member, so it has nothing to read.
    let sender = s.register("sender");
    let mut tx = s.ws_on(1);
    tx.connect(&sender.access);

    let started = Instant::now();
    let readers: Vec<_> = fast
        .into_iter()
        .map(|ws| std::thread::spawn(move || read_all(ws, MESSAGES)))
        .collect();
    let pad = "x".repeat(1900);
    for i in 0..MESSAGES {
        tx.send(json!({"type": "chat.send", "payload": {
            "channel_id": CHANNEL, "content": format!("{i}:{pad}"),
        }}));
    }
    let done: Vec<Instant> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let last = done.iter().max().unwrap().duration_since(started);
    assert!(
        last < Duration::from_millis(WRITE_TIMEOUT_MS * 8 / 10),
        "the readers finished after {last:?}: they waited for the member that does not read"
    );

    // The slow member is dropped: reading its socket now reaches the end of the stream (after
    // the frames that were in flight, and a 1013 close frame when the outbox overflowed
    // between two writes).
    let mut slow = slow;
    let MaybeTlsStream::Plain(raw) = slow.ws.get_mut() else {
        unreachable!("plain TCP")
    };
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0usize;
    let closed = loop {
        match raw.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("the slow member was not dropped: {e} after {bytes} bytes"),
        }
    };
    assert!(closed);
    assert!(
        bytes < MESSAGES * 1900,
        "the slow member was dropped before it was sent everything ({bytes} bytes)"
    );
    assert!(s.stop().success());
}

#[test]
fn a_member_that_stops_reading_does_not_hold_up_its_channel_on_sqlite() {
    run(None);
}

#[test]
fn a_member_that_stops_reading_does_not_hold_up_its_channel_on_postgres() {
    let Some(db) = pg_db() else { return };
    run(Some(db.url.clone()));
}
