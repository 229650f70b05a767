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
use crate::wire::{Wire, WorldWire};

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
    let player_id = s.accounts.signed_in(access);
    s.world_wire = negotiate(s, &body);
    if s.player_id.as_deref() == Some(player_id.as_str()) {
        // The same player with a fresh token: nothing to move.
        s.reply(connected(f, &player_id, s.world_wire, &body));
        return Ok(());
    }
    if s.player_id.is_some() {
        // Another player on this socket: the previous one lets go of everything first.
        s.sign_out();
    }
    s.authed = true;
    let ctx = s.shard.ctx.clone();
    ctx.registry.session_up(&player_id, s.me);
    s.reply(connected(f, &player_id, s.world_wire, &body));
    s.player_id = Some(player_id.clone());
    // A player with a seat in a live match (reconnecting within the grace window) is put back.
    crate::services::matches::ws::session_connected(s, &player_id);
    crate::services::social::ws::session_connected(s, &player_id);
    crate::services::parties::ws::session_connected(s, &player_id);
    crate::services::worlds::ws::session_connected(s, &player_id);
    Ok(())
}

/// The `world.tick` options a `session.connect` asks for and this session can have: the binary
/// encoding on a JSON session (an `asobi.fb.1` session's frames are FlatBuffers already), and
/// datagrams on a transport that has them (QUIC).
fn negotiate(s: &Session, body: &payload::SessionConnect) -> WorldWire {
    let asked_binary = body.wire.as_ref().and_then(|w| w.as_str()) == Some("binary");
    let asked_datagrams = body.datagrams.as_ref().and_then(|d| d.as_bool()) == Some(true);
    WorldWire {
        binary: asked_binary && s.wire() == Wire::Json,
        datagrams: asked_datagrams && s.datagrams_possible,
    }
}

/// `session.connected` states the wire granted (asobi: read it, never assume it), and answers
/// `datagrams` only to a client that asked.
fn connected(
    f: &Inbound<'_>,
    player_id: &str,
    granted: WorldWire,
    body: &payload::SessionConnect,
) -> bytes::Bytes {
    encode_frame(
        "session.connected",
        f.cid,
        &payload::SessionConnected {
            player_id,
            wire: if granted.binary { "binary" } else { "json" },
            datagrams: body.datagrams.is_some().then_some(granted.datagrams),
        },
    )
}
