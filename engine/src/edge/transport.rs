//! What a session needs from the connection it runs on, and the WebSocket implementation of it.
//! The session loop in [`super::ws`] is written once against [`Transport`]; WebSocket (over
//! TCP or TLS) and QUIC streams plug in underneath.

use futures::{SinkExt, StreamExt};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::http::Io;
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

pub(crate) struct WsTransport<S: Io> {
    pub(crate) ws: async_tungstenite::WebSocketStream<S>,
    pub(crate) wire: Wire,
}

impl<S: Io> Transport for WsTransport<S> {
    fn wire(&self) -> Wire {
        self.wire
    }

    async fn recv(&mut self) -> Incoming {
        match self.ws.next().await {
            None => Incoming::Gone,
            Some(Ok(Message::Text(t))) => Incoming::Text(t),
            Some(Ok(Message::Binary(b))) => Incoming::Binary(b),
            Some(Ok(Message::Close(_))) => Incoming::Close,
            // tungstenite queues the pong itself; the session's flush sends it.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Nothing,
            Some(Err(tungstenite::Error::Capacity(_))) => Incoming::TooLarge,
            Some(Err(tungstenite::Error::Utf8(_))) => Incoming::BadText,
            Some(Err(e)) => {
                tracing::debug!("websocket read error: {e}");
                Incoming::Gone
            }
        }
    }

    async fn feed(&mut self, frame: &Frame, world: WorldWire) -> bool {
        let msg = match self.wire {
            // asobi's binary `world.tick` travels as a WebSocket binary frame.
            Wire::Json if world.binary && frame.world_binary().is_some() => {
                Message::Binary(frame.world_binary().cloned().unwrap_or_default())
            }
            Wire::Json => Message::Text(frame.json_text().clone()),
            Wire::Fb => match frame.fb() {
                Some(b) => Message::Binary(b.clone()),
                None => return true,
            },
        };
        self.ws.feed(msg).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        self.ws.flush().await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: String) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}
