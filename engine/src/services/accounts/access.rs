//! Sessions that can be ended: this shard's copy of every access-token revocation, checked on
//! every authenticated REST request and `session.connect` without touching the database.
//!
//! A revocation (logout, erase, password change, ban) is written to storage first, then
//! broadcast over the mesh to every shard ([`broadcast`]); each shard records it here and
//! pushes it to its own sessions, which close when it names their token. A starting server seeds
//! every shard from storage ([`Revocations::seeded`]), so a restart forgets nothing.
//!
//! Memory is bounded by the revocations made within one access-token lifetime: an entry older
//! than that can only match tokens that have expired anyway, and is pruned.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use asobi_storage::AccessSnapshot;

use super::cmd::{Cmd, Revoke, Scope};
use super::tokens::{now_ms, Access};
use crate::services::Shard;

/// Entries are pruned at most this often (a prune walks both maps).
const PRUNE_EVERY_MS: i64 = 10_000;
/// How long a broadcast keeps retrying a peer whose mesh backlog is full before giving up on
/// it (the revocation is in storage already; that shard then learns it at its next restart).
const BROADCAST_RETRY_FOR: Duration = Duration::from_secs(5);
const BROADCAST_RETRY_EVERY: Duration = Duration::from_millis(5);

/// One shard's revocations.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    /// Player → cut-off: their tokens issued at or before it are dead.
    players: RefCell<HashMap<String, i64>>,
    /// Token id → its expiry: single tokens ended by logout.
    tokens: RefCell<HashMap<String, i64>>,
    last_prune_ms: Cell<i64>,
}

impl Revocations {
    /// This shard's copy, starting from what storage holds.
    pub(crate) fn seeded(snapshot: &AccessSnapshot) -> Revocations {
        let r = Revocations::default();
        {
            let mut players = r.players.borrow_mut();
            for p in &snapshot.players {
                let e = players.entry(p.player_id.clone()).or_insert(i64::MIN);
                *e = (*e).max(p.not_before_ms);
            }
            let mut tokens = r.tokens.borrow_mut();
            for t in &snapshot.tokens {
                tokens.insert(t.token_id.clone(), t.expires_at_ms);
            }
        }
        r
    }

    /// Whether a decoded token is still good.
    pub(crate) fn allows(&self, a: &Access) -> bool {
        if self
            .players
            .borrow()
            .get(&a.player_id)
            .is_some_and(|&cut| a.issued_ms <= cut)
        {
            return false;
        }
        a.token_id.is_empty() || !self.tokens.borrow().contains_key(&a.token_id)
    }

    /// Records a revocation; `ttl_ms` is the access-token lifetime, for pruning.
    pub(crate) fn apply(&self, r: &Revoke, now_ms: i64, ttl_ms: i64) {
        match &r.scope {
            Scope::Before(cut) => {
                let mut players = self.players.borrow_mut();
                let e = players.entry(r.player_id.clone()).or_insert(i64::MIN);
                *e = (*e).max(*cut);
            }
            Scope::Token { id, expires_ms } => {
                self.tokens.borrow_mut().insert(id.clone(), *expires_ms);
            }
        }
        if now_ms - self.last_prune_ms.get() >= PRUNE_EVERY_MS {
            self.prune(now_ms, ttl_ms);
        }
    }

    fn prune(&self, now_ms: i64, ttl_ms: i64) {
        self.last_prune_ms.set(now_ms);
        // A token issued at the cut-off expires `ttl` later; after that (plus the decoder's
        // leeway) the entry can match nothing.
        let horizon = now_ms - ttl_ms - 10_000;
        self.players.borrow_mut().retain(|_, cut| *cut > horizon);
        self.tokens
            .borrow_mut()
            .retain(|_, exp| *exp > now_ms - 10_000);
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.players.borrow().len() + self.tokens.borrow().len()
    }
}

/// The player an access token speaks for, if it is valid, unexpired and not revoked.
pub(crate) fn verify(shard: &Shard, token: &str) -> Option<Access> {
    let a = shard.ctx.tokens.decode_access(token)?;
    shard.accounts.allows(&a).then_some(a)
}

/// Tells every shard (this one in place) about a revocation already stored.
pub(crate) fn broadcast(shard: &Rc<Shard>, r: Revoke) {
    for to in 0..shard.rt.nshards() {
        let cmd = crate::services::Cmd::Accounts(Cmd::Revoke(r.clone()));
        if let Err(back) = crate::shard::route(shard, to, cmd) {
            // The peer's backlog is full. A revocation must not be dropped: keep trying for a
            // while from a task of its own.
            let s = shard.clone();
            shard.rt.spawn(async move {
                let mut cmd = back;
                let tries = BROADCAST_RETRY_FOR.as_millis() / BROADCAST_RETRY_EVERY.as_millis();
                for _ in 0..tries {
                    s.rt.sleep(BROADCAST_RETRY_EVERY).await;
                    match crate::shard::route(&s, to, cmd) {
                        Ok(()) => return,
                        Err(again) => cmd = again,
                    }
                }
                tracing::error!(
                    to,
                    "a revocation could not reach a shard; it holds from its next restart"
                );
            });
        }
    }
}

/// A revocation arrived at this shard: record it and tell this shard's sessions.
pub(crate) fn on_revoke(shard: &Rc<Shard>, r: Revoke) {
    let ttl = shard.ctx.tokens.access_ttl().as_millis() as i64;
    shard.accounts.apply(&r, now_ms(), ttl);
    shard
        .rt
        .push_all_local(&crate::shard::mesh::Outbound::Event(
            crate::services::Event::Accounts(r),
        ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(player: &str, id: &str, issued_ms: i64) -> Access {
        Access {
            player_id: player.into(),
            token_id: id.into(),
            issued_ms,
            expires_ms: issued_ms + 3_600_000,
        }
    }

    fn revoke(player: &str, scope: Scope) -> Revoke {
        Revoke {
            player_id: player.into(),
            scope,
            reason: "test",
        }
    }

    #[test]
    fn cut_offs_and_single_tokens() {
        let r = Revocations::default();
        assert!(r.allows(&access("a", "t1", 100)));
        r.apply(&revoke("a", Scope::Before(150)), 1_000, 3_600_000);
        assert!(!r.allows(&access("a", "t1", 100)));
        assert!(!r.allows(&access("a", "t2", 150)), "issued at the cut-off");
        assert!(r.allows(&access("a", "t3", 151)));
        assert!(r.allows(&access("b", "t4", 100)), "another player");
        // An older cut-off never re-enables tokens.
        r.apply(&revoke("a", Scope::Before(120)), 1_000, 3_600_000);
        assert!(!r.allows(&access("a", "t2", 130)));
        r.apply(
            &revoke(
                "b",
                Scope::Token {
                    id: "t4".into(),
                    expires_ms: 5_000,
                },
            ),
            1_000,
            3_600_000,
        );
        assert!(!r.allows(&access("b", "t4", 100)));
        assert!(r.allows(&access("b", "t5", 100)));
    }

    #[test]
    fn entries_past_a_token_lifetime_are_pruned() {
        let r = Revocations::default();
        let ttl = 60_000;
        for i in 0..1_000 {
            r.apply(&revoke(&format!("p{i}"), Scope::Before(i)), i, ttl);
            r.apply(
                &revoke(
                    "x",
                    Scope::Token {
                        id: format!("t{i}"),
                        expires_ms: i + ttl,
                    },
                ),
                i,
                ttl,
            );
        }
        assert_eq!(r.len(), 2_000);
        // Long after every one of them could matter, one more revocation sweeps them.
        let later = 10 * ttl;
        r.apply(&revoke("fresh", Scope::Before(later)), later, ttl);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn seeding_keeps_the_latest_cut_off() {
        let snap = AccessSnapshot {
            players: vec![
                asobi_storage::Revocation {
                    player_id: "a".into(),
                    not_before_ms: 10,
                },
                asobi_storage::Revocation {
                    player_id: "a".into(),
                    not_before_ms: 5,
                },
            ],
            tokens: vec![asobi_storage::RevokedToken {
                token_id: "j".into(),
                player_id: "b".into(),
                expires_at_ms: 99,
            }],
        };
        let r = Revocations::seeded(&snap);
        assert!(!r.allows(&access("a", "", 10)));
        assert!(r.allows(&access("a", "", 11)));
        assert!(!r.allows(&access("b", "j", 1)));
    }
}
