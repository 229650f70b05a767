//! What a WebSocket session keeps of its access token, and closing it when it is revoked.

use super::cmd::{Revoke, Scope};
use super::tokens::Access;
use crate::services::session::Session;

/// Close code for a session whose token was revoked. 1008 (policy violation) is what asobi's
/// SDKs read as "authentication failed, stop reconnecting", which is the point of a ban, an
/// erase or a logout.
pub(crate) const CLOSE_REVOKED: u16 = 1008;

/// What a revocation needs of the token a session authenticated with. The player is the
/// session's own `player_id`, not a second copy kept here: every open socket holds this.
#[derive(Debug, Default)]
pub(crate) struct SessionPart {
    token: Option<Held>,
}

#[derive(Debug)]
struct Held {
    token_id: String,
    issued_ms: i64,
}

impl SessionPart {
    /// Keeps the token's id and issue time; returns its player.
    pub(crate) fn signed_in(&mut self, token: Access) -> String {
        self.token = Some(Held {
            token_id: token.token_id,
            issued_ms: token.issued_ms,
        });
        token.player_id
    }
}

/// A revocation reached this shard: the session closes if it names its token.
pub(crate) fn on_revoke(s: &mut Session, r: &Revoke) {
    let Some(t) = &s.accounts.token else { return };
    if s.player_id.as_deref() != Some(r.player_id.as_str()) {
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
