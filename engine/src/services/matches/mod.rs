//! Live matches on a shard: the seat roster, the drift-free tick loop, state fan-out, joins,
//! leaves, reconnection grace and finishing.
//!
//! A match is owned by the shard it was placed on and touched only there. Script effects
//! (`game.broadcast`, `game.send`, `set_joinable`) are collected during a callback and applied
//! after it returns, so the Lua runtime never calls back into the shard. Each broadcast and each
//! shared state is encoded once; remote recipients get it in one mesh message per shard.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use asobi_schema::envelope::{encode_frame, encode_frame_raw};
use asobi_schema::error::code;
use asobi_schema::payload::{MatchFinished, MatchInfo};
use asobi_schema::ApiError;
use asobi_script::{
    CallError, CompiledMode, Game, Host, JoinOutcome, MatchVm, StateStrategy, StateTransport,
};

use crate::auth::now_ms;
use crate::directory::MatchEntry;
use crate::mesh::{MatchCmd, Outbound, SessionRef};
use crate::session::text;
use crate::shard::Shard;

struct Seat {
    player_id: String,
    session: Option<SessionRef>,
    dropped_at: Option<Instant>,
}

pub(crate) struct LiveMatch {
    id: String,
    mode: Arc<CompiledMode>,
    vm: Option<MatchVm>,
    seats: Vec<Seat>,
    joinable: bool,
    started_at: i64,
    finished: bool,
    /// Set when the last seated player left.
    abandoned: bool,
}

/// What a script asked for during one callback, applied once the callback returned.
#[derive(Default)]
struct Effects {
    /// `None` target: every player in the match.
    frames: Vec<(Option<String>, Bytes)>,
    joinable: Option<bool>,
}

impl Host for Effects {
    fn broadcast(&mut self, event: &str, payload: Bytes) {
        let kind = format!("match.{event}");
        self.frames
            .push((None, encode_frame_raw(&kind, None, &payload)));
    }

    fn send(&mut self, player_id: &str, message: Bytes) {
        let mut body = Vec::with_capacity(message.len() + 32);
        body.extend_from_slice(b"{\"module\":\"lua\",\"message\":");
        body.extend_from_slice(&message);
        body.push(b'}');
        // asobi still emits the pre-rename `game.message` before `module.message` so SDKs built
        // before the rename keep working; clients dispatch on one of the two.
        self.frames.push((
            Some(player_id.to_owned()),
            encode_frame_raw("game.message", None, &body),
        ));
        self.frames.push((
            Some(player_id.to_owned()),
            encode_frame_raw("module.message", None, &body),
        ));
    }

    fn set_joinable(&mut self, open: bool) {
        self.joinable = Some(open);
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
    fn apply(
        &mut self,
        shard: &Rc<Shard>,
        fx: Effects,
        failed: Option<(&CallError, Option<&str>)>,
    ) {
        if let Some(open) = fx.joinable {
            if open != self.joinable {
                self.joinable = open;
                shard
                    .global
                    .directory
                    .update_match(&self.id, |e| e.info.joinable = open);
            }
        }
        let all = self.connected();
        for (target, frame) in fx.frames {
            let Some(frame) = text(frame) else { continue };
            match target {
                None => shard.deliver_all(&all, &Outbound::Frame(frame)),
                Some(p) => {
                    if let Some(at) = self.session_of(&p) {
                        shard.deliver(at, Outbound::Frame(frame));
                    }
                }
            }
        }
        if let Some((err, player)) = failed {
            tracing::warn!(match_id = %self.id, mode = %self.mode.name, "script error: {err}");
            if shard.global.cfg.dev_errors {
                if let Some(at) = player.and_then(|p| self.session_of(p)) {
                    let payload = json!({
                        "module": "lua",
                        "callback": err.callback().unwrap_or("unknown"),
                        "script": self.mode.file.file_name().map(|f| f.to_string_lossy().into_owned()),
                        "message": err.to_string(),
                    });
                    for kind in ["game.error", "module.error"] {
                        if let Some(f) = text(encode_frame(kind, None, &payload)) {
                            shard.deliver(at, Outbound::Frame(f));
                        }
                    }
                }
            }
        }
    }

    /// The script's verdict after a callback: finished with a result, or failed too often.
    fn outcome(&self) -> Option<(Value, &'static str)> {
        let vm = self.vm.as_ref()?;
        if vm.failed() {
            let result = vm
                .finished()
                .cloned()
                .unwrap_or_else(|| json!({ "error": "script_failed" }));
            return Some((result, "error"));
        }
        vm.finished().map(|r| (r.clone(), "finished"))
    }
}

type Shared = Rc<RefCell<LiveMatch>>;

fn find(shard: &Shard, id: &str) -> Option<Shared> {
    shard.matches.borrow().get(id).cloned()
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
        shard.pool.borrow_mut().release(vm);
        return Err(ApiError::new(
            500,
            "match.start_failed",
            "The match script failed to start.",
        ));
    }
    let now = Instant::now();
    let directory = &shard.global.directory;
    let mut seats = Vec::new();
    for p in &players {
        match vm.join(p, None, &mut fx) {
            Ok(JoinOutcome::Accepted) => {
                let session = directory.session_of(p);
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
    let lm = LiveMatch {
        id: match_id.to_owned(),
        mode: compiled.clone(),
        vm: Some(vm),
        seats,
        joinable: true,
        started_at: now_ms(),
        finished: false,
        abandoned: false,
    };
    let mut lm = lm;
    directory.put_match(match_id, lm.info(shard.id));
    directory.add_match(shard.id, 1);
    for s in &lm.seats {
        directory.seat(&s.player_id, match_id);
    }
    if announce {
        let names: Vec<&str> = lm.seats.iter().map(|s| s.player_id.as_str()).collect();
        let frame = encode_frame(
            "match.matched",
            None,
            &json!({ "match_id": match_id, "mode": mode, "players": names }),
        );
        let entered = Outbound::Entered {
            match_id: match_id.to_owned(),
            shard: shard.id,
        };
        let targets = lm.connected();
        shard.deliver_all(&targets, &entered);
        if let Some(f) = text(frame) {
            shard.deliver_all(&targets, &Outbound::Frame(f));
        }
    }
    lm.apply(shard, fx, None);
    let shared = Rc::new(RefCell::new(lm));
    shard
        .matches
        .borrow_mut()
        .insert(match_id.to_owned(), shared.clone());
    glommio::spawn_local(tick_loop(shard.clone(), shared)).detach();
    Ok(())
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: MatchCmd) {
    match cmd {
        MatchCmd::Create {
            mode,
            match_id,
            players,
            tickets,
        } => {
            if let Err(e) = create(shard, &mode, &match_id, players, true) {
                tracing::warn!(%match_id, "match creation failed: {e}");
                let host = shard.queue_shard(&mode);
                shard.route(
                    host,
                    crate::mesh::MeshMsg::Queue(crate::mesh::QueueCmd::FormationFailed {
                        mode,
                        tickets,
                    }),
                );
            }
        }
        MatchCmd::Join {
            match_id,
            player_id,
            session,
            ctx,
            reply,
        } => {
            let result = match find(shard, &match_id) {
                Some(m) => join(shard, &m, &player_id, session, ctx),
                None => Err(ApiError::new(
                    404,
                    code::MATCH_NOT_FOUND,
                    "No live match exists with this id.",
                )),
            };
            let _ = reply.send(result);
        }
        MatchCmd::Input {
            match_id,
            player_id,
            input,
        } => {
            if let Some(m) = find(shard, &match_id) {
                input_of(shard, &m, &player_id, &input);
            }
        }
        MatchCmd::Leave {
            match_id,
            player_id,
            reply,
        } => {
            if let Some(m) = find(shard, &match_id) {
                leave(shard, &m, &player_id);
            }
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
        }
        MatchCmd::Disconnected {
            match_id,
            player_id,
            session,
        } => {
            if let Some(m) = find(shard, &match_id) {
                let mut lm = m.borrow_mut();
                if let Some(seat) = lm
                    .seats
                    .iter_mut()
                    .find(|s| s.player_id == player_id && s.session == Some(session))
                {
                    seat.session = None;
                    seat.dropped_at = Some(Instant::now());
                }
            }
        }
        MatchCmd::Reattach {
            match_id,
            player_id,
            session,
        } => {
            if let Some(m) = find(shard, &match_id) {
                reattach(shard, &m, &player_id, session);
            }
        }
    }
}

fn join(
    shard: &Rc<Shard>,
    m: &Shared,
    player_id: &str,
    session: SessionRef,
    ctx: Option<Value>,
) -> Result<Value, ApiError> {
    let mut lm = m.borrow_mut();
    if lm.finished {
        return Err(ApiError::new(
            404,
            code::MATCH_NOT_FOUND,
            "The match has finished.",
        ));
    }
    if let Some(seat) = lm.seats.iter_mut().find(|s| s.player_id == player_id) {
        // Already seated (e.g. matched, then joined explicitly): just bind this session.
        seat.session = Some(session);
        seat.dropped_at = None;
        return Ok(lm.joined_payload(shard.id));
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
        return Err(ApiError::new(
            404,
            code::MATCH_NOT_FOUND,
            "The match has finished.",
        ));
    };
    let outcome = vm.join(player_id, ctx.as_ref(), &mut fx);
    match outcome {
        Ok(JoinOutcome::Accepted) => {
            lm.seats.push(Seat {
                player_id: player_id.to_owned(),
                session: Some(session),
                dropped_at: None,
            });
            let entry = lm.info(shard.id);
            shard.global.directory.put_match(&lm.id, entry);
            shard.global.directory.seat(player_id, &lm.id);
            lm.apply(shard, fx, None);
            let payload = lm.joined_payload(shard.id);
            drop(lm);
            check_outcome(shard, m);
            Ok(payload)
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
            drop(lm);
            check_outcome(shard, m);
            Err(ApiError::new(
                500,
                code::REQUEST_FAILED,
                "The match script failed to handle the join.",
            )
            .with_details(json!({ "reason": "script_error" })))
        }
    }
}

fn input_of(shard: &Rc<Shard>, m: &Shared, player_id: &str, input: &Value) {
    {
        let mut lm = m.borrow_mut();
        if lm.finished || !lm.seats.iter().any(|s| s.player_id == player_id) {
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
    }
    check_outcome(shard, m);
}

fn leave(shard: &Rc<Shard>, m: &Shared, player_id: &str) {
    {
        let mut lm = m.borrow_mut();
        let Some(pos) = lm.seats.iter().position(|s| s.player_id == player_id) else {
            return;
        };
        let seat = lm.seats.remove(pos);
        leave_seat(shard, &mut lm, seat);
    }
    check_outcome(shard, m);
}

/// Runs the script's `leave` for a seat already taken off the roster.
fn leave_seat(shard: &Rc<Shard>, lm: &mut LiveMatch, seat: Seat) {
    let directory = &shard.global.directory;
    directory.unseat(&seat.player_id, &lm.id);
    if let Some(at) = seat.session {
        shard.deliver(
            at,
            Outbound::Left {
                match_id: lm.id.clone(),
            },
        );
    }
    let mut fx = Effects::default();
    if let Some(vm) = lm.vm.as_mut() {
        let result = vm.leave(&seat.player_id, &mut fx);
        lm.apply(shard, fx, result.as_ref().err().map(|e| (e, None)));
    }
    let entry = lm.info(shard.id);
    directory.put_match(&lm.id, entry);
    if lm.seats.is_empty() {
        lm.abandoned = true;
    }
}

fn reattach(shard: &Rc<Shard>, m: &Shared, player_id: &str, session: SessionRef) {
    let mut lm = m.borrow_mut();
    if lm.finished {
        return;
    }
    let Some(seat) = lm.seats.iter_mut().find(|s| s.player_id == player_id) else {
        return;
    };
    seat.session = Some(session);
    seat.dropped_at = None;
    shard.deliver(
        session,
        Outbound::Entered {
            match_id: lm.id.clone(),
            shard: shard.id,
        },
    );
    // The returning player gets the current state at once instead of waiting for the next tick.
    let mut fx = Effects::default();
    let per_player = matches!(lm.mode.config.state_strategy, StateStrategy::PerPlayer);
    let who = per_player.then_some(player_id);
    if let Some(vm) = lm.vm.as_mut() {
        match vm.state_for(who, &mut fx) {
            Ok(state) => {
                if let Some(f) = text(encode_frame_raw("match.state", None, &state)) {
                    shard.deliver(session, Outbound::Frame(f));
                }
                lm.apply(shard, fx, None);
            }
            Err(e) => lm.apply(shard, fx, Some((&e, Some(player_id)))),
        }
    }
}

/// Finishes the match if the last callback finished it or failed it too often.
fn check_outcome(shard: &Rc<Shard>, m: &Shared) {
    let verdict = {
        let lm = m.borrow();
        if lm.finished {
            return;
        }
        lm.outcome().or_else(|| {
            // Everyone left for good (not merely dropped): nobody is left to play it.
            lm.abandoned
                .then(|| (json!({ "reason": "abandoned" }), "abandoned"))
        })
    };
    if let Some((result, status)) = verdict {
        finish(shard, m, result, status);
    }
}

fn finish(shard: &Rc<Shard>, m: &Shared, result: Value, status: &str) {
    let mut lm = m.borrow_mut();
    if lm.finished {
        return;
    }
    lm.finished = true;
    let targets = lm.connected();
    if let Some(f) = text(encode_frame(
        "match.finished",
        None,
        &MatchFinished {
            match_id: &lm.id,
            result: &result,
        },
    )) {
        shard.deliver_all(&targets, &Outbound::Frame(f));
    }
    shard.deliver_all(
        &targets,
        &Outbound::Left {
            match_id: lm.id.clone(),
        },
    );
    let directory = &shard.global.directory;
    for s in &lm.seats {
        directory.unseat(&s.player_id, &lm.id);
    }
    directory.remove_match(&lm.id);
    directory.add_match(shard.id, -1);
    if let Some(vm) = lm.vm.take() {
        shard.pool.borrow_mut().release(vm);
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
    shard.matches.borrow_mut().remove(&lm.id);
    tracing::info!(match_id = %lm.id, mode = %lm.mode.name, status, "match finished");
    let store = shard.global.store.clone();
    glommio::spawn_local(async move {
        if let Err(e) = store.insert_match_record(record).await {
            tracing::warn!("could not record a finished match: {e}");
        }
    })
    .detach();
}

/// The tick loop: deadlines are `start + n × tick_rate`, so a slow tick delays the next one but
/// never shifts the schedule; a tick more than one period late is skipped rather than bunched.
async fn tick_loop(shard: Rc<Shard>, m: Shared) {
    let period = Duration::from_millis(m.borrow().mode.config.tick_rate_ms.max(1));
    let start = Instant::now();
    let mut n: u32 = 1;
    loop {
        let deadline = start + period * n;
        let now = Instant::now();
        if deadline > now {
            glommio::timer::sleep(deadline - now).await;
        }
        if m.borrow().finished {
            return;
        }
        let late = Instant::now().saturating_duration_since(deadline);
        if late > period {
            n += (late.as_nanos() / period.as_nanos()) as u32;
            tracing::debug!(match_id = %m.borrow().id, late_ms = late.as_millis() as u64, "tick late; skipping");
        }
        n += 1;
        tick(&shard, &m);
        if m.borrow().finished {
            return;
        }
    }
}

fn tick(shard: &Rc<Shard>, m: &Shared) {
    {
        let mut lm = m.borrow_mut();
        // Seats whose grace window ran out now leave for real.
        let grace = Duration::from_millis(shard.global.cfg.reconnect_grace_ms);
        let now = Instant::now();
        while let Some(pos) = lm
            .seats
            .iter()
            .position(|s| s.dropped_at.is_some_and(|t| now.duration_since(t) >= grace))
        {
            let seat = lm.seats.remove(pos);
            leave_seat(shard, &mut lm, seat);
        }
        let mut fx = Effects::default();
        let Some(vm) = lm.vm.as_mut() else { return };
        let result = vm.tick(&mut fx);
        lm.apply(shard, fx, result.as_ref().err().map(|e| (e, None)));
        if lm.outcome().is_none() {
            send_state(shard, &mut lm);
        }
    }
    check_outcome(shard, m);
}

fn send_state(shard: &Rc<Shard>, lm: &mut LiveMatch) {
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else { return };
    let mut failure = None;
    match lm.mode.config.state_strategy {
        StateStrategy::Shared => match vm.state_for(None, &mut fx) {
            Ok(state) => {
                if let Some(f) = state_frame(&lm.mode, &state) {
                    let targets: Vec<SessionRef> =
                        lm.seats.iter().filter_map(|s| s.session).collect();
                    shard.deliver_all(&targets, &Outbound::Frame(f));
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
            shard.deliver_each(items);
        }
    }
    lm.apply(shard, fx, failure.as_ref().map(|e| (e, None)));
}

/// A `match.state` frame; droppable (datagram-eligible) when the mode says so.
fn state_frame(mode: &CompiledMode, state: &[u8]) -> Option<crate::frame::Frame> {
    let bytes = encode_frame_raw("match.state", None, state);
    match mode.config.state_transport {
        StateTransport::Datagram => crate::frame::Frame::droppable(bytes),
        _ => crate::frame::Frame::json(bytes),
    }
}

/// Hot reload: every live match on this shard re-runs the new chunk between callbacks.
pub(crate) fn reload_all(shard: &Rc<Shard>, game: &Arc<Game>) {
    let matches: Vec<Shared> = shard.matches.borrow().values().cloned().collect();
    for m in matches {
        let mut lm = m.borrow_mut();
        let Some(new_mode) = game.mode(&lm.mode.name).cloned() else {
            continue;
        };
        let id = lm.id.clone();
        let mut fx = Effects::default();
        let Some(vm) = lm.vm.as_mut() else { continue };
        match vm.reload(&new_mode, &mut fx) {
            Ok(()) => {
                lm.mode = new_mode;
                lm.apply(shard, fx, None);
                tracing::info!(match_id = %id, version = game.version, "match reloaded");
            }
            Err(e) => {
                lm.apply(shard, fx, None);
                tracing::warn!(match_id = %id, "reload failed; the match keeps its previous code: {e}");
            }
        }
    }
}

/// On shutdown: tell players, record nothing further, release VMs.
pub(crate) fn finish_all_for_shutdown(shard: &Rc<Shard>) {
    let matches: Vec<Shared> = shard.matches.borrow().values().cloned().collect();
    for m in matches {
        finish(shard, &m, json!({ "reason": "server_shutdown" }), "aborted");
    }
}
