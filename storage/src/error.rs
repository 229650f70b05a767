//! The one error type every storage call returns, shared by both backends so the engine maps
//! failures to HTTP/WS errors without knowing which database is underneath.

use std::time::Duration;

/// Why a storage call failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A unique key already exists (username, device id, match id, token hash).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row the call refers to does not exist.
    #[error("not found")]
    NotFound,
    /// The row existed but was erased (a GDPR erase): only an anonymous tombstone is left, and
    /// nothing may change it any more. To a client this is the same as [`StoreError::NotFound`].
    #[error("gone: {0}")]
    Gone(String),
    /// The row exists but is in a state that forbids the operation (e.g. upgrading a non-guest).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// The storage bridge has shut down, the database cannot be reached right now, or the call
    /// did not get an answer before its deadline (the database is locked or overloaded).
    /// Retrying later may work. After a deadline a write may or may not have been applied.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database rejected the operation for another reason.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The schema migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The configuration cannot be used (e.g. an unparsable PostgreSQL URL, an unknown sslmode).
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// The error every call returns once the bridge thread is gone.
    pub(crate) fn bridge_gone() -> Self {
        StoreError::Unavailable("storage bridge is not running".to_owned())
    }

    /// The error a call returns when it got no answer within its deadline.
    pub(crate) fn deadline(limit: Duration) -> Self {
        StoreError::Unavailable(format!(
            "database did not answer within {}ms",
            limit.as_millis()
        ))
    }

    /// The error for any change to an erased player.
    pub(crate) fn erased() -> Self {
        StoreError::Gone("player is erased".to_owned())
    }
}

/// Names a unique-key violation by what it means to the caller, from the constraint or message
/// text either backend reports (both mention the table; the username key mentions the column).
pub(crate) fn conflict(raw: &str) -> StoreError {
    let what = if raw.contains("username_lower") {
        "username already taken"
    } else if raw.contains("guest_devices") {
        "device already registered"
    } else if raw.contains("match_record") {
        "match record already exists"
    } else if raw.contains("refresh_tokens") {
        "refresh token already exists"
    } else if raw.contains("players") {
        "player id already exists"
    } else {
        return StoreError::Conflict(raw.to_owned());
    };
    StoreError::Conflict(what.to_owned())
}

/// Parses a JSON column; a column that does not parse means the row was written by something else.
pub(crate) fn parse_json_column<T: serde::de::DeserializeOwned>(
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("column {column} holds invalid JSON: {e}")))
}
