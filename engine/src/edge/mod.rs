//! The edge: bytes in, requests and frames to the services, bytes out. It owns the listeners,
//! the HTTP/1.1 keep-alive loop ([`http`]), the WebSocket and QUIC socket loops ([`ws`],
//! [`wsconn`], [`quic`]) with the shard's socket buffers ([`pool`]), TLS ([`tls`]) and the limits that protect a shard before any service sees a
//! request ([`limits`]). It holds no game rules.

pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod pool;
pub(crate) mod quic;
#[cfg(test)]
mod size_tests;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod ws;
pub(crate) mod wsconn;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;

use crate::services::Shard;

/// What the accept loop of one shard needs besides the shard.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) tls: Option<futures_rustls::TlsAcceptor>,
    pub(crate) limits: Arc<limits::Limits>,
}

/// Accepts connections until the listener is dropped (the returned future is cancelled).
pub(crate) async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, edge: Edge) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let Some(open) = edge.limits.open() else {
                    // Over the process-wide connection cap: closing at once is the cheapest
                    // answer and leaves room for the connections already served.
                    drop(stream);
                    continue;
                };
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let _ = stream.set_nodelay(true);
                // The write deadline: a write that cannot progress for this long fails, so a
                // client that stops reading is dropped instead of pinning its buffers. glommio
                // arms the timer only while a write is blocked, so the fast path pays nothing.
                let deadline = shard.ctx.settings.write_timeout_ms;
                if deadline > 0 {
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(deadline)));
                }
                let task_shard = shard.clone();
                let edge = edge.clone();
                shard.rt.spawn(crate::shard::panic::contained(async move {
                    match edge.tls.clone() {
                        None => http::serve(task_shard, stream, peer, edge, open).await,
                        Some(acceptor) => {
                            if let Some(tls) = tls::accept(&acceptor, stream).await {
                                http::serve(task_shard, tls, peer, edge, open).await;
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(shard = shard.id(), "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
