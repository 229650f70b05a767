//! The WebSocket (and QUIC) socket loop of one session: reads frames, hands them to the
//! session's protocol state ([`crate::services::session::Session`]), and writes replies and
//! pushes from its outbox. Replies are buffered and the socket is flushed only when no further
//! complete frame is waiting, so a client that pipelines gets its answers in a few large writes
//! instead of one syscall per message. Every write has a deadline (the socket's, set at accept;
//! QUIC's in its transport): a client that stops reading
//! is dropped instead of pinning its buffers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{AsyncWriteExt, FutureExt};

use asobi_net::http::{Head, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::http::Io;
use super::transport::{Incoming, Transport};
use super::wsconn::WsConn;
use super::Edge;
use crate::services::rest::error_response;
use crate::services::session::Session;
use crate::services::Shard;
use crate::shard::outbox::{Next, Outbox};
use crate::wire::{binary, Wire};

/// How many times `ASOBI_WS_MAX_FRAME` the transport reads before it gives up on a socket.
pub(crate) const HARD_LIMIT_FACTOR: usize = 4;

/// The WebSocket handshake on a connection the HTTP loop handed over. `guard` (the connection's
/// count and its slot under the connection cap) lives as long as the socket.
///
/// On success the session runs in a task of its own and this one ends: what only the handshake
/// needs (the request head, the offered subprotocols, the HTTP layer's leftovers, this future's
/// own state) is freed instead of being carried by every open socket.
pub(crate) async fn upgrade<S: Io, G: 'static>(
    shard: Rc<Shard>,
    mut stream: S,
    head: Head,
    leftover: BytesMut,
    peer: SocketAddr,
    edge: Edge,
    guard: G,
) {
    let refusal = if shard.rt.shutting_down.get() {
        Some(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "The server is shutting down.",
        ))
    } else if !edge.limits.allow_connect(peer.ip()) {
        Some(ApiError::new(
            429,
            code::RATE_LIMITED,
            "Too many WebSocket connections from this address.",
        ))
    } else {
        None
    };
    if let Some(e) = refusal {
        let _ = super::http::write_response(&mut stream, &error_response(&e), false, false).await;
        return;
    }
    let up = match asobi_net::ws::accept(&head) {
        Ok(up) => up,
        Err(e) => {
            let r: Response = error_response(&ApiError::new(
                400,
                code::BAD_WEBSOCKET_UPGRADE,
                e.to_string(),
            ));
            let _ = super::http::write_response(&mut stream, &r, false, false).await;
            return;
        }
    };
    // A client that offers the binary subprotocol gets FlatBuffers frames; everyone else JSON.
    let wire = if up.protocols.iter().any(|p| p == binary::SUBPROTOCOL) {
        Wire::Fb
    } else {
        Wire::Json
    };
    let chosen = (wire == Wire::Fb).then_some(binary::SUBPROTOCOL);
    if stream
        .write_all(&asobi_net::ws::switching_protocols(&up, chosen))
        .await
        .is_err()
    {
        return;
    }
    // Keep only the bytes already read, not the HTTP read buffer.
    let part = leftover.to_vec();
    drop(leftover);
    drop(up);
    drop(head);
    drop(edge);
    // Frames up to four times the message limit are read, so a client that sends one too many
    // bytes is told so and keeps its socket (as in asobi); the session refuses those. Past that
    // the socket closes with 1009, which bounds what one socket can buffer.
    let max = shard
        .ctx
        .settings
        .ws_max_frame
        .saturating_mul(HARD_LIMIT_FACTOR);
    let conn = WsConn::new(stream, wire, max, part);
    let session = session(shard.clone(), conn, peer, guard);
    shard.rt.spawn(crate::shard::panic::contained(session));
}

/// Runs one session on a transport until either side closes.
pub(crate) fn run<T: Transport>(
    shard: Rc<Shard>,
    t: T,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    session(shard, t, peer, ())
}

/// The session loop; `guard` is dropped with it.
///
/// A function returning an `async` block, not an `async fn`: an `async fn` moves its arguments
/// into locals and its state keeps both places, so every open socket would hold its transport
/// twice. The block uses what it captured in place.
fn session<T: Transport, G: 'static>(
    shard: Rc<Shard>,
    mut t: T,
    peer: SocketAddr,
    guard: G,
) -> impl Future<Output = ()> {
    // Logged here so that the address is not captured: the loop has no other use for it.
    tracing::trace!(%peer, "session open");
    async move {
        let _guard = &guard;
        let settings = &shard.ctx.settings;
        let outbox = Rc::new(Outbox::new(settings.ws_outbox));
        let me = shard.rt.add_session(outbox.clone());
        let mut s = Session::open(shard.clone(), me, t.wire());
        s.datagrams_possible = t.datagrams();
        // The connect deadline: a socket that never authenticates is closed with 1008. It lives in
        // this loop (not in a task of its own) and is dropped once the session is signed in, so a
        // signed-in idle socket holds no timer.
        let wait = Duration::from_millis(settings.ws_connect_timeout_ms);
        let mut deadline = Some(Box::pin(shard.rt.sleep(wait)));

        'session: loop {
            if deadline.is_some() && s.authed {
                deadline = None;
            }
            let mut ev = {
                let out = outbox.next().fuse();
                let inbound = t.recv().fuse();
                let expiry = async {
                    match deadline.as_mut() {
                        Some(d) => d.await,
                        None => std::future::pending().await,
                    }
                }
                .fuse();
                futures::pin_mut!(out);
                futures::pin_mut!(inbound);
                futures::pin_mut!(expiry);
                futures::select_biased! {
                    o = out => Event::Out(o),
                    m = inbound => Event::In(m),
                    () = expiry => Event::ConnectDeadline,
                }
            };
            s.batch_now_ms = crate::services::accounts::tokens::now_ms();
            // Handle everything that is ready now, then write once. Events are moved whole
            // into `on_event` and messages into `on_message`, never matched apart or borrowed
            // here: a value taken apart or borrowed in this loop would keep its room in the
            // future (which every open socket holds) while a handler waits.
            loop {
                let mut gone = false;
                let message = on_event(&mut s, &mut deadline, &mut gone, ev);
                if gone {
                    break 'session;
                }
                on_message(&mut s, message).await;
                if s.close.is_some() {
                    break;
                }
                // Queued pushes first, then the socket: a fan-out that queued many frames costs
                // one read poll per batch, not one per frame.
                ev = match outbox.try_pop() {
                    Some(n) => Event::Out(n),
                    None => match t.recv().now_or_never() {
                        Some(i) => Event::In(i),
                        None => break,
                    },
                };
            }
            while let Some(n) = (s.close.is_none()).then(|| outbox.try_pop()).flatten() {
                match n {
                    Next::Item(item) => s.on_outbound(item),
                    Next::Overflowed => {
                        crate::services::ops::metrics::bump(
                            &shard.ops.metrics.slow_consumer_closes,
                        );
                        s.on_overflow()
                    }
                }
            }
            if !write_all(&mut t, &mut s).await {
                break;
            }
            if let Some((code, reason)) = s.close.take() {
                t.close(code, reason).await;
                break;
            }
        }
        s.cleanup();
    }
}

/// What woke the session loop.
enum Event {
    In(Incoming),
    Out(Next<crate::services::Event>),
    ConnectDeadline,
}

/// A message for a handler, the one kind of event that may make the session wait.
enum Message {
    Text(tungstenite::Utf8Bytes),
    Binary(bytes::Bytes),
}

/// Handles an event that needs no waiting; a message comes back for [`on_message`]. `gone`:
/// the connection is gone.
fn on_event(
    s: &mut Session,
    deadline: &mut Option<Pin<Box<impl Future<Output = ()>>>>,
    gone: &mut bool,
    ev: Event,
) -> Option<Message> {
    let metrics = &s.shard.ops.metrics;
    match ev {
        Event::In(Incoming::Gone) => *gone = true,
        Event::In(Incoming::Text(text)) => {
            metrics.message_in(text.len());
            return Some(Message::Text(text));
        }
        Event::In(Incoming::Binary(bytes)) => {
            metrics.message_in(bytes.len());
            return Some(Message::Binary(bytes));
        }
        Event::In(Incoming::TooLarge) => s.on_too_large(),
        Event::In(Incoming::BadText) => s.close = Some((1007, "invalid_utf8".into())),
        Event::In(Incoming::Close) => s.close = Some((1000, String::new())),
        Event::In(Incoming::Nothing) => {}
        Event::Out(Next::Overflowed) => {
            crate::services::ops::metrics::bump(&metrics.slow_consumer_closes);
            s.on_overflow()
        }
        Event::Out(Next::Item(item)) => s.on_outbound(item),
        Event::ConnectDeadline => {
            *deadline = None;
            if !s.authed {
                s.close = Some((1008, "idle_auth_timeout".into()));
            }
        }
    }
    None
}

/// Hands a message to the session: the envelope checks run without waiting, and only the
/// handler's own wait (a reply from another shard) suspends. A block, not an `async fn`, so
/// that the message is held once.
#[allow(clippy::manual_async_fn)]
fn on_message(s: &mut Session, message: Option<Message>) -> impl Future<Output = ()> + '_ {
    async move {
        match &message {
            None => {}
            Some(Message::Text(text)) => {
                if let Some(frame) = s.text_frame(text.as_str()) {
                    s.on_frame(&frame).await;
                }
            }
            Some(Message::Binary(bytes)) => {
                if let Some(decoded) = s.binary_frame(bytes) {
                    s.on_frame(&decoded.inbound()).await;
                }
            }
        }
    }
}

/// Writes the session's pending frames and flushes; false when the connection is broken or the
/// client stopped reading (the transport's write deadline ended the write).
async fn write_all<T: Transport>(t: &mut T, s: &mut Session) -> bool {
    let shard = s.shard.clone();
    let world = s.world_wire;
    for frame in s.replies() {
        shard.ops.metrics.message_out(frame.json_text().len());
        if !t.feed(&frame, world).await {
            return false;
        }
    }
    t.flush().await
}
