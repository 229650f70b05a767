//! What can go wrong with a tournament request, and how each meets the wire: asobi's codes
//! where asobi has one (`tournament.not_found`, `tournament.full`, `tournament.already_joined`,
//! `economy.insufficient_funds`), ours otherwise (`tournament.closed`, `tournament.not_started`).

use asobi_schema::error::code;
use asobi_schema::ApiError;

/// A tournament request that cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// No tournament with this id.
    #[error("No tournament exists with this id.")]
    NotFound,
    /// As many entrants as allowed.
    #[error("This tournament holds as many entrants as allowed.")]
    Full,
    /// The player entered before.
    #[error("This player already entered the tournament.")]
    AlreadyJoined,
    /// Ended, settled or cancelled.
    #[error("This tournament has ended and takes no more entrants.")]
    Closed,
    /// Before its start.
    #[error("This tournament has not started yet.")]
    NotStarted,
    /// The wallet holds less than the entry fee.
    #[error("The wallet does not hold enough for the entry fee.")]
    InsufficientFunds {
        /// The balance when refused.
        balance: i64,
    },
    /// The database failed or could not be reached.
    #[error("storage: {0}")]
    Storage(#[from] asobi_storage::StoreError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let err =
            |status, code: &'static str, e: &Error| ApiError::new(status, code, e.to_string());
        match e {
            Error::NotFound => err(404, code::TOURNAMENT_NOT_FOUND, &e),
            Error::Full => err(409, code::TOURNAMENT_FULL, &e),
            Error::AlreadyJoined => err(409, code::TOURNAMENT_ALREADY_JOINED, &e),
            Error::Closed => err(409, code::TOURNAMENT_CLOSED, &e),
            Error::NotStarted => err(409, code::TOURNAMENT_NOT_STARTED, &e),
            Error::InsufficientFunds { balance } => err(402, code::ECONOMY_INSUFFICIENT_FUNDS, &e)
                .with_details(serde_json::json!({ "balance": balance })),
            Error::Storage(s) => crate::services::error::store_error(s),
        }
    }
}
