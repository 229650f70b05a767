//! The deploy surface asobi's compose files and load balancers rely on: CORS with
//! `ASOBI_CORS_ORIGINS` (a preflight on any route), and the `/health`, `/ready`, `/live` probes.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{copy_example_game, http_on, Opts, Server};

/// Sends a raw request and returns the status line's code and the lower-cased head.
fn raw(s: &Server, request: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        use std::io::Read;
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "closed early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

#[test]
fn cors_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![("ASOBI_CORS_ORIGINS".into(), "https://game.example".into())],
            ..Opts::default()
        },
    );
    // A preflight on any route, known or not, from the allowed origin.
    for path in [
        "/api/v1/auth/register",
        "/api/v1/matchmaker/abc",
        "/api/v1/players/me",
    ] {
        let (status, head) = raw(
            &s,
            &format!(
                "OPTIONS {path} HTTP/1.1\r\nHost: t\r\nOrigin: https://game.example\r\n\
                 Access-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: authorization, content-type\r\n\r\n"
            ),
        );
        assert_eq!(status, 204, "{path}: {head}");
        assert!(
            head.contains("access-control-allow-origin: https://game.example"),
            "{head}"
        );
        assert!(head.contains("access-control-allow-methods:"), "{head}");
        assert!(
            head.contains("access-control-allow-headers: authorization, content-type"),
            "{head}"
        );
    }
    // An ordinary answer carries the header; another origin gets none.
    let (status, head) = raw(
        &s,
        "GET /api/v1/health HTTP/1.1\r\nHost: t\r\nOrigin: https://game.example\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: https://game.example"),
        "{head}"
    );
    let (_, head) = raw(
        &s,
        "OPTIONS /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // The probes at the root, as asobi serves them.
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    let (status, body) = http_on(&mut conn, "GET", "/live", None, None, true);
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    let (status, body) = http_on(&mut conn, "GET", "/ready", None, None, true);
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    let (status, body) = http_on(&mut conn, "GET", "/health", None, None, true);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(s.stop().success());
}
