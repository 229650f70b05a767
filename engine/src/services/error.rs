//! Where service errors meet the wire: every typed error a service returns becomes asobi's
//! `{code, message, details}` with its HTTP status here, and nowhere else.

use asobi_rules::matches::JoinRefused;
use asobi_rules::matchmaker::AddError;
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

fn err(status: u16, code: &'static str, e: &impl std::fmt::Display) -> ApiError {
    ApiError::new(status, code, e.to_string())
}

impl From<super::accounts::error::Error> for ApiError {
    fn from(e: super::accounts::error::Error) -> ApiError {
        use super::accounts::error::Error as E;
        use serde_json::json;
        match &e {
            E::InvalidCredentials => err(401, code::INVALID_CREDENTIALS, &e),
            E::Validation {
                key,
                field,
                message,
            } => ApiError::new(422, code::VALIDATION_FAILED, message.clone())
                .with_details(json!({ *key: { *field: [message] } })),
            E::InvalidField { field, .. } => {
                err(400, code::INVALID_FIELD, &e).with_details(json!({ "field": field }))
            }
            E::UsernameTaken => err(409, code::USERNAME_TAKEN, &e),
            E::InvalidRefreshToken => err(401, code::INVALID_REFRESH_TOKEN, &e),
            E::GuestAuthDisabled => err(403, code::GUEST_AUTH_DISABLED, &e),
            E::MissingDeviceFields => err(400, code::MISSING_REQUIRED_FIELDS, &e),
            E::InvalidDeviceId => err(400, code::INVALID_DEVICE_ID, &e),
            E::WeakDeviceSecret => err(400, code::WEAK_DEVICE_SECRET, &e),
            E::GuestRevoked => err(401, code::GUEST_REVOKED, &e),
            E::InvalidDeviceSecret => err(401, code::INVALID_DEVICE_SECRET, &e),
            E::GuestPlayerMissing => err(500, code::GUEST_PLAYER_MISSING, &e),
            E::GuestUpgraded => err(401, code::GUEST_UPGRADED, &e),
            E::DeviceAlreadyRegistered => err(409, code::DEVICE_ALREADY_REGISTERED, &e),
            E::PlayerNotFound => err(404, code::PLAYER_NOT_FOUND, &e),
            E::NotAnUnclaimedGuest => err(409, code::NOT_AN_UNCLAIMED_GUEST, &e),
            E::NotYourProfile => err(403, code::FORBIDDEN, &e),
            E::Storage(_) => match e {
                E::Storage(s) => store_error(s),
                _ => unreachable!("matched above"),
            },
        }
    }
}

impl From<super::matchmaker::error::Error> for ApiError {
    fn from(e: super::matchmaker::error::Error) -> ApiError {
        use super::matchmaker::error::Error as E;
        match &e {
            E::UnknownMode { mode: Some(m) } => {
                err(400, code::UNKNOWN_MODE, &e).with_details(serde_json::json!({ "mode": m }))
            }
            E::UnknownMode { mode: None } => err(400, code::UNKNOWN_MODE, &e),
            E::TicketNotFound => err(404, code::TICKET_NOT_FOUND, &e),
            E::NotYourTicket => err(403, code::FORBIDDEN, &e),
            E::Add(AddError::QueueFull { .. }) => err(503, code::QUEUE_FULL, &e),
            E::Add(AddError::PropertiesTooLarge { .. } | AddError::PropertiesTooDeep { .. }) => {
                err(413, code::PROPERTIES_TOO_LARGE, &e)
            }
            E::Add(AddError::PartyTooLarge { max_party }) => {
                err(400, code::MATCHMAKER_PARTY_TOO_LARGE, &e)
                    .with_details(serde_json::json!({ "max_party": max_party }))
            }
            E::Add(AddError::MemberQueued) => err(409, code::MATCHMAKER_MEMBER_QUEUED, &e),
            E::Add(_) => err(500, code::INTERNAL, &e),
        }
    }
}

impl From<super::matches::error::Error> for ApiError {
    fn from(e: super::matches::error::Error) -> ApiError {
        use super::matches::error::Error as E;
        use serde_json::json;
        match &e {
            E::NotFound | E::NoRecord => err(404, code::MATCH_NOT_FOUND, &e),
            E::UnknownMode(_) => err(400, code::UNKNOWN_MODE, &e),
            E::StartFailed => err(500, code::MATCH_START_FAILED, &e),
            E::NoVm => err(500, code::INTERNAL, &e),
            E::Refused(JoinRefused::Full) => err(409, code::MATCH_FULL, &e),
            E::Refused(_) => err(409, code::MATCH_NOT_JOINABLE, &e),
            E::ScriptRefused(reason) => err(403, code::MATCH_JOIN_REFUSED, &e)
                .with_details(json!({ "refused_reason": reason })),
            E::ScriptFailed => {
                err(400, code::REQUEST_FAILED, &e).with_details(json!({ "reason": "script_error" }))
            }
            E::QuickPlayDisabled => err(400, code::REQUEST_FAILED, &e)
                .with_details(json!({ "reason": "quick_play_disabled" })),
            E::AlreadyInMatch => err(409, code::MATCH_ALREADY_IN_MATCH, &e),
            E::NotInMatch => err(409, code::MATCH_NOT_IN_MATCH, &e),
            E::OthersHistory => err(403, code::FORBIDDEN, &e),
            E::JoinContext(reason) => {
                err(400, code::REQUEST_FAILED, &e).with_details(json!({ "reason": reason }))
            }
        }
    }
}

impl From<super::economy::error::Error> for ApiError {
    fn from(e: super::economy::error::Error) -> ApiError {
        use super::economy::error::Error as E;
        use serde_json::json;
        match e {
            E::InsufficientFunds { balance } => err(402, code::ECONOMY_INSUFFICIENT_FUNDS, &e)
                .with_details(json!({ "balance": balance })),
            E::ListingNotFound => err(404, code::ECONOMY_LISTING_NOT_FOUND, &e),
            E::ListingInactive => err(400, code::ECONOMY_LISTING_INACTIVE, &e),
            E::UnknownCurrency(ref c) => {
                err(400, code::ECONOMY_UNKNOWN_CURRENCY, &e).with_details(json!({ "currency": c }))
            }
            E::InvalidAmount => {
                err(400, code::INVALID_FIELD, &e).with_details(json!({ "field": "amount" }))
            }
            E::InvalidQuantity => err(400, code::INVENTORY_INVALID_QUANTITY, &e),
            E::InvalidField(field) => {
                err(400, code::INVALID_FIELD, &e).with_details(json!({ "field": field }))
            }
            E::ItemNotFound => err(404, code::INVENTORY_ITEM_NOT_FOUND, &e),
            E::NotYourItem => err(403, code::FORBIDDEN, &e),
            E::InsufficientQuantity { have } => err(400, code::INVENTORY_INSUFFICIENT_QUANTITY, &e)
                .with_details(json!({ "quantity": have })),
            E::KeyReused => err(409, code::ECONOMY_IDEMPOTENCY_KEY_REUSED, &e),
            E::Storage(s) => store_error(s),
        }
    }
}

impl From<super::leaderboards::error::Error> for ApiError {
    fn from(e: super::leaderboards::error::Error) -> ApiError {
        use super::leaderboards::error::Error as E;
        match e {
            E::ClientSubmitDisabled => err(403, code::LEADERBOARD_CLIENT_SUBMIT_DISABLED, &e),
            E::CapacityReached => err(503, code::LEADERBOARD_CAPACITY_REACHED, &e),
            E::InvalidBoardId | E::MetadataTooLarge => err(400, code::INVALID_FIELD, &e),
            E::Storage(s) => store_error(s),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every code a client can see comes from the registry in `asobi_schema::error::code`:
    /// no handler spells one as a string literal.
    #[test]
    fn every_client_visible_code_is_in_the_registry() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        let mut offenders = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("ApiError::new(") {
                    let args = &text[i + "ApiError::new(".len()..];
                    let second = args.split(',').nth(1).unwrap_or("").trim_start();
                    if second.starts_with('"') {
                        offenders.push(format!(
                            "{}: {}",
                            path.display(),
                            &args[..args.len().min(60)]
                        ));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "codes outside the registry: {offenders:#?}"
        );
    }
}
