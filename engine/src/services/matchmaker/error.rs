//! What can go wrong in matchmaking. Mapped to codes and statuses in `services::error`.

use asobi_rules::matchmaker::{AddError, TicketAccessError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The game has no such mode (or the name is longer than any mode can be).
    #[error("No such game mode.")]
    UnknownMode { mode: Option<String> },
    /// No such ticket (never issued, resolved, or past retention).
    #[error("No such ticket.")]
    TicketNotFound,
    /// The ticket belongs to another player.
    #[error("The ticket belongs to another player.")]
    NotYourTicket,
    /// The queue refused the ticket (full, properties too large or deep).
    #[error(transparent)]
    Add(#[from] AddError),
}

impl From<TicketAccessError> for Error {
    fn from(e: TicketAccessError) -> Error {
        match e {
            TicketAccessError::NotOwner => Error::NotYourTicket,
            _ => Error::TicketNotFound,
        }
    }
}
