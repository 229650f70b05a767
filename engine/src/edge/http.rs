//! One TCP connection: HTTP/1.1 requests with keep-alive until it upgrades to a WebSocket or
//! closes. Framing is `asobi_net::http`; this loop only moves bytes, enforces the timeouts and
//! hands each request to the REST router.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt};

use asobi_net::http::{self, BodyKind, ChunkedBody, Head, HttpError, Limits, Response};
use asobi_schema::ApiError;

use super::limits::Open;
use super::pool;
use super::Edge;
use crate::services::rest::error_response as rest_error;
use crate::services::Shard;
use crate::shard::registry::bump;

/// How long an idle keep-alive connection stays open between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send a whole request head or body once it started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream a connection runs on: plain TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Io for T {}

/// Counts a connection in the shard's stats, and holds its slot under the process-wide cap,
/// while alive (a WebSocket session takes it over from the HTTP loop).
struct Counted {
    shard: Rc<Shard>,
    _open: Open,
}

impl Counted {
    fn new(shard: &Rc<Shard>, open: Open) -> Counted {
        bump(&shard.ctx.stats(shard.id()).connections, 1);
        Counted {
            shard: shard.clone(),
            _open: open,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        bump(&self.shard.ctx.stats(self.shard.id()).connections, -1);
    }
}

pub(crate) async fn serve<S: Io>(
    shard: Rc<Shard>,
    mut stream: S,
    peer: SocketAddr,
    edge: Edge,
    open: Open,
) {
    let counted = Counted::new(&shard, open);
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    loop {
        let head = match read_head(&mut stream, &mut buf, &limits).await {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                let _ = write_error(&mut stream, e).await;
                break;
            }
        };
        let _ = buf.split_to(head.len);
        if asobi_net::ws::is_upgrade(&head) {
            if head.path == "/ws" {
                // The WebSocket gets a task of its own: the HTTP state machine is freed instead
                // of being carried (and polled through) for the socket's whole life.
                let rt_shard = shard.clone();
                rt_shard
                    .rt
                    .spawn(crate::shard::panic::contained(super::ws::upgrade(
                        shard, stream, head, buf, peer, edge, counted,
                    )));
            } else {
                let e = ApiError::new(
                    404,
                    asobi_schema::error::code::NOT_FOUND,
                    "WebSocket upgrades are served at /ws.",
                );
                let _ = write_response(&mut stream, &rest_error(&e), false, false).await;
            }
            return;
        }
        let body = match read_body(&mut stream, &mut buf, &head, &limits).await {
            Ok(b) => b,
            Err(e) => {
                let _ = write_error(&mut stream, e).await;
                break;
            }
        };
        let rt = &shard.rt;
        rt.inflight.set(rt.inflight.get() + 1);
        // Boxed: the router's future is the largest thing a connection awaits, and held inline
        // it would size every connection's state (a WebSocket's handshake too) by it.
        let response = Box::pin(crate::services::rest::handle(
            &shard,
            &head,
            body,
            peer.ip(),
        ))
        .await;
        rt.inflight.set(rt.inflight.get() - 1);
        let keep_alive = head.keep_alive && !rt.shutting_down.get();
        let head_only = head.method == http::Method::Head;
        if write_response(&mut stream, &response, keep_alive, head_only)
            .await
            .is_err()
            || !keep_alive
        {
            break;
        }
    }
    let _ = stream.close().await;
}

enum ReadError {
    Http(HttpError),
    Timeout,
    Io,
}

impl From<HttpError> for ReadError {
    fn from(e: HttpError) -> ReadError {
        ReadError::Http(e)
    }
}

async fn write_error<S: Io>(stream: &mut S, e: ReadError) -> std::io::Result<()> {
    let err = match e {
        ReadError::Http(h) => {
            let message = match h {
                HttpError::BodyTooLarge => "The request body exceeds 1 MiB.".to_owned(),
                ref other => other.to_string(),
            };
            ApiError::new(h.status(), h.code(), message)
        }
        ReadError::Timeout => ApiError::new(
            408,
            asobi_schema::error::code::REQUEST_TIMEOUT,
            "The request took too long to arrive.",
        ),
        ReadError::Io => return Ok(()),
    };
    write_response(stream, &rest_error(&err), false, false).await
}

/// Writes a response. The socket's write deadline (`ASOBI_WRITE_TIMEOUT_MS`, set at accept) ends
/// a write that cannot progress: a client that asks and stops reading is dropped.
pub(crate) async fn write_response<S: Io>(
    stream: &mut S,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 + response.body.len());
    response.write_to(&mut out, keep_alive, head_only);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Reads more bytes into `buf`, bounded by `limit`. `Ok(false)` at end of stream.
///
/// The read goes into a buffer borrowed from the shard's pool for that one attempt and only the
/// bytes that arrived are copied into `buf`: a connection waiting for its request (a burst of
/// new sockets, a keep-alive connection between requests) holds no read buffer, and a small
/// request costs a small `buf`. A stack array here would instead live in every connection's
/// future for the connection's whole life.
async fn fill<S: Io>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: Duration,
) -> Result<bool, ReadError> {
    let result = {
        let read = poll_fn(|cx| {
            let mut chunk = pool::take_read();
            let r = Pin::new(&mut *stream).poll_read(cx, &mut chunk);
            if let Poll::Ready(Ok(n)) = r {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            pool::give_read(chunk);
            r
        })
        .fuse();
        let timer = glommio::timer::sleep(limit).fuse();
        futures::pin_mut!(read, timer);
        futures::select_biased! {
            r = read => r.map_err(|_| ReadError::Io),
            () = timer => Err(ReadError::Timeout),
        }
    };
    result.map(|n| n > 0)
}

async fn read_head<S: Io>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Head>, ReadError> {
    let started = std::time::Instant::now();
    loop {
        if !buf.is_empty() {
            if let Some(head) = http::parse_head(buf, limits)? {
                return Ok(Some(head));
            }
        }
        // An idle connection (no bytes of a next request yet) gets the idle timeout; a request
        // that started arriving must complete within the request timeout.
        let limit = if buf.is_empty() {
            IDLE_TIMEOUT
        } else {
            REQUEST_TIMEOUT.saturating_sub(started.elapsed())
        };
        match fill(stream, buf, limit).await {
            Ok(true) => {}
            Ok(false) => {
                return if buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Http(HttpError::Malformed(
                        "connection closed mid-request",
                    )))
                };
            }
            Err(ReadError::Timeout) if buf.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

async fn read_body<S: Io>(
    stream: &mut S,
    buf: &mut BytesMut,
    head: &Head,
    limits: &Limits,
) -> Result<Bytes, ReadError> {
    let started = std::time::Instant::now();
    match head.body {
        BodyKind::Empty => Ok(Bytes::new()),
        BodyKind::Length(n) => {
            while buf.len() < n {
                let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
                if !fill(stream, buf, left).await? {
                    return Err(ReadError::Io);
                }
            }
            Ok(buf.split_to(n).freeze())
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedBody::default();
            loop {
                let used = decoder.feed(buf, limits)?;
                let _ = buf.split_to(used);
                if let Some(body) = decoder.finish() {
                    return Ok(body);
                }
                let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
                if !fill(stream, buf, left).await? {
                    return Err(ReadError::Io);
                }
            }
        }
    }
}
