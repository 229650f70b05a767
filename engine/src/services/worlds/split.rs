//! One world over several shards (`world_shards` in the script): the zones are cut into
//! stripes of columns ([`Stripes`]), each stripe owned by one shard, so one world uses every
//! core the deployment gives it. asobi keeps a world on one node and its zones in one VM;
//! here each shard of the world runs a *part*: a [`LiveWorld`] holding that shard's zones,
//! its own Lua VM of the world script and its own tick timer, all parts ticking on the same
//! schedule.
//!
//! The host (the shard the world was created on, first stripe) is the world as the rest of
//! the server sees it: the directory entry, joins, the roster, the world-level callbacks
//! (`join`, `leave`, `spawn_position`, `post_tick` and the world state they share) and the
//! end of the world. Zone callbacks (`zone_tick`, `handle_input`, `on_zone_loaded`, terrain)
//! run on the part owning the zone. Lua globals are per VM, so a script that shares a global
//! table between zones of different stripes sees one copy per shard; the world state and
//! each zone's state are the ones to keep things in.
//!
//! A player is *resident* on the part owning the zone of their entity: that part takes their
//! input, holds their interest and tells the owners of the other zones in view to send them
//! frames ([`PartMsg::Watch`]); those owners keep the player as a remote watcher. An entity
//! crossing into a zone of another part is handed over ([`PartMsg::Adopt`]): the old owner
//! keeps showing it in its old zone (a ghost no tick touches) until the new owner has put it
//! in the new zone and broadcast that zone, then drops it and broadcasts its own
//! ([`PartMsg::Released`]). A client keeping asobi's per-zone tables therefore sees the
//! entity in both zones for at most one mesh round trip and never in neither. Input that
//! reaches a part after its player moved on is forwarded once to where they are now.
//!
//! Every message between parts goes over the mesh as a command; one the peer cannot take now
//! is kept in order and sent again at the next tick, so no entity is lost to a full channel.
//!
//! Not split: persistent worlds (their snapshots are written by one shard), and `border_band`
//! reads and `game.zone.apply` effects do not cross from one part to another.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};

use asobi_rules::worlds::{Entities, Interest, Stripes, ZoneId};

use super::cmd::Cmd;
use super::{event, text, LiveWorld, Player, SessionEvent};
use crate::services::{Cmd as ShardCmd, Shard};
use crate::shard::mesh::SessionRef;
use crate::shard::route_remote;

/// Commands that did not fit a peer's channel are retried at most this many at a time per
/// tick; past the bound the oldest wait (they are never dropped).
const RETRY_BATCH: usize = 4096;

/// What one part of a split world tells another.
#[derive(Debug)]
pub(crate) enum PartMsg {
    /// Run your part of this world (sent by the host when it creates the world). `epoch` is
    /// the host's tick schedule start, so every part ticks together.
    Start {
        mode: String,
        stripes: Stripes,
        epoch: Instant,
    },
    /// Take entity `id` into `zone`, which is yours. `from`: the zone and shard it left,
    /// which keeps a ghost of it until [`PartMsg::Released`] (`None` for a player placed
    /// by a join, or an entity bounced back to where it was).
    Adopt {
        zone: ZoneId,
        from: Option<(ZoneId, usize)>,
        id: String,
        entity: Map<String, Value>,
        ack: Option<u64>,
        player: Option<Arrival>,
    },
    /// The new owner has shown entity `id`: drop its ghost from `zone` and broadcast it.
    Released { zone: ZoneId, id: String },
    /// A player resident elsewhere starts (`enter`) or stops (`leave`) seeing zones of
    /// yours; with `frames`, each entered zone's terrain and keyframe and each left zone's
    /// leave frame are sent (a watch without frames waits for the player's keyframes).
    Watch {
        player_id: String,
        session: Option<SessionRef>,
        binary: bool,
        enter: Vec<ZoneId>,
        leave: Vec<ZoneId>,
        frames: bool,
    },
    /// To the host: a player resident elsewhere left the world (`leave` runs there).
    Left { player_id: String },
    /// To the resident part: a player already in the world joined again on `session`.
    Back {
        player_id: String,
        session: SessionRef,
        binary: bool,
    },
    /// A frame from a script (`game.broadcast` with `target` `None`, `game.send`) for the
    /// players resident on the receiving part.
    Deliver {
        target: Option<String>,
        frame: Bytes,
    },
    /// Zone `zone`'s border band (`border_band`), for the part owning zones it touches
    /// across the seam; an empty band removes its row.
    Band { zone: ZoneId, band: Entities },
    /// A `game.zone.apply` effect for an entity of `zone`, which the receiving part owns.
    Effect {
        zone: ZoneId,
        entity_id: String,
        event: Value,
        bytes: usize,
    },
    /// The world ends: to the host from a part whose script finished, and from the host to
    /// every part.
    Finish { result: Value },
    /// A command for a player who moved to the receiving part; handled there without being
    /// forwarded again.
    Forwarded(Box<Cmd>),
}

/// A resident player moving to another part, with what their new part needs.
#[derive(Debug)]
pub(crate) struct Arrival {
    session: Option<SessionRef>,
    binary: bool,
    needs_keyframes: bool,
    /// Disconnected since (held for `player_ttl_ms`), in this process's clock.
    gone_at: Option<Instant>,
    /// The zone their view was centred on, `None` for a player just placed.
    center: Option<ZoneId>,
}

impl Arrival {
    /// A player just placed by a join: nothing in view yet, keyframes due.
    pub(super) fn joined(session: SessionRef, binary: bool) -> Arrival {
        Arrival {
            session: Some(session),
            binary,
            needs_keyframes: true,
            gone_at: None,
            center: None,
        }
    }
}

/// A player resident on another part who sees zones of this one.
pub(super) struct Watcher {
    pub(super) session: Option<SessionRef>,
    pub(super) binary: bool,
    /// Their keyframes were sent: deltas may follow.
    pub(super) ready: bool,
    zones: BTreeSet<ZoneId>,
}

/// This shard's part of a split world.
pub(super) struct Part {
    stripes: Stripes,
    me: usize,
    /// Players resident elsewhere who see zones of this part.
    pub(super) remote: BTreeMap<String, Watcher>,
    /// Entities handed to another part and still shown here, by zone.
    pub(super) ghosts: BTreeMap<ZoneId, Entities>,
    /// Players handed to another part whose handoff is not confirmed: where they went.
    moved: HashMap<String, usize>,
    /// On the host: players of the world resident on other parts.
    pub(super) elsewhere: BTreeSet<String>,
    /// Seam zones of this part whose non-empty band the parts across the seam hold.
    sent_bands: BTreeSet<ZoneId>,
}

impl Part {
    pub(super) fn new(stripes: Stripes, me: usize) -> Part {
        Part {
            stripes,
            me,
            remote: BTreeMap::new(),
            ghosts: BTreeMap::new(),
            moved: HashMap::new(),
            elsewhere: BTreeSet::new(),
            sent_bands: BTreeSet::new(),
        }
    }

    pub(super) fn owns(&self, z: ZoneId) -> bool {
        self.stripes.owner(z) == self.me
    }

    pub(super) fn is_host(&self) -> bool {
        self.stripes.host() == self.me
    }

    fn others(&self) -> impl Iterator<Item = usize> + '_ {
        self.stripes
            .shards()
            .iter()
            .copied()
            .filter(move |s| *s != self.me)
    }
}

/// Commands to other shards that did not fit their channel yet, in order.
#[derive(Default)]
pub(super) struct Retry {
    queue: std::cell::RefCell<VecDeque<(usize, Cmd)>>,
}

fn cmd(world_id: &str, msg: PartMsg) -> Cmd {
    Cmd::Part {
        world_id: world_id.to_owned(),
        msg,
    }
}

/// Sends `c` to shard `to` (never this one), or keeps it for the next retry when the
/// peer's channel is full, behind anything already waiting for that peer.
pub(super) fn post(shard: &Shard, to: usize, c: Cmd) {
    let waiting = shard
        .worlds
        .retry
        .queue
        .borrow()
        .iter()
        .any(|(t, _)| *t == to);
    if waiting || to == shard.id() {
        shard.worlds.retry.queue.borrow_mut().push_back((to, c));
        return;
    }
    if let Err(ShardCmd::Worlds(back)) = route_remote(shard, to, ShardCmd::Worlds(c)) {
        shard.worlds.retry.queue.borrow_mut().push_back((to, back));
    }
}

/// Sends again what waited for a full channel, in order per peer.
pub(super) fn flush(shard: &Rc<Shard>) {
    let waiting: Vec<(usize, Cmd)> = {
        let mut q = shard.worlds.retry.queue.borrow_mut();
        let n = q.len().min(RETRY_BATCH);
        q.drain(..n).collect()
    };
    if waiting.is_empty() {
        return;
    }
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let mut again = Vec::new();
    for (to, c) in waiting {
        if to == shard.id() {
            // Addressed to this shard (a part that is its own peer): handled here, now that
            // nothing is borrowed.
            super::cmd::dispatch(shard, c, true);
            continue;
        }
        if blocked.contains(&to) {
            again.push((to, c));
            continue;
        }
        if let Err(ShardCmd::Worlds(back)) = route_remote(&**shard, to, ShardCmd::Worlds(c)) {
            blocked.insert(to);
            again.push((to, back));
        }
    }
    let mut q = shard.worlds.retry.queue.borrow_mut();
    for item in again.into_iter().rev() {
        q.push_front(item);
    }
}

impl LiveWorld {
    /// Whether zone `z` lives on this shard.
    pub(super) fn local(&self, z: ZoneId) -> bool {
        self.part.as_ref().is_none_or(|p| p.owns(z))
    }

    /// Whether this is the world itself (an unsplit world, or the host part).
    pub(super) fn is_host(&self) -> bool {
        self.part.as_ref().is_none_or(Part::is_host)
    }

    /// Players in the world, on every part (known on the host).
    pub(super) fn population(&self) -> usize {
        self.players.len() + self.part.as_ref().map_or(0, |p| p.elsewhere.len())
    }

    /// Every player id in the world (on the host: residents and those elsewhere).
    pub(super) fn roster(&self) -> Vec<&String> {
        let mut all: Vec<&String> = self.players.keys().collect();
        if let Some(p) = &self.part {
            all.extend(p.elsewhere.iter());
            all.sort();
        }
        all
    }

    /// Updates the directory entry (the host's to write).
    pub(super) fn publish(&self, shard: &Shard) {
        if self.is_host() {
            shard.ctx.worlds.put(&self.id, self.entry(shard.id()));
        }
    }

    /// Whether zone `z` of this part touches zones of another part (border bands cross).
    pub(super) fn on_seam(&self, z: ZoneId) -> bool {
        self.part
            .as_ref()
            .is_some_and(|p| p.stripes.across(z).next().is_some())
    }

    /// Sends seam zone `z`'s band to the parts across the seam: a non-empty band, or the
    /// empty one that removes the row they hold.
    pub(super) fn send_band(&mut self, shard: &Shard, z: ZoneId, band: &Entities) {
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let held = part.sent_bands.contains(&z);
        if band.is_empty() && !held {
            return;
        }
        if band.is_empty() {
            part.sent_bands.remove(&z);
        } else {
            part.sent_bands.insert(z);
        }
        for owner in part.stripes.across(z) {
            let msg = PartMsg::Band {
                zone: z,
                band: band.clone(),
            };
            post(shard, owner, cmd(&self.id, msg));
        }
    }

    /// Sends a `game.zone.apply` effect to the part owning zone `to`.
    pub(super) fn send_effect(
        &self,
        shard: &Shard,
        to: ZoneId,
        entity_id: String,
        event: Value,
        bytes: usize,
    ) {
        if let Some(part) = &self.part {
            let msg = PartMsg::Effect {
                zone: to,
                entity_id,
                event,
                bytes,
            };
            post(shard, part.stripes.owner(to), cmd(&self.id, msg));
        }
    }

    /// Where a command for `player`, who is not resident here, should go: the part they
    /// moved to (by the handoff in flight or by their seat), never this one.
    pub(super) fn forward_to(&self, shard: &Shard, player: &str) -> Option<usize> {
        let part = self.part.as_ref()?;
        let to = match part.moved.get(player) {
            Some(s) => *s,
            None => match shard.ctx.worlds.seat_of(player) {
                Some((w, s)) if w == self.id => s,
                _ => return None,
            },
        };
        (to != shard.id() && part.stripes.shards().contains(&to)).then_some(to)
    }

    /// Tells the owners of remote zones that `player` (resident here) starts or stops
    /// seeing them.
    pub(super) fn watch_remote(
        &self,
        shard: &Shard,
        player: &str,
        enter: &[ZoneId],
        leave: &[ZoneId],
        frames: bool,
    ) {
        let Some(part) = &self.part else { return };
        let Some(p) = self.players.get(player) else {
            return;
        };
        let mut by_owner: BTreeMap<usize, (Vec<ZoneId>, Vec<ZoneId>)> = BTreeMap::new();
        for z in enter.iter().filter(|z| !part.owns(**z)) {
            by_owner
                .entry(part.stripes.owner(*z))
                .or_default()
                .0
                .push(*z);
        }
        for z in leave.iter().filter(|z| !part.owns(**z)) {
            by_owner
                .entry(part.stripes.owner(*z))
                .or_default()
                .1
                .push(*z);
        }
        for (to, (enter, leave)) in by_owner {
            let msg = PartMsg::Watch {
                player_id: player.to_owned(),
                session: p.session,
                binary: p.binary,
                enter,
                leave,
                frames,
            };
            post(shard, to, cmd(&self.id, msg));
        }
    }

    /// Entity `id` of zone `from` has crossed into `to`, a zone of another part: it becomes
    /// a ghost here and goes over with its pending ack and, for a resident player, the
    /// player. Returns whether it went.
    pub(super) fn hand_off(&mut self, shard: &Shard, from: ZoneId, id: &str, to: ZoneId) -> bool {
        let Some(part) = self.part.as_ref() else {
            return false;
        };
        let (owner, me) = (part.stripes.owner(to), part.me);
        let Some((entity, ack)) = self.zones.get_mut(&from).and_then(|z| {
            let e = z.entities.remove(id)?;
            Some((e, z.acks.remove(id)))
        }) else {
            return false;
        };
        let player = match self.players.get(id) {
            Some(p) if p.zone == from => self.players.remove(id),
            _ => None,
        };
        let arrival = player.map(|p| {
            let zones: BTreeSet<ZoneId> = p
                .interest
                .zones(&self.grid)
                .into_iter()
                .filter(|z| self.local(*z))
                .collect();
            if let Some(part) = self.part.as_mut() {
                // Still a watcher here of the zones of this part it sees.
                part.remote.insert(
                    id.to_owned(),
                    Watcher {
                        session: p.session,
                        binary: p.binary,
                        ready: !p.needs_keyframes,
                        zones,
                    },
                );
                part.moved.insert(id.to_owned(), owner);
                if part.is_host() {
                    part.elsewhere.insert(id.to_owned());
                }
            }
            Arrival {
                session: p.session,
                binary: p.binary,
                needs_keyframes: p.needs_keyframes,
                gone_at: p.gone_at,
                center: p.interest.center(),
            }
        });
        if arrival.is_some() {
            self.vacated(from);
        }
        if let Some(part) = self.part.as_mut() {
            part.ghosts
                .entry(from)
                .or_default()
                .insert(id.to_owned(), entity.clone());
        }
        crate::services::ops::metrics::bump(&shard.ops.metrics.world_handoffs);
        let msg = PartMsg::Adopt {
            zone: to,
            from: Some((from, me)),
            id: id.to_owned(),
            entity,
            ack,
            player: arrival,
        };
        post(shard, owner, cmd(&self.id, msg));
        true
    }

    /// A joined player whose spawn zone is on another part: placed there.
    pub(super) fn place_elsewhere(
        &mut self,
        shard: &Shard,
        player_id: &str,
        home: ZoneId,
        entity: Map<String, Value>,
        arrival: Arrival,
    ) {
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let owner = part.stripes.owner(home);
        // Their seat names the part once it has placed them; input sent before is dropped
        // like input sent before the join.
        part.elsewhere.insert(player_id.to_owned());
        let msg = PartMsg::Adopt {
            zone: home,
            from: None,
            id: player_id.to_owned(),
            entity,
            ack: None,
            player: Some(arrival),
        };
        post(shard, owner, cmd(&self.id, msg));
    }

    /// Frames a script asked for that concern players of other parts.
    pub(super) fn deliver_elsewhere(&self, shard: &Shard, target: Option<&str>, frame: &Bytes) {
        let Some(part) = &self.part else { return };
        match target {
            None => {
                for to in part.others() {
                    let msg = PartMsg::Deliver {
                        target: None,
                        frame: frame.clone(),
                    };
                    post(shard, to, cmd(&self.id, msg));
                }
            }
            Some(p) => {
                if let Some(to) = self.forward_to(shard, p) {
                    let msg = PartMsg::Deliver {
                        target: Some(p.to_owned()),
                        frame: frame.clone(),
                    };
                    post(shard, to, cmd(&self.id, msg));
                }
            }
        }
    }

    /// On the host: every other part ends with `result`.
    pub(super) fn finish_parts(&self, shard: &Shard, result: &Value) {
        let Some(part) = &self.part else { return };
        if !part.is_host() {
            return;
        }
        for to in part.others() {
            let msg = PartMsg::Finish {
                result: result.clone(),
            };
            post(shard, to, cmd(&self.id, msg));
        }
    }

    /// A part that is not the host found its script finished: the host ends the world.
    pub(super) fn report_finish(&self, shard: &Shard, result: Value) {
        if let Some(part) = &self.part {
            let host = part.stripes.host();
            post(shard, host, cmd(&self.id, PartMsg::Finish { result }));
        }
    }

    /// A resident player left the world for good, on a part that is not the host.
    pub(super) fn report_left(&self, shard: &Shard, player_id: &str) {
        if let Some(part) = &self.part {
            let host = part.stripes.host();
            let msg = PartMsg::Left {
                player_id: player_id.to_owned(),
            };
            post(shard, host, cmd(&self.id, msg));
        }
    }

    /// Whether `player`, resident elsewhere, watches zone `z` of this part and has had its
    /// keyframe.
    pub(super) fn watches(&self, player: &str, z: ZoneId) -> bool {
        self.local(z)
            && self
                .part
                .as_ref()
                .and_then(|p| p.remote.get(player))
                .is_some_and(|w| w.ready && w.zones.contains(&z))
    }

    /// Sends `c` to the part owning zone `z`.
    pub(super) fn forward_to_owner(&self, shard: &Shard, z: ZoneId, c: Cmd) {
        if let Some(part) = &self.part {
            let to = part.stripes.owner(z);
            post(shard, to, cmd(&self.id, PartMsg::Forwarded(Box::new(c))));
        }
    }

    /// Sends `c` on to where `player` is now; `false` when there is nowhere to send it.
    pub(super) fn forward(&self, shard: &Shard, player: &str, c: Cmd) -> bool {
        self.forward_raw(shard, player, PartMsg::Forwarded(Box::new(c)))
    }

    /// A resident player joined again: back on `session` on their part.
    pub(super) fn back_elsewhere(
        &self,
        shard: &Shard,
        player_id: &str,
        session: SessionRef,
        binary: bool,
    ) -> bool {
        let msg = PartMsg::Back {
            player_id: player_id.to_owned(),
            session,
            binary,
        };
        self.forward_raw(shard, player_id, msg)
    }

    fn forward_raw(&self, shard: &Shard, player: &str, msg: PartMsg) -> bool {
        match self.forward_to(shard, player) {
            Some(to) => {
                post(shard, to, cmd(&self.id, msg));
                true
            }
            None => false,
        }
    }

    fn on_part_msg(&mut self, shard: &Shard, msg: PartMsg) -> Option<Value> {
        match msg {
            PartMsg::Start { .. } | PartMsg::Forwarded(_) => {}
            PartMsg::Adopt {
                zone,
                from,
                id,
                entity,
                ack,
                player,
            } => self.adopt(shard, zone, from, id, entity, ack, player),
            PartMsg::Released { zone, id } => {
                if let Some(part) = self.part.as_mut() {
                    if let Some(g) = part.ghosts.get_mut(&zone) {
                        g.remove(&id);
                        if g.is_empty() {
                            part.ghosts.remove(&zone);
                        }
                    }
                    part.moved.remove(&id);
                }
                let tick = self.tick;
                self.broadcast(shard, tick, &BTreeSet::from([zone]));
            }
            PartMsg::Watch {
                player_id,
                session,
                binary,
                enter,
                leave,
                frames,
            } => self.watch(shard, &player_id, session, binary, &enter, &leave, frames),
            PartMsg::Left { player_id } => {
                let known = self
                    .part
                    .as_mut()
                    .is_some_and(|p| p.elsewhere.remove(&player_id));
                if known {
                    self.left_world(shard, &player_id);
                }
            }
            PartMsg::Back {
                player_id,
                session,
                binary,
            } => {
                if let Some(p) = self.players.get_mut(&player_id) {
                    p.session = Some(session);
                    p.gone_at = None;
                    p.needs_keyframes = true;
                    p.binary = binary;
                    self.entered(shard, session);
                }
            }
            PartMsg::Deliver { target, frame } => {
                let out = text(frame)?;
                match target {
                    None => shard.rt.deliver_all(&self.sessions(), &out),
                    Some(p) => {
                        if let Some(at) = self.players.get(&p).and_then(|p| p.session) {
                            shard.rt.deliver(at, out);
                        }
                    }
                }
            }
            PartMsg::Band { zone, band } => {
                if !self.local(zone) {
                    self.border.publish_band(zone, band);
                }
            }
            PartMsg::Effect {
                zone,
                entity_id,
                event,
                bytes,
            } => self.take_effect(zone, entity_id, event, bytes),
            PartMsg::Finish { result } => return Some(result),
        }
        None
    }

    /// Tells `session` it is in this world, on this shard (where its input goes).
    pub(super) fn entered(&self, shard: &Shard, session: SessionRef) {
        shard.rt.deliver(
            session,
            event(SessionEvent::Entered {
                world_id: self.id.clone(),
                shard: shard.id(),
            }),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn adopt(
        &mut self,
        shard: &Shard,
        zone: ZoneId,
        from: Option<(ZoneId, usize)>,
        id: String,
        entity: Map<String, Value>,
        ack: Option<u64>,
        player: Option<Arrival>,
    ) {
        if !self.local(zone) || !self.ensure_zone(shard, zone) {
            // At the zone ceiling (or a zone not ours): back to where it came from, which
            // tries again at its next tick, as an entity stays put at the ceiling.
            if let Some(id) = refuse_adoption(shard, &self.id, from, id, entity, ack, player) {
                tracing::warn!(world_id = %self.id, zone = ?zone, "a joining player's zone cannot be made; the player is let go");
                if self.is_host() {
                    if let Some(p) = self.part.as_mut() {
                        p.elsewhere.remove(&id);
                    }
                    self.left_world(shard, &id);
                } else {
                    self.report_left(shard, &id);
                }
            }
            return;
        }
        if let Some(part) = self.part.as_mut() {
            // Back where it was a ghost (a bounce, or a return before the release).
            if let Some(g) = part.ghosts.get_mut(&zone) {
                g.remove(&id);
                if g.is_empty() {
                    part.ghosts.remove(&zone);
                }
            }
        }
        if let Some(z) = self.zones.get_mut(&zone) {
            z.entities.insert(id.clone(), entity);
            if let Some(seq) = ack {
                let slot = z.acks.entry(id.clone()).or_insert(seq);
                *slot = (*slot).max(seq);
            }
        }
        if let Some(a) = player {
            let watched = self.part.as_mut().and_then(|part| {
                part.moved.remove(&id);
                if part.is_host() {
                    part.elsewhere.remove(&id);
                }
                part.remote.remove(&id)
            });
            let mut interest = Interest::new(self.cfg.view_radius);
            interest.move_to(&self.grid, a.center);
            // Zones of this part the player watched from elsewhere and no longer sees are
            // dropped by the refocus below; those still in view stay subscribed.
            let _ = watched;
            self.players.insert(
                id.clone(),
                Player {
                    session: a.session,
                    zone,
                    interest,
                    gone_at: a.gone_at,
                    needs_keyframes: a.needs_keyframes,
                    binary: a.binary,
                },
            );
            self.refocus(shard, &id, Some(zone), !a.needs_keyframes);
            shard.ctx.worlds.seat(&id, &self.id, shard.id());
            if let Some(at) = a.session {
                self.entered(shard, at);
            }
        }
        if let Some((left, owner)) = from {
            // Shown here first, then dropped there: never in neither zone.
            let tick = self.tick;
            self.broadcast(shard, tick, &BTreeSet::from([zone]));
            post(
                shard,
                owner,
                cmd(&self.id, PartMsg::Released { zone: left, id }),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn watch(
        &mut self,
        shard: &Shard,
        player: &str,
        session: Option<SessionRef>,
        binary: bool,
        enter: &[ZoneId],
        leave: &[ZoneId],
        frames: bool,
    ) {
        let resident = self.players.contains_key(player);
        for z in leave {
            let Some(zone) = self.zones.get_mut(z) else {
                continue;
            };
            if zone.subscribers.remove(player) && frames {
                if let (Some(at), Some(f)) = (session, zone.leave(*z, binary)) {
                    shard.rt.deliver(at, crate::shard::mesh::Outbound::Frame(f));
                }
            }
        }
        let mut entered = Vec::new();
        for &z in enter {
            if !self.ensure_zone(shard, z) {
                continue;
            }
            if let Some(zone) = self.zones.get_mut(&z) {
                zone.subscribers.insert(player.to_owned());
                entered.push(z);
            }
        }
        if resident {
            // Arrived here while this watch was on its way: the refocus owns their view.
            return;
        }
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let w = part.remote.entry(player.to_owned()).or_insert(Watcher {
            session,
            binary,
            ready: false,
            zones: BTreeSet::new(),
        });
        w.session = session;
        w.binary = binary;
        w.ready |= frames;
        for z in leave {
            w.zones.remove(z);
        }
        w.zones.extend(entered.iter().copied());
        if w.zones.is_empty() {
            part.remote.remove(player);
        }
        if frames {
            for z in entered {
                self.send_view_of(shard, player, z);
            }
        }
    }
}

/// A part message for world `world_id` on this shard.
pub(crate) fn handle(shard: &Rc<Shard>, world_id: &str, msg: PartMsg) {
    flush(shard);
    match msg {
        PartMsg::Start {
            mode,
            stripes,
            epoch,
        } => super::start_part(shard, world_id, &mode, stripes, epoch),
        PartMsg::Forwarded(c) => super::cmd::dispatch(shard, *c, false),
        msg => {
            let Some(key) = shard.worlds.key_of(world_id) else {
                return unhosted(shard, world_id, msg);
            };
            let ended = shard.worlds.with(key, |w| w.on_part_msg(shard, msg));
            if let Some(Some(result)) = ended {
                super::finish(shard, key, result);
            }
        }
    }
}

/// Where a zone subscriber's deltas go (session, reads binary), once they may: a resident
/// after their keyframes, a remote watcher after the watch that sent theirs.
pub(super) fn subscriber(
    players: &BTreeMap<String, Player>,
    part: Option<&Part>,
    player: &str,
) -> Option<(SessionRef, bool)> {
    match players.get(player) {
        Some(p) if !p.needs_keyframes => p.session.map(|s| (s, p.binary)),
        Some(_) => None,
        None => {
            let w = part?.remote.get(player)?;
            if !w.ready {
                return None;
            }
            w.session.map(|s| (s, w.binary))
        }
    }
}

/// A message for a part this shard does not run (it failed to start, or the world just
/// ended here): an entity handed over goes back where it came from, so nothing is lost with
/// the part; a player placed by a join is let go.
fn unhosted(shard: &Shard, world_id: &str, msg: PartMsg) {
    tracing::debug!(%world_id, "a message for a world part this shard does not run");
    let PartMsg::Adopt {
        from,
        id,
        entity,
        ack,
        player,
        ..
    } = msg
    else {
        return;
    };
    if let Some(id) = refuse_adoption(shard, world_id, from, id, entity, ack, player) {
        if let Some(entry) = shard.ctx.worlds.get(world_id) {
            let msg = PartMsg::Left { player_id: id };
            post(shard, entry.shard, cmd(world_id, msg));
        }
    }
}

/// An adoption this shard cannot take: an entity handed over goes back to the zone it left
/// (`from`), which keeps it and tries again at its next tick; a player placed by a join
/// (no `from`) is let go: their session is told and their seat freed, and their id comes
/// back for the caller to tell the host.
fn refuse_adoption(
    shard: &Shard,
    world_id: &str,
    from: Option<(ZoneId, usize)>,
    id: String,
    entity: Map<String, Value>,
    ack: Option<u64>,
    player: Option<Arrival>,
) -> Option<String> {
    if let Some((zone, to)) = from {
        let msg = PartMsg::Adopt {
            zone,
            from: None,
            id,
            entity,
            ack,
            player,
        };
        post(shard, to, cmd(world_id, msg));
        return None;
    }
    if let Some(at) = player.and_then(|a| a.session) {
        shard.rt.deliver(
            at,
            event(SessionEvent::Left {
                world_id: world_id.to_owned(),
            }),
        );
    }
    shard.ctx.worlds.unseat(&id, world_id);
    Some(id)
}

/// Zones of `zones` not on this part, for `refocus`.
pub(super) fn remote_only(w: &LiveWorld, zones: &[ZoneId]) -> Vec<ZoneId> {
    zones.iter().copied().filter(|z| !w.local(*z)).collect()
}
