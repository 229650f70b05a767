//! What can go wrong with matches. Mapped to codes and statuses in `services::error`.

use asobi_rules::matches::JoinRefused;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// No live match with this id (it never existed or has finished).
    #[error("No live match exists with this id.")]
    NotFound,
    /// No match, live or recorded, with this id.
    #[error("No match with this id.")]
    NoRecord,
    /// The game has no such mode.
    #[error("No game mode `{0}`.")]
    UnknownMode(String),
    /// The script's `init` failed; the match was not created.
    #[error("The match script failed to start.")]
    StartFailed,
    /// No Lua VM could be made for a new match.
    #[error("No Lua VM is available for a new match.")]
    NoVm,
    /// The roster refused the join (not joinable, full).
    #[error(transparent)]
    Refused(#[from] JoinRefused),
    /// The script's `join` refused the player, with its reason.
    #[error("The request failed. See `details.reason`.")]
    ScriptRefused(String),
    /// The script's `join` raised an error.
    #[error("The match script failed to handle the join.")]
    ScriptFailed,
    /// The session is in another match already.
    #[error("Leave the current match first.")]
    AlreadyInMatch,
    /// `match.find_or_create` for a mode whose `quick_play` is off (asobi's default).
    #[error("This mode does not allow quick play.")]
    QuickPlayDisabled,
    /// The session is in no match.
    #[error("This connection is not joined to a match.")]
    NotInMatch,
    /// `GET /matches?player_id=` naming another player: records do not reveal who played.
    #[error("Only your own match history can be filtered by player.")]
    OthersHistory,
    /// The join context breaks its bounds (asobi's code for which bound).
    #[error("The join context is outside its bounds.")]
    JoinContext(&'static str),
}
