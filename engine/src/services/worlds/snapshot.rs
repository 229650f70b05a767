//! Snapshots of persistent worlds (`persistent = true`): each such world writes its zones'
//! entities and zone state to storage every `snapshot_interval` ticks and once more at
//! shutdown, and comes back after a restart with them, `on_world_recovered(snapshot, state)`
//! called as asobi calls it.
//!
//! What this module owns and what it must not do:
//!
//! * [`Persist`], on each persistent [`LiveWorld`]: the cadence and a hash of what each zone
//!   last handed to storage, so an unchanged zone is not written again.
//! * [`Writer`], one per shard: the snapshots waiting for storage, at most one per world (a
//!   newer snapshot of a world replaces the waiting one, as asobi's snapshotter keeps one per
//!   zone), and the one task writing them. The tick only builds the snapshot and queues it; it
//!   never awaits storage (DESIGN.md: storage is off the hot path), and it never spawns while
//!   the world slab is borrowed: the flush starts from the timer queue.
//! * Recovery at start-up: every shard reads the stored worlds it owns (`owner(world_id)`)
//!   and starts each again under its old id.
//!
//! Guarantees. A world's snapshot is one storage transaction (the world row and every zone it
//! carries), so it is never torn: after a restart each zone, and the world as a whole, is as it
//! was at one tick. Snapshots are taken every interval whether or not the previous one has been
//! written (the newer one replaces it in the queue), so a crash loses at most the ticks since
//! the last snapshot that reached storage: one interval plus the write's own latency.
//!
//! Where asobi-rs differs from asobi, and why:
//!
//! * asobi documents that no world writes a snapshot today (`world-server.md`, "Snapshots");
//!   here a persistent world does, with asobi's `snapshot_interval` (ticks, default 600) and
//!   asobi's table shape. `snapshot_interval = 0` keeps only the shutdown snapshot.
//! * The stored entities are asobi's selection: not players (they rejoin and spawn again) and
//!   not entities marked `persistent = false`.
//! * A world that finishes by its own script is over: its rows are deleted. One stopped by a
//!   shutdown, or by its script failing too often, keeps them and comes back. (asobi keeps a finished persistent world's rows, but
//!   nothing starts it again.)
//! * `generate_world` still runs for a recovered world (its seed is the world id's, so it
//!   regenerates the same zones); a zone with a snapshot then takes the snapshot's zone state.
//!   A zone that was never snapshotted (never created) gets its generated state when it is
//!   first needed, as in a new world.
//! * `on_world_recovered` receives the zones keyed `"x,y"` (as `generate_world` returns them),
//!   each `{zone_x, zone_y, entities, zone_state, entity_timers, spawner_state, tick,
//!   snapshot_at}`; asobi keys them by coordinate tuple, which Lua has no form for.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use asobi_rules::worlds::{Entities, Spawner, ZoneId};
use asobi_storage::{WorldRecord, WorldSnapshot, ZoneSnapshot, MAX_PERSISTENT_WORLDS};

use super::script::Effects;
use super::{LiveWorld, Timer};
use crate::services::accounts::tokens::now_ms;
use crate::services::ops::metrics::bump;
use crate::services::{Shard, Timer as ShardTimer};

/// asobi's default `snapshot_interval`, in world ticks (30 s at the default 50 ms tick).
pub(super) const DEFAULT_SNAPSHOT_INTERVAL: u64 = 600;

/// Pause before retrying a failed write or a failed start-up load (the database is down or
/// busy; retrying at once would only add load).
const RETRY: Duration = Duration::from_secs(1);

/// How long shutdown waits for the last snapshots to reach storage.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// A persistent world's snapshot bookkeeping.
pub(super) struct Persist {
    /// Ticks between two snapshots; 0: only at shutdown.
    interval: u64,
    /// Per zone, a hash of the entities and zone state last handed to storage.
    written: HashMap<ZoneId, u64>,
}

impl Persist {
    /// The bookkeeping for a world of this shape, `None` when it is not persistent.
    pub(super) fn for_world(persistent: bool, globals: &Map<String, Value>) -> Option<Persist> {
        if !persistent {
            return None;
        }
        let interval = match globals.get("snapshot_interval") {
            None => DEFAULT_SNAPSHOT_INTERVAL,
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(|f| f as u64)
                })
                .unwrap_or(DEFAULT_SNAPSHOT_INTERVAL),
        };
        Some(Persist {
            interval,
            written: HashMap::new(),
        })
    }
}

/// What the writer does for one world.
enum Job {
    Save(WorldSnapshot),
    Forget,
}

/// The shard's snapshot writer: what waits for storage and whether the task runs.
#[derive(Default)]
pub(crate) struct Writer {
    /// At most one job per world id.
    pending: RefCell<BTreeMap<String, Job>>,
    /// The writing task runs.
    flushing: Cell<bool>,
    /// A flush timer is armed.
    armed: Cell<bool>,
}

/// Entities worth keeping: asobi's selection (no players, none marked `persistent = false`).
fn kept_entities(entities: &Entities) -> Map<String, Value> {
    entities
        .iter()
        .filter(|(_, e)| {
            e.get("type").and_then(Value::as_str) != Some("player")
                && e.get("persistent").and_then(Value::as_bool) != Some(false)
        })
        .map(|(id, e)| (id.clone(), Value::Object(e.clone())))
        .collect()
}

fn content_hash(entities: &Map<String, Value>, state: &Value, spawner: &Value) -> u64 {
    let mut bytes = serde_json::to_vec(entities).unwrap_or_default();
    bytes.push(0);
    bytes.extend(serde_json::to_vec(state).unwrap_or_default());
    bytes.push(0);
    bytes.extend(serde_json::to_vec(spawner).unwrap_or_default());
    asobi_rules::placement::fnv1a64(&bytes)
}

/// The world's snapshot now: its row and every zone whose content changed since it was last
/// handed to storage.
pub(super) fn take(w: &mut LiveWorld, now: Instant) -> Option<WorldSnapshot> {
    let p = w.persist.as_mut()?;
    let at = now_ms();
    let tick = i64::try_from(w.tick).unwrap_or(i64::MAX);
    let mut zones = Vec::new();
    for (z, zone) in &w.zones {
        let entities = kept_entities(&zone.entities);
        // The spawner's state (respawns waiting, spawn counts) goes with its zone; a zone
        // with a respawn waiting is rewritten at each snapshot (its due time is stored as a
        // wall-clock time), one with none only when something changed.
        let spawner = zone.spawner.to_json(now, at);
        let h = content_hash(&entities, &zone.state, &spawner);
        if p.written.get(z) == Some(&h) {
            continue;
        }
        p.written.insert(*z, h);
        zones.push(ZoneSnapshot {
            zone_x: i64::from(z.x),
            zone_y: i64::from(z.y),
            entities: Value::Object(entities),
            zone_state: zone.state.clone(),
            entity_timers: json!({}),
            spawner_state: spawner,
            tick,
            snapshot_at: at,
        });
    }
    Some(WorldSnapshot {
        world: WorldRecord {
            world_id: w.id.clone(),
            mode: w.mode.name.clone(),
            creator: w.creator.clone(),
            started_at: w.started_at,
            tick,
            snapshot_at: at,
        },
        zones,
        removed: Vec::new(),
    })
}

/// After a tick the world survived: a snapshot when one is due.
pub(super) fn after_tick(shard: &Shard, w: &mut LiveWorld) {
    let due = w
        .persist
        .as_ref()
        .is_some_and(|p| p.interval > 0 && w.tick.is_multiple_of(p.interval));
    if !due {
        return;
    }
    if let Some(s) = take(w, shard.rt.now()) {
        queue(shard, Job::Save(s));
    }
}

/// Shutdown: the world's last snapshot. The world is finished next and must keep its rows, so
/// its bookkeeping is dropped here (see [`finished`]).
pub(super) fn at_shutdown(shard: &Shard, w: &mut LiveWorld) {
    if let Some(s) = take(w, shard.rt.now()) {
        queue(shard, Job::Save(s));
    }
    w.persist = None;
}

/// A world ended other than by shutdown: a persistent one that its script finished is over
/// and its rows go. One whose script failed too often keeps them (a broken deploy must not
/// erase a world; fixed code brings it back at the next start).
pub(super) fn finished(shard: &Shard, w: &LiveWorld) {
    if w.persist.is_none() {
        return;
    }
    if w.vm.failed() {
        tracing::warn!(world_id = %w.id, "persistent world stopped by script failures; its snapshot is kept");
        return;
    }
    queue_job(shard, w.id.clone(), Job::Forget);
}

fn queue(shard: &Shard, job: Job) {
    let Job::Save(s) = &job else { return };
    let id = s.world.world_id.clone();
    queue_job(shard, id, job);
}

fn queue_job(shard: &Shard, id: String, job: Job) {
    let writer = &shard.worlds.snapshots;
    {
        let mut pending = writer.pending.borrow_mut();
        let job = match (job, pending.remove(&id)) {
            // The older snapshot's zones that the newer one skipped (unchanged since the
            // older was taken) must still be written: the newer one assumed they were.
            (Job::Save(newer), Some(Job::Save(older))) => Job::Save(merge(older, newer)),
            (job, _) => job,
        };
        pending.insert(id, job);
    }
    if !writer.armed.get() && !writer.flushing.get() {
        writer.armed.set(true);
        shard
            .rt
            .arm(shard.rt.now(), ShardTimer::Worlds(Timer::SnapshotFlush));
    }
}

/// `newer` plus `older`'s zones it does not carry itself.
fn merge(older: WorldSnapshot, mut newer: WorldSnapshot) -> WorldSnapshot {
    for z in older.zones {
        let here = |x: i64, y: i64| x == z.zone_x && y == z.zone_y;
        let covered = newer.zones.iter().any(|n| here(n.zone_x, n.zone_y))
            || newer.removed.iter().any(|(x, y)| here(*x, *y));
        if !covered {
            newer.zones.push(z);
        }
    }
    for (x, y) in older.removed {
        if !newer.zones.iter().any(|n| n.zone_x == x && n.zone_y == y)
            && !newer.removed.contains(&(x, y))
        {
            newer.removed.push((x, y));
        }
    }
    newer
}

/// The flush timer fired: start the writing task unless it runs.
pub(super) fn on_flush_timer(shard: &Rc<Shard>) {
    shard.worlds.snapshots.armed.set(false);
    start_flush(shard);
}

fn start_flush(shard: &Rc<Shard>) {
    let writer = &shard.worlds.snapshots;
    if writer.flushing.get() || writer.pending.borrow().is_empty() {
        return;
    }
    writer.flushing.set(true);
    let s = shard.clone();
    shard.rt.spawn(async move {
        flush(&s).await;
        s.worlds.snapshots.flushing.set(false);
    });
}

/// Writes pending jobs one world at a time until none is left.
async fn flush(shard: &Rc<Shard>) {
    let store = &shard.ctx.store;
    loop {
        let next = shard.worlds.snapshots.pending.borrow_mut().pop_first();
        let Some((id, job)) = next else { return };
        match job {
            Job::Save(s) => {
                let zones = s.zones.len();
                match store.save_world_snapshot(s.clone()).await {
                    Ok(()) => {
                        bump(&shard.ops.metrics.world_snapshots_written);
                        tracing::debug!(world_id = %id, zones, tick = s.world.tick, "world snapshot written");
                    }
                    Err(e) => {
                        bump(&shard.ops.metrics.world_snapshot_failures);
                        tracing::warn!(world_id = %id, "world snapshot not written, retrying: {e}");
                        requeue(shard, id, s);
                        shard.rt.sleep(RETRY).await;
                    }
                }
            }
            Job::Forget => {
                if let Err(e) = store.delete_world_snapshot(&id).await {
                    tracing::warn!(world_id = %id, "finished world's snapshot not deleted, retrying: {e}");
                    shard
                        .worlds
                        .snapshots
                        .pending
                        .borrow_mut()
                        .entry(id)
                        .or_insert(Job::Forget);
                    shard.rt.sleep(RETRY).await;
                }
            }
        }
    }
}

/// A snapshot whose write failed goes back in line, under any newer one of the same world
/// (and not at all when the world has been forgotten since).
fn requeue(shard: &Shard, id: String, failed: WorldSnapshot) {
    let mut pending = shard.worlds.snapshots.pending.borrow_mut();
    let job = match pending.remove(&id) {
        Some(Job::Save(newer)) => Job::Save(merge(failed, newer)),
        Some(Job::Forget) => Job::Forget,
        None => Job::Save(failed),
    };
    pending.insert(id, job);
}

/// Shutdown: waits until every queued snapshot is written (or the deadline passes).
pub(crate) async fn flush_for_shutdown(shard: &Rc<Shard>) {
    let deadline = shard.rt.now() + SHUTDOWN_FLUSH;
    loop {
        start_flush(shard);
        let writer = &shard.worlds.snapshots;
        if !writer.flushing.get() && writer.pending.borrow().is_empty() {
            return;
        }
        if shard.rt.now() >= deadline {
            tracing::warn!(
                left = writer.pending.borrow().len(),
                "world snapshots not all written before shutdown"
            );
            return;
        }
        shard.rt.sleep(Duration::from_millis(5)).await;
    }
}

/// What a recovered world starts from.
pub(super) struct Recovered {
    pub(super) world: WorldRecord,
    pub(super) zones: Vec<ZoneSnapshot>,
}

/// Puts a recovered world's state back, after `init`, `spawn_templates` and `generate_world`
/// ran: `on_world_recovered(snapshot, state)`, then each zone's entities and zone state, then
/// the tick count.
pub(super) fn recover(shard: &Shard, w: &mut LiveWorld, r: Recovered) {
    let now = shard.rt.now();
    let mut snapshot = Map::new();
    for z in &r.zones {
        snapshot.insert(
            format!("{},{}", z.zone_x, z.zone_y),
            json!({
                "zone_x": z.zone_x,
                "zone_y": z.zone_y,
                "entities": z.entities,
                "zone_state": z.zone_state,
                "entity_timers": z.entity_timers,
                "spawner_state": z.spawner_state,
                "tick": z.tick,
                "snapshot_at": z.snapshot_at,
            }),
        );
    }
    let mut fx = Effects::default();
    if let Err(e) = w.vm.world_recovered(&Value::Object(snapshot), &mut fx) {
        tracing::warn!(world_id = %w.id, "on_world_recovered failed: {e}");
    }
    w.apply(shard, fx);
    let mut restored = 0usize;
    for z in r.zones {
        let (Ok(x), Ok(y)) = (u32::try_from(z.zone_x), u32::try_from(z.zone_y)) else {
            tracing::warn!(world_id = %w.id, x = z.zone_x, y = z.zone_y, "snapshot zone outside the grid; skipped");
            continue;
        };
        let id = ZoneId::new(x, y);
        if !w.ensure_zone(shard, id) {
            tracing::warn!(world_id = %w.id, zone = ?id, "snapshot zone outside the grid or over the zone ceiling; skipped");
            continue;
        }
        let entities: Entities = match z.entities {
            Value::Object(m) => m
                .into_iter()
                .filter_map(|(eid, e)| match e {
                    Value::Object(fields) => Some((eid, fields)),
                    _ => None,
                })
                .collect(),
            _ => Entities::new(),
        };
        restored += entities.len();
        let Some(zone) = w.zones.get_mut(&id) else {
            continue;
        };
        zone.entities = entities;
        if z.zone_state.is_object() {
            zone.state = z.zone_state;
        }
        zone.spawner = Spawner::from_json(
            &z.spawner_state,
            now,
            now_ms(),
            super::respawn::spawner_seed(&w.id, id),
        );
        if let Some(p) = w.persist.as_mut() {
            let spawner = zone.spawner.to_json(now, now_ms());
            p.written.insert(
                id,
                content_hash(&kept_entities(&zone.entities), &zone.state, &spawner),
            );
        }
    }
    w.tick = u64::try_from(r.world.tick).unwrap_or(0);
    tracing::info!(world_id = %w.id, mode = %w.mode.name, zones = w.zones.len(), entities = restored, tick = w.tick, "world recovered from its snapshot");
}

/// Start-up: brings back the stored persistent worlds this shard owns.
pub(crate) fn start(shard: &Rc<Shard>) {
    let s = shard.clone();
    shard.rt.spawn(async move {
        while let Err(e) = boot(&s).await {
            tracing::warn!(
                shard = s.id(),
                "persistent worlds not loaded, retrying: {e}"
            );
            s.rt.sleep(RETRY).await;
        }
    });
}

async fn boot(shard: &Rc<Shard>) -> Result<(), asobi_storage::StoreError> {
    let store = &shard.ctx.store;
    let me = shard.id();
    let stored = store.persistent_worlds(MAX_PERSISTENT_WORLDS).await?;
    for rec in stored {
        if asobi_rules::placement::owner(&rec.world_id, shard.rt.nshards()) != me
            || shard.worlds.key_of(&rec.world_id).is_some()
        {
            continue;
        }
        let Some((world, zones)) = store.world_snapshot(&rec.world_id).await? else {
            continue;
        };
        let id = world.world_id.clone();
        let mode = world.mode.clone();
        if let Err(e) = super::recreate(shard, Recovered { world, zones }) {
            tracing::warn!(world_id = %id, %mode, "persistent world not recovered: {}", e.code);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(x: i64, y: i64, tick: i64) -> ZoneSnapshot {
        ZoneSnapshot {
            zone_x: x,
            zone_y: y,
            entities: json!({}),
            zone_state: json!({ "t": tick }),
            entity_timers: json!({}),
            spawner_state: json!({}),
            tick,
            snapshot_at: tick,
        }
    }

    fn snap(tick: i64, zones: Vec<ZoneSnapshot>, removed: Vec<(i64, i64)>) -> WorldSnapshot {
        WorldSnapshot {
            world: WorldRecord {
                world_id: "w".into(),
                mode: "m".into(),
                creator: None,
                started_at: 0,
                tick,
                snapshot_at: tick,
            },
            zones,
            removed,
        }
    }

    #[test]
    fn a_newer_snapshot_keeps_the_older_zones_it_skipped() {
        let older = snap(
            10,
            vec![zone(0, 0, 10), zone(1, 0, 10), zone(2, 0, 10)],
            vec![(5, 5)],
        );
        let newer = snap(20, vec![zone(1, 0, 20)], vec![(2, 0)]);
        let m = merge(older, newer);
        assert_eq!(m.world.tick, 20);
        let mut got: Vec<(i64, i64, i64)> = m
            .zones
            .iter()
            .map(|z| (z.zone_x, z.zone_y, z.tick))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [(0, 0, 10), (1, 0, 20)],
            "(2,0) removed by the newer one"
        );
        let mut removed = m.removed.clone();
        removed.sort_unstable();
        assert_eq!(removed, [(2, 0), (5, 5)]);
    }

    #[test]
    fn players_and_transient_entities_are_not_kept() {
        let mut e = Entities::new();
        let obj = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        e.insert("p1".into(), obj(json!({ "x": 1, "type": "player" })));
        e.insert("tree".into(), obj(json!({ "x": 2, "type": "prop" })));
        e.insert("spark".into(), obj(json!({ "x": 3, "persistent": false })));
        e.insert("rock".into(), obj(json!({ "x": 4, "persistent": true })));
        let kept: Vec<String> = kept_entities(&e).keys().cloned().collect();
        assert_eq!(kept, ["rock", "tree"]);
    }

    #[test]
    fn the_interval_is_asobis_global() {
        let g = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        assert!(Persist::for_world(false, &Map::new()).is_none());
        let p = Persist::for_world(true, &Map::new()).map(|p| p.interval);
        assert_eq!(p, Some(DEFAULT_SNAPSHOT_INTERVAL));
        let p =
            Persist::for_world(true, &g(json!({ "snapshot_interval": 20 }))).map(|p| p.interval);
        assert_eq!(p, Some(20));
        let p = Persist::for_world(true, &g(json!({ "snapshot_interval": 0 }))).map(|p| p.interval);
        assert_eq!(p, Some(0));
        let p =
            Persist::for_world(true, &g(json!({ "snapshot_interval": "x" }))).map(|p| p.interval);
        assert_eq!(p, Some(DEFAULT_SNAPSHOT_INTERVAL));
    }
}
