//! The ops plane's mesh commands, handled on the shard that owns their subject.

use std::rc::Rc;

use serde_json::json;

use asobi_schema::error::code;
use asobi_schema::ApiError;

use crate::services::Shard;
use crate::shard::mesh::ReplyTo;

#[derive(Debug)]
pub(crate) enum Cmd {
    /// This shard's metrics snapshot, for `GET /metrics`.
    Snapshot { reply: ReplyTo },
    /// End a live match hosted here (an operator's action).
    EndMatch { match_id: String, reply: ReplyTo },
    /// The chat channels this shard owns and their member counts.
    Channels { reply: ReplyTo },
    /// The tournaments whose window this shard keeps.
    Tournaments { reply: ReplyTo },
}

/// This shard's live chat channels as ops rows.
pub(crate) fn channels_here(shard: &Shard) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = shard
        .social
        .channels
        .census()
        .into_iter()
        .map(|(id, n)| json!({ "channel_id": id, "members": n }))
        .collect();
    json!(rows)
}

/// Ids of the tournaments this shard keeps the window of.
pub(crate) fn tournaments_here(shard: &Shard) -> serde_json::Value {
    json!(crate::services::tournaments::tracked_ids(shard))
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Snapshot { reply } => {
            let answer =
                serde_json::to_value(super::snapshot(shard)).map_err(|_| ApiError::internal());
            crate::shard::answer(shard, reply, answer);
        }
        Cmd::EndMatch { match_id, reply } => {
            let answer = if crate::services::matches::end_by_operator(shard, &match_id) {
                Ok(json!({ "match_id": match_id, "ended": true }))
            } else {
                Err(ApiError::new(
                    404,
                    code::OPS_NOT_FOUND,
                    "No live match has this id.",
                ))
            };
            crate::shard::answer(shard, reply, answer);
        }
        Cmd::Channels { reply } => crate::shard::answer(shard, reply, Ok(channels_here(shard))),
        Cmd::Tournaments { reply } => {
            crate::shard::answer(shard, reply, Ok(tournaments_here(shard)))
        }
    }
}
