//! The realtime loop over QUIC (ALPN asobi/1, length-prefixed frames on one stream, state as
//! datagrams when the mode asks), against the real binary.

mod common;
mod world_wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::{copy_example_game, Opts, Server};
use serde_json::{json, Value};

use asobi_net::quic_frame::{self, FrameReader, ENCODING_FB, ENCODING_JSON, ENCODING_WORLD_TICK};

const WAIT: Duration = Duration::from_secs(10);

struct QuicClient {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    reader: FrameReader,
    encoding: u8,
    _endpoint: quinn::Endpoint,
}

impl QuicClient {
    async fn connect(port: u16, ca_pem: &std::path::Path, encoding: u8) -> QuicClient {
        let endpoint = client_endpoint(ca_pem);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        QuicClient {
            conn,
            send,
            recv,
            reader: FrameReader::new(1 << 20),
            encoding,
            _endpoint: endpoint,
        }
    }

    async fn send(&mut self, v: Value) {
        let body = if self.encoding == ENCODING_FB {
            let kind = v["type"].as_str().unwrap();
            let cid = v.get("cid").map(|c| c.to_string());
            asobi_schema::fb::encode_inbound(
                kind,
                cid.as_deref(),
                &v.get("payload").cloned().unwrap_or(json!({})).to_string(),
            )
            .to_vec()
        } else {
            v.to_string().into_bytes()
        };
        let mut buf = BytesMut::new();
        quic_frame::write_frame(&mut buf, self.encoding, &body);
        self.send.write_all(&buf).await.unwrap();
    }

    fn to_json(&self, encoding: u8, body: &[u8]) -> Value {
        if encoding == ENCODING_FB {
            let f = asobi_schema::fb::decode_frame(body).expect("valid fb frame from the server");
            let mut v = json!({"type": f.kind, "payload": serde_json::from_str::<Value>(&f.payload_json).unwrap()});
            if let Some(c) = f.cid {
                v["cid"] = serde_json::from_str(&c).unwrap();
            }
            v
        } else {
            serde_json::from_slice(body).unwrap()
        }
    }

    /// Next frame from the stream (or a datagram), as JSON.
    async fn recv(&mut self) -> Option<(Value, bool)> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(f) = self.reader.next_frame().unwrap() {
                assert_eq!(
                    f.encoding, self.encoding,
                    "replies use the session's encoding"
                );
                return Some((self.to_json(f.encoding, &f.body), false));
            }
            tokio::select! {
                d = self.conn.read_datagram() => {
                    let d = d.ok()?;
                    return Some((self.to_json(d[0], &d[1..]), true));
                }
                n = self.recv.read(&mut chunk) => {
                    match n.ok()? {
                        Some(n) => self.reader.push(&chunk[..n]),
                        None => return None,
                    }
                }
            }
        }
    }

    async fn expect(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> (Value, bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = tokio::time::timeout_at(deadline, self.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} in time"));
            let (v, dgram) = got.expect("connection closed");
            if v["type"] == kind && pred(&v) {
                return (v, dgram);
            }
        }
    }
}

fn start(game: &std::path::Path, dir: &std::path::Path) -> Server {
    Server::start(
        &dir.join("data"),
        game,
        &Opts {
            env: vec![
                ("ASOBI_DEV_CERT".into(), "true".into()),
                ("ASOBI_QUIC_PORT".into(), "0".into()),
            ],
            ..Opts::default()
        },
    )
}

fn loop_over_quic(encoding: u8) {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = start(&game, dir.path());
    let a = s.register("qa");
    let b = s.register("qb");
    let port = s.quic_port();
    let cert = s.data_dir.join("dev-cert.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut qa = QuicClient::connect(port, &cert, encoding).await;
        let mut qb = QuicClient::connect(port, &cert, encoding).await;
        qa.send(json!({"type": "session.connect", "cid": "c1", "payload": {"token": a.access}})).await;
        let (connected, _) = qa.expect("session.connected", |_| true).await;
        assert_eq!(connected["cid"], "c1");
        assert_eq!(connected["payload"]["player_id"], a.id.as_str());
        qb.send(json!({"type": "session.connect", "payload": {"token": b.access}})).await;
        qb.expect("session.connected", |_| true).await;
        qa.send(json!({"type": "session.heartbeat", "cid": 9, "payload": {}})).await;
        let (hb, _) = qa.expect("session.heartbeat", |_| true).await;
        assert_eq!(hb["cid"], 9);
        for q in [&mut qa, &mut qb] {
            q.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}})).await;
        }
        let (ma, _) = qa.expect("match.matched", |_| true).await;
        let (mb, _) = qb.expect("match.matched", |_| true).await;
        assert_eq!(ma["payload"]["match_id"], mb["payload"]["match_id"]);
        qa.send(json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 1}})).await;
        let (st, _) = qb.expect("match.state", |v| v["payload"]["players"][a.id.as_str()]["seq"] == 1).await;
        let x = st["payload"]["players"][a.id.as_str()]["x"].as_i64().unwrap();
        // Hot reload over QUIC too.
        let rules = std::fs::read_to_string(game.join("arena.lua")).unwrap();
        std::fs::write(game.join("arena.lua"), rules.replace("local STEP = 1", "local STEP = 4").replace("local RULES_VERSION = 1", "local RULES_VERSION = 2")).unwrap();
        qa.expect("match.state", |v| v["payload"]["rules"] == 2).await;
        qa.send(json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 2}})).await;
        let (st, _) = qa.expect("match.state", |v| v["payload"]["players"][a.id.as_str()]["seq"] == 2).await;
        assert_eq!(st["payload"]["players"][a.id.as_str()]["x"].as_i64().unwrap(), x + 4);
        // Errors travel the same way.
        qa.send(json!({"type": "no.such", "cid": "e", "payload": {}})).await;
        let (err, _) = qa.expect("error", |_| true).await;
        assert_eq!(err["payload"]["error"]["code"], "unknown_type");
    });
    assert!(s.stop().success());
}

#[test]
fn realtime_loop_over_quic_json() {
    loop_over_quic(ENCODING_JSON);
}

#[test]
fn realtime_loop_over_quic_flatbuffers() {
    loop_over_quic(ENCODING_FB);
}

#[test]
fn datagram_state_when_the_mode_asks() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let duel = std::fs::read_to_string(game.join("duel.lua")).unwrap();
    std::fs::write(
        game.join("duel.lua"),
        format!("state_transport = \"datagram\"\n{duel}"),
    )
    .unwrap();
    let s = start(&game, dir.path());
    let a = s.register("da");
    let b = s.register("db");
    let port = s.quic_port();
    let cert = s.data_dir.join("dev-cert.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut qa = QuicClient::connect(port, &cert, ENCODING_JSON).await;
        let mut qb = QuicClient::connect(port, &cert, ENCODING_JSON).await;
        for (q, p) in [(&mut qa, &a), (&mut qb, &b)] {
            q.send(json!({"type": "session.connect", "payload": {"token": p.access}}))
                .await;
            q.expect("session.connected", |_| true).await;
            q.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}))
                .await;
        }
        qa.expect("match.matched", |_| true).await;
        let (_, via_datagram) = qa.expect("match.state", |_| true).await;
        assert!(
            via_datagram,
            "match.state should arrive as a datagram in a datagram mode"
        );
        // Reliable frames still use the stream.
        qa.send(json!({"type": "session.heartbeat", "cid": "h", "payload": {}}))
            .await;
        let (_, dg) = qa.expect("session.heartbeat", |_| true).await;
        assert!(!dg);
    });
    assert!(s.stop().success());
}

/// QUIC counts against the same per-IP connect rate as WebSocket (it used to skip it).
#[test]
fn quic_connects_are_rate_limited_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![
                ("ASOBI_DEV_CERT".into(), "true".into()),
                ("ASOBI_QUIC_PORT".into(), "0".into()),
                ("ASOBI_WS_CONNECT_RATE".into(), "3".into()),
            ],
            ..Opts::default()
        },
    );
    let port = s.quic_port();
    let cert = s.data_dir.join("dev-cert.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, refused) = rt.block_on(async {
        let endpoint = client_endpoint(&cert);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (mut ok, mut refused) = (Vec::new(), 0);
        for _ in 0..8 {
            match tokio::time::timeout(WAIT, endpoint.connect(addr, "localhost").unwrap()).await {
                Ok(Ok(conn)) => ok.push(conn),
                _ => refused += 1,
            }
        }
        (ok.len(), refused)
    });
    assert!(ok >= 1, "the first connects are served");
    assert!(
        ok <= 3 + 3,
        "at most the rate per second (the loop may straddle seconds): {ok}"
    );
    assert!(
        refused >= 2,
        "connects over the rate are refused: {refused} refused"
    );
    assert!(s.stop().success());
}

/// A client endpoint trusting the server's development certificate.
fn client_endpoint(cert: &std::path::Path) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"asobi/1".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// A connection that opens its stream but never completes a first frame is closed by the
/// server's open deadline (10 s) instead of being held forever.
#[test]
fn a_quic_connection_without_a_first_frame_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = start(&game, dir.path());
    let port = s.quic_port();
    let cert = s.data_dir.join("dev-cert.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let closed_in = rt.block_on(async {
        let endpoint = client_endpoint(&cert);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        // Two bytes of a four-byte length prefix: a frame that never completes.
        send.write_all(&[0, 0]).await.unwrap();
        let started = std::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(20), conn.closed()).await;
        assert!(
            closed.is_ok(),
            "the server still holds the connection after 20 s"
        );
        started.elapsed()
    });
    assert!(
        closed_in <= Duration::from_secs(12),
        "closed after {closed_in:?}"
    );
    assert!(s.stop().success());
}

/// `session.connect` grants the binary `world.tick` wire to a JSON session that asks, and
/// `world.tick` datagrams only on QUIC; `session.connected` states what was granted (the
/// delivery itself is tested against the QUIC edge in `edge::quic_world_tests`).
#[test]
fn session_connect_negotiates_the_world_tick_wire() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = start(&game, dir.path());
    let a = s.register("ww");
    let cert = s.data_dir.join("dev-cert.pem");
    // WebSocket: binary granted, datagrams refused (no datagrams on TCP), and nothing extra
    // for a client that asks for neither (asobi's exact reply).
    let (mut ws, _) = s.ws();
    ws.send(json!({"type": "session.connect", "payload": {"token": a.access, "wire": "binary", "datagrams": true}}));
    let c = ws.expect("session.connected", WAIT, |_| true);
    assert_eq!(c["payload"]["wire"], "binary");
    assert_eq!(c["payload"]["datagrams"], false);
    ws.send(json!({"type": "session.connect", "payload": {"token": a.access}}));
    let c = ws.expect("session.connected", WAIT, |_| true);
    assert_eq!(c["payload"], json!({"player_id": a.id, "wire": "json"}));
    ws.send(json!({"type": "session.connect", "payload": {"token": a.access, "wire": 5}}));
    let c = ws.expect("session.connected", WAIT, |_| true);
    assert_eq!(c["payload"]["wire"], "json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut q = QuicClient::connect(s.quic_port(), &cert, ENCODING_JSON).await;
        q.send(json!({"type": "session.connect", "payload": {"token": a.access, "wire": "binary", "datagrams": true}})).await;
        let (c, _) = q.expect("session.connected", |_| true).await;
        assert_eq!(c["payload"]["wire"], "binary");
        assert_eq!(c["payload"]["datagrams"], true);
        // A FlatBuffers session's frames are binary already: its world wire stays "json".
        let mut f = QuicClient::connect(s.quic_port(), &cert, ENCODING_FB).await;
        f.send(json!({"type": "session.connect", "payload": {"token": a.access, "wire": "binary"}})).await;
        let (c, _) = f.expect("session.connected", |_| true).await;
        assert_eq!(c["payload"]["player_id"], a.id.as_str());
    });
}

/// A QUIC session that asked for `wire: "binary"` and `datagrams: true` gets a live world's
/// `world.tick` as unreliable datagrams carrying asobi's binary frame (encoding byte 2): the
/// keyframe that adds the player's own entity, then the updates its moves make, decoded with
/// the server's own codec.
#[test]
fn world_ticks_arrive_as_binary_datagrams_on_quic() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(&game).unwrap();
    std::fs::write(game.join("config.lua"), "return { walk = \"walk.lua\" }\n").unwrap();
    std::fs::write(
        game.join("walk.lua"),
        r#"
game_type          = "world"
match_size         = 1
max_players        = 4
tick_rate          = 50
grid_size          = 4
zone_size          = 100
view_radius        = 0
broadcast_interval = 1
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 50, y = 50 } end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function post_tick(tick, state) return state end
"#,
    )
    .unwrap();
    let s = start(&game, dir.path());
    let a = s.register("qw");
    let cert = s.data_dir.join("dev-cert.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut q = QuicClient::connect(s.quic_port(), &cert, ENCODING_JSON).await;
        q.send(json!({"type": "session.connect", "payload": {"token": a.access, "wire": "binary", "datagrams": true}})).await;
        let (c, _) = q.expect("session.connected", |_| true).await;
        assert_eq!(c["payload"]["datagrams"], true);
        q.send(json!({"type": "world.create", "cid": 1, "payload": {"mode": "walk"}}))
            .await;
        let (joined, _) = q.expect("world.joined", |_| true).await;
        assert_eq!(joined["payload"]["mode"], "walk");
        let (mut added, mut moved_to) = (false, Vec::new());
        // slot → id, from the adds.
        let mut slots = std::collections::HashMap::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut step = 0;
        while !(added && moved_to.len() >= 3) {
            if added && step < 10 {
                step += 1;
                let x = 50 + step * 4;
                q.send(json!({"type": "world.input", "payload": {"x": x, "y": 50}}))
                    .await;
            }
            let d = tokio::time::timeout_at(deadline, q.conn.read_datagram())
                .await
                .expect("world.tick datagrams in time")
                .expect("connection open");
            assert_eq!(d[0], ENCODING_WORLD_TICK, "only world.tick travels as a datagram here");
            let t = world_wire::binary::decode(&d[1..]).expect("asobi's binary world.tick");
            assert_eq!(t.zone, (0, 0));
            for r in &t.records {
                match r.op {
                    world_wire::Op::Add => {
                        slots.insert(r.slot, r.id.clone());
                        added |= r.id == a.id;
                    }
                    world_wire::Op::Update => {
                        assert_eq!(slots.get(&r.slot), Some(&a.id), "{t:?}");
                        for (k, v) in &r.fields {
                            if k == "x" {
                                moved_to.push(v.clone());
                            }
                        }
                    }
                    world_wire::Op::Remove => {}
                }
            }
        }
        // Datagrams may be lost, never invented: every position seen is one the player sent.
        assert!(
            moved_to
                .iter()
                .all(|v| matches!(v, world_wire::Value::Int(x) if (54..=90).contains(x) && x % 4 == 2)),
            "{moved_to:?}"
        );
    });
}
