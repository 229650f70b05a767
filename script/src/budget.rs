//! Budgets on every call into script code, and the meter that enforces them.
//!
//! A count hook runs every [`Meter::hook_interval`] VM instructions. It charges the
//! instructions and checks the wall clock. Once a budget is spent the hook asks Lua to
//! *yield*: callbacks run inside a coroutine, so the yield hands control back to Rust, which
//! sees an unfinished coroutine and abandons it. A hook *error* would be caught by a `pcall`
//! in the script; a yield is not. Where Lua cannot yield (inside a C function such as
//! `table.sort` calling a Lua comparator) the next hook call raises an error instead, and the
//! sandbox's `pcall`/`xpcall` re-raise any error caught while the meter is spent, so no script
//! can swallow the abort.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::BudgetKind;

/// Limits applied to every callback of one match VM.
///
/// The defaults are sized for a shard that ticks many matches at 10 Hz:
///
/// * `instructions` = 10 M for a callback allowed `wall` (50 ms): Lua 5.4 runs roughly
///   200–400 M simple VM instructions per second on a current server core, so the count trips
///   about where the wall clock does, but deterministically, independent of machine load. A
///   callback with a longer allowance ([`CallbackLimits`]) gets instructions in proportion
///   (a 500 ms `tick`: 100 M), as asobi scales its reduction budget with each callback's
///   timeout. A realistic 16-player tick is a few thousand instructions.
/// * `wall` = 50 ms: the running time of `handle_input` (asobi bounds it by work only; this
///   is the backstop for time spent in C library functions), RPC handlers and bot `think`.
/// * `limits`: asobi's per-callback timeouts (`tick` 500 ms, `join`/`leave` 200 ms,
///   `get_state` 100 ms, …). These count *running* time: a callback waiting for a service's
///   answer, or for its next time slice, is not running.
/// * `slice` = 5 ms: a callback that may suspend and runs longer than this yields to the
///   shard, which resumes it after the other work due, so a 200 ms `tick` delays only its own
///   match.
/// * `service_wait` = 5 s: how long one `game.*` service call may wait for its answer
///   (asobi's default call timeout) before the callback is abandoned.
/// * `memory_bytes` = 64 MiB per VM: far above any match state, small enough that a few
///   hundred matches per core cannot exhaust a host.
/// * `max_consecutive_failures`, `max_consecutive_overruns`, `max_overruns_in_window`: off
///   (`u32::MAX`), as in asobi, where a callback that fails or overruns costs its own call
///   and never the match: the state stays what it was, the failure is logged (rate-limited),
///   and the next tick runs. Time slicing keeps such a match from delaying its neighbours.
///   An operator may turn the stop on (`ASOBI_LUA_STOP_AFTER_FAILURES`,
///   `ASOBI_LUA_STOP_AFTER_OVERRUNS`): then a VM that fails that many times in a row is
///   marked failed and its match finishes with an error result. `overrun_window` = 10 s is
///   the window `max_overruns_in_window` counts over.
/// * `log_per_second` = 30 lines per match (asobi's figure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// VM instructions a callback allowed [`Budgets::wall`] may execute; callbacks with other
    /// allowances get instructions in proportion.
    pub instructions: u64,
    /// Running time of `handle_input`, RPC handlers and bot `think`, and the unit the
    /// instruction budget is given for.
    pub wall: Duration,
    /// Running time of each of the other callbacks (asobi's per-callback timeouts).
    pub limits: CallbackLimits,
    /// Running time after which a callback that may suspend yields to the shard (time
    /// slicing); zero disables slicing.
    pub slice: Duration,
    /// How long one `game.*` service call may wait for its answer.
    pub service_wait: Duration,
    /// Memory limit of the whole VM, in bytes.
    pub memory_bytes: usize,
    /// Consecutive failures (error or overrun) of the same callback after which the VM is
    /// marked failed. Errors raised by `handle_input` do not count: they are usually caused by
    /// one client's input, and must not let one player end the match for everyone.
    pub max_consecutive_failures: u32,
    /// Consecutive budget overruns (any callback) after which the VM is marked failed.
    pub max_consecutive_overruns: u32,
    /// Overruns (any callback, successes in between or not) a VM may have within
    /// [`Budgets::overrun_window`]; one more marks it failed.
    pub max_overruns_in_window: u32,
    /// The sliding window over which [`Budgets::max_overruns_in_window`] is counted.
    pub overrun_window: Duration,
    /// `game.log` lines per second per match; over it `game.log` returns `false`.
    pub log_per_second: u32,
    /// Bytes of messages (`game.broadcast`, `game.send`) one callback may queue; past it the
    /// call returns `{error = "outbox_full"}`.
    pub outbox_bytes: usize,
    /// Largest encoded `get_state` result, in bytes.
    pub max_state_bytes: usize,
}

/// Budget multiplier for the one-off calls outside a match (loading a bot or RPC chunk): a
/// chunk that builds tables legitimately costs more than one call.
pub const SETUP_FACTOR: u32 = 4;

/// asobi's running-time limit of each match callback (its `*_TIMEOUT` values). `handle_input`
/// is not here: asobi bounds it by work only, and here it gets [`Budgets::wall`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackLimits {
    /// `init`, `phases` and `on_reload`; running the chunk gets twice this.
    pub init: Duration,
    /// `tick`.
    pub tick: Duration,
    /// `join` and `leave`.
    pub join_leave: Duration,
    /// `get_state`, per call.
    pub get_state: Duration,
    /// `vote_requested`, `vote_resolved`, `on_phase_started`, `on_phase_ended`.
    pub hooks: Duration,
}

impl Default for CallbackLimits {
    fn default() -> Self {
        Self {
            init: Duration::from_millis(1000),
            tick: Duration::from_millis(500),
            join_leave: Duration::from_millis(200),
            get_state: Duration::from_millis(100),
            hooks: Duration::from_millis(200),
        }
    }
}

impl CallbackLimits {
    /// Every limit set to `wall` (`ASOBI_LUA_MAX_CALL_MS` sets them all).
    pub fn all(wall: Duration) -> Self {
        Self {
            init: wall,
            tick: wall,
            join_leave: wall,
            get_state: wall,
            hooks: wall,
        }
    }
}

/// What one call may spend: running time and VM instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allowance {
    pub(crate) wall: Duration,
    pub(crate) instructions: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            instructions: 10_000_000,
            wall: Duration::from_millis(50),
            limits: CallbackLimits::default(),
            slice: Duration::from_millis(5),
            service_wait: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            max_consecutive_failures: u32::MAX,
            max_consecutive_overruns: u32::MAX,
            max_overruns_in_window: u32::MAX,
            overrun_window: Duration::from_secs(10),
            log_per_second: 30,
            outbox_bytes: 4 * 1024 * 1024,
            max_state_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Budgets {
    /// The interval of the count hook: frequent enough to bound a callback tightly, rare
    /// enough that the hook costs well under 1 % of execution.
    pub(crate) fn hook_interval(&self) -> u32 {
        let per_hundredth = self.instructions / 100;
        per_hundredth.clamp(100, 10_000) as u32
    }

    /// The allowance of a call that may run for `wall`: instructions in proportion to
    /// [`Budgets::instructions`] per [`Budgets::wall`].
    pub(crate) fn allowance(&self, wall: Duration) -> Allowance {
        let unit = self.wall.as_micros().max(1);
        let scaled = u128::from(self.instructions).saturating_mul(wall.as_micros()) / unit;
        Allowance {
            wall,
            instructions: u64::try_from(scaled).unwrap_or(u64::MAX),
        }
    }

    /// `factor` times the base allowance.
    pub(crate) fn scaled(&self, factor: u32) -> Allowance {
        Allowance {
            wall: self.wall * factor,
            instructions: self.instructions.saturating_mul(u64::from(factor)),
        }
    }
}

/// The overruns of one VM within a sliding window. Sans-IO: the caller passes `now`.
#[derive(Debug, Default)]
pub(crate) struct OverrunWindow {
    /// When each overrun still inside the window happened, oldest first; never longer than
    /// the limit plus one, since one more than the limit already fails the VM.
    times: VecDeque<Instant>,
}

impl OverrunWindow {
    /// Records an overrun at `now`; `true` when more than `max` overruns fall within the
    /// `window` ending at `now`.
    pub(crate) fn record(&mut self, now: Instant, window: Duration, max: u32) -> bool {
        if max == u32::MAX {
            // Off: nothing to count.
            return false;
        }
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) >= window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        while self.times.len() > limit.saturating_add(1) {
            self.times.pop_front();
        }
        self.times.len() > limit
    }
}

/// Per-VM budget accounting shared between the hook and the call site.
///
/// A call's time is counted in *segments*: it runs from [`Meter::arm`] (or
/// [`Meter::resume`]) until it completes or suspends ([`Meter::pause`]). Only running time
/// counts against the allowance; a suspended call waits for free.
#[derive(Debug)]
pub(crate) struct Meter {
    interval: u32,
    remaining: Cell<i64>,
    /// Running time the current call may take.
    limit: Cell<Duration>,
    /// Running time of the call's earlier segments.
    used: Cell<Duration>,
    /// When the current segment began.
    segment_start: Cell<Instant>,
    /// The time slice, zero for none.
    slice: Duration,
    /// Whether the current call may be time-sliced.
    sliceable: Cell<bool>,
    /// When the current segment's slice ends (only when sliceable).
    slice_end: Cell<Option<Instant>>,
    /// The hook asked the call to yield because its slice ended.
    sliced: Cell<bool>,
    spent: Cell<Option<BudgetKind>>,
    yield_requested: Cell<bool>,
}

/// What the hook should do after charging an interval.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HookVerdict {
    Continue,
    Yield,
    Raise,
}

impl Meter {
    pub(crate) fn new(budgets: &Budgets) -> Self {
        let meter = Self {
            interval: budgets.hook_interval(),
            remaining: Cell::new(0),
            limit: Cell::new(budgets.wall),
            used: Cell::new(Duration::ZERO),
            segment_start: Cell::new(Instant::now()),
            slice: budgets.slice,
            sliceable: Cell::new(false),
            slice_end: Cell::new(None),
            sliced: Cell::new(false),
            spent: Cell::new(None),
            yield_requested: Cell::new(false),
        };
        meter.arm(budgets.scaled(1), false);
        meter
    }

    pub(crate) fn hook_interval(&self) -> u32 {
        self.interval
    }

    /// Starts a fresh allowance for one call; `sliceable` lets the hook yield it when its
    /// slice ends.
    pub(crate) fn arm(&self, allowance: Allowance, sliceable: bool) {
        self.remaining
            .set(i64::try_from(allowance.instructions).unwrap_or(i64::MAX));
        self.limit.set(allowance.wall);
        self.used.set(Duration::ZERO);
        self.spent.set(None);
        self.yield_requested.set(false);
        self.sliceable.set(sliceable && !self.slice.is_zero());
        self.resume();
    }

    /// The call stopped running (it completed, or suspended on a service call or at the end
    /// of its slice): its segment's time is added to what it used.
    pub(crate) fn pause(&self) {
        let segment = self.segment_start.get().elapsed();
        self.used.set(self.used.get().saturating_add(segment));
        self.slice_end.set(None);
    }

    /// A suspended call runs again: a new segment (and slice) begins now.
    pub(crate) fn resume(&self) {
        let now = Instant::now();
        self.segment_start.set(now);
        self.sliced.set(false);
        self.slice_end
            .set(self.sliceable.get().then(|| now + self.slice));
    }

    /// The budget that ran out during the current call, if any.
    pub(crate) fn spent(&self) -> Option<BudgetKind> {
        self.spent.get()
    }

    /// Whether the hook yielded the call because its slice ended (and nothing else).
    pub(crate) fn sliced(&self) -> bool {
        self.sliced.get()
    }

    /// Charges `steps` of work done in Rust or C on the script's behalf (pattern matching,
    /// copying) as instructions, and checks the running time. `false` once the budget is
    /// spent: the caller must stop and raise, and the next hook call yields.
    pub(crate) fn charge(&self, steps: u64) -> bool {
        if self.spent.get().is_some() {
            return false;
        }
        let steps = i64::try_from(steps).unwrap_or(i64::MAX);
        let left = self.remaining.get().saturating_sub(steps);
        self.remaining.set(left);
        if left < 0 {
            self.spent.set(Some(BudgetKind::Instructions));
        } else if self.past_deadline() {
            self.spent.set(Some(BudgetKind::WallTime));
        }
        self.spent.get().is_none()
    }

    /// When the current segment would exhaust the call's running time.
    pub(crate) fn deadline(&self) -> Instant {
        let left = self.limit.get().saturating_sub(self.used.get());
        self.segment_start.get() + left
    }

    /// Whether the current call has used up its running time. Checked after a call returns
    /// too: time spent inside one long C call never reaches the hook.
    pub(crate) fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline()
    }

    /// Called by the count hook every `interval` instructions.
    pub(crate) fn on_hook(&self) -> HookVerdict {
        let now = Instant::now();
        if self.spent.get().is_none() {
            let left = self.remaining.get() - i64::from(self.interval);
            self.remaining.set(left);
            if left < 0 {
                self.spent.set(Some(BudgetKind::Instructions));
            } else if now >= self.deadline() {
                self.spent.set(Some(BudgetKind::WallTime));
            }
        }
        if self.spent.get().is_none() {
            // The slice ended: yield to the shard. Where Lua cannot yield (inside a C
            // function), the yield is skipped and the next hook asks again.
            if self.slice_end.get().is_some_and(|end| now >= end) {
                self.sliced.set(true);
                return HookVerdict::Yield;
            }
            return HookVerdict::Continue;
        }
        // Had the previous yield happened, Rust would have abandoned the coroutine and this
        // hook would not run again for this call: we are somewhere Lua cannot yield.
        if self.yield_requested.replace(true) {
            HookVerdict::Raise
        } else {
            HookVerdict::Yield
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_instructions_then_yields_then_raises() {
        let budgets = Budgets {
            instructions: 30_000,
            ..Budgets::default()
        };
        let meter = Meter::new(&budgets);
        assert_eq!(meter.hook_interval(), 300);
        for _ in 0..100 {
            assert_eq!(meter.on_hook(), HookVerdict::Continue);
        }
        assert_eq!(meter.on_hook(), HookVerdict::Yield);
        assert_eq!(meter.spent(), Some(BudgetKind::Instructions));
        assert_eq!(meter.on_hook(), HookVerdict::Raise);
        meter.arm(budgets.scaled(1), false);
        assert_eq!(meter.spent(), None);
        assert_eq!(meter.on_hook(), HookVerdict::Continue);
    }

    #[test]
    fn overruns_are_counted_over_a_sliding_window() {
        let window = Duration::from_secs(10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = OverrunWindow::default();
        // One overrun every 4 s: never more than 3 within 10 s.
        for i in 0..20 {
            assert!(!w.record(at(i * 4), window, 3), "overrun {i}");
        }
        let mut w = OverrunWindow::default();
        assert!(!w.record(at(0), window, 3));
        assert!(!w.record(at(1), window, 3));
        assert!(!w.record(at(2), window, 3));
        assert!(w.record(at(3), window, 3), "the fourth within 10 s");
        // Once the first three age out, the count is back under the limit.
        let mut w = OverrunWindow::default();
        for s in [0, 1, 2] {
            w.record(at(s), window, 3);
        }
        assert!(!w.record(at(11), window, 3));
        assert!(!w.record(at(12), window, 3));
    }

    #[test]
    fn allowances_scale_instructions_with_running_time() {
        let budgets = Budgets::default();
        let tick = budgets.allowance(budgets.limits.tick);
        assert_eq!(tick.wall, Duration::from_millis(500));
        assert_eq!(tick.instructions, 100_000_000);
        assert_eq!(budgets.allowance(budgets.wall).instructions, 10_000_000);
        assert_eq!(budgets.scaled(4).instructions, 40_000_000);
    }

    #[test]
    fn time_suspended_does_not_count_and_slices_yield() {
        let budgets = Budgets {
            slice: Duration::from_millis(2),
            ..Budgets::default()
        };
        let meter = Meter::new(&budgets);
        meter.arm(budgets.allowance(Duration::from_millis(30)), true);
        std::thread::sleep(Duration::from_millis(3));
        // Past the slice: the hook asks for a yield that is not a budget overrun.
        assert_eq!(meter.on_hook(), HookVerdict::Yield);
        assert!(meter.sliced());
        assert_eq!(meter.spent(), None);
        // Not yieldable here: the next hook asks again rather than raising.
        assert_eq!(meter.on_hook(), HookVerdict::Yield);
        meter.pause();
        // Suspended for longer than the whole allowance: it does not count.
        std::thread::sleep(Duration::from_millis(40));
        meter.resume();
        assert!(!meter.sliced());
        assert!(!meter.past_deadline());
        assert_eq!(meter.on_hook(), HookVerdict::Continue);
        // Running time adds up across segments.
        std::thread::sleep(Duration::from_millis(30));
        assert!(meter.past_deadline());
        assert_eq!(meter.on_hook(), HookVerdict::Yield);
        assert_eq!(meter.spent(), Some(BudgetKind::WallTime));
    }

    #[test]
    fn a_call_that_may_not_be_sliced_is_not() {
        let budgets = Budgets {
            slice: Duration::from_millis(1),
            ..Budgets::default()
        };
        let meter = Meter::new(&budgets);
        meter.arm(budgets.allowance(Duration::from_millis(100)), false);
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(meter.on_hook(), HookVerdict::Continue);
    }

    #[test]
    fn wall_clock_is_checked() {
        let budgets = Budgets {
            wall: Duration::ZERO,
            ..Budgets::default()
        };
        let meter = Meter::new(&budgets);
        assert_eq!(meter.on_hook(), HookVerdict::Yield);
        assert_eq!(meter.spent(), Some(BudgetKind::WallTime));
    }
}
