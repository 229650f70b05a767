//! The process-wide index player → party: the only party state every shard reads. A player
//! holds at most one seat, claimed atomically here, so two shards cannot seat one player in
//! two parties at once. Bounded by players in parties: every seat is released when its member
//! leaves, is kicked, times out or the party closes.

use std::collections::HashMap;
use std::sync::Mutex;

/// player → the party they sit in.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    seats: Mutex<HashMap<String, String>>,
}

impl Directory {
    fn seats(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock exits the process (shared state), so a poisoned
        // lock is never seen by a live server; taking the data keeps this panic-free.
        self.seats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seats `player` in `party` unless they sit in another party. True when seated (or
    /// already seated in this one).
    pub(crate) fn claim(&self, player: &str, party: &str) -> bool {
        let mut seats = self.seats();
        match seats.get(player) {
            Some(p) => p == party,
            None => {
                seats.insert(player.to_owned(), party.to_owned());
                true
            }
        }
    }

    /// Frees `player`'s seat if it is in `party`.
    pub(crate) fn release(&self, player: &str, party: &str) {
        let mut seats = self.seats();
        if seats.get(player).is_some_and(|p| p == party) {
            seats.remove(player);
        }
    }

    /// The party `player` sits in.
    pub(crate) fn party_of(&self, player: &str) -> Option<String> {
        self.seats().get(player).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seat_per_player() {
        let d = Directory::default();
        assert!(d.claim("a", "p1"));
        assert!(d.claim("a", "p1"));
        assert!(!d.claim("a", "p2"));
        d.release("a", "p2");
        assert_eq!(d.party_of("a").as_deref(), Some("p1"));
        d.release("a", "p1");
        assert!(d.claim("a", "p2"));
    }
}
