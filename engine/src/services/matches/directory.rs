//! The process-wide index of live matches: which shard hosts each, what `match.list` and
//! `GET /matches/live` show of it, and which match each seated player is in. Written by the host
//! shard on create, roster change and finish; read by any shard to route a join or list.

use asobi_schema::payload::MatchInfo;

use crate::shard::registry::Index;

/// Matches one listing returns at most; a lobby browser wants a page, not all.
const LIST_LIMIT: usize = 200;

/// A live match as other shards see it.
#[derive(Debug, Clone)]
pub(crate) struct MatchEntry {
    pub(crate) shard: usize,
    pub(crate) info: MatchInfo,
    pub(crate) listed: bool,
    pub(crate) players: Vec<String>,
    pub(crate) started_at: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    matches: Index<MatchEntry>,
    /// player → the match they hold a seat in.
    seats: Index<String>,
}

impl Directory {
    pub(crate) fn put(&self, id: &str, entry: MatchEntry) {
        self.matches.put(id, entry);
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut MatchEntry)) {
        self.matches.update(id, f);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.matches.remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<MatchEntry> {
        self.matches.get(id)
    }

    /// Every live match, listed or not (operator views).
    pub(crate) fn all(&self) -> Vec<(String, MatchEntry)> {
        self.matches
            .scan(|all| all.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub(crate) fn len(&self) -> usize {
        self.matches.len()
    }

    /// Listed, live matches, optionally of one mode and with room.
    /// Listed matches, filtered by mode, room and `joinable` (asobi's three filters).
    pub(crate) fn list(
        &self,
        mode: Option<&str>,
        has_capacity: bool,
        joinable: Option<bool>,
    ) -> Vec<MatchInfo> {
        self.matches.scan(|all| {
            let mut out: Vec<MatchInfo> = all
                .values()
                .filter(|e| e.listed)
                .filter(|e| mode.is_none_or(|m| e.info.mode == m))
                .filter(|e| joinable.is_none_or(|j| e.info.joinable == j))
                .filter(|e| {
                    !has_capacity || (e.info.joinable && e.info.player_count < e.info.max_players)
                })
                .map(|e| e.info.clone())
                .collect();
            out.sort_by(|a, b| a.match_id.cmp(&b.match_id));
            out.truncate(LIST_LIMIT);
            out
        })
    }

    /// Every joinable match of `mode` as (id, host, players, capacity), for the lobby's pick.
    pub(crate) fn open_of_mode(&self, mode: &str) -> Vec<(String, usize, u32, u32)> {
        self.matches.scan(|all| {
            all.iter()
                .filter(|(_, e)| e.info.mode == mode && e.info.joinable)
                .map(|(id, e)| (id.clone(), e.shard, e.info.player_count, e.info.max_players))
                .collect()
        })
    }

    pub(crate) fn seat(&self, player_id: &str, match_id: &str) {
        self.seats.put(player_id, match_id.to_owned());
    }

    pub(crate) fn unseat(&self, player_id: &str, match_id: &str) {
        self.seats.remove_if(player_id, |m| m == match_id);
    }

    /// The match a player holds a seat in, and the shard hosting it.
    pub(crate) fn seat_of(&self, player_id: &str) -> Option<(String, usize)> {
        let match_id = self.seats.get(player_id)?;
        let shard = self.matches.get(&match_id)?.shard;
        Some((match_id, shard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_follow_live_matches() {
        let d = Directory::default();
        d.seat("a", "m1");
        assert_eq!(d.seat_of("a"), None, "no such live match yet");
        d.put(
            "m1",
            MatchEntry {
                shard: 1,
                info: MatchInfo {
                    match_id: "m1".into(),
                    mode: "duel".into(),
                    status: "waiting".into(),
                    player_count: 1,
                    max_players: 2,
                    joinable: true,
                    phase: None,
                },
                listed: true,
                players: vec!["a".into()],
                started_at: 0,
            },
        );
        assert_eq!(d.seat_of("a"), Some(("m1".into(), 1)));
        assert_eq!(d.open_of_mode("duel"), vec![("m1".into(), 1, 1, 2)]);
        d.unseat("a", "other");
        assert!(d.seat_of("a").is_some());
        d.unseat("a", "m1");
        assert_eq!(d.seat_of("a"), None);
    }
}
