//! `match.find_or_create`, decided in one place per mode. Callers on every shard ask
//! `owner(mode)`, which picks the fullest joinable match with room (asobi's order: completing a
//! half-filled match is worth more than starting another) or creates one, so simultaneous callers
//! converge instead of each creating a match that then waits for players that went elsewhere.
//!
//! The directory learns a join only once the host has seated the player, so a seat handed out
//! here is *held* until its caller reports back (`Settled`) or, should that report be lost, for
//! `HOLD_FOR`. Holds make the owner count a seat twice for the instant between the host's seat
//! and the report, never zero times: at worst a caller gets a fresh match, never a full one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::directory::Directory;
use crate::services::Shard;
use crate::shard::answer;
use crate::shard::mesh::ReplyTo;

/// How long a handed-out seat counts against its match when its caller never reports back.
const HOLD_FOR: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Hold {
    /// Seats handed out and not yet reported back.
    seats: u32,
    expires: Instant,
}

/// The seats this shard, as `owner(mode)`, has handed out and not seen settle.
#[derive(Debug, Default)]
pub(crate) struct Lobby {
    held: RefCell<HashMap<String, Hold>>,
}

impl Lobby {
    fn held(&self, match_id: &str) -> u32 {
        self.held.borrow().get(match_id).map_or(0, |h| h.seats)
    }

    fn hold(&self, match_id: &str, now: Instant) {
        let mut held = self.held.borrow_mut();
        let h = held.entry(match_id.to_owned()).or_insert(Hold {
            seats: 0,
            expires: now,
        });
        h.seats += 1;
        h.expires = now + HOLD_FOR;
    }

    pub(crate) fn settle(&self, match_id: &str) {
        let mut held = self.held.borrow_mut();
        if let Some(h) = held.get_mut(match_id) {
            h.seats = h.seats.saturating_sub(1);
            if h.seats == 0 {
                held.remove(match_id);
            }
        }
    }

    fn expire(&self, now: Instant) {
        self.held.borrow_mut().retain(|_, h| h.expires > now);
    }

    /// The fullest match of `mode` that still has a seat once held seats are counted.
    fn pick(&self, directory: &Directory, mode: &str) -> Option<(String, usize)> {
        directory
            .open_of_mode(mode)
            .into_iter()
            .map(|(id, host, count, max)| (count + self.held(&id), max, id, host))
            .filter(|(taken, max, _, _)| taken < max)
            // Fullest first; among equals the oldest id (UUIDv7 sorts by creation).
            .min_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)))
            .map(|(_, _, id, host)| (id, host))
    }
}

/// On `owner(mode)`: hand the caller a match of `mode` to join, creating one here if none has
/// room. Answers `{match_id, shard}`.
pub(crate) fn find_or_create(shard: &Rc<Shard>, mode: &str, reply: ReplyTo) {
    let lobby = &shard.matches.lobby;
    let now = shard.rt.now();
    lobby.expire(now);
    let picked = match lobby.pick(&shard.ctx.matches, mode) {
        Some(found) => Ok(found),
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            super::create(shard, mode, &id, Vec::new(), None, false).map(|()| (id, shard.rt.id))
        }
    };
    let result = picked.map(|(match_id, host)| {
        lobby.hold(&match_id, now);
        json!({ "match_id": match_id, "shard": host })
    });
    answer(shard, reply, result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::matches::MatchEntry;
    use asobi_schema::payload::MatchInfo;

    fn entry(id: &str, count: u32, max: u32) -> MatchEntry {
        MatchEntry {
            shard: 0,
            info: MatchInfo {
                match_id: id.into(),
                mode: "m".into(),
                status: "waiting".into(),
                player_count: count,
                max_players: max,
                joinable: true,
                phase: None,
            },
            listed: false,
            players: Vec::new(),
            started_at: 0,
        }
    }

    #[test]
    fn fullest_first_and_held_seats_count() {
        let d = Directory::default();
        d.put("a", entry("a", 0, 2));
        d.put("b", entry("b", 1, 2));
        let lobby = Lobby::default();
        let now = Instant::now();
        assert_eq!(
            lobby.pick(&d, "m").unwrap().0,
            "b",
            "the half-full one first"
        );
        lobby.hold("b", now);
        assert_eq!(lobby.pick(&d, "m").unwrap().0, "a", "b's last seat is held");
        lobby.hold("a", now);
        lobby.hold("a", now);
        assert_eq!(lobby.pick(&d, "m"), None, "every seat is taken or held");
        lobby.settle("a");
        assert_eq!(lobby.pick(&d, "m").unwrap().0, "a");
        lobby.expire(now + HOLD_FOR + Duration::from_millis(1));
        assert_eq!(lobby.pick(&d, "m").unwrap().0, "b", "lost reports expire");
    }
}
