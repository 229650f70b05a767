//! What can go wrong with the economy. Mapped to codes and statuses in `services::error`, and
//! to the reason string of asobi's Lua envelope `{error = reason}` here.

use asobi_storage::{Refusal, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The wallet holds less than the debit or price.
    #[error("The wallet does not hold enough of this currency.")]
    InsufficientFunds {
        /// The balance when refused.
        balance: i64,
    },
    /// No listing with this id in the economy file.
    #[error("No store listing exists with this id.")]
    ListingNotFound,
    /// The listing exists but is not on sale.
    #[error("This store listing is not on sale.")]
    ListingInactive,
    /// The economy file declares currencies and this is not one of them.
    #[error("The currency `{0}` is not one this game uses.")]
    UnknownCurrency(String),
    /// An amount that is not a positive integer within the cap.
    #[error(
        "`amount` must be a positive integer of at most {}.",
        super::MAX_AMOUNT
    )]
    InvalidAmount,
    /// A purchase or consume quantity that is not a positive integer within the cap.
    #[error("`quantity` must be a positive integer within the cap.")]
    InvalidQuantity,
    /// A text field (currency, reason, key) that is empty or too long.
    #[error("`{0}` is empty or too long.")]
    InvalidField(&'static str),
    /// No inventory item with this id.
    #[error("No inventory item exists with this id.")]
    ItemNotFound,
    /// The item belongs to another player.
    #[error("The item belongs to another player.")]
    NotYourItem,
    /// The stack holds fewer than asked.
    #[error("The item stack holds fewer than the amount asked.")]
    InsufficientQuantity {
        /// What the stack holds.
        have: i64,
    },
    /// The idempotency key was used before for a different request.
    #[error("This idempotency key was already used for a different request.")]
    KeyReused,
    /// The database failed or could not be reached.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        match r {
            Refusal::InsufficientFunds { balance } => Error::InsufficientFunds { balance },
            Refusal::ItemNotFound => Error::ItemNotFound,
            Refusal::NotYourItem => Error::NotYourItem,
            Refusal::InsufficientQuantity { have } => Error::InsufficientQuantity { have },
            Refusal::KeyReused => Error::KeyReused,
            // Refusal is non-exhaustive; a new kind is a bug here until it is mapped.
            other => Error::Storage(StoreError::Backend(format!("unmapped refusal {other:?}"))),
        }
    }
}

impl Error {
    /// The reason a script reads in `{error = reason}`: asobi's atom names where it has one.
    pub(crate) fn lua_reason(&self) -> String {
        match self {
            Error::InsufficientFunds { .. } => "insufficient_funds".into(),
            Error::ListingNotFound | Error::ItemNotFound => "not_found".into(),
            Error::ListingInactive => "listing_inactive".into(),
            Error::UnknownCurrency(_) => "unknown_currency".into(),
            Error::InvalidAmount => "invalid_amount".into(),
            Error::InvalidQuantity => "invalid_quantity".into(),
            Error::InvalidField(f) => format!("invalid_{f}"),
            Error::NotYourItem => "forbidden".into(),
            Error::InsufficientQuantity { .. } => "insufficient_quantity".into(),
            Error::KeyReused => "idempotency_key_reused".into(),
            Error::Storage(StoreError::Unavailable(_)) => "storage_unavailable".into(),
            Error::Storage(_) => "internal_error".into(),
        }
    }
}
