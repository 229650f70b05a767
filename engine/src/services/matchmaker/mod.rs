//! Matchmaking: each shard owns the queues of the modes that hash to it (`owner(mode)`), ticks
//! them once a second from the shard's timer queue, and turns formed groups into matches placed
//! where most of their players are. The rules are the sans-IO `asobi_rules::matchmaker`; this
//! service moves requests and time in and matches and notifications out.
//!
//! A ticket id is a UUIDv7 whose last byte names the shard owning its queue, so a status lookup
//! or a cancel by id goes straight to that shard — no process-wide ticket map that one account
//! could grow or wipe. That shard then asks its few queues which one knows the ticket.

pub(crate) mod cmd;
pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod ws;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use asobi_rules::matchmaker::{
    FormedGroup, ModeQueue, PartyRating, QueueConfig, QueueEvent, Strategy, TicketAccessError,
};
use asobi_schema::envelope::encode_frame;
use asobi_schema::ApiError;
use asobi_script::{CompiledMode, Game};

use super::{Cmd, Shard, Timer as ShardTimer};
use crate::shard::mesh::Outbound;
use crate::shard::{request, route};
use crate::wire::Frame;
use error::Error;

/// asobi's matchmaker tick interval.
const TICK: Duration = Duration::from_secs(1);
/// Longest mode name a request may name; longer ones cannot exist and are not echoed back.
pub(crate) const MAX_MODE_NAME: usize = 64;

/// The matchmaker's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    Tick,
}

/// The queues this shard owns.
#[derive(Default)]
pub(crate) struct Queues {
    modes: RefCell<HashMap<String, ModeQueue>>,
    /// Party tickets waiting here: ticket → party, so the party hears how its ticket ended.
    /// Bounded by live tickets: removed when the ticket forms, expires or is cancelled.
    parties: RefCell<HashMap<String, String>>,
}

fn queue_config(shard: &Shard, mode: &CompiledMode) -> QueueConfig {
    let cfg = &mode.config;
    let s = &shard.ctx.settings;
    QueueConfig {
        match_size: Some(cfg.match_size as usize),
        strategy: match cfg.strategy {
            asobi_script::Strategy::SkillBased => Strategy::SkillBased,
            _ => Strategy::Fill,
        },
        max_wait: Duration::from_secs(cfg.max_wait_seconds.unwrap_or(s.matchmaker_max_wait_secs)),
        max_queue: s.matchmaker_max_queue,
        teams: cfg
            .extra
            .get("teams")
            .and_then(Value::as_u64)
            .map_or(1, |n| n.clamp(1, 64) as usize),
        party_rating: cfg
            .extra
            .get("party_rating")
            .and_then(Value::as_str)
            .map_or(PartyRating::Mean, PartyRating::from_mode_value),
        ..QueueConfig::default()
    }
}

/// Arms the first tick.
pub(crate) fn start(shard: &Rc<Shard>) {
    shard
        .rt
        .arm(shard.rt.now() + TICK, ShardTimer::Matchmaker(Timer::Tick));
}

/// The shard that owns the queue of a mode.
pub(crate) fn owner(shard: &Shard, mode: &str) -> usize {
    asobi_rules::placement::owner(mode, shard.rt.nshards())
}

/// A new ticket id carrying the owning shard in its last byte (still a valid UUID).
pub(crate) fn new_ticket_id(owner: usize) -> String {
    let mut bytes = *uuid::Uuid::now_v7().as_bytes();
    bytes[15] = owner as u8;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The shard owning a ticket's queue, from its id; `None` for ids this server never issued.
pub(crate) fn ticket_owner(shard: &Shard, ticket_id: &str) -> Option<usize> {
    let id = uuid::Uuid::parse_str(ticket_id).ok()?;
    let owner = usize::from(id.as_bytes()[15]);
    (owner < shard.rt.nshards()).then_some(owner)
}

pub(crate) fn ticket_not_found() -> ApiError {
    Error::TicketNotFound.into()
}

fn access_error(e: TicketAccessError) -> ApiError {
    Error::from(e).into()
}

/// Checks a mode name before anything is queued or echoed.
pub(crate) fn check_mode(shard: &Shard, mode: &str) -> Result<(), ApiError> {
    if mode.len() > MAX_MODE_NAME {
        return Err(Error::UnknownMode { mode: None }.into());
    }
    if shard.game.borrow().mode(mode).is_none() {
        return Err(Error::UnknownMode {
            mode: Some(mode.to_owned()),
        }
        .into());
    }
    Ok(())
}

// ---- operations (REST, WebSocket and Lua all call these) ----

/// Queues a player for a mode on the shard that owns the mode's queue. Returns the
/// `matchmaker.queued` payload.
pub(crate) async fn add(
    shard: &Rc<Shard>,
    mode: &str,
    player_id: &str,
    properties: Value,
) -> Result<Value, ApiError> {
    check_mode(shard, mode)?;
    let to = owner(shard, mode);
    request(shard, to, |reply| {
        Cmd::Matchmaker(cmd::Cmd::Add {
            mode: mode.to_owned(),
            player_id: player_id.to_owned(),
            properties,
            reply,
        })
    })
    .await
}

/// Queues a whole party (`members` with ratings, the leader among them) as one ticket owned
/// by `leader`. Returns the `matchmaker.queued` payload.
pub(crate) async fn add_party(
    shard: &Rc<Shard>,
    mode: &str,
    leader: &str,
    party_id: &str,
    members: Vec<(String, f64)>,
    properties: Value,
) -> Result<Value, ApiError> {
    check_mode(shard, mode)?;
    let to = owner(shard, mode);
    request(shard, to, |reply| {
        Cmd::Matchmaker(cmd::Cmd::AddParty {
            mode: mode.to_owned(),
            leader: leader.to_owned(),
            party_id: party_id.to_owned(),
            members,
            properties,
            reply,
        })
    })
    .await
}

/// Cancels a player's waiting ticket.
pub(crate) async fn remove(
    shard: &Rc<Shard>,
    ticket_id: &str,
    player_id: &str,
) -> Result<(), ApiError> {
    let to = ticket_owner(shard, ticket_id).ok_or_else(ticket_not_found)?;
    request(shard, to, |reply| {
        Cmd::Matchmaker(cmd::Cmd::Remove {
            ticket_id: ticket_id.to_owned(),
            player_id: player_id.to_owned(),
            reply,
        })
    })
    .await
    .map(|_| ())
}

/// A ticket's status, owner-scoped.
pub(crate) async fn status(
    shard: &Rc<Shard>,
    ticket_id: &str,
    player_id: &str,
) -> Result<Value, ApiError> {
    let to = ticket_owner(shard, ticket_id).ok_or_else(ticket_not_found)?;
    request(shard, to, |reply| {
        Cmd::Matchmaker(cmd::Cmd::Status {
            ticket_id: ticket_id.to_owned(),
            player_id: player_id.to_owned(),
            reply,
        })
    })
    .await
}

/// A player left for good: drop their ticket in `mode` (fire and forget).
pub(crate) fn remove_player(shard: &Rc<Shard>, mode: &str, player_id: &str) {
    let to = owner(shard, mode);
    let cmd = Cmd::Matchmaker(cmd::Cmd::RemovePlayer {
        mode: mode.to_owned(),
        player_id: player_id.to_owned(),
    });
    if route(shard, to, cmd).is_err() {
        // The ticket expires on its own after max_wait; nothing else depends on this message.
        tracing::debug!(mode, "ticket cleanup dropped: queue shard overloaded");
    }
}

// ---- the owning shard's side ----

impl Queues {
    /// Per mode: waiting tickets and the oldest wait in milliseconds (metrics, ops views).
    pub(crate) fn waits(&self, now: std::time::Instant) -> Vec<(String, u64, u64)> {
        self.modes
            .borrow()
            .iter()
            .map(|(mode, q)| {
                let (n, oldest) = q.waits(now);
                (mode.clone(), n as u64, oldest.as_millis() as u64)
            })
            .collect()
    }

    /// Runs `f` on the queue of `mode`, creating it on first use.
    fn with<T>(
        &self,
        shard: &Shard,
        mode: &str,
        f: impl FnOnce(&mut ModeQueue) -> T,
    ) -> Result<T, ApiError> {
        let mut modes = self.modes.borrow_mut();
        if !modes.contains_key(mode) {
            let game = shard.game.borrow();
            let compiled = game.mode(mode).ok_or_else(|| Error::UnknownMode {
                mode: Some(mode.to_owned()),
            })?;
            modes.insert(
                mode.to_owned(),
                ModeQueue::new(mode.to_owned(), queue_config(shard, compiled)),
            );
        }
        modes.get_mut(mode).map(f).ok_or_else(ApiError::internal)
    }

    /// Runs `f` on whichever queue knows `ticket_id` (a shard owns few modes).
    fn find<T>(
        &self,
        mut f: impl FnMut(&mut ModeQueue) -> Result<T, TicketAccessError>,
    ) -> Result<T, ApiError> {
        let mut modes = self.modes.borrow_mut();
        for q in modes.values_mut() {
            match f(q) {
                Err(TicketAccessError::NotFound) => continue,
                other => return other.map_err(access_error),
            }
        }
        Err(ticket_not_found())
    }

    pub(crate) fn len(&self) -> usize {
        self.modes.borrow().values().map(ModeQueue::len).sum()
    }
}

pub(crate) fn on_add(
    shard: &Rc<Shard>,
    mode: &str,
    player_id: String,
    properties: Value,
) -> Result<Value, ApiError> {
    let now = shard.rt.now();
    let ticket = new_ticket_id(shard.id());
    shard
        .matchmaker
        .with(shard, mode, |q| {
            q.add(now, ticket, player_id, properties)
                .map_err(|e| ApiError::from(Error::from(e)))
        })?
        .map(|q| q.to_json())
}

pub(crate) fn on_add_party(
    shard: &Rc<Shard>,
    mode: &str,
    leader: String,
    party_id: String,
    members: Vec<(String, f64)>,
    properties: Value,
) -> Result<Value, ApiError> {
    let now = shard.rt.now();
    let ticket = new_ticket_id(shard.id());
    let queued = shard.matchmaker.with(shard, mode, |q| {
        q.add_party(now, ticket, leader, members, properties)
            .map_err(|e| ApiError::from(Error::from(e)))
    })??;
    shard
        .matchmaker
        .parties
        .borrow_mut()
        .insert(queued.ticket_id.clone(), party_id);
    Ok(queued.to_json())
}

/// Tells a party how its ticket ended (fire and forget: a lost notice leaves the party showing
/// a queue entry until the leader queues or cancels again).
fn tell_party(shard: &Rc<Shard>, ticket_id: &str, match_id: Option<String>, teams: Option<Value>) {
    let Some(party_id) = shard.matchmaker.parties.borrow_mut().remove(ticket_id) else {
        return;
    };
    let to = crate::services::parties::owner(shard, &party_id);
    let c = Cmd::Parties(crate::services::parties::cmd::Cmd::Unqueued {
        party_id,
        ticket_id: ticket_id.to_owned(),
        match_id,
        teams,
    });
    if route(shard, to, c).is_err() {
        tracing::debug!("party ticket notice dropped: party owner overloaded");
    }
}

pub(crate) fn on_remove(
    shard: &Rc<Shard>,
    ticket_id: &str,
    player_id: &str,
) -> Result<Value, ApiError> {
    let now = shard.rt.now();
    shard
        .matchmaker
        .find(|q| q.remove(now, ticket_id, player_id))
        .map(|()| Value::Null)
}

pub(crate) fn on_status(
    shard: &Rc<Shard>,
    ticket_id: &str,
    player_id: &str,
) -> Result<Value, ApiError> {
    let now = shard.rt.now();
    let wall = crate::services::accounts::tokens::now_ms() as u64;
    shard
        .matchmaker
        .find(|q| q.status(now, ticket_id, player_id).map(|s| s.to_json(wall)))
}

pub(crate) fn on_remove_player(shard: &Rc<Shard>, mode: &str, player_id: &str) {
    let now = shard.rt.now();
    let cancelled = shard
        .matchmaker
        .modes
        .borrow_mut()
        .get_mut(mode)
        .and_then(|q| q.remove_player(now, player_id));
    if let Some(ticket) = cancelled {
        shard.matchmaker.parties.borrow_mut().remove(&ticket);
    }
}

pub(crate) fn on_formation_failed(shard: &Rc<Shard>, mode: &str, tickets: Vec<String>) {
    let now = shard.rt.now();
    let retry = shard
        .matchmaker
        .modes
        .borrow_mut()
        .get_mut(mode)
        .map(|q| q.formation_failed(now, tickets));
    for t in retry.map(|r| r.gave_up).unwrap_or_default() {
        notify(
            shard,
            &t.player_id,
            "match.matchmaker_failed",
            &json!({ "reason": "match_start_failed" }),
        );
    }
}

fn notify(shard: &Rc<Shard>, player_id: &str, kind: &str, payload: &Value) {
    if let (Some(at), Some(f)) = (
        shard.ctx.registry.session_of(player_id),
        Frame::text(encode_frame(kind, None, payload)),
    ) {
        shard.rt.deliver(at, Outbound::Frame(f));
    }
}

/// New mode settings apply to queues from the next tick; queued tickets stay.
pub(crate) fn reconfigure(shard: &Rc<Shard>, game: &Arc<Game>) {
    let mut modes = shard.matchmaker.modes.borrow_mut();
    for (mode, q) in modes.iter_mut() {
        if let Some(compiled) = game.mode(mode) {
            q.reconfigure(queue_config(shard, compiled));
        }
    }
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::Tick => tick(shard, shard.rt.now()),
    }
}

/// Ticks every queue of this shard (empty ones too, so resolved tickets are swept), then re-arms.
fn tick(shard: &Rc<Shard>, now: Instant) {
    if shard.rt.shutting_down.get() || shard.ops.draining.get() {
        return;
    }
    crate::services::bots::fill::fill(shard, now);
    let events: Vec<QueueEvent> = shard
        .matchmaker
        .modes
        .borrow_mut()
        .values_mut()
        .flat_map(|q| q.tick(now))
        .collect();
    for event in events {
        match event {
            QueueEvent::Formed(group) => form(shard, group),
            QueueEvent::Expired(t) => {
                tell_party(shard, &t.ticket_id, None, None);
                notify(
                    shard,
                    &t.player_id,
                    "match.matchmaker_expired",
                    &json!({ "ticket_id": t.ticket_id }),
                )
            }
        }
    }
    shard
        .rt
        .arm(now + TICK, ShardTimer::Matchmaker(Timer::Tick));
}

fn form(shard: &Rc<Shard>, group: FormedGroup) {
    let players = group.player_ids();
    let match_id = uuid::Uuid::now_v7().to_string();
    let mut teams_in_mode = 1;
    if let Some(q) = shard.matchmaker.modes.borrow_mut().get_mut(&group.mode) {
        q.mark_matched(group.ticket_ids(), &match_id);
        teams_in_mode = q.config().teams;
    }
    let lineup = crate::services::matches::Lineup::of(&group, teams_in_mode);
    let teams: Value = group
        .teams()
        .into_iter()
        .map(|(p, t)| (p, json!(t)))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    for t in &group.tickets {
        tell_party(
            shard,
            &t.ticket_id,
            Some(match_id.clone()),
            Some(teams.clone()),
        );
    }
    // One live ticket per player per mode (as asobi): a player queued in other modes too leaves
    // those queues now, so nobody is matched twice.
    let others: Vec<String> = shard
        .game
        .borrow()
        .modes
        .keys()
        .filter(|m| **m != group.mode)
        .cloned()
        .collect();
    for mode in &others {
        for p in &players {
            remove_player(shard, mode, p);
        }
    }
    let host = shard.ctx.registry.place(&players);
    let tickets = group.ticket_ids();
    let mode = group.mode;
    let cmd = Cmd::Matches(crate::services::matches::cmd::Cmd::Create {
        tickets: tickets.clone(),
        mode: mode.clone(),
        match_id,
        players,
        lineup,
    });
    if route(shard, host, cmd).is_err() {
        // The host is overloaded: the group goes back to the queue like a failed start.
        on_formation_failed(shard, &mode, tickets);
    }
}

impl Queues {
    /// Every queue of this shard (bot fill adds to them).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut ModeQueue)) {
        for q in self.modes.borrow_mut().values_mut() {
            f(q);
        }
    }
}
