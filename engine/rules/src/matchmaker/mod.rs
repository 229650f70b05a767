//! The matchmaking queue of one game mode, as a sans-IO state machine.
//!
//! A [`ModeQueue`] owns the tickets waiting for one mode, groups them into matches with the
//! mode's strategy, expires tickets that waited too long, and remembers how recently resolved
//! tickets ended so a status lookup can still answer. It never reads a clock, spawns a match,
//! sends a frame or generates an id: time comes in as `now`, ticket ids come from the caller,
//! and everything that must happen outside comes back as [`QueueEvent`]s or return values.
//!
//! Behaviour follows asobi's matchmaker: one live ticket per player per mode, `fill` and
//! `skill_based` strategies, expiry after `max_wait_seconds`, a `max_queue` bound, and a match
//! that fails to spawn is re-queued up to three attempts before its players are told it failed.
//! asobi has no party tickets; neither does this queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod simulation;

/// Group size when a mode declares no `match_size` (asobi's strategies fall back to 2).
pub const DEFAULT_MATCH_SIZE: usize = 2;
/// Skill of a ticket whose `properties.skill` is missing or not a number (asobi's default).
pub const DEFAULT_SKILL: f64 = 1000.0;
/// asobi's `skill_window` default: the skill spread a group may have before anyone waited.
pub const DEFAULT_SKILL_WINDOW: f64 = 200.0;
/// asobi's `skill_expand_rate` default: added to the window per full [`SKILL_EXPAND_STEP`].
pub const DEFAULT_SKILL_EXPAND_RATE: f64 = 50.0;
/// The window widens in whole steps of this length, never continuously (asobi: `wait div 5`).
pub const SKILL_EXPAND_STEP: Duration = Duration::from_secs(5);
/// asobi's `max_wait_seconds` default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// asobi's `max_queue` default. The queue is the only thing a client can grow by asking, so it is
/// bounded; 10 000 waiting players per mode is far beyond what one node forms matches for.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// How long a matched, expired, cancelled or failed ticket stays queryable. A client that saw
/// `match.matched` does not poll; one that missed it (reconnecting, REST-only) polls within a
/// few seconds, so two minutes covers a slow reconnect without keeping history around.
pub const DEFAULT_STATUS_RETENTION: Duration = Duration::from_secs(120);
/// Cap on retained resolved tickets, so churn (add/cancel in a loop) cannot grow memory
/// between retention sweeps. Same order as the live bound: one record per recent ticket.
pub const DEFAULT_MAX_RETAINED: usize = 10_000;
/// Spawn attempts for one formed group before its players get `match.matchmaker_failed`
/// (asobi's `MAX_SPAWN_ATTEMPTS`).
pub const MAX_FORMATION_ATTEMPTS: u32 = 3;

/// How a mode groups its tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// First come, first matched: groups in arrival order.
    Fill,
    /// Sorts by `properties.skill` and accepts a group whose spread fits a window that widens
    /// with the wait of the group's lowest-skill ticket.
    SkillBased,
}

impl Strategy {
    /// The strategy a mode script's `strategy` value selects. asobi resolves `"skill_based"` and
    /// treats every other name as `fill`, without an error, so this does too.
    pub fn from_mode_value(name: &str) -> Self {
        if name == "skill_based" {
            Self::SkillBased
        } else {
            Self::Fill
        }
    }
}

/// Tuning of one mode's queue. `Default` gives asobi's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The mode's declared `match_size`. `None`: the mode declared none, so groups are
    /// [`DEFAULT_MATCH_SIZE`] and `players_needed` is reported as `null`. `Some(0)` is treated
    /// as 1, since a group of nobody cannot form.
    pub match_size: Option<usize>,
    /// Grouping strategy.
    pub strategy: Strategy,
    /// `skill_window`: allowed skill spread at zero wait.
    pub skill_base: f64,
    /// `skill_expand_rate`: window growth per full 5 s waited.
    pub skill_growth_per_5s: f64,
    /// A ticket that has waited longer than this expires on the next tick.
    pub max_wait: Duration,
    /// Live tickets allowed in this mode's queue; adding beyond it is refused.
    pub max_queue: usize,
    /// How long a resolved ticket's status stays queryable.
    pub status_retention: Duration,
    /// At most this many resolved tickets are retained; the oldest are forgotten first.
    pub max_retained: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            match_size: None,
            strategy: Strategy::Fill,
            skill_base: DEFAULT_SKILL_WINDOW,
            skill_growth_per_5s: DEFAULT_SKILL_EXPAND_RATE,
            max_wait: DEFAULT_MAX_WAIT,
            max_queue: DEFAULT_MAX_QUEUE,
            status_retention: DEFAULT_STATUS_RETENTION,
            max_retained: DEFAULT_MAX_RETAINED,
        }
    }
}

impl QueueConfig {
    /// Players per formed group.
    pub fn group_size(&self) -> usize {
        self.match_size.unwrap_or(DEFAULT_MATCH_SIZE).max(1)
    }

    /// The skill spread a group may have when its lowest-skill ticket has waited `waited`.
    pub fn skill_window(&self, waited: Duration) -> f64 {
        let steps = waited.as_secs() / SKILL_EXPAND_STEP.as_secs();
        self.skill_base + steps as f64 * self.skill_growth_per_5s
    }
}

/// The skill a ticket is sorted by: `properties.skill` if it is a JSON number, else 1000.
pub fn ticket_skill(properties: &Value) -> f64 {
    properties
        .get("skill")
        .and_then(Value::as_f64)
        .unwrap_or(DEFAULT_SKILL)
}

/// Reply to a successful [`ModeQueue::add`]: the `matchmaker.queued` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The live ticket: the new one, or the one the player already held.
    pub ticket_id: String,
    /// The mode's declared `match_size`, `None` (JSON `null`) if it declared none. asobi reports
    /// the size rather than the shortfall so a client learns nothing about queue depth.
    pub players_needed: Option<usize>,
    /// True when the player was already queued and `ticket_id` is that earlier ticket.
    pub already_queued: bool,
}

impl Queued {
    /// The `matchmaker.queued` payload (also the REST `POST /api/v1/matchmaker` body).
    pub fn to_json(&self) -> Value {
        json!({
            "ticket_id": self.ticket_id,
            "status": "pending",
            "players_needed": self.players_needed,
            "already_queued": self.already_queued,
        })
    }
}

/// Why [`ModeQueue::add`] refused a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// The mode already holds `max_queue` live tickets.
    QueueFull {
        /// The bound that was hit.
        max_queue: usize,
    },
    /// The caller reused a ticket id this queue still knows (a runtime bug, not a client error).
    TicketIdInUse,
}

impl AddError {
    /// Stable machine code for the client-visible error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "matchmaker.queue_full",
            Self::TicketIdInUse => "internal_error",
        }
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull { max_queue } => {
                write!(f, "matchmaking queue is full ({max_queue} tickets waiting)")
            }
            Self::TicketIdInUse => f.write_str("ticket id already in use"),
        }
    }
}

impl std::error::Error for AddError {}

/// Why a ticket lookup or removal by id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketAccessError {
    /// No such ticket (never existed, already resolved for removal, or past retention).
    NotFound,
    /// The ticket belongs to another player.
    NotOwner,
}

impl TicketAccessError {
    /// Stable machine code: asobi answers 404 `matchmaker.ticket_not_found` and 403 `forbidden`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "matchmaker.ticket_not_found",
            Self::NotOwner => "forbidden",
        }
    }

    /// The HTTP status asobi's REST controller answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::NotOwner => 403,
        }
    }
}

impl fmt::Display for TicketAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "ticket not found",
            Self::NotOwner => "ticket belongs to another player",
        })
    }
}

impl std::error::Error for TicketAccessError {}

/// Where a ticket is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// Waiting in the queue.
    Pending,
    /// Formed into a group; `match_id` once the runtime reported it via `mark_matched`.
    Matched {
        /// The match the group was spawned as, if known yet.
        match_id: Option<String>,
    },
    /// Waited longer than `max_wait`.
    Expired,
    /// Removed by its owner or because the player left for good.
    Cancelled,
    /// Its group failed to spawn [`MAX_FORMATION_ATTEMPTS`] times.
    Failed,
}

impl TicketState {
    /// The `status` string on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Matched { .. } => "matched",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

/// Answer to [`ModeQueue::status`].
#[derive(Debug, Clone, PartialEq)]
pub struct TicketStatus {
    /// The ticket asked about.
    pub ticket_id: String,
    /// Its owner.
    pub player_id: String,
    /// The mode it queued for.
    pub mode: String,
    /// Where it is now.
    pub state: TicketState,
    /// The properties it was submitted with.
    pub properties: Value,
    /// Time since it was submitted, so the caller can derive a wall-clock `submitted_at`.
    pub age: Duration,
    /// The mode's declared `match_size` (see [`Queued::players_needed`]).
    pub players_needed: Option<usize>,
}

impl TicketStatus {
    /// The REST `GET /api/v1/matchmaker/:ticket_id` body. `wall_clock_ms` is the caller's
    /// current Unix time in ms; `submitted_at` is derived from it and [`TicketStatus::age`].
    /// Carries asobi's `id`/`submitted_at` keys plus `ticket_id`, and `players_needed` while
    /// pending and `match_id` once matched.
    pub fn to_json(&self, wall_clock_ms: u64) -> Value {
        let age_ms = u64::try_from(self.age.as_millis()).unwrap_or(u64::MAX);
        let mut body = Map::new();
        body.insert("id".into(), json!(self.ticket_id));
        body.insert("ticket_id".into(), json!(self.ticket_id));
        body.insert("mode".into(), json!(self.mode));
        body.insert("status".into(), json!(self.state.as_str()));
        body.insert("properties".into(), self.properties.clone());
        body.insert(
            "submitted_at".into(),
            json!(wall_clock_ms.saturating_sub(age_ms)),
        );
        match &self.state {
            TicketState::Pending => {
                body.insert("players_needed".into(), json!(self.players_needed));
            }
            TicketState::Matched {
                match_id: Some(match_id),
            } => {
                body.insert("match_id".into(), json!(match_id));
            }
            _ => {}
        }
        Value::Object(body)
    }
}

/// A ticket and its owner, as reported in expiry and failure notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The ticket.
    pub ticket_id: String,
    /// Its owner, who gets the notice.
    pub player_id: String,
}

/// One member of a formed group.
#[derive(Debug, Clone, PartialEq)]
pub struct FormedTicket {
    /// The ticket.
    pub ticket_id: String,
    /// The player to seat.
    pub player_id: String,
    /// The properties it was submitted with (handed to the match).
    pub properties: Value,
    /// How long it waited, for telemetry.
    pub waited: Duration,
}

/// A group the strategy accepted: the runtime spawns one match (or world) for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FormedGroup {
    /// The mode the match is for.
    pub mode: String,
    /// Members in the order the strategy chose (arrival order, or ascending skill).
    pub tickets: Vec<FormedTicket>,
}

impl FormedGroup {
    /// Ticket ids, for [`ModeQueue::mark_matched`] / [`ModeQueue::formation_failed`].
    pub fn ticket_ids(&self) -> Vec<String> {
        self.tickets.iter().map(|t| t.ticket_id.clone()).collect()
    }

    /// Player ids, for `match.matched` and the match's roster.
    pub fn player_ids(&self) -> Vec<String> {
        self.tickets.iter().map(|t| t.player_id.clone()).collect()
    }
}

/// What a [`ModeQueue::tick`] asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// Spawn a match for this group, then report its id with `mark_matched` (or the failure
    /// with `formation_failed`) and send `match.matched` to each player.
    Formed(FormedGroup),
    /// Send `match.matchmaker_expired {ticket_id}` to the player.
    Expired(TicketRef),
}

/// Outcome of [`ModeQueue::formation_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationRetry {
    /// Back in the queue with their original submission time; they form again on a later tick.
    pub requeued: Vec<String>,
    /// Out of attempts: send each `match.matchmaker_failed {reason: "match_start_failed"}`.
    pub gave_up: Vec<TicketRef>,
}

#[derive(Debug, Clone)]
struct Ticket {
    ticket_id: String,
    player_id: String,
    properties: Value,
    skill: f64,
    submitted_at: Instant,
    /// Arrival order; a re-queued ticket keeps its place.
    seq: u64,
    /// Failed spawn attempts of groups this ticket was in.
    attempts: u32,
}

#[derive(Debug)]
struct Resolved {
    ticket: Ticket,
    state: TicketState,
    resolved_at: Instant,
}

/// The queue of one game mode.
///
/// # Method kinds and call order
///
/// - **Inputs from clients** (any time, each with the current `now`): [`add`](Self::add),
///   [`remove`](Self::remove), [`remove_player`](Self::remove_player). They answer at once and
///   never form groups; forming happens only on a tick.
/// - **Timer input**: [`tick`](Self::tick), called by the runtime every `tick_interval`
///   (asobi: 1 s). In order it forgets resolved tickets past retention, expires tickets that
///   waited longer than `max_wait`, then groups what is left. It returns every
///   [`QueueEvent`] the runtime must act on; nothing is queued inside for later polling.
/// - **Feedback from the runtime** about groups a tick formed:
///   [`mark_matched`](Self::mark_matched) once the match exists (so status shows its id), or
///   [`formation_failed`](Self::formation_failed) when it could not be spawned.
/// - **Queries** (no state change): [`status`](Self::status), [`len`](Self::len),
///   [`is_empty`](Self::is_empty), [`mode`](Self::mode), [`config`](Self::config).
/// - **Hot reload**: [`reconfigure`](Self::reconfigure) applies a changed mode config to the
///   next tick; waiting tickets stay.
///
/// `now` must not go backwards between calls; if it does, durations saturate to zero.
#[derive(Debug)]
pub struct ModeQueue {
    mode: String,
    config: QueueConfig,
    /// Live tickets keyed by arrival sequence, so iteration is arrival order.
    pending: BTreeMap<u64, Ticket>,
    seq_by_ticket: HashMap<String, u64>,
    ticket_by_player: HashMap<String, String>,
    next_seq: u64,
    resolved: HashMap<String, Resolved>,
    /// Resolution order for retention and the `max_retained` bound. May hold stale entries for
    /// tickets re-queued since; those are skipped when popped.
    resolved_order: VecDeque<(Instant, String)>,
}

impl ModeQueue {
    /// An empty queue for `mode`.
    pub fn new(mode: String, config: QueueConfig) -> Self {
        Self {
            mode,
            config,
            pending: BTreeMap::new(),
            seq_by_ticket: HashMap::new(),
            ticket_by_player: HashMap::new(),
            next_seq: 0,
            resolved: HashMap::new(),
            resolved_order: VecDeque::new(),
        }
    }

    /// The mode this queue serves.
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// The current configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Replaces the configuration (mode script reloaded). Waiting tickets stay; the new size
    /// and strategy apply from the next tick, and a lower `max_queue` only refuses new adds.
    pub fn reconfigure(&mut self, config: QueueConfig) {
        self.config = config;
    }

    /// Live (pending) tickets.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no ticket is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues `player_id` under `ticket_id` (caller-generated, unique). A player who already
    /// holds a live ticket in this mode gets that ticket back with `already_queued: true`, and
    /// `ticket_id` / `properties` are ignored, so a double-tapped "find match" cannot
    /// self-match. A `null` `properties` is stored as `{}`.
    pub fn add(
        &mut self,
        now: Instant,
        ticket_id: String,
        player_id: String,
        properties: Value,
    ) -> Result<Queued, AddError> {
        let players_needed = self.config.match_size;
        if let Some(existing) = self.ticket_by_player.get(&player_id) {
            return Ok(Queued {
                ticket_id: existing.clone(),
                players_needed,
                already_queued: true,
            });
        }
        if self.pending.len() >= self.config.max_queue {
            return Err(AddError::QueueFull {
                max_queue: self.config.max_queue,
            });
        }
        if self.seq_by_ticket.contains_key(&ticket_id) || self.resolved.contains_key(&ticket_id) {
            return Err(AddError::TicketIdInUse);
        }
        let properties = match properties {
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let ticket = Ticket {
            skill: ticket_skill(&properties),
            ticket_id: ticket_id.clone(),
            player_id,
            properties,
            submitted_at: now,
            seq,
            attempts: 0,
        };
        self.insert_pending(ticket);
        Ok(Queued {
            ticket_id,
            players_needed,
            already_queued: false,
        })
    }

    /// Cancels a waiting ticket on its owner's request. Only pending tickets can be removed:
    /// a matched or expired one answers `NotFound`, as asobi does.
    pub fn remove(
        &mut self,
        now: Instant,
        ticket_id: &str,
        player_id: &str,
    ) -> Result<(), TicketAccessError> {
        let seq = *self
            .seq_by_ticket
            .get(ticket_id)
            .ok_or(TicketAccessError::NotFound)?;
        let ticket = self.pending.get(&seq).ok_or(TicketAccessError::NotFound)?;
        if ticket.player_id != player_id {
            return Err(TicketAccessError::NotOwner);
        }
        if let Some(ticket) = self.take_pending(seq) {
            self.resolve(now, ticket, TicketState::Cancelled);
        }
        Ok(())
    }

    /// Cancels the player's live ticket, if any (the player left for good). Returns its id.
    pub fn remove_player(&mut self, now: Instant, player_id: &str) -> Option<String> {
        let ticket_id = self.ticket_by_player.get(player_id)?.clone();
        let seq = *self.seq_by_ticket.get(&ticket_id)?;
        let ticket = self.take_pending(seq)?;
        self.resolve(now, ticket, TicketState::Cancelled);
        Some(ticket_id)
    }

    /// The ticket's status, owner-scoped like asobi's lookup. A resolved ticket answers until
    /// `status_retention` after it resolved, even if no tick has swept it yet.
    pub fn status(
        &self,
        now: Instant,
        ticket_id: &str,
        player_id: &str,
    ) -> Result<TicketStatus, TicketAccessError> {
        let (ticket, state) = if let Some(seq) = self.seq_by_ticket.get(ticket_id) {
            let ticket = self.pending.get(seq).ok_or(TicketAccessError::NotFound)?;
            (ticket, TicketState::Pending)
        } else {
            let resolved = self
                .resolved
                .get(ticket_id)
                .filter(|r| !self.past_retention(now, r.resolved_at))
                .ok_or(TicketAccessError::NotFound)?;
            (&resolved.ticket, resolved.state.clone())
        };
        if ticket.player_id != player_id {
            return Err(TicketAccessError::NotOwner);
        }
        Ok(TicketStatus {
            ticket_id: ticket.ticket_id.clone(),
            player_id: ticket.player_id.clone(),
            mode: self.mode.clone(),
            state,
            properties: ticket.properties.clone(),
            age: now.saturating_duration_since(ticket.submitted_at),
            players_needed: self.config.match_size,
        })
    }

    /// Advances the queue to `now`: forgets resolved tickets past retention, expires tickets
    /// that waited strictly longer than `max_wait`, then forms as many groups as the strategy
    /// accepts. Expired tickets never join a group in the same tick. Events come back with
    /// expiries first (in arrival order), then groups in the order they formed.
    pub fn tick(&mut self, now: Instant) -> Vec<QueueEvent> {
        self.sweep_resolved(now);
        let mut events = Vec::new();

        let expired: Vec<u64> = self
            .pending
            .values()
            .filter(|t| now.saturating_duration_since(t.submitted_at) > self.config.max_wait)
            .map(|t| t.seq)
            .collect();
        for seq in expired {
            if let Some(ticket) = self.take_pending(seq) {
                events.push(QueueEvent::Expired(TicketRef {
                    ticket_id: ticket.ticket_id.clone(),
                    player_id: ticket.player_id.clone(),
                }));
                self.resolve(now, ticket, TicketState::Expired);
            }
        }

        for group in self.choose_groups(now) {
            let mut tickets = Vec::with_capacity(group.len());
            for seq in group {
                if let Some(ticket) = self.take_pending(seq) {
                    tickets.push(FormedTicket {
                        ticket_id: ticket.ticket_id.clone(),
                        player_id: ticket.player_id.clone(),
                        properties: ticket.properties.clone(),
                        waited: now.saturating_duration_since(ticket.submitted_at),
                    });
                    self.resolve(now, ticket, TicketState::Matched { match_id: None });
                }
            }
            events.push(QueueEvent::Formed(FormedGroup {
                mode: self.mode.clone(),
                tickets,
            }));
        }
        events
    }

    /// Records the match a formed group became, so status lookups report its `match_id`.
    /// Ids that are not matched tickets of this queue (or are past retention) are ignored.
    pub fn mark_matched<I, S>(&mut self, ticket_ids: I, match_id: &str)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for id in ticket_ids {
            if let Some(resolved) = self.resolved.get_mut(id.as_ref()) {
                if let TicketState::Matched { match_id: slot } = &mut resolved.state {
                    *slot = Some(match_id.to_owned());
                }
            }
        }
    }

    /// The match for a formed group could not be spawned. Each attempt counts against the
    /// whole group; below [`MAX_FORMATION_ATTEMPTS`] its tickets go back into the queue at
    /// their original place and submission time (so `max_wait` still runs), otherwise they
    /// resolve as `failed` and are returned for `match.matchmaker_failed`. Worlds fail fast in
    /// asobi: for a world spawn failure, notify the players directly and do not call this.
    ///
    /// A ticket whose player queued again in the meantime is not re-queued (the newer ticket
    /// stands) and resolves as `cancelled`. Re-queued tickets may take the queue past
    /// `max_queue` by at most one group, since they held places moments ago.
    pub fn formation_failed<I, S>(&mut self, now: Instant, ticket_ids: I) -> FormationRetry
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut group: Vec<Ticket> = Vec::new();
        for id in ticket_ids {
            let id = id.as_ref();
            let is_matched = self
                .resolved
                .get(id)
                .is_some_and(|r| matches!(r.state, TicketState::Matched { .. }));
            if is_matched {
                if let Some(resolved) = self.resolved.remove(id) {
                    group.push(resolved.ticket);
                }
            }
        }
        let attempt = 1 + group.iter().map(|t| t.attempts).max().unwrap_or(0);
        let mut retry = FormationRetry {
            requeued: Vec::new(),
            gave_up: Vec::new(),
        };
        for mut ticket in group {
            if attempt >= MAX_FORMATION_ATTEMPTS {
                retry.gave_up.push(TicketRef {
                    ticket_id: ticket.ticket_id.clone(),
                    player_id: ticket.player_id.clone(),
                });
                self.resolve(now, ticket, TicketState::Failed);
            } else if self.ticket_by_player.contains_key(&ticket.player_id) {
                self.resolve(now, ticket, TicketState::Cancelled);
            } else {
                ticket.attempts = attempt;
                retry.requeued.push(ticket.ticket_id.clone());
                self.insert_pending(ticket);
            }
        }
        retry
    }

    fn insert_pending(&mut self, ticket: Ticket) {
        self.seq_by_ticket
            .insert(ticket.ticket_id.clone(), ticket.seq);
        self.ticket_by_player
            .insert(ticket.player_id.clone(), ticket.ticket_id.clone());
        self.pending.insert(ticket.seq, ticket);
    }

    fn take_pending(&mut self, seq: u64) -> Option<Ticket> {
        let ticket = self.pending.remove(&seq)?;
        self.seq_by_ticket.remove(&ticket.ticket_id);
        self.ticket_by_player.remove(&ticket.player_id);
        Some(ticket)
    }

    fn resolve(&mut self, now: Instant, ticket: Ticket, state: TicketState) {
        if self.config.max_retained == 0 {
            return;
        }
        while self.resolved.len() >= self.config.max_retained {
            match self.resolved_order.pop_front() {
                Some((at, id)) => self.forget_if_current(at, &id),
                None => break,
            }
        }
        self.resolved_order
            .push_back((now, ticket.ticket_id.clone()));
        self.resolved.insert(
            ticket.ticket_id.clone(),
            Resolved {
                ticket,
                state,
                resolved_at: now,
            },
        );
    }

    /// Drops a resolved record only if it is the resolution this order entry was made for.
    fn forget_if_current(&mut self, at: Instant, ticket_id: &str) {
        if self
            .resolved
            .get(ticket_id)
            .is_some_and(|r| r.resolved_at == at)
        {
            self.resolved.remove(ticket_id);
        }
    }

    fn past_retention(&self, now: Instant, resolved_at: Instant) -> bool {
        now.saturating_duration_since(resolved_at) >= self.config.status_retention
    }

    fn sweep_resolved(&mut self, now: Instant) {
        while let Some((at, _)) = self.resolved_order.front() {
            if !self.past_retention(now, *at) {
                break;
            }
            if let Some((at, id)) = self.resolved_order.pop_front() {
                self.forget_if_current(at, &id);
            }
        }
    }

    /// Sequence numbers of the groups the strategy accepts, without changing the queue.
    fn choose_groups(&self, now: Instant) -> Vec<Vec<u64>> {
        let size = self.config.group_size();
        match self.config.strategy {
            Strategy::Fill => {
                let in_order: Vec<u64> = self.pending.keys().copied().collect();
                in_order.chunks_exact(size).map(<[u64]>::to_vec).collect()
            }
            Strategy::SkillBased => {
                let mut sorted: Vec<&Ticket> = self.pending.values().collect();
                // Stable: equal skills keep arrival order.
                sorted.sort_by(|a, b| a.skill.total_cmp(&b.skill));
                let mut groups = Vec::new();
                let mut start = 0;
                // asobi's walk: try the `size` adjacent tickets from `start`; on a miss, leave
                // the lowest one queued and slide up by one.
                while sorted.len() - start >= size {
                    let candidate = &sorted[start..start + size];
                    if self.within_window(now, candidate) {
                        groups.push(candidate.iter().map(|t| t.seq).collect());
                        start += size;
                    } else {
                        start += 1;
                    }
                }
                groups
            }
        }
    }

    /// asobi widens the window by the wait of the candidate's first (lowest-skill) ticket.
    fn within_window(&self, now: Instant, candidate: &[&Ticket]) -> bool {
        let (Some(first), Some(last)) = (candidate.first(), candidate.last()) else {
            return true;
        };
        let waited = now.saturating_duration_since(first.submitted_at);
        (last.skill - first.skill).abs() <= self.config.skill_window(waited)
    }
}
