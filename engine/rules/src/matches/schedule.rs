//! A match's tick schedule: drift-free deadlines, late ticks skipped rather than bunched.

use std::time::{Duration, Instant};

/// Shortest tick period accepted; a mode declaring `tick_rate_ms = 0` ticks at this rate
/// rather than spinning (the engine has always clamped to 1 ms).
pub const MIN_TICK_PERIOD: Duration = Duration::from_millis(1);

/// One tick that [`TickSchedule::poll`] says is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The scheduled time of this tick (`start + n × period`).
    pub scheduled: Instant,
    /// How late `now` was against `scheduled`.
    pub late: Duration,
    /// Whole periods skipped because this tick was more than one period late.
    pub skipped: u32,
}

/// Tick deadlines at `start + n × period`, n = 1, 2, …
///
/// # Method kinds and call order
///
/// - **Next deadline**: [`next_deadline`](Self::next_deadline), when the next tick is due.
/// - **Timer input**: [`poll`](Self::poll) when the timer fires: `None` if woken early, else the
///   [`Tick`] to run. A slow tick delays the next one but never shifts the schedule; a wake-up
///   more than one period late skips the missed ticks instead of running them back to back.
/// - **Hot reload**: [`set_period`](Self::set_period) restarts the schedule from `now`.
#[derive(Debug, Clone)]
pub struct TickSchedule {
    start: Instant,
    period: Duration,
    /// Index of the next tick.
    n: u32,
}

impl TickSchedule {
    /// A schedule whose first tick is one `period` after `start`.
    pub fn new(start: Instant, period: Duration) -> Self {
        Self {
            start,
            period: period.max(MIN_TICK_PERIOD),
            n: 1,
        }
    }

    /// A schedule like [`new`](Self::new) shifted by a fraction of the period picked from `seq`
    /// (a counter: the fractional parts of `seq × φ⁻¹` fall evenly over the period for any run
    /// of consecutive values). Matches that start in the same instant — a matchmaker wave —
    /// then tick spread over the period instead of all at once, so one shard's tick work comes
    /// in small pieces and no match waits behind hundreds of others. The first tick comes at
    /// most one period later than with [`new`](Self::new); the period is unchanged.
    pub fn spread(start: Instant, period: Duration, seq: u64) -> Self {
        let period = period.max(MIN_TICK_PERIOD);
        // The top 32 bits of seq × 2^64/φ: frac(seq/φ) in units of 2^-32.
        let frac = u128::from(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32);
        let nanos = (period.as_nanos() * frac) >> 32;
        let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Self::new(start.checked_add(offset).unwrap_or(start), period)
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.n)
    }

    /// The tick due at `now`, if any, and advances the schedule past it.
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        let scheduled = self.next_deadline();
        if now < scheduled {
            return None;
        }
        let late = now.saturating_duration_since(scheduled);
        let skipped = if late > self.period {
            u32::try_from(late.as_nanos() / self.period.as_nanos()).unwrap_or(u32::MAX)
        } else {
            0
        };
        self.n = self.n.saturating_add(skipped).saturating_add(1);
        Some(Tick {
            scheduled,
            late,
            skipped,
        })
    }

    /// Changes the period (a reloaded mode changed `tick_rate_ms`); the next tick is one new
    /// period after `now`.
    pub fn set_period(&mut self, now: Instant, period: Duration) {
        *self = Self::new(now, period);
    }

    fn deadline(&self, n: u32) -> Instant {
        self.period
            .checked_mul(n)
            .and_then(|offset| self.start.checked_add(offset))
            // Past ~49 days of 1 ms ticks the schedule saturates far in the future.
            .or_else(|| {
                self.start
                    .checked_add(Duration::from_secs(u64::from(u32::MAX)))
            })
            .unwrap_or(self.start)
    }
}
