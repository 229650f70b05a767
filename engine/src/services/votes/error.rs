//! What can go wrong with a vote, in asobi's `reason`s.

use asobi_rules::votes::{ConfigError, Refused};
use asobi_schema::error::code;
use asobi_schema::ApiError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// No live vote with this id in the player's match.
    #[error("No live vote with this id in this match.")]
    NotFound,
    /// The window has closed.
    #[error("The vote has closed.")]
    Closed,
    /// The vote refused the ballot or veto.
    #[error("The vote refused this request: {0}.")]
    Refused(Refused),
    /// Every veto token of the player is spent (or the match grants none).
    #[error("No veto tokens left.")]
    NoVetoTokens,
    /// The script's vote configuration is invalid (never seen by clients: logged).
    #[error("invalid vote configuration: {0}")]
    Config(ConfigError),
    /// The match runs as many votes as it may.
    #[error("too many votes open in this match")]
    TooManyVotes,
    /// No stored vote with this id.
    #[error("No vote exists with this id.")]
    NoRecord,
}

fn failed(e: &Error, reason: &str) -> ApiError {
    ApiError::new(400, code::REQUEST_FAILED, e.to_string())
        .with_details(json!({ "reason": reason }))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match &e {
            Error::NotFound => failed(&e, "vote_not_found"),
            Error::Closed => failed(&e, "vote_closed"),
            Error::Refused(Refused::RateLimited) => {
                ApiError::new(429, code::RATE_LIMITED, e.to_string())
            }
            Error::Refused(r) => failed(&e, r.reason()),
            Error::NoVetoTokens => failed(&e, "no_veto_tokens"),
            Error::Config(_) | Error::TooManyVotes => failed(&e, "invalid_vote_config"),
            Error::NoRecord => ApiError::new(404, code::VOTE_NOT_FOUND, e.to_string()),
        }
    }
}
