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
/// * `instructions` = 10 M: Lua 5.4 runs roughly 200–400 M simple VM instructions per second
///   on a current server core, so 10 M trips after ~25–50 ms — about where the wall budget
///   does — but deterministically, independent of machine load. A realistic 16-player tick is
///   a few thousand instructions, so honest scripts have >1000× headroom.
/// * `wall` = 50 ms: half a 100 ms tick. The backstop for slow machines and for time spent in
///   C library functions, which do not execute VM instructions.
/// * `memory_bytes` = 64 MiB per VM: far above any match state, small enough that a few
///   hundred matches per core cannot exhaust a host.
/// * `max_consecutive_failures` = 100: ten seconds of a callback failing on every 10 Hz tick.
///   Generous on purpose — while a developer hot-reloads a fix, the match should survive.
/// * `max_consecutive_overruns` = 3: each overrun costs the shard up to `wall` of CPU that
///   its other matches needed, so a script that keeps overrunning is stopped quickly.
/// * `max_overruns_in_window` = 10 in `overrun_window` = 10 s: the same bound for overruns
///   interleaved with successes (a player whose input drives `handle_input` over budget
///   while ticks succeed). Caps what one match can take from its shard at about
///   10 × 50 ms per 10 s (5 % of a core), while an isolated overrun — a GC pause, a slow
///   moment of the host — never ends a match.
/// * `log_per_second` = 30 lines per match (asobi's figure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// VM instructions one callback may execute (`init`, the chunk and `on_reload` get
    /// [`SETUP_FACTOR`] times this).
    pub instructions: u64,
    /// Wall-clock time one callback may take (setup callbacks get [`SETUP_FACTOR`] times this).
    pub wall: Duration,
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

/// Budget multiplier for the one-off calls of a match: running the chunk, `init`, `on_reload`.
/// asobi gives `init` twice a tick's allowance; building a map or a deck legitimately costs
/// more than a tick, and it happens once per match.
pub const SETUP_FACTOR: u32 = 4;

impl Default for Budgets {
    fn default() -> Self {
        Self {
            instructions: 10_000_000,
            wall: Duration::from_millis(50),
            memory_bytes: 64 * 1024 * 1024,
            max_consecutive_failures: 100,
            max_consecutive_overruns: 3,
            max_overruns_in_window: 10,
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
#[derive(Debug)]
pub(crate) struct Meter {
    interval: u32,
    remaining: Cell<i64>,
    deadline: Cell<Instant>,
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
            deadline: Cell::new(Instant::now()),
            spent: Cell::new(None),
            yield_requested: Cell::new(false),
        };
        meter.arm(budgets, 1);
        meter
    }

    pub(crate) fn hook_interval(&self) -> u32 {
        self.interval
    }

    /// Starts a fresh allowance for one call.
    pub(crate) fn arm(&self, budgets: &Budgets, factor: u32) {
        let instructions = budgets.instructions.saturating_mul(u64::from(factor));
        self.remaining
            .set(i64::try_from(instructions).unwrap_or(i64::MAX));
        self.deadline.set(Instant::now() + budgets.wall * factor);
        self.spent.set(None);
        self.yield_requested.set(false);
    }

    /// The budget that ran out during the current call, if any.
    pub(crate) fn spent(&self) -> Option<BudgetKind> {
        self.spent.get()
    }

    /// Charges `steps` of work done in Rust or C on the script's behalf (pattern matching,
    /// copying) as instructions, and checks the wall clock. `false` once the budget is spent:
    /// the caller must stop and raise, and the next hook call yields.
    pub(crate) fn charge(&self, steps: u64) -> bool {
        if self.spent.get().is_some() {
            return false;
        }
        let steps = i64::try_from(steps).unwrap_or(i64::MAX);
        let left = self.remaining.get().saturating_sub(steps);
        self.remaining.set(left);
        if left < 0 {
            self.spent.set(Some(BudgetKind::Instructions));
        } else if Instant::now() >= self.deadline.get() {
            self.spent.set(Some(BudgetKind::WallTime));
        }
        self.spent.get().is_none()
    }

    /// The wall-clock deadline of the current call.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline.get()
    }

    /// Whether the current call has run past its wall-clock deadline. Checked after a call
    /// returns: time spent inside one long C call never reaches the hook.
    pub(crate) fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline.get()
    }

    /// Called by the count hook every `interval` instructions.
    pub(crate) fn on_hook(&self) -> HookVerdict {
        if self.spent.get().is_none() {
            let left = self.remaining.get() - i64::from(self.interval);
            self.remaining.set(left);
            if left < 0 {
                self.spent.set(Some(BudgetKind::Instructions));
            } else if Instant::now() >= self.deadline.get() {
                self.spent.set(Some(BudgetKind::WallTime));
            }
        }
        if self.spent.get().is_none() {
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
        meter.arm(&budgets, 1);
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
