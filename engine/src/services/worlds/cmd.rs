//! The worlds service's mesh commands, handled on the shard hosting the world (or, for
//! `FindOrCreate`, on `owner(mode)`, so that simultaneous callers converge on one world).

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_rules::worlds::ZoneId;

use crate::services::Shard;
use crate::shard::answer;
use crate::shard::mesh::{ReplyTo, SessionRef};

#[derive(Debug)]
pub(crate) enum Cmd {
    Join {
        world_id: String,
        player_id: String,
        session: SessionRef,
        /// The session reads the binary `world.tick`.
        binary: bool,
        ctx: Option<Value>,
        reply: ReplyTo,
    },
    Input {
        world_id: String,
        player_id: String,
        input: Value,
        seq: Option<u64>,
    },
    Leave {
        world_id: String,
        player_id: String,
        reply: Option<ReplyTo>,
    },
    /// The player's socket dropped.
    Disconnected {
        world_id: String,
        player_id: String,
        session: SessionRef,
    },
    /// A player whose entity is held (`player_ttl_ms`) signed in again on `session`.
    Reattach {
        world_id: String,
        player_id: String,
        session: SessionRef,
        binary: bool,
    },
    Resync {
        world_id: String,
        player_id: String,
        zone: ZoneId,
    },
    /// Between the parts of a world split over shards (`split.rs`).
    Part {
        world_id: String,
        msg: super::split::PartMsg,
    },
    /// On `owner(mode)`: a quick-play world of `mode` with room, or a new one made here.
    /// Answers `{world_id, shard}`.
    FindOrCreate {
        mode: String,
        creator: String,
        reply: ReplyTo,
    },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    dispatch(shard, cmd, true);
}

/// Handles `cmd`; a command for a player who is not resident here goes on to their part of
/// a split world when `forward` (a command already forwarded once is not sent on again).
pub(crate) fn dispatch(shard: &Rc<Shard>, cmd: Cmd, forward: bool) {
    match cmd {
        Cmd::Join {
            world_id,
            player_id,
            session,
            binary,
            ctx,
            reply,
        } => super::join(shard, &world_id, &player_id, session, binary, ctx, reply),
        Cmd::Part { world_id, msg } => super::split::handle(shard, &world_id, msg),
        Cmd::Input {
            world_id,
            player_id,
            input,
            seq,
        } => super::input(shard, &world_id, &player_id, input, seq, forward),
        Cmd::Leave {
            world_id,
            player_id,
            reply,
        } => {
            super::leave(shard, &world_id, &player_id, forward);
            if let Some(r) = reply {
                answer(shard, r, Ok(Value::Null));
            }
        }
        Cmd::Disconnected {
            world_id,
            player_id,
            session,
        } => super::disconnected(shard, &world_id, &player_id, session, forward),
        Cmd::Resync {
            world_id,
            player_id,
            zone,
        } => super::resync(shard, &world_id, &player_id, zone, forward),
        Cmd::Reattach {
            world_id,
            player_id,
            session,
            binary,
        } => super::reattach(shard, &world_id, &player_id, session, binary, forward),
        Cmd::FindOrCreate {
            mode,
            creator,
            reply,
        } => {
            let found = match shard.ctx.worlds.open_world(&mode) {
                Some((world_id, host)) => Ok(json!({ "world_id": world_id, "shard": host })),
                None => super::create(shard, &mode, Some(&creator))
                    .map(|id| json!({ "world_id": id, "shard": shard.id() })),
            };
            answer(shard, reply, found);
        }
    }
}
