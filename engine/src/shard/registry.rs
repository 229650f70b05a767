//! The process-wide index of where things are: which shard holds a player's sessions, how loaded
//! each shard is, and keyed entries a service publishes for others to find (a live match and the
//! shard hosting it). It never holds a feature's state — only addresses and what another shard
//! must read to route or list.
//!
//! It is written when a session connects or drops and when an indexed thing is created, changes
//! what others read of it or ends — never per message or per tick — so a mutex is the simple,
//! adequate tool. Hot paths (heartbeats, inputs, state fan-out) never touch it.
//!
//! [`Registry`] is the seam where a clustered implementation (one index across nodes) plugs in;
//! [`LocalRegistry`] is the one-process implementation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::mesh::SessionRef;

/// Counters one shard publishes for `/api/v1/health` and placement.
#[derive(Debug, Default)]
pub(crate) struct ShardStats {
    pub(crate) connections: AtomicUsize,
    pub(crate) sessions: AtomicUsize,
    /// Things the shard hosts that placement should spread (live matches).
    pub(crate) hosted: AtomicUsize,
    /// Set while the shard runs; cleared when it stops or dies (`/ready` reads it).
    pub(crate) alive: std::sync::atomic::AtomicBool,
}

/// Where players are connected and how loaded each shard is.
pub(crate) trait Registry: Send + Sync {
    fn session_up(&self, player_id: &str, at: SessionRef);
    fn session_down(&self, player_id: &str, at: SessionRef);
    /// The player's newest session, if connected.
    fn session_of(&self, player_id: &str) -> Option<SessionRef>;
    /// Per-shard counters.
    fn shards(&self) -> &[ShardStats];
    /// Where new work for these players should run: the shard holding most of them, ties to the
    /// shard hosting least.
    fn place(&self, players: &[String]) -> usize;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than losing the server, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds `delta` to a counter.
pub(crate) fn bump(counter: &AtomicUsize, delta: isize) {
    if delta >= 0 {
        counter.fetch_add(delta as usize, Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

/// The one-process [`Registry`].
#[derive(Debug, Default)]
pub(crate) struct LocalRegistry {
    presence: Mutex<HashMap<String, Vec<SessionRef>>>,
    shards: Vec<ShardStats>,
}

impl LocalRegistry {
    pub(crate) fn new(shards: usize) -> LocalRegistry {
        LocalRegistry {
            presence: Mutex::default(),
            shards: (0..shards).map(|_| ShardStats::default()).collect(),
        }
    }
}

/// Sessions one player may have open at once, across shards. A player opening sockets in a loop
/// must not grow the index without bound; the oldest is forgotten (its socket keeps working, it
/// just stops being the player's address).
const MAX_SESSIONS_PER_PLAYER: usize = 16;

impl Registry for LocalRegistry {
    fn session_up(&self, player_id: &str, at: SessionRef) {
        let mut presence = lock(&self.presence);
        let list = presence.entry(player_id.to_owned()).or_default();
        if list.len() >= MAX_SESSIONS_PER_PLAYER {
            list.remove(0);
        }
        list.push(at);
    }

    fn session_down(&self, player_id: &str, at: SessionRef) {
        let mut presence = lock(&self.presence);
        if let Some(list) = presence.get_mut(player_id) {
            list.retain(|s| *s != at);
            if list.is_empty() {
                presence.remove(player_id);
            }
        }
    }

    fn session_of(&self, player_id: &str) -> Option<SessionRef> {
        lock(&self.presence)
            .get(player_id)
            .and_then(|l| l.last().copied())
    }

    fn shards(&self) -> &[ShardStats] {
        &self.shards
    }

    fn place(&self, players: &[String]) -> usize {
        let mut votes = vec![0usize; self.shards.len()];
        {
            let presence = lock(&self.presence);
            for p in players {
                if let Some(s) = presence.get(p).and_then(|l| l.last()) {
                    if let Some(v) = votes.get_mut(s.shard) {
                        *v += 1;
                    }
                }
            }
        }
        let hosted: Vec<usize> = self
            .shards
            .iter()
            .map(|s| s.hosted.load(Ordering::Relaxed))
            .collect();
        asobi_rules::placement::place(&votes, &hosted)
    }
}

/// A process-wide map from a key to what other shards must read about it (a live match's host
/// shard and listing). Bounded by its owner: every entry is removed when its subject ends.
#[derive(Debug)]
pub(crate) struct Index<V> {
    map: Mutex<HashMap<String, V>>,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Index {
            map: Mutex::default(),
        }
    }
}

impl<V: Clone> Index<V> {
    pub(crate) fn put(&self, key: &str, value: V) {
        lock(&self.map).insert(key.to_owned(), value);
    }

    pub(crate) fn update(&self, key: &str, f: impl FnOnce(&mut V)) {
        if let Some(v) = lock(&self.map).get_mut(key) {
            f(v);
        }
    }

    pub(crate) fn remove(&self, key: &str) -> Option<V> {
        lock(&self.map).remove(key)
    }

    /// Removes the entry only when `keep` says it is no longer current.
    pub(crate) fn remove_if(&self, key: &str, stale: impl FnOnce(&V) -> bool) {
        let mut map = lock(&self.map);
        if map.get(key).is_some_and(stale) {
            map.remove(key);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        lock(&self.map).get(key).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Runs `f` over every entry under the lock (listings).
    pub(crate) fn scan<R>(&self, f: impl FnOnce(&HashMap<String, V>) -> R) -> R {
        f(&lock(&self.map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(shard: usize) -> SessionRef {
        SessionRef {
            shard,
            slot: 0,
            gen: 1,
        }
    }

    #[test]
    fn placement_follows_players_then_load() {
        let d = LocalRegistry::new(2);
        d.session_up("a", at(1));
        d.session_up("b", at(1));
        d.session_up("c", at(0));
        assert_eq!(d.place(&["a".into(), "b".into(), "c".into()]), 1);
        // A tie goes to the shard hosting fewer matches.
        bump(&d.shards[0].hosted, 3);
        assert_eq!(d.place(&["a".into(), "c".into()]), 1);
        bump(&d.shards[1].hosted, 5);
        assert_eq!(d.place(&["a".into(), "c".into()]), 0);
        // Nobody connected: the least loaded shard.
        assert_eq!(d.place(&["zz".into()]), 0);
    }

    #[test]
    fn presence() {
        let d = LocalRegistry::new(1);
        d.session_up("a", at(0));
        let second = SessionRef {
            shard: 0,
            slot: 1,
            gen: 2,
        };
        d.session_up("a", second);
        assert_eq!(d.session_of("a"), Some(second));
        d.session_down("a", second);
        assert_eq!(d.session_of("a"), Some(at(0)));
        d.session_down("a", at(0));
        assert_eq!(d.session_of("a"), None);
    }

    #[test]
    fn a_player_cannot_grow_presence_without_bound() {
        let d = LocalRegistry::new(1);
        for gen in 0..1000 {
            d.session_up(
                "a",
                SessionRef {
                    shard: 0,
                    slot: gen as usize,
                    gen,
                },
            );
        }
        assert_eq!(lock(&d.presence)["a"].len(), MAX_SESSIONS_PER_PLAYER);
        assert_eq!(d.session_of("a").map(|s| s.gen), Some(999));
    }

    #[test]
    fn index_entries() {
        let i: Index<u32> = Index::default();
        i.put("m", 1);
        i.update("m", |v| *v += 1);
        assert_eq!(i.get("m"), Some(2));
        i.remove_if("m", |v| *v == 1);
        assert_eq!(i.len(), 1);
        i.remove_if("m", |v| *v == 2);
        assert_eq!(i.len(), 0);
    }
}
