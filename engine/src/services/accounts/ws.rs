//! What a WebSocket session keeps of its access token, and closing it when it is revoked.

use super::cmd::{Revoke, Scope};
use super::tokens::Access;
use crate::services::session::Session;

/// Close code for a session whose token was revoked. 1008 (policy violation) is what asobi's
/// SDKs read as "authentication failed, stop reconnecting", which is the point of a ban, an
/// erase or a logout.
pub(crate) const CLOSE_REVOKED: u16 = 1008;

/// The token a session authenticated with.
#[derive(Debug, Default)]
pub(crate) struct SessionPart {
    token: Option<Access>,
}

impl SessionPart {
    pub(crate) fn signed_in(&mut self, token: Access) {
        self.token = Some(token);
    }
}

/// A revocation reached this shard: the session closes if it names its token.
pub(crate) fn on_revoke(s: &mut Session, r: &Revoke) {
    let Some(t) = &s.accounts.token else { return };
    if t.player_id != r.player_id {
        return;
    }
    let hit = match &r.scope {
        Scope::Before(cut) => t.issued_ms <= *cut,
        Scope::Token { id, .. } => !id.is_empty() && *id == t.token_id,
    };
    if hit {
        s.close = Some((CLOSE_REVOKED, r.reason.to_owned()));
    }
}
