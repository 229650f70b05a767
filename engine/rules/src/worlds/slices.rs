//! How one world tick's zones are spread over the tick period.
//!
//! A world with hundreds of live zones would otherwise tick them all in one pass at the
//! tick's deadline, so the zones at the end of the pass start late by the length of the whole
//! pass, and nothing else on the shard (sessions, other worlds) runs until it ends. Instead
//! the zones of one tick are cut into slices of at most [`SLICE_ZONES`], and slice `i` is due
//! `i / slices` of the period after the tick: each zone starts on time against its own due
//! time while the tick's work fits in the period, and the runtime yields to the shard between
//! two slices. Small worlds (up to [`SLICE_ZONES`] zones) keep one slice: their tick is one
//! pass at the deadline, as before.

use std::ops::Range;
use std::time::Duration;

/// Zones ticked in one slice. A world of up to 50 zones (a 7 × 7 grid) stays one pass at the
/// deadline with no extra timer wake-ups; a 20 × 20 grid is 8 slices, 6.25 ms apart at a 50 ms
/// period, each short enough that its last zone starts well within the 10 ms lateness the
/// world benchmark allows while the whole tick fits in the period.
pub const SLICE_ZONES: usize = 50;

/// Shortest gap between two slices' due times: below it the timer's wake-up cost and jitter
/// outweigh spreading (a 50 ms period holds at most 50 slices).
pub const MIN_SLICE_GAP: Duration = Duration::from_millis(1);

/// One tick's zones cut into slices, each with its offset from the tick's due time.
///
/// Zones are addressed by their index in the tick's zone list (the runtime takes the list,
/// in grid order, when the tick begins); slice `i` covers [`range`](Self::range)`(i)` and is
/// due [`offset`](Self::offset)`(i)` after the tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlicePlan {
    zones: usize,
    slices: usize,
    period: Duration,
}

impl SlicePlan {
    /// `zones` zones over `period`: as many slices as [`SLICE_ZONES`] asks, no closer together
    /// than [`MIN_SLICE_GAP`], at least one.
    pub fn new(zones: usize, period: Duration) -> Self {
        let wanted = zones.div_ceil(SLICE_ZONES).max(1);
        let room = usize::try_from(period.as_nanos() / MIN_SLICE_GAP.as_nanos())
            .unwrap_or(usize::MAX)
            .max(1);
        SlicePlan {
            zones,
            slices: wanted.min(room),
            period,
        }
    }

    /// How many slices.
    pub fn slices(&self) -> usize {
        self.slices
    }

    /// The zone indices slice `i` ticks (empty past the last slice). Slices differ in size by
    /// at most one zone.
    pub fn range(&self, i: usize) -> Range<usize> {
        if i >= self.slices {
            return self.zones..self.zones;
        }
        (i * self.zones / self.slices)..((i + 1) * self.zones / self.slices)
    }

    /// Slice `i`'s due time after the tick's: `i / slices` of the period.
    pub fn offset(&self, i: usize) -> Duration {
        let i = i.min(self.slices) as u128;
        let nanos = self.period.as_nanos() * i / self.slices as u128;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(50);

    #[test]
    fn a_small_world_is_one_pass_at_the_deadline() {
        for zones in [0, 1, 36, SLICE_ZONES] {
            let plan = SlicePlan::new(zones, P);
            assert_eq!(plan.slices(), 1, "{zones} zones");
            assert_eq!(plan.range(0), 0..zones);
            assert_eq!(plan.offset(0), Duration::ZERO);
            assert_eq!(plan.range(1), zones..zones);
        }
    }

    #[test]
    fn slices_cover_every_zone_once_spread_over_the_period() {
        for zones in [51, 100, 400, 401, 1000, 4096] {
            let plan = SlicePlan::new(zones, P);
            let mut next = 0;
            for i in 0..plan.slices() {
                let r = plan.range(i);
                assert_eq!(r.start, next, "{zones} zones, slice {i}");
                assert!(
                    r.len() <= SLICE_ZONES || plan.slices() == 50,
                    "{zones}: {r:?}"
                );
                next = r.end;
                assert!(plan.offset(i) < P);
                if i > 0 {
                    assert!(plan.offset(i) - plan.offset(i - 1) >= MIN_SLICE_GAP);
                }
            }
            assert_eq!(next, zones);
            assert_eq!(plan.range(plan.slices()), zones..zones);
        }
        assert_eq!(SlicePlan::new(400, P).slices(), 8);
        assert_eq!(SlicePlan::new(400, P).offset(4), P / 2);
    }

    #[test]
    fn slices_are_never_closer_than_the_minimum_gap() {
        let plan = SlicePlan::new(4096, Duration::from_millis(5));
        assert_eq!(plan.slices(), 5);
        let plan = SlicePlan::new(4096, Duration::from_micros(500));
        assert_eq!(plan.slices(), 1);
        assert_eq!(plan.range(0), 0..4096);
    }
}
