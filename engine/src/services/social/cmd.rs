//! The social service's mesh commands: chat on `owner(channel)`, presence on `owner(player)`.

use std::rc::Rc;

use serde_json::Value;

use super::{chat, presence};
use crate::services::Shard;
use crate::shard::answer;
use crate::shard::mesh::{ReplyTo, SessionRef};

#[derive(Debug)]
pub(crate) enum Cmd {
    /// Add a session to a channel (access was checked by the sender).
    Join {
        channel: String,
        session: SessionRef,
        player: String,
        reply: ReplyTo,
    },
    /// Take every session of a player off a channel (they left or were kicked from its group).
    Evict {
        channel: String,
        player: String,
        reply: ReplyTo,
    },
    /// Take a session off a channel; `reply`, when set, is answered once it is off.
    Leave {
        channel: String,
        session: SessionRef,
        reply: Option<ReplyTo>,
    },
    /// Fan a message out and keep it for history.
    Send {
        channel: String,
        channel_type: &'static str,
        sender: String,
        content: String,
        sent_at: i64,
    },
    /// A session of the player opened (`up`) or closed.
    Session {
        player: String,
        session: SessionRef,
        up: bool,
    },
    /// The player set a status.
    Status { player: String, status: String },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Join {
            channel,
            session,
            player,
            reply,
        } => {
            let result = chat::join_here(shard, channel, session, &player)
                .map(|()| Value::Bool(true))
                .map_err(Into::into);
            answer(shard, reply, result);
        }
        Cmd::Evict {
            channel,
            player,
            reply,
        } => {
            chat::evict_here(shard, &channel, &player);
            answer(shard, reply, Ok(Value::Bool(true)));
        }
        Cmd::Leave {
            channel,
            session,
            reply,
        } => {
            chat::leave_here(shard, &channel, session);
            if let Some(reply) = reply {
                answer(shard, reply, Ok(Value::Bool(true)));
            }
        }
        Cmd::Send {
            channel,
            channel_type,
            sender,
            content,
            sent_at,
        } => chat::send_here(
            shard,
            chat::message(channel, channel_type, sender, content, sent_at),
        ),
        Cmd::Session {
            player,
            session,
            up,
        } => presence::session_here(shard, player, session, up),
        Cmd::Status { player, status } => presence::status_here(shard, player, status),
    }
}
