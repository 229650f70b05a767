//! Where a keyed piece of state lives, and where a new match should run.
//!
//! Owns the two placement functions every shard must agree on: [`owner`] (the shard that owns
//! the queue of a mode, a chat channel, a party, …) and [`place`] (the shard a new match for a
//! group of players is created on). Both are pure functions of their arguments; they must not
//! read shard state themselves, so every caller on every shard gets the same answer from the
//! same inputs.

/// 64-bit FNV-1a of `bytes`. Chosen because it is stable across runs, builds and shards (unlike
/// `std`'s randomly seeded hasher), which is all placement needs; keys are short and not
/// attacker-chosen in a way that matters, since a skewed key only skews one feature's load.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The shard (of `nshards`) that owns the state keyed by `key`. Same results as the engine's
/// `Shard::queue_shard`. `nshards == 0` is treated as one shard.
pub fn owner(key: &str, nshards: usize) -> usize {
    let n = nshards.max(1) as u64;
    // The remainder is below `nshards`, so it fits in usize.
    (fnv1a64(key.as_bytes()) % n) as usize
}

/// The shard a new match should run on: the one holding most of its players
/// (`votes_per_shard[k]` = players connected to shard `k`), ties going to the shard with fewest
/// live matches, remaining ties to the lowest index. Sessions then talk to their match without a
/// mesh hop where possible. Both slices are indexed by shard; a shard missing from the shorter
/// one counts as zero. Returns 0 when there are no shards.
pub fn place(votes_per_shard: &[usize], matches_per_shard: &[usize]) -> usize {
    let n = votes_per_shard.len().max(matches_per_shard.len());
    let votes = |k: usize| votes_per_shard.get(k).copied().unwrap_or(0);
    let load = |k: usize| matches_per_shard.get(k).copied().unwrap_or(0);
    (0..n)
        .max_by(|&a, &b| {
            votes(a)
                .cmp(&votes(b))
                .then_with(|| load(b).cmp(&load(a)))
                .then(b.cmp(&a))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's `Shard::queue_shard`, written out independently, to pin "same results".
    fn engine_queue_shard(mode: &str, nshards: usize) -> usize {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in mode.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        (h % nshards as u64) as usize
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn owner_agrees_with_the_engine_for_every_shard_count() {
        for mode in [
            "",
            "arena",
            "duel",
            "brawl",
            "battle_royale",
            "ü-mode",
            "x".repeat(64).as_str(),
        ] {
            for n in 1..=64 {
                let k = owner(mode, n);
                assert_eq!(k, engine_queue_shard(mode, n), "{mode} on {n}");
                assert!(k < n);
            }
        }
        assert_eq!(owner("arena", 0), 0);
    }

    #[test]
    fn place_follows_players_then_load_then_lowest_index() {
        assert_eq!(place(&[1, 2], &[0, 0]), 1);
        // A tie in players goes to the shard with fewer matches.
        assert_eq!(place(&[1, 1], &[3, 0]), 1);
        assert_eq!(place(&[1, 1], &[3, 5]), 0);
        // Nobody connected: the least loaded shard; full tie: the lowest index.
        assert_eq!(place(&[0, 0, 0], &[4, 2, 2]), 1);
        assert_eq!(place(&[0, 0], &[0, 0]), 0);
        assert_eq!(place(&[], &[]), 0);
        // Players outweigh load.
        assert_eq!(place(&[0, 1], &[0, 100]), 1);
        // Ragged slices: a missing entry counts as zero.
        assert_eq!(place(&[0, 0], &[1, 1, 0]), 2);
    }

    #[test]
    fn place_agrees_with_the_engine_directory_example() {
        // directory.rs `placement_follows_players_then_load`, restated as votes and loads.
        assert_eq!(place(&[1, 2], &[0, 0]), 1);
        assert_eq!(place(&[1, 1], &[3, 0]), 1);
        assert_eq!(place(&[1, 1], &[3, 5]), 0);
        assert_eq!(place(&[0, 0], &[3, 5]), 0);
    }
}
