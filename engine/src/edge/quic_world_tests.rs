//! `world.tick` delivery through the real QUIC edge to a real quinn client over a real UDP
//! socket: binary or JSON as negotiated, as a datagram when the session opted in and the frame
//! fits, on the stream otherwise.

use std::sync::Arc;
use std::time::Duration;

use asobi_net::quic_frame::{self, FrameReader, ENCODING_JSON, ENCODING_WORLD_TICK};
use bytes::BytesMut;
use futures::StreamExt;

use super::{QuicConn, QuicTransport};
use crate::edge::limits::Limits;
use crate::edge::transport::Transport;
use crate::wire::world::{self, Op, Record, Seq, Value, WorldTick};
use crate::wire::WorldWire;

const WAIT: Duration = Duration::from_secs(10);

fn tick(entities: usize) -> WorldTick {
    WorldTick {
        zone: (2, -3),
        seq: Seq::Sequenced(7),
        kf: false,
        tick: 70,
        records: (0..entities)
            .map(|i| Record {
                op: Op::Update,
                id: format!("01a0115f-547e-714f-829f-{i:012}"),
                slot: i as u16,
                gen: 0,
                fields: vec![
                    ("x".into(), Value::Float(i as f64)),
                    ("y".into(), Value::Float(-(i as f64))),
                ],
            })
            .collect(),
    }
}

struct Client {
    conn: quinn::Connection,
    recv: quinn::RecvStream,
    reader: FrameReader,
    _endpoint: quinn::Endpoint,
}

impl Client {
    /// The next thing the server sent: (encoding, body, came as a datagram).
    async fn next(&mut self) -> (u8, Vec<u8>, bool) {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(f) = self.reader.next_frame().unwrap() {
                return (f.encoding, f.body.to_vec(), false);
            }
            tokio::select! {
                d = self.conn.read_datagram() => {
                    let d = d.unwrap();
                    return (d[0], d[1..].to_vec(), true);
                }
                n = self.recv.read(&mut chunk) => {
                    let n = n.unwrap().expect("stream open");
                    self.reader.push(&chunk[..n]);
                }
            }
        }
    }
}

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
    tls.alpn_protocols = vec![super::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

#[test]
fn world_tick_goes_as_datagram_or_stream_in_the_negotiated_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = crate::edge::tls::dev_cert(dir.path()).unwrap();
    let (inbox, mut accepted) = futures::channel::mpsc::channel::<QuicConn>(4);
    let addr = super::start(
        "127.0.0.1:0".parse().unwrap(),
        &cert,
        &key,
        1 << 20,
        vec![inbox],
        Limits::new(1000, 100),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let endpoint = client_endpoint(&cert);
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        // The first frame opens the session (its encoding is the session's: JSON).
        let mut buf = BytesMut::new();
        quic_frame::write_frame(&mut buf, ENCODING_JSON, br#"{"type":"session.heartbeat"}"#);
        send.write_all(&buf).await.unwrap();
        let qc = tokio::time::timeout(WAIT, accepted.next())
            .await
            .unwrap()
            .unwrap();
        let mut t = QuicTransport::new(qc, WAIT);
        assert!(t.datagrams());
        // The session's first frame reached the shard side.
        assert!(matches!(
            t.recv().await,
            super::super::transport::Incoming::Text(_)
        ));
        let mut client = Client {
            conn,
            recv,
            reader: FrameReader::new(1 << 20),
            _endpoint: endpoint,
        };
        let max = client
            .conn
            .max_datagram_size()
            .expect("datagrams negotiated");

        let small = world::tick_frame(&tick(20), true).unwrap();
        let small_bin = small.world_binary().unwrap().clone();
        assert!(small_bin.len() + 1 < max, "{} vs {max}", small_bin.len());
        let large = world::tick_frame(&tick(200), true).unwrap();
        assert!(large.world_binary().unwrap().len() > max);

        let both = WorldWire {
            binary: true,
            datagrams: true,
        };
        // Binary + datagrams, fits: one datagram, encoding byte 2, asobi's bytes.
        assert!(t.feed(&small, both).await);
        let (enc, body, dgram) = client.next().await;
        assert!(dgram);
        assert_eq!(enc, ENCODING_WORLD_TICK);
        assert_eq!(body, small_bin.to_vec());
        assert_eq!(world::binary::decode(&body).unwrap(), {
            let mut t = tick(20);
            t.records.iter_mut().for_each(|r| r.id.clear());
            t
        });
        // Too large for a datagram: the same bytes on the stream.
        assert!(t.feed(&large, both).await);
        let (enc, body, dgram) = client.next().await;
        assert!(!dgram);
        assert_eq!(enc, ENCODING_WORLD_TICK);
        assert_eq!(&body[..], &large.world_binary().unwrap()[..]);
        // JSON + datagrams: the JSON text in a datagram when it fits (the 20-entity JSON text
        // does not, and takes the stream).
        let json_dgram = WorldWire {
            binary: false,
            datagrams: true,
        };
        assert!(small.json_text().len() + 1 > max);
        assert!(t.feed(&small, json_dgram).await);
        let (enc, _, dgram) = client.next().await;
        assert_eq!((enc, dgram), (ENCODING_JSON, false));
        let tiny = world::tick_frame(&tick(4), false).unwrap();
        assert!(tiny.json_text().len() + 1 < max);
        assert!(t.feed(&tiny, json_dgram).await);
        let (enc, body, dgram) = client.next().await;
        assert!(dgram);
        assert_eq!(enc, ENCODING_JSON);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "world.tick");
        assert_eq!(v["payload"]["frame_seq"], 7);
        // No opt-in: binary on the stream; and a non-tick frame never leaves as a datagram.
        let binary_only = WorldWire {
            binary: true,
            datagrams: false,
        };
        assert!(t.feed(&small, binary_only).await);
        let (enc, _, dgram) = client.next().await;
        assert_eq!((enc, dgram), (ENCODING_WORLD_TICK, false));
        let other = crate::wire::Frame::json(bytes::Bytes::from_static(
            br#"{"type":"world.ack","payload":{"seq":1}}"#,
        ))
        .unwrap();
        assert!(t.feed(&other, both).await);
        let (enc, body, dgram) = client.next().await;
        assert_eq!((enc, dgram), (ENCODING_JSON, false));
        assert!(body.starts_with(br#"{"type":"world.ack""#));
    });
}
