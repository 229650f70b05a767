//! Live matches on a shard: the seat roster, the drift-free tick schedule, state fan-out, joins,
//! leaves, reconnection grace and finishing.
//!
//! A match is owned by the shard it was placed on and touched only there; matches live in a
//! `Slab` addressed by [`MatchKey`] (slot + generation, so a stale timer or command for a finished
//! match finds nothing). Every tick is a timer on the shard's one timer queue. Script effects are
//! collected during a callback ([`script::Effects`]) and applied after it returns. Each broadcast
//! and each shared state is encoded once; remote recipients get it in one mesh message per shard.

mod calls;
pub(crate) mod cmd;
mod directory;
pub(crate) mod error;
mod input;
pub(crate) mod lineup;
pub(crate) mod lobby;
pub(crate) mod rest;
pub(crate) mod script;
pub(crate) mod ws;

#[cfg(test)]
pub(crate) use calls::{MAX_HELD_INPUT, MAX_HELD_INPUT_BYTES};

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slab::Slab;

use asobi_rules::matches::{Admission, Ending, Joined, Lifecycle, Roster, Seat, TickSchedule};
use asobi_rules::phases::{Phases, Transition};

use asobi_schema::envelope::{encode_frame, encode_frame_raw};
use asobi_schema::payload::{MatchFinished, MatchInfo};
use asobi_schema::ApiError;
use asobi_script::{
    Budgets, CallError, CompiledMode, Envelope, Game, MatchVm, StateStrategy, StateTransport,
    VmPool,
};

pub(crate) use directory::{Directory, MatchEntry};
use error::Error;
pub(crate) use lineup::Lineup;
use script::Effects;

use super::accounts::tokens::now_ms;
use super::bots::MatchBots;
use super::votes::MatchVotes;
use super::{Event, Shard, Timer as ShardTimer};
use crate::shard::answer;
use crate::shard::mesh::{Outbound, ReplyTo, SessionRef};
use crate::shard::registry::bump;
use crate::wire::Frame;

/// VMs created before the first match, so the first matches do not pay for the sandbox setup.
const POOL_PREWARM: usize = 4;

/// A match on this shard: its slab slot and the generation that slot had when it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MatchKey {
    slot: usize,
    gen: u64,
}

/// Who waits for a service's answer: a match and the number of its wait. A reply that comes
/// after its wait was abandoned (the callback ran out of budget) names an old wait and is
/// dropped, so it can never resume a later call with the wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Caller {
    key: MatchKey,
    wait: u64,
}

/// The matches service's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The match's next deadline (tick, grace, idle) is due.
    Tick(MatchKey),
    /// The reply to the match's service call is here ([`answer_later`]).
    Answer(Caller),
    /// The budget of the match's wait number `.1` runs out.
    WaitDeadline(MatchKey, u64),
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

/// One live match: its script, and the rules (`asobi_rules::matches`) this service drives.
pub(crate) struct LiveMatch {
    id: String,
    key: MatchKey,
    mode: Arc<CompiledMode>,
    vm: Option<MatchVm>,
    roster: Roster<SessionRef>,
    life: Lifecycle,
    schedule: TickSchedule,
    joinable: bool,
    started_at: i64,
    /// The deadline of the timer armed for this match, if any (one is kept outstanding).
    armed: Option<Instant>,
    /// What completes when the callback suspended on a service call does.
    waiting: Option<calls::After>,
    /// Callbacks held back while one waits.
    backlog: VecDeque<calls::Op>,
    /// Input for the next tick.
    held_input: calls::HeldInput,
    /// Waits so far; names the current one for its deadline timer.
    waits: u64,
    /// `match.matched` went out; players seated later are told on their own.
    announced: bool,
    /// While a matchmaker group is seated, script output waits for `match.matched` to go first.
    held: Option<Effects>,
    /// Its votes (empty unless the script starts one).
    votes: MatchVotes,
    /// Its phase list, when the script declares one; the clock the block reads.
    phases: Option<Box<(Phases, Instant)>>,
    /// Its bots (none unless the script places some).
    bots: MatchBots,
    /// Whether the script defines `vote_requested` (read at start and on reload, so a tick
    /// does not look it up).
    polls_votes: bool,
    /// `{player: team}` from the matchmaker's lineup, for `match.matched` (team modes only).
    teams: Option<Value>,
}

/// The matches this shard hosts.
pub(crate) struct Matches {
    slab: RefCell<Slab<LiveMatch>>,
    /// Replies to service calls, waiting for their match's timer (kept apart from the slab so
    /// an answer can arrive while a match is borrowed).
    answers: RefCell<HashMap<Caller, Value>>,
    by_id: RefCell<HashMap<String, MatchKey>>,
    pool: RefCell<VmPool>,
    next_gen: Cell<u64>,
    /// Seats handed out by `match.find_or_create` for the modes this shard owns.
    lobby: lobby::Lobby,
}

impl Matches {
    pub(crate) fn new(budgets: &Budgets) -> Result<Matches, String> {
        let pool =
            VmPool::new(budgets.clone(), POOL_PREWARM).map_err(|e| format!("Lua VM pool: {e}"))?;
        Ok(Matches {
            slab: RefCell::new(Slab::new()),
            answers: RefCell::new(HashMap::new()),
            by_id: RefCell::new(HashMap::new()),
            pool: RefCell::new(pool),
            next_gen: Cell::new(0),
            lobby: lobby::Lobby::default(),
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
        let count = self.roster.len() as u32;
        MatchEntry {
            shard: shard_id,
            info: MatchInfo {
                match_id: self.id.clone(),
                mode: self.mode.name.clone(),
                status: if self.life.is_running() {
                    "running"
                } else {
                    "waiting"
                }
                .into(),
                player_count: count,
                max_players: cfg.max_players,
                joinable: self.joinable,
                phase: self.phase_block(),
            },
            listed: cfg.listed,
            players: self.roster.players().map(str::to_owned).collect(),
            started_at: self.started_at,
        }
    }

    fn connected(&self) -> Vec<SessionRef> {
        self.roster.connected().collect()
    }

    fn session_of(&self, player_id: &str) -> Option<SessionRef> {
        self.roster.session_of(player_id)
    }

    /// Reports the script's verdict after a callback to the lifecycle.
    fn heard_script(&mut self) {
        if let Some(vm) = &self.vm {
            if vm.failed() {
                self.life.script_failed(vm.finished().cloned());
            } else if let Some(r) = vm.finished() {
                self.life.script_finished(r.clone());
            }
        }
    }

    /// The earliest of the roster's, the lifecycle's and the tick schedule's deadlines.
    /// A match waiting for `min_players` has no tick due.
    fn next_deadline(&self) -> Instant {
        let tick = self
            .life
            .is_running()
            .then(|| self.schedule.next_deadline());
        [
            tick,
            self.roster.next_deadline(),
            self.life.next_deadline(),
            self.votes.next_deadline(),
            self.phases.as_ref().and_then(|p| p.0.next_deadline()),
            self.bots.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| self.schedule.next_deadline())
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
            "phase": self.phases.as_ref().map(|p| p.0.info(p.1)),
        })
    }

    /// Applies a callback's effects and reports its failure, if any.
    fn apply(
        &mut self,
        shard: &Shard,
        mut fx: Effects,
        failed: Option<(&CallError, Option<&str>)>,
    ) {
        // Bots are placed and removed by the driver (`run_bots`), which may run callbacks.
        self.bots.pending.append(&mut fx.bots);
        if let Some(held) = self.held.as_mut() {
            held.frames.extend(fx.frames);
            held.joinable = fx.joinable.or(held.joinable);
            let fx = Effects::default();
            return self.apply_now(shard, fx, failed);
        }
        self.apply_now(shard, fx, failed);
    }

    fn apply_now(
        &mut self,
        shard: &Shard,
        fx: Effects,
        failed: Option<(&CallError, Option<&str>)>,
    ) {
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
            if matches!(err, CallError::Budget { .. }) {
                crate::services::ops::metrics::bump(&shard.ops.metrics.lua_budget_aborts);
            }
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

    /// A seat taken off the roster: the indexes and the session learn it, then the script's
    /// `leave` runs (or waits its turn behind a suspended callback).
    fn leave_seat(&mut self, shard: &Rc<Shard>, seat: Seat<SessionRef>) {
        shard.ctx.matches.unseat(&seat.player_id, &self.id);
        if let Some(at) = seat.session {
            shard.rt.deliver(
                at,
                event(SessionEvent::Left {
                    match_id: self.id.clone(),
                }),
            );
        }
        shard.ctx.matches.put(&self.id, self.info(shard.id()));
        self.life.roster_changed(self.roster.len());
        calls::submit(
            shard,
            self,
            calls::Op::Leave {
                player_id: seat.player_id,
            },
        );
    }

    /// Seats a player the script accepted; the `match.joined` payload.
    fn seat(&mut self, shard: &Rc<Shard>, player_id: &str, session: Option<SessionRef>) -> Value {
        let now = shard.rt.now();
        let joined = if super::bots::is_bot(player_id) {
            self.roster.join_bot(player_id)
        } else {
            self.roster.join(now, player_id, session)
        };
        if let Joined::Seated = joined {
            self.life.roster_changed(self.roster.len());
            if self.life.take_started() {
                // asobi stamps the start on the waiting → running change, and ticks from it.
                self.started_at = now_ms();
                let period = Duration::from_millis(self.mode.config.tick_rate_ms.max(1));
                self.schedule = TickSchedule::spread(now, period, self.key.gen);
                // The phase clock runs from here too (asobi ticks phases while running).
                if let Some(p) = self.phases.as_mut() {
                    p.0.release(now);
                }
            }
            let count = self.roster.len();
            if let Some(p) = self.phases.as_mut() {
                p.1 = now;
                for t in p.0.players(now, count) {
                    calls::submit(shard, self, calls::Op::Phase(t));
                }
            }
        }
        shard.ctx.matches.put(&self.id, self.info(shard.id()));
        shard.ctx.matches.seat(player_id, &self.id);
        if self.announced {
            if let Some(at) = self.session_of(player_id) {
                self.announce_to(shard, &[at]);
            }
        }
        self.joined_payload(shard.id())
    }

    /// `match.matched` (and the session's entry into the match) for `targets`.
    fn announce_to(&self, shard: &Shard, targets: &[SessionRef]) {
        let names: Vec<&str> = self.roster.players().collect();
        let mut body = json!({ "match_id": self.id, "mode": self.mode.name, "players": names });
        if let (Some(teams), Value::Object(b)) = (&self.teams, &mut body) {
            b.insert("teams".into(), teams.clone());
        }
        let frame = encode_frame("match.matched", None, &body);
        shard.rt.deliver_all(
            targets,
            &event(SessionEvent::Entered {
                match_id: self.id.clone(),
                shard: shard.id(),
            }),
        );
        if let Some(f) = Frame::text(frame) {
            shard.rt.deliver_all(targets, &Outbound::Frame(f));
        }
    }
}

fn not_found() -> ApiError {
    Error::NotFound.into()
}

/// Creates a match on this shard; `players` are seated at once (matchmaker groups) and told
/// with `match.matched` when `announce`. A matchmaker group brings its `lineup` (teams and
/// parties), which `init(config)` and `match.matched` carry.
pub(crate) fn create(
    shard: &Rc<Shard>,
    mode: &str,
    match_id: &str,
    players: Vec<String>,
    lineup: Option<Lineup>,
    announce: bool,
) -> Result<(), ApiError> {
    if shard.ops.draining.get() {
        return Err(crate::services::ops::draining());
    }
    let compiled = shard
        .game
        .borrow()
        .mode(mode)
        .cloned()
        .ok_or_else(|| Error::UnknownMode(mode.to_owned()))?;
    let vm = shard
        .matches
        .pool
        .borrow_mut()
        .acquire(&compiled, match_id)
        .map_err(|e| {
            tracing::error!(%match_id, "no Lua VM for a new match: {e}");
            Error::NoVm
        })?;
    let now = shard.rt.now();
    let ctx = &shard.ctx;
    // The mode's `reconnect` policy, else the server's default (none, as in asobi).
    let grace_ms = compiled
        .config
        .reconnect_grace_ms
        .unwrap_or(ctx.settings.reconnect_grace_ms);
    let grace = Duration::from_millis(grace_ms);
    let min_players = compiled.config.min_players as usize;
    let period = Duration::from_millis(compiled.config.tick_rate_ms.max(1));
    let mut config = json!({
        "match_id": match_id,
        "mode": mode,
        "players": players,
        "match_size": compiled.config.match_size,
        "max_players": compiled.config.max_players,
    });
    if let Some(l) = &lineup {
        l.add_to_config(&mut config);
    }
    let gen = shard.matches.next_gen.get() + 1;
    shard.matches.next_gen.set(gen);
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
        life: Lifecycle::new(now, players.len()).needing(now, players.len(), min_players),
        roster: Roster::new(grace),
        schedule: TickSchedule::spread(now, period, gen),
        joinable: true,
        started_at: now_ms(),
        armed: None,
        waiting: None,
        backlog: VecDeque::new(),
        held_input: calls::HeldInput::default(),
        waits: 0,
        announced: false,
        held: announce.then(Effects::default),
        votes: MatchVotes::default(),
        phases: None,
        bots: MatchBots::default(),
        polls_votes: false,
        teams: lineup.as_ref().and_then(Lineup::team_map),
    });
    lm.polls_votes = lm
        .vm
        .as_ref()
        .is_some_and(|vm| vm.defines("vote_requested"));
    let phase_list = read_phases(shard, lm, &config, now);
    if let Err(e) = calls::init(shard, lm, &config) {
        tracing::warn!(%match_id, %mode, "init failed: {e}");
        let lm = slab.remove(key.slot);
        if let Some(vm) = lm.vm {
            shard.matches.pool.borrow_mut().release(vm);
        }
        return Err(Error::StartFailed.into());
    }
    shard
        .matches
        .by_id
        .borrow_mut()
        .insert(match_id.to_owned(), key);
    for t in phase_list {
        calls::submit(shard, lm, calls::Op::Phase(t));
    }
    ctx.matches.put(match_id, lm.info(shard.id()));
    bump(&ctx.stats(shard.id()).hosted, 1);
    crate::services::ops::metrics::bump(&shard.ops.metrics.matches_started);
    for p in players.iter().filter(|p| super::bots::is_bot(p)) {
        let vm = shard
            .matches
            .pool
            .borrow_mut()
            .acquire_bot(&lm.mode)
            .unwrap_or_else(|e| {
                tracing::warn!(%match_id, "bot script failed to load; built-in AI: {e}");
                None
            });
        lm.bots.adopt(now, p, vm);
    }
    for p in players {
        let session = ctx.registry.session_of(&p);
        calls::submit(
            shard,
            lm,
            calls::Op::Join {
                player_id: p,
                session,
                ctx: None,
                reply: None,
            },
        );
    }
    if announce {
        lm.announce_to(shard, &lm.connected());
        lm.announced = true;
        if let Some(held) = lm.held.take() {
            lm.apply(shard, held, None);
        }
    }
    drop(slab);
    drive(shard, key);
    Ok(())
}

/// A player asks to join: a seated player's session is rebound at once; anyone else is admitted
/// by the roster and then by the script's `join`. `reply` gets the `match.joined` payload.
pub(crate) fn join(
    shard: &Rc<Shard>,
    match_id: &str,
    player_id: &str,
    session: SessionRef,
    ctx: Option<Value>,
    reply: ReplyTo,
) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return answer(shard, reply, Err(not_found()));
    };
    let handled = shard.matches.with(key, |lm| {
        if lm.life.is_over() {
            return answer(shard, reply, Err(not_found()));
        }
        let max = lm.mode.config.max_players as usize;
        match lm.roster.admit(player_id, lm.joinable, max) {
            Err(refused) => answer(shard, reply, Err(Error::from(refused).into())),
            Ok(Admission::AlreadySeated) => {
                // Already seated (e.g. matched, then joined explicitly): bind this session.
                let payload = lm.seat(shard, player_id, Some(session));
                answer(shard, reply, Ok(payload));
            }
            Ok(Admission::Open) => calls::submit(
                shard,
                lm,
                calls::Op::Join {
                    player_id: player_id.to_owned(),
                    session: Some(session),
                    ctx,
                    reply: Some(reply),
                },
            ),
        }
    });
    if handled.is_none() {
        return answer(shard, reply, Err(not_found()));
    }
    drive(shard, key);
}

/// A player's input, handed to the script.
pub(crate) fn input(shard: &Rc<Shard>, match_id: &str, player_id: &str, input: Box<str>) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    shard.matches.with(key, |lm| {
        if !lm.life.is_running() {
            // As in asobi, input before the match starts is dropped.
            tracing::debug!(%match_id, %player_id, "input dropped: match not started");
        } else if lm.roster.contains(player_id) {
            // Applied at the next tick, which is armed already.
            calls::hold_input(shard, lm, player_id.to_owned(), calls::Input::Text(input));
        }
    });
}

/// A player leaves for good.
pub(crate) fn leave(shard: &Rc<Shard>, match_id: &str, player_id: &str) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    shard.matches.with(key, |lm| {
        if let Some(seat) = lm.roster.leave(player_id) {
            lm.leave_seat(shard, seat);
        }
    });
    drive(shard, key);
}

/// The player's socket dropped: the seat is kept for the grace window.
pub(crate) fn disconnected(
    shard: &Rc<Shard>,
    match_id: &str,
    player_id: &str,
    session: SessionRef,
) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    let now = shard.rt.now();
    shard.matches.with(key, |lm| {
        if lm.life.is_running() {
            lm.roster.disconnect(now, player_id, session);
        } else if lm.roster.session_of(player_id) == Some(session) {
            // No grace before the match starts (asobi): a drop while gathering is a leave.
            if let Some(seat) = lm.roster.leave(player_id) {
                lm.leave_seat(shard, seat);
            }
        }
    });
    drive(shard, key);
}

/// The player is back on a new session within the grace window.
pub(crate) fn reattach(shard: &Rc<Shard>, match_id: &str, player_id: &str, session: SessionRef) {
    let Some(key) = shard.matches.key_of(match_id) else {
        return;
    };
    let now = shard.rt.now();
    shard.matches.with(key, |lm| {
        if lm.life.is_over() || !lm.roster.reattach(now, player_id, session) {
            return;
        }
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
        // While a callback waits on a service the state is mid-change: the next tick sends it.
        if let Some(vm) = lm.vm.as_mut().filter(|vm| !vm.waiting()) {
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
        lm.heard_script();
    });
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    let key = match t {
        Timer::Tick(key) => {
            shard.matches.with(key, |lm| lm.armed = None);
            key
        }
        Timer::Answer(caller) => {
            let reply = shard.matches.answers.borrow_mut().remove(&caller);
            if let Some(reply) = reply {
                shard.matches.with(caller.key, |lm| {
                    calls::resume(shard, lm, caller.wait, reply)
                });
            }
            caller.key
        }
        Timer::WaitDeadline(key, wait) => {
            shard
                .matches
                .with(key, |lm| calls::give_up(shard, lm, wait));
            key
        }
    };
    drive(shard, key);
}

/// Hands the reply to a match's service call to the match, at `at` (now, for a reply that just
/// arrived; later, for a test's delayed service). Going through the timer queue means a reply
/// never re-enters a match that is being run.
pub(crate) fn answer_later(shard: &Rc<Shard>, from: Caller, reply: Value, at: Instant) {
    calls::answer_later(shard, from, reply, at);
}

/// The match's driver, in `asobi_rules::matches`' order: seats whose grace ran out leave, a due
/// tick runs and state goes out, an ending finishes the match; otherwise one timer is kept armed
/// at the earliest deadline. Called on every timer and after every change.
fn drive(shard: &Rc<Shard>, key: MatchKey) {
    let now = shard.rt.now();
    let step = shard.matches.with(key, |lm| {
        for seat in lm.roster.expire(now) {
            lm.leave_seat(shard, seat);
        }
        // A tick that comes due while a callback waits is skipped, like a late one.
        if lm.life.is_running() {
            if let Some(tick) = lm.schedule.poll(now) {
                if lm.waiting.is_none() {
                    shard.ops.metrics.tick(&tick);
                    calls::tick(shard, lm);
                } else {
                    crate::services::ops::metrics::bump(&shard.ops.metrics.ticks_skipped);
                }
            }
        }
        close_votes(shard, lm, now);
        walk_phases(shard, lm, now);
        run_bots(shard, lm, now);
        match lm.life.poll(now) {
            Some(ending) => Err(ending),
            None => {
                let next = lm.next_deadline();
                let arm = lm.armed.is_none_or(|at| next < at);
                if arm {
                    lm.armed = Some(next);
                }
                Ok(arm.then_some(next))
            }
        }
    });
    match step {
        Some(Err(ending)) => finish(shard, key, ending),
        Some(Ok(Some(at))) => shard.rt.arm(at, ShardTimer::Matches(Timer::Tick(key))),
        _ => {}
    }
}

fn send_state(shard: &Shard, lm: &mut LiveMatch) {
    if lm
        .vm
        .as_ref()
        .is_some_and(|vm| vm.failed() || vm.finished().is_some() || vm.waiting())
    {
        return;
    }
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else { return };
    let mut failure = None;
    match lm.mode.config.state_strategy {
        StateStrategy::Shared => match vm.state_frame(None, STATE_ENVELOPE, &mut fx) {
            Ok(frame) => {
                if let Some(f) = state_frame(&lm.mode, frame) {
                    let targets: Vec<SessionRef> = lm.roster.connected().collect();
                    shard.rt.deliver_all(&targets, &Outbound::Frame(f));
                }
            }
            Err(e) => failure = Some(e),
        },
        _ => {
            let mut items = Vec::with_capacity(lm.roster.len());
            for seat in lm.roster.seats() {
                let Some(at) = seat.session else { continue };
                match vm.state_frame(Some(&seat.player_id), STATE_ENVELOPE, &mut fx) {
                    Ok(frame) => {
                        if let Some(f) = state_frame(&lm.mode, frame) {
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
    lm.heard_script();
}

/// A `match.state` frame around the state, as `encode_frame_raw("match.state", None, state)`
/// writes it: the VM encodes the state between the two in one buffer.
const STATE_ENVELOPE: Envelope = Envelope {
    head: br#"{"type":"match.state","payload":"#,
    tail: b"}",
};

/// A `match.state` frame ([`STATE_ENVELOPE`] around the state); droppable (datagram-eligible)
/// when the mode says so.
fn state_frame(mode: &CompiledMode, bytes: bytes::Bytes) -> Option<Frame> {
    match mode.config.state_transport {
        StateTransport::Datagram => Frame::droppable(bytes),
        _ => Frame::json(bytes),
    }
}

fn finish(shard: &Rc<Shard>, key: MatchKey, ending: Ending) {
    let lm = {
        let mut slab = shard.matches.slab.borrow_mut();
        if !slab.get(key.slot).is_some_and(|m| m.key == key) {
            return;
        }
        slab.remove(key.slot)
    };
    let mut lm = lm;
    let Ending { outcome, result } = ending;
    shard.matches.by_id.borrow_mut().remove(&lm.id);
    // Replies still on their way to this match find nothing to resume.
    shard
        .matches
        .answers
        .borrow_mut()
        .retain(|c, _| c.key != key);
    // Joiners still waiting on this match get their answer: it is gone.
    calls::release_waiters(shard, &mut lm);
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
    for p in lm.roster.players() {
        ctx.matches.unseat(p, &lm.id);
    }
    ctx.matches.remove(&lm.id);
    bump(&ctx.stats(shard.id()).hosted, -1);
    crate::services::ops::metrics::bump(&shard.ops.metrics.matches_finished);
    if let Some(vm) = lm.vm.take() {
        shard.matches.pool.borrow_mut().release(vm);
    }
    let status = outcome.as_str();
    let players: Vec<String> = lm.roster.players().map(str::to_owned).collect();
    super::storage::stats::on_match_finished(shard, &lm.id, status, players, &result);
    let record = asobi_storage::MatchRecord {
        id: lm.id.clone(),
        mode: lm.mode.name.clone(),
        status: status.to_owned(),
        players: lm.roster.players().map(str::to_owned).collect(),
        result,
        started_at: lm.started_at,
        finished_at: now_ms(),
    };
    tracing::info!(event = "match_finished", match_id = %lm.id, mode = %lm.mode.name, status, "match finished");
    // Counted while in flight, so a draining shard waits for the record before it stops.
    crate::services::ops::record_match(shard, record);
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
                lm.polls_votes = vm.defines("vote_requested");
                lm.mode = new_mode;
                lm.apply(shard, fx, None);
                tracing::info!(match_id = %lm.id, version = game.version, "match reloaded");
            }
            Err(e) => {
                lm.apply(shard, fx, None);
                crate::services::ops::metrics::bump(&shard.ops.metrics.reload_failures);
                tracing::warn!(match_id = %lm.id, "reload failed; the match keeps its previous code: {e}");
            }
        }
    }
}

/// An operator ends a live match hosted on this shard: it finishes as aborted, players are told
/// and its record is written. False when no such match runs here.
pub(crate) fn end_by_operator(shard: &Rc<Shard>, match_id: &str) -> bool {
    let Some(key) = shard.matches.by_id.borrow().get(match_id).copied() else {
        return false;
    };
    let ending = shard.matches.with(key, |lm| {
        lm.life.abort();
        lm.life.poll(shard.rt.now())
    });
    match ending {
        Some(Some(ending)) => {
            finish(shard, key, ending);
            true
        }
        _ => false,
    }
}

/// On shutdown: tell players and end every match.
pub(crate) fn finish_all_for_shutdown(shard: &Rc<Shard>) {
    let keys: Vec<MatchKey> = shard
        .matches
        .slab
        .borrow()
        .iter()
        .map(|(_, m)| m.key)
        .collect();
    for key in keys {
        let ending = shard.matches.with(key, |lm| {
            lm.life.abort();
            lm.life.poll(shard.rt.now())
        });
        if let Some(Some(ending)) = ending {
            finish(shard, key, ending);
        }
    }
}

/// Votes whose window ended: the result goes to every player and to storage, then the script's
/// `vote_resolved` runs in its turn.
fn close_votes(shard: &Rc<Shard>, lm: &mut LiveMatch, now: Instant) {
    if lm.votes.next_deadline().is_none_or(|at| at > now) {
        return;
    }
    for r in lm.votes.poll(now, &lm.id) {
        if let Some(f) = Frame::text(r.frame) {
            shard.rt.deliver_all(&lm.connected(), &Outbound::Frame(f));
        }
        let store = shard.ctx.store.clone();
        let record = r.record;
        shard.rt.spawn(async move {
            if let Err(e) = store.insert_vote(record).await {
                tracing::warn!("could not store a resolved vote: {e}");
            }
        });
        let op = calls::Op::VoteResolved {
            template: r.template,
            result: r.result,
        };
        calls::submit(shard, lm, op);
    }
}

/// Starts the vote a script's `vote_requested` returned, among the match's players.
fn start_vote(shard: &Shard, lm: &mut LiveMatch, config: &Value) {
    // asobi refuses votes before the match runs (`match_not_started`): below `min_players`.
    if (lm.roster.len() as u32) < lm.mode.config.min_players {
        tracing::info!(match_id = %lm.id, "vote not started: match_not_started");
        return;
    }
    let settings = super::votes::Settings::of(&lm.mode.config.extra);
    let players: Vec<String> = lm.roster.players().map(str::to_owned).collect();
    let seed = rand::random::<u64>();
    match lm
        .votes
        .start(shard.rt.now(), config, &settings, players, seed)
    {
        Ok(frame) => {
            if let Some(f) = Frame::text(frame) {
                shard.rt.deliver_all(&lm.connected(), &Outbound::Frame(f));
            }
        }
        Err(e) => tracing::warn!(match_id = %lm.id, mode = %lm.mode.name, "vote not started: {e}"),
    }
}

/// Runs a vote operation (`vote.cast`, `vote.veto`) on a live match: `f` gets its votes, the
/// time, and the veto tokens a player has; a frame it returns goes to every player. The
/// match's timer is re-armed after, since a cast may close a window early.
pub(crate) fn vote_op(
    shard: &Rc<Shard>,
    match_id: &str,
    f: impl FnOnce(
        &mut MatchVotes,
        Instant,
        u32,
    ) -> Result<Option<bytes::Bytes>, super::votes::error::Error>,
) -> Result<(), ApiError> {
    let key = shard
        .matches
        .key_of(match_id)
        .ok_or(super::votes::error::Error::NotFound)?;
    let now = shard.rt.now();
    let r = shard
        .matches
        .with(key, |lm| {
            let tokens = super::votes::Settings::of(&lm.mode.config.extra).veto_tokens;
            let frame = f(&mut lm.votes, now, tokens)?;
            if let Some(f) = frame.and_then(Frame::text) {
                shard.rt.deliver_all(&lm.connected(), &Outbound::Frame(f));
            }
            Ok::<(), super::votes::error::Error>(())
        })
        .ok_or(super::votes::error::Error::NotFound)?;
    drive(shard, key);
    r.map_err(Into::into)
}

impl LiveMatch {
    /// The `phase` block for listings, as of the match's last wake-up (`match.joined` carries
    /// the fuller one, as asobi's join reply does).
    fn phase_block(&self) -> Option<Value> {
        self.phases.as_ref().map(|p| p.0.listing(p.1))
    }
}

/// Calls the script's optional `phases(config)` (before `init`, which it does not depend on)
/// and starts walking the list; the first transitions run once `init` has.
fn read_phases(shard: &Shard, lm: &mut LiveMatch, config: &Value, now: Instant) -> Vec<Transition> {
    let Some(vm) = lm.vm.as_mut().filter(|vm| vm.defines("phases")) else {
        return Vec::new();
    };
    let mut fx = Effects::default();
    let declared = vm.phases(config, &mut fx);
    lm.apply(shard, fx, None);
    let defs = match declared {
        Ok(Some(v)) => match asobi_rules::phases::parse(&v) {
            Some(defs) => defs,
            None => {
                tracing::warn!(match_id = %lm.id, "phases() returned no list; ignored");
                return Vec::new();
            }
        },
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(match_id = %lm.id, "phases() failed: {e}");
            return Vec::new();
        }
    };
    let (mut phases, first) = Phases::new(now, defs);
    if !lm.life.is_running() {
        phases.hold(now);
    }
    lm.phases = Some(Box::new((phases, now)));
    first
}

/// Phase durations and timed starts that came due: each transition's callback runs in turn;
/// a list walked to its end finishes the match with `phases_complete`, as asobi does.
fn walk_phases(shard: &Rc<Shard>, lm: &mut LiveMatch, now: Instant) {
    let Some(p) = lm.phases.as_mut() else { return };
    p.1 = now;
    if p.0.next_deadline().is_none_or(|at| at > now) {
        return;
    }
    let due = p.0.poll(now);
    let complete = p.0.is_complete();
    for t in due {
        calls::submit(shard, lm, calls::Op::Phase(t));
    }
    shard.ctx.matches.put(&lm.id, lm.info(shard.id()));
    if complete {
        lm.life
            .script_finished(json!({ "status": "phases_complete" }));
    }
}

/// Bots the script placed or removed, then the bots' turn when it is due: each seated bot
/// decides from the state a player in its seat would get, and that goes in as its input.
fn run_bots(shard: &Rc<Shard>, lm: &mut LiveMatch, now: Instant) {
    for op in std::mem::take(&mut lm.bots.pending) {
        match op {
            super::bots::BotOp::Add(name) => {
                let vm = match shard.matches.pool.borrow_mut().acquire_bot(&lm.mode) {
                    Ok(vm) => vm,
                    Err(e) => {
                        tracing::warn!(match_id = %lm.id, "bot script failed to load; built-in AI: {e}");
                        None
                    }
                };
                let max = lm.mode.config.max_players as usize;
                match lm.bots.add(now, &name, lm.roster.len(), max, vm) {
                    Ok(id) => calls::submit(
                        shard,
                        lm,
                        calls::Op::Join {
                            player_id: id,
                            session: None,
                            ctx: None,
                            reply: None,
                        },
                    ),
                    Err(e) => {
                        tracing::info!(match_id = %lm.id, bot = %name, "game.bots.add ignored: {e}")
                    }
                }
            }
            super::bots::BotOp::Remove(which) => {
                if let Some(id) = lm.bots.remove(&which) {
                    if let Some(seat) = lm.roster.leave(&id) {
                        lm.leave_seat(shard, seat);
                    }
                }
            }
        }
    }
    if !lm.bots.due(now) || lm.life.is_over() {
        return;
    }
    lm.bots.thought(now);
    // While a callback waits on a service the state is mid-change: this turn is skipped.
    if lm.waiting.is_some() || lm.vm.as_ref().is_none_or(|vm| vm.waiting() || vm.failed()) {
        return;
    }
    let shared = matches!(lm.mode.config.state_strategy, StateStrategy::Shared);
    // Under `shared` every bot reads the one state of this turn (asobi hands bots the payload
    // behind the broadcast); it is read once and lent to each bot, never copied per bot.
    let mut shared_state: Option<Value> = None;
    let mut own_state: Value;
    for id in lm.bots.ids() {
        if !lm.roster.contains(&id) {
            continue;
        }
        let state = if shared && shared_state.is_some() {
            shared_state.as_ref()
        } else {
            let mut fx = Effects::default();
            let Some(vm) = lm.vm.as_mut() else { return };
            let who = (!shared).then_some(id.as_str());
            let bytes = vm.state_for(who, &mut fx);
            lm.apply(shard, fx, None);
            let read = match bytes {
                Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if shared {
                shared_state = Some(read);
                shared_state.as_ref()
            } else {
                own_state = read;
                Some(&own_state)
            }
        };
        let input = lm.bots.think(now, &id, state.unwrap_or(&Value::Null));
        if input.is_object() {
            calls::hold_input(shard, lm, id, calls::Input::Value(input));
        }
    }
    lm.heard_script();
}

#[cfg(test)]
mod state_envelope_tests {
    use super::*;

    #[test]
    fn the_state_envelope_is_the_frame_encoders() {
        let state = br#"{"tick":1}"#;
        let mut framed = STATE_ENVELOPE.head.to_vec();
        framed.extend_from_slice(state);
        framed.extend_from_slice(STATE_ENVELOPE.tail);
        assert_eq!(
            framed,
            encode_frame_raw("match.state", None, state).to_vec()
        );
    }
}
