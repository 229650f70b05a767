//! Vote commands, handled on the shard hosting the match.

use std::rc::Rc;

use serde_json::{json, Value};

use crate::services::{matches, Shard};
use crate::shard::answer;
use crate::shard::mesh::ReplyTo;

#[derive(Debug)]
pub(crate) enum Cmd {
    Cast {
        match_id: String,
        player_id: String,
        vote_id: String,
        option: Value,
        reply: ReplyTo,
    },
    Veto {
        match_id: String,
        player_id: String,
        vote_id: String,
        reply: ReplyTo,
    },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    let ok = |_| json!({ "success": true });
    match cmd {
        Cmd::Cast {
            match_id,
            player_id,
            vote_id,
            option,
            reply,
        } => {
            let r = matches::vote_op(shard, &match_id, |votes, now, _| {
                votes.cast(now, &player_id, &vote_id, &option)
            });
            answer(shard, reply, r.map(ok));
        }
        Cmd::Veto {
            match_id,
            player_id,
            vote_id,
            reply,
        } => {
            let r = matches::vote_op(shard, &match_id, |votes, _, tokens| {
                votes.veto(&player_id, &vote_id, tokens).map(Some)
            });
            answer(shard, reply, r.map(ok));
        }
    }
}
