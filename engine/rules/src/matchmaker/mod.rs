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
//! asobi has no party tickets; this queue adds them ([`ModeQueue::add_party`]): one ticket for
//! several players, formed into one match and (in a mode with `teams`) onto one team, never
//! split; any member leaving the queue cancels the whole ticket. See [`teams`] for how.
//!
//! Everything a client can make it hold is bounded: live tickets by `max_queue`, resolved ones
//! by `max_retained` and `status_retention`, and each ticket's `properties` by size and depth
//! (see [`DEFAULT_MAX_PROPERTIES_BYTES`]). Cancelled, expired and failed tickets keep no
//! properties at all. Ticket ids name their mode ([`new_ticket_id`], [`ModeIndex`]), so the
//! runtime can route a bare ticket id without a process-wide ticket map.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

mod outputs;
mod properties;
pub mod teams;
mod ticket_id;

pub use properties::{DEFAULT_MAX_PROPERTIES_BYTES, DEFAULT_MAX_PROPERTIES_DEPTH};
pub use teams::PartyRating;
pub use ticket_id::{new_ticket_id, ModeIndex, ModeTag};

pub use outputs::{
    AddError, FormationRetry, FormedGroup, FormedTicket, QueueEvent, Queued, TicketAccessError,
    TicketRef, TicketState, TicketStatus,
};

use properties::{Oversize, Stored};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod driven;

#[cfg(test)]
mod hardening;

#[cfg(test)]
mod simulation;

#[cfg(test)]
mod party_tests;

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
/// How often a queue with waiting tickets is ticked (asobi's `tick_interval`). Forming waits for
/// a tick, so this is the longest a full group waits after its last member arrived.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(1);
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
    /// Largest encoded `properties` accepted, in bytes.
    pub max_properties_bytes: usize,
    /// Deepest nesting of objects and arrays accepted in `properties`.
    pub max_properties_depth: usize,
    /// Period of [`ModeQueue::tick`] while tickets wait; drives [`ModeQueue::next_deadline`].
    pub tick_interval: Duration,
    /// Teams per match (the mode's `teams`); 1 is free-for-all. With more than one, a match
    /// is `teams` teams of `match_size / teams` players and a party sits on one team.
    pub teams: usize,
    /// How a party ticket's rating is made from its members' ratings (`party_rating`).
    pub party_rating: PartyRating,
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
            max_properties_bytes: DEFAULT_MAX_PROPERTIES_BYTES,
            max_properties_depth: DEFAULT_MAX_PROPERTIES_DEPTH,
            tick_interval: DEFAULT_TICK_INTERVAL,
            teams: 1,
            party_rating: PartyRating::Mean,
        }
    }
}

impl QueueConfig {
    /// Players per formed group.
    pub fn group_size(&self) -> usize {
        self.match_size.unwrap_or(DEFAULT_MATCH_SIZE).max(1)
    }

    /// Players per team: the whole group without teams, else `match_size / teams` (a size
    /// that does not divide evenly rounds down, and the match is that much smaller).
    pub fn team_size(&self) -> usize {
        if self.teams <= 1 {
            self.group_size()
        } else {
            (self.group_size() / self.teams).max(1)
        }
    }

    /// The largest party ticket this mode takes: one team.
    pub fn max_party(&self) -> usize {
        self.team_size()
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

#[derive(Debug, Clone)]
struct Ticket {
    ticket_id: String,
    /// The owner: the solo player, or the party's leader.
    player_id: String,
    /// Every player the ticket seats, owner first (just the owner for a solo ticket).
    members: Vec<String>,
    /// `None` once the ticket resolved in a way that can never hand them to a match.
    properties: Option<Stored>,
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
///   never form groups; forming happens only on a tick. Each first forgets resolved tickets
///   past retention, so churn on an otherwise empty queue cannot pile records up.
/// - **Timer input**: [`tick`](Self::tick). In order it forgets resolved tickets past
///   retention, expires tickets that waited longer than `max_wait`, then groups what is left.
///   It returns every [`QueueEvent`] the runtime must act on; nothing is queued inside for
///   later polling.
/// - **Next deadline**: [`next_deadline`](Self::next_deadline) says when `tick` is next due:
///   every `tick_interval` while tickets wait, else when the oldest resolved record falls out
///   of retention, else never (`None`: an idle queue needs no timer). Ticking early is
///   harmless; ticking late only delays forming and forgetting.
/// - **Ids**: [`new_ticket_id`](Self::new_ticket_id) makes an id for this mode from the
///   caller's clock and random bits (see [`ModeIndex`] for resolving it back).
/// - **Feedback from the runtime** about groups a tick formed:
///   [`mark_matched`](Self::mark_matched) once the match exists (so status shows its id), or
///   [`formation_failed`](Self::formation_failed) when it could not be spawned.
/// - **Queries** (no state change): [`status`](Self::status), [`len`](Self::len),
///   [`is_empty`](Self::is_empty), [`mode`](Self::mode), [`config`](Self::config).
/// - **Hot reload**: [`reconfigure`](Self::reconfigure) applies a changed mode config to the
///   next tick; waiting tickets stay.
///
/// A driver calls, per queue: inputs as they arrive; then, whenever its timer fires at
/// `next_deadline()`, `tick(now)`, acts on the events (spawn, notify), reports each spawn with
/// `mark_matched` or `formation_failed`, and re-arms its timer at the new `next_deadline()`.
/// Inputs can move the deadline earlier (the first ticket in an empty queue), so re-read it
/// after each call.
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
    /// When the next forming tick is due; `None` while nothing waits.
    tick_due: Option<Instant>,
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
            tick_due: None,
        }
    }

    /// A fresh ticket id for this mode from the caller's wall clock (`unix_ms`) and random bits
    /// (see [`new_ticket_id`]).
    pub fn new_ticket_id(&self, unix_ms: u64, random: u64) -> String {
        new_ticket_id(&self.mode, unix_ms, random)
    }

    /// When [`tick`](Self::tick) is next due, or `None` if the queue holds nothing that needs
    /// time to pass.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sweep = self
            .resolved_order
            .front()
            .map(|(at, _)| *at + self.config.status_retention);
        match (self.tick_due, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolved tickets currently retained for status lookups.
    pub fn retained(&self) -> usize {
        self.resolved.len()
    }

    /// Encoded bytes of properties the queue holds, pending and retained: what clients' tickets
    /// cost it beyond fixed per-ticket bookkeeping.
    pub fn properties_bytes(&self) -> usize {
        let held = |t: &Ticket| t.properties.as_ref().map_or(0, Stored::len);
        self.pending.values().map(held).sum::<usize>()
            + self
                .resolved
                .values()
                .map(|r| held(&r.ticket))
                .sum::<usize>()
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

    /// Waiting tickets and the longest any of them has waited at `now` (operator views).
    pub fn waits(&self, now: Instant) -> (usize, Duration) {
        let oldest = self
            .pending
            .values()
            .map(|t| now.saturating_duration_since(t.submitted_at))
            .max()
            .unwrap_or_default();
        (self.pending.len(), oldest)
    }

    /// True when no ticket is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues `player_id` under `ticket_id` (caller-generated, unique). A player who already
    /// holds a live ticket in this mode gets that ticket back with `already_queued: true`, and
    /// `ticket_id` / `properties` are ignored, so a double-tapped "find match" cannot
    /// self-match. A `null` `properties` is stored as `{}`; properties over the size or depth
    /// bound are refused before anything else is looked at.
    pub fn add(
        &mut self,
        now: Instant,
        ticket_id: String,
        player_id: String,
        properties: Value,
    ) -> Result<Queued, AddError> {
        self.sweep_resolved(now);
        let properties = match properties {
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        let stored = Stored::new(
            &properties,
            self.config.max_properties_bytes,
            self.config.max_properties_depth,
        )
        .map_err(|why| match why {
            Oversize::Bytes => AddError::PropertiesTooLarge {
                max_bytes: self.config.max_properties_bytes,
            },
            Oversize::Depth => AddError::PropertiesTooDeep {
                max_depth: self.config.max_properties_depth,
            },
        })?;
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
        let seq = self.next_seq;
        self.next_seq += 1;
        let ticket = Ticket {
            skill: ticket_skill(&properties),
            ticket_id: ticket_id.clone(),
            members: vec![player_id.clone()],
            player_id,
            properties: Some(stored),
            submitted_at: now,
            seq,
            attempts: 0,
        };
        self.insert_pending(now, ticket);
        Ok(Queued {
            ticket_id,
            players_needed,
            already_queued: false,
        })
    }

    /// Queues a party as one ticket owned by `leader`. `members` are every player it seats
    /// with their ratings (the leader included; the leader is added if missing); the ticket's
    /// rating is the mode's [`PartyRating`] of them. Refused when the party is larger than one
    /// team of this mode, or when any member already holds a live ticket here (a party is
    /// queued once, and its players are not queued alone at the same time). A party of one is
    /// a solo ticket with the given rating.
    pub fn add_party(
        &mut self,
        now: Instant,
        ticket_id: String,
        leader: String,
        members: Vec<(String, f64)>,
        properties: Value,
    ) -> Result<Queued, AddError> {
        self.sweep_resolved(now);
        let mut seated: Vec<String> = vec![leader.clone()];
        let mut ratings: Vec<f64> = Vec::with_capacity(members.len().max(1));
        let mut leader_rated = false;
        for (p, r) in members {
            if p == leader {
                if !leader_rated {
                    ratings.push(r);
                    leader_rated = true;
                }
            } else if !seated.contains(&p) {
                seated.push(p);
                ratings.push(r);
            }
        }
        if !leader_rated {
            ratings.push(DEFAULT_SKILL);
        }
        let max_party = self.config.max_party();
        if seated.len() > max_party {
            return Err(AddError::PartyTooLarge { max_party });
        }
        if let Some(existing) = self.ticket_by_player.get(&leader) {
            let same = self
                .seq_by_ticket
                .get(existing)
                .and_then(|s| self.pending.get(s))
                .is_some_and(|t| t.members == seated);
            if same {
                return Ok(Queued {
                    ticket_id: existing.clone(),
                    players_needed: self.config.match_size,
                    already_queued: true,
                });
            }
        }
        if seated.iter().any(|p| self.ticket_by_player.contains_key(p)) {
            return Err(AddError::MemberQueued);
        }
        let properties = match properties {
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        let stored = Stored::new(
            &properties,
            self.config.max_properties_bytes,
            self.config.max_properties_depth,
        )
        .map_err(|why| match why {
            Oversize::Bytes => AddError::PropertiesTooLarge {
                max_bytes: self.config.max_properties_bytes,
            },
            Oversize::Depth => AddError::PropertiesTooDeep {
                max_depth: self.config.max_properties_depth,
            },
        })?;
        if self.pending.len() >= self.config.max_queue {
            return Err(AddError::QueueFull {
                max_queue: self.config.max_queue,
            });
        }
        if self.seq_by_ticket.contains_key(&ticket_id) || self.resolved.contains_key(&ticket_id) {
            return Err(AddError::TicketIdInUse);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let ticket = Ticket {
            skill: self.config.party_rating.aggregate(&ratings),
            ticket_id: ticket_id.clone(),
            player_id: leader,
            members: seated,
            properties: Some(stored),
            submitted_at: now,
            seq,
            attempts: 0,
        };
        self.insert_pending(now, ticket);
        Ok(Queued {
            ticket_id,
            players_needed: self.config.match_size,
            already_queued: false,
        })
    }

    /// Players waiting (a party ticket counts each of its members), for bot fill.
    pub fn players_waiting(&self) -> usize {
        self.pending.values().map(|t| t.members.len()).sum()
    }

    /// Cancels a waiting ticket on its owner's request. Only pending tickets can be removed:
    /// a matched or expired one answers `NotFound`, as asobi does.
    pub fn remove(
        &mut self,
        now: Instant,
        ticket_id: &str,
        player_id: &str,
    ) -> Result<(), TicketAccessError> {
        self.sweep_resolved(now);
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

    /// Cancels the player's live ticket, if any (the player left for good). A party member's
    /// leaving cancels the whole party ticket. Returns its id.
    pub fn remove_player(&mut self, now: Instant, player_id: &str) -> Option<String> {
        self.sweep_resolved(now);
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
        if !ticket.members.iter().any(|m| m == player_id) {
            return Err(TicketAccessError::NotOwner);
        }
        Ok(TicketStatus {
            ticket_id: ticket.ticket_id.clone(),
            player_id: ticket.player_id.clone(),
            mode: self.mode.clone(),
            state,
            properties: ticket.properties.as_ref().map(Stored::to_value),
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

        for mut group in self.choose_groups(now) {
            // Team by team (stable), so a roster read in order lists each team together.
            group.sort_by_key(|&(_, team)| team);
            let mut tickets = Vec::with_capacity(group.len());
            for (seq, team) in group {
                if let Some(ticket) = self.take_pending(seq) {
                    tickets.push(FormedTicket {
                        ticket_id: ticket.ticket_id.clone(),
                        player_id: ticket.player_id.clone(),
                        members: ticket.members.clone(),
                        team,
                        properties: ticket
                            .properties
                            .as_ref()
                            .map_or_else(|| Value::Object(Map::new()), Stored::to_value),
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
        self.tick_due = (!self.pending.is_empty()).then(|| now + self.config.tick_interval);
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
        self.sweep_resolved(now);
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
            } else if ticket
                .members
                .iter()
                .any(|m| self.ticket_by_player.contains_key(m))
            {
                self.resolve(now, ticket, TicketState::Cancelled);
            } else {
                ticket.attempts = attempt;
                retry.requeued.push(ticket.ticket_id.clone());
                self.insert_pending(now, ticket);
            }
        }
        retry
    }

    fn insert_pending(&mut self, now: Instant, ticket: Ticket) {
        if self.tick_due.is_none() {
            self.tick_due = Some(now + self.config.tick_interval);
        }
        self.seq_by_ticket
            .insert(ticket.ticket_id.clone(), ticket.seq);
        for m in &ticket.members {
            self.ticket_by_player
                .insert(m.clone(), ticket.ticket_id.clone());
        }
        self.pending.insert(ticket.seq, ticket);
    }

    fn take_pending(&mut self, seq: u64) -> Option<Ticket> {
        let ticket = self.pending.remove(&seq)?;
        self.seq_by_ticket.remove(&ticket.ticket_id);
        for m in &ticket.members {
            self.ticket_by_player.remove(m);
        }
        if self.pending.is_empty() {
            self.tick_due = None;
        }
        Some(ticket)
    }

    fn resolve(&mut self, now: Instant, mut ticket: Ticket, state: TicketState) {
        if self.config.max_retained == 0 {
            return;
        }
        // Only a matched ticket can go back into the queue (its spawn may still fail), so only
        // it keeps what it would be re-formed with.
        if !matches!(state, TicketState::Matched { .. }) {
            ticket.properties = None;
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

    /// Sequence numbers (and team) of the groups the strategy accepts, without changing the
    /// queue. Solo tickets in a mode without teams group exactly as asobi groups them; teams
    /// or any party ticket switch to [`teams::choose`].
    fn choose_groups(&self, now: Instant) -> Vec<Vec<(u64, usize)>> {
        let parties = self.pending.values().any(|t| t.members.len() > 1);
        if self.config.teams > 1 || parties {
            let entries: Vec<teams::Entry> = self
                .pending
                .values()
                .map(|t| teams::Entry {
                    seq: t.seq,
                    size: t.members.len(),
                    rating: t.skill,
                    submitted_at: t.submitted_at,
                })
                .collect();
            let window = |waited: Duration| self.config.skill_window(waited);
            let window: Option<&dyn Fn(Duration) -> f64> = match self.config.strategy {
                Strategy::SkillBased => Some(&window),
                Strategy::Fill => None,
            };
            let n = self.config.teams.max(1);
            return teams::choose(now, &entries, n, self.config.team_size(), window);
        }
        let solo = |g: Vec<u64>| g.into_iter().map(|seq| (seq, 0)).collect();
        self.choose_solo_groups(now).into_iter().map(solo).collect()
    }

    fn choose_solo_groups(&self, now: Instant) -> Vec<Vec<u64>> {
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
