//! Spawns, despawns and respawns of one zone's tick (asobi's `asobi_zone_spawner`, see
//! `asobi_rules::worlds::Spawner`): an entity spawned from a template is tracked by its zone;
//! `game.zone.despawn` of one whose template has a `respawn` rule queues it, and the zone's
//! tick puts it back (same id, `base_state`, first position) once it is due. A zone with a
//! respawn waiting is not idle, so it ticks at full rate and is never reaped before it fires.

use std::time::Instant;

use serde_json::Map;

use asobi_rules::placement::fnv1a64;
use asobi_rules::worlds::{Entities, RespawnRule, ZoneId};
use asobi_script::SpawnRequest;

use super::{new_id, LiveWorld};

/// World ticks between two sweeps of a zone's tracked entities for ones it no longer holds.
const PRUNE_EVERY: u64 = 100;

/// The seed of zone `z`'s respawn jitter: fixed per world and zone, so a replayed zone
/// respawns at the same times.
pub(super) fn spawner_seed(world_id: &str, z: ZoneId) -> u64 {
    fnv1a64(format!("{world_id}/{}", z.key()).as_bytes())
}

impl LiveWorld {
    /// Applies a zone step's despawns and spawns to `entities` (zone `z`'s, after the step),
    /// then the respawns due at `now`; the spawner forgets what the zone no longer holds.
    pub(super) fn settle_spawns(
        &mut self,
        z: ZoneId,
        entities: &mut Entities,
        despawns: Vec<String>,
        spawns: Vec<SpawnRequest>,
        now: Instant,
    ) {
        if !despawns.is_empty() {
            let seed = spawner_seed(&self.id, z);
            let templates = &self.templates;
            let Some(zone) = self.zones.get_mut(&z) else {
                return;
            };
            zone.spawner.seed_once(seed);
            for id in &despawns {
                entities.remove(id);
                zone.spawner.despawned(id, now, |t| {
                    templates.get(t).and_then(RespawnRule::of_template)
                });
            }
        }
        for s in spawns {
            if let Some(e) = self.spawned(&s.template, s.x, s.y, s.overrides) {
                let id = new_id();
                if let Some(zone) = self.zones.get_mut(&z) {
                    zone.spawner.spawned(&s.template, &id, s.x, s.y);
                }
                entities.insert(id, e);
            }
        }
        self.respawn_due(z, entities, now);
    }

    /// Puts back zone `z`'s respawns due at `now` (asobi builds them without the overrides of
    /// the first spawn), and forgets tracked entities `entities` no longer holds.
    pub(super) fn respawn_due(&mut self, z: ZoneId, entities: &mut Entities, now: Instant) {
        let Some(zone) = self.zones.get_mut(&z) else {
            return;
        };
        let due = zone.spawner.poll(now);
        for r in due {
            match self.spawned(&r.template, r.x, r.y, Map::new()) {
                Some(e) => {
                    entities.insert(r.entity_id.clone(), e);
                    if let Some(zone) = self.zones.get_mut(&z) {
                        zone.spawner.spawned(&r.template, &r.entity_id, r.x, r.y);
                    }
                }
                None => {
                    tracing::warn!(world_id = %self.id, zone = ?z, template = %r.template, "respawn skipped: the template is gone");
                }
            }
        }
        // Tracked entities are a subset of the zone's own while none has left, so a count
        // above the zone's means one left; otherwise a sweep now and then catches the rest
        // (crossings and scripts dropping entities without a despawn) without a lookup per
        // tracked entity every tick.
        let tick = self.tick;
        if let Some(zone) = self.zones.get_mut(&z) {
            if zone.spawner.tracked() > entities.len() || tick.is_multiple_of(PRUNE_EVERY) {
                zone.spawner.retain(|id| entities.contains_key(id));
            }
        }
    }
}
