//! The matchmaker's mesh commands, handled on the shard that owns the queue.

use std::rc::Rc;

use serde_json::Value;

use crate::services::Shard;
use crate::shard::answer;
use crate::shard::mesh::ReplyTo;

#[derive(Debug)]
pub(crate) enum Cmd {
    Add {
        mode: String,
        player_id: String,
        properties: Value,
        reply: ReplyTo,
    },
    AddParty {
        mode: String,
        leader: String,
        party_id: String,
        members: Vec<(String, f64)>,
        properties: Value,
        reply: ReplyTo,
    },
    Remove {
        ticket_id: String,
        player_id: String,
        reply: ReplyTo,
    },
    Status {
        ticket_id: String,
        player_id: String,
        reply: ReplyTo,
    },
    /// Drop every ticket of a player who left for good.
    RemovePlayer { mode: String, player_id: String },
    /// The host shard could not start the match formed from these tickets.
    FormationFailed { mode: String, tickets: Vec<String> },
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Add {
            mode,
            player_id,
            properties,
            reply,
        } => answer(
            shard,
            reply,
            super::on_add(shard, &mode, player_id, properties),
        ),
        Cmd::AddParty {
            mode,
            leader,
            party_id,
            members,
            properties,
            reply,
        } => answer(
            shard,
            reply,
            super::on_add_party(shard, &mode, leader, party_id, members, properties),
        ),
        Cmd::Remove {
            ticket_id,
            player_id,
            reply,
        } => answer(
            shard,
            reply,
            super::on_remove(shard, &ticket_id, &player_id),
        ),
        Cmd::Status {
            ticket_id,
            player_id,
            reply,
        } => answer(
            shard,
            reply,
            super::on_status(shard, &ticket_id, &player_id),
        ),
        Cmd::RemovePlayer { mode, player_id } => super::on_remove_player(shard, &mode, &player_id),
        Cmd::FormationFailed { mode, tickets } => super::on_formation_failed(shard, &mode, tickets),
    }
}
