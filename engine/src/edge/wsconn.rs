//! A server WebSocket over TCP or TLS that owns no buffers while it is quiet.
//!
//! Reads go into a buffer borrowed from the shard's [`pool`](super::pool); frames are decoded
//! from it by [`asobi_net::ws_frame`] and each message is copied out (unmasked in the same pass)
//! as it completes. When the socket has nothing more to read the buffer goes back to the pool;
//! the few bytes of a frame cut off by the end of a read are kept in a small owned vector until
//! the rest arrives. Writes are gathered into a borrowed buffer and written when the session
//! flushes at the end of its batch, then the buffer goes back too. So an idle socket holds
//! neither, and a shard's buffer memory follows the sockets active at one instant.
//!
//! The read path is cancellation-safe: all progress lives in the struct, never in the future
//! returned by `recv`, which the session drops whenever something else is ready first.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use asobi_net::ws_frame::{self, opcode, Decoder, FrameError, Message, Step};
use futures::AsyncWriteExt;

use super::http::Io;
use super::pool;
use super::transport::{Incoming, Transport};
use crate::wire::{Frame, Wire, WorldWire};

/// An incomplete frame at most this long goes back to an owned vector when the socket goes
/// quiet; a longer one (a large message arriving over several reads) keeps its buffer, since
/// copying it out and back on every read would cost more than the memory it saves.
const PARK_LIMIT: usize = 512;

pub(crate) struct WsConn<S: Io> {
    stream: S,
    wire: Wire,
    decoder: Decoder,
    /// The borrowed read buffer; bytes `start..end` are read and not yet decoded.
    rx: Option<Vec<u8>>,
    start: usize,
    end: usize,
    /// The bytes of an incomplete frame while no buffer is borrowed.
    parked: Vec<u8>,
    /// The borrowed write buffer: frames fed and not yet written.
    tx: Option<Vec<u8>>,
    /// Nothing more can be read: end of stream, a read error or broken framing.
    read_done: bool,
    /// Nothing more may be written: our close frame went out, or a write failed.
    write_done: bool,
}

/// What the bytes already read hold.
enum Decoded {
    Message(Message),
    /// A frame that completed no message (a fragment): decode again.
    Again,
    /// Read more: the next frame needs this many bytes from its start.
    Need(usize),
    Failed(FrameError),
}

impl<S: Io> WsConn<S> {
    /// A WebSocket on `stream` after the handshake; `read` holds bytes the HTTP layer read past
    /// the upgrade request. A frame or message longer than `max` ends the reading side.
    pub(crate) fn new(stream: S, wire: Wire, max: usize, read: Vec<u8>) -> WsConn<S> {
        WsConn {
            stream,
            wire,
            decoder: Decoder::new(max),
            rx: None,
            start: 0,
            end: 0,
            parked: read,
            tx: None,
            read_done: false,
            write_done: false,
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Incoming> {
        loop {
            if self.read_done {
                return Poll::Ready(Incoming::Gone);
            }
            let need = match self.decode_buffered() {
                Decoded::Message(m) => return Poll::Ready(self.incoming(m)),
                Decoded::Again => continue,
                Decoded::Need(n) => n,
                Decoded::Failed(e) => {
                    self.read_done = true;
                    self.release_rx();
                    tracing::debug!("websocket read error: {e}");
                    return Poll::Ready(match e {
                        FrameError::TooLarge => Incoming::TooLarge,
                        FrameError::BadUtf8 => Incoming::BadText,
                        _ => Incoming::Gone,
                    });
                }
            };
            let mut rx = self.borrow_rx();
            // Make room for the whole incomplete frame (the decoder bounds `need`) and a read.
            if self.start > 0 && (rx.len() - self.start < need || self.end == rx.len()) {
                rx.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if rx.len() < need {
                rx.resize(need, 0);
            }
            let Some(space) = rx.get_mut(self.end..) else {
                pool::give_read(rx);
                self.read_done = true;
                return Poll::Ready(Incoming::Gone);
            };
            match Pin::new(&mut self.stream).poll_read(cx, space) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    pool::give_read(rx);
                    self.read_done = true;
                    return Poll::Ready(Incoming::Gone);
                }
                Poll::Ready(Ok(n)) => {
                    self.end += n;
                    self.rx = Some(rx);
                }
                Poll::Pending => {
                    self.park(rx);
                    return Poll::Pending;
                }
            }
        }
    }

    fn decode_buffered(&mut self) -> Decoded {
        let pending: &[u8] = match &self.rx {
            Some(rx) => rx.get(self.start..self.end).unwrap_or_default(),
            None => &self.parked,
        };
        if pending.is_empty() {
            return Decoded::Need(0);
        }
        match self.decoder.decode(pending) {
            Ok(Step::Need(n)) => Decoded::Need(n),
            Ok(Step::Frame { consumed, message }) => {
                if self.rx.is_some() {
                    self.start += consumed;
                } else {
                    self.parked.drain(..consumed);
                }
                match message {
                    Some(m) => Decoded::Message(m),
                    None => Decoded::Again,
                }
            }
            Err(e) => Decoded::Failed(e),
        }
    }

    /// The read buffer, borrowed from the pool with any parked bytes at its start.
    fn borrow_rx(&mut self) -> Vec<u8> {
        if let Some(rx) = self.rx.take() {
            return rx;
        }
        let mut rx = pool::take_read();
        let n = self.parked.len();
        if rx.len() < n {
            rx.resize(n, 0);
        }
        rx[..n].copy_from_slice(&self.parked);
        self.parked = Vec::new();
        self.start = 0;
        self.end = n;
        rx
    }

    /// The socket has nothing more to read now: give the buffer back, keeping a short
    /// incomplete frame aside.
    fn park(&mut self, rx: Vec<u8>) {
        let pending = self.end - self.start;
        if pending > PARK_LIMIT {
            self.rx = Some(rx);
            return;
        }
        if pending > 0 {
            self.parked = rx[self.start..self.end].to_vec();
        }
        self.start = 0;
        self.end = 0;
        pool::give_read(rx);
    }

    fn release_rx(&mut self) {
        if let Some(rx) = self.rx.take() {
            pool::give_read(rx);
        }
        self.parked = Vec::new();
        self.start = 0;
        self.end = 0;
    }

    fn incoming(&mut self, m: Message) -> Incoming {
        match m {
            Message::Text(t) => Incoming::Text(t.into()),
            Message::Binary(b) => Incoming::Binary(b.into()),
            Message::Ping(p) => {
                // Answered with the session's next flush, which follows every batch.
                self.queue(opcode::PONG, &p);
                Incoming::Nothing
            }
            Message::Pong => Incoming::Nothing,
            Message::Close(_) => Incoming::Close,
        }
    }

    fn queue(&mut self, op: u8, payload: &[u8]) {
        let tx = self.tx.get_or_insert_with(pool::take_write);
        ws_frame::encode_header(tx, op, payload.len());
        tx.extend_from_slice(payload);
    }

    /// Writes what was fed so far; keeps the buffer for more.
    async fn write_out(&mut self) -> bool {
        let Some(tx) = self.tx.as_mut() else {
            return true;
        };
        if tx.is_empty() {
            return true;
        }
        let ok = self.stream.write_all(tx).await.is_ok();
        tx.clear();
        if !ok {
            self.write_done = true;
        }
        ok
    }
}

impl<S: Io> Transport for WsConn<S> {
    fn wire(&self) -> Wire {
        self.wire
    }

    async fn recv(&mut self) -> Incoming {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    async fn feed(&mut self, frame: &Frame, world: WorldWire) -> bool {
        if self.write_done {
            return false;
        }
        let (op, payload) = match self.wire {
            // asobi's binary `world.tick` travels as a WebSocket binary frame.
            Wire::Json if world.binary && frame.world_binary().is_some() => {
                match frame.world_binary() {
                    Some(b) => (opcode::BINARY, &b[..]),
                    None => return true,
                }
            }
            Wire::Json => (opcode::TEXT, frame.json_text().as_str().as_bytes()),
            Wire::Fb => match frame.fb() {
                Some(b) => (opcode::BINARY, &b[..]),
                None => return true,
            },
        };
        self.queue(op, payload);
        if self
            .tx
            .as_ref()
            .is_some_and(|t| t.len() >= pool::WRITE_HIGH)
        {
            return self.write_out().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        if self.write_done {
            return false;
        }
        let ok = self.write_out().await && self.stream.flush().await.is_ok();
        if let Some(tx) = self.tx.take() {
            pool::give_write(tx);
        }
        ok
    }

    async fn close(&mut self, code: u16, reason: String) {
        if !self.write_done {
            let tx = self.tx.get_or_insert_with(pool::take_write);
            ws_frame::encode_close(tx, code, &reason);
            let _ = self.flush().await;
            self.write_done = true;
        }
        let _ = self.stream.close().await;
    }
}

impl<S: Io> Drop for WsConn<S> {
    fn drop(&mut self) {
        self.release_rx();
        if let Some(tx) = self.tx.take() {
            pool::give_write(tx);
        }
    }
}
