//! Ticket ids that name their mode, so resolving a ticket needs no global map.
//!
//! REST `GET`/`DELETE /api/v1/matchmaker/:ticket_id` arrive with only the id, on whatever shard
//! accepted the request, while the ticket lives in the queue of its mode on `owner(mode)`. A
//! process-wide `ticket → mode` map would have to grow with every ticket ever issued, and any
//! bound on it is either clearable by one busy account or a per-player bookkeeping problem.
//! Instead the id carries a 32-bit [`ModeTag`] and the map is the game's own (small, fixed)
//! list of modes: [`ModeIndex`].
//!
//! # The scheme
//!
//! A ticket id is a UUIDv7 in its usual 36-character text form, so clients and SDKs that treat
//! (or even parse) it as a UUID keep working:
//!
//! ```text
//!  bits   0..48   unix time in ms            (the caller's wall clock)
//!        48..52   version 7
//!        52..64   12 random bits
//!        64..66   variant 0b10
//!        66..96   30 random bits
//!        96..128  ModeTag: low 32 bits of FNV-1a-64 of the mode name  (last 8 hex digits)
//! ```
//!
//! The randomness (42 bits per millisecond per mode) comes from the caller's generator; this
//! module draws none. A collision is reported by [`super::ModeQueue::add`] as
//! [`super::AddError::TicketIdInUse`], never silently merged.
//!
//! Anyone can write an id with any tag. That only decides which queue is asked: the queue still
//! looks the ticket up and checks its owner, so a forged id answers `ticket_not_found` exactly
//! like an unknown one.

use crate::placement::fnv1a64;

/// A short, stable tag of a mode name, carried in the last 32 bits of its ticket ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModeTag(u32);

impl ModeTag {
    /// The tag of `mode`.
    pub fn of(mode: &str) -> Self {
        // Truncation is the point: the low half of the hash is the tag.
        Self(fnv1a64(mode.as_bytes()) as u32)
    }

    /// The tag as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The tag encoded in `ticket_id`, if it is a well-formed UUIDv7 text. Anything else (an id
    /// from before this scheme, a typo, garbage) answers `None`: the ticket cannot be found.
    pub fn of_ticket(ticket_id: &str) -> Option<Self> {
        let b = ticket_id.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let hex_ok = b
            .iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) || c.is_ascii_hexdigit());
        if !hex_ok || b[14] != b'7' || !matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B') {
            return None;
        }
        u32::from_str_radix(&ticket_id[28..36], 16).ok().map(Self)
    }
}

/// A new ticket id for `mode` (see the module docs for the layout). `unix_ms` is the caller's
/// wall clock; `random` comes from the caller's generator and only its low 42 bits are used.
pub fn new_ticket_id(mode: &str, unix_ms: u64, random: u64) -> String {
    let tag = u128::from(ModeTag::of(mode).get());
    let rand_a = u128::from((random >> 30) & 0xfff);
    let rand_b_high = u128::from(random & 0x3fff_ffff);
    let bits: u128 = (u128::from(unix_ms & 0xffff_ffff_ffff) << 80)
        | (0x7 << 76)
        | (rand_a << 64)
        | (0b10 << 62)
        | (rand_b_high << 32)
        | tag;
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The game's modes by tag: resolves a ticket id to the mode(s) whose queue may hold it.
///
/// Built from the mode list every shard already has (rebuild it on hot reload), so its size is
/// the number of modes the game declares, not the number of tickets.
#[derive(Debug, Clone, Default)]
pub struct ModeIndex {
    /// Sorted by tag; several entries share a tag only on a 32-bit hash collision.
    by_tag: Vec<(ModeTag, String)>,
}

impl ModeIndex {
    /// An index of `modes`. Duplicates are kept once.
    pub fn new<I, S>(modes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut by_tag: Vec<(ModeTag, String)> = modes
            .into_iter()
            .map(Into::into)
            .map(|m: String| (ModeTag::of(&m), m))
            .collect();
        by_tag.sort();
        by_tag.dedup();
        Self { by_tag }
    }

    /// The modes whose queue may hold `ticket_id`: none for a malformed id or an unknown tag,
    /// one almost always, several only when two mode names share a tag (ask each in turn; the
    /// ticket is in at most one of them).
    pub fn modes_of(&self, ticket_id: &str) -> impl Iterator<Item = &str> {
        let tag = ModeTag::of_ticket(ticket_id);
        let start = tag.map_or(self.by_tag.len(), |t| {
            self.by_tag.partition_point(|(k, _)| *k < t)
        });
        self.by_tag[start..]
            .iter()
            .take_while(move |(k, _)| Some(*k) == tag)
            .map(|(_, m)| m.as_str())
    }

    /// Number of modes indexed.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    /// True when no mode is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn ids_are_uuid_v7_text_and_carry_the_mode_tag() {
        let mut rng = StdRng::seed_from_u64(7);
        for mode in ["arena", "duel", "", "a-much-longer-mode-name"] {
            let id = new_ticket_id(mode, 1_764_000_000_000, rng.random());
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "7", "version nibble in {id}");
            assert!("89ab".contains(&id[19..20]), "variant in {id}");
            assert_eq!(ModeTag::of_ticket(&id), Some(ModeTag::of(mode)));
            // The timestamp prefix is the caller's clock.
            assert_eq!(&id[0..8], &format!("{:012x}", 1_764_000_000_000u64)[0..8]);
        }
    }

    #[test]
    fn ids_differ_by_the_callers_randomness() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(new_ticket_id("arena", 5, rng.random())));
        }
        assert_eq!(new_ticket_id("arena", 5, 42), new_ticket_id("arena", 5, 42));
    }

    #[test]
    fn malformed_ids_have_no_tag() {
        let good = new_ticket_id("arena", 1, 2);
        assert!(ModeTag::of_ticket(&good).is_some());
        for bad in [
            "",
            "not-a-uuid",
            &good[..35],
            &format!("{good}0"),
            &good.replacen('-', "x", 1),
            // A v4 UUID, as an older build (or asobi) would issue.
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            &good.replace(&good[28..29], "g"),
        ] {
            assert_eq!(ModeTag::of_ticket(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_index_resolves_ids_to_their_mode_only() {
        let index = ModeIndex::new(["arena", "duel", "brawl", "duel"]);
        assert_eq!(index.len(), 3);
        for mode in ["arena", "duel", "brawl"] {
            let id = new_ticket_id(mode, 99, 123);
            assert_eq!(index.modes_of(&id).collect::<Vec<_>>(), vec![mode]);
        }
        assert_eq!(index.modes_of(&new_ticket_id("gone", 1, 1)).count(), 0);
        assert_eq!(index.modes_of("garbage").count(), 0);
        assert!(ModeIndex::default().is_empty());
    }
}
