//! The accounts mesh command: a revocation, sent to every shard.

use std::rc::Rc;

use crate::services::Shard;

/// What a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every token of the player issued at or before this time (unix ms).
    Before(i64),
    /// One token, by id, which would expire at `expires_ms`.
    Token { id: String, expires_ms: i64 },
}

/// One revocation, already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revoke {
    pub(crate) player_id: String,
    pub(crate) scope: Scope,
    /// The close reason a revoked socket gets (`logged_out`, `banned`, `erased`, ...).
    pub(crate) reason: &'static str,
}

#[derive(Debug)]
pub(crate) enum Cmd {
    Revoke(Revoke),
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    match cmd {
        Cmd::Revoke(r) => super::access::on_revoke(shard, r),
    }
}
