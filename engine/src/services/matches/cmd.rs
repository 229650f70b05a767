//! The matches service's mesh commands, handled on the shard hosting the match.

use std::rc::Rc;

use serde_json::Value;

use crate::services::{Cmd as ShardCmd, Shard};
use crate::shard::mesh::{ReplyTo, SessionRef};
use crate::shard::{answer, route};

#[derive(Debug)]
pub(crate) enum Cmd {
    /// Create a match for players the matchmaker grouped.
    Create {
        mode: String,
        match_id: String,
        players: Vec<String>,
        /// Its teams and parties, for the script and `match.matched`.
        lineup: super::Lineup,
        /// The matchmaker tickets it was formed from; on failure they go back to the queue.
        tickets: Vec<String>,
    },
    Join {
        match_id: String,
        player_id: String,
        session: SessionRef,
        ctx: Option<Value>,
        reply: ReplyTo,
    },
    Input {
        match_id: String,
        player_id: String,
        /// The input object's JSON text, parsed straight into Lua by the match.
        input: Box<str>,
    },
    Leave {
        match_id: String,
        player_id: String,
        reply: Option<ReplyTo>,
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
    /// On `owner(mode)`: pick or create the match a `match.find_or_create` caller joins.
    FindOrCreate { mode: String, reply: ReplyTo },
    /// On `owner(mode)`: the caller's join of a match handed out above is over.
    Settled { match_id: String },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Create {
            mode,
            match_id,
            players,
            lineup,
            tickets,
        } => {
            if let Err(e) = super::create(shard, &mode, &match_id, players, Some(lineup), true) {
                tracing::warn!(%match_id, "match creation failed: {e}");
                let host = crate::services::matchmaker::owner(shard, &mode);
                let back =
                    ShardCmd::Matchmaker(crate::services::matchmaker::cmd::Cmd::FormationFailed {
                        mode,
                        tickets,
                    });
                if route(shard, host, back).is_err() {
                    tracing::warn!(%match_id, "queue shard overloaded; formed tickets stay matched");
                }
            }
        }
        Cmd::Join {
            match_id,
            player_id,
            session,
            ctx,
            reply,
        } => super::join(shard, &match_id, &player_id, session, ctx, reply),
        Cmd::Input {
            match_id,
            player_id,
            input,
        } => super::input(shard, &match_id, &player_id, input),
        Cmd::Leave {
            match_id,
            player_id,
            reply,
        } => {
            super::leave(shard, &match_id, &player_id);
            if let Some(r) = reply {
                answer(shard, r, Ok(Value::Null));
            }
        }
        Cmd::Disconnected {
            match_id,
            player_id,
            session,
        } => super::disconnected(shard, &match_id, &player_id, session),
        Cmd::Reattach {
            match_id,
            player_id,
            session,
        } => super::reattach(shard, &match_id, &player_id, session),
        Cmd::FindOrCreate { mode, reply } => super::lobby::find_or_create(shard, &mode, reply),
        Cmd::Settled { match_id } => shard.matches.lobby.settle(&match_id),
    }
}
