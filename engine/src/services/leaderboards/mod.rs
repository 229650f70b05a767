//! Leaderboards: each board lives on one shard, `owner(board)`, which keeps its rank index in
//! memory (`asobi_rules::leaderboards::Board`), answers top-N, rank and around-me from it
//! without touching the database, and writes changed entries behind (every [`FLUSH_EVERY`]).
//!
//! A board is rebuilt from storage the first time its owner is asked about it after a start;
//! requests that arrive while it loads wait in order and run once it is ready. A read of a board
//! that has no entries anywhere does not keep it in memory, so random ids cannot fill the
//! shard; only a submit creates a board, up to this shard's share of `max_boards`.
//!
//! Resets: a board with a schedule ends its period at each firing (UTC wall clock); the ended
//! period's ranked entries are archived in the same storage transaction that clears them.
//! Writes reach storage in order (period ends first, then entries), one flush at a time, so
//! a slow database delays persistence but never reorders it.
//!
//! REST, Lua and any later WebSocket handler all call [`submit`], [`top`], [`rank`] and
//! [`around`].

pub(crate) mod cmd;
pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod script;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use asobi_rules::leaderboards::{
    Board, BoardConfig, Civil, Entry, Operator, Order, Ranked, Schedule,
};
use asobi_schema::ApiError;
use asobi_storage::{ArchivedEntry, BoardEntry, PeriodEnd};

use super::{Cmd as ShardCmd, Shard, Timer as ShardTimer};
use crate::shard::mesh::ReplyTo;
use crate::shard::{answer, request};
use error::Error;

/// Longest board id; longer ones cannot exist.
pub(crate) const MAX_BOARD_ID: usize = 128;
/// Largest metadata one entry keeps (JSON text).
pub(crate) const MAX_METADATA_BYTES: usize = 4096;
/// asobi's `limit` bounds for top-N (default and cap 100).
pub(crate) const MAX_TOP: usize = 100;
/// asobi's `range` bounds for around-me (default 5, cap 50).
pub(crate) const MAX_RANGE: usize = 50;
/// How often changed entries are written behind. A crash loses at most this much; asobi
/// flushes every 30 s.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Entries per storage call in one flush: bounds one transaction's size and time.
const FLUSH_BATCH: usize = 5_000;
/// How long shutdown waits for the last flush.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// The leaderboards' timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Write changed entries and ended periods.
    Flush,
    /// A board's period may have ended.
    Reset,
}

/// Which boards accept `POST /leaderboards/:id` from clients (asobi's
/// `leaderboard_client_submit`: none by default, a list, or all).
#[derive(Clone, Debug, Default)]
pub(crate) enum ClientSubmit {
    #[default]
    None,
    All,
    Boards(Arc<HashSet<String>>),
}

/// Leaderboard settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) client_submit: ClientSubmit,
    /// Per-board behaviour; the key `"*"` is the default for boards not named.
    pub(crate) boards: Arc<HashMap<String, BoardConfig>>,
    /// Boards the server keeps in memory at once (asobi's `leaderboard_max_boards`); each shard
    /// holds up to its share.
    pub(crate) max_boards: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_submit: ClientSubmit::None,
            boards: Arc::default(),
            max_boards: 1000,
        }
    }
}

impl Config {
    fn board(&self, id: &str) -> BoardConfig {
        self.boards
            .get(id)
            .or_else(|| self.boards.get("*"))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn client_may_submit(&self, id: &str) -> bool {
        match &self.client_submit {
            ClientSubmit::None => false,
            ClientSubmit::All => true,
            ClientSubmit::Boards(ids) => ids.contains(id),
        }
    }
}

/// `all`, or a comma-separated list of board ids (empty: none).
pub(crate) fn parse_client_submit(s: &str) -> Result<ClientSubmit, String> {
    let s = s.trim();
    Ok(match s {
        "" | "none" => ClientSubmit::None,
        "all" => ClientSubmit::All,
        list => ClientSubmit::Boards(Arc::new(
            list.split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
    })
}

/// A JSON object of board settings:
/// `{"weekly": {"order": "desc", "operator": "best", "reset": "weekly"}, "*": {...}}`.
pub(crate) fn parse_boards(s: &str) -> Result<Arc<HashMap<String, BoardConfig>>, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object of boards")?;
    let mut out = HashMap::new();
    for (id, spec) in obj {
        let spec = spec
            .as_object()
            .ok_or_else(|| format!("board {id:?}: expected an object"))?;
        let mut c = BoardConfig::default();
        for (k, v) in spec {
            let text = v
                .as_str()
                .ok_or_else(|| format!("board {id:?}: {k} must be a string"))?;
            match k.as_str() {
                "order" | "sort" => {
                    c.order = Order::parse(text)
                        .ok_or_else(|| format!("board {id:?}: order is asc or desc"))?
                }
                "operator" => {
                    c.operator = Operator::parse(text).ok_or_else(|| {
                        format!("board {id:?}: operator is best, set, incr or decr")
                    })?
                }
                "reset" => {
                    c.reset = Schedule::parse(text).map_err(|e| format!("board {id:?}: {e}"))?
                }
                other => return Err(format!("board {id:?}: unknown setting {other:?}")),
            }
        }
        out.insert(id.clone(), c);
    }
    Ok(Arc::new(out))
}

enum Slot {
    /// Being read back from storage; these requests run, in order, once it is.
    Loading(Vec<cmd::Cmd>),
    Ready(Box<Board>),
}

/// The boards this shard owns.
#[derive(Default)]
pub(crate) struct Boards {
    slots: RefCell<HashMap<String, Slot>>,
    /// Period ends not yet written, oldest first; written before any entry.
    ended: RefCell<VecDeque<PeriodEnd>>,
    flushing: Cell<bool>,
    flush_armed: Cell<bool>,
    /// Wall-clock ms of the reset timer armed, if any.
    reset_armed: Cell<Option<i64>>,
    /// Period ends queued since start, and how many of them are in storage (they are written
    /// in queue order).
    ends_queued: Cell<u64>,
    ends_written: Cell<u64>,
    /// Resets waiting for their period end to be written: (queued count to reach, reply,
    /// answer). One per reset command, which only seasons and operators send.
    reset_waiters: RefCell<Vec<(u64, crate::shard::mesh::ReplyTo, Value)>>,
    /// The runtime instant and the wall clock (unix ms) it was read at: wall time follows the
    /// shard's clock from there, so under the simulation harness days pass in microseconds.
    epoch: Cell<Option<(Instant, i64)>>,
}

/// Wall-clock unix milliseconds on this shard's clock.
fn wall_ms(shard: &Shard) -> i64 {
    let now = shard.rt.now();
    let (at, wall) = match shard.leaderboards.epoch.get() {
        Some(e) => e,
        None => {
            let e = (now, crate::services::accounts::tokens::now_ms());
            shard.leaderboards.epoch.set(Some(e));
            e
        }
    };
    wall + i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(i64::MAX)
}

/// Tests: the wall clock reads `ms` now.
#[cfg(test)]
pub(crate) fn set_wall_clock(shard: &Shard, ms: i64) {
    shard.leaderboards.epoch.set(Some((shard.rt.now(), ms)));
}

/// The shard that owns a board.
pub(crate) fn owner(shard: &Shard, board: &str) -> usize {
    asobi_rules::placement::owner(board, shard.rt.nshards())
}

fn valid_id(board: &str) -> bool {
    !board.is_empty() && board.len() <= MAX_BOARD_ID
}

// ---- operations (REST and Lua call these) ----

/// Submits a score by the board's operator. Answers the entry with its rank.
pub(crate) async fn submit(
    shard: &Rc<Shard>,
    board: &str,
    player_id: &str,
    score: i64,
    sub_score: i64,
    metadata: Option<&Value>,
) -> Result<Value, ApiError> {
    let metadata = checked_submit(board, metadata)?;
    request(shard, owner(shard, board), |reply| {
        submit_cmd(board, player_id, score, sub_score, metadata, reply)
    })
    .await
}

/// What became of a cast.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cast {
    /// On its way to the owner (or applied, when this shard owns the board).
    Sent,
    /// The owner's queue is full; nothing was sent.
    Full,
}

/// Submits a score without waiting for the owner, as asobi's `game.leaderboard.submit` does (a
/// `gen_server:cast`). Refused for a bad board id or metadata. Commands to one owner stay in
/// order, so a read sent after it sees it.
pub(crate) fn cast_submit(
    shard: &Rc<Shard>,
    board: &str,
    player_id: &str,
    score: i64,
    sub_score: i64,
    metadata: Option<&Value>,
) -> Result<Cast, ApiError> {
    let metadata = checked_submit(board, metadata)?;
    let cmd = submit_cmd(
        board,
        player_id,
        score,
        sub_score,
        metadata,
        ReplyTo::NOBODY,
    );
    Ok(match crate::shard::route(shard, owner(shard, board), cmd) {
        Ok(()) => Cast::Sent,
        Err(_) => Cast::Full,
    })
}

/// The board id checked and the metadata as stored text.
fn checked_submit(board: &str, metadata: Option<&Value>) -> Result<Option<String>, ApiError> {
    if !valid_id(board) {
        return Err(Error::InvalidBoardId.into());
    }
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(m) => {
            let text = m.to_string();
            if text.len() > MAX_METADATA_BYTES {
                return Err(Error::MetadataTooLarge.into());
            }
            Ok(Some(text))
        }
    }
}

fn submit_cmd(
    board: &str,
    player_id: &str,
    score: i64,
    sub_score: i64,
    metadata: Option<String>,
    reply: ReplyTo,
) -> ShardCmd {
    ShardCmd::Leaderboards(cmd::Cmd::Submit {
        board: board.to_owned(),
        player_id: player_id.to_owned(),
        score,
        sub_score,
        metadata,
        reply,
    })
}

/// Up to `limit` best entries: `{"entries": [...]}`.
pub(crate) async fn top(shard: &Rc<Shard>, board: &str, limit: usize) -> Result<Value, ApiError> {
    if !valid_id(board) || limit == 0 {
        return Ok(json!({ "entries": [] }));
    }
    request(shard, owner(shard, board), |reply| {
        ShardCmd::Leaderboards(cmd::Cmd::Top {
            board: board.to_owned(),
            limit,
            reply,
        })
    })
    .await
}

/// A player's entry and rank; `{"rank": null}` without one.
pub(crate) async fn rank(
    shard: &Rc<Shard>,
    board: &str,
    player_id: &str,
) -> Result<Value, ApiError> {
    if !valid_id(board) {
        return Ok(json!({ "rank": null }));
    }
    request(shard, owner(shard, board), |reply| {
        ShardCmd::Leaderboards(cmd::Cmd::Rank {
            board: board.to_owned(),
            player_id: player_id.to_owned(),
            reply,
        })
    })
    .await
}

/// The player and up to `range` entries either side: `{"entries": [...]}` (empty without an
/// entry).
pub(crate) async fn around(
    shard: &Rc<Shard>,
    board: &str,
    player_id: &str,
    range: usize,
) -> Result<Value, ApiError> {
    if !valid_id(board) {
        return Ok(json!({ "entries": [] }));
    }
    request(shard, owner(shard, board), |reply| {
        ShardCmd::Leaderboards(cmd::Cmd::Around {
            board: board.to_owned(),
            player_id: player_id.to_owned(),
            range,
            reply,
        })
    })
    .await
}

/// Ends a board's current period, as its schedule would: the ranked entries are archived and
/// the board starts empty, its new period starting at `period` (now when `None`). A board whose
/// period already starts at `period` or later is left alone (`{"reset": false}`), so repeating
/// a season's reset is harmless. Answers once the archive is written: after `{"reset": ...}`
/// a crash loses nothing of it.
pub(crate) async fn reset(
    shard: &Rc<Shard>,
    board: &str,
    period: Option<i64>,
) -> Result<Value, ApiError> {
    if !valid_id(board) {
        return Err(Error::InvalidBoardId.into());
    }
    request(shard, owner(shard, board), |reply| {
        ShardCmd::Leaderboards(cmd::Cmd::Reset {
            board: board.to_owned(),
            period,
            reply,
        })
    })
    .await
}

// ---- the owning shard's side ----

fn entry_json(board: &str, rank: Option<u64>, e: &Entry) -> Value {
    let mut v = json!({
        "leaderboard_id": board,
        "player_id": &*e.player_id,
        "score": e.score,
        "sub_score": e.sub_score,
        "rank": rank,
        "updated_at": Civil::rfc3339(e.updated_ms),
    });
    if let Some(m) = &e.metadata {
        v["metadata"] = serde_json::from_str(m).unwrap_or(Value::Null);
    }
    v
}

fn entries_json(board: &str, ranked: &[Ranked<'_>]) -> Value {
    let entries: Vec<Value> = ranked
        .iter()
        .map(|r| entry_json(board, Some(r.rank), r.entry))
        .collect();
    json!({ "entries": entries })
}

/// Runs one command on a ready board.
fn apply(shard: &Rc<Shard>, name: &str, board: &mut Board, cmd: cmd::Cmd) {
    let started = Instant::now();
    let hists = &shard.ops.metrics.leaderboards;
    let (reply, result, hist) = match cmd {
        cmd::Cmd::Submit {
            player_id,
            score,
            sub_score,
            metadata,
            reply,
            ..
        } => {
            let s = board.submit(
                &player_id,
                score,
                sub_score,
                metadata.as_deref(),
                wall_ms(shard),
            );
            if board.has_dirty() {
                arm_flush(shard);
            }
            // A cast's answer would be dropped: do not build it.
            let v = if reply.is_nobody() {
                Value::Null
            } else {
                entry_json(name, Some(s.rank), &s.entry)
            };
            (reply, v, &hists.submit)
        }
        cmd::Cmd::Top { limit, reply, .. } => {
            (reply, entries_json(name, &board.top(limit)), &hists.top)
        }
        cmd::Cmd::Rank {
            player_id, reply, ..
        } => {
            let v = match (board.entry(&player_id), board.rank(&player_id)) {
                (Some(e), Some(r)) => entry_json(name, Some(r), e),
                _ => json!({ "rank": null }),
            };
            (reply, v, &hists.rank)
        }
        cmd::Cmd::Around {
            player_id,
            range,
            reply,
            ..
        } => (
            reply,
            entries_json(name, &board.around(&player_id, range)),
            &hists.around,
        ),
        cmd::Cmd::Reset { period, reply, .. } => {
            let now = wall_ms(shard);
            let next = period.unwrap_or(now);
            let done = board.period_start() < next;
            if done {
                end_period(shard, name, board, next, now);
            }
            answer_when_written(shard, reply, json!({ "reset": done }));
            return;
        }
    };
    answer(shard, reply, Ok(result));
    hist.observe(started.elapsed());
}

/// Answers `reply` once every period end queued so far is in storage (at once when it is).
fn answer_when_written(shard: &Rc<Shard>, reply: crate::shard::mesh::ReplyTo, v: Value) {
    let b = &shard.leaderboards;
    let upto = b.ends_queued.get();
    if b.ends_written.get() >= upto {
        answer(shard, reply, Ok(v));
        return;
    }
    b.reset_waiters.borrow_mut().push((upto, reply, v));
    // Write now rather than at the next flush tick. The board's slot is borrowed here, and a
    // spawned task may be polled at once (glommio does), so the flush goes through the timer
    // queue, which runs it after this command.
    shard
        .rt
        .arm(shard.rt.now(), ShardTimer::Leaderboards(Timer::Flush));
}

/// One more period end is in storage: answers the resets that waited for it.
fn period_end_written(shard: &Rc<Shard>) {
    let b = &shard.leaderboards;
    b.ends_written.set(b.ends_written.get() + 1);
    let written = b.ends_written.get();
    let ready: Vec<_> = {
        let mut waiters = b.reset_waiters.borrow_mut();
        let (ready, rest) = waiters.drain(..).partition(|(n, _, _)| *n <= written);
        *waiters = rest;
        ready
    };
    for (_, reply, v) in ready {
        answer(shard, reply, Ok(v));
    }
}

/// What a command answers on a board that has no entries and will not be kept.
fn empty_answer(cmd: &cmd::Cmd) -> Value {
    match cmd {
        cmd::Cmd::Rank { .. } => json!({ "rank": null }),
        cmd::Cmd::Reset { .. } => json!({ "reset": false }),
        _ => json!({ "entries": [] }),
    }
}

pub(super) fn on_command(shard: &Rc<Shard>, cmd: cmd::Cmd) {
    let name = cmd.board().to_owned();
    let mut slots = shard.leaderboards.slots.borrow_mut();
    match slots.get_mut(&name) {
        Some(Slot::Ready(board)) => apply(shard, &name, board, cmd),
        Some(Slot::Loading(waiting)) => waiting.push(cmd),
        None => {
            let share = shard
                .ctx
                .settings
                .leaderboards
                .max_boards
                .div_ceil(shard.rt.nshards());
            if matches!(cmd, cmd::Cmd::Submit { .. }) && slots.len() >= share {
                drop(slots);
                answer(shard, cmd.reply_to(), Err(Error::CapacityReached.into()));
                return;
            }
            slots.insert(name.clone(), Slot::Loading(vec![cmd]));
            drop(slots);
            let s = shard.clone();
            shard.rt.spawn(async move { load(&s, name).await });
        }
    }
}

fn restored(e: BoardEntry) -> Entry {
    Entry {
        player_id: Rc::from(e.player_id),
        score: e.score,
        sub_score: e.sub_score,
        metadata: e.metadata.map(Rc::from),
        updated_ms: e.updated_at,
        seq: u64::try_from(e.seq).unwrap_or(0),
    }
}

fn stored(e: &Entry) -> BoardEntry {
    BoardEntry {
        player_id: e.player_id.to_string(),
        score: e.score,
        sub_score: e.sub_score,
        seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
        metadata: e.metadata.as_deref().map(str::to_owned),
        updated_at: e.updated_ms,
    }
}

/// Reads a board back from storage, then runs what waited for it.
async fn load(shard: &Rc<Shard>, name: String) {
    let saved = shard.ctx.store.saved_leaderboard(&name).await;
    let waiting = match shard.leaderboards.slots.borrow_mut().remove(&name) {
        Some(Slot::Loading(w)) => w,
        Some(ready) => {
            // Cannot happen (only `load` turns a slot ready); keep what is there.
            shard.leaderboards.slots.borrow_mut().insert(name, ready);
            return;
        }
        None => return,
    };
    let saved = match saved {
        Ok(s) => s,
        Err(e) => {
            for c in waiting {
                answer(shard, c.reply_to(), Err(Error::Storage(e.clone()).into()));
            }
            return;
        }
    };
    let config = shard.ctx.settings.leaderboards.board(&name);
    let now = wall_ms(shard);
    // A board that never reset is in the period of its oldest entry (or the current one).
    let period = saved.period_start.unwrap_or_else(|| {
        let oldest = saved.entries.iter().map(|e| e.updated_at).min();
        config
            .reset
            .period_start(oldest.unwrap_or(now))
            .unwrap_or(i64::MIN)
    });
    let mut board = Board::new(config, period);
    board.restore_all(saved.entries.into_iter().map(restored).collect());
    let keep = !board.is_empty() || waiting.iter().any(|c| matches!(c, cmd::Cmd::Submit { .. }));
    if !keep {
        for c in waiting {
            answer(shard, c.reply_to(), Ok(empty_answer(&c)));
        }
        return;
    }
    if let Some(p) = board.due_reset(now) {
        end_period(shard, &name, &mut board, p, now);
    }
    for c in waiting {
        apply(shard, &name, &mut board, c);
    }
    if let Some(next) = board.next_reset(now) {
        arm_reset(shard, next, now);
    }
    shard
        .leaderboards
        .slots
        .borrow_mut()
        .insert(name, Slot::Ready(Box::new(board)));
}

/// Ends `board`'s period for the one starting at `next_start`; the archive is written behind.
fn end_period(shard: &Rc<Shard>, name: &str, board: &mut Board, next_start: i64, now: i64) {
    let (period_start, ranked) = board.reset(next_start);
    tracing::info!(
        board = name,
        entries = ranked.len(),
        "leaderboard period ended"
    );
    shard.leaderboards.ended.borrow_mut().push_back(PeriodEnd {
        board_id: name.to_owned(),
        period_start,
        next_period_start: next_start,
        ranked: ranked
            .iter()
            .map(|(rank, e)| ArchivedEntry {
                rank: i64::try_from(*rank).unwrap_or(i64::MAX),
                entry: stored(e),
            })
            .collect(),
        archived_at: now,
    });
    let b = &shard.leaderboards;
    b.ends_queued.set(b.ends_queued.get() + 1);
    arm_flush(shard);
}

fn arm_reset(shard: &Rc<Shard>, at_ms: i64, now_ms: i64) {
    let b = &shard.leaderboards;
    if b.reset_armed.get().is_some_and(|armed| armed <= at_ms) {
        return;
    }
    b.reset_armed.set(Some(at_ms));
    let wait = Duration::from_millis(u64::try_from(at_ms - now_ms).unwrap_or(0));
    shard.rt.arm(
        shard.rt.now() + wait,
        ShardTimer::Leaderboards(Timer::Reset),
    );
}

fn arm_flush(shard: &Rc<Shard>) {
    let b = &shard.leaderboards;
    if !b.flush_armed.get() {
        b.flush_armed.set(true);
        shard.rt.arm(
            shard.rt.now() + FLUSH_EVERY,
            ShardTimer::Leaderboards(Timer::Flush),
        );
    }
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::Flush => {
            shard.leaderboards.flush_armed.set(false);
            start_flush(shard);
        }
        Timer::Reset => check_resets(shard),
    }
}

/// Ends every period that is over and re-arms for the next one.
fn check_resets(shard: &Rc<Shard>) {
    let armed = shard.leaderboards.reset_armed.take();
    let now = wall_ms(shard);
    if armed.is_some_and(|at| at > now) {
        // A stale, later timer: the earlier one is still armed.
        shard.leaderboards.reset_armed.set(armed);
    }
    let mut next: Option<i64> = None;
    let mut slots = shard.leaderboards.slots.borrow_mut();
    for (name, slot) in slots.iter_mut() {
        let Slot::Ready(board) = slot else { continue };
        if let Some(p) = board.due_reset(now) {
            end_period(shard, name, board, p, now);
        }
        if let Some(n) = board.next_reset(now) {
            next = Some(next.map_or(n, |m| m.min(n)));
        }
    }
    drop(slots);
    if let Some(n) = next {
        arm_reset(shard, n, now);
    }
}

/// Writes ended periods, then changed entries, unless a flush is already running.
fn start_flush(shard: &Rc<Shard>) {
    let b = &shard.leaderboards;
    if b.flushing.get() {
        arm_flush(shard);
        return;
    }
    let ended: Vec<PeriodEnd> = b.ended.borrow_mut().drain(..).collect();
    let mut writes: Vec<(String, Vec<BoardEntry>)> = Vec::new();
    for (name, slot) in b.slots.borrow_mut().iter_mut() {
        if let Slot::Ready(board) = slot {
            if board.has_dirty() {
                writes.push((
                    name.clone(),
                    board.take_dirty().iter().map(stored).collect(),
                ));
            }
        }
    }
    if ended.is_empty() && writes.is_empty() {
        return;
    }
    b.flushing.set(true);
    let s = shard.clone();
    shard.rt.spawn(async move {
        write_behind(&s, ended, writes).await;
        s.leaderboards.flushing.set(false);
    });
}

async fn write_behind(
    shard: &Rc<Shard>,
    ended: Vec<PeriodEnd>,
    writes: Vec<(String, Vec<BoardEntry>)>,
) {
    let store = &shard.ctx.store;
    let mut ended = VecDeque::from(ended);
    while let Some(end) = ended.pop_front() {
        if let Err(e) = store.reset_leaderboard(end.clone()).await {
            tracing::warn!(board = %end.board_id, "leaderboard archive not written, retrying: {e}");
            let mut queue = shard.leaderboards.ended.borrow_mut();
            for later in ended.into_iter().rev() {
                queue.push_front(later);
            }
            queue.push_front(end);
            drop(queue);
            // Entries wait behind the period end they follow.
            retry_entries(
                shard,
                writes
                    .into_iter()
                    .flat_map(|(b, rows)| rows.into_iter().map(move |r| (b.clone(), r))),
            );
            arm_flush(shard);
            return;
        }
        period_end_written(shard);
    }
    for (board, rows) in writes {
        let mut rest = rows.as_slice();
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at(rest.len().min(FLUSH_BATCH));
            if let Err(e) = store.save_leaderboard_entries(&board, batch.to_vec()).await {
                tracing::warn!(board = %board, "leaderboard entries not written, retrying: {e}");
                retry_entries(shard, rest.iter().map(|r| (board.clone(), r.clone())));
                arm_flush(shard);
                break;
            }
            rest = tail;
        }
    }
}

/// Marks entries whose write failed dirty again (a board reset since keeps them in its archive).
fn retry_entries(shard: &Rc<Shard>, rows: impl Iterator<Item = (String, BoardEntry)>) {
    let mut slots = shard.leaderboards.slots.borrow_mut();
    for (board, row) in rows {
        if let Some(Slot::Ready(b)) = slots.get_mut(&board) {
            b.mark_dirty([Rc::from(row.player_id)]);
        }
    }
}

/// Shutdown: waits for a running flush, then writes everything still pending.
pub(crate) async fn flush_for_shutdown(shard: &Rc<Shard>) {
    let deadline = shard.rt.now() + SHUTDOWN_FLUSH;
    loop {
        if !shard.leaderboards.flushing.get() {
            start_flush(shard);
            if !shard.leaderboards.flushing.get() {
                return;
            }
        }
        if shard.rt.now() >= deadline {
            tracing::warn!("leaderboard flush did not finish before shutdown");
            return;
        }
        shard.rt.sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod sim_tests;
