//! Tournaments and seasons. A tournament ranks its entrants on a leaderboard between its start
//! and its end; entry may cost a fee; at its end the rewards are paid through the economy.
//! A season is a window over several boards that, at its end, pays each board's ranking and
//! resets the boards.
//!
//! Who does what:
//! - **Joins** run on the shard that took the request, straight against storage: the
//!   database transaction checks the window and the cap, debits the fee and records the entry
//!   together, so any shard may serve them and none holds tournament state a join depends on.
//! - **Windows** are kept by `owner(id)`: it holds an `asobi_rules::tournaments::Calendar` of the
//!   tournaments and seasons it owns, one timer at the calendar's next deadline, and acts on the
//!   transitions the calendar reports (mark active; settle).
//! - **Settlement** reads the board's ranking from its owner (the in-memory index), keeps the
//!   entrants, ranks them among themselves, and hands storage one transaction that records the
//!   placements, grants each reward under `tournament:<id>:payout` and marks the tournament
//!   settled. Repeating it (after a crash, on a restart) pays nobody twice; a storage failure
//!   retries until it succeeds.
//! - At start every shard creates the file-declared tournaments it owns (`setup.rs`) and loads
//!   the unsettled ones it owns, so a tournament that ended while the server was down is settled
//!   at once.
//!
//! REST (and any later Lua or WebSocket entry point) calls [`list`], [`get`] and [`join`].

pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod script;
pub(crate) mod setup;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use asobi_schema::error::code;
use asobi_schema::ApiError;

use asobi_rules::leaderboards::Civil;
use asobi_rules::tournaments::{place, Calendar, Phase, Place, Rewards, Window};
use asobi_storage::{
    JoinRequest, Placement, Season, SeasonSettlement, Settlement, Tournament,
    TournamentJoinOutcome as JoinOutcome,
};

use super::{Shard, Timer as ShardTimer};
use error::Error;

/// Deepest board rank settlement reads: entrants below it are placed nowhere and paid nothing.
/// Far deeper than any reward table; bounds the one ranking read per settlement.
pub(crate) const MAX_PLACED: usize = 10_000;
/// How long a failed settlement or start-up read waits before it tries again.
const RETRY: Duration = Duration::from_secs(5);
/// Unsettled tournaments of each status one shard loads at start (storage's page cap).
const LOAD_PAGE: u32 = asobi_storage::MAX_TOURNAMENT_LIST;

/// The tournaments' timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// A window may have opened or closed.
    Window,
}

/// What a calendar id stands for.
enum Tracked {
    Tournament(Box<Tournament>),
    Season(Box<Season>),
}

/// This shard's tournaments and seasons: the windows of those it owns.
pub(crate) struct Tournaments {
    setup: Arc<setup::Setup>,
    calendar: RefCell<Calendar>,
    tracked: RefCell<HashMap<String, Tracked>>,
    /// Wall-clock ms of the armed timer, if any.
    armed: Cell<Option<i64>>,
    /// The runtime instant and wall clock it was read at (as the leaderboards keep it), so the
    /// simulation harness can move days in microseconds.
    epoch: Cell<Option<(Instant, i64)>>,
}

impl Tournaments {
    /// Reads the tournaments file for the game in `dir`.
    pub(crate) fn load(dir: &std::path::Path) -> Result<Tournaments, String> {
        let now = crate::services::accounts::tokens::now_ms();
        Ok(Tournaments {
            setup: Arc::new(setup::Setup::load(dir, now)?),
            calendar: RefCell::default(),
            tracked: RefCell::default(),
            armed: Cell::new(None),
            epoch: Cell::new(None),
        })
    }
}

/// Wall-clock unix ms on this shard's clock.
pub(crate) fn wall_ms(shard: &Shard) -> i64 {
    let now = shard.rt.now();
    let (at, wall) = match shard.tournaments.epoch.get() {
        Some(e) => e,
        None => {
            let e = (now, crate::services::accounts::tokens::now_ms());
            shard.tournaments.epoch.set(Some(e));
            e
        }
    };
    wall + i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(i64::MAX)
}

/// Tests: the wall clock reads `ms` now.
#[cfg(test)]
pub(crate) fn set_wall_clock(shard: &Shard, ms: i64) {
    shard.tournaments.epoch.set(Some((shard.rt.now(), ms)));
}

/// Ids of the tournaments whose window this shard keeps (the ops view's `live`).
pub(crate) fn tracked_ids(shard: &Shard) -> Vec<String> {
    shard
        .tournaments
        .tracked
        .borrow()
        .values()
        .filter_map(|t| match t {
            Tracked::Tournament(t) => Some(t.id.clone()),
            Tracked::Season(_) => None,
        })
        .collect()
}

fn owner(shard: &Shard, id: &str) -> usize {
    asobi_rules::placement::owner(id, shard.rt.nshards())
}

fn tournament_key(id: &str) -> String {
    format!("t:{id}")
}

fn season_key(id: &str) -> String {
    format!("s:{id}")
}

// ---- operations (REST calls these) ----

/// The status a client sees: the stored one, or for a tournament not yet marked, where its
/// window stands now (a timer a moment late never shows a stale `pending`).
fn shown_status(t: &Tournament, now: i64) -> &'static str {
    match t.status.as_str() {
        "finished" => "finished",
        "cancelled" => "cancelled",
        _ if t.settled_at.is_some() => "finished",
        _ => match (Window {
            start_at: t.start_at,
            end_at: t.end_at,
        })
        .phase(now)
        {
            Phase::Pending => "pending",
            Phase::Active => "active",
            // Ended, payouts about to be made.
            Phase::Ended => "active",
        },
    }
}

/// A tournament in asobi's shape (its row, times as UTC text) plus `entrants` (ours).
pub(crate) fn to_json(t: &Tournament, now: i64) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "leaderboard_id": t.leaderboard_id,
        "max_entries": t.max_entries,
        "entry_fee": t.entry_fee,
        "rewards": t.rewards,
        "status": shown_status(t, now),
        "start_at": Civil::rfc3339(t.start_at),
        "end_at": Civil::rfc3339(t.end_at),
        "metadata": t.metadata,
        "inserted_at": Civil::rfc3339(t.inserted_at),
        "entrants": t.entrants,
    })
}

/// Tournaments by start time, optionally of one status (as shown), at most `limit`.
pub(crate) async fn list(
    shard: &Rc<Shard>,
    status: Option<&str>,
    limit: u32,
) -> Result<Vec<Value>, Error> {
    let now = wall_ms(shard);
    // The stored status may lag the window by a timer's latency; filter on the shown one.
    let rows = shard
        .ctx
        .store
        .tournaments(None, asobi_storage::MAX_TOURNAMENT_LIST)
        .await?;
    Ok(rows
        .iter()
        .filter(|t| status.is_none_or(|s| shown_status(t, now) == s))
        .take(limit as usize)
        .map(|t| to_json(t, now))
        .collect())
}

/// One tournament.
pub(crate) async fn get(shard: &Rc<Shard>, id: &str) -> Result<Value, Error> {
    let t = shard
        .ctx
        .store
        .tournament(id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(to_json(&t, wall_ms(shard)))
}

/// Enters `player` (charging the fee, if any, in the same transaction).
pub(crate) async fn join(shard: &Rc<Shard>, id: &str, player: &str) -> Result<Value, Error> {
    if id.is_empty() || id.len() > setup::MAX_TEXT {
        return Err(Error::NotFound);
    }
    let now = wall_ms(shard);
    let t = shard
        .ctx
        .store
        .tournament(id)
        .await?
        .ok_or(Error::NotFound)?;
    if now < t.start_at {
        return Err(Error::NotStarted);
    }
    let outcome = shard
        .ctx
        .store
        .join_tournament(JoinRequest {
            tournament_id: id.to_owned(),
            player_id: player.to_owned(),
            now_ms: now,
        })
        .await?;
    match outcome {
        JoinOutcome::Joined { fee } => Ok(json!({
            "success": true,
            "tournament_id": id,
            "fee": fee.map(|r| json!({ "currency": r.wallet.currency, "amount": -r.entry.amount,
                                       "balance": r.wallet.balance })),
        })),
        JoinOutcome::NotFound => Err(Error::NotFound),
        JoinOutcome::Full => Err(Error::Full),
        JoinOutcome::AlreadyJoined => Err(Error::AlreadyJoined),
        JoinOutcome::Closed => Err(Error::Closed),
        JoinOutcome::InsufficientFunds { balance } => Err(Error::InsufficientFunds { balance }),
        other => Err(Error::Storage(asobi_storage::StoreError::Backend(format!(
            "unmapped join outcome {other:?}"
        )))),
    }
}

// ---- creating one at run time (the ops plane) ----

/// Mesh commands, handled on `owner(tournament)`.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Store a new tournament and keep its window; answers its JSON, or `created: false` when
    /// the id is taken.
    Create {
        tournament: Box<Tournament>,
        reply: crate::shard::mesh::ReplyTo,
    },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Create { tournament, reply } => {
            let s = shard.clone();
            shard.rt.spawn(async move {
                let t = *tournament;
                let answer = match s.ctx.store.create_tournament(t.clone()).await {
                    Ok(true) => {
                        let shown = to_json(&t, wall_ms(&s));
                        track_tournament(&s, t);
                        tick(&s);
                        Ok(json!({ "created": true, "tournament": shown }))
                    }
                    Ok(false) => Ok(json!({ "created": false })),
                    Err(e) => Err(crate::services::error::store_error(e)),
                };
                crate::shard::answer(&s, reply, answer);
            });
        }
    }
}

/// Creates a tournament from its JSON (the tournaments file's shape) on its owner shard, where
/// its window is kept from then on. 422 `validation_failed` for a bad body or a taken id.
pub(crate) async fn create(shard: &Rc<Shard>, body: Value) -> Result<Value, ApiError> {
    let invalid = |field: &str, why: String| {
        ApiError::new(422, code::VALIDATION_FAILED, why.clone())
            .with_details(json!({ "fields": { field: [why] } }))
    };
    let t = setup::Setup::one_tournament(body, wall_ms(shard)).map_err(|e| invalid("body", e))?;
    let id = t.id.clone();
    let to = owner(shard, &id);
    let answer = crate::shard::request(shard, to, |reply| {
        super::Cmd::Tournaments(Cmd::Create {
            tournament: Box::new(t),
            reply,
        })
    })
    .await?;
    if answer["created"] == json!(true) {
        Ok(answer["tournament"].clone())
    } else {
        Err(invalid(
            "id",
            format!("a tournament with id {id} exists already"),
        ))
    }
}

// ---- the owning shard's side: windows and settlement ----

/// Creates the file's tournaments and seasons this shard owns, loads the unsettled ones it
/// owns and arms the first timer.
pub(crate) fn start(shard: &Rc<Shard>) {
    let s = shard.clone();
    shard.rt.spawn(async move {
        while let Err(e) = boot(&s).await {
            tracing::warn!(shard = s.id(), "tournaments not loaded, retrying: {e}");
            s.rt.sleep(RETRY).await;
        }
    });
}

async fn boot(shard: &Rc<Shard>) -> Result<(), asobi_storage::StoreError> {
    let store = &shard.ctx.store;
    let me = shard.id();
    for t in &shard.tournaments.setup.tournaments {
        if owner(shard, &t.id) == me && store.create_tournament(t.clone()).await? {
            tracing::info!(tournament = %t.id, "tournament created from the tournaments file");
        }
    }
    for s in &shard.tournaments.setup.seasons {
        if owner(shard, &s.id) == me && store.create_season(s.clone()).await? {
            tracing::info!(season = %s.id, "season created from the tournaments file");
        }
    }
    let mut open = store.tournaments(Some("pending"), LOAD_PAGE).await?;
    open.extend(store.tournaments(Some("active"), LOAD_PAGE).await?);
    let seasons = store.seasons().await?;
    for t in open {
        if owner(shard, &t.id) == me && t.settled_at.is_none() {
            track_tournament(shard, t);
        }
    }
    for s in seasons {
        if owner(shard, &s.id) != me {
            continue;
        }
        if s.settled_at.is_none() {
            track_season(shard, s);
        } else if s.reset_at.is_none() {
            // Paid, but the server stopped before every board was reset.
            tracing::warn!(season = %s.id, "season paid but its boards not reset: resetting now");
            let sh = shard.clone();
            shard
                .rt
                .spawn(async move { settle_season_until_done(&sh, s).await });
        }
    }
    tick(shard);
    Ok(())
}

/// Starts keeping a tournament's window on its owner.
fn track_tournament(shard: &Rc<Shard>, t: Tournament) {
    let seen = if t.status == "active" {
        Phase::Active
    } else {
        Phase::Pending
    };
    let key = tournament_key(&t.id);
    let window = Window {
        start_at: t.start_at,
        end_at: t.end_at,
    };
    shard
        .tournaments
        .calendar
        .borrow_mut()
        .insert(&key, window, seen);
    shard
        .tournaments
        .tracked
        .borrow_mut()
        .insert(key, Tracked::Tournament(Box::new(t)));
}

fn track_season(shard: &Rc<Shard>, s: Season) {
    let key = season_key(&s.id);
    let window = Window {
        start_at: s.start_at,
        end_at: s.end_at,
    };
    shard
        .tournaments
        .calendar
        .borrow_mut()
        .insert(&key, window, Phase::Pending);
    shard
        .tournaments
        .tracked
        .borrow_mut()
        .insert(key, Tracked::Season(Box::new(s)));
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::Window => {
            let now = wall_ms(shard);
            let armed = shard.tournaments.armed.take();
            if armed.is_some_and(|at| at > now) {
                // A stale, later timer: the earlier one is still armed.
                shard.tournaments.armed.set(armed);
            }
            tick(shard);
        }
    }
}

/// Acts on every window change that is due, then arms the next deadline.
fn tick(shard: &Rc<Shard>) {
    let now = wall_ms(shard);
    let due = shard.tournaments.calendar.borrow_mut().poll(now);
    for tr in due {
        let tracked = shard.tournaments.tracked.borrow_mut();
        match (tracked.get(&tr.id), tr.to) {
            (Some(Tracked::Tournament(t)), Phase::Active) => {
                let id = t.id.clone();
                drop(tracked);
                let s = shard.clone();
                shard.rt.spawn(async move {
                    if let Err(e) = s.ctx.store.set_tournament_status(&id, "active").await {
                        // Only the stored label lags; what clients see follows the window.
                        tracing::warn!(tournament = %id, "status not stored: {e}");
                    }
                    tracing::info!(tournament = %id, "tournament started");
                });
            }
            (Some(Tracked::Tournament(_)), Phase::Ended) => {
                drop(tracked);
                let Some(Tracked::Tournament(t)) =
                    shard.tournaments.tracked.borrow_mut().remove(&tr.id)
                else {
                    continue;
                };
                let s = shard.clone();
                shard
                    .rt
                    .spawn(async move { settle_until_done(&s, *t).await });
            }
            (Some(Tracked::Season(_)), Phase::Ended) => {
                drop(tracked);
                let Some(Tracked::Season(season)) =
                    shard.tournaments.tracked.borrow_mut().remove(&tr.id)
                else {
                    continue;
                };
                let s = shard.clone();
                shard
                    .rt
                    .spawn(async move { settle_season_until_done(&s, *season).await });
            }
            _ => {}
        }
    }
    let next = shard.tournaments.calendar.borrow().next_deadline();
    if let Some(at) = next {
        arm(shard, at, now);
    }
}

fn arm(shard: &Rc<Shard>, at_ms: i64, now_ms: i64) {
    let t = &shard.tournaments;
    if t.armed.get().is_some_and(|armed| armed <= at_ms) {
        return;
    }
    t.armed.set(Some(at_ms));
    let wait = Duration::from_millis(u64::try_from(at_ms - now_ms).unwrap_or(0));
    shard.rt.arm(
        shard.rt.now() + wait,
        ShardTimer::Tournaments(Timer::Window),
    );
}

/// The board's ranking, best first, as `(player, score)`, from its owner.
async fn ranking(shard: &Rc<Shard>, board: &str) -> Result<Vec<(String, i64)>, String> {
    let top = super::leaderboards::top(shard, board, MAX_PLACED)
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message))?;
    Ok(top
        .get("entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    Some((
                        e.get("player_id")?.as_str()?.to_owned(),
                        e.get("score")?.as_i64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

fn placements(places: Vec<Place>) -> Vec<Placement> {
    places
        .into_iter()
        .map(|p| Placement {
            player_id: p.player_id,
            rank: i64::try_from(p.rank).unwrap_or(i64::MAX),
            score: p.score,
            reward: p.reward,
        })
        .collect()
}

/// Settles a tournament; a failure waits [`RETRY`] and tries again, until it is done.
async fn settle_until_done(shard: &Rc<Shard>, t: Tournament) {
    loop {
        match settle(shard, &t).await {
            Ok(paid) => {
                tracing::info!(tournament = %t.id, paid, "tournament settled");
                return;
            }
            Err(e) => {
                tracing::warn!(tournament = %t.id, "settlement failed, retrying: {e}");
                shard.rt.sleep(RETRY).await;
            }
        }
    }
}

/// Ranks the entrants and pays them in one storage transaction. Answers how many were paid
/// (0 when it had been settled before).
pub(crate) async fn settle(shard: &Rc<Shard>, t: &Tournament) -> Result<usize, String> {
    let store = &shard.ctx.store;
    let entrants: HashSet<String> = store
        .tournament_entrants(&t.id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    // A stored table that no longer parses pays nothing rather than guessing.
    let rewards = Rewards::parse(&t.rewards).unwrap_or_else(|e| {
        tracing::error!(tournament = %t.id, "rewards not paid, the table is invalid: {e}");
        Rewards::default()
    });
    let board = ranking(shard, &t.leaderboard_id).await?;
    let places = place(
        board.iter().map(|(p, s)| (p.as_str(), *s)),
        |p| entrants.contains(p),
        &rewards,
    );
    let paid = places.iter().filter(|p| p.reward.is_some()).count();
    let settled = store
        .settle_tournament(Settlement {
            tournament_id: t.id.clone(),
            placements: placements(places),
            now_ms: wall_ms(shard),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(if settled { paid } else { 0 })
}

/// Ends a season: pays it (unless it was paid before), then resets its boards and records that.
/// Each step retries after [`RETRY`] until it succeeds.
async fn settle_season_until_done(shard: &Rc<Shard>, season: Season) {
    if season.settled_at.is_none() {
        let paid = loop {
            match settle_season(shard, &season).await {
                Ok(paid) => break paid,
                Err(e) => {
                    tracing::warn!(season = %season.id, "season settlement failed, retrying: {e}");
                    shard.rt.sleep(RETRY).await;
                }
            }
        };
        if paid {
            crash_point("season_paid");
        }
    }
    for b in &season.boards {
        while let Err(e) = super::leaderboards::reset(shard, b, Some(season.end_at)).await {
            tracing::warn!(season = %season.id, board = %b, "board not reset, retrying: {}", e.message);
            shard.rt.sleep(RETRY).await;
        }
    }
    while let Err(e) = shard
        .ctx
        .store
        .finish_season(&season.id, wall_ms(shard))
        .await
    {
        tracing::warn!(season = %season.id, "season end not recorded, retrying: {e}");
        shard.rt.sleep(RETRY).await;
    }
    tracing::info!(season = %season.id, "season ended: rewards paid, boards reset");
}

/// A test hook: with `ASOBI_TEST_CRASH_AT=<point>` the process exits here at once (status 86,
/// no shutdown, no flush), as a crash would. Only the restart tests set it.
fn crash_point(point: &str) {
    if std::env::var("ASOBI_TEST_CRASH_AT").is_ok_and(|v| v == point) {
        tracing::error!(point, "ASOBI_TEST_CRASH_AT: exiting as a crash would");
        std::process::exit(86);
    }
}

/// Pays each board's ranking once. True when it paid now (false: settled before).
async fn settle_season(shard: &Rc<Shard>, season: &Season) -> Result<bool, String> {
    let rewards = Rewards::parse(&season.rewards).unwrap_or_else(|e| {
        tracing::error!(season = %season.id, "rewards not paid, the table is invalid: {e}");
        Rewards::default()
    });
    let mut boards = Vec::new();
    for b in &season.boards {
        let ranked = ranking(shard, b).await?;
        let places = place(
            ranked.iter().map(|(p, s)| (p.as_str(), *s)),
            |_| true,
            &rewards,
        );
        boards.push((b.clone(), placements(places)));
    }
    shard
        .ctx
        .store
        .settle_season(SeasonSettlement {
            season_id: season.id.clone(),
            boards,
            now_ms: wall_ms(shard),
        })
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod sim_tests;
