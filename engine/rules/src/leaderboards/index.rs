//! The rank index: an ordered multiset of [`Key`]s that answers "what is at rank r" and "what
//! rank is this key" in O(log n), and walks a window of ranks at memory speed.
//!
//! Layout: the keys live in sorted blocks of at most [`MAX_BLOCK`] (a two-level B-tree whose
//! leaves are plain `Vec`s), and a Fenwick tree over the block lengths turns a block number into
//! the rank of its first key and back. A key is 32 bytes stored inline, so a block is a few
//! kilobytes of contiguous memory: an insert is a binary search over the block maxima, one
//! `memmove` inside one block and one Fenwick update; `top(100)` and `around` read one or two
//! blocks front to back. Splits and merges rebuild the Fenwick tree (O(blocks)), which happens
//! once per hundreds of writes.
//!
//! Smaller keys rank first; the board maps its sort order onto that (see `Board`).

/// The order of one entry on a board: lower is better. Unique per player because `slot` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The score, mapped so that better is smaller.
    pub primary: i64,
    /// The sub-score (tie-break), mapped the same way.
    pub secondary: i64,
    /// When the entry reached this score: on a full tie the earlier one ranks first.
    pub seq: u64,
    /// The player's slot on the board; makes every key unique.
    pub slot: u32,
}

/// Largest block; a full block splits in two halves.
pub const MAX_BLOCK: usize = 512;
/// A block below this merges with a neighbour when the two fit in one, so that removals cannot
/// leave thousands of tiny blocks behind.
const MIN_BLOCK: usize = MAX_BLOCK / 8;
/// Block size when building from a sorted list: half full, so the first inserts do not split.
const BUILD_BLOCK: usize = MAX_BLOCK / 2;

/// See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct RankIndex {
    blocks: Vec<Vec<Key>>,
    /// Fenwick tree (1-based) over `blocks[i].len()`.
    tree: Vec<u32>,
    len: usize,
}

impl RankIndex {
    /// An empty index.
    pub fn new() -> RankIndex {
        RankIndex::default()
    }

    /// Builds from keys in any order (sorted here once: O(n log n)).
    pub fn from_keys(mut keys: Vec<Key>) -> RankIndex {
        keys.sort_unstable();
        keys.dedup();
        let len = keys.len();
        let blocks: Vec<Vec<Key>> = keys
            .chunks(BUILD_BLOCK)
            .map(|c| {
                let mut b = Vec::with_capacity(MAX_BLOCK);
                b.extend_from_slice(c);
                b
            })
            .collect();
        let mut index = RankIndex {
            blocks,
            tree: Vec::new(),
            len,
        };
        index.rebuild_tree();
        index
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the index itself (blocks and tree), for the benchmark's memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.capacity() * std::mem::size_of::<Key>())
            .sum::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<Vec<Key>>()
            + self.tree.capacity() * 4
    }

    /// Inserts `key`; false when it was already present.
    pub fn insert(&mut self, key: Key) -> bool {
        if self.blocks.is_empty() {
            let mut b = Vec::with_capacity(MAX_BLOCK);
            b.push(key);
            self.blocks.push(b);
            self.len = 1;
            self.rebuild_tree();
            return true;
        }
        let b = self.block_for(&key);
        let block = &mut self.blocks[b];
        let Err(at) = block.binary_search(&key) else {
            return false;
        };
        block.insert(at, key);
        self.len += 1;
        if block.len() >= MAX_BLOCK {
            let mut upper = Vec::with_capacity(MAX_BLOCK);
            upper.extend_from_slice(&block[MAX_BLOCK / 2..]);
            block.truncate(MAX_BLOCK / 2);
            self.blocks.insert(b + 1, upper);
            self.rebuild_tree();
        } else {
            self.tree_add(b, 1);
        }
        true
    }

    /// Removes `key`; false when it was absent.
    pub fn remove(&mut self, key: &Key) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_for(key);
        let block = &mut self.blocks[b];
        let Ok(at) = block.binary_search(key) else {
            return false;
        };
        block.remove(at);
        self.len -= 1;
        let small = block.len();
        if small == 0 {
            self.blocks.remove(b);
            self.rebuild_tree();
        } else if small < MIN_BLOCK && self.try_merge(b) {
            self.rebuild_tree();
        } else {
            self.tree_add(b, -1);
        }
        true
    }

    /// The 0-based rank of `key`, when present.
    pub fn rank_of(&self, key: &Key) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        let b = self.block_for(key);
        let at = self.blocks[b].binary_search(key).ok()?;
        Some(self.prefix(b) + at)
    }

    /// The key at 0-based rank `r`.
    pub fn at(&self, r: usize) -> Option<&Key> {
        let (b, off) = self.locate(r)?;
        self.blocks[b].get(off)
    }

    /// Up to `n` keys from 0-based rank `from`, best first.
    pub fn range(&self, from: usize, n: usize) -> impl Iterator<Item = &Key> + '_ {
        let start = self.locate(from);
        let (b, off) = start.unwrap_or((self.blocks.len(), 0));
        let first = self.blocks.get(b).map(|blk| &blk[off..]).unwrap_or(&[]);
        let rest = self.blocks.get(b + 1..).unwrap_or(&[]);
        first
            .iter()
            .chain(rest.iter().flat_map(|blk| blk.iter()))
            .take(n)
    }

    /// Every key, best first.
    pub fn iter(&self) -> impl Iterator<Item = &Key> + '_ {
        self.blocks.iter().flat_map(|b| b.iter())
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        *self = RankIndex::default();
    }

    /// The block that holds `key` or would: the first whose last key is not below it.
    fn block_for(&self, key: &Key) -> usize {
        let b = self
            .blocks
            .partition_point(|blk| blk.last().is_some_and(|last| last < key));
        b.min(self.blocks.len() - 1)
    }

    /// Merges block `b` with its smaller neighbour when both fit in one block.
    fn try_merge(&mut self, b: usize) -> bool {
        let neighbour = match (b.checked_sub(1), self.blocks.get(b + 1)) {
            (Some(prev), Some(next)) if next.len() < self.blocks[prev].len() => b + 1,
            (Some(prev), _) => prev,
            (None, Some(_)) => b + 1,
            (None, None) => return false,
        };
        let (lo, hi) = if neighbour < b {
            (neighbour, b)
        } else {
            (b, neighbour)
        };
        if self.blocks[lo].len() + self.blocks[hi].len() >= MAX_BLOCK {
            return false;
        }
        let upper = self.blocks.remove(hi);
        self.blocks[lo].extend_from_slice(&upper);
        true
    }

    fn rebuild_tree(&mut self) {
        let n = self.blocks.len();
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        for i in 1..=n {
            self.tree[i] += self.blocks[i - 1].len() as u32;
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                let v = self.tree[i];
                self.tree[parent] += v;
            }
        }
    }

    fn tree_add(&mut self, block: usize, delta: i32) {
        let mut i = block + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Keys in blocks before `block`.
    fn prefix(&self, block: usize) -> usize {
        let mut i = block;
        let mut sum = 0usize;
        while i > 0 {
            sum += self.tree[i] as usize;
            i &= i - 1;
        }
        sum
    }

    /// The block and offset of 0-based rank `r` (Fenwick descent).
    fn locate(&self, r: usize) -> Option<(usize, usize)> {
        if r >= self.len {
            return None;
        }
        let n = self.blocks.len();
        let mut pos = 0usize;
        let mut rem = r;
        let mut step = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && (self.tree[next] as usize) <= rem {
                pos = next;
                rem -= self.tree[next] as usize;
            }
            step >>= 1;
        }
        Some((pos, rem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn key(p: i64, slot: u32) -> Key {
        Key {
            primary: p,
            secondary: 0,
            seq: 0,
            slot,
        }
    }

    /// A seeded random walk of inserts and removes, checked against a `BTreeSet` after every
    /// step: ranks, selection, windows and the block invariants.
    #[test]
    fn matches_a_sorted_set_on_a_random_walk() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut index = RankIndex::new();
        let mut model = BTreeSet::new();
        for step in 0..60_000u32 {
            let k = key(rng.random_range(-500..500), rng.random_range(0..3000));
            if rng.random_bool(0.6) {
                assert_eq!(index.insert(k), model.insert(k));
            } else {
                assert_eq!(index.remove(&k), model.remove(&k));
            }
            assert_eq!(index.len(), model.len());
            if step % 997 == 0 {
                let sorted: Vec<Key> = model.iter().copied().collect();
                assert_eq!(index.iter().copied().collect::<Vec<_>>(), sorted);
                for (r, k) in sorted.iter().enumerate().step_by(37) {
                    assert_eq!(index.rank_of(k), Some(r));
                    assert_eq!(index.at(r), Some(k));
                    let window: Vec<Key> = index.range(r, 7).copied().collect();
                    assert_eq!(window, sorted[r..(r + 7).min(sorted.len())]);
                }
                assert!(index
                    .blocks
                    .iter()
                    .all(|b| !b.is_empty() && b.len() < MAX_BLOCK));
            }
        }
        assert_eq!(index.at(index.len()), None);
        assert_eq!(index.range(index.len(), 5).count(), 0);
    }

    #[test]
    fn builds_from_unsorted_keys_and_drains_to_empty() {
        let keys: Vec<Key> = (0..5000).rev().map(|i| key(i % 100, i as u32)).collect();
        let mut index = RankIndex::from_keys(keys.clone());
        assert_eq!(index.len(), 5000);
        assert_eq!(index.at(0), Some(&key(0, 0)));
        for k in &keys {
            assert!(index.remove(k));
        }
        assert!(index.is_empty());
        assert!(index.blocks.is_empty());
        assert!(index.insert(key(1, 1)));
        assert_eq!(index.rank_of(&key(1, 1)), Some(0));
    }
}
