//! The rules of a live match that do not depend on its script: who holds a seat and whether
//! their session is attached ([`Roster`]), when the match ends and how ([`Lifecycle`]), and when
//! it ticks ([`TickSchedule`]).
//!
//! The engine owns the match itself (its Lua VM, the frames it sends, the directory entries) and
//! drives these types: it feeds joins, leaves, drops and script verdicts in, and arms one timer
//! at the earliest of the three `next_deadline()`s. Nothing here runs script code, reads a
//! clock or touches a session; a seat's session is an opaque address `S` the engine chose.
//!
//! A driver's order on each wake-up at `now`:
//! 1. [`Roster::expire`] — seats whose reconnection grace ran out leave for good (run the
//!    script's `leave` for each), then [`Lifecycle::roster_changed`].
//! 2. [`TickSchedule::poll`] — if a tick is due, run the script's tick and send state; report
//!    the script's verdict with [`Lifecycle::script_finished`] / [`Lifecycle::script_failed`].
//! 3. [`Lifecycle::poll`] — if it returns an [`Ending`], finish the match with it.
//! 4. Sleep until the earliest `next_deadline()` of the three.

mod lifecycle;
mod roster;
mod schedule;

#[cfg(test)]
mod tests;

pub use lifecycle::{Ending, Lifecycle, Outcome, EMPTY_MATCH_IDLE};
pub use roster::{Admission, JoinRefused, Joined, Roster, Seat, ARRIVAL_GRACE};
pub use schedule::{Tick, TickSchedule, MIN_TICK_PERIOD};
