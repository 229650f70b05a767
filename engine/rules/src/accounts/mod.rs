//! Request rate limits for the account and API routes: a sliding-window counter per key
//! (a source address or a player) in bounded memory.
//!
//! [`RateTable`] is asobi's `sliding_window` (seki): the count of the current window plus the
//! previous window's count weighted by how much of it still overlaps the last `window`. It takes
//! `now` on every call and needs no timer: windows roll over when a call finds them ended.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Distinct keys one table tracks per window. Each entry costs well under 100 bytes, so a
/// table stays under ~13 MB at worst (two windows); 65,536 distinct callers of one route group
/// within one window is far above a real login wave. Keys beyond it share one overflow bucket
/// (see [`OVERFLOW_FACTOR`]), so a flood from more addresses than that is still limited as a
/// whole instead of growing memory or passing uncounted.
pub const MAX_TRACKED_KEYS: usize = 65_536;

/// The overflow bucket allows this many times the per-key limit: it stands for many callers.
pub const OVERFLOW_FACTOR: u32 = 64;

/// A limit: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per window; 0 disables the limit.
    pub limit: u32,
    /// The window length.
    pub window: Duration,
}

impl Rate {
    /// `limit` per `window_ms` milliseconds.
    pub const fn per_ms(limit: u32, window_ms: u64) -> Rate {
        Rate {
            limit,
            window: Duration::from_millis(window_ms),
        }
    }
}

/// What [`RateTable::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted and allowed.
    Allow {
        /// Requests left in the window after this one.
        remaining: u32,
        /// Time until the current window ends.
        reset: Duration,
    },
    /// Over the limit (not counted).
    Deny {
        /// How long until a request can pass again.
        retry_after: Duration,
    },
}

/// Sliding-window counts per key, bounded to [`MAX_TRACKED_KEYS`] keys per window.
///
/// **Input and output in one call**: [`check`](Self::check) counts a request for `key` at `now`
/// and answers; nothing else drives it.
#[derive(Debug, Clone)]
pub struct RateTable<K> {
    rate: Rate,
    max_keys: usize,
    start: Option<Instant>,
    current: HashMap<K, u32>,
    previous: HashMap<K, u32>,
    overflow: [u32; 2],
    overflowed: u64,
}

impl<K: Hash + Eq + Clone> RateTable<K> {
    /// A table for `rate`, tracking at most [`MAX_TRACKED_KEYS`] keys per window.
    pub fn new(rate: Rate) -> Self {
        Self::with_capacity(rate, MAX_TRACKED_KEYS)
    }

    /// As [`new`](Self::new) with another key cap.
    pub fn with_capacity(rate: Rate, max_keys: usize) -> Self {
        RateTable {
            rate,
            max_keys,
            start: None,
            current: HashMap::new(),
            previous: HashMap::new(),
            overflow: [0, 0],
            overflowed: 0,
        }
    }

    /// The limit this table applies.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    fn roll(&mut self, now: Instant) -> Duration {
        let window = self.rate.window.max(Duration::from_millis(1));
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < window {
            return elapsed;
        }
        if elapsed < 2 * window {
            // One window ended: it becomes the previous one. Swapping keeps both maps'
            // allocations, which the key cap bounds.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.overflow = [0, self.overflow[0]];
            self.start = Some(start + window);
        } else {
            self.previous.clear();
            self.overflow = [0, 0];
            self.start = Some(now);
        }
        self.current.clear();
        now.saturating_duration_since(self.start.unwrap_or(now))
    }

    /// Counts a request for `key` at `now` if it is within the limit.
    pub fn check(&mut self, now: Instant, key: &K) -> Decision {
        if self.rate.limit == 0 {
            return Decision::Allow {
                remaining: u32::MAX,
                reset: Duration::ZERO,
            };
        }
        let elapsed = self.roll(now);
        let window = self.rate.window.max(Duration::from_millis(1));
        let reset = window.saturating_sub(elapsed);
        let tracked = self.current.contains_key(key) || self.current.len() < self.max_keys;
        let (cur, prev, limit) = if tracked {
            (
                self.current.get(key).copied().unwrap_or(0),
                self.previous.get(key).copied().unwrap_or(0),
                self.rate.limit,
            )
        } else {
            self.overflowed += 1;
            (
                self.overflow[0],
                self.overflow[1],
                self.rate.limit.saturating_mul(OVERFLOW_FACTOR),
            )
        };
        // The previous window still overlaps the last `window` by (window - elapsed).
        let weight = reset.as_secs_f64() / window.as_secs_f64();
        let estimate = f64::from(prev) * weight + f64::from(cur);
        if estimate + 1.0 > f64::from(limit) {
            // If this window alone is full, wait for it to end; otherwise the previous
            // window's share shrinks steadily and the wait is the time for one slot to free.
            let retry_after = if cur >= limit || prev == 0 {
                reset
            } else {
                let excess = estimate + 1.0 - f64::from(limit);
                let per_request = window.as_secs_f64() / f64::from(prev);
                Duration::from_secs_f64((excess * per_request).min(reset.as_secs_f64()))
            };
            return Decision::Deny {
                retry_after: retry_after.max(Duration::from_millis(1)),
            };
        }
        if tracked {
            *self.current.entry(key.clone()).or_insert(0) += 1;
        } else {
            self.overflow[0] += 1;
        }
        Decision::Allow {
            remaining: (f64::from(limit) - estimate - 1.0).max(0.0) as u32,
            reset,
        }
    }

    /// Keys held now, both windows (the memory the table uses is proportional to it).
    pub fn tracked(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Requests counted in the shared overflow bucket since creation (a flood indicator).
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(d: Decision) -> bool {
        matches!(d, Decision::Allow { .. })
    }

    #[test]
    fn a_key_gets_its_limit_per_window() {
        let t0 = Instant::now();
        let mut t = RateTable::new(Rate::per_ms(5, 1000));
        for i in 0..5 {
            match t.check(t0, &"a") {
                Decision::Allow { remaining, .. } => assert_eq!(remaining, 4 - i),
                d => panic!("{d:?}"),
            }
        }
        match t.check(t0 + Duration::from_millis(200), &"a") {
            Decision::Deny { retry_after } => assert_eq!(retry_after, Duration::from_millis(800)),
            d => panic!("{d:?}"),
        }
        assert!(allowed(t.check(t0, &"b")), "another key has its own count");
    }

    #[test]
    fn the_previous_window_still_counts_in_part() {
        let t0 = Instant::now();
        let mut t = RateTable::new(Rate::per_ms(10, 1000));
        for _ in 0..10 {
            assert!(allowed(t.check(t0, &"a")));
        }
        // Just after the window rolled, nearly all of the last window still overlaps.
        assert!(!allowed(t.check(t0 + Duration::from_millis(1050), &"a")));
        // Half way through the next window half of it has slid out: five slots are free.
        let mid = t0 + Duration::from_millis(1500);
        let passed = (0..10).filter(|_| allowed(t.check(mid, &"a"))).count();
        assert_eq!(passed, 5);
        // Two windows of silence forget everything.
        assert!(allowed(t.check(t0 + Duration::from_secs(5), &"a")));
    }

    #[test]
    fn a_hundred_thousand_sources_stay_bounded_and_still_limited() {
        let t0 = Instant::now();
        let cap = 1_000;
        let mut t = RateTable::with_capacity(Rate::per_ms(3, 1000), cap);
        let mut passed = 0u64;
        for i in 0..100_000u32 {
            if allowed(t.check(t0, &i)) {
                passed += 1;
            }
        }
        assert!(t.tracked() <= 2 * cap);
        assert_eq!(t.current.len(), cap);
        // The first `cap` sources each passed once; the rest shared one bucket.
        assert_eq!(passed, cap as u64 + u64::from(3 * OVERFLOW_FACTOR));
        // The next windows reuse the same bounded tables.
        for w in 1..5u64 {
            for i in 0..100_000u32 {
                t.check(t0 + Duration::from_secs(w), &(i + 1_000_000 * w as u32));
            }
            assert!(t.tracked() <= 2 * cap);
            assert!(t.current.capacity() <= 2 * cap.next_power_of_two());
        }
    }

    #[test]
    fn zero_disables() {
        let mut t = RateTable::new(Rate::per_ms(0, 1000));
        assert!((0..1000).all(|_| allowed(t.check(Instant::now(), &1))));
        assert_eq!(t.tracked(), 0);
    }
}
