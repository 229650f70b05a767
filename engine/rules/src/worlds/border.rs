//! The border mirror of one world (asobi's `asobi_zone_border`, ADR 0017): each zone publishes
//! copies of the entities within `border_band` of its own edges, its neighbours read the eight
//! rows touching them, and an effect a zone wants applied to an entity it can see there is
//! addressed to the zone that publishes it, which applies it in its own tick.
//!
//! Ownership never moves: a row is a copy, and the receiving zone applies an effect only to an
//! entity it still owns (the engine filters before `handle_effects`). "What a zone may affect"
//! is "what it can see", because [`BorderMirror::owner`] reads the same rows as
//! [`BorderMirror::around`].
//!
//! The operations are the ones that will cross shards once one world's zones are spread over
//! several: [`publish`](BorderMirror::publish) (or [`publish_band`](BorderMirror::publish_band)
//! for a band computed elsewhere), [`around`](BorderMirror::around) /
//! [`owner`](BorderMirror::owner), and [`address`](BorderMirror::address) /
//! [`take_effects`](BorderMirror::take_effects). Nothing here reaches into a zone.

use std::collections::HashMap;

use serde_json::Value;

use super::delta::{Entities, Fields};
use super::grid::{Grid, ZoneId};

/// Largest `border_band` (a fraction of `zone_size`); a value outside `0 ..= 1` is a typo and
/// is taken as 0 (asobi's clamp).
pub const MAX_BORDER_BAND: f64 = 1.0;

/// Effects one zone holds between two of its ticks (asobi's 256). The queue drains every
/// tick; this only bites when neighbours send faster than the zone ticks. (The sender's own
/// bounds, 4 KB per event and 64 sends per tick, are the script runtime's: `asobi_script`.)
pub const MAX_EFFECT_QUEUE: usize = 256;

/// Bytes of effects one zone holds between two of its ticks (asobi's 1 MB): a count alone
/// bounds nothing that matters when each entry can be large.
pub const MAX_EFFECT_BYTES_QUEUED: usize = 1 << 20;

/// One effect addressed to an entity a zone owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The entity it is for.
    pub entity_id: String,
    /// What the sender asked for (a JSON object).
    pub event: Value,
}

#[derive(Debug, Default)]
struct Inbox {
    effects: Vec<Effect>,
    bytes: usize,
}

/// One world's border rows and effect queues.
#[derive(Debug)]
pub struct BorderMirror {
    grid: Grid,
    /// The band in world units (`border_band × zone_size`); 0: off.
    band: f64,
    rows: HashMap<ZoneId, Entities>,
    inboxes: HashMap<ZoneId, Inbox>,
    /// Effects refused by a full queue since the world started.
    dropped: u64,
}

/// `border_band` as configured: a fraction in `0 ..= 1`, anything else 0 (off).
pub fn band_fraction(v: f64) -> f64 {
    if v.is_finite() && (0.0..=MAX_BORDER_BAND).contains(&v) {
        v
    } else {
        0.0
    }
}

impl BorderMirror {
    /// The mirror of a world on `grid` publishing `fraction × zone_size` of each zone's edge.
    pub fn new(grid: Grid, fraction: f64) -> BorderMirror {
        BorderMirror {
            grid,
            band: band_fraction(fraction) * grid.zone_size(),
            rows: HashMap::new(),
            inboxes: HashMap::new(),
            dropped: 0,
        }
    }

    /// Whether zones publish at all (`border_band > 0`).
    pub fn enabled(&self) -> bool {
        self.band > 0.0
    }

    /// Effects dropped at a full queue so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `(x, y)` lies within the band of any edge of `z`'s rectangle.
    pub fn in_band(&self, z: ZoneId, x: f64, y: f64) -> bool {
        let size = self.grid.zone_size();
        let (lx, ly) = (f64::from(z.x) * size, f64::from(z.y) * size);
        x - lx < self.band
            || lx + size - x < self.band
            || y - ly < self.band
            || ly + size - y < self.band
    }

    /// The entities of `entities` (owned by `z`) that lie in its band.
    pub fn band_of(&self, z: ZoneId, entities: &Entities) -> Entities {
        if !self.enabled() {
            return Entities::new();
        }
        entities
            .iter()
            .filter(|(_, e)| match (num(e, "x"), num(e, "y")) {
                (Some(x), Some(y)) => self.in_band(z, x, y),
                _ => false,
            })
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }

    /// Publishes `z`'s band out of the entities it owns now. An empty band removes `z`'s row
    /// (and costs nothing when there is none, the usual case on a large grid).
    pub fn publish(&mut self, z: ZoneId, entities: &Entities) {
        if !self.enabled() || (entities.is_empty() && !self.rows.contains_key(&z)) {
            return;
        }
        let band = self.band_of(z, entities);
        self.publish_band(z, band);
    }

    /// Publishes a band computed elsewhere (by the shard running `z`) as `z`'s row.
    pub fn publish_band(&mut self, z: ZoneId, band: Entities) {
        if band.is_empty() {
            self.rows.remove(&z);
        } else {
            self.rows.insert(z, band);
        }
    }

    /// `z` stopped: its row and its queued effects go.
    pub fn withdraw(&mut self, z: ZoneId) {
        self.rows.remove(&z);
        self.inboxes.remove(&z);
    }

    /// The in-grid zones touching `z` (up to eight; never `z`).
    pub fn touching(&self, z: ZoneId) -> impl Iterator<Item = ZoneId> + '_ {
        self.grid.ring(z, 1).into_iter().filter(move |n| *n != z)
    }

    /// The rows published around `z`: copies of what its neighbours hold near their shared
    /// edges, never `z`'s own entities. An id published by two zones (an entity that crossed
    /// this tick) comes once per row; a caller merging them keeps the last.
    pub fn around(&self, z: ZoneId) -> impl Iterator<Item = (&String, &Fields)> + '_ {
        self.touching(z)
            .filter_map(|n| self.rows.get(&n))
            .flat_map(|row| row.iter())
    }

    /// Which zone touching `z` publishes `entity_id`, if one does.
    pub fn owner(&self, z: ZoneId, entity_id: &str) -> Option<ZoneId> {
        self.touching(z).find(|n| {
            self.rows
                .get(n)
                .is_some_and(|row| row.contains_key(entity_id))
        })
    }

    /// Queues `effect` (whose JSON is `bytes` long) for zone `to`; `false` when `to`'s queue is
    /// full by count or size (the effect is dropped and counted).
    pub fn address(&mut self, to: ZoneId, effect: Effect, bytes: usize) -> bool {
        let inbox = self.inboxes.entry(to).or_default();
        if inbox.effects.len() >= MAX_EFFECT_QUEUE
            || inbox.bytes.saturating_add(bytes) > MAX_EFFECT_BYTES_QUEUED
        {
            self.dropped += 1;
            return false;
        }
        inbox.bytes += bytes;
        inbox.effects.push(effect);
        true
    }

    /// Whether effects wait for `z`.
    pub fn has_effects(&self, z: ZoneId) -> bool {
        self.inboxes.get(&z).is_some_and(|i| !i.effects.is_empty())
    }

    /// The effects queued for `z`, in arrival order; the queue is empty afterwards.
    pub fn take_effects(&mut self, z: ZoneId) -> Vec<Effect> {
        self.inboxes
            .remove(&z)
            .map(|i| i.effects)
            .unwrap_or_default()
    }
}

fn num(e: &Fields, k: &str) -> Option<f64> {
    e.get(k).and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ents(list: &[(&str, f64, f64)]) -> Entities {
        list.iter()
            .map(|(id, x, y)| {
                let Value::Object(m) = json!({ "x": x, "y": y }) else {
                    unreachable!()
                };
                ((*id).to_owned(), m)
            })
            .collect()
    }

    #[test]
    fn a_zone_publishes_its_edge_band_only_and_off_publishes_nothing() {
        let grid = Grid::new(4, 100.0);
        let mut m = BorderMirror::new(grid, 0.15);
        let z = ZoneId::new(1, 1);
        // Band 15 units inside each edge of [100, 200) × [100, 200).
        let e = ents(&[
            ("w", 101.0, 150.0),
            ("mid", 150.0, 150.0),
            ("s", 150.0, 190.0),
        ]);
        m.publish(z, &e);
        let seen: Vec<&String> = m.around(ZoneId::new(0, 1)).map(|(id, _)| id).collect();
        assert_eq!(seen, ["s", "w"]);
        // Never the caller's own row.
        assert_eq!(m.around(z).count(), 0);
        // Not touching: (3, 1) is two columns away.
        assert_eq!(m.around(ZoneId::new(3, 1)).count(), 0);
        assert_eq!(m.owner(ZoneId::new(2, 2), "s"), Some(z));
        assert_eq!(m.owner(ZoneId::new(2, 2), "mid"), None);
        // The band emptied: the row goes.
        m.publish(z, &ents(&[("mid", 150.0, 150.0)]));
        assert_eq!(m.owner(ZoneId::new(2, 2), "s"), None);

        let mut off = BorderMirror::new(grid, 0.0);
        off.publish(z, &e);
        assert_eq!(off.around(ZoneId::new(0, 1)).count(), 0);
        assert!(!BorderMirror::new(grid, 50.0).enabled());
    }

    #[test]
    fn effect_queues_are_bounded_by_count_and_by_bytes() {
        let mut m = BorderMirror::new(Grid::new(4, 100.0), 0.15);
        let z = ZoneId::new(0, 0);
        let fx = |i: usize| Effect {
            entity_id: format!("e{i}"),
            event: json!({ "kind": "hit" }),
        };
        for i in 0..MAX_EFFECT_QUEUE {
            assert!(m.address(z, fx(i), 20));
        }
        assert!(!m.address(z, fx(999), 20));
        assert_eq!(m.dropped(), 1);
        let got = m.take_effects(z);
        assert_eq!(got.len(), MAX_EFFECT_QUEUE);
        assert_eq!(got[0].entity_id, "e0");
        assert!(!m.has_effects(z));
        // By size: 256 KB entries, four fit in 1 MB.
        for i in 0..4 {
            assert!(m.address(z, fx(i), 256 * 1024));
        }
        assert!(!m.address(z, fx(4), 1));
        m.withdraw(z);
        assert!(!m.has_effects(z));
    }
}
