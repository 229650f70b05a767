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
    }
}
