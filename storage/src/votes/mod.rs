//! Vote history: one row per resolved vote, listed per match newest first, or read by id.
//!
//! Types, the [`Votes`] trait both backends implement (`sqlite.rs`, `postgres.rs`) and the
//! [`StoreHandle`] methods that ship each call to the bridge.

mod postgres;
mod sqlite;

use serde_json::Value;

use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::{StoreError, StoreHandle};

/// A resolved vote as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VoteRecord {
    /// Vote id (primary key).
    pub id: String,
    /// The match (or world) it ran in.
    pub match_id: String,
    /// Template name (`"default"` when none).
    pub template: String,
    /// `plurality`, `approval`, `weighted` or `ranked`.
    pub method: String,
    /// `live` or `hidden`.
    pub visibility: String,
    /// The options offered, as given.
    pub options: Value,
    /// Voter → ballot, after defaults and delegation.
    pub votes_cast: Value,
    /// The result map (`winner`, `counts`, `total_votes`, ...).
    pub result: Value,
    /// Option → share.
    pub distribution: Value,
    /// Ballots cast over eligible players.
    pub turnout: f64,
    /// Players eligible.
    pub eligible_count: i64,
    /// The configured window.
    pub window_ms: i64,
    /// Unix milliseconds.
    pub opened_at: i64,
    /// Unix milliseconds.
    pub closed_at: i64,
    /// Unix milliseconds.
    pub inserted_at: i64,
}

/// Most votes [`StoreHandle::votes_for_match`] returns (asobi: the newest 50).
pub const MAX_VOTE_LIST: u32 = 50;

/// The vote history operations one database implements.
pub(crate) trait Votes: Send + Sync {
    fn insert_vote(&self, v: VoteRecord) -> Reply<'_, ()>;
    fn vote(&self, id: String) -> Reply<'_, Option<VoteRecord>>;
    fn votes_for_match(&self, match_id: String, limit: u32) -> Reply<'_, Vec<VoteRecord>>;
}

impl StoreHandle {
    /// Stores a resolved vote. [`StoreError::Conflict`] on a duplicate id.
    pub async fn insert_vote(&self, v: VoteRecord) -> Result<(), StoreError> {
        self.call(move |db| db.insert_vote(v)).await
    }

    /// One vote by id.
    pub async fn vote(&self, id: &str) -> Result<Option<VoteRecord>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.vote(id)).await
    }

    /// A match's votes, newest first (`inserted_at` desc, then `id` desc), at most `limit`
    /// clamped to `1..=50`.
    pub async fn votes_for_match(
        &self,
        match_id: &str,
        limit: u32,
    ) -> Result<Vec<VoteRecord>, StoreError> {
        let match_id = match_id.to_owned();
        let limit = limit.clamp(1, MAX_VOTE_LIST);
        self.call(move |db| db.votes_for_match(match_id, limit))
            .await
    }
}

/// Column list every vote SELECT uses, in the order [`from_columns`] reads.
const VOTE_COLUMNS: &str = "id, match_id, template, method, visibility, options, votes_cast, \
     result, distribution, turnout, eligible_count, window_ms, opened_at, closed_at, inserted_at";

/// The raw columns of a vote row as both backends read them (JSON still as text).
type VoteColumns = (
    (String, String, String, String, String),
    (String, String, String, String),
    (f64, i64, i64, i64, i64, i64),
);

fn from_columns(c: VoteColumns) -> Result<VoteRecord, StoreError> {
    let (
        (id, match_id, template, method, visibility),
        (options, votes_cast, result, distribution),
        (turnout, eligible_count, window_ms, opened_at, closed_at, inserted_at),
    ) = c;
    Ok(VoteRecord {
        id,
        match_id,
        template,
        method,
        visibility,
        options: parse_json_column("options", &options)?,
        votes_cast: parse_json_column("votes_cast", &votes_cast)?,
        result: parse_json_column("result", &result)?,
        distribution: parse_json_column("distribution", &distribution)?,
        turnout,
        eligible_count,
        window_ms,
        opened_at,
        closed_at,
        inserted_at,
    })
}
