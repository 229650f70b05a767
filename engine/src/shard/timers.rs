//! One timer queue per shard, driving every deadline on it: match ticks, reconnection grace,
//! matchmaker ticks, waits for answers. One task sleeps until the earliest deadline instead of a
//! task per match, and a test drives the same queue on a virtual clock.
//!
//! Timers are never cancelled in place: the owner of a key ignores a timer that no longer
//! matches its state (a key carries a generation where that matters). That keeps arming O(log n)
//! and cancelling free; stale entries are popped once and dropped.

use std::cell::Cell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Instant;

struct Entry<K> {
    at: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Deadlines in order; ties fire in the order they were armed.
pub(crate) struct Timers<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    seq: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<K> Timers<K> {
    /// Arms a timer; returns true when it became the earliest (the driver must re-arm its sleep).
    pub(crate) fn arm(&mut self, at: Instant, key: K) -> bool {
        let earliest = self.next_deadline().is_none_or(|n| at < n);
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            key,
        }));
        earliest
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes one timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| e.key)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Wakes the timer driver when a new earliest deadline is armed.
#[derive(Default)]
pub(crate) struct Poke {
    poked: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Poke {
    pub(crate) fn poke(&self) {
        self.poked.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Resolves at the next poke (or at once if one happened since the last wait).
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.poked.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_then_arming_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert!(t.arm(t0 + Duration::from_millis(20), "b"));
        assert!(t.arm(t0 + Duration::from_millis(10), "a"));
        assert!(!t.arm(t0 + Duration::from_millis(20), "c"));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(5)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_millis(30)), Some("a"));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(30)), Some("b"));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(30)), Some("c"));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(30)), None);
        assert_eq!(t.len(), 0);
    }
}
