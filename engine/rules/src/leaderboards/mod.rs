//! Leaderboards as plain data: the rank index, one board's entries and operators, and reset
//! schedules. The engine's owning shard holds the boards and drives them with the wall-clock
//! milliseconds it reads; nothing here keeps time or does I/O.
//!
//! - [`RankIndex`]: the order-statistic structure (rank of a key, key at a rank, windows).
//! - [`Board`]: one board's entries by player, its sort order and operator, and which entries
//!   changed since the last flush (write-behind).
//! - [`Schedule`]: daily, weekly, monthly or cron resets on UTC calendar time.

mod board;
mod index;
mod schedule;

pub use board::{Board, BoardConfig, Entry, Operator, Order, Ranked, Submitted};
pub use index::{Key, RankIndex, MAX_BLOCK};
pub use schedule::{Civil, Cron, Schedule, ScheduleError};
