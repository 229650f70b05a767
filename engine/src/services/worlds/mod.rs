//! Live worlds on a shard (asobi's `game_type = "world"`): a grid of zones, each owning its
//! entities and zone state, ticked on the shard's timer queue; players placed at
//! `spawn_position`, seeing the zones within `view_radius`, fed per-zone `world.tick` deltas.
//!
//! A world is owned by the shard it was created on and touched only there; worlds live in a
//! `Slab` addressed by [`WorldKey`] (slot + generation, so a stale timer finds nothing). One
//! timer per world drives every zone of it (no task or timer per zone). The rules — the grid,
//! interest rings, delta streams, which zones exist and how often each ticks, how a tick's
//! zones are spread over the period — are `asobi_rules::worlds`; the script is one [`WorldVm`] per world. Every frame a zone sends is
//! encoded once (in JSON and, when a subscriber reads it, asobi's binary wire; see [`zone`])
//! and handed to each subscriber's outbox by reference.
//!
//! Zones (asobi's `large-worlds.md`): at or below a 100-zone grid every zone exists from the
//! start; above it (or with `lazy_zones = true`) a zone is created when a player's entity or
//! view needs it, up to the active-zone ceiling. The reaper sweeps every 10 s and stops zones
//! left by their last occupant or idle past `zone_idle_timeout`, when they hold nothing and
//! nobody watches them (`on_zone_unloaded`). A zone with nothing to simulate ticks once every
//! `cold_tick_divisor` ticks unless its state sets `_keep_hot`.
//!
//! Order of one tick, as asobi's (`pass.rs`): for each live zone due this tick, `zone_tick`
//! then that zone's queued inputs (`handle_input`); spawns and despawns; then zone crossings
//! (an entity past its zone's edge by the rehome margin moves to the neighbour, and a moving
//! player's view follows: leave frames for zones that left it, terrain and keyframes for
//! zones that entered it); on every `broadcast_interval`-th tick each zone's delta and the
//! input acks; then `post_tick(tick, state)`, the terrain the script asked for, expired
//! players and the reaper. A world of more than `SLICE_ZONES` zones runs that order in
//! slices of zones spread over the tick period, so no zone waits behind a pass over all of
//! them and the shard serves everything else in between.

mod border;
pub(crate) mod cmd;
mod directory;
mod error;
mod pass;
mod phases;
mod respawn;
pub(crate) mod rest;
mod script;
#[cfg(test)]
mod sim_tests;
pub(crate) mod snapshot;
pub(crate) mod split;
#[cfg(test)]
mod split_tests;
mod terrain;
pub(crate) mod ws;
mod zone;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use slab::Slab;

use asobi_rules::matches::TickSchedule;
use asobi_rules::worlds::{
    Admit, BorderMirror, Entities, Grid, Interest, Lifecycle, Stripes, WorldConfig, ZoneId,
};
use asobi_schema::envelope::encode_frame;
use asobi_schema::ApiError;
use asobi_script::{CompiledMode, GameType, JoinOutcome, VmPool, WorldVm, ZoneInput};

pub(crate) use directory::{Directory, WorldEntry, WorldInfo};
pub(crate) use error::Error;
use script::Effects;
use zone::Zone;

use super::accounts::tokens::now_ms;
use super::{Event, Shard, Timer as ShardTimer};
use crate::shard::answer;
use crate::shard::mesh::{Outbound, ReplyTo, SessionRef};
use crate::wire::Frame;

/// Live worlds the deployment runs at most (asobi's `world_max` default).
pub(crate) const WORLD_MAX: usize = 1000;
/// Live worlds one player may have created (asobi's `world_max_per_player` default).
pub(crate) const WORLD_MAX_PER_PLAYER: usize = 5;
/// Inputs one zone queues between two ticks. At the session rate limit (60 messages/s) and
/// 20 ticks/s a player sends about 3 per tick; 4,096 holds a thousand players crowding one
/// zone. Past it an input is dropped like a lost datagram.
const MAX_ZONE_INPUTS: usize = 4096;
/// How long a created world that nobody ever joined lives (as a match waits for players).
const UNJOINED_GRACE: Duration = Duration::from_secs(60);

/// A world on this shard: its slab slot and that slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WorldKey {
    slot: usize,
    gen: u64,
}

/// The worlds service's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The world's next tick is due.
    Tick(WorldKey),
    /// Snapshots wait for storage (`snapshot.rs`).
    SnapshotFlush,
}

/// What a session learns about its world membership.
#[derive(Debug, Clone)]
pub(crate) enum SessionEvent {
    /// The session is in this world (hosted on `shard`).
    Entered { world_id: String, shard: usize },
    /// The session is no longer in this world.
    Left { world_id: String },
}

fn event(e: SessionEvent) -> Outbound<Event> {
    Outbound::Event(Event::Worlds(e))
}

/// A player in a world.
struct Player {
    session: Option<SessionRef>,
    /// The zone holding the player's entity (where their input goes).
    zone: ZoneId,
    interest: Interest,
    /// Disconnected since, while the entity is held for `player_ttl_ms`.
    gone_at: Option<Instant>,
    /// Joined or came back since the last tick: their view is sent whole at the next tick,
    /// after the `world.joined` reply.
    needs_keyframes: bool,
    /// The session negotiated `wire: "binary"`: `world.tick` in asobi's binary encoding.
    binary: bool,
}

pub(crate) struct LiveWorld {
    id: String,
    key: WorldKey,
    mode: Arc<CompiledMode>,
    cfg: WorldConfig,
    grid: Grid,
    vm: WorldVm,
    /// `spawn_templates`' result, by template id.
    templates: Map<String, Value>,
    /// `generate_world`'s zone states, by `"x,y"`, handed to a zone when it is created.
    generated: Map<String, Value>,
    zones: BTreeMap<ZoneId, Zone>,
    /// Which zones exist and how often each ticks.
    life: Lifecycle,
    /// The world's terrain, when its script names a provider.
    terrain: Option<terrain::WorldTerrain>,
    players: BTreeMap<String, Player>,
    tick: u64,
    schedule: TickSchedule,
    armed: Option<Instant>,
    started_at: i64,
    creator: Option<String>,
    /// Empty since; with no player ever, since creation.
    empty_since: Option<Instant>,
    ever_joined: bool,
    /// Snapshot bookkeeping of a persistent world (`snapshot.rs`).
    persist: Option<snapshot::Persist>,
    /// The tick in progress, between its first and last slice (`pass.rs`).
    pass: Option<pass::Pass>,
    /// Both zones of every crossing since the last broadcast tick: they broadcast together
    /// in its first slice (`pass.rs`).
    linked: BTreeSet<ZoneId>,
    /// Zone ticks that skipped the Lua round trip (no `zone_tick`, no input to handle).
    scriptless_ticks: u64,
    /// This shard's part of a world split over several shards (`split.rs`); `None` for a
    /// world that lives on one shard.
    part: Option<split::Part>,
    /// The zones' border bands and the effects addressed across seams (`border.rs`).
    border: BorderMirror,
    /// The script's phase list, when it declares one (`phases.rs`).
    phases: Option<Box<phases::WorldPhases>>,
}

/// The worlds this shard hosts.
pub(crate) struct Worlds {
    slab: RefCell<Slab<LiveWorld>>,
    by_id: RefCell<HashMap<String, WorldKey>>,
    pool: RefCell<Option<VmPool>>,
    next_gen: Cell<u64>,
    snapshots: snapshot::Writer,
    /// Commands for other parts of split worlds waiting for room in a full channel.
    retry: split::Retry,
}

impl Default for Worlds {
    fn default() -> Self {
        Worlds {
            slab: RefCell::new(Slab::new()),
            by_id: RefCell::new(HashMap::new()),
            pool: RefCell::new(None),
            next_gen: Cell::new(0),
            snapshots: snapshot::Writer::default(),
            retry: split::Retry::default(),
        }
    }
}

impl Worlds {
    fn key_of(&self, id: &str) -> Option<WorldKey> {
        self.by_id.borrow().get(id).copied()
    }

    fn with<T>(&self, key: WorldKey, f: impl FnOnce(&mut LiveWorld) -> T) -> Option<T> {
        let mut slab = self.slab.borrow_mut();
        slab.get_mut(key.slot).filter(|w| w.key == key).map(f)
    }
}

fn text(bytes: Bytes) -> Option<Outbound<Event>> {
    Frame::text(bytes).map(Outbound::Frame)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl LiveWorld {
    fn info(&self) -> WorldInfo {
        WorldInfo {
            world_id: self.id.clone(),
            mode: self.mode.name.clone(),
            status: "running".into(),
            player_count: self.population() as u32,
            max_players: self.mode.config.max_players,
            grid_size: self.cfg.grid_size,
            started_at: self.started_at,
            phase: self.phase_listing(),
        }
    }

    fn entry(&self, shard: usize) -> WorldEntry {
        WorldEntry {
            shard,
            info: self.info(),
            listed: self.cfg.listed,
            quick_play: self.cfg.quick_play,
            creator: self.creator.clone(),
        }
    }

    /// asobi's `world.joined` payload.
    fn joined_payload(&self) -> Value {
        let i = self.info();
        let mut payload = json!({
            "world_id": i.world_id,
            "mode": i.mode,
            "status": i.status,
            "player_count": i.player_count,
            "max_players": i.max_players,
            "players": self.roster(),
            "grid_size": i.grid_size,
            "zone_size": self.cfg.zone_size,
            "view_radius": self.cfg.view_radius,
            "started_at": i.started_at,
        });
        if let (Some(phase), Some(m)) = (i.phase, payload.as_object_mut()) {
            m.insert("phase".into(), phase);
        }
        payload
    }

    fn sessions(&self) -> Vec<SessionRef> {
        self.players.values().filter_map(|p| p.session).collect()
    }

    fn session_of(&self, player: &str) -> Option<SessionRef> {
        match self.players.get(player) {
            Some(p) => p.session,
            None => self
                .part
                .as_ref()
                .and_then(|part| part.remote.get(player))
                .and_then(|w| w.session),
        }
    }

    /// The zone at `z`, created (with its generated state, and `on_zone_loaded` called) if
    /// absent; `false` outside the grid and at the active-zone ceiling (a player whose view
    /// or entity would need one more is not given it: the zone stays absent until others go).
    fn ensure_zone(&mut self, shard: &Shard, z: ZoneId) -> bool {
        if !self.grid.contains(z) || !self.local(z) {
            return false;
        }
        let now = shard.rt.now();
        match self.life.admit(z, now) {
            Admit::Live if self.zones.contains_key(&z) => return true,
            Admit::Ceiling => return false,
            Admit::Live | Admit::Create => {}
        }
        let mut state = self
            .generated
            .get(&z.key())
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let mut fx = Effects::default();
        match self.vm.zone_loaded(z.x, z.y, &mut fx) {
            Ok(Some(zone_state)) => state = zone_state,
            Ok(None) => {}
            Err(e) => tracing::debug!(world_id = %self.id, zone = ?z, "on_zone_loaded failed: {e}"),
        }
        self.apply(shard, fx);
        self.zones.insert(z, Zone::new(Entities::new(), state));
        true
    }

    /// The reaper's sweep: zones idle past the timeout (or left by their last occupant) stop
    /// when they hold nothing and nobody watches them, calling `on_zone_unloaded`; the others
    /// decline and stay (asobi: a reap is a proposal). Zone contents are not kept, as in
    /// asobi.
    fn sweep(&mut self, shard: &Shard, now: Instant) {
        for z in self.life.poll_sweep(now) {
            let busy = self
                .zones
                .get(&z)
                .is_some_and(|zone| !zone.idle() || !zone.subscribers.is_empty());
            if busy {
                self.life.decline(z, now);
                continue;
            }
            self.border.withdraw(z);
            if self.on_seam(z) {
                self.send_band(shard, z, &Entities::new());
            }
            if self.zones.remove(&z).is_none() {
                continue;
            }
            let mut fx = Effects::default();
            if let Err(e) = self.vm.zone_unloaded(z.x, z.y, &mut fx) {
                tracing::debug!(world_id = %self.id, zone = ?z, "on_zone_unloaded failed: {e}");
            }
            self.apply(shard, fx);
        }
    }

    /// `z` lost an occupant: when no player's entity is left in it, it may go at the next
    /// sweep.
    fn vacated(&mut self, z: ZoneId) {
        let occupied = self
            .zones
            .get(&z)
            .is_some_and(|zone| zone.entities.keys().any(|id| self.players.contains_key(id)));
        if !occupied {
            self.life.release(z);
        }
    }

    /// Delivers what a callback's effects asked for.
    fn apply(&self, shard: &Shard, fx: Effects) {
        if fx.frames.is_empty() {
            return;
        }
        let all = self.sessions();
        for (target, bytes) in fx.frames {
            if self.part.is_some() {
                match &target {
                    Some(p) if self.players.contains_key(p) => {}
                    _ => self.deliver_elsewhere(shard, target.as_deref(), &bytes),
                }
            }
            let Some(out) = text(bytes) else { continue };
            match target {
                None => shard.rt.deliver_all(&all, &out),
                Some(p) => {
                    if let Some(at) = self.players.get(&p).and_then(|p| p.session) {
                        shard.rt.deliver(at, out);
                    }
                }
            }
        }
    }

    fn send(&self, shard: &Shard, player: &str, bytes: Bytes) {
        if let (Some(at), Some(out)) = (self.session_of(player), text(bytes)) {
            shard.rt.deliver(at, out);
        }
    }

    fn send_frame(&self, shard: &Shard, player: &str, frame: Frame) {
        if let Some(at) = self.session_of(player) {
            shard.rt.deliver(at, Outbound::Frame(frame));
        }
    }

    fn reads_binary(&self, player: &str) -> bool {
        match self.players.get(player) {
            Some(p) => p.binary,
            None => self
                .part
                .as_ref()
                .and_then(|part| part.remote.get(player))
                .is_some_and(|w| w.binary),
        }
    }

    /// `z`'s `world.terrain` to `player`, when the world has terrain (built once per zone).
    fn send_terrain(&mut self, shard: &Shard, player: &str, z: ZoneId) {
        let Some(t) = self.terrain.as_ref() else {
            return;
        };
        let cached = self.zones.get(&z).and_then(|zone| zone.terrain.clone());
        let frame = match cached {
            Some(f) => f,
            None => {
                let coords = (z.x as i32, z.y as i32);
                let f = t.frame(&mut self.vm, coords);
                if let Some(zone) = self.zones.get_mut(&z) {
                    zone.terrain = Some(f.clone());
                }
                f
            }
        };
        if let Some(f) = frame {
            self.send_frame(shard, player, f);
        }
    }

    /// What a player gets when they subscribe to `z`: its terrain chunk, then its keyframe.
    fn send_view_of(&mut self, shard: &Shard, player: &str, z: ZoneId) {
        self.send_terrain(shard, player, z);
        self.send_keyframe(shard, player, z);
    }

    /// The keyframe of `z` to `player` (an empty one for a zone that does not exist).
    fn send_keyframe(&mut self, shard: &Shard, player: &str, z: ZoneId) {
        let binary = self.reads_binary(player);
        let frame = match self.zones.get_mut(&z) {
            Some(zone) => zone.keyframe(z, binary),
            None => Zone::new(Entities::new(), json!({})).keyframe(z, binary),
        };
        if let Some(f) = frame {
            self.send_frame(shard, player, f);
        }
    }

    /// `player`'s view moved: unsubscribe and send leave frames for zones that left it,
    /// subscribe and send keyframes for zones that entered it (frames only when `frames`).
    fn refocus(&mut self, shard: &Shard, player: &str, center: Option<ZoneId>, frames: bool) {
        let Some(p) = self.players.get_mut(player) else {
            return;
        };
        let binary = p.binary;
        let change = p.interest.move_to(&self.grid, center);
        if self.part.is_some() {
            let enter = split::remote_only(self, &change.entered);
            let leave = split::remote_only(self, &change.left);
            if !enter.is_empty() || !leave.is_empty() {
                self.watch_remote(shard, player, &enter, &leave, frames);
            }
        }
        for z in change.left {
            let Some(zone) = self.zones.get_mut(&z) else {
                continue;
            };
            zone.subscribers.remove(player);
            if frames {
                if let Some(f) = zone.leave(z, binary) {
                    self.send_frame(shard, player, f);
                }
            }
        }
        for z in change.entered {
            if !self.ensure_zone(shard, z) {
                continue;
            }
            if let Some(zone) = self.zones.get_mut(&z) {
                zone.subscribers.insert(player.to_owned());
            }
            if frames {
                self.send_view_of(shard, player, z);
            }
        }
        if let (Some(t), Some(c)) = (self.terrain.as_ref(), center) {
            let coords = (c.x as i32, c.y as i32);
            t.preload_around(&mut self.vm, coords, self.cfg.view_radius, self.grid.size());
        }
    }

    /// Takes `player` out: their entity, their view, the script's `leave`.
    fn remove_player(&mut self, shard: &Shard, player: &str) -> Option<SessionRef> {
        if self.part.is_some() {
            let seen = self.players.get(player)?.interest.zones(&self.grid);
            let remote = split::remote_only(self, &seen);
            self.watch_remote(shard, player, &[], &remote, false);
        }
        let p = self.players.remove(player)?;
        if let Some(zone) = self.zones.get_mut(&p.zone) {
            zone.entities.remove(player);
            zone.acks.remove(player);
        }
        self.vacated(p.zone);
        for z in p.interest.zones(&self.grid) {
            if let Some(zone) = self.zones.get_mut(&z) {
                zone.subscribers.remove(player);
            }
        }
        shard.ctx.worlds.unseat(player, &self.id);
        if self.is_host() {
            self.left_world(shard, player);
        } else {
            self.report_left(shard, player);
        }
        if let Some(at) = p.session {
            shard.rt.deliver(
                at,
                event(SessionEvent::Left {
                    world_id: self.id.clone(),
                }),
            );
        }
        p.session
    }

    /// On the host: `player` is out of the world (their entity is gone from whichever part
    /// held it): the script's `leave`, the directory, the empty-world clock.
    fn left_world(&mut self, shard: &Shard, player: &str) {
        let mut fx = Effects::default();
        let _ = self.vm.leave(player, &mut fx);
        self.apply(shard, fx);
        self.publish(shard);
        if self.population() == 0 {
            self.empty_since = Some(shard.rt.now());
        }
    }

    /// An entity built from template `t` at `(x, y)`: `base_state`, the overrides, then
    /// position and `type` (asobi's merge order).
    fn spawned(
        &self,
        t: &str,
        x: f64,
        y: f64,
        overrides: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let template = self.templates.get(t)?;
        let mut e = match template.get("base_state") {
            Some(Value::Object(b)) => b.clone(),
            _ => Map::new(),
        };
        e.extend(overrides);
        e.insert("x".into(), json!(x));
        e.insert("y".into(), json!(y));
        if let Some(ty) = template.get("type") {
            e.insert("type".into(), ty.clone());
        }
        Some(e)
    }

    fn send_pending_keyframes(&mut self, shard: &Shard) {
        let due: Vec<String> = self
            .players
            .iter()
            .filter(|(_, p)| p.needs_keyframes && p.session.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let zones = match self.players.get_mut(&id) {
                Some(p) => {
                    p.needs_keyframes = false;
                    p.interest.zones(&self.grid)
                }
                None => continue,
            };
            if self.part.is_some() {
                let remote = split::remote_only(self, &zones);
                self.watch_remote(shard, &id, &remote, &[], true);
            }
            for z in zones {
                if !self.local(z) {
                    continue;
                }
                self.send_view_of(shard, &id, z);
            }
        }
    }

    fn expire_players(&mut self, shard: &Shard, now: Instant) {
        let ttl = Duration::from_millis(self.cfg.player_ttl_ms);
        let gone: Vec<String> = self
            .players
            .iter()
            .filter(|(_, p)| {
                p.gone_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= ttl)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_player(shard, &id);
        }
    }

    /// An empty, non-persistent world ends after `empty_grace_ms` (one nobody ever joined,
    /// after [`UNJOINED_GRACE`]).
    fn expire_empty(&self, now: Instant) -> Option<Value> {
        if self.cfg.persistent || !self.is_host() || self.population() > 0 {
            return None;
        }
        let since = self.empty_since?;
        let mut grace = Duration::from_millis(self.cfg.empty_grace_ms);
        if !self.ever_joined {
            grace = grace.max(UNJOINED_GRACE);
        }
        (now.saturating_duration_since(since) >= grace).then(|| json!({ "reason": "empty" }))
    }
}

/// Lua truthiness of a field read back as JSON: anything but `nil` and `false`.
fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn world_config(mode: &CompiledMode) -> WorldConfig {
    WorldConfig::from_globals(&mode.config.extra)
}

/// Whether `mode` exists and is a world mode.
pub(crate) fn world_mode(shard: &Shard, mode: &str) -> Result<Arc<CompiledMode>, Error> {
    let compiled = shard
        .game
        .borrow()
        .mode(mode)
        .cloned()
        .ok_or_else(|| Error::UnknownMode(mode.to_owned()))?;
    if compiled.config.game_type != GameType::World {
        return Err(Error::NotAWorldMode);
    }
    Ok(compiled)
}

/// Creates a world of `mode` on this shard; `creator` counts it against their
/// `world_max_per_player`. Returns its id.
pub(crate) fn create(
    shard: &Rc<Shard>,
    mode: &str,
    creator: Option<&str>,
) -> Result<String, ApiError> {
    create_world(shard, mode, creator, None)
}

/// Starts a stored persistent world again under its old id (`snapshot.rs`).
fn recreate(shard: &Rc<Shard>, r: snapshot::Recovered) -> Result<String, ApiError> {
    let mode = r.world.mode.clone();
    let creator = r.world.creator.clone();
    create_world(shard, &mode, creator.as_deref(), Some(r))
}

fn create_world(
    shard: &Rc<Shard>,
    mode: &str,
    creator: Option<&str>,
    recovered: Option<snapshot::Recovered>,
) -> Result<String, ApiError> {
    if shard.ops.draining.get() {
        return Err(crate::services::ops::draining());
    }
    let compiled = world_mode(shard, mode)?;
    let dir = &shard.ctx.worlds;
    if dir.len() >= WORLD_MAX {
        return Err(Error::CapacityReached.into());
    }
    if let Some(c) = creator {
        if dir.created_by(c) >= WORLD_MAX_PER_PLAYER {
            return Err(Error::PlayerLimitReached.into());
        }
    }
    let cfg = world_config(&compiled);
    if recovered.is_some() && !cfg.persistent {
        return Err(Error::NotAWorldMode.into());
    }
    let world_id = recovered
        .as_ref()
        .map_or_else(new_id, |r| r.world.world_id.clone());
    // A persistent world is never split: its snapshots are written by one shard.
    let nshards = shard.rt.nshards();
    // The script's `world_shards`, or the deployment's default.
    let wanted = if compiled.config.extra.contains_key("world_shards") {
        cfg.shards
    } else {
        shard.ctx.settings.world_shards
    };
    let stripes = (!cfg.persistent && wanted != 1)
        .then(|| {
            let parts = if wanted == 0 { nshards } else { wanted };
            Stripes::new(cfg.grid_size, parts, shard.id(), nshards)
        })
        .flatten();
    let epoch = shard.rt.now();
    let key = build_world(
        shard,
        compiled,
        &world_id,
        creator,
        recovered,
        stripes.clone(),
        epoch,
    )?;
    shard.worlds.with(key, |w| w.publish(shard));
    if let Some(stripes) = stripes {
        for to in stripes
            .shards()
            .iter()
            .copied()
            .filter(|s| *s != shard.id())
        {
            let msg = split::PartMsg::Start {
                mode: mode.to_owned(),
                stripes: stripes.clone(),
                epoch,
            };
            split::post(
                shard,
                to,
                cmd::Cmd::Part {
                    world_id: world_id.clone(),
                    msg,
                },
            );
        }
    }
    drive(shard, key);
    Ok(world_id)
}

/// Runs this shard's part of split world `world_id`, created by its host.
fn start_part(shard: &Rc<Shard>, world_id: &str, mode: &str, stripes: Stripes, epoch: Instant) {
    if shard.worlds.key_of(world_id).is_some() {
        return;
    }
    let compiled = match world_mode(shard, mode) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%world_id, %mode, "a world part cannot start: {e:?}");
            return;
        }
    };
    match build_world(shard, compiled, world_id, None, None, Some(stripes), epoch) {
        Ok(key) => drive(shard, key),
        Err(e) => tracing::warn!(%world_id, %mode, "a world part failed to start: {e:?}"),
    }
}

/// Builds a world (or one part of a split world) on this shard: its VM, `init`, templates,
/// generated zones, terrain, the zones made from the start, and its slab slot.
fn build_world(
    shard: &Rc<Shard>,
    compiled: Arc<CompiledMode>,
    world_id: &str,
    creator: Option<&str>,
    recovered: Option<snapshot::Recovered>,
    stripes: Option<Stripes>,
    epoch: Instant,
) -> Result<WorldKey, ApiError> {
    let mode = compiled.name.clone();
    let mut cfg = world_config(&compiled);
    let world_id = world_id.to_owned();
    let mut pool = shard.worlds.pool.borrow_mut();
    if pool.is_none() {
        let p = VmPool::new(shard.ctx.budgets.clone(), 0).map_err(|e| {
            tracing::error!("world VM pool: {e}");
            Error::StartFailed
        })?;
        *pool = Some(p);
    }
    let vm = pool
        .as_mut()
        .map(|p| p.acquire_world(&compiled, &world_id))
        .ok_or(Error::StartFailed)?
        .map_err(|e| {
            tracing::warn!(%world_id, %mode, "world script failed to load: {e}");
            Error::StartFailed
        })?;
    drop(pool);
    if let Some(s) = &stripes {
        // The active-zone ceiling is the world's: each part holds its share.
        cfg.zones.max_active = cfg.zones.max_active.div_ceil(s.len()).max(1);
    }
    let part = stripes.map(|s| split::Part::new(s, shard.id()));
    let config = json!({
        "world_id": world_id,
        "mode": mode,
        "grid_size": cfg.grid_size,
        "zone_size": cfg.zone_size,
        "view_radius": cfg.view_radius,
        "max_players": compiled.config.max_players,
        "tick_rate": compiled.config.tick_rate_ms,
    });
    let now = epoch;
    let period = Duration::from_millis(compiled.config.tick_rate_ms.max(1));
    let policy = cfg.zones;
    let gen = shard.worlds.next_gen.get() + 1;
    shard.worlds.next_gen.set(gen);
    let persist = snapshot::Persist::for_world(cfg.persistent, &compiled.config.extra);
    let mut w = LiveWorld {
        id: world_id.clone(),
        key: WorldKey { slot: 0, gen },
        grid: cfg.grid(),
        border: BorderMirror::new(cfg.grid(), cfg.border_band),
        cfg,
        mode: compiled,
        vm,
        templates: Map::new(),
        generated: Map::new(),
        zones: BTreeMap::new(),
        life: Lifecycle::new(policy, now),
        terrain: None,
        players: BTreeMap::new(),
        tick: 0,
        schedule: TickSchedule::new(now, period),
        armed: None,
        started_at: recovered
            .as_ref()
            .map_or_else(now_ms, |r| r.world.started_at),
        creator: creator.map(str::to_owned),
        empty_since: Some(now),
        ever_joined: false,
        persist,
        pass: None,
        linked: BTreeSet::new(),
        scriptless_ticks: 0,
        part,
        phases: None,
    };
    let mut fx = Effects::default();
    if let Err(e) = w.vm.init(&config, &mut fx) {
        tracing::warn!(%world_id, %mode, "world init failed: {e}");
        return Err(Error::StartFailed.into());
    }
    if w.is_host() {
        w.start_phases(shard, &config, now);
    }
    match w.vm.spawn_templates(&config, &mut fx) {
        Ok(Some(Value::Object(t))) => w.templates = t,
        Ok(_) => {}
        Err(e) => tracing::warn!(%world_id, "spawn_templates failed: {e}"),
    }
    let seed = asobi_rules::placement::fnv1a64(world_id.as_bytes());
    match w.vm.generate_world(seed, &config, &mut fx) {
        Ok(Some(Value::Object(g))) => w.generated = g,
        Ok(_) => {}
        Err(e) => tracing::warn!(%world_id, "generate_world failed: {e}"),
    }
    w.terrain = terrain::start(&mut w.vm, &config, &world_id);
    // At or below asobi's lazy threshold (or with `lazy_zones = false`) every zone exists
    // from the start.
    for z in w.life.prewarm(&w.grid) {
        w.ensure_zone(shard, z);
    }
    if let Some(r) = recovered {
        snapshot::recover(shard, &mut w, r);
    }
    let mut slab = shard.worlds.slab.borrow_mut();
    let entry = slab.vacant_entry();
    w.key.slot = entry.key();
    let key = w.key;
    entry.insert(w);
    shard
        .worlds
        .by_id
        .borrow_mut()
        .insert(world_id.clone(), key);
    drop(slab);
    Ok(key)
}

/// A player joins (or, already in it, comes back on a new session): `reply` gets the
/// `world.joined` payload.
pub(crate) fn join(
    shard: &Rc<Shard>,
    world_id: &str,
    player_id: &str,
    session: SessionRef,
    binary: bool,
    ctx: Option<Value>,
    reply: ReplyTo,
) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return answer(shard, reply, Err(Error::NotFound.into()));
    };
    let result = shard.worlds.with(key, |w| {
        join_world(shard, w, player_id, session, binary, ctx.as_ref())
    });
    let result = result.unwrap_or_else(|| Err(Error::NotFound.into()));
    answer(shard, reply, result);
}

fn join_world(
    shard: &Rc<Shard>,
    w: &mut LiveWorld,
    player_id: &str,
    session: SessionRef,
    binary: bool,
    ctx: Option<&Value>,
) -> Result<Value, ApiError> {
    let entered = event(SessionEvent::Entered {
        world_id: w.id.clone(),
        shard: shard.id(),
    });
    if let Some(p) = w.players.get_mut(player_id) {
        // Back on a new session (or a repeated join): the held entity is theirs again.
        p.session = Some(session);
        p.gone_at = None;
        p.needs_keyframes = true;
        p.binary = binary;
        shard.rt.deliver(session, entered);
        return Ok(w.joined_payload());
    }
    if w.part
        .as_ref()
        .is_some_and(|p| p.elsewhere.contains(player_id))
    {
        // In the world on another part: back on this session there.
        w.back_elsewhere(shard, player_id, session, binary);
        return Ok(w.joined_payload());
    }
    if w.population() >= w.mode.config.max_players as usize {
        return Err(Error::Full.into());
    }
    let mut fx = Effects::default();
    let joined = w.vm.join(player_id, ctx, &mut fx);
    w.apply(shard, fx);
    match joined {
        Ok(JoinOutcome::Accepted) => {}
        Ok(JoinOutcome::Refused(reason)) => return Err(Error::Refused(reason).into()),
        Err(_) => return Err(Error::ScriptFailed.into()),
    }
    let mut fx = Effects::default();
    let spawn = w.vm.spawn_position(player_id, &mut fx);
    w.apply(shard, fx);
    let (x, y) = match spawn {
        Ok(pos) => pos,
        Err(e) => {
            tracing::warn!(world_id = %w.id, "spawn_position failed: {e}");
            let mut fx = Effects::default();
            let _ = w.vm.leave(player_id, &mut fx);
            return Err(Error::ScriptFailed.into());
        }
    };
    let home = w.grid.zone_of(x, y);
    let mut entity = Map::new();
    entity.insert("x".into(), json!(x));
    entity.insert("y".into(), json!(y));
    entity.insert("type".into(), json!("player"));
    if !w.local(home) {
        w.place_elsewhere(
            shard,
            player_id,
            home,
            entity,
            split::Arrival::joined(session, binary),
        );
        w.phases_joined(shard, shard.rt.now());
        w.ever_joined = true;
        w.empty_since = None;
        w.publish(shard);
        return Ok(w.joined_payload());
    }
    if !w.ensure_zone(shard, home) {
        let mut fx = Effects::default();
        let _ = w.vm.leave(player_id, &mut fx);
        return Err(Error::Full.into());
    }
    if let Some(zone) = w.zones.get_mut(&home) {
        zone.entities.insert(player_id.to_owned(), entity);
    }
    w.players.insert(
        player_id.to_owned(),
        Player {
            session: Some(session),
            zone: home,
            interest: Interest::new(w.cfg.view_radius),
            gone_at: None,
            needs_keyframes: true,
            binary,
        },
    );
    w.refocus(shard, player_id, Some(home), false);
    w.phases_joined(shard, shard.rt.now());
    w.ever_joined = true;
    w.empty_since = None;
    w.publish(shard);
    shard.ctx.worlds.seat(player_id, &w.id, shard.id());
    shard.rt.deliver(session, entered);
    Ok(w.joined_payload())
}

/// A player's input, queued on the zone holding their entity.
pub(crate) fn input(
    shard: &Rc<Shard>,
    world_id: &str,
    player_id: &str,
    input: Value,
    seq: Option<u64>,
    forward: bool,
) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return;
    };
    shard.worlds.with(key, |w| {
        let Some(z) = w.players.get(player_id).map(|p| p.zone) else {
            if forward {
                let c = cmd::Cmd::Input {
                    world_id: world_id.to_owned(),
                    player_id: player_id.to_owned(),
                    input,
                    seq,
                };
                w.forward(shard, player_id, c);
            }
            return;
        };
        if let Some(zone) = w.zones.get_mut(&z) {
            if zone.inputs.len() < MAX_ZONE_INPUTS {
                zone.inputs.push(ZoneInput {
                    player_id: player_id.to_owned(),
                    input,
                    seq,
                });
            }
        }
    });
}

/// A player leaves for good.
pub(crate) fn leave(shard: &Rc<Shard>, world_id: &str, player_id: &str, forward: bool) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return;
    };
    shard.worlds.with(key, |w| {
        if w.players.contains_key(player_id) {
            w.remove_player(shard, player_id);
        } else if forward {
            let c = cmd::Cmd::Leave {
                world_id: world_id.to_owned(),
                player_id: player_id.to_owned(),
                reply: None,
            };
            w.forward(shard, player_id, c);
        }
    });
}

/// The player's socket dropped: their entity is held for `player_ttl_ms` (a leave when 0).
pub(crate) fn disconnected(
    shard: &Rc<Shard>,
    world_id: &str,
    player_id: &str,
    session: SessionRef,
    forward: bool,
) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return;
    };
    let now = shard.rt.now();
    shard.worlds.with(key, |w| {
        let ttl = w.cfg.player_ttl_ms;
        match w.players.get_mut(player_id) {
            Some(p) if p.session == Some(session) => {
                if ttl == 0 {
                    w.remove_player(shard, player_id);
                } else {
                    p.session = None;
                    p.gone_at = Some(now);
                }
            }
            Some(_) => {}
            None if forward => {
                let c = cmd::Cmd::Disconnected {
                    world_id: world_id.to_owned(),
                    player_id: player_id.to_owned(),
                    session,
                };
                w.forward(shard, player_id, c);
            }
            None => {}
        }
    });
}

/// A player whose entity is held for `player_ttl_ms` is back on `session`: the session is in
/// the world again and gets its whole view at the next tick (asobi puts a reconnecting player
/// back into their world on `session.connect`).
pub(crate) fn reattach(
    shard: &Rc<Shard>,
    world_id: &str,
    player_id: &str,
    session: SessionRef,
    binary: bool,
    forward: bool,
) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return;
    };
    shard.worlds.with(key, |w| {
        let Some(p) = w.players.get_mut(player_id) else {
            if forward {
                let c = cmd::Cmd::Reattach {
                    world_id: world_id.to_owned(),
                    player_id: player_id.to_owned(),
                    session,
                    binary,
                };
                w.forward(shard, player_id, c);
            }
            return;
        };
        if p.gone_at.is_none() {
            return;
        }
        p.session = Some(session);
        p.gone_at = None;
        p.needs_keyframes = true;
        p.binary = binary;
        shard.rt.deliver(
            session,
            event(SessionEvent::Entered {
                world_id: w.id.clone(),
                shard: shard.id(),
            }),
        );
    });
}

/// A keyframe of `zone` for a player who sees it (`world.resync`); anything else is ignored.
pub(crate) fn resync(
    shard: &Rc<Shard>,
    world_id: &str,
    player_id: &str,
    zone: ZoneId,
    forward: bool,
) {
    let Some(key) = shard.worlds.key_of(world_id) else {
        return;
    };
    shard.worlds.with(key, |w| {
        let c = cmd::Cmd::Resync {
            world_id: world_id.to_owned(),
            player_id: player_id.to_owned(),
            zone,
        };
        match w.players.get(player_id) {
            Some(p) if p.interest.sees(zone) && !p.needs_keyframes => {
                if w.local(zone) {
                    w.send_keyframe(shard, player_id, zone);
                } else if forward {
                    // The zone's owner sends it (the player watches it from here).
                    w.forward_to_owner(shard, zone, c);
                }
            }
            Some(_) => {}
            None => {
                // A remote watcher's resync (forwarded by their part), or one for a player
                // who moved on.
                if w.watches(player_id, zone) {
                    w.send_keyframe(shard, player_id, zone);
                } else if forward {
                    w.forward(shard, player_id, c);
                }
            }
        }
    });
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    let key = match t {
        Timer::Tick(key) => key,
        Timer::SnapshotFlush => return snapshot::on_flush_timer(shard),
    };
    split::flush(shard);
    let now = shard.rt.now();
    let ended = shard.worlds.with(key, |w| {
        w.armed = None;
        if w.pass.is_none() {
            let tick = w.schedule.poll(now)?;
            if tick.skipped > 0 {
                tracing::debug!(world_id = %w.id, skipped = tick.skipped, "world ticks skipped: the shard is late");
            }
            w.begin_pass(now.checked_sub(tick.late).unwrap_or(now));
        }
        // One slice per wake-up: the shard runs everything else between two slices.
        if w.pass.as_ref().and_then(pass::Pass::next_due)? > now {
            return None;
        }
        let ended = w.run_slice(shard, now);
        if ended.is_none() && w.pass.is_none() {
            snapshot::after_tick(shard, w);
        }
        match ended {
            // A part's script finished: the host ends the world, on every part.
            Some(result) if !w.is_host() => {
                w.report_finish(shard, result);
                None
            }
            ended => ended,
        }
    });
    match ended {
        Some(Some(result)) => finish(shard, key, result),
        Some(None) => drive(shard, key),
        None => {}
    }
}

/// Keeps one timer armed at the world's next slice or tick.
fn drive(shard: &Rc<Shard>, key: WorldKey) {
    shard.worlds.with(key, |w| {
        let at = w
            .pass
            .as_ref()
            .and_then(pass::Pass::next_due)
            .unwrap_or_else(|| w.schedule.next_deadline());
        if w.armed != Some(at) {
            w.armed = Some(at);
            shard.rt.arm(at, ShardTimer::Worlds(Timer::Tick(key)));
        }
    });
}

/// Ends a world: `world.finished` to everyone in it, then it is gone.
fn finish(shard: &Rc<Shard>, key: WorldKey, result: Value) {
    let removed = {
        let mut slab = shard.worlds.slab.borrow_mut();
        match slab.get(key.slot) {
            Some(w) if w.key == key => Some(slab.remove(key.slot)),
            _ => None,
        }
    };
    let Some(w) = removed else { return };
    shard.worlds.by_id.borrow_mut().remove(&w.id);
    if w.is_host() {
        snapshot::finished(shard, &w);
        shard.ctx.worlds.remove(&w.id);
        w.finish_parts(shard, &result);
    }
    let frame = encode_frame(
        "world.finished",
        None,
        &json!({ "world_id": w.id, "result": result }),
    );
    let sessions = w.sessions();
    if let Some(out) = text(frame) {
        shard.rt.deliver_all(&sessions, &out);
    }
    shard.rt.deliver_all(
        &sessions,
        &event(SessionEvent::Left {
            world_id: w.id.clone(),
        }),
    );
    for player in w.players.keys() {
        shard.ctx.worlds.unseat(player, &w.id);
    }
    tracing::info!(world_id = %w.id, mode = %w.mode.name, ticks = w.tick, "world finished");
    if let Some(pool) = shard.worlds.pool.borrow_mut().as_mut() {
        pool.release_world(w.vm);
    }
}

/// Hot reload: every live world swaps in its mode's new code between ticks.
pub(crate) fn reload_all(shard: &Rc<Shard>, game: &asobi_script::Game) {
    let mut slab = shard.worlds.slab.borrow_mut();
    for (_, w) in slab.iter_mut() {
        if let Some(mode) = game.mode(&w.mode.name) {
            let mut fx = Effects::default();
            if w.vm.reload(mode, &mut fx).is_ok() {
                w.mode = mode.clone();
            }
            w.apply(shard, fx);
        }
    }
}

/// Shutdown: every world finishes with `{reason: "server_shutdown"}`.
pub(crate) fn finish_all_for_shutdown(shard: &Rc<Shard>) {
    let keys: Vec<WorldKey> = shard
        .worlds
        .slab
        .borrow()
        .iter()
        .map(|(_, w)| w.key)
        .collect();
    for key in keys {
        shard.worlds.with(key, |w| snapshot::at_shutdown(shard, w));
        finish(shard, key, json!({ "reason": "server_shutdown" }));
    }
}
