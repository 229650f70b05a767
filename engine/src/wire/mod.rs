//! A server frame shared by every recipient, in every wire encoding a recipient needs.
//!
//! The JSON encoding is made once when the frame is created. Another encoding (FlatBuffers for
//! `asobi.fb.1` sessions) is made the first time a recipient on that wire asks for it and cached
//! in the frame, so a broadcast is encoded once per encoding, never once per recipient — even
//! across shards, since the cache is a `OnceLock` behind an `Arc`.

pub(crate) mod binary;
pub(crate) mod world;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tungstenite::Utf8Bytes;

/// How a session's frames are encoded on its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// asobi 1.0 JSON text.
    Json,
    /// FlatBuffers (`asobi.fb.1`).
    Fb,
}

/// What a session negotiated for `world.tick` at `session.connect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WorldWire {
    /// `"wire": "binary"`: `world.tick` in asobi's binary encoding when the frame has one.
    pub(crate) binary: bool,
    /// `"datagrams": true` on QUIC: `world.tick` as unreliable datagrams when it fits.
    pub(crate) datagrams: bool,
}

#[derive(Debug)]
struct Encoded {
    json: Utf8Bytes,
    fb: OnceLock<Option<Bytes>>,
    /// State a game marked as droppable: may travel as an unreliable datagram.
    droppable: bool,
    /// A `world.tick`: datagram-eligible for sessions that opted in.
    world_tick: bool,
    /// asobi's binary `world.tick`, for sessions that negotiated it (see [`world`]).
    world: Option<Bytes>,
}

#[derive(Debug, Clone)]
pub(crate) struct Frame(Arc<Encoded>);

impl Frame {
    /// Wraps an encoded JSON frame. Every frame the server encodes is UTF-8 JSON, so the check
    /// never fails; it stays so that a bug cannot put invalid text on the wire.
    pub(crate) fn json(frame: Bytes) -> Option<Frame> {
        Self::new(frame, false)
    }

    /// A frame that may be sent unreliably (QUIC datagram) when the transport can.
    pub(crate) fn droppable(frame: Bytes) -> Option<Frame> {
        Self::new(frame, true)
    }

    /// A frame from its JSON encoding (the common case: `encode_frame` output).
    pub(crate) fn text(frame: Bytes) -> Option<Frame> {
        Self::json(frame)
    }

    fn new(frame: Bytes, droppable: bool) -> Option<Frame> {
        let json = Utf8Bytes::try_from(frame).ok()?;
        Some(Frame(Arc::new(Encoded {
            json,
            fb: OnceLock::new(),
            droppable,
            world_tick: false,
            world: None,
        })))
    }

    /// A `world.tick` in its JSON text and, when some recipient needs it, asobi's binary form.
    /// Built by [`world::tick_frame`].
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn world_tick(json: Bytes, binary: Option<Bytes>) -> Option<Frame> {
        let json = Utf8Bytes::try_from(json).ok()?;
        Some(Frame(Arc::new(Encoded {
            json,
            fb: OnceLock::new(),
            droppable: false,
            world_tick: true,
            world: binary,
        })))
    }

    /// The binary `world.tick` encoding, when this frame is one and has it.
    pub(crate) fn world_binary(&self) -> Option<&Bytes> {
        self.0.world.as_ref()
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_world_tick(&self) -> bool {
        self.0.world_tick
    }

    /// Whether this frame may leave as a datagram for a session with these options.
    pub(crate) fn datagram_eligible(&self, world: WorldWire) -> bool {
        self.0.droppable || (self.0.world_tick && world.datagrams)
    }

    pub(crate) fn json_text(&self) -> &Utf8Bytes {
        &self.0.json
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_droppable(&self) -> bool {
        self.0.droppable
    }

    /// The FlatBuffers encoding, made on first use and shared afterwards.
    pub(crate) fn fb(&self) -> Option<&Bytes> {
        self.0
            .fb
            .get_or_init(|| binary::json_frame_to_fb(self.0.json.as_str()))
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_encoding() {
        let f = Frame::json(Bytes::from_static(
            br#"{"type":"match.state","payload":{"tick":1}}"#,
        ))
        .unwrap();
        let g = f.clone();
        assert!(Arc::ptr_eq(&f.0, &g.0));
        assert_eq!(f.json_text().as_str(), g.json_text().as_str());
        assert!(!f.is_droppable());
        assert!(Frame::json(Bytes::from_static(&[0xff, 0xfe])).is_none());
        // The binary encoding is made once and shared by every clone (every recipient).
        let (fa, fb) = (f.fb().unwrap(), g.fb().unwrap());
        assert_eq!(fa.as_ptr(), fb.as_ptr());
        let decoded = asobi_schema::fb::decode_frame(fa).unwrap();
        assert_eq!(decoded.kind, "match.state");
    }
}
