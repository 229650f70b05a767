//! Hostile HTTP framing against the real binary over real sockets (security review, issue 19):
//! a chunk size that overflowed the decoder used to panic and take the shard down, and framing
//! a proxy could read differently from us used to be accepted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{copy_example_game, Opts, Server};

/// One shard, so a shard that died would also be the one every later connection lands on.
fn start(dir: &std::path::Path) -> Server {
    copy_example_game(&dir.join("game"));
    Server::start(
        &dir.join("data"),
        &dir.join("game"),
        &Opts {
            shards: Some(1),
            ..Opts::default()
        },
    )
}

/// Writes `request` on a fresh connection and reads until the server closes it or goes quiet.
/// Returns the status of every response head seen, so a smuggled second request shows up as a
/// second status.
fn exchange(s: &Server, request: &[u8]) -> Vec<u16> {
    let mut conn = TcpStream::connect(s.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it read everything; that is not a failure here.
    let _ = conn.write_all(request);
    let mut got = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&byte[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text[at + 9..].get(..3)?.parse().ok())
        .collect()
}

fn health_answers(s: &Server) {
    for _ in 0..3 {
        let statuses = exchange(
            s,
            b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(statuses, [200], "health on a fresh connection");
    }
}

#[test]
fn chunk_size_overflow_does_not_kill_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    health_answers(&s);
    let attack = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nFFFFFFFFFFFFFFFE\r\nxy\r\n0\r\n\r\n";
    for _ in 0..3 {
        assert_eq!(
            exchange(&s, attack),
            [413],
            "the overflow is a body too large"
        );
    }
    health_answers(&s);
    assert!(
        s.stop().success(),
        "the server is still running and exits cleanly on SIGTERM"
    );
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    // Read by Content-Length, the body is `0\r\n\r`; read as chunked, `\nGET …` would be a
    // second request. We must take neither reading: one 400, then the connection closes.
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ] {
        let request = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: test\r\n{order}\r\n0\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n"
        );
        assert_eq!(exchange(&s, request.as_bytes()), [400], "{order:?}");
    }
    health_answers(&s);
    assert!(s.stop().success());
}

#[test]
fn lenient_content_length_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    for length in [
        "Content-Length: +2\r\n",
        "Content-Length: 2\r\nContent-Length: 2\r\n",
        "Content-Length: 2, 2\r\n",
    ] {
        let request = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{length}\r\n{{}}"
        );
        assert_eq!(exchange(&s, request.as_bytes()), [400], "{length:?}");
    }
    // Chunked must be the final coding; otherwise the body's end is unknown.
    let request = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n";
    assert_eq!(exchange(&s, request), [400]);
    health_answers(&s);
    assert!(s.stop().success());
}
