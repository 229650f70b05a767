//! Social rules that keep time: per-player send budgets for direct messages.
//!
//! A WebSocket connection already has its own message budget, but a player can reach the same
//! operation from REST and from several sockets; [`SenderLimits`] gives each player one budget
//! per shard, whatever the entry point.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::session::RateLimit;

/// How long a sender's bucket is kept after its last use; after this long it would be full
/// again anyway, so forgetting it changes nothing.
const IDLE_FORGET: Duration = Duration::from_secs(2);

/// Per-player token buckets, bounded in number.
///
/// # Method kinds and call order
///
/// Call [`allow`](Self::allow) for each send with the sender and `now`; refuse the send when it
/// answers false. No deadline: buckets refill from the time between calls, and idle ones are
/// dropped when the table is full.
#[derive(Debug)]
pub struct SenderLimits {
    per_second: u32,
    max_senders: usize,
    buckets: HashMap<String, (RateLimit, Instant)>,
}

impl SenderLimits {
    /// `per_second` sends per player (0: unlimited), tracking at most `max_senders` players.
    pub fn new(per_second: u32, max_senders: usize) -> Self {
        SenderLimits {
            per_second,
            max_senders: max_senders.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one send from `sender`'s budget at `now`; false when it is spent. With the table
    /// full of active senders, a new sender is refused rather than growing it.
    pub fn allow(&mut self, sender: &str, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        if let Some((bucket, last)) = self.buckets.get_mut(sender) {
            *last = now;
            return bucket.allow(now);
        }
        if self.buckets.len() >= self.max_senders {
            self.buckets
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < IDLE_FORGET);
            if self.buckets.len() >= self.max_senders {
                return false;
            }
        }
        let mut bucket = RateLimit::new(now, self.per_second);
        let ok = bucket.allow(now);
        self.buckets.insert(sender.to_owned(), (bucket, now));
        ok
    }

    /// Senders tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no sender is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_gets_its_rate_and_refills_with_time() {
        let t0 = Instant::now();
        let mut l = SenderLimits::new(5, 100);
        let passed = (0..20).filter(|_| l.allow("a", t0)).count();
        assert_eq!(passed, 5);
        // Another sender has its own budget.
        assert!(l.allow("b", t0));
        // 200 ms later one more token.
        let t1 = t0 + Duration::from_millis(200);
        assert!(l.allow("a", t1));
        assert!(!l.allow("a", t1));
        // A full second refills the bucket, never above the rate.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| l.allow("a", t2)).count(), 5);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_senders() {
        let t0 = Instant::now();
        let mut l = SenderLimits::new(1, 3);
        for p in ["a", "b", "c"] {
            assert!(l.allow(p, t0));
        }
        // Full of active senders: a new one is refused, the table does not grow.
        assert!(!l.allow("d", t0 + Duration::from_millis(10)));
        assert_eq!(l.len(), 3);
        // Once they are idle, they make room.
        let later = t0 + IDLE_FORGET + Duration::from_millis(1);
        assert!(l.allow("d", later));
        assert_eq!(l.len(), 1);
        assert!(!l.is_empty());
    }

    #[test]
    fn zero_means_unlimited() {
        let t0 = Instant::now();
        let mut l = SenderLimits::new(0, 1);
        assert!((0..1000).all(|i| l.allow(&format!("p{i}"), t0)));
        assert!(l.is_empty());
    }
}
