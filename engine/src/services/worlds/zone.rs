//! One zone of a live world: its entities, its Lua zone state, its `world.tick` stream and
//! who watches it, and the frames it sends.
//!
//! Every frame a zone sends is built here, once, and shared by every subscriber: the shared
//! delta of a broadcast tick, the keyframe of its current baseline (cached until the baseline
//! moves, so ten players stepping into view cost one encoding) and the leave frame. A frame
//! carries asobi's JSON text and, when a subscriber negotiated `wire: "binary"`, asobi's binary
//! slot-table encoding (`wire::world`); the zone's [`Slots`] follow its broadcast baseline
//! whether or not anyone reads binary, so a binary client joining later finds the bindings.
//! A frame whose content has no binary form (a list or a nested table in a field, an integer
//! past `i32`) goes out as JSON to everyone, and the binary subscribers are sent the keyframe
//! right after it, so their slot table is whole again (asobi's fallback).

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use serde_json::{json, Map, Value as Json};

use asobi_rules::worlds::{Entities, Op, Spawner, ZoneId, ZoneStream};
use asobi_schema::envelope::encode_frame;
use asobi_script::ZoneInput;

use crate::wire::world::{self as wire, Record, Seq, Slots, WorldTick};
use crate::wire::Frame;

/// One zone of a world.
pub(super) struct Zone {
    pub(super) entities: Entities,
    pub(super) state: Json,
    pub(super) stream: ZoneStream,
    pub(super) inputs: Vec<ZoneInput>,
    pub(super) subscribers: BTreeSet<String>,
    /// Input seqs consumed here since the zone's last broadcast, by player; acknowledged
    /// right after it (they move with a player's entity when it crosses).
    pub(super) acks: HashMap<String, u64>,
    /// Entity ids ↔ binary-wire slots, following `stream`'s baseline.
    slots: Slots,
    /// The keyframe of the current baseline, once built.
    keyframe: Option<Frame>,
    /// The leave frame of the current baseline, once built.
    leave: Option<Frame>,
    /// A delta went out without its binary form: binary subscribers lack slot bindings.
    binary_stale: bool,
    /// The zone's `world.terrain` frame, once built (`Some(None)`: the provider has no chunk).
    pub(super) terrain: Option<Option<Frame>>,
    /// What the zone spawned from templates, and the respawns it waits for (`respawn.rs`).
    pub(super) spawner: Spawner,
}

/// What a broadcast tick sends: the shared delta and, when its binary form was refused, the
/// keyframe for binary subscribers.
pub(super) struct Broadcast {
    pub(super) delta: Frame,
    /// The keyframe binary subscribers need after a delta that went out as JSON only.
    pub(super) rekey: Option<Frame>,
}

impl Zone {
    pub(super) fn new(entities: Entities, state: Json) -> Zone {
        Zone {
            stream: ZoneStream::new(entities.clone()),
            entities,
            state,
            inputs: Vec::new(),
            subscribers: BTreeSet::new(),
            acks: HashMap::new(),
            slots: Slots::new(),
            keyframe: None,
            leave: None,
            binary_stale: false,
            terrain: None,
            spawner: Spawner::unseeded(),
        }
    }

    /// Nothing to simulate: no entity, no queued input and no respawn waiting (asobi's
    /// `zone_idle`; subscribers deliberately do not count). Effects queued for the zone live
    /// in the world's border mirror and are checked there.
    pub(super) fn idle(&self) -> bool {
        self.entities.is_empty() && self.inputs.is_empty() && !self.spawner.has_pending()
    }

    /// This broadcast tick's delta, or `None` when nothing changed. `binary`: some subscriber
    /// reads the binary wire.
    pub(super) fn broadcast(&mut self, z: ZoneId, tick: u64, binary: bool) -> Option<Broadcast> {
        let (seq, ops) = self.stream.broadcast(&self.entities)?;
        self.keyframe = None;
        self.leave = None;
        let records = records(&ops, &mut self.slots, Bind::Broadcast);
        let (delta, refused) = frame(z, Seq::Sequenced(seq), false, tick, &ops, records, binary)?;
        self.binary_stale |= refused;
        let mut rekey = None;
        if binary && self.binary_stale {
            // Binary clients missed slot bindings while the zone went out as JSON; the first
            // keyframe with a binary form gives them back.
            rekey = self
                .keyframe(z, true)
                .filter(|f| f.world_binary().is_some());
            self.binary_stale = rekey.is_none();
        }
        Some(Broadcast { delta, rekey })
    }

    /// The keyframe of the current baseline: every entity as an add, the zone's current
    /// `frame_seq`, tick 0 (as asobi sends them). Built once per baseline.
    pub(super) fn keyframe(&mut self, z: ZoneId, binary: bool) -> Option<Frame> {
        if let Some(f) = self.keyframe.as_ref().filter(|f| has(f, binary)) {
            return Some(f.clone());
        }
        let (seq, ops) = self.stream.keyframe();
        let records = records(&ops, &mut self.slots, Bind::Keep);
        let (f, _) = frame(z, Seq::Sequenced(seq), true, 0, &ops, records, binary)?;
        self.keyframe = Some(f.clone());
        Some(f)
    }

    /// The frame removing the baseline from a client that stops seeing the zone (no
    /// `frame_seq`: applied without the sequence check); `None` for an empty zone, which asobi
    /// does not send.
    pub(super) fn leave(&mut self, z: ZoneId, binary: bool) -> Option<Frame> {
        if self.stream.baseline().is_empty() {
            return None;
        }
        if let Some(f) = self.leave.as_ref().filter(|f| has(f, binary)) {
            return Some(f.clone());
        }
        let ops = self.stream.leave();
        let records = records(&ops, &mut self.slots, Bind::Keep);
        let (f, _) = frame(z, Seq::Ungated, false, 0, &ops, records, binary)?;
        self.leave = Some(f.clone());
        Some(f)
    }
}

/// A cached frame serves a request when it has the binary form or none is needed.
fn has(f: &Frame, binary: bool) -> bool {
    !binary || f.world_binary().is_some()
}

fn coords(z: ZoneId) -> (i32, i32) {
    // Grid coordinates are below `MAX_GRID_SIZE` (4,096).
    (
        i32::try_from(z.x).unwrap_or(i32::MAX),
        i32::try_from(z.y).unwrap_or(i32::MAX),
    )
}

/// How a frame's records move the slot table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bind {
    /// A shared delta moves the baseline: adds bind, removals release.
    Broadcast,
    /// A keyframe or leave frame restates the baseline: nothing is released.
    Keep,
}

/// The records of `ops` with their slots, or `None` when one field has no binary form (the
/// slot table is updated either way, so it keeps following the baseline).
fn records(ops: &[Op], slots: &mut Slots, bind: Bind) -> Option<Vec<Record>> {
    let mut out = Vec::with_capacity(ops.len());
    let mut ok = true;
    for op in ops {
        let (kind, id, fields) = match op {
            Op::Add(id, f) => (wire::Op::Add, id, Some(f)),
            Op::Update(id, f) => (wire::Op::Update, id, Some(f)),
            Op::Remove(id) => (wire::Op::Remove, id, None),
        };
        let slot = match (kind, bind) {
            (wire::Op::Remove, Bind::Broadcast) => slots.release(id).ok_or(()),
            _ => slots.bind(id).map_err(|_| ()),
        };
        let Ok((slot, gen)) = slot else {
            // 65,536 live entities in one zone (the script bounds a zone far below that).
            ok = false;
            continue;
        };
        if !ok {
            continue;
        }
        let mut values = Vec::new();
        for (name, v) in fields.into_iter().flatten() {
            match value(v) {
                Some(v) => values.push((name.clone(), v)),
                None => ok = false,
            }
        }
        out.push(Record {
            op: kind,
            id: id.clone(),
            slot,
            gen,
            fields: values,
        });
    }
    ok.then_some(out)
}

/// A field value's binary-wire form: `None` for a list or a table.
fn value(v: &Json) -> Option<wire::Value> {
    Some(match v {
        Json::Null => wire::Value::Null,
        Json::Bool(b) => wire::Value::Bool(*b),
        Json::String(s) => wire::Value::Str(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => wire::Value::Int(i),
            None => wire::Value::Float(n.as_f64()?),
        },
        Json::Array(_) | Json::Object(_) => return None,
    })
}

/// The frame of `ops`: through the `world.tick` codec when every record has a wire form
/// (`records`), otherwise asobi's JSON from the ops. Also returns whether a binary form that
/// was asked for is missing.
fn frame(
    z: ZoneId,
    seq: Seq,
    kf: bool,
    tick: u64,
    ops: &[Op],
    records: Option<Vec<Record>>,
    binary: bool,
) -> Option<(Frame, bool)> {
    match records {
        Some(records) => {
            let t = WorldTick {
                zone: coords(z),
                seq,
                kf,
                tick,
                records,
            };
            let f = wire::tick_frame(&t, binary)?;
            let refused = binary && f.world_binary().is_none();
            Some((f, refused))
        }
        None => {
            tracing::debug!(zone = ?z, "world.tick content has no binary form; sent as JSON");
            let seq = match seq {
                Seq::Sequenced(n) => Some(n),
                Seq::Ungated => None,
            };
            Some((
                Frame::world_tick(json_frame(z, seq, kf, tick, ops), None)?,
                binary,
            ))
        }
    }
}

/// asobi's JSON `world.tick` from ops, for content the typed codec cannot carry (nested
/// values). The leave frame has no `frame_seq`.
fn json_frame(z: ZoneId, frame_seq: Option<u64>, kf: bool, tick: u64, ops: &[Op]) -> Bytes {
    let mut p = Map::new();
    p.insert("zone".into(), json!([z.x, z.y]));
    if let Some(n) = frame_seq {
        p.insert("frame_seq".into(), json!(n));
    }
    p.insert("kf".into(), json!(kf));
    p.insert("tick".into(), json!(tick));
    p.insert(
        "updates".into(),
        Json::Array(ops.iter().map(Op::to_json).collect()),
    );
    encode_frame("world.tick", None, &Json::Object(p))
}
