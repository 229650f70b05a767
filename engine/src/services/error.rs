//! Where service errors meet the wire: every typed error a service returns becomes asobi's
//! `{code, message, details}` with its HTTP status here, and nowhere else.

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::StoreError;

/// Maps a storage failure to what a client sees; the cause goes to the log.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(why) => {
            tracing::warn!("storage unavailable: {why}");
            ApiError::new(
                503,
                code::STORAGE_UNAVAILABLE,
                "The database is unavailable; try again shortly.",
            )
        }
        other => {
            tracing::error!("storage error: {other}");
            ApiError::internal()
        }
    }
}
