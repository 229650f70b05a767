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

    // WSS: authenticate and get a heartbeat answered.
    let stream = tls_connect(&addr, &ca);
    let (mut ws, _) = tungstenite::client("ws://localhost/ws", stream).expect("wss handshake");
    ws.send(Message::Text(
        json!({"type": "session.connect", "cid": "1", "payload": {"token": token}})
            .to_string()
            .into(),
    ))
    .unwrap();
    ws.send(Message::Text(
        json!({"type": "session.heartbeat", "cid": "2", "payload": {}})
            .to_string()
            .into(),
    ))
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Message::Text(t) = ws.read().unwrap() {
            seen.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    assert_eq!(seen[0]["type"], "session.connected");
    assert_eq!(seen[1]["type"], "session.heartbeat");
    assert_eq!(seen[1]["cid"], "2");
    assert!(s.stop().success());
}
