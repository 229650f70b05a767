//! One world tick as a pass over its zones, cut into slices spread over the tick period
//! (`asobi_rules::worlds::SlicePlan`).
//!
//! The zones that exist when a tick begins are listed in grid order and cut into slices;
//! slice `i` runs at its own due time, one slice per timer callback, so the shard serves
//! sessions and other worlds between two slices. Each zone's tick lateness is measured
//! against its slice's due time. A slice does, for its zones, what one tick does (asobi's
//! order): each zone's `zone_tick`, its queued inputs, then the effects neighbours addressed
//! to it (`handle_effects`); spawns, despawns and the respawns that are due (`respawn.rs`);
//! the crossings out of those zones; their border bands (`border.rs`); on a broadcast tick
//! their deltas, then the input acks they hold. Both zones of a crossing broadcast in the same batch (the zone entered broadcasts
//! with the slice of the zone left, again if it ticks later; crossings of a tick without a
//! broadcast are remembered and their zones go out with the next broadcast tick's first
//! slice), so a subscriber never sees a crossing entity in neither zone or in both beyond one
//! batch, as in a single pass. After the last slice: the keyframes of players who joined,
//! `post_tick`, terrain, the phase clock (`phases.rs`), expired players, the reaper.
//!
//! A world of at most `SLICE_ZONES` zones has one slice at the tick's deadline: the tick is
//! one pass, in the order above.
//!
//! A zone whose script defines no `zone_tick` (and has no input for `handle_input` and no
//! effect to handle) skips the Lua round trip: nothing would run, and the entities would come back unchanged; only the
//! `tick` field of its zone state moves, as the round trip would move it.

use std::collections::{BTreeSet, HashMap};
use std::mem;
use std::time::Instant;

use serde_json::{json, Value};

use asobi_rules::worlds::{SlicePlan, ZoneId, REHOME_MARGIN};
use asobi_schema::envelope::encode_frame;

use asobi_script::{ZoneBorder, ZoneCall};

use super::border::BorderView;
use super::script::Effects;
use super::split::subscriber;
use super::{truthy, LiveWorld};
use crate::services::Shard;
use crate::shard::mesh::{Outbound, SessionRef};

/// One tick in progress.
pub(super) struct Pass {
    tick: u64,
    /// When the tick was due; slice `i` is due `plan.offset(i)` later.
    due: Instant,
    plan: SlicePlan,
    /// The zones that existed when the tick began, in grid order.
    zones: Vec<ZoneId>,
    /// The next slice to run.
    next: usize,
    /// This tick sends deltas (every `broadcast_interval`-th tick).
    broadcast: bool,
}

impl Pass {
    /// When the next slice is due; `None` once every slice ran.
    pub(super) fn next_due(&self) -> Option<Instant> {
        (self.next < self.plan.slices()).then(|| self.due + self.plan.offset(self.next))
    }
}

/// Which world callbacks the script defines (read once per slice: a hot reload lands
/// between two callbacks, so between two slices at the earliest).
#[derive(Clone, Copy)]
struct Defined {
    zone_tick: bool,
    handle_input: bool,
}

impl LiveWorld {
    /// Starts tick `self.tick + 1`, due at `due`, over the zones that exist now.
    pub(super) fn begin_pass(&mut self, due: Instant) {
        self.tick += 1;
        let zones: Vec<ZoneId> = self.zones.keys().copied().collect();
        let plan = SlicePlan::new(zones.len(), self.schedule.period());
        self.pass = Some(Pass {
            tick: self.tick,
            due,
            plan,
            zones,
            next: 0,
            broadcast: self
                .tick
                .is_multiple_of(u64::from(self.cfg.broadcast_interval)),
        });
    }

    /// Runs the pass's next slice, and after the last one the end of the tick. Returns the
    /// world's result when it finished; the pass is over (`self.pass` is `None`) after the
    /// last slice or when the world finished.
    pub(super) fn run_slice(&mut self, shard: &Shard, now: Instant) -> Option<Value> {
        let pass = self.pass.as_mut()?;
        let i = pass.next;
        pass.next += 1;
        let range = pass.plan.range(i);
        let slice_due = pass.due + pass.plan.offset(i);
        let tick = pass.tick;
        let broadcast = pass.broadcast;
        let last = pass.next >= pass.plan.slices();
        // The plan was made for this list; `get` keeps a mismatch from ever panicking a shard.
        let mine: Vec<ZoneId> = pass.zones.get(range).map(<[_]>::to_vec).unwrap_or_default();
        let first = i == 0;

        let defined = Defined {
            zone_tick: self.vm.defines("zone_tick"),
            handle_input: self.vm.defines("handle_input"),
        };
        for &z in &mine {
            if !self.tick_zone(shard, z, tick, slice_due, now, defined) {
                break;
            }
        }
        if let Some(result) = self.vm.finished().cloned() {
            self.pass = None;
            return Some(result);
        }
        let moved = self.cross(shard, &mine);
        self.publish_borders(shard, mine.iter().chain(&moved).copied());
        if broadcast {
            // A crossing's two zones go out together, so the entity is never in neither
            // stream nor in both for longer than one batch; so do the pairs of crossings
            // made since the last broadcast.
            let mut sending: BTreeSet<ZoneId> = mine.into_iter().collect();
            sending.extend(moved);
            if first {
                sending.extend(mem::take(&mut self.linked));
            }
            self.broadcast(shard, tick, &sending);
        } else {
            self.linked.extend(moved);
        }
        if !last {
            return None;
        }
        self.pass = None;
        self.end_tick(shard, tick, now)
    }

    /// Zone `z`'s tick (when the lifecycle says it ticks now); `false` once the VM failed
    /// (the rest of the slice is skipped).
    fn tick_zone(
        &mut self,
        shard: &Shard,
        z: ZoneId,
        tick: u64,
        due: Instant,
        now: Instant,
        defined: Defined,
    ) -> bool {
        let Some(zone) = self.zones.get_mut(&z) else {
            return true;
        };
        if !zone.subscribers.is_empty() {
            self.life.touch(z, now);
        }
        // A zone with nothing to simulate is cold and ticks once every `cold_tick_divisor`
        // ticks, unless its script keeps it hot; work (an entity, an input) makes it hot
        // again at this very tick.
        let keep_hot = zone.state.get("_keep_hot").is_some_and(truthy);
        let idle = zone.idle() && !self.border.has_effects(z);
        if !self.life.should_tick(z, tick, idle, keep_hot) {
            return true;
        }
        let late = shard.rt.now().saturating_duration_since(due);
        shard.ops.metrics.zone_tick_lateness.observe(late);
        let effects = self.effects_for(z);
        let Some(zone) = self.zones.get_mut(&z) else {
            return true;
        };
        let inputs = mem::take(&mut zone.inputs);
        if !defined.zone_tick && (inputs.is_empty() || !defined.handle_input) && effects.is_empty()
        {
            // No Lua would run: the entities would come back as they went in (inputs with
            // no `handle_input` are dropped unacknowledged, as the VM drops them).
            stamp_tick(&mut zone.state, tick);
            self.scriptless_ticks += 1;
            if zone.spawner.has_pending() {
                let mut entities = mem::take(&mut zone.entities);
                self.respawn_due(z, &mut entities, now);
                if let Some(zone) = self.zones.get_mut(&z) {
                    zone.entities = entities;
                }
            }
            return true;
        }
        let mut fx = Effects::default();
        let view = BorderView {
            mirror: &self.border,
            zone: z,
        };
        let result = self.vm.zone_tick_with(
            ZoneCall {
                zone: (z.x, z.y),
                tick,
                entities: &zone.entities,
                zone_state: &zone.state,
                inputs,
                effects,
                border: self.border.enabled().then_some(&view as &dyn ZoneBorder),
            },
            &mut fx,
        );
        self.apply(shard, fx);
        let step = match result {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(world_id = %self.id, zone = ?z, "zone tick failed: {e}");
                return !self.vm.failed();
            }
        };
        self.address_effects(shard, step.applies);
        let mut entities = step.entities;
        self.settle_spawns(z, &mut entities, step.despawns, step.spawns, now);
        if let Some(zone) = self.zones.get_mut(&z) {
            for (player, seq) in step.acks {
                let slot = zone.acks.entry(player).or_insert(seq);
                *slot = (*slot).max(seq);
            }
            zone.entities = entities;
            zone.state = step.zone_state;
        }
        true
    }

    /// Moves every entity of `from` that cleared its zone's edge to the zone it is in now; a
    /// player's input, pending ack and view follow their entity. Returns both zones of every
    /// crossing.
    fn cross(&mut self, shard: &Shard, from: &[ZoneId]) -> BTreeSet<ZoneId> {
        let mut moves: Vec<(ZoneId, String, ZoneId)> = Vec::new();
        for z in from {
            let Some(zone) = self.zones.get(z) else {
                continue;
            };
            for (id, e) in &zone.entities {
                let (Some(x), Some(y)) = (
                    e.get("x").and_then(Value::as_f64),
                    e.get("y").and_then(Value::as_f64),
                ) else {
                    continue;
                };
                if let Some(to) = self.grid.rehome(*z, x, y, REHOME_MARGIN) {
                    moves.push((*z, id.clone(), to));
                }
            }
        }
        let mut into = BTreeSet::new();
        for (from, id, to) in moves {
            if !self.local(to) {
                // Into another shard's stripe: handed over (`split.rs`); its old zone keeps
                // showing it until the new owner has.
                self.hand_off(shard, from, &id, to);
                continue;
            }
            if !self.ensure_zone(shard, to) {
                // At the zone ceiling the entity stays where it is.
                continue;
            }
            let Some((e, ack)) = self.zones.get_mut(&from).and_then(|z| {
                let e = z.entities.remove(&id)?;
                Some((e, z.acks.remove(&id)))
            }) else {
                continue;
            };
            if let Some(zone) = self.zones.get_mut(&to) {
                zone.entities.insert(id.clone(), e);
                if let Some(seq) = ack {
                    let slot = zone.acks.entry(id.clone()).or_insert(seq);
                    *slot = (*slot).max(seq);
                }
            }
            into.insert(from);
            into.insert(to);
            let frames = match self.players.get_mut(&id) {
                Some(p) if p.zone == from => {
                    p.zone = to;
                    !p.needs_keyframes
                }
                _ => continue,
            };
            self.vacated(from);
            self.refocus(shard, &id, Some(to), frames);
        }
        into
    }

    /// The deltas of `zones`, each encoded once (in each wire in use), to their subscribers;
    /// then the input acks those zones hold.
    pub(super) fn broadcast(&mut self, shard: &Shard, tick: u64, zones: &BTreeSet<ZoneId>) {
        let mut targets: Vec<SessionRef> = Vec::new();
        let mut binary: Vec<SessionRef> = Vec::new();
        let mut acks: HashMap<String, u64> = HashMap::new();
        for z in zones {
            let Some(zone) = self.zones.get_mut(z) else {
                continue;
            };
            for (player, seq) in zone.acks.drain() {
                let slot = acks.entry(player).or_insert(seq);
                *slot = (*slot).max(seq);
            }
            targets.clear();
            binary.clear();
            for p in &zone.subscribers {
                if let Some((at, reads_binary)) = subscriber(&self.players, self.part.as_ref(), p) {
                    targets.push(at);
                    if reads_binary {
                        binary.push(at);
                    }
                }
            }
            // Entities handed to another shard are still shown here until it has shown
            // them (`split.rs`).
            let ghosts = self.part.as_ref().and_then(|p| p.ghosts.get(z));
            let mut shown = Vec::new();
            for (id, e) in ghosts.into_iter().flatten() {
                if !zone.entities.contains_key(id) {
                    zone.entities.insert(id.clone(), e.clone());
                    shown.push(id);
                }
            }
            // The baseline moves whether or not anyone is watching now.
            let sent = zone.broadcast(*z, tick, !binary.is_empty());
            for id in shown {
                zone.entities.remove(id);
            }
            let Some(b) = sent else {
                continue;
            };
            if !targets.is_empty() {
                shard.rt.deliver_all(&targets, &Outbound::Frame(b.delta));
            }
            if let Some(kf) = b.rekey {
                shard.rt.deliver_all(&binary, &Outbound::Frame(kf));
            }
        }
        for (player, seq) in acks {
            let f = encode_frame("world.ack", None, &json!({ "tick": tick, "seq": seq }));
            self.send(shard, &player, f);
        }
    }

    /// What follows the last slice: keyframes for players who joined, `post_tick`, terrain,
    /// the phase clock, expired players, the reaper, the empty-world check.
    fn end_tick(&mut self, shard: &Shard, tick: u64, now: Instant) -> Option<Value> {
        self.send_pending_keyframes(shard);
        if self.is_host() {
            // The world-level callback runs once per tick, on the host of a split world.
            let mut fx = Effects::default();
            let _ = self.vm.post_tick(tick, &mut fx);
            self.apply(shard, fx);
        }
        if let Some(t) = &self.terrain {
            t.make_pending(&mut self.vm);
        }
        if let Some(result) = self.vm.finished().cloned() {
            return Some(result);
        }
        if let Some(result) = self.tick_phases(shard, now) {
            return Some(result);
        }
        self.expire_players(shard, now);
        self.sweep(shard, now);
        self.expire_empty(now)
    }
}

/// `zone_state.tick = tick`, as the Lua round trip sets it (a state that is not a table
/// becomes one).
fn stamp_tick(state: &mut Value, tick: u64) {
    if !state.is_object() {
        *state = json!({});
    }
    if let Value::Object(m) = state {
        m.insert("tick".into(), json!(tick));
    }
}

#[cfg(test)]
mod tests {
    use super::stamp_tick;
    use serde_json::json;

    #[test]
    fn the_skipped_round_trip_stamps_the_tick_as_lua_would() {
        let mut s = json!({ "weather": "rain", "tick": 3 });
        stamp_tick(&mut s, 4);
        assert_eq!(s, json!({ "weather": "rain", "tick": 4 }));
        let mut s = json!(null);
        stamp_tick(&mut s, 7);
        assert_eq!(s, json!({ "tick": 7 }));
    }
}
