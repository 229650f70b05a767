//! QUIC transport (ALPN `asobi/1`): one bidirectional stream per connection carries
//! length-prefixed frames (`asobi_net::quic_frame`) of either encoding, and `match.state` of modes
//! that mark it droppable may travel as an unreliable datagram.
//!
//! Where it runs: quinn's runtime abstraction needs `Send` timers, which a glommio executor does
//! not provide, so the endpoint runs on its own tokio thread. Each accepted connection is handed to
//! a shard (round robin) as a pair of bounded channels; the shard runs the ordinary session loop
//! over them ([`QuicTransport`]), so sessions over QUIC are the same sessions: same auth,
//! matchmaking, matches and reconnection. The cost is one cross-thread hop per batch of frames in
//! each direction; `bench-results/` has the measured comparison with WebSocket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};

use asobi_net::quic_frame::{self, FrameReader, ENCODING_FB, ENCODING_JSON, ENCODING_WORLD_TICK};

use super::limits::Limits;
use super::transport::{Incoming, Transport};
use crate::wire::{Frame, Wire, WorldWire};

/// ALPN of the asobi QUIC protocol.
pub(crate) const ALPN: &[u8] = b"asobi/1";
/// Frames read from a client and not yet taken by its session. Sessions read as fast as they can,
/// so this only absorbs a burst; a client that keeps it full is simply not read from (QUIC flow
/// control then slows it down).
const INBOUND_QUEUE: usize = 256;
/// Frames a session may queue for the network writer; the session's own outbox bounds what a slow
/// client can cost, this only decouples the two threads.
const OUTBOUND_QUEUE: usize = 1024;
/// How long a new connection has to open its stream and send its first frame (the same bound a
/// WebSocket gets for its HTTP upgrade).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// New QUIC sessions queued for one shard. The QUIC thread accepts on behalf of every shard; if a
/// shard cannot take its share this fast it is overloaded, and the connection is refused rather
/// than piling up handshakes it will never serve.
pub(crate) const SHARD_INBOX: usize = 256;

enum QuicIn {
    Frame(u8, Bytes),
    TooLarge,
}

enum QuicOut {
    Frame {
        encoding: u8,
        body: Bytes,
        droppable: bool,
    },
    Close {
        code: u16,
        reason: String,
    },
}

/// A QUIC session handed to a shard.
pub(crate) struct QuicConn {
    rx: mpsc::Receiver<QuicIn>,
    tx: mpsc::Sender<QuicOut>,
    pub(crate) peer: SocketAddr,
    wire: Wire,
}

/// Where accepted connections go: one sender per shard.
pub(crate) type ShardInboxes = Vec<mpsc::Sender<QuicConn>>;

/// Starts the QUIC endpoint thread. The rustls config must carry the certificate; ALPN and
/// TLS 1.3 are set here.
pub(crate) fn start(
    addr: SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
    max_frame: usize,
    shards: ShardInboxes,
    limits: Arc<Limits>,
) -> anyhow::Result<SocketAddr> {
    let crypto = super::tls::quic_server_config(cert, key, ALPN)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(crypto).context("QUIC needs TLS 1.3")?,
    ));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        Duration::from_secs(60).try_into().context("idle timeout")?,
    ));
    transport.keep_alive_interval(None);
    server.transport_config(Arc::new(transport));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("asobi-quic".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("QUIC runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let endpoint = match bind(addr).and_then(|socket| {
                    let runtime = quinn::default_runtime()
                        .ok_or_else(|| std::io::Error::other("no async runtime"))?;
                    quinn::Endpoint::new(
                        quinn::EndpointConfig::default(),
                        Some(server),
                        socket,
                        runtime,
                    )
                }) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("binding QUIC on {addr}: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(endpoint.local_addr().map_err(Into::into));
                let shards = Arc::new(std::sync::Mutex::new(shards));
                let next = Arc::new(AtomicUsize::new(0));
                while let Some(incoming) = endpoint.accept().await {
                    // The same per-IP connect rate and process-wide cap as WebSocket.
                    if !limits.allow_connect(incoming.remote_address().ip()) {
                        incoming.refuse();
                        continue;
                    }
                    let Some(open) = limits.open() else {
                        incoming.refuse();
                        continue;
                    };
                    let (shards, next) = (shards.clone(), next.clone());
                    tokio::spawn(async move {
                        let _open = open;
                        if let Err(e) = serve(incoming, shards, next, max_frame).await {
                            tracing::debug!("QUIC connection ended: {e}");
                        }
                    });
                }
            });
        })?;
    ready_rx.recv().context("QUIC thread exited")?
}

/// Kernel buffer of the endpoint's UDP socket. Every QUIC connection shares this one socket, and
/// the kernel default (~208 KiB) overflows under thousands of busy connections: dropped
/// datagrams then cost retransmission timeouts that back off to seconds. The kernel caps the
/// request at `net.core.rmem_max` / `wmem_max`.
const UDP_BUFFER: usize = 8 << 20;

fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER) {
        tracing::warn!("QUIC: could not enlarge the UDP receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER) {
        tracing::warn!("QUIC: could not enlarge the UDP send buffer: {e}");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

async fn serve(
    incoming: quinn::Incoming,
    shards: Arc<std::sync::Mutex<ShardInboxes>>,
    next: Arc<AtomicUsize>,
    max_frame: usize,
) -> anyhow::Result<()> {
    let opened = tokio::time::Instant::now() + OPEN_TIMEOUT;
    let conn = tokio::time::timeout_at(opened, incoming)
        .await
        .context("handshake too slow")??;
    let peer = conn.remote_address();
    let (mut send, mut recv) = tokio::time::timeout_at(opened, conn.accept_bi())
        .await
        .context("no stream opened")??;
    // The first frame decides the session's encoding; it must arrive within the open deadline.
    let mut reader = FrameReader::new(max_frame);
    let mut chunk = vec![0u8; 16 * 1024];
    let first = tokio::time::timeout_at(opened, async {
        loop {
            if let Some(f) = reader.next_frame()? {
                return anyhow::Ok(Some(f));
            }
            match recv.read(&mut chunk).await? {
                Some(n) => reader.push(&chunk[..n]),
                None => return Ok(None),
            }
        }
    })
    .await
    .context("no first frame")??;
    let Some(first) = first else {
        return Ok(());
    };
    let wire = if first.encoding == ENCODING_FB {
        Wire::Fb
    } else {
        Wire::Json
    };
    let (mut in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<QuicOut>(OUTBOUND_QUEUE);
    let session = QuicConn {
        rx: in_rx,
        tx: out_tx,
        peer,
        wire,
    };
    let handed = {
        let mut shards = shards.lock().unwrap_or_else(|e| e.into_inner());
        let shard = next.fetch_add(1, Ordering::Relaxed) % shards.len().max(1);
        shards
            .get_mut(shard)
            .map(|inbox| inbox.try_send(session).is_ok())
            .unwrap_or(false)
    };
    if !handed {
        conn.close(quinn::VarInt::from_u32(1013), b"overloaded");
        return Ok(());
    }
    in_tx
        .send(QuicIn::Frame(first.encoding, first.body))
        .await?;

    let reader_task = async move {
        loop {
            loop {
                match reader.next_frame() {
                    Ok(Some(f)) => {
                        if in_tx.send(QuicIn::Frame(f.encoding, f.body)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let _ = in_tx.send(QuicIn::TooLarge).await;
                        return;
                    }
                }
            }
            match recv.read(&mut chunk).await {
                Ok(Some(n)) => reader.push(&chunk[..n]),
                _ => return,
            }
        }
    };
    let conn_w = conn.clone();
    let writer_task = async move {
        let mut buf = BytesMut::new();
        while let Some(first) = out_rx.next().await {
            let mut item = Some(first);
            // Batch everything already queued into one write.
            while let Some(out) = item.take() {
                match out {
                    QuicOut::Frame {
                        encoding,
                        body,
                        droppable,
                    } => {
                        // A datagram is the encoding byte and the body; one that does not fit
                        // the path's datagram size goes on the stream instead.
                        let sent_as_datagram = droppable
                            && conn_w
                                .max_datagram_size()
                                .is_some_and(|max| body.len() < max)
                            && conn_w
                                .send_datagram(quic_frame::datagram(encoding, &body))
                                .is_ok();
                        if !sent_as_datagram {
                            quic_frame::write_frame(&mut buf, encoding, &body);
                        }
                    }
                    QuicOut::Close { code, reason } => {
                        if !buf.is_empty() {
                            let _ = send.write_all(&buf).await;
                        }
                        let _ = send.finish();
                        conn_w.close(quinn::VarInt::from_u32(u32::from(code)), reason.as_bytes());
                        return;
                    }
                }
                item = out_rx.try_recv().ok();
            }
            if !buf.is_empty() {
                if send.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
            }
        }
        let _ = send.finish();
    };
    tokio::join!(reader_task, writer_task);
    Ok(())
}

/// The shard side of a QUIC session.
pub(crate) struct QuicTransport {
    conn: QuicConn,
    /// How long a full outbound queue may stay full before the client counts as not reading.
    write_timeout: Duration,
}

impl QuicTransport {
    pub(crate) fn new(conn: QuicConn, write_timeout: Duration) -> QuicTransport {
        QuicTransport {
            conn,
            write_timeout,
        }
    }
}

impl Transport for QuicTransport {
    fn wire(&self) -> Wire {
        self.conn.wire
    }

    fn datagrams(&self) -> bool {
        true
    }

    async fn recv(&mut self) -> Incoming {
        match self.conn.rx.next().await {
            Some(QuicIn::Frame(ENCODING_JSON, body)) => {
                match tungstenite::Utf8Bytes::try_from(body) {
                    Ok(t) => Incoming::Text(t),
                    Err(_) => Incoming::Binary(Bytes::new()),
                }
            }
            Some(QuicIn::Frame(_, body)) => Incoming::Binary(body),
            Some(QuicIn::TooLarge) => Incoming::TooLarge,
            None => Incoming::Gone,
        }
    }

    async fn feed(&mut self, frame: &Frame, world: WorldWire) -> bool {
        let (encoding, body) = match self.conn.wire {
            Wire::Json => match frame.world_binary().filter(|_| world.binary) {
                Some(b) => (ENCODING_WORLD_TICK, b.clone()),
                None => (ENCODING_JSON, Bytes::from(frame.json_text().clone())),
            },
            Wire::Fb => match frame.fb() {
                Some(b) => (ENCODING_FB, b.clone()),
                None => return true,
            },
        };
        let out = QuicOut::Frame {
            encoding,
            body,
            droppable: frame.datagram_eligible(world),
        };
        // The network thread drains this queue as the peer's flow control allows; a full queue
        // that stays full for the write deadline means the client stopped reading.
        match self.conn.tx.try_send(out) {
            Ok(()) => true,
            Err(e) if e.is_full() => {
                let out = e.into_inner();
                let send = self.conn.tx.send(out).fuse();
                let timer = glommio::timer::sleep(self.write_timeout).fuse();
                futures::pin_mut!(send, timer);
                futures::select_biased! {
                    sent = send => sent.is_ok(),
                    () = timer => false,
                }
            }
            Err(_) => false,
        }
    }

    async fn flush(&mut self) -> bool {
        // The network thread writes as soon as frames arrive, batching what is queued.
        true
    }

    async fn close(&mut self, code: u16, reason: String) {
        let _ = self.conn.tx.send(QuicOut::Close { code, reason }).await;
    }
}

#[cfg(test)]
#[path = "quic_world_tests.rs"]
mod world_tests;
