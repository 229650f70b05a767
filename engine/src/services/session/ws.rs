//! `session.connect` and `session.heartbeat`.
//!
//! As in asobi, `session.connect` may be sent again on an open socket (the JS SDK's `setToken`
//! puts a refreshed token on a live socket this way): a valid token re-authenticates, for another
//! player too; a bad one is refused with reason `invalid_token` and leaves the session as it was.

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

/// asobi's reason for a refused token; the JS SDK keys `auth_expired` on it.
const INVALID_TOKEN: &str = "invalid_token";

fn connect_now(s: &mut Session, f: &Inbound<'_>) -> Result<(), ApiError> {
    let body: payload::SessionConnect = f.decode()?;
    let Some(access) = crate::services::accounts::access::verify(&s.shard, &body.token) else {
        let e = ApiError::new(
            401,
            code::UNAUTHENTICATED,
            "The token is invalid or expired.",
        );
        s.error_with_reason(f.cid, &e, INVALID_TOKEN);
        return Ok(());
    };
    let player_id = access.player_id.clone();
    s.accounts.signed_in(access);
    if s.player_id.as_deref() == Some(player_id.as_str()) {
        // The same player with a fresh token: nothing to move.
        s.reply(connected(f, &player_id));
        return Ok(());
    }
    if s.player_id.is_some() {
        // Another player on this socket: the previous one lets go of everything first.
        s.sign_out();
    }
    s.authed.set(true);
    let ctx = s.shard.ctx.clone();
    ctx.registry.session_up(&player_id, s.me);
    s.reply(connected(f, &player_id));
    s.player_id = Some(player_id.clone());
    // A player with a seat in a live match (reconnecting within the grace window) is put back.
    crate::services::matches::ws::session_connected(s, &player_id);
    crate::services::social::ws::session_connected(s, &player_id);
    crate::services::worlds::ws::session_connected(s, &player_id);
    Ok(())
}

fn connected(f: &Inbound<'_>, player_id: &str) -> bytes::Bytes {
    // asobi's optional binary wire (binary `world.tick`) is not served here, so the grant is
    // always JSON, as asobi answers with its binary wire switched off.
    encode_frame(
        "session.connected",
        f.cid,
        &payload::SessionConnected {
            player_id,
            wire: "json",
        },
    )
}
