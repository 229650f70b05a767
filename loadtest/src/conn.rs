//! One client connection over either of the server's transports (WebSocket or QUIC) in
//! either wire encoding (JSON or `asobi.fb.1` FlatBuffers), behind the interface the scenarios
//! already use with [`WsConn`]: queue JSON frames, pump, close. Scenarios keep building and
//! scanning JSON; with FlatBuffers this module transcodes at the edge, so both wires carry the
//! same messages and only the encoding on the wire differs.
//!
//! Wire bytes are counted per worker thread (see [`take_wire_bytes`]): for WebSocket the whole
//! frame (header, mask, payload, control frames included), for QUIC the stream frame (4-byte
//! length, encoding byte, body). Transport headers below that (TCP/IP; QUIC packet headers,
//! AEAD tags, UDP/IP) are not counted.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use asobi_net::quic_frame::{self, FrameReader, ENCODING_FB, ENCODING_JSON, HEADER_LEN};
use bytes::{Buf as _, BytesMut};
use tokio::time::Instant;

use crate::proto;
use crate::ws::{Endpoint, WsConn, WsError};

/// ALPN the server's QUIC listener speaks.
pub const ALPN: &[u8] = b"asobi/1";
/// Largest frame body accepted from the server over QUIC.
const MAX_BODY: usize = 16 << 20;
/// Bytes asked of a QUIC stream per read.
const READ_CHUNK: usize = 64 << 10;
/// UDP socket buffers for a worker's endpoint: thousands of connections share one socket.
const UDP_BUFFER: usize = 8 << 20;

/// How messages are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// JSON text frames (asobi's protocol).
    Json,
    /// FlatBuffers binary frames (`asobi.fb.1`).
    Fb,
    /// JSON text frames, but `world.tick` in asobi's binary encoding (the session asks for
    /// `"wire": "binary"` at `session.connect`); other frames are JSON as with `json`.
    Binary,
}

/// Which transport carries the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket over TCP.
    Ws,
    /// One bidirectional QUIC stream (ALPN `asobi/1`).
    Quic,
}

impl Wire {
    /// Name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Json => "json",
            Wire::Fb => "fb",
            Wire::Binary => "binary",
        }
    }
}

impl Transport {
    /// Name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Quic => "quic",
        }
    }
}

thread_local! {
    /// (bytes written, bytes read) on this worker thread since the last [`take_wire_bytes`].
    static WIRE_BYTES: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// This worker thread's QUIC endpoint: one UDP socket for all its connections.
    static QUIC_ENDPOINT: RefCell<Option<quinn::Endpoint>> = const { RefCell::new(None) };
}

/// Adds to this thread's wire byte counts.
pub(crate) fn count_wire(out: usize, inn: usize) {
    WIRE_BYTES.with(|c| {
        let (o, i) = c.get();
        c.set((o + out as u64, i + inn as u64));
    });
}

/// Takes (bytes written, bytes read) counted on this thread since the last call.
pub fn take_wire_bytes() -> (u64, u64) {
    WIRE_BYTES.with(|c| c.replace((0, 0)))
}

/// Where and how to reach the server's QUIC listener.
#[derive(Clone)]
pub struct QuicPlan {
    /// UDP address.
    pub addr: SocketAddr,
    /// TLS server name (the dev certificate is for `localhost`).
    pub server_name: String,
    config: quinn::ClientConfig,
}

impl QuicPlan {
    /// A plan trusting the PEM certificates in `ca_pem` (the server's dev certificate).
    pub fn new(addr: SocketAddr, server_name: &str, ca_pem: &Path) -> anyhow::Result<QuicPlan> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_file_iter(ca_pem)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca_pem.display()))?
        {
            roots.add(c.map_err(|e| anyhow::anyhow!("{}: {e}", ca_pem.display()))?)?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        // State datagrams are not read by the scenarios; bound what a connection may buffer.
        transport.datagram_receive_buffer_size(Some(64 << 10));
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        Ok(QuicPlan {
            addr,
            server_name: server_name.to_string(),
            config,
        })
    }
}

/// This thread's QUIC endpoint, created on first use (inside the worker's runtime).
fn endpoint(server: SocketAddr) -> io::Result<quinn::Endpoint> {
    QUIC_ENDPOINT.with(|e| {
        if let Some(ep) = e.borrow().as_ref() {
            return Ok(ep.clone());
        }
        let local = if server.is_ipv4() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)
        };
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(local),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        // Best effort: capped by net.core.{r,w}mem_max without privileges.
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        sock.bind(&local.into())?;
        let ep = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            sock.into(),
            Arc::new(quinn::TokioRuntime),
        )?;
        *e.borrow_mut() = Some(ep.clone());
        Ok(ep)
    })
}

fn quic_err(e: impl std::fmt::Display) -> WsError {
    WsError::Quic(e.to_string())
}

/// A connection over one QUIC bidirectional stream.
struct QuicConn {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    reader: FrameReader,
    out: BytesMut,
}

impl QuicConn {
    async fn connect(plan: &QuicPlan) -> Result<QuicConn, WsError> {
        let ep = endpoint(plan.addr)?;
        let conn = ep
            .connect_with(plan.config.clone(), plan.addr, &plan.server_name)
            .map_err(quic_err)?
            .await
            .map_err(quic_err)?;
        let (send, recv) = conn.open_bi().await.map_err(quic_err)?;
        Ok(QuicConn {
            conn,
            send,
            recv,
            reader: FrameReader::new(MAX_BODY),
            out: BytesMut::new(),
        })
    }

    fn queue(&mut self, encoding: u8, body: &[u8]) {
        count_wire(HEADER_LEN + body.len(), 0);
        quic_frame::write_frame(&mut self.out, encoding, body);
    }

    /// Like [`WsConn::pump`]: writes what the stream takes, waits for data or the deadline,
    /// hands each complete frame (encoding, body) to `on_frame`.
    async fn pump<F: FnMut(u8, &[u8])>(
        &mut self,
        deadline: Option<Instant>,
        mut on_frame: F,
    ) -> Result<bool, WsError> {
        loop {
            let QuicConn {
                send,
                recv,
                reader,
                out,
                ..
            } = self;
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = recv.read_chunk(READ_CHUNK, true) => match r {
                    Ok(Some(chunk)) => reader.push(&chunk.bytes),
                    Ok(None) => return Err(WsError::Closed(None)),
                    Err(quinn::ReadError::ConnectionLost(e)) => return Err(quic_err(e)),
                    Err(e) => return Err(quic_err(e)),
                },
                r = send.write(out), if !out.is_empty() => {
                    let n = r.map_err(quic_err)?;
                    out.advance(n);
                    continue;
                },
                () = sleep => return Ok(false),
            }
            while let Some(f) = self
                .reader
                .next_frame()
                .map_err(|_| WsError::Protocol("bad QUIC frame"))?
            {
                count_wire(0, HEADER_LEN + f.body.len());
                on_frame(f.encoding, &f.body);
            }
            return Ok(true);
        }
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.write_all(&self.out)).await;
        let _ = self.send.finish();
        self.conn.close(0u32.into(), b"done");
    }
}

enum Io {
    Ws(WsConn),
    Quic(QuicConn),
}

/// A client connection on the chosen transport and wire.
pub struct Conn {
    io: Io,
    wire: Wire,
}

impl Conn {
    /// Opens a connection: WebSocket to `ep` (from `src` when given, offering `asobi.fb.1`
    /// for [`Wire::Fb`]), or QUIC when `quic` is given.
    pub async fn connect(
        ep: &Endpoint,
        quic: Option<&QuicPlan>,
        wire: Wire,
        src: Option<IpAddr>,
        seed: u64,
    ) -> Result<Conn, WsError> {
        let io = match quic {
            Some(plan) => Io::Quic(QuicConn::connect(plan).await?),
            None => {
                let proto = (wire == Wire::Fb).then_some(asobi_schema::fb::SUBPROTOCOL);
                Io::Ws(WsConn::connect(ep, src, seed, proto).await?)
            }
        };
        Ok(Conn { io, wire })
    }

    /// The wire this connection speaks.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Bytes queued but not yet taken by the transport.
    pub fn pending_write(&self) -> usize {
        match &self.io {
            Io::Ws(c) => c.pending_write(),
            Io::Quic(c) => c.out.len(),
        }
    }

    /// Queues one client frame given as asobi JSON (`{"type","cid","payload"}`); with
    /// FlatBuffers it is re-encoded first. Nothing is written until the next pump.
    pub fn queue_text(&mut self, json: &[u8]) {
        match (self.wire, &mut self.io) {
            (Wire::Json | Wire::Binary, Io::Ws(c)) => c.queue_text(json),
            (Wire::Json | Wire::Binary, Io::Quic(c)) => c.queue(ENCODING_JSON, json),
            (Wire::Fb, io) => {
                // The tool builds its own frames, so they always scan; a frame that did not
                // would be a bug here, and is dropped (and shows up as lost) rather than sent.
                let Some(fb) = to_fb(json) else { return };
                match io {
                    Io::Ws(c) => c.queue_binary(&fb),
                    Io::Quic(c) => c.queue(ENCODING_FB, &fb),
                }
            }
        }
    }

    /// Writes what it can, waits for data or `deadline`, and hands every complete message to
    /// `on_message` as asobi JSON. `Ok(true)` when something was read.
    pub async fn pump<F: FnMut(&[u8])>(
        &mut self,
        deadline: Option<Instant>,
        mut on_message: F,
    ) -> Result<bool, WsError> {
        match (self.wire, &mut self.io) {
            // A binary world.tick is handed over as its raw bytes (they do not start with `{`).
            (Wire::Json | Wire::Binary, Io::Ws(c)) => c.pump(deadline, on_message).await,
            (Wire::Fb, Io::Ws(c)) => {
                c.pump(deadline, |m| {
                    if let Some(j) = from_fb(m) {
                        on_message(j.as_bytes());
                    }
                })
                .await
            }
            (_, Io::Quic(c)) => {
                c.pump(deadline, |enc, body| {
                    if enc == ENCODING_FB {
                        if let Some(j) = from_fb(body) {
                            on_message(j.as_bytes());
                        }
                    } else {
                        on_message(body);
                    }
                })
                .await
            }
        }
    }

    /// Closes the connection, best effort.
    pub async fn close(self) {
        match self.io {
            Io::Ws(c) => c.close().await,
            Io::Quic(c) => c.close().await,
        }
    }
}

/// A JSON client frame as `asobi.fb.1`.
fn to_fb(json: &[u8]) -> Option<bytes::Bytes> {
    let env = proto::scan(json)?;
    let kind = std::str::from_utf8(env.ty?).ok()?;
    let cid = match env.cid {
        Some(c) => Some(format!("\"{}\"", std::str::from_utf8(c).ok()?)),
        None => None,
    };
    let payload = match env.payload {
        Some(p) => std::str::from_utf8(p).ok()?,
        None => "{}",
    };
    Some(asobi_schema::fb::encode_inbound(
        kind,
        cid.as_deref(),
        payload,
    ))
}

/// A server `asobi.fb.1` frame as asobi JSON; `None` when it does not decode.
fn from_fb(body: &[u8]) -> Option<String> {
    asobi_schema::fb::decode_frame(body)
        .ok()
        .map(|f| f.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fb_round_trip_keeps_type_cid_and_payload() {
        let mut buf = Vec::new();
        proto::heartbeat(&mut buf, 42);
        let fb = to_fb(&buf).expect("heartbeat scans");
        let back = asobi_schema::fb::decode_inbound(&fb).expect("decodes");
        let env = proto::scan(&buf).expect("scans");
        assert_eq!(back.kind.as_bytes(), env.ty.expect("type"));
        assert_eq!(back.cid.as_deref(), Some("\"42\""));
        let reply =
            asobi_schema::fb::encode_frame("session.heartbeat", Some("\"42\""), br#"{"ts":1}"#);
        let json = from_fb(&reply).expect("decodes");
        let env = proto::scan(json.as_bytes()).expect("scans");
        assert!(env.is("session.heartbeat"));
        assert_eq!(env.cid_u64(), Some(42));
        assert!(from_fb(b"not flatbuffers").is_none());
    }

    #[test]
    fn wire_bytes_are_taken_once() {
        let _ = take_wire_bytes();
        count_wire(10, 3);
        count_wire(5, 0);
        assert_eq!(take_wire_bytes(), (15, 3));
        assert_eq!(take_wire_bytes(), (0, 0));
    }
}
