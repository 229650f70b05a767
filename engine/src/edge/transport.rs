//! What a session needs from the connection it runs on. The session loop in [`super::ws`] is
//! written once against [`Transport`]; WebSocket over TCP or TLS ([`super::wsconn`]) and QUIC
//! streams plug in underneath.

use crate::wire::{Frame, Wire, WorldWire};

/// One thing read from a transport.
pub(crate) enum Incoming {
    Text(tungstenite::Utf8Bytes),
    Binary(bytes::Bytes),
    /// The client closed cleanly.
    Close,
    /// A frame over the size limit; the connection cannot continue.
    TooLarge,
    /// A text frame that is not UTF-8 (close 1007).
    BadText,
    /// Transport bookkeeping (ping, pong) that only needs the socket flushed.
    Nothing,
    /// The connection is gone.
    Gone,
}

/// A session's connection. `recv` must be cancellation-safe: the session polls it in a `select`
/// and with `now_or_never`, dropping the future when something else is ready.
pub(crate) trait Transport {
    fn wire(&self) -> Wire;
    /// Whether the connection can carry unreliable datagrams (QUIC).
    fn datagrams(&self) -> bool {
        false
    }
    async fn recv(&mut self) -> Incoming;
    /// Queues a frame without flushing, in the encoding the session negotiated (`world`: its
    /// `world.tick` options); false when the connection is broken.
    async fn feed(&mut self, frame: &Frame, world: WorldWire) -> bool;
    async fn flush(&mut self) -> bool;
    async fn close(&mut self, code: u16, reason: String);
}
