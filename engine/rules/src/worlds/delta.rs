//! One zone's `world.tick` stream: deltas against the last broadcast baseline.
//!
//! The rules are asobi's (ADR 0011): a shared frame carries the ops that turn the previous
//! baseline into the current entities and advances a dense `frame_seq`; a frame with no ops
//! is not sent and does not advance it. A keyframe (a join, a zone coming into view, a
//! resync) restates the *baseline*, never the live entities, with the current `frame_seq`
//! and does not advance it, so the next shared frame applies on top of it. The leave frame
//! removes the baseline and carries no `frame_seq`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One entity's fields (`x`, `y`, `type` and whatever the script keeps).
pub type Fields = Map<String, Value>;

/// A zone's entities by id, ordered so that frames are deterministic.
pub type Entities = BTreeMap<String, Fields>;

/// One entry of `world.tick`'s `updates`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `op:"a"`: a new entity, with all its fields.
    Add(String, Fields),
    /// `op:"u"`: only the fields whose value changed (or that are new).
    Update(String, Fields),
    /// `op:"r"`: the entity is gone from this zone.
    Remove(String),
}

impl Op {
    /// The entity this op is about.
    pub fn id(&self) -> &str {
        match self {
            Op::Add(id, _) | Op::Update(id, _) | Op::Remove(id) => id,
        }
    }

    /// asobi's JSON shape: the fields, then `id` and `op`.
    pub fn to_json(&self) -> Value {
        let (id, op, fields) = match self {
            Op::Add(id, f) => (id, "a", Some(f)),
            Op::Update(id, f) => (id, "u", Some(f)),
            Op::Remove(id) => (id, "r", None),
        };
        let mut m = Map::new();
        m.insert("id".into(), Value::String(id.clone()));
        m.insert("op".into(), Value::String(op.into()));
        if let Some(f) = fields {
            for (k, v) in f {
                if k != "id" && k != "op" {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(m)
    }
}

/// The ops that turn `old` into `new`: adds and updates in id order, then removals. A field
/// the new state dropped is not reported (asobi diffs only the new state's keys).
pub fn diff(old: &Entities, new: &Entities) -> Vec<Op> {
    let mut ops = Vec::new();
    for (id, now) in new {
        match old.get(id) {
            None => ops.push(Op::Add(id.clone(), now.clone())),
            Some(before) if before == now => {}
            Some(before) => {
                let changed: Fields = now
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !changed.is_empty() {
                    ops.push(Op::Update(id.clone(), changed));
                }
            }
        }
    }
    for id in old.keys() {
        if !new.contains_key(id) {
            ops.push(Op::Remove(id.clone()));
        }
    }
    ops
}

/// A zone's broadcast baseline and frame counter.
#[derive(Debug, Clone, Default)]
pub struct ZoneStream {
    frame_seq: u64,
    baseline: Entities,
}

impl ZoneStream {
    /// A stream whose baseline is `entities` (a recovered zone starts from what it recovered,
    /// so a joiner before the first broadcast sees it), at `frame_seq` 0.
    pub fn new(entities: Entities) -> ZoneStream {
        ZoneStream {
            frame_seq: 0,
            baseline: entities,
        }
    }

    /// The `frame_seq` of the last shared frame (0: none yet).
    pub fn frame_seq(&self) -> u64 {
        self.frame_seq
    }

    /// What clients were last told this zone holds.
    pub fn baseline(&self) -> &Entities {
        &self.baseline
    }

    /// A broadcast tick: the ops from the baseline to `current` with the new `frame_seq`, or
    /// `None` when nothing changed (nothing is sent and the counter stays).
    pub fn broadcast(&mut self, current: &Entities) -> Option<(u64, Vec<Op>)> {
        let ops = diff(&self.baseline, current);
        if ops.is_empty() {
            return None;
        }
        self.frame_seq += 1;
        self.baseline.clone_from(current);
        Some((self.frame_seq, ops))
    }

    /// A keyframe: every baseline entity as an add, stamped with the current `frame_seq`.
    pub fn keyframe(&self) -> (u64, Vec<Op>) {
        let ops = self
            .baseline
            .iter()
            .map(|(id, f)| Op::Add(id.clone(), f.clone()))
            .collect();
        (self.frame_seq, ops)
    }

    /// The leave frame's ops: a removal for every baseline entity (empty for an empty zone,
    /// which asobi does not send).
    pub fn leave(&self) -> Vec<Op> {
        self.baseline
            .keys()
            .map(|id| Op::Remove(id.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ent(v: Value) -> Fields {
        match v {
            Value::Object(m) => m,
            _ => Fields::new(),
        }
    }

    #[test]
    fn diff_reports_adds_changed_fields_and_removals() {
        let mut old = Entities::new();
        old.insert("a".into(), ent(json!({"x": 1, "y": 2, "hp": 80})));
        old.insert("b".into(), ent(json!({"x": 5, "y": 5})));
        let mut new = Entities::new();
        new.insert("a".into(), ent(json!({"x": 2, "y": 2, "hp": 80})));
        new.insert("c".into(), ent(json!({"x": 0, "y": 0, "type": "npc"})));
        let ops = diff(&old, &new);
        assert_eq!(
            ops,
            vec![
                Op::Update("a".into(), ent(json!({"x": 2}))),
                Op::Add("c".into(), ent(json!({"x": 0, "y": 0, "type": "npc"}))),
                Op::Remove("b".into()),
            ]
        );
        assert_eq!(ops[0].to_json(), json!({"id": "a", "op": "u", "x": 2}));
        assert_eq!(ops[2].to_json(), json!({"id": "b", "op": "r"}));
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn frame_seq_is_dense_and_keyframes_restate_the_baseline() {
        let mut s = ZoneStream::default();
        let mut now = Entities::new();
        assert_eq!(s.broadcast(&now), None);
        now.insert("p".into(), ent(json!({"x": 1, "y": 1})));
        assert_eq!(s.broadcast(&now).map(|f| f.0), Some(1));
        // Nothing changed: no frame, no gap.
        assert_eq!(s.broadcast(&now), None);
        now.get_mut("p").unwrap().insert("x".into(), json!(3));
        // Between broadcasts the keyframe is still the baseline (x = 1), at seq 1.
        let (seq, ops) = s.keyframe();
        assert_eq!(seq, 1);
        assert_eq!(ops, vec![Op::Add("p".into(), ent(json!({"x": 1, "y": 1})))]);
        assert_eq!(s.broadcast(&now).map(|f| f.0), Some(2));
        assert_eq!(s.leave(), vec![Op::Remove("p".into())]);
    }
}
