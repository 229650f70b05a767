//! Live matches on a shard: the seat roster, the drift-free tick schedule, state fan-out, joins,
//! leaves, reconnection grace and finishing.
//!
//! A match is owned by the shard it was placed on and touched only there; matches live in a
//! `Slab` addressed by [`MatchKey`] (slot + generation, so a stale timer or command for a finished
//! match finds nothing). Every tick is a timer on the shard's one timer queue. Script effects are
//! collected during a callback ([`script::Effects`]) and applied after it returns. Each broadcast
//! and each shared state is encoded once; remote recipients get it in one mesh message per shard.

pub(crate) mod cmd;
mod directory;
pub(crate) mod rest;
pub(crate) mod script;
pub(crate) mod ws;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slab::Slab;

use asobi_schema::envelope::{encode_frame, encode_frame_raw};
use asobi_schema::error::code;
use asobi_schema::payload::{MatchFinished, MatchInfo};
use asobi_schema::ApiError;
use asobi_script::{
    Budgets, CallError, CompiledMode, Game, JoinOutcome, MatchVm, StateStrategy, StateTransport,
    VmPool,
};

pub(crate) use directory::{Directory, MatchEntry};
use script::Effects;

use super::accounts::tokens::now_ms;
use super::{Event, Shard, Timer as ShardTimer};
use crate::shard::mesh::{Outbound, SessionRef};
use crate::shard::registry::{bump, Registry};
use crate::wire::Frame;

/// How long a match may exist without ever seating a player before it ends as abandoned. A
/// `match.find_or_create` match is joined by its creator in the same request; this covers a
/// creator whose join failed and who retries, and no more — an empty match only costs.
const EMPTY_MATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// VMs created before the first match, so the first matches do not pay for the sandbox setup.
const POOL_PREWARM: usize = 4;

/// A match on this shard: its slab slot and the generation that slot had when it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatchKey {
    slot: usize,
    gen: u64,
}

/// The matches service's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The match's next tick is due.
    Tick(MatchKey),
}

/// What a session learns about its match membership.
#[derive(Debug, Clone)]
pub(crate) enum SessionEvent {
    /// The session is now in this match (hosted on `shard`).
    Entered { match_id: String, shard: usize },
    /// The session is no longer in this match.
    Left { match_id: String },
}

fn event(e: SessionEvent) -> Outbound<Event> {
    Outbound::Event(Event::Matches(e))
}

struct Seat {
    player_id: String,
    session: Option<SessionRef>,
    dropped_at: Option<Instant>,
}

/// Ticks at `start + n × period`: a slow tick delays the next one but never shifts the schedule,
/// and a tick more than one period late is skipped rather than bunched.
struct TickSchedule {
    start: Instant,
    period: Duration,
    /// The index of the deadline armed now.
    n: u32,
}

impl TickSchedule {
    fn deadline(&self) -> Instant {
        self.start + self.period * self.n
    }

    /// Called when the armed deadline fired at `now`: advances past it (skipping whole periods
    /// that were missed) and returns the next deadline.
    fn advance(&mut self, now: Instant) -> Instant {
        let late = now.saturating_duration_since(self.deadline());
        if late > self.period {
            let skipped = (late.as_nanos() / self.period.as_nanos().max(1)) as u32;
            self.n = self.n.saturating_add(skipped);
        }
        self.n = self.n.saturating_add(1);
        self.deadline()
    }
}

pub(crate) struct LiveMatch {
    id: String,
    key: MatchKey,
    mode: Arc<CompiledMode>,
    vm: Option<MatchVm>,
    seats: Vec<Seat>,
    joinable: bool,
    started_at: i64,
    schedule: TickSchedule,
    created: Instant,
    /// Set when the last seated player left.
    abandoned: bool,
}

/// The matches this shard hosts.
pub(crate) struct Matches {
    slab: RefCell<Slab<LiveMatch>>,
    by_id: RefCell<HashMap<String, MatchKey>>,
    pool: RefCell<VmPool>,
    next_gen: Cell<u64>,
}

impl Matches {
    pub(crate) fn new(budgets: &Budgets) -> Result<Matches, String> {
        let pool =
            VmPool::new(budgets.clone(), POOL_PREWARM).map_err(|e| format!("Lua VM pool: {e}"))?;
        Ok(Matches {
            slab: RefCell::new(Slab::new()),
            by_id: RefCell::new(HashMap::new()),
            pool: RefCell::new(pool),
            next_gen: Cell::new(0),
        })
    }

    fn key_of(&self, id: &str) -> Option<MatchKey> {
        self.by_id.borrow().get(id).copied()
    }

    /// Runs `f` on a live match, if `key` still names one.
    fn with<T>(&self, key: MatchKey, f: impl FnOnce(&mut LiveMatch) -> T) -> Option<T> {
        let mut slab = self.slab.borrow_mut();
        slab.get_mut(key.slot).filter(|m| m.key == key).map(f)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.borrow().len()
    }
}

impl LiveMatch {
    fn info(&self, shard_id: usize) -> MatchEntry {
        let cfg = &self.mode.config;
        let count = self.seats.len() as u32;
        MatchEntry {
            shard: shard_id,
            info: MatchInfo {
                match_id: self.id.clone(),
                mode: self.mode.name.clone(),
                status: if count >= cfg.min_players {
                    "running"
                } else {
                    "waiting"
                }
                .into(),
                player_count: count,
                max_players: cfg.max_players,
                joinable: self.joinable,
            },
            listed: cfg.listed,
            players: self.seats.iter().map(|s| s.player_id.clone()).collect(),
            started_at: self.started_at,
        }
    }

    fn connected(&self) -> Vec<SessionRef> {
        self.seats.iter().filter_map(|s| s.session).collect()
    }

    fn session_of(&self, player_id: &str) -> Option<SessionRef> {
        self.seats
            .iter()
            .find(|s| s.player_id == player_id)
            .and_then(|s| s.session)
    }

    fn joined_payload(&self, shard_id: usize) -> Value {
        let e = self.info(shard_id);
        json!({
            "match_id": e.info.match_id,
            "mode": e.info.mode,
            "status": e.info.status,
            "player_count": e.info.player_count,
            "max_players": e.info.max_players,
            "players": e.players,
            "listed": e.listed,
            "joinable": e.info.joinable,
        })
    }

    /// Applies a callback's effects and reports its failure, if any.
    fn apply(&mut self, shard: &Shard, fx: Effects, failed: Option<(&CallError, Option<&str>)>) {
        if let Some(open) = fx.joinable {
            if open != self.joinable {
                self.joinable = open;
                shard
                    .ctx
                    .matches
                    .update(&self.id, |e| e.info.joinable = open);
            }
        }
        let all = self.connected();
        for (target, frame) in fx.frames {
            let Some(frame) = Frame::text(frame) else {
                continue;
            };
            match target {
                None => shard.rt.deliver_all(&all, &Outbound::Frame(frame)),
                Some(p) => {
                    if let Some(at) = self.session_of(&p) {
                        shard.rt.deliver(at, Outbound::Frame(frame));
                    }
                }
            }
        }
        if let Some((err, player)) = failed {
            tracing::warn!(match_id = %self.id, mode = %self.mode.name, "script error: {err}");
            if shard.ctx.settings.dev_errors {
                if let Some(at) = player.and_then(|p| self.session_of(p)) {
                    let payload = json!({
                        "module": "lua",
                        "callback": err.callback().unwrap_or("unknown"),
                        "script": self.mode.file.file_name().map(|f| f.to_string_lossy().into_owned()),
                        "message": err.to_string(),
                    });
                    for kind in ["game.error", "module.error"] {
                        if let Some(f) = Frame::text(encode_frame(kind, None, &payload)) {
                            shard.rt.deliver(at, Outbound::Frame(f));
                        }
                    }
                }
            }
        }
    }

    /// The verdict after a callback: finished with a result, failed too often, or abandoned.
    fn outcome(&self) -> Option<(Value, &'static str)> {
        let vm = self.vm.as_ref()?;
        if vm.failed() {
            let result = vm
                .finished()
                .cloned()
                .unwrap_or_else(|| json!({ "error": "script_failed" }));
            return Some((result, "error"));
        }
        if let Some(r) = vm.finished() {
            return Some((r.clone(), "finished"));
        }
        // Everyone left for good (not merely dropped): nobody is left to play it.
        self.abandoned
            .then(|| (json!({ "reason": "abandoned" }), "abandoned"))
    }

    /// Runs the script's `leave` for a seat already taken off the roster.
    fn leave_seat(&mut self, shard: &Shard, seat: Seat) {
        shard.ctx.matches.unseat(&seat.player_id, &self.id);
        if let Some(at) = seat.session {
            shard.rt.deliver(
                at,
                event(SessionEvent::Left {
                    match_id: self.id.clone(),
                }),
            );
        }
        let mut fx = Effects::default();
        if let Some(vm) = self.vm.as_mut() {
            let result = vm.leave(&seat.player_id, &mut fx);
            self.apply(shard, fx, result.as_ref().err().map(|e| (e, None)));
        }
        shard.ctx.matches.put(&self.id, self.info(shard.id()));
        if self.seats.is_empty() {
            self.abandoned = true;
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        code::MATCH_NOT_FOUND,
        "No live match exists with this id.",
    )
}

/// Creates a match on this shard; `players` are seated at once (matchmaker groups).
pub(crate) fn create(
    shard: &Rc<Shard>,
    mode: &str,
    match_id: &str,
    players: Vec<String>,
    announce: bool,
) -> Result<(), ApiError> {
    let compiled =
        shard.game.borrow().mode(mode).cloned().ok_or_else(|| {
            ApiError::new(404, code::UNKNOWN_MODE, format!("No game mode `{mode}`."))
        })?;
    let mut vm = shard
        .matches
        .pool
        .borrow_mut()
        .acquire(&compiled, match_id)
        .map_err(|e| {
            tracing::error!(%match_id, "no Lua VM for a new match: {e}");
            ApiError::internal()
        })?;
    let mut fx = Effects::default();
    let config = json!({
        "match_id": match_id,
        "mode": mode,
        "players": players,
        "match_size": compiled.config.match_size,
        "max_players": compiled.config.max_players,
    });
    if let Err(e) = vm.init(&config, &mut fx) {
        tracing::warn!(%match_id, %mode, "init failed: {e}");
        shard.matches.pool.borrow_mut().release(vm);
        return Err(ApiError::new(
            500,
            code::MATCH_START_FAILED,
            "The match script failed to start.",
        ));
    }
    let now = shard.rt.now();
    let ctx = &shard.ctx;
    let mut seats = Vec::new();
    for p in &players {
        match vm.join(p, None, &mut fx) {
            Ok(JoinOutcome::Accepted) => {
                let session = ctx.registry.session_of(p);
                seats.push(Seat {
                    player_id: p.clone(),
                    session,
                    dropped_at: session.is_none().then_some(now),
                });
            }
            Ok(JoinOutcome::Refused(reason)) => {
                tracing::info!(%match_id, player = %p, reason = reason.as_deref().unwrap_or(""), "script refused a matched player")
            }
            Err(e) => tracing::warn!(%match_id, player = %p, "join failed: {e}"),
        }
    }
    let gen = shard.matches.next_gen.get() + 1;
    shard.matches.next_gen.set(gen);
    let period = Duration::from_millis(compiled.config.tick_rate_ms.max(1));
    let mut slab = shard.matches.slab.borrow_mut();
    let entry = slab.vacant_entry();
    let key = MatchKey {
        slot: entry.key(),
        gen,
    };
    let lm = entry.insert(LiveMatch {
        id: match_id.to_owned(),
        key,
        mode: compiled,
        vm: Some(vm),
        seats,
        joinable: true,
        started_at: now_ms(),
        schedule: TickSchedule {
            start: now,
            period,
            n: 1,
        },
        created: now,
        abandoned: false,
    });
    shard
        .matches
        .by_id
        .borrow_mut()
        .insert(match_id.to_owned(), key);
    ctx.matches.put(match_id, lm.info(shard.id()));
    bump(&ctx.stats(shard.id()).hosted, 1);
    for s in &lm.seats {
        ctx.matches.seat(&s.player_id, match_id);
    }
    if announce {
        let names: Vec<&str> = lm.seats.iter().map(|s| s.player_id.as_str()).collect();
        let frame = encode_frame(
            "match.matched",
            None,
            &json!({ "match_id": match_id, "mode": mode, "players": names }),
        );
        let targets = lm.connected();
        shard.rt.deliver_all(
            &targets,
            &event(SessionEvent::Entered {
                match_id: match_id.to_owned(),
                shard: shard.id(),
            }),
        );
        if let Some(f) = Frame::text(frame) {
            shard.rt.deliver_all(&targets, &Outbound::Frame(f));
        }
    }
    lm.apply(shard, fx, None);
    let first = lm.schedule.deadline();
    drop(slab);
    shard.rt.arm(first, ShardTimer::Matches(Timer::Tick(key)));
    Ok(())
}

/// Seats a player (or rebinds their session if already seated); the `match.joined` payload.
pub(crate) fn join(
    shard: &Rc<Shard>,
    match_id: &str,
    player_id: &str,
    session: SessionRef,
    ctx: Option<Value>,
) -> Result<Value, ApiError> {
    let key = shard.matches.key_of(match_id).ok_or_else(not_found)?;
    let result = shard
        .matches
        .with(key, |lm| join_seat(shard, lm, player_id, session, ctx))
        .unwrap_or_else(|| Err(not_found()));
    check_outcome(shard, key);
    result
}

fn join_seat(
    shard: &Shard,
    lm: &mut LiveMatch,
    player_id: &str,
    session: SessionRef,
    ctx: Option<Value>,
) -> Result<Value, ApiError> {
    if let Some(seat) = lm.seats.iter_mut().find(|s| s.player_id == player_id) {
        // Already seated (e.g. matched, then joined explicitly): just bind this session.
        seat.session = Some(session);
        seat.dropped_at = None;
        return Ok(lm.joined_payload(shard.id()));
    }
    if !lm.joinable {
        return Err(ApiError::new(
            409,
            code::MATCH_NOT_JOINABLE,
            "The match does not accept joins now.",
        ));
    }
    if lm.seats.len() as u32 >= lm.mode.config.max_players {
        return Err(ApiError::new(409, code::MATCH_FULL, "The match is full."));
    }
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else {
        return Err(not_found());
    };
    match vm.join(player_id, ctx.as_ref(), &mut fx) {
        Ok(JoinOutcome::Accepted) => {
            lm.seats.push(Seat {
                player_id: player_id.to_owned(),
                session: Some(session),
                dropped_at: None,
            });
            lm.abandoned = false;
            shard.ctx.matches.put(&lm.id, lm.info(shard.id()));
            shard.ctx.matches.seat(player_id, &lm.id);
            lm.apply(shard, fx, None);
            Ok(lm.joined_payload(shard.id()))
        }
        Ok(JoinOutcome::Refused(reason)) => {
            lm.apply(shard, fx, None);
            Err(ApiError::new(
                400,
                code::REQUEST_FAILED,
                "The request failed. See `details.reason`.",
            )
            .with_details(json!({ "reason": reason.unwrap_or_else(|| "join_refused".to_owned()) })))
        }
        Err(e) => {
            lm.apply(shard, fx, Some((&e, Some(player_id))));
            Err(ApiError::new(
                500,
                code::REQUEST_FAILED,
                "The match script failed to handle the join.",
            )
            .with_details(json!({ "reason": "script_error" })))
        }
    }
}

/// A player's input, handed to the script.
pub(crate) fn input(shard: &Rc<Shard>, match_id: &str, player_id: &str, input: &Value) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    shard.matches.with(key, |lm| {
        if !lm.seats.iter().any(|s| s.player_id == player_id) {
            return;
        }
        let mut fx = Effects::default();
        let Some(vm) = lm.vm.as_mut() else { return };
        let result = vm.handle_input(player_id, input, &mut fx);
        lm.apply(
            shard,
            fx,
            result.as_ref().err().map(|e| (e, Some(player_id))),
        );
    });
    check_outcome(shard, key);
}

/// A player leaves for good.
pub(crate) fn leave(shard: &Rc<Shard>, match_id: &str, player_id: &str) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    shard.matches.with(key, |lm| {
        if let Some(pos) = lm.seats.iter().position(|s| s.player_id == player_id) {
            let seat = lm.seats.remove(pos);
            lm.leave_seat(shard, seat);
        }
    });
    check_outcome(shard, key);
}

/// The player's socket dropped: the seat is kept for the grace window.
pub(crate) fn disconnected(shard: &Rc<Shard>, match_id: &str, player_id: &str, session: SessionRef) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    let now = shard.rt.now();
    shard.matches.with(key, |lm| {
        if let Some(seat) = lm
            .seats
            .iter_mut()
            .find(|s| s.player_id == player_id && s.session == Some(session))
        {
            seat.session = None;
            seat.dropped_at = Some(now);
        }
    });
}

/// The player is back on a new session within the grace window.
pub(crate) fn reattach(shard: &Rc<Shard>, match_id: &str, player_id: &str, session: SessionRef) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    shard.matches.with(key, |lm| {
        let Some(seat) = lm.seats.iter_mut().find(|s| s.player_id == player_id) else {
            return;
        };
        seat.session = Some(session);
        seat.dropped_at = None;
        shard.rt.deliver(
            session,
            event(SessionEvent::Entered {
                match_id: lm.id.clone(),
                shard: shard.id(),
            }),
        );
        // The returning player gets the current state at once instead of waiting for the tick.
        let mut fx = Effects::default();
        let per_player = matches!(lm.mode.config.state_strategy, StateStrategy::PerPlayer);
        let who = per_player.then_some(player_id);
        if let Some(vm) = lm.vm.as_mut() {
            match vm.state_for(who, &mut fx) {
                Ok(state) => {
                    if let Some(f) = Frame::text(encode_frame_raw("match.state", None, &state)) {
                        shard.rt.deliver(session, Outbound::Frame(f));
                    }
                    lm.apply(shard, fx, None);
                }
                Err(e) => lm.apply(shard, fx, Some((&e, Some(player_id)))),
            }
        }
    });
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::Tick(key) => tick(shard, key),
    }
}

fn tick(shard: &Rc<Shard>, key: MatchKey) {
    let now = shard.rt.now();
    let next = shard.matches.with(key, |lm| {
        let next = lm.schedule.advance(now);
        // Seats whose grace window ran out now leave for real.
        let grace = Duration::from_millis(shard.ctx.settings.reconnect_grace_ms);
        while let Some(pos) = lm
            .seats
            .iter()
            .position(|s| s.dropped_at.is_some_and(|t| now.duration_since(t) >= grace))
        {
            let seat = lm.seats.remove(pos);
            lm.leave_seat(shard, seat);
        }
        if lm.seats.is_empty() && now.duration_since(lm.created) >= EMPTY_MATCH_TIMEOUT {
            lm.abandoned = true;
        }
        let mut fx = Effects::default();
        if let Some(vm) = lm.vm.as_mut().filter(|_| !lm.abandoned) {
            let result = vm.tick(&mut fx);
            lm.apply(shard, fx, result.as_ref().err().map(|e| (e, None)));
            if lm.outcome().is_none() {
                send_state(shard, lm);
            }
        }
        next
    });
    let Some(next) = next else { return };
    if !check_outcome(shard, key) {
        shard.rt.arm(next, ShardTimer::Matches(Timer::Tick(key)));
    }
}

fn send_state(shard: &Shard, lm: &mut LiveMatch) {
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else { return };
    let mut failure = None;
    match lm.mode.config.state_strategy {
        StateStrategy::Shared => match vm.state_for(None, &mut fx) {
            Ok(state) => {
                if let Some(f) = state_frame(&lm.mode, &state) {
                    let targets: Vec<SessionRef> =
                        lm.seats.iter().filter_map(|s| s.session).collect();
                    shard.rt.deliver_all(&targets, &Outbound::Frame(f));
                }
            }
            Err(e) => failure = Some(e),
        },
        _ => {
            let mut items = Vec::with_capacity(lm.seats.len());
            for seat in &lm.seats {
                let Some(at) = seat.session else { continue };
                match vm.state_for(Some(&seat.player_id), &mut fx) {
                    Ok(state) => {
                        if let Some(f) = state_frame(&lm.mode, &state) {
                            items.push((at, Outbound::Frame(f)));
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            shard.rt.deliver_each(items);
        }
    }
    lm.apply(shard, fx, failure.as_ref().map(|e| (e, None)));
}

/// A `match.state` frame; droppable (datagram-eligible) when the mode says so.
fn state_frame(mode: &CompiledMode, state: &[u8]) -> Option<Frame> {
    let bytes = encode_frame_raw("match.state", None, state);
    match mode.config.state_transport {
        StateTransport::Datagram => Frame::droppable(bytes),
        _ => Frame::json(bytes),
    }
}

/// Finishes the match if the last callback finished it, failed it too often, or everyone left.
/// True when it finished.
fn check_outcome(shard: &Rc<Shard>, key: MatchKey) -> bool {
    let verdict = shard.matches.with(key, |lm| lm.outcome()).flatten();
    match verdict {
        Some((result, status)) => {
            finish(shard, key, result, status);
            true
        }
        None => false,
    }
}

fn finish(shard: &Rc<Shard>, key: MatchKey, result: Value, status: &str) {
    let lm = {
        let mut slab = shard.matches.slab.borrow_mut();
        if !slab.get(key.slot).is_some_and(|m| m.key == key) {
            return;
        }
        slab.remove(key.slot)
    };
    let mut lm = lm;
    shard.matches.by_id.borrow_mut().remove(&lm.id);
    let targets = lm.connected();
    if let Some(f) = Frame::text(encode_frame(
        "match.finished",
        None,
        &MatchFinished {
            match_id: &lm.id,
            result: &result,
        },
    )) {
        shard.rt.deliver_all(&targets, &Outbound::Frame(f));
    }
    shard.rt.deliver_all(
        &targets,
        &event(SessionEvent::Left {
            match_id: lm.id.clone(),
        }),
    );
    let ctx = &shard.ctx;
    for s in &lm.seats {
        ctx.matches.unseat(&s.player_id, &lm.id);
    }
    ctx.matches.remove(&lm.id);
    bump(&ctx.stats(shard.id()).hosted, -1);
    if let Some(vm) = lm.vm.take() {
        shard.matches.pool.borrow_mut().release(vm);
    }
    let record = asobi_storage::MatchRecord {
        id: lm.id.clone(),
        mode: lm.mode.name.clone(),
        status: status.to_owned(),
        players: lm.seats.iter().map(|s| s.player_id.clone()).collect(),
        result,
        started_at: lm.started_at,
        finished_at: now_ms(),
    };
    tracing::info!(match_id = %lm.id, mode = %lm.mode.name, status, "match finished");
    let store = ctx.store.clone();
    shard.rt.spawn(async move {
        if let Err(e) = store.insert_match_record(record).await {
            tracing::warn!("could not record a finished match: {e}");
        }
    });
}

/// Hot reload: every live match on this shard re-runs the new chunk between callbacks.
pub(crate) fn reload_all(shard: &Rc<Shard>, game: &Arc<Game>) {
    let mut slab = shard.matches.slab.borrow_mut();
    for (_, lm) in slab.iter_mut() {
        let Some(new_mode) = game.mode(&lm.mode.name).cloned() else {
            continue;
        };
        let mut fx = Effects::default();
        let Some(vm) = lm.vm.as_mut() else { continue };
        match vm.reload(&new_mode, &mut fx) {
            Ok(()) => {
                lm.mode = new_mode;
                lm.apply(shard, fx, None);
                tracing::info!(match_id = %lm.id, version = game.version, "match reloaded");
            }
            Err(e) => {
                lm.apply(shard, fx, None);
                tracing::warn!(match_id = %lm.id, "reload failed; the match keeps its previous code: {e}");
            }
        }
    }
}

/// On shutdown: tell players and end every match.
pub(crate) fn finish_all_for_shutdown(shard: &Rc<Shard>) {
    let keys: Vec<MatchKey> = shard.matches.slab.borrow().iter().map(|(_, m)| m.key).collect();
    for key in keys {
        finish(shard, key, json!({ "reason": "server_shutdown" }), "aborted");
    }
}
