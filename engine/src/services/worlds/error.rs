//! What can go wrong with worlds, and asobi's code and status for each.

use serde_json::json;

use asobi_schema::error::code;
use asobi_schema::ApiError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// No live world with this id.
    #[error("No live world exists with this id.")]
    NotFound,
    /// The session is in another world already.
    #[error("This connection is already joined to a world.")]
    AlreadyJoined,
    /// The game has no such mode.
    #[error("No game mode is configured under this name.")]
    UnknownMode(String),
    /// The mode is a match mode (`game_type` is not `"world"`).
    #[error("The world could not be created. See `details.reason`.")]
    NotAWorldMode,
    /// The world script failed to start (`init` or its chunk).
    #[error("The world could not be created. See `details.reason`.")]
    StartFailed,
    /// `world_max` worlds are running.
    #[error("The deployment is running as many worlds as allowed.")]
    CapacityReached,
    /// The player already created `world_max_per_player` live worlds.
    #[error("This player already owns as many worlds as allowed.")]
    PlayerLimitReached,
    /// The world holds `max_players`.
    #[error("The request failed. See `details.reason`.")]
    Full,
    /// `world.find_or_create` for a mode with `quick_play = false`.
    #[error("The request failed. See `details.reason`.")]
    QuickPlayDisabled,
    /// The script's `join` refused the player, with its reason.
    #[error("The game refused this join. See `details.refused_reason`.")]
    Refused(Option<String>),
    /// The script's `join` or `spawn_position` raised an error.
    #[error("The request failed. See `details.reason`.")]
    ScriptFailed,
}

fn err(status: u16, code: &'static str, e: &Error) -> ApiError {
    ApiError::new(status, code, e.to_string())
}

fn failed(e: &Error, reason: &str) -> ApiError {
    err(400, code::REQUEST_FAILED, e).with_details(json!({ "reason": reason }))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match &e {
            Error::NotFound => err(404, code::WORLD_NOT_FOUND, &e),
            Error::AlreadyJoined => err(409, code::WORLD_ALREADY_JOINED, &e),
            Error::UnknownMode(m) => {
                err(400, code::UNKNOWN_MODE, &e).with_details(json!({ "mode": m }))
            }
            Error::NotAWorldMode => err(400, code::WORLD_CREATE_FAILED, &e)
                .with_details(json!({ "reason": "not_a_world_mode" })),
            Error::StartFailed => err(400, code::WORLD_CREATE_FAILED, &e)
                .with_details(json!({ "reason": "world_start_failed" })),
            Error::CapacityReached => err(503, code::WORLD_CAPACITY_REACHED, &e),
            Error::PlayerLimitReached => err(429, code::WORLD_PLAYER_LIMIT_REACHED, &e),
            Error::Full => failed(&e, "world_full"),
            Error::QuickPlayDisabled => failed(&e, "quick_play_disabled"),
            Error::Refused(None) => err(403, code::MATCH_JOIN_REFUSED, &e),
            Error::Refused(Some(r)) => {
                err(403, code::MATCH_JOIN_REFUSED, &e).with_details(json!({ "refused_reason": r }))
            }
            Error::ScriptFailed => failed(&e, "script_error"),
        }
    }
}
