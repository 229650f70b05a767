//! What shards say to each other: plain data, generic over the service layer's command and
//! session-event types, so the runtime never names a feature.
//!
//! Nothing here is a closure or a channel: a request names where its reply goes ([`ReplyTo`])
//! and the answer travels back as a [`MeshMsg::Reply`]. That keeps every message able to cross
//! a process boundary once the mesh spans several nodes.

use serde_json::Value;

use asobi_schema::ApiError;

use crate::wire::Frame;

/// Where one session lives: its shard and its slot there. `gen` guards against a slot reused by
/// a later session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionRef {
    pub(crate) shard: usize,
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// Where the answer to a request goes: a waiter on the requesting shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    pub(crate) shard: usize,
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

impl ReplyTo {
    /// No one waits: a command sent as a cast (asobi's `gen_server:cast`), whose answer the
    /// owner drops instead of sending.
    pub(crate) const NOBODY: ReplyTo = ReplyTo {
        shard: usize::MAX,
        slot: usize::MAX,
        gen: 0,
    };

    pub(crate) fn is_nobody(&self) -> bool {
        self.shard == usize::MAX
    }
}

/// The answer to a request.
pub(crate) type Answer = Result<Value, ApiError>;

/// Something for a session's socket or state. `E` is the service layer's session event (which
/// match the session entered, ...), opaque to the runtime.
#[derive(Debug, Clone)]
pub(crate) enum Outbound<E> {
    /// A frame, encoded once and shared by every recipient.
    Frame(Frame),
    /// A change to the session's own state, interpreted by the service layer.
    Event(E),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: String },
}

/// One message on the mesh.
#[derive(Debug)]
pub(crate) enum MeshMsg<C, E> {
    /// The same thing for several sessions of the receiving shard.
    Deliver {
        targets: Vec<SessionRef>,
        out: Outbound<E>,
    },
    /// Different things for sessions of the receiving shard (per-player state).
    DeliverEach(Vec<(SessionRef, Outbound<E>)>),
    /// A command for a service on the receiving shard.
    Cmd(C),
    /// The answer to a request the receiving shard made.
    Reply { to: ReplyTo, answer: Answer },
}
