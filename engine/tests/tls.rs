//! HTTPS and WSS on the main port with a configured certificate (rustls on both ends).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{copy_example_game, Opts, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tungstenite::Message;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: &str, ca: &CertificateDer<'static>) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn https(
    addr: &str,
    ca: &CertificateDer<'static>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = tls_connect(addr, ca);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A WSS client over rustls.
struct Wss(tungstenite::WebSocket<Tls>);

impl Wss {
    fn open(addr: &str, ca: &CertificateDer<'static>) -> Wss {
        let (ws, _) =
            tungstenite::client("ws://localhost/ws", tls_connect(addr, ca)).expect("wss handshake");
        Wss(ws)
    }

    fn send(&mut self, v: Value) {
        self.0.send(Message::Text(v.to_string().into())).unwrap();
    }

    fn expect(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Message::Text(t) = self.0.read().expect("wss read") {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == kind && pred(&v) {
                    return v;
                }
            }
        }
        panic!("no {kind} within 10 s");
    }
}

#[test]
fn https_and_wss_on_the_main_port() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let ca = cert.cert.der().clone();
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![
                (
                    "ASOBI_TLS_CERT".into(),
                    dir.path().join("cert.pem").display().to_string(),
                ),
                (
                    "ASOBI_TLS_KEY".into(),
                    dir.path().join("key.pem").display().to_string(),
                ),
            ],
            ..Opts::default()
        },
    );
    let addr = s.addr();

    let (status, health) = https(&addr, &ca, "GET", "/api/v1/health", None);
    assert_eq!(status, 200, "{health}");
    let (status, reg) = https(
        &addr,
        &ca,
        "POST",
        "/api/v1/auth/register",
        Some(json!({"username": common::unique("tls"), "password": "secret123"})),
    );
    assert_eq!(status, 200, "{reg}");
    let token = reg["access_token"].as_str().unwrap();

    // Plain HTTP on the TLS port is not served.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // WSS: the whole realtime loop — connect, queue, match, input → state, hot reload.
    let b = {
        let (status, reg) = https(
            &addr,
            &ca,
            "POST",
            "/api/v1/auth/register",
            Some(json!({"username": common::unique("tlsb"), "password": "secret123"})),
        );
        assert_eq!(status, 200, "{reg}");
        reg
    };
    let mut wa = Wss::open(&addr, &ca);
    let mut wb = Wss::open(&addr, &ca);
    wa.send(json!({"type": "session.connect", "cid": "1", "payload": {"token": token}}));
    let a_id = wa.expect("session.connected", |_| true)["payload"]["player_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wb.send(json!({"type": "session.connect", "payload": {"token": b["access_token"]}}));
    wb.expect("session.connected", |_| true);
    wa.send(json!({"type": "session.heartbeat", "cid": "2", "payload": {}}));
    assert_eq!(wa.expect("session.heartbeat", |_| true)["cid"], "2");
    for w in [&mut wa, &mut wb] {
        w.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    }
    let m1 = wa.expect("match.matched", |_| true);
    let m2 = wb.expect("match.matched", |_| true);
    assert_eq!(m1["payload"]["match_id"], m2["payload"]["match_id"]);
    wa.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 1}}),
    );
    let st = wb.expect("match.state", |v| {
        v["payload"]["players"][a_id.as_str()]["seq"] == 1
    });
    let x = st["payload"]["players"][a_id.as_str()]["x"]
        .as_i64()
        .unwrap();
    let rules = std::fs::read_to_string(game.join("arena.lua")).unwrap();
    std::fs::write(
        game.join("arena.lua"),
        rules
            .replace("local STEP = 1", "local STEP = 2")
            .replace("local RULES_VERSION = 1", "local RULES_VERSION = 2"),
    )
    .unwrap();
    wa.expect("match.state", |v| v["payload"]["rules"] == 2);
    wa.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 2}}),
    );
    let st = wb.expect("match.state", |v| {
        v["payload"]["players"][a_id.as_str()]["seq"] == 2
    });
    assert_eq!(
        st["payload"]["players"][a_id.as_str()]["x"]
            .as_i64()
            .unwrap(),
        x + 2
    );
    assert!(s.stop().success());
}
