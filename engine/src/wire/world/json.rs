//! asobi's JSON `world.tick`:
//! `{"type":"world.tick","payload":{"zone":[x,y],"frame_seq":n,"kf":b,"tick":t,"updates":[…]}}`.
//!
//! An update is the entity's fields plus `"op"` (`"a"`, `"u"`, `"r"`) and `"id"`; a field a game
//! named `op` or `id` is shadowed by those, as in asobi. The leave-removal frame omits
//! `frame_seq`. Slots and generations are binary-wire only and never appear here.

use bytes::Bytes;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::{Op, Record, Seq, Value, WorldTick};

/// The whole `world.tick` frame, envelope included.
pub(crate) fn encode(tick: &WorldTick) -> Bytes {
    asobi_schema::envelope::encode_frame("world.tick", None, &Payload(tick))
}

struct Payload<'a>(&'a WorldTick);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("zone", &[t.zone.0, t.zone.1])?;
        if let Seq::Sequenced(n) = t.seq {
            m.serialize_entry("frame_seq", &n)?;
        }
        m.serialize_entry("kf", &t.kf)?;
        m.serialize_entry("tick", &t.tick)?;
        m.serialize_entry("updates", &Updates(&t.records))?;
        m.end()
    }
}

struct Updates<'a>(&'a [Record]);

impl Serialize for Updates<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            seq.serialize_element(&Update(r))?;
        }
        seq.end()
    }
}

struct Update<'a>(&'a Record);

impl Serialize for Update<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        let op = match r.op {
            Op::Add => "a",
            Op::Update => "u",
            Op::Remove => "r",
        };
        m.serialize_entry("op", op)?;
        m.serialize_entry("id", &r.id)?;
        if r.op != Op::Remove {
            for (name, value) in &r.fields {
                if name != "op" && name != "id" {
                    m.serialize_entry(name, &Field(value))?;
                }
            }
        }
        m.end()
    }
}

struct Field<'a>(&'a Value);

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Float(f) => s.serialize_f64(*f),
            Value::Int(n) => s.serialize_i64(*n),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Str(t) => s.serialize_str(t),
            Value::Null => s.serialize_unit(),
        }
    }
}
