//! `party.*` WebSocket messages. Each reply carries the request's type and `cid`; its payload
//! is the party view (`party.leave`, `party.decline` and `party.close` answer
//! `{"success": true}`, `party.queue` the `matchmaker.queued` body, `party.cancel` the view).

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_schema::envelope::{encode_frame, Inbound};

use super::{CreateBody, Op};
use crate::services::session::{Handled, Session, WsHandler};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[
    ("party.create", create),
    ("party.get", get),
    ("party.invite", invite),
    ("party.accept", accept),
    ("party.decline", decline),
    ("party.join", join),
    ("party.leave", leave),
    ("party.kick", kick),
    ("party.promote", promote),
    ("party.close", close),
    ("party.queue", queue),
    ("party.cancel", cancel),
];

#[derive(Deserialize)]
struct PartyRef {
    party_id: String,
}

#[derive(Deserialize)]
struct Target {
    party_id: String,
    player_id: String,
}

#[derive(Deserialize)]
struct QueueBody {
    party_id: String,
    #[serde(default = "asobi_schema::payload::default_mode")]
    mode: String,
    #[serde(default)]
    properties: Option<Value>,
}

fn create<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: CreateBody = f.decode()?;
        let shard = s.shard.clone();
        let v = super::create(&shard, &s.player(), body).await?;
        s.reply(encode_frame("party.create", f.cid, &v));
        Ok(())
    }))
}

macro_rules! simple {
    ($name:ident, $kind:literal, $op:expr) => {
        fn $name<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
            Handled::Later(Box::pin(async move {
                let body: PartyRef = f.decode()?;
                let shard = s.shard.clone();
                let v = super::op(&shard, &body.party_id, &s.player(), $op).await?;
                s.reply(encode_frame($kind, f.cid, &v));
                Ok(())
            }))
        }
    };
}

macro_rules! targeted {
    ($name:ident, $kind:literal, $op:path) => {
        fn $name<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
            Handled::Later(Box::pin(async move {
                let body: Target = f.decode()?;
                let shard = s.shard.clone();
                let v = super::op(&shard, &body.party_id, &s.player(), $op(body.player_id)).await?;
                s.reply(encode_frame($kind, f.cid, &v));
                Ok(())
            }))
        }
    };
}

simple!(get, "party.get", Op::View);
simple!(accept, "party.accept", Op::Accept);
simple!(decline, "party.decline", Op::Decline);
simple!(join, "party.join", Op::Join);
simple!(leave, "party.leave", Op::Leave);
simple!(close, "party.close", Op::Close);
simple!(cancel, "party.cancel", Op::Cancel);
targeted!(invite, "party.invite", Op::Invite);
targeted!(kick, "party.kick", Op::Kick);
targeted!(promote, "party.promote", Op::Promote);

fn queue<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: QueueBody = f.decode()?;
        let shard = s.shard.clone();
        let props = body.properties.unwrap_or(json!({}));
        let v = super::queue(&shard, &body.party_id, &s.player(), &body.mode, props).await?;
        s.reply(encode_frame("party.queue", f.cid, &v));
        Ok(())
    }))
}

/// The player signed in on a socket: a member inside grace is back.
pub(crate) fn session_connected(s: &mut Session, player_id: &str) {
    super::presence(&s.shard, player_id, false);
}

/// The player let go of a socket: with no other socket left, their seat enters grace.
pub(crate) fn session_closed(s: &mut Session, player_id: &str) {
    if s.shard.ctx.registry.session_of(player_id).is_none() {
        super::presence(&s.shard, player_id, true);
    }
}
