//! `world.tick`: one model, two encodings (asobi's JSON text and asobi's binary slot tables),
//! and the zone-scoped slot table the binary encoding needs.
//!
//! This module owns the bytes of a zone's delta frame. It decides nothing about which entities
//! changed or who sees them: the world runtime (`services::worlds`) diffs its zone, fills a
//! [`WorldTick`] and hands it to [`tick_frame`], which encodes it once per encoding in use and
//! returns one [`Frame`] that every subscriber's session shares.
//!
//! # How the runtime fills a tick
//!
//! ```text
//! let mut slots = Slots::new();                       // one per zone, lives as long as the zone
//! // every broadcast tick, after the diff against the zone's broadcast baseline:
//! let (slot, gen) = slots.bind(&id)?;                 // for every entity that entered (add)
//! let (slot, gen) = slots.slot_of(&id)?;              // for an update
//! let (slot, gen) = slots.release(&id)?;              // for a removal (the slot is freed)
//! let tick = WorldTick { zone: (zx, zy), seq: Seq::Sequenced(frame_seq), kf, tick: n,
//!                        records: vec![Record { op, id, slot, gen, fields }, …] };
//! let frame = tick_frame(&tick, any_binary_subscriber);   // encoded once
//! for s in subscribers { push(s, Outbound::Frame(frame.clone())) }   // shared by reference
//! ```
//!
//! - `seq`: [`Seq::Sequenced`] carries the zone's `frame_seq` (contiguous per zone);
//!   [`Seq::Ungated`] is the leave-removal frame a client applies without the sequence check
//!   (the JSON form omits `frame_seq`, the binary form says kind 2).
//! - `kf`: a keyframe, all adds, a complete baseline for the zone.
//! - `records`: [`Op::Add`] carries every field of the entity, [`Op::Update`] only the changed
//!   fields, [`Op::Remove`] none. Every record carries the entity `id` (the JSON wire sends it on
//!   every record, the binary one on adds only) and its `slot`/`gen` from the zone's [`Slots`].
//! - Field values are [`Value`]s: the six kinds the binary wire has. A game value with no binary
//!   form (a list, a nested table) cannot be a `Value`; a runtime that meets one sends the zone's
//!   frame as JSON only ([`tick_frame`] with `binary = false`), as asobi does.
//! - Field order: records are written in the order given. asobi writes an entity's fields sorted
//!   by name (bytewise), so a runtime that wants byte-identical frames keeps them sorted (a
//!   `BTreeMap` does); clients do not depend on the order.
//!
//! # Delivery
//!
//! A session that asked for `"wire": "binary"` at `session.connect` receives the binary
//! encoding (a WebSocket binary frame, or a QUIC frame with encoding byte
//! [`asobi_net::quic_frame::ENCODING_WORLD_TICK`]); every other session receives the JSON text.
//! A QUIC session that also asked for `"datagrams": true` receives `world.tick` as unreliable
//! datagrams when a frame fits the path's datagram size, and on its stream otherwise: see
//! `edge::quic`. A lost or reordered datagram shows as a `frame_seq` gap, which the client
//! repairs with `world.resync` exactly as on any other carrier.

// The world runtime (`services::worlds`) is the caller of this module; until it is merged only
// the tests here and in `edge::quic` use some of it.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod binary;
pub(crate) mod json;
mod model;
pub(crate) mod slots;
pub(crate) mod terrain;

#[cfg(test)]
mod tests;

pub(crate) use model::{Op, Record, Seq, Value, WorldTick};
#[allow(unused_imports)]
pub(crate) use {
    slots::{SlotError, Slots},
    terrain::terrain_frame,
};

use super::Frame;

/// One `world.tick` frame for every subscriber: the JSON text always, and the binary encoding
/// when `binary` is true (some subscriber negotiated it) and the tick has a binary form. A tick
/// the binary wire cannot express is sent as JSON to everyone, which every binary client also
/// reads (asobi's fallback); the refusal is logged once per frame here and the runtime should
/// send a keyframe next, as asobi does, so binary clients get their slot bindings back.
pub(crate) fn tick_frame(tick: &WorldTick, binary: bool) -> Option<Frame> {
    let json = json::encode(tick);
    let bin = if binary {
        match binary::encode(tick) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(zone = ?tick.zone, "binary world.tick frame refused, falling back to text: {e}");
                None
            }
        }
    } else {
        None
    };
    Frame::world_tick(json, bin)
}
