//! The parties' mesh commands, handled on the shard that owns the party.

use std::rc::Rc;

use serde_json::Value;

use asobi_rules::parties::Privacy;

use super::Op;
use crate::services::Shard;
use crate::shard::answer;
use crate::shard::mesh::ReplyTo;

#[derive(Debug)]
pub(crate) enum Cmd {
    Create {
        party_id: String,
        player: String,
        privacy: Privacy,
        max_size: usize,
        reply: ReplyTo,
    },
    Op {
        party_id: String,
        player: String,
        op: Op,
        reply: ReplyTo,
    },
    /// From the matchmaker: the party's ticket formed into a match (`match_id`) or expired.
    Unqueued {
        party_id: String,
        ticket_id: String,
        match_id: Option<String>,
        teams: Option<Value>,
    },
    /// A member's last socket closed (`away`) or one opened again.
    Presence {
        party_id: String,
        player: String,
        away: bool,
    },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Create {
            party_id,
            player,
            privacy,
            max_size,
            reply,
        } => answer(
            shard,
            reply,
            super::on_create(shard, party_id, player, privacy, max_size),
        ),
        Cmd::Op {
            party_id,
            player,
            op,
            reply,
        } => answer(shard, reply, super::on_op(shard, &party_id, &player, op)),
        Cmd::Unqueued {
            party_id,
            ticket_id,
            match_id,
            teams,
        } => super::on_unqueued(shard, &party_id, &ticket_id, match_id, teams),
        Cmd::Presence {
            party_id,
            player,
            away,
        } => super::on_presence(shard, &party_id, &player, away),
    }
}
