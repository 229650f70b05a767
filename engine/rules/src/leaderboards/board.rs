//! One board: the entries of its current period, ranked.
//!
//! An entry is a player's score, sub-score (the tie-break), metadata and when it last changed.
//! Ranks follow the board's [`Order`] on the score, then on the sub-score, then whoever reached
//! that score first, so equal scores never swap places between two reads.
//!
//! Method kinds: `submit` changes an entry and marks it dirty; `top`, `rank`, `around` read;
//! `take_dirty` hands the changed entries to the persistence layer (write-behind); `restore`
//! loads persisted entries at start-up; `reset` ends the period and returns what it held.

use std::collections::HashMap;
use std::rc::Rc;

use super::index::{Key, RankIndex};
use super::schedule::Schedule;

/// Which scores rank first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Highest first (asobi's only order).
    #[default]
    Desc,
    /// Lowest first (race times).
    Asc,
}

/// How a submitted score combines with the entry already on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Operator {
    /// Replace it (asobi's behaviour).
    #[default]
    Set,
    /// Keep the better of the two, by the board's order (score, then sub-score).
    Best,
    /// Add to it.
    Incr,
    /// Subtract from it.
    Decr,
}

impl Order {
    /// `"desc"` or `"asc"`.
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "desc" | "descending" => Some(Order::Desc),
            "asc" | "ascending" => Some(Order::Asc),
            _ => None,
        }
    }

    /// Maps a score so that better is smaller (`!x` reverses the order of every `i64`).
    fn key(self, v: i64) -> i64 {
        match self {
            Order::Desc => !v,
            Order::Asc => v,
        }
    }
}

impl Operator {
    /// `"set"`, `"best"`, `"incr"` or `"decr"`.
    pub fn parse(s: &str) -> Option<Operator> {
        match s {
            "set" => Some(Operator::Set),
            "best" => Some(Operator::Best),
            "incr" => Some(Operator::Incr),
            "decr" => Some(Operator::Decr),
            _ => None,
        }
    }
}

/// How one board behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardConfig {
    /// Sort order.
    pub order: Order,
    /// Submit operator.
    pub operator: Operator,
    /// When the board resets.
    pub reset: Schedule,
}

impl Default for BoardConfig {
    fn default() -> Self {
        BoardConfig {
            order: Order::Desc,
            operator: Operator::Set,
            reset: Schedule::Never,
        }
    }
}

/// One player's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The player.
    pub player_id: Rc<str>,
    /// The score.
    pub score: i64,
    /// The tie-break.
    pub sub_score: i64,
    /// Opaque metadata (JSON text) the submitter attached.
    pub metadata: Option<Rc<str>>,
    /// When the entry last changed, unix milliseconds.
    pub updated_ms: i64,
    /// Submission order when the score last changed; breaks full ties.
    pub seq: u64,
}

/// An entry with its 1-based rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked<'a> {
    /// 1-based rank.
    pub rank: u64,
    /// The entry.
    pub entry: &'a Entry,
}

/// What a submit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The entry after the submit.
    pub entry: Entry,
    /// Its 1-based rank.
    pub rank: u64,
    /// False when the operator kept the old score (`best` with a worse score).
    pub changed: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Board {
    config: BoardConfig,
    index: RankIndex,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_player: HashMap<Rc<str>, u32>,
    dirty: Vec<u32>,
    dirty_mark: Vec<bool>,
    next_seq: u64,
    /// Start of the current period (unix ms); `i64::MIN` before the first reset.
    period_start: i64,
}

impl Board {
    /// An empty board for the period starting at `period_start`.
    pub fn new(config: BoardConfig, period_start: i64) -> Board {
        Board {
            config,
            period_start,
            ..Board::default()
        }
    }

    /// The board's settings.
    pub fn config(&self) -> &BoardConfig {
        &self.config
    }

    /// Changes the settings; entries keep their scores and are re-ranked if the order changed.
    pub fn reconfigure(&mut self, config: BoardConfig) {
        let reorder = config.order != self.config.order;
        self.config = config;
        if reorder {
            let keys =
                self.slots.iter().enumerate().filter_map(|(i, e)| {
                    e.as_ref().map(|e| key_of(self.config.order, e, i as u32))
                });
            self.index = RankIndex::from_keys(keys.collect());
        }
    }

    /// Start of the current period, unix ms (`i64::MIN` when the board never reset).
    pub fn period_start(&self) -> i64 {
        self.period_start
    }

    /// Entries on the board.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nobody has an entry.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes held by the index, slots and player map (an estimate for the benchmark).
    pub fn heap_bytes(&self) -> usize {
        let per_player: usize = self
            .slots
            .iter()
            .flatten()
            .map(|e| e.player_id.len() + 16 + e.metadata.as_ref().map_or(0, |m| m.len() + 16))
            .sum();
        self.index.heap_bytes()
            + self.slots.capacity() * std::mem::size_of::<Option<Entry>>()
            + self.by_player.capacity() * (std::mem::size_of::<(Rc<str>, u32)>() + 1)
            + self.dirty_mark.capacity()
            + self.dirty.capacity() * 4
            + per_player
    }

    /// Applies a submit at `now_ms` by the board's operator.
    pub fn submit(
        &mut self,
        player_id: &str,
        score: i64,
        sub_score: i64,
        metadata: Option<&str>,
        now_ms: i64,
    ) -> Submitted {
        let order = self.config.order;
        let slot = match self.by_player.get(player_id) {
            Some(&s) => s,
            None => {
                let id: Rc<str> = Rc::from(player_id);
                let entry = Entry {
                    player_id: id.clone(),
                    score,
                    sub_score,
                    metadata: metadata.map(Rc::from),
                    updated_ms: now_ms,
                    seq: self.bump_seq(),
                };
                let slot = self.put(entry);
                self.by_player.insert(id, slot);
                self.mark(slot);
                return self.submitted(slot, true);
            }
        };
        let seq = self.next_seq;
        let Some(entry) = self.slots[slot as usize].as_mut() else {
            unreachable!("a mapped slot holds an entry");
        };
        let (new_score, new_sub) = match self.config.operator {
            Operator::Set => (score, sub_score),
            Operator::Incr => (entry.score.saturating_add(score), sub_score),
            Operator::Decr => (entry.score.saturating_sub(score), sub_score),
            Operator::Best => {
                let new = (order.key(score), order.key(sub_score));
                let old = (order.key(entry.score), order.key(entry.sub_score));
                if new < old {
                    (score, sub_score)
                } else {
                    return self.submitted(slot, false);
                }
            }
        };
        let old_key = key_of(order, entry, slot);
        let score_changed = (new_score, new_sub) != (entry.score, entry.sub_score);
        entry.score = new_score;
        entry.sub_score = new_sub;
        entry.updated_ms = now_ms;
        if let Some(m) = metadata {
            entry.metadata = Some(Rc::from(m));
        }
        if score_changed {
            entry.seq = seq;
            self.next_seq += 1;
            let new_key = key_of(order, entry, slot);
            self.index.remove(&old_key);
            self.index.insert(new_key);
        }
        self.mark(slot);
        self.submitted(slot, true)
    }

    /// Loads a persisted entry (start-up); it is not marked dirty.
    pub fn restore(&mut self, entry: Entry) {
        if let Some(&slot) = self.by_player.get(&entry.player_id) {
            if let Some(old) = self.slots[slot as usize].take() {
                self.index.remove(&key_of(self.config.order, &old, slot));
            }
            self.free.push(slot);
            self.by_player.remove(&entry.player_id);
        }
        self.next_seq = self.next_seq.max(entry.seq + 1);
        let id = entry.player_id.clone();
        let slot = self.put(entry);
        self.by_player.insert(id, slot);
    }

    /// Loads many persisted entries at once: one sort instead of one insert each.
    pub fn restore_all(&mut self, entries: Vec<Entry>) {
        if !self.is_empty() {
            entries.into_iter().for_each(|e| self.restore(e));
            return;
        }
        let order = self.config.order;
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            if self.by_player.contains_key(&entry.player_id) {
                continue;
            }
            self.next_seq = self.next_seq.max(entry.seq + 1);
            let slot = self.slots.len() as u32;
            keys.push(key_of(order, &entry, slot));
            self.by_player.insert(entry.player_id.clone(), slot);
            self.slots.push(Some(entry));
            self.dirty_mark.push(false);
        }
        self.index = RankIndex::from_keys(keys);
    }

    /// Up to `n` best entries.
    pub fn top(&self, n: usize) -> Vec<Ranked<'_>> {
        self.window(0, n)
    }

    /// A player's 1-based rank.
    pub fn rank(&self, player_id: &str) -> Option<u64> {
        let slot = *self.by_player.get(player_id)?;
        let entry = self.slots[slot as usize].as_ref()?;
        let r = self
            .index
            .rank_of(&key_of(self.config.order, entry, slot))?;
        Some(r as u64 + 1)
    }

    /// A player's entry.
    pub fn entry(&self, player_id: &str) -> Option<&Entry> {
        let slot = *self.by_player.get(player_id)?;
        self.slots[slot as usize].as_ref()
    }

    /// The player and up to `range` entries on either side; empty when they have no entry.
    pub fn around(&self, player_id: &str, range: usize) -> Vec<Ranked<'_>> {
        let Some(rank) = self.rank(player_id) else {
            return Vec::new();
        };
        let me = rank as usize - 1;
        let from = me.saturating_sub(range);
        self.window(from, me - from + 1 + range)
    }

    fn window(&self, from: usize, n: usize) -> Vec<Ranked<'_>> {
        self.index
            .range(from, n)
            .enumerate()
            .filter_map(|(i, k)| {
                self.slots[k.slot as usize].as_ref().map(|entry| Ranked {
                    rank: (from + i) as u64 + 1,
                    entry,
                })
            })
            .collect()
    }

    /// The entries changed since the last call, current values; they count as flushed now.
    pub fn take_dirty(&mut self) -> Vec<Entry> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for slot in dirty {
            self.dirty_mark[slot as usize] = false;
            if let Some(e) = &self.slots[slot as usize] {
                out.push(e.clone());
            }
        }
        out
    }

    /// Marks entries dirty again (their write failed and must be retried).
    pub fn mark_dirty(&mut self, players: impl IntoIterator<Item = Rc<str>>) {
        for p in players {
            if let Some(&slot) = self.by_player.get(&p) {
                self.mark(slot);
            }
        }
    }

    /// True when some entry changed since the last [`Board::take_dirty`].
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The period that holds `now_ms`, when it is newer than the board's: the board must
    /// [`Board::reset`] to it.
    pub fn due_reset(&self, now_ms: i64) -> Option<i64> {
        self.config
            .reset
            .period_start(now_ms)
            .filter(|p| *p > self.period_start)
    }

    /// When the board next needs a look for a reset.
    pub fn next_reset(&self, now_ms: i64) -> Option<i64> {
        self.config.reset.next_reset(now_ms)
    }

    /// Ends the current period: returns its entries ranked (for the archive) and the period's
    /// start, and starts the new period `new_start` with no entries.
    pub fn reset(&mut self, new_start: i64) -> (i64, Vec<(u64, Entry)>) {
        let old_start = self.period_start;
        let ranked = self
            .index
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                self.slots[k.slot as usize]
                    .clone()
                    .map(|e| (i as u64 + 1, e))
            })
            .collect();
        *self = Board::new(self.config.clone(), new_start);
        (old_start, ranked)
    }

    fn bump_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn put(&mut self, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.dirty_mark.push(false);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key_of(self.config.order, &entry, slot));
        self.slots[slot as usize] = Some(entry);
        slot
    }

    fn mark(&mut self, slot: u32) {
        if !self.dirty_mark[slot as usize] {
            self.dirty_mark[slot as usize] = true;
            self.dirty.push(slot);
        }
    }

    fn submitted(&self, slot: u32, changed: bool) -> Submitted {
        let entry = self.slots[slot as usize]
            .clone()
            .unwrap_or_else(|| unreachable!("a submitted slot holds an entry"));
        let rank = self
            .index
            .rank_of(&key_of(self.config.order, &entry, slot))
            .map_or(0, |r| r as u64 + 1);
        Submitted {
            entry,
            rank,
            changed,
        }
    }
}

fn key_of(order: Order, e: &Entry, slot: u32) -> Key {
    Key {
        primary: order.key(e.score),
        secondary: order.key(e.sub_score),
        seq: e.seq,
        slot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(order: Order, operator: Operator) -> Board {
        Board::new(
            BoardConfig {
                order,
                operator,
                reset: Schedule::Never,
            },
            i64::MIN,
        )
    }

    fn ids(v: &[Ranked<'_>]) -> Vec<(u64, String, i64)> {
        v.iter()
            .map(|r| (r.rank, r.entry.player_id.to_string(), r.entry.score))
            .collect()
    }

    #[test]
    fn desc_set_ranks_highest_first_and_ties_by_sub_score_then_arrival() {
        let mut b = board(Order::Desc, Operator::Set);
        b.submit("a", 10, 0, None, 1);
        b.submit("b", 30, 0, None, 2);
        b.submit("c", 10, 5, None, 3);
        b.submit("d", 10, 0, None, 4);
        let top: Vec<_> = ids(&b.top(10))
            .into_iter()
            .map(|(r, p, _)| (r, p))
            .collect();
        assert_eq!(
            top,
            [
                (1, "b".into()),
                (2, "c".into()),
                (3, "a".into()),
                (4, "d".into())
            ]
        );
        // Set replaces, even with a worse score.
        let s = b.submit("b", 1, 0, Some("{\"k\":1}"), 5);
        assert_eq!((s.rank, s.changed, s.entry.score), (4, true, 1));
        assert_eq!(b.rank("b"), Some(4));
        assert_eq!(b.entry("b").unwrap().metadata.as_deref(), Some("{\"k\":1}"));
        assert_eq!(b.rank("zz"), None);
    }

    #[test]
    fn operators_best_incr_decr_and_ascending_order() {
        let mut b = board(Order::Asc, Operator::Best);
        b.submit("a", 50, 0, None, 1);
        assert!(
            !b.submit("a", 60, 0, None, 2).changed,
            "worse time kept out"
        );
        assert_eq!(b.submit("a", 40, 0, None, 3).entry.score, 40);
        b.submit("b", 45, 0, None, 4);
        assert_eq!(b.rank("a"), Some(1));

        let mut c = board(Order::Desc, Operator::Incr);
        c.submit("a", 5, 0, None, 1);
        c.submit("a", 7, 0, None, 2);
        c.submit("b", 10, 0, None, 3);
        assert_eq!(c.entry("a").unwrap().score, 12);
        assert_eq!(c.rank("a"), Some(1));
        let mut d = board(Order::Desc, Operator::Decr);
        d.submit("a", 5, 0, None, 1);
        assert_eq!(d.submit("a", 7, 0, None, 2).entry.score, -2);
        assert_eq!(
            d.submit("a", i64::MAX, 0, None, 3).entry.score,
            i64::MIN,
            "saturates"
        );
    }

    #[test]
    fn around_windows_clip_at_both_ends() {
        let mut b = board(Order::Desc, Operator::Set);
        for i in 0..10 {
            b.submit(&format!("p{i}"), i, 0, None, i);
        }
        // p9 is first, p0 last.
        let w = ids(&b.around("p5", 2));
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
        assert_eq!(w[2].1, "p5");
        assert_eq!(ids(&b.around("p9", 2)).len(), 3);
        assert_eq!(ids(&b.around("p0", 3)).len(), 4);
        assert!(b.around("nobody", 3).is_empty());
    }

    #[test]
    fn dirty_entries_are_handed_out_once_and_reset_archives_the_period() {
        let mut b = board(Order::Desc, Operator::Set);
        b.submit("a", 1, 0, None, 1);
        b.submit("b", 2, 0, None, 1);
        b.submit("a", 3, 0, None, 2);
        let d = b.take_dirty();
        assert_eq!(d.len(), 2);
        assert!(!b.has_dirty());
        b.mark_dirty([Rc::from("a")]);
        assert_eq!(b.take_dirty()[0].score, 3);
        let (start, archived) = b.reset(100);
        assert_eq!(start, i64::MIN);
        assert_eq!(
            archived
                .iter()
                .map(|(r, e)| (*r, &*e.player_id))
                .collect::<Vec<_>>(),
            [(1, "a"), (2, "b")]
        );
        assert!(b.is_empty());
        assert_eq!(b.period_start(), 100);
    }

    #[test]
    fn restore_rebuilds_the_same_ranking_and_keeps_tie_order() {
        let mut b = board(Order::Desc, Operator::Set);
        for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
            b.submit(p, 10 - (i as i64 % 2), 0, None, i as i64);
        }
        let before = ids(&b.top(10));
        let entries: Vec<Entry> = b.top(10).iter().rev().map(|r| r.entry.clone()).collect();
        let mut restored = board(Order::Desc, Operator::Set);
        restored.restore_all(entries);
        assert_eq!(ids(&restored.top(10)), before);
        // New submits after a restore rank after the restored ties.
        restored.submit("e", 10, 0, None, 9);
        assert_eq!(restored.rank("e"), Some(3));
    }
}
