//! WebSocket framing against the real binary over real sockets: the server's own frame reader
//! (buffers borrowed from the shard's pool, `edge::wsconn`) answers pings, joins fragments, reads
//! frames cut at any byte even when the socket goes quiet in the middle of one, and an idle
//! signed-in socket costs the server only a few KiB.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{copy_example_game, Opts, Server, Ws};
use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

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

/// A masked client frame with an explicit FIN bit and opcode.
fn frame(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x01, 0xc3, 0x7e];
    let mut out = vec![if fin { 0x80 | op } else { op }];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn raw(w: &Ws) -> TcpStream {
    match w.ws.get_ref() {
        MaybeTlsStream::Plain(t) => t.try_clone().unwrap(),
        _ => unreachable!(),
    }
}

fn heartbeat(cid: &str) -> String {
    format!(r#"{{"type":"session.heartbeat","cid":"{cid}","payload":{{}}}}"#)
}

fn expect_reply(w: &mut Ws, cid: &str) {
    w.expect("session.heartbeat", WAIT, |v: &Value| v["cid"] == cid);
}

#[test]
fn pings_are_answered_and_fragments_join_around_them() {
    let (_dir, s) = server(&[("ASOBI_WS_MSG_RATE", "0")]);
    let p = s.register("frames");
    let (mut w, _) = s.ws();
    w.connect(&p.access);
    let mut tcp = raw(&w);

    tcp.write_all(&frame(0x9, true, b"are you there")).unwrap();
    let deadline = Instant::now() + WAIT;
    let pong = loop {
        assert!(Instant::now() < deadline, "no pong");
        if let MaybeTlsStream::Plain(t) = w.ws.get_mut() {
            t.set_read_timeout(Some(WAIT)).unwrap();
        }
        match w.ws.read().expect("socket open") {
            Message::Pong(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"are you there");

    // One heartbeat in three fragments, a ping between the first two, all in one write.
    let text = heartbeat("frag");
    let (a, rest) = text.as_bytes().split_at(10);
    let (b, c) = rest.split_at(20);
    let mut wire = frame(0x1, false, a);
    wire.extend(frame(0x9, true, b""));
    wire.extend(frame(0x0, false, b));
    wire.extend(frame(0x0, true, c));
    tcp.write_all(&wire).unwrap();
    expect_reply(&mut w, "frag");
    assert!(s.stop().success());
}

#[test]
fn frames_cut_at_every_byte_arrive_whole_even_when_the_socket_pauses_inside_one() {
    let (_dir, s) = server(&[("ASOBI_WS_MSG_RATE", "0")]);
    let p = s.register("pieces");
    let (mut w, _) = s.ws();
    w.connect(&p.access);
    let mut tcp = raw(&w);

    // Byte by byte with pauses: the server reads each piece, goes idle (its buffer goes back to
    // the pool, the piece is kept aside) and must still put the frame together.
    let one = frame(0x1, true, heartbeat("slow").as_bytes());
    for b in &one {
        tcp.write_all(std::slice::from_ref(b)).unwrap();
        sleep(Duration::from_millis(3));
    }
    expect_reply(&mut w, "slow");

    // Many frames in one write, the last one cut in two writes.
    let mut wire = Vec::new();
    for i in 0..200 {
        wire.extend(frame(0x1, true, heartbeat(&format!("b{i}")).as_bytes()));
    }
    let cut = wire.len() - 7;
    tcp.write_all(&wire[..cut]).unwrap();
    sleep(Duration::from_millis(50));
    tcp.write_all(&wire[cut..]).unwrap();
    for i in 0..200 {
        expect_reply(&mut w, &format!("b{i}"));
    }

    // A large message (over one pooled read buffer) in pieces.
    let big = format!(
        r#"{{"type":"session.heartbeat","cid":"big","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(40_000)
    );
    let wire = frame(0x1, true, big.as_bytes());
    for piece in wire.chunks(5_000) {
        tcp.write_all(piece).unwrap();
        sleep(Duration::from_millis(5));
    }
    expect_reply(&mut w, "big");
    assert!(s.stop().success());
}

#[test]
fn an_unmasked_or_reserved_frame_ends_the_connection() {
    let (_dir, s) = server(&[]);
    for bad in [vec![0x81, 0x02, b'{', b'}'], {
        let mut f = frame(0x1, true, b"{}");
        f[0] |= 0x20;
        f
    }] {
        let (mut w, _) = s.ws();
        raw(&w).write_all(&bad).unwrap();
        // No message, then the socket ends (no close code: the stream is not trusted).
        assert!(w.recv(WAIT).is_none());
    }
    // The server is unharmed.
    let p = s.register("after");
    let (mut w, _) = s.ws();
    w.connect(&p.access);
    assert!(s.stop().success());
}

/// The server's RSS once it stops moving. Memory freed earlier (the password hash of the
/// registration, ~19 MiB) is returned to the OS some time later; read too soon, that return
/// lands inside the measured batch and hides its growth.
fn settled_rss(s: &Server) -> u64 {
    let mut last = s.rss_kib();
    for _ in 0..40 {
        sleep(Duration::from_millis(250));
        let now = s.rss_kib();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn an_idle_signed_in_socket_costs_a_few_kib() {
    let (_dir, s) = server(&[("ASOBI_WS_MSG_RATE", "0"), ("ASOBI_WS_CONNECT_RATE", "0")]);
    let p = s.register("idle");
    // The registration's password hash (~19 MiB) is freed at once but handed back to the OS
    // only by allocator activity after a delay; let that happen during the warm-up, not inside
    // the measured batch (where it read as a 12 MiB shrink).
    sleep(Duration::from_secs(2));
    // Warm up allocator arenas and the buffer pool, then measure a second batch.
    let mut open: Vec<Ws> = Vec::new();
    let connect = |open: &mut Vec<Ws>, n: usize| {
        for i in 0..n {
            let (mut w, _) = s.ws();
            w.connect(&p.access);
            w.send_raw(&heartbeat(&format!("h{i}")));
            expect_reply(&mut w, &format!("h{i}"));
            open.push(w);
        }
    };
    connect(&mut open, 200);
    let before = settled_rss(&s);
    const N: usize = 3_000;
    connect(&mut open, N);
    let after = settled_rss(&s);
    let per_conn = (after.saturating_sub(before) * 1024) as usize / N;
    eprintln!("idle signed-in socket: {per_conn} bytes of server RSS ({before} -> {after} KiB)");
    // Issue 16's goal, 4 KiB, holds for the debug binary too (2.4 KiB measured when this was
    // written; the release figure, from `asobi-loadtest idle` at 19,000 sockets, is in
    // bench-results/capacity-idle.md). A socket owning a buffer again, or a session task that
    // carries its handshake (2.9 KiB in the release build before), crosses it. 3,000 sockets,
    // so that a few hundred KiB of allocator noise is small beside the batch.
    assert!(per_conn <= 4 * 1024, "{per_conn} bytes per idle socket");
    drop(open);
    assert!(s.stop().success());
}
