//! What can go wrong with a receipt, and how each meets the wire: asobi's codes
//! (`iap.verification_failed` 422 with `details.reason`, `iap.missing_transaction_id` 422,
//! `iap.transaction_already_claimed` 409, `iap.record_failed` 500).

use asobi_schema::error::code;
use asobi_schema::ApiError;

/// A receipt that cannot be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The store rejected it, or it could not be checked; the reason names the step.
    #[error("The store rejected the receipt. See `details.reason`.")]
    Verification(&'static str),
    /// Verified, but without a transaction id to key it by.
    #[error("The verified receipt carries no transaction id.")]
    MissingTransactionId,
    /// Another player claimed this transaction.
    #[error("Another player already claimed this transaction.")]
    AlreadyClaimed,
    /// Verified but not recorded.
    #[error("The verified transaction could not be recorded.")]
    Record(String),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] asobi_storage::StoreError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let msg = e.to_string();
        match e {
            Error::Verification(reason) => ApiError::new(422, code::IAP_VERIFICATION_FAILED, msg)
                .with_details(serde_json::json!({ "reason": reason })),
            Error::MissingTransactionId => {
                ApiError::new(422, code::IAP_MISSING_TRANSACTION_ID, msg)
            }
            Error::AlreadyClaimed => ApiError::new(409, code::IAP_TRANSACTION_ALREADY_CLAIMED, msg),
            Error::Record(why) => {
                tracing::error!("iap record failed: {why}");
                ApiError::new(500, code::IAP_RECORD_FAILED, msg)
            }
            Error::Storage(asobi_storage::StoreError::Unavailable(why)) => {
                crate::services::error::store_error(asobi_storage::StoreError::Unavailable(why))
            }
            Error::Storage(other) => {
                tracing::error!("iap record failed: {other}");
                ApiError::new(500, code::IAP_RECORD_FAILED, msg)
            }
        }
    }
}
