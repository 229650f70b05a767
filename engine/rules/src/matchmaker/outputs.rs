//! What a [`ModeQueue`](super::ModeQueue) hands back: replies to client inputs, their typed
//! errors with stable machine codes, ticket statuses, and the events a tick asks the runtime to
//! act on. Plain data with their wire shapes; no queue logic lives here.

use std::time::Duration;

use serde_json::{json, Map, Value};

/// Reply to a successful [`super::ModeQueue::add`]: the `matchmaker.queued` payload.
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

/// Why [`super::ModeQueue::add`] refused a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The mode already holds `max_queue` live tickets (the client may retry later).
    #[error("matchmaking queue is full ({max_queue} tickets waiting)")]
    QueueFull {
        /// The bound that was hit.
        max_queue: usize,
    },
    /// The client sent `properties` whose compact JSON encoding is longer than allowed.
    #[error("ticket properties are larger than {max_bytes} bytes")]
    PropertiesTooLarge {
        /// The bound that was hit.
        max_bytes: usize,
    },
    /// The client sent `properties` nested deeper than allowed.
    #[error("ticket properties nest deeper than {max_depth} levels")]
    PropertiesTooDeep {
        /// The bound that was hit.
        max_depth: usize,
    },
    /// The party has more players than one team of this mode seats.
    #[error("the party is larger than a team of this mode ({max_party} players)")]
    PartyTooLarge {
        /// Largest party the mode takes.
        max_party: usize,
    },
    /// A member of the party already holds a live ticket in this mode.
    #[error("a member of the party is already queued for this mode")]
    MemberQueued,
    /// The caller reused a ticket id this queue still knows (a runtime bug or an id collision,
    /// not a client error).
    #[error("ticket id already in use")]
    TicketIdInUse,
}

impl AddError {
    /// Stable machine code for the client-visible error. asobi has no code of its own for
    /// oversized properties (its transport answers `payload_too_large`); both properties bounds
    /// answer `matchmaker.properties_too_large`, following asobi's `<feature>.<reason>` naming
    /// (`event.payload_too_large`, `storage.value_too_large`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "matchmaker.queue_full",
            Self::PropertiesTooLarge { .. } | Self::PropertiesTooDeep { .. } => {
                "matchmaker.properties_too_large"
            }
            Self::PartyTooLarge { .. } => "matchmaker.party_too_large",
            Self::MemberQueued => "matchmaker.member_queued",
            Self::TicketIdInUse => "internal_error",
        }
    }

    /// The HTTP status to answer with (asobi: 503 for a full queue, 413 for oversized input).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::QueueFull { .. } => 503,
            Self::PropertiesTooLarge { .. } | Self::PropertiesTooDeep { .. } => 413,
            Self::PartyTooLarge { .. } => 400,
            Self::MemberQueued => 409,
            Self::TicketIdInUse => 500,
        }
    }
}

/// Why a ticket lookup or removal by id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketAccessError {
    /// No such ticket (never existed, already resolved for removal, or past retention).
    #[error("ticket not found")]
    NotFound,
    /// The ticket belongs to another player.
    #[error("ticket belongs to another player")]
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
    /// Its group failed to spawn [`super::MAX_FORMATION_ATTEMPTS`] times.
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

/// Answer to [`super::ModeQueue::status`].
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
    /// The properties it was submitted with, while the queue still holds them: pending and
    /// matched tickets do; cancelled, expired and failed ones drop them (`None`).
    pub properties: Option<Value>,
    /// Time since it was submitted, so the caller can derive a wall-clock `submitted_at`.
    pub age: Duration,
    /// The mode's declared `match_size` (see [`Queued::players_needed`]).
    pub players_needed: Option<usize>,
}

impl TicketStatus {
    /// The REST `GET /api/v1/matchmaker/:ticket_id` body. `wall_clock_ms` is the caller's
    /// current Unix time in ms; `submitted_at` is derived from it and [`TicketStatus::age`].
    /// Carries asobi's `id`/`submitted_at` keys plus `ticket_id`, and `players_needed` while
    /// pending and `match_id` once matched. `properties` is omitted once dropped.
    pub fn to_json(&self, wall_clock_ms: u64) -> Value {
        let age_ms = u64::try_from(self.age.as_millis()).unwrap_or(u64::MAX);
        let mut body = Map::new();
        body.insert("id".into(), json!(self.ticket_id));
        body.insert("ticket_id".into(), json!(self.ticket_id));
        body.insert("mode".into(), json!(self.mode));
        body.insert("status".into(), json!(self.state.as_str()));
        if let Some(properties) = &self.properties {
            body.insert("properties".into(), properties.clone());
        }
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
    /// The ticket's owner (a solo player, or the party's leader).
    pub player_id: String,
    /// Every player to seat from this ticket, owner first; one for a solo ticket.
    pub members: Vec<String>,
    /// The team this ticket's players are on (0 in a mode without teams).
    pub team: usize,
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
    /// Ticket ids, for [`super::ModeQueue::mark_matched`] / [`super::ModeQueue::formation_failed`].
    pub fn ticket_ids(&self) -> Vec<String> {
        self.tickets.iter().map(|t| t.ticket_id.clone()).collect()
    }

    /// Player ids (every member of every ticket), for `match.matched` and the roster.
    pub fn player_ids(&self) -> Vec<String> {
        self.tickets
            .iter()
            .flat_map(|t| t.members.iter().cloned())
            .collect()
    }

    /// Each player's team, in [`player_ids`](Self::player_ids) order.
    pub fn teams(&self) -> Vec<(String, usize)> {
        self.tickets
            .iter()
            .flat_map(|t| t.members.iter().map(move |m| (m.clone(), t.team)))
            .collect()
    }
}

/// What a [`super::ModeQueue::tick`] asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// Spawn a match for this group, then report its id with `mark_matched` (or the failure
    /// with `formation_failed`) and send `match.matched` to each player.
    Formed(FormedGroup),
    /// Send `match.matchmaker_expired {ticket_id}` to the player.
    Expired(TicketRef),
}

/// Outcome of [`super::ModeQueue::formation_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationRetry {
    /// Back in the queue with their original submission time; they form again on a later tick.
    pub requeued: Vec<String>,
    /// Out of attempts: send each `match.matchmaker_failed {reason: "match_start_failed"}`.
    pub gave_up: Vec<TicketRef>,
}
