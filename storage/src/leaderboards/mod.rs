//! Leaderboards: the write-behind copy of each board's current period, the period it is in, and
//! the archive of ended periods.
//!
//! The ranking itself lives in memory on the board's owning shard; these calls only save and
//! restore it. Types, the [`Leaderboards`] trait both backends implement (`sqlite.rs`,
//! `postgres.rs`) and the [`StoreHandle`] methods that ship each call to the bridge.

mod postgres;
mod sqlite;

use crate::backend::Reply;
use crate::{StoreError, StoreHandle};

/// One player's entry on a board, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardEntry {
    /// The player.
    pub player_id: String,
    /// The score.
    pub score: i64,
    /// The tie-break.
    pub sub_score: i64,
    /// Submission order when the score last changed (full ties rank the earlier first).
    pub seq: i64,
    /// Metadata JSON text, if any.
    pub metadata: Option<String>,
    /// Last change, unix milliseconds.
    pub updated_at: i64,
}

/// A board as it was saved: the start of its current period and its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedBoard {
    /// Start of the current period, unix ms; `None` when the board never reset.
    pub period_start: Option<i64>,
    /// Every entry of the current period, in no particular order.
    pub entries: Vec<BoardEntry>,
}

/// An entry of an ended period with the rank it finished on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedEntry {
    /// Final 1-based rank.
    pub rank: i64,
    /// The entry.
    pub entry: BoardEntry,
}

/// A period that ends: what [`StoreHandle::reset_leaderboard`] archives and where the next
/// period starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodEnd {
    /// The board.
    pub board_id: String,
    /// Start of the period that ended (`i64::MIN` for a board that never reset before).
    pub period_start: i64,
    /// Start of the new period.
    pub next_period_start: i64,
    /// The ended period's entries, ranked.
    pub ranked: Vec<ArchivedEntry>,
    /// When the archive is written, unix ms.
    pub archived_at: i64,
}

/// Largest archive page [`StoreHandle::leaderboard_archive`] returns.
pub const MAX_ARCHIVE_PAGE: u32 = 1000;

/// The leaderboard operations one database implements.
pub(crate) trait Leaderboards: Send + Sync {
    fn save_leaderboard_entries(&self, board: String, rows: Vec<BoardEntry>) -> Reply<'_, ()>;
    fn saved_leaderboard(&self, board: String) -> Reply<'_, SavedBoard>;
    fn reset_leaderboard(&self, end: PeriodEnd) -> Reply<'_, ()>;
    fn leaderboard_archive(
        &self,
        board: String,
        period_start: i64,
        limit: u32,
    ) -> Reply<'_, Vec<ArchivedEntry>>;
}

impl StoreHandle {
    /// Inserts or replaces entries of a board's current period (the write-behind flush).
    pub async fn save_leaderboard_entries(
        &self,
        board: &str,
        rows: Vec<BoardEntry>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let board = board.to_owned();
        self.call(move |db| db.save_leaderboard_entries(board, rows))
            .await
    }

    /// A board's current period as saved (empty for a board never saved).
    pub async fn saved_leaderboard(&self, board: &str) -> Result<SavedBoard, StoreError> {
        let board = board.to_owned();
        self.call(move |db| db.saved_leaderboard(board)).await
    }

    /// Ends a period in one transaction: archives its ranked entries, removes them from the
    /// current entries and records where the next period starts. Repeating it is harmless
    /// (an archive row that exists is kept).
    pub async fn reset_leaderboard(&self, end: PeriodEnd) -> Result<(), StoreError> {
        self.call(move |db| db.reset_leaderboard(end)).await
    }

    /// An ended period's entries by rank, at most `limit` (clamped to 1..=1000).
    pub async fn leaderboard_archive(
        &self,
        board: &str,
        period_start: i64,
        limit: u32,
    ) -> Result<Vec<ArchivedEntry>, StoreError> {
        let board = board.to_owned();
        let limit = limit.clamp(1, MAX_ARCHIVE_PAGE);
        self.call(move |db| db.leaderboard_archive(board, period_start, limit))
            .await
    }
}
