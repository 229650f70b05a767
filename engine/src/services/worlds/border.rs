//! The engine's side of the border mirror (asobi's ADR 0017, `border_band`): after its
//! crossings each zone publishes the entities within the band of its edges; during its tick a
//! zone reads its neighbours' rows (`game.spatial.neighbours_*`) and addresses effects at the
//! zone owning an entity it sees there (`game.zone.apply`); the owner applies them in its own
//! tick, through `handle_effects`, to entities it still owns.
//!
//! The mirror is the world's [`BorderMirror`] (`asobi_rules::worlds`), reached only through its
//! operations: publish a zone's band, read the bands around a zone, address an effect to a
//! zone, take a zone's effects. Nothing here touches another zone's entities.

use asobi_rules::worlds::{BorderMirror, Effect, ZoneId};
use asobi_script::{ZoneApply, ZoneBorder, ZoneEffect};

use super::LiveWorld;
use crate::services::Shard;

/// Zone `zone`'s view of the mirror during its tick.
pub(super) struct BorderView<'a> {
    pub(super) mirror: &'a BorderMirror,
    pub(super) zone: ZoneId,
}

impl ZoneBorder for BorderView<'_> {
    fn each_neighbour(&self, f: &mut dyn FnMut(&str, &serde_json::Map<String, serde_json::Value>)) {
        for (id, e) in self.mirror.around(self.zone) {
            f(id, e);
        }
    }

    fn owner(&self, entity_id: &str) -> Option<(u32, u32)> {
        self.mirror.owner(self.zone, entity_id).map(|z| (z.x, z.y))
    }
}

impl LiveWorld {
    /// The effects neighbours addressed to `z` since its last tick, in arrival order.
    pub(super) fn effects_for(&mut self, z: ZoneId) -> Vec<ZoneEffect> {
        self.border
            .take_effects(z)
            .into_iter()
            .map(|e| ZoneEffect {
                entity_id: e.entity_id,
                event: e.event,
            })
            .collect()
    }

    /// Queues a zone's `game.zone.apply` calls at the zones owning their entities (on
    /// another shard of a split world, sent there); a zone that stopped since publishing gets
    /// nothing, and a full queue drops the effect.
    pub(super) fn address_effects(&mut self, shard: &Shard, applies: Vec<ZoneApply>) {
        for a in applies {
            let to = ZoneId::new(a.zone.0, a.zone.1);
            if !self.local(to) {
                self.send_effect(shard, to, a.entity_id, a.event, a.bytes);
                continue;
            }
            self.take_effect(to, a.entity_id, a.event, a.bytes);
        }
    }

    /// Queues one effect for local zone `to`, when it still runs.
    pub(super) fn take_effect(
        &mut self,
        to: ZoneId,
        entity_id: String,
        event: serde_json::Value,
        bytes: usize,
    ) {
        if !self.zones.contains_key(&to) {
            return;
        }
        let effect = Effect { entity_id, event };
        if !self.border.address(to, effect, bytes) {
            tracing::debug!(world_id = %self.id, zone = ?to, dropped = self.border.dropped(), "cross-zone effect dropped: the zone's queue is full");
        }
    }

    /// Publishes the border band of each of `zones` (after their crossings, so an entity that
    /// crossed is published by the zone that owns it now); nothing when the band is off. A
    /// zone on the seam of a split world also sends its band to the shards owning the zones it
    /// touches there (`split.rs`).
    pub(super) fn publish_borders(
        &mut self,
        shard: &Shard,
        zones: impl IntoIterator<Item = ZoneId>,
    ) {
        if !self.border.enabled() {
            return;
        }
        for z in zones {
            if self.on_seam(z) {
                let band = self
                    .zones
                    .get(&z)
                    .map(|zone| self.border.band_of(z, &zone.entities))
                    .unwrap_or_default();
                self.send_band(shard, z, &band);
                if self.zones.contains_key(&z) {
                    self.border.publish_band(z, band);
                } else {
                    self.border.withdraw(z);
                }
                continue;
            }
            match self.zones.get(&z) {
                Some(zone) => self.border.publish(z, &zone.entities),
                None => self.border.withdraw(z),
            }
        }
    }
}
