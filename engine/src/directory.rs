//! The few facts every shard needs about the others: who is connected where, which matches
//! exist and where they run, which match a player is in, and per-shard counters.
//!
//! It is written when a session connects or drops and when a match is created, changes its roster
//! or finishes — never per message or per tick — so a mutex is the simple, adequate tool. Hot paths
//! (heartbeats, inputs, state fan-out) never touch it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use asobi_schema::payload::MatchInfo;

use crate::mesh::SessionRef;

/// A live match as the directory knows it.
#[derive(Debug, Clone)]
pub(crate) struct MatchEntry {
    pub(crate) shard: usize,
    pub(crate) info: MatchInfo,
    pub(crate) listed: bool,
    pub(crate) players: Vec<String>,
    pub(crate) started_at: i64,
}

/// Counters one shard publishes for `/api/v1/health` and placement.
#[derive(Debug, Default)]
pub(crate) struct ShardStats {
    pub(crate) connections: AtomicUsize,
    pub(crate) sessions: AtomicUsize,
    pub(crate) matches: AtomicUsize,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    presence: Mutex<HashMap<String, Vec<SessionRef>>>,
    matches: Mutex<HashMap<String, MatchEntry>>,
    seats: Mutex<HashMap<String, String>>,
    tickets: Mutex<HashMap<String, String>>,
    pub(crate) shards: Vec<ShardStats>,
}

/// Matches one mode may list at once in `match.list`; a lobby browser wants a page, not all.
const LIST_LIMIT: usize = 200;

fn bump(counter: &AtomicUsize, delta: isize) {
    if delta >= 0 {
        counter.fetch_add(delta as usize, Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than losing the server, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Directory {
    pub(crate) fn new(shards: usize) -> Directory {
        Directory {
            shards: (0..shards).map(|_| ShardStats::default()).collect(),
            ..Directory::default()
        }
    }

    pub(crate) fn session_up(&self, player_id: &str, at: SessionRef) {
        lock(&self.presence)
            .entry(player_id.to_owned())
            .or_default()
            .push(at);
    }

    pub(crate) fn session_down(&self, player_id: &str, at: SessionRef) {
        let mut presence = lock(&self.presence);
        if let Some(list) = presence.get_mut(player_id) {
            list.retain(|s| *s != at);
            if list.is_empty() {
                presence.remove(player_id);
            }
        }
    }

    /// The player's newest session, if connected.
    pub(crate) fn session_of(&self, player_id: &str) -> Option<SessionRef> {
        lock(&self.presence)
            .get(player_id)
            .and_then(|l| l.last().copied())
    }

    pub(crate) fn put_match(&self, id: &str, entry: MatchEntry) {
        lock(&self.matches).insert(id.to_owned(), entry);
    }

    pub(crate) fn update_match(&self, id: &str, f: impl FnOnce(&mut MatchEntry)) {
        if let Some(e) = lock(&self.matches).get_mut(id) {
            f(e);
        }
    }

    pub(crate) fn remove_match(&self, id: &str) {
        lock(&self.matches).remove(id);
    }

    pub(crate) fn match_entry(&self, id: &str) -> Option<MatchEntry> {
        lock(&self.matches).get(id).cloned()
    }

    /// Listed, live matches, optionally of one mode and with room.
    pub(crate) fn list_matches(&self, mode: Option<&str>, has_capacity: bool) -> Vec<MatchInfo> {
        let matches = lock(&self.matches);
        let mut out: Vec<MatchInfo> = matches
            .values()
            .filter(|e| e.listed)
            .filter(|e| mode.is_none_or(|m| e.info.mode == m))
            .filter(|e| {
                !has_capacity || (e.info.joinable && e.info.player_count < e.info.max_players)
            })
            .map(|e| e.info.clone())
            .collect();
        out.sort_by(|a, b| a.match_id.cmp(&b.match_id));
        out.truncate(LIST_LIMIT);
        out
    }

    /// A joinable match of `mode` with room, for `match.find_or_create`.
    pub(crate) fn find_open(&self, mode: &str) -> Option<(String, usize)> {
        lock(&self.matches)
            .iter()
            .filter(|(_, e)| e.info.mode == mode && e.info.joinable)
            .filter(|(_, e)| e.info.player_count < e.info.max_players)
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(id, e)| (id.clone(), e.shard))
    }

    pub(crate) fn seat(&self, player_id: &str, match_id: &str) {
        lock(&self.seats).insert(player_id.to_owned(), match_id.to_owned());
    }

    pub(crate) fn unseat(&self, player_id: &str, match_id: &str) {
        let mut seats = lock(&self.seats);
        if seats.get(player_id).is_some_and(|m| m == match_id) {
            seats.remove(player_id);
        }
    }

    /// The match a player holds a seat in, and the shard hosting it.
    pub(crate) fn seat_of(&self, player_id: &str) -> Option<(String, usize)> {
        let match_id = lock(&self.seats).get(player_id).cloned()?;
        let shard = lock(&self.matches).get(&match_id)?.shard;
        Some((match_id, shard))
    }

    pub(crate) fn ticket_mode(&self, ticket_id: &str) -> Option<String> {
        lock(&self.tickets).get(ticket_id).cloned()
    }

    pub(crate) fn put_ticket(&self, ticket_id: &str, mode: &str) {
        let mut tickets = lock(&self.tickets);
        // Tickets are looked up only while they may still be queried; keep the map bounded.
        if tickets.len() > 200_000 {
            tickets.clear();
        }
        tickets.insert(ticket_id.to_owned(), mode.to_owned());
    }

    pub(crate) fn add_connection(&self, shard: usize, delta: isize) {
        bump(&self.shards[shard].connections, delta);
    }

    pub(crate) fn add_session(&self, shard: usize, delta: isize) {
        bump(&self.shards[shard].sessions, delta);
    }

    pub(crate) fn add_match(&self, shard: usize, delta: isize) {
        bump(&self.shards[shard].matches, delta);
    }

    /// Where a new match for these players should run: the shard holding most of them, ties to
    /// the shard with fewest matches.
    pub(crate) fn place(&self, players: &[String]) -> usize {
        let mut votes = vec![0usize; self.shards.len()];
        {
            let presence = lock(&self.presence);
            for p in players {
                if let Some(s) = presence.get(p).and_then(|l| l.last()) {
                    votes[s.shard] += 1;
                }
            }
        }
        (0..self.shards.len())
            .max_by(|&a, &b| {
                votes[a].cmp(&votes[b]).then_with(|| {
                    let ma = self.shards[a].matches.load(Ordering::Relaxed);
                    let mb = self.shards[b].matches.load(Ordering::Relaxed);
                    mb.cmp(&ma).then(b.cmp(&a))
                })
            })
            .unwrap_or(0)
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
        let d = Directory::new(2);
        d.session_up("a", at(1));
        d.session_up("b", at(1));
        d.session_up("c", at(0));
        assert_eq!(d.place(&["a".into(), "b".into(), "c".into()]), 1);
        // A tie goes to the shard with fewer matches.
        d.add_match(0, 3);
        assert_eq!(d.place(&["a".into(), "c".into()]), 1);
        d.add_match(1, 5);
        assert_eq!(d.place(&["a".into(), "c".into()]), 0);
        // Nobody connected: the least loaded shard.
        assert_eq!(d.place(&["zz".into()]), 0);
    }

    #[test]
    fn presence_and_seats() {
        let d = Directory::new(1);
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
        d.seat("a", "m1");
        assert_eq!(d.seat_of("a"), None, "no such live match yet");
        d.unseat("a", "other");
        d.unseat("a", "m1");
        assert!(lock(&d.seats).is_empty());
    }
}
