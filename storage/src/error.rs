//! The one error type every `Store` call returns, shared by both backends so the engine maps
//! failures to HTTP/WS errors without knowing which database is underneath.

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
    /// The row exists but is in a state that forbids the operation (e.g. upgrading a non-guest).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// The storage bridge has shut down or the database cannot be reached right now; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database rejected the operation for another reason.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The schema migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The configuration cannot be used (e.g. an unparsable PostgreSQL URL).
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// The error every call returns once the bridge thread is gone.
    pub(crate) fn bridge_gone() -> Self {
        StoreError::Unavailable("storage bridge is not running".to_owned())
    }
}
