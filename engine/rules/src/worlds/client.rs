//! The client's half of the `world.tick` contract (asobi ADR 0011, decision 7): one entity
//! table per zone, rendered as their union by id. Used by tests to check what a client that
//! follows the contract ends up showing.

use std::collections::BTreeMap;

use super::delta::{Entities, Op};
use super::grid::ZoneId;

/// What a client did with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Applied.
    Applied,
    /// A `frame_seq` past the expected one, or an update for an unknown entity: nothing was
    /// applied and the client would send `world.resync` for the zone.
    Gap,
    /// An old or duplicate frame, dropped.
    Stale,
}

#[derive(Debug, Clone, Default)]
struct ZoneTable {
    entities: Entities,
    expected: u64,
}

/// A client's per-zone tables.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    zones: BTreeMap<ZoneId, ZoneTable>,
}

impl ClientView {
    /// An empty view.
    pub fn new() -> ClientView {
        ClientView::default()
    }

    /// Applies one `world.tick` from `zone`: `frame_seq` absent for the leave frame.
    pub fn apply(
        &mut self,
        zone: ZoneId,
        frame_seq: Option<u64>,
        kf: bool,
        ops: &[Op],
    ) -> Received {
        let Some(seq) = frame_seq else {
            // The leave frame: applied ungated; an emptied zone is forgotten.
            if let Some(t) = self.zones.get_mut(&zone) {
                apply_ops(&mut t.entities, ops, true);
                if t.entities.is_empty() {
                    self.zones.remove(&zone);
                }
            }
            return Received::Applied;
        };
        if kf {
            let mut entities = Entities::new();
            apply_ops(&mut entities, ops, true);
            self.zones.insert(
                zone,
                ZoneTable {
                    entities,
                    expected: seq + 1,
                },
            );
            return Received::Applied;
        }
        let t = self.zones.entry(zone).or_insert_with(|| ZoneTable {
            entities: Entities::new(),
            expected: 1,
        });
        if seq > t.expected {
            return Received::Gap;
        }
        if seq < t.expected {
            return Received::Stale;
        }
        let unknown_update = ops
            .iter()
            .any(|op| matches!(op, Op::Update(id, _) if !t.entities.contains_key(id)));
        if unknown_update {
            return Received::Gap;
        }
        apply_ops(&mut t.entities, ops, false);
        t.expected = seq + 1;
        Received::Applied
    }

    /// What the client renders: the union of its zone tables by id (the entry of the zone
    /// with the larger coordinates wins a tie, which only matters mid-handoff).
    pub fn visible(&self) -> Entities {
        let mut out = Entities::new();
        for t in self.zones.values() {
            for (id, f) in &t.entities {
                out.insert(id.clone(), f.clone());
            }
        }
        out
    }

    /// Ids held by more than one zone table.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for t in self.zones.values() {
            for id in t.entities.keys() {
                *seen.entry(id).or_default() += 1;
            }
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id.to_owned())
            .collect()
    }

    /// Zones the client holds a table for.
    pub fn zones(&self) -> Vec<ZoneId> {
        self.zones.keys().copied().collect()
    }
}

fn apply_ops(table: &mut Entities, ops: &[Op], any: bool) {
    for op in ops {
        match op {
            Op::Add(id, f) => {
                table.insert(id.clone(), f.clone());
            }
            Op::Update(id, f) => {
                if let Some(e) = table.get_mut(id) {
                    for (k, v) in f {
                        e.insert(k.clone(), v.clone());
                    }
                } else if any {
                    table.insert(id.clone(), f.clone());
                }
            }
            Op::Remove(id) => {
                table.remove(id);
            }
        }
    }
}
