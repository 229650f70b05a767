//! Match history: one record per finished match, listed newest first with simple filters.
//!
//! Types, the [`Matches`] trait both backends implement (`sqlite.rs`, `postgres.rs`) and the
//! [`StoreHandle`] methods that ship each call to the bridge.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use serde_json::Value;

use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::{StoreError, StoreHandle};

/// A finished match as recorded for history and replays.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MatchRecord {
    /// Match id (primary key).
    pub id: String,
    /// Game mode name.
    pub mode: String,
    /// Final status: "finished", "error", ...
    pub status: String,
    /// Player ids in roster order.
    pub players: Vec<String>,
    /// Result JSON produced by the match script.
    pub result: Value,
    /// Start time, unix milliseconds.
    pub started_at: i64,
    /// End time, unix milliseconds.
    pub finished_at: i64,
}

/// Filters for [`StoreHandle::list_match_records`]; `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct MatchQuery {
    /// Only this game mode.
    pub mode: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only matches this player took part in.
    pub player_id: Option<String>,
    /// Maximum rows; clamped to `1..=MAX_MATCH_LIST` (0 therefore returns one row).
    pub limit: u32,
}

/// Largest page `list_match_records` returns, so one request cannot pull the whole history.
pub const MAX_MATCH_LIST: u32 = 200;

/// The match history operations one database implements.
pub(crate) trait Matches: Send + Sync {
    fn insert_match_record(&self, r: MatchRecord) -> Reply<'_, ()>;
    fn match_record(&self, id: String) -> Reply<'_, Option<MatchRecord>>;
    fn list_match_records(&self, q: MatchQuery) -> Reply<'_, Vec<MatchRecord>>;
}

impl StoreHandle {
    /// Records a finished match. [`StoreError::Conflict`] on a duplicate id.
    pub async fn insert_match_record(&self, r: MatchRecord) -> Result<(), StoreError> {
        self.call(move |db| db.insert_match_record(r)).await
    }

    /// One match record by id.
    pub async fn match_record(&self, id: &str) -> Result<Option<MatchRecord>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.match_record(id)).await
    }

    /// Newest first (`finished_at` desc, then `id` desc), filtered by mode / status / player,
    /// at most `q.limit` rows with the limit clamped to `1..=200`.
    pub async fn list_match_records(&self, q: MatchQuery) -> Result<Vec<MatchRecord>, StoreError> {
        self.call(move |db| db.list_match_records(q)).await
    }
}

fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_MATCH_LIST)
}

/// Column list every match record SELECT uses, in the order [`record_from_columns`] reads.
pub(crate) const MATCH_COLUMNS: &str =
    "m.id, m.mode, m.status, m.players, m.result, m.started_at, m.finished_at";

/// The raw columns of a match row as both backends read them (JSON still as text).
type MatchColumns = (String, String, String, String, String, i64, i64);

fn record_from_columns(c: MatchColumns) -> Result<MatchRecord, StoreError> {
    let (id, mode, status, players, result, started_at, finished_at) = c;
    Ok(MatchRecord {
        id,
        mode,
        status,
        players: parse_json_column("players", &players)?,
        result: parse_json_column("result", &result)?,
        started_at,
        finished_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(50), 50);
        assert_eq!(clamp_limit(10_000), MAX_MATCH_LIST);
    }

    #[test]
    fn corrupt_columns_are_backend_errors() {
        let row = |players: &str| {
            record_from_columns((
                "m".into(),
                "duel".into(),
                "finished".into(),
                players.into(),
                "{}".into(),
                1,
                2,
            ))
        };
        assert_eq!(row(r#"["a","b"]"#).unwrap().players, ["a", "b"]);
        assert!(matches!(row("{"), Err(StoreError::Backend(_))));
    }
}
