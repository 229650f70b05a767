//! `session.connect` and `session.heartbeat`.

use asobi_schema::envelope::{encode_frame, encode_heartbeat, Inbound};
use asobi_schema::error::code;
use asobi_schema::payload;
use asobi_schema::ApiError;

use super::{Handled, Session, WsHandler};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[
    ("session.heartbeat", heartbeat),
    ("session.connect", connect),
];

fn heartbeat<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    s.reply(encode_heartbeat(f.cid, s.batch_now_ms));
    Handled::Done(Ok(()))
}

fn connect<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done(connect_now(s, f))
}

fn connect_now(s: &mut Session, f: &Inbound<'_>) -> Result<(), ApiError> {
    if s.player_id.is_some() {
        return Err(ApiError::new(
            400,
            code::ALREADY_CONNECTED,
            "This session is already authenticated.",
        ));
    }
    let body: payload::SessionConnect = f.decode()?;
    let player_id = s
        .shard
        .ctx
        .tokens
        .verify_access(&body.token)
        .ok_or_else(|| {
            ApiError::new(
                401,
                code::UNAUTHENTICATED,
                "The token is invalid or expired.",
            )
        })?;
    s.authed.set(true);
    let ctx = s.shard.ctx.clone();
    ctx.registry.session_up(&player_id, s.me);
    s.reply(encode_frame(
        "session.connected",
        f.cid,
        &payload::SessionConnected {
            player_id: &player_id,
        },
    ));
    s.player_id = Some(player_id.clone());
    // A player with a seat in a live match (reconnecting within the grace window) is put back.
    crate::services::matches::ws::session_connected(s, &player_id);
    Ok(())
}
