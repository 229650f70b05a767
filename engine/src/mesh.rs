//! What shards say to each other.
//!
//! Every cross-shard interaction is one of these messages, sent over the mesh built at start-up.
//! A message for the sending shard itself never touches a channel: [`crate::shard::Shard::route`]
//! handles it in place. Replies travel in `futures` oneshots, which work across executors.

use futures::channel::oneshot;
use serde_json::Value;

use asobi_schema::ApiError;

/// Where one WebSocket session lives: its shard and its slot there. `gen` guards against a slot
/// reused by a later session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionRef {
    pub(crate) shard: usize,
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// Something for a session's socket or state.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A text frame, encoded once and shared by every recipient.
    Frame(crate::frame::Frame),
    /// The session is now in this match (hosted on `shard`).
    Entered { match_id: String, shard: usize },
    /// The session is no longer in this match.
    Left { match_id: String },
    /// Close the socket with this code and reason.
    Close { code: u16, reason: String },
}

/// A reply channel for cross-shard requests.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// Commands for the shard that owns a mode's matchmaker queue.
#[derive(Debug)]
pub(crate) enum QueueCmd {
    Add {
        mode: String,
        player_id: String,
        properties: Value,
        reply: Reply<Value>,
    },
    Remove {
        mode: String,
        ticket_id: String,
        player_id: String,
        reply: Reply<()>,
    },
    /// Drop every ticket of a player who left for good.
    RemovePlayer { mode: String, player_id: String },
    /// The host shard could not start the match formed from these tickets.
    FormationFailed { mode: String, tickets: Vec<String> },
    Status {
        mode: String,
        ticket_id: String,
        player_id: String,
        reply: Reply<Value>,
    },
}

/// Commands for the shard that hosts a match.
#[derive(Debug)]
pub(crate) enum MatchCmd {
    /// Create a match for players the matchmaker grouped (or one player's find_or_create).
    Create {
        mode: String,
        match_id: String,
        players: Vec<String>,
        /// The matchmaker tickets it was formed from (empty for an explicit create); on
        /// failure they go back to the queue for another attempt.
        tickets: Vec<String>,
    },
    Join {
        match_id: String,
        player_id: String,
        session: SessionRef,
        ctx: Option<Value>,
        reply: Reply<Value>,
    },
    Input {
        match_id: String,
        player_id: String,
        input: Value,
    },
    Leave {
        match_id: String,
        player_id: String,
        reply: Option<Reply<()>>,
    },
    /// The player's socket dropped; keep the seat for the grace window.
    Disconnected {
        match_id: String,
        player_id: String,
        session: SessionRef,
    },
    /// The player is back on a new session.
    Reattach {
        match_id: String,
        player_id: String,
        session: SessionRef,
    },
}

/// One message on the mesh.
#[derive(Debug)]
pub(crate) enum MeshMsg {
    /// The same thing for several sessions of the receiving shard.
    Deliver {
        targets: Vec<SessionRef>,
        out: Outbound,
    },
    /// Different things for sessions of the receiving shard (per-player state).
    DeliverEach(Vec<(SessionRef, Outbound)>),
    Queue(QueueCmd),
    Match(MatchCmd),
}
