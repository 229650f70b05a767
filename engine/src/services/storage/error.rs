//! What can go wrong with player storage, cloud saves and stats, and how each failure meets the
//! wire: asobi's `storage.*` / `save.*` codes and statuses, and the reason string of asobi's Lua
//! envelope `{error = reason}`.

use serde_json::json;

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::{StorageRefusal, StoreError};

use crate::services::error::store_error;

/// Which family of routes failed: objects answer `storage.*`, save slots `save.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Object,
    Save,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// No object at this collection and key, or no save in this slot.
    #[error("Nothing is stored here.")]
    NotFound(Family),
    /// The object's permissions do not allow this caller.
    #[error("The object's permissions do not allow this.")]
    Forbidden,
    /// Several players' objects share this collection and key and none is the caller's.
    #[error("The collection and key resolve to more than one object.")]
    Ambiguous,
    /// The writer's version is stale.
    #[error("The data was written by another client; current version is {current_version}.")]
    VersionConflict {
        family: Family,
        current_version: i64,
    },
    /// The encoded value or save data is over the cap.
    #[error("The value is {size} bytes; the limit is {limit}.")]
    TooLarge {
        family: Family,
        size: usize,
        limit: usize,
    },
    /// `read_perm` / `write_perm` is not a known permission.
    #[error("read_perm and write_perm must be \"owner\", \"public\" or \"none\".")]
    InvalidPerm,
    /// The body is not a JSON object, or a field has the wrong type.
    #[error("The body must be a JSON object with the documented fields: {0}.")]
    InvalidRequest(&'static str),
    /// A collection, key or slot name that is empty or too long.
    #[error("`{0}` must be 1 to {max} bytes.", max = super::MAX_NAME_BYTES)]
    InvalidName(&'static str),
    /// Every save slot is in use.
    #[error("The player has no free cloud-save slots.")]
    SlotLimitReached,
    /// The database failed or could not be reached.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

impl Error {
    /// A refusal from the store, for the family of routes that asked.
    pub(crate) fn refused(family: Family, r: StorageRefusal) -> Error {
        match r {
            StorageRefusal::NotFound => Error::NotFound(family),
            StorageRefusal::Forbidden => Error::Forbidden,
            StorageRefusal::Ambiguous => Error::Ambiguous,
            StorageRefusal::VersionConflict { current_version } => Error::VersionConflict {
                family,
                current_version,
            },
            StorageRefusal::SlotLimitReached => Error::SlotLimitReached,
            other => Error::Storage(StoreError::Backend(format!("unmapped refusal {other:?}"))),
        }
    }

    /// The reason a script reads in `{error = reason}`.
    pub(crate) fn lua_reason(&self) -> String {
        match self {
            Error::NotFound(_) => "not_found".into(),
            Error::Forbidden => "forbidden".into(),
            Error::Ambiguous => "conflict".into(),
            Error::VersionConflict { .. } => "version_conflict".into(),
            Error::TooLarge { .. } => "value_too_large".into(),
            Error::InvalidPerm => "invalid_perm".into(),
            Error::InvalidRequest(_) => "invalid_request".into(),
            Error::InvalidName(f) => format!("invalid_{f}"),
            Error::SlotLimitReached => "slot_limit_reached".into(),
            Error::Storage(StoreError::Unavailable(_)) => "storage_unavailable".into(),
            Error::Storage(_) => "internal_error".into(),
        }
    }
}

fn err(status: u16, code: &'static str, e: &Error) -> ApiError {
    ApiError::new(status, code, e.to_string())
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound(Family::Object) => err(404, code::STORAGE_NOT_FOUND, &e),
            Error::NotFound(Family::Save) => err(404, code::SAVE_NOT_FOUND, &e),
            Error::Forbidden => err(403, code::STORAGE_FORBIDDEN, &e),
            Error::Ambiguous => err(500, code::STORAGE_CONFLICT, &e),
            Error::VersionConflict {
                family,
                current_version,
            } => {
                let c = match family {
                    Family::Object => code::STORAGE_VERSION_CONFLICT,
                    Family::Save => code::SAVE_VERSION_CONFLICT,
                };
                err(409, c, &e).with_details(json!({ "current_version": current_version }))
            }
            Error::TooLarge {
                family,
                size,
                limit,
            } => {
                let c = match family {
                    Family::Object => code::STORAGE_VALUE_TOO_LARGE,
                    Family::Save => code::SAVE_TOO_LARGE,
                };
                err(413, c, &e).with_details(json!({ "size": size, "limit": limit }))
            }
            Error::InvalidPerm => err(400, code::STORAGE_INVALID_PERM, &e),
            Error::InvalidRequest(field) => {
                err(400, code::STORAGE_INVALID_REQUEST, &e).with_details(json!({ "field": field }))
            }
            Error::InvalidName(field) => {
                err(400, code::INVALID_FIELD, &e).with_details(json!({ "field": field }))
            }
            Error::SlotLimitReached => err(409, code::SAVE_SLOT_LIMIT_REACHED, &e),
            Error::Storage(s) => store_error(s),
        }
    }
}
