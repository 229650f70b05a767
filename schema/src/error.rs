//! Errors a client can see, with asobi's stable machine-readable codes.
//!
//! REST answers `{"error":{"code","message","details"}}` with an HTTP status; the WebSocket
//! answers an `error` frame whose payload carries the same object plus the older flat `reason`.
//! `code` is the contract; `message` is prose for a human and may change.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Stable error codes. Where asobi has a code for a failure, this is asobi's code.
pub mod code {
    /// The body or frame is not valid JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// A frame is JSON but not a valid message (e.g. no string `type`).
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// A required field is absent.
    pub const MISSING_FIELD: &str = "missing_field";
    /// A field has the wrong type or an unacceptable value.
    pub const INVALID_FIELD: &str = "invalid_payload";
    /// The request body exceeds the size cap.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No route matches the path.
    pub const NOT_FOUND: &str = "not_found";
    /// The route exists but not for this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// No valid bearer token or session.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// Authenticated, but not allowed to do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// Wrong username or password.
    pub const INVALID_CREDENTIALS: &str = "auth.invalid_credentials";
    /// Username already registered.
    pub const USERNAME_TAKEN: &str = "auth.username_taken";
    /// Username or password breaks the account rules.
    pub const VALIDATION_FAILED: &str = "validation_failed";
    /// The refresh token is unknown, spent, revoked or expired.
    pub const INVALID_REFRESH_TOKEN: &str = "unauthenticated";
    /// No such player.
    pub const PLAYER_NOT_FOUND: &str = "player.not_found";
    /// Too many requests or messages.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The storage backend could not be reached.
    pub const STORAGE_UNAVAILABLE: &str = "storage_unavailable";
    /// Something failed on the server; details are in its log.
    pub const INTERNAL: &str = "internal";
    /// The request timed out.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// The server is shutting down.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// An unknown WebSocket message type.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A WebSocket message sent before `session.connect` succeeded.
    pub const NOT_CONNECTED: &str = "unauthenticated";
    /// A frame over the size limit.
    pub const FRAME_TOO_LARGE: &str = "payload_too_large";
    /// Input while not in a match.
    pub const MATCH_NOT_IN_MATCH: &str = "match.not_in_match";
    /// No live match with this id.
    pub const MATCH_NOT_FOUND: &str = "match.not_found";
    /// The match is full or not joinable.
    pub const MATCH_FULL: &str = "match.full";
    /// The match does not accept joins right now.
    pub const MATCH_NOT_JOINABLE: &str = "match.locked";
    /// Already in a match.
    pub const MATCH_ALREADY_IN_MATCH: &str = "match.already_in_match";
    /// The game mode does not exist.
    pub const UNKNOWN_MODE: &str = "matchmaker.unknown_mode";
    /// No such matchmaker ticket (or not yours).
    pub const TICKET_NOT_FOUND: &str = "matchmaker.ticket_not_found";
    /// The mode's queue is full.
    pub const QUEUE_FULL: &str = "matchmaker.queue_full";
    // parties
    /// No such party (404). Ours: asobi has no parties.
    pub const PARTY_NOT_FOUND: &str = "party.not_found";
    /// The party holds its `max_size` members (409). Ours: asobi has no parties.
    pub const PARTY_FULL: &str = "party.full";
    /// Only the party's leader may do this (403). Ours: asobi has no parties.
    pub const PARTY_NOT_LEADER: &str = "party.not_leader";
    /// The caller or the player named is not in the party (403). Ours: asobi has no parties.
    pub const PARTY_NOT_MEMBER: &str = "party.not_member";
    /// Already in this party, or already in a party when creating one (409). Ours: asobi has no parties.
    pub const PARTY_ALREADY_MEMBER: &str = "party.already_member";
    /// Joining while seated in another party (409). Ours: asobi has no parties.
    pub const PARTY_IN_ANOTHER_PARTY: &str = "party.in_another_party";
    /// The party is invite-only and the caller holds no invite (403). Ours: asobi has no parties.
    pub const PARTY_INVITE_ONLY: &str = "party.invite_only";
    /// No live invite to accept or decline (404). Ours: asobi has no parties.
    pub const PARTY_INVITE_NOT_FOUND: &str = "party.invite_not_found";
    /// The party holds its cap of pending invites (429). Ours: asobi has no parties.
    pub const PARTY_TOO_MANY_INVITES: &str = "party.too_many_invites";
    /// The party is in a matchmaking queue; it takes no one new until cancelled (409). Ours: asobi has no parties.
    pub const PARTY_QUEUED: &str = "party.queued";
    /// `party.cancel` on a party that holds no ticket (404). Ours: asobi has no parties.
    pub const PARTY_NOT_QUEUED: &str = "party.not_queued";
    /// The roster changed while the party was being queued; the ticket was dropped (409). Ours: asobi has no parties.
    pub const PARTY_CHANGED: &str = "party.changed";
    /// The leader named themselves to invite or kick (400). Ours: asobi has no parties.
    pub const PARTY_SELF_TARGET: &str = "party.self_target";
    /// The party is larger than one team of the mode (400). Ours: asobi has no parties.
    pub const MATCHMAKER_PARTY_TOO_LARGE: &str = "matchmaker.party_too_large";
    /// A party member already holds a ticket in the mode (409). Ours: asobi has no parties.
    pub const MATCHMAKER_MEMBER_QUEUED: &str = "matchmaker.member_queued";
    /// A request failed for a reason with no code of its own; the reason is in `details.reason`.
    pub const REQUEST_FAILED: &str = "ws.request_failed";
    /// The game's `join` refused the player; its reason is in `details.refused_reason`.
    pub const MATCH_JOIN_REFUSED: &str = "match.join_refused";
    /// The join context is not a flat object. A `ws.request_failed` reason (asobi), not a code.
    pub const INVALID_JOIN_CTX: &str = "invalid_join_ctx";
    /// The join context has more than 8 keys. A `ws.request_failed` reason (asobi), not a code.
    pub const JOIN_CTX_TOO_MANY_KEYS: &str = "join_ctx_too_many_keys";
    /// A join context key is longer than 64 bytes. A `ws.request_failed` reason (asobi), not a code.
    pub const JOIN_CTX_KEY_TOO_LONG: &str = "join_ctx_key_too_long";
    /// A join context string value is longer than 256 bytes. A `ws.request_failed` reason (asobi), not a code.
    pub const JOIN_CTX_VALUE_TOO_LONG: &str = "join_ctx_value_too_long";
    /// A join context value is not a string, integer or boolean. A `ws.request_failed` reason (asobi), not a code.
    pub const INVALID_JOIN_CTX_VALUE: &str = "invalid_join_ctx_value";
    /// Guest auth is not enabled.
    pub const GUEST_AUTH_DISABLED: &str = "guest.disabled";
    /// Guest request without its fields.
    pub const MISSING_REQUIRED_FIELDS: &str = "missing_field";
    /// The guest device secret is too short or too long.
    pub const WEAK_DEVICE_SECRET: &str = "guest.weak_device_secret";
    /// The guest device id is empty or too long.
    pub const INVALID_DEVICE_ID: &str = "guest.invalid_device_id";
    /// Wrong secret for a known device.
    pub const INVALID_DEVICE_SECRET: &str = "guest.invalid_device_secret";
    /// The device verifier was revoked.
    pub const GUEST_REVOKED: &str = "guest.revoked";
    /// The guest account was already claimed.
    pub const GUEST_UPGRADED: &str = "guest.already_upgraded";
    /// Upgrade target is not an unclaimed guest.
    pub const NOT_AN_UNCLAIMED_GUEST: &str = "guest.not_unclaimed";
    /// The device is already registered to a guest (a concurrent guest sign-in won the race).
    pub const DEVICE_ALREADY_REGISTERED: &str = "guest.device_already_registered";
    /// A guest device points at a player that no longer exists.
    pub const GUEST_PLAYER_MISSING: &str = "internal";
    /// The match script failed in `init`; the match was not created.
    pub const MATCH_START_FAILED: &str = "internal";
    /// A WebSocket upgrade request that is not a valid RFC 6455 handshake.
    pub const BAD_WEBSOCKET_UPGRADE: &str = "bad_websocket_upgrade";
    /// The shard owning the request is not keeping up; retry shortly (ours: asobi has none).
    pub const OVERLOADED: &str = "overloaded";
    /// A matchmaker ticket's `properties` are larger or deeper than the matcher accepts.
    pub const PROPERTIES_TOO_LARGE: &str = "matchmaker.properties_too_large";
    /// A message type that is not valid UTF-8 JSON text on a text frame (close 1007).
    pub const INVALID_UTF8: &str = "invalid_utf8";
    // economy
    /// The wallet holds less than the debit or price (402).
    pub const ECONOMY_INSUFFICIENT_FUNDS: &str = "economy.insufficient_funds";
    /// The store listing exists but is not on sale (400).
    pub const ECONOMY_LISTING_INACTIVE: &str = "economy.listing_inactive";
    /// The purchase could not be completed (500).
    pub const ECONOMY_PURCHASE_FAILED: &str = "economy.purchase_failed";
    /// No store listing with this id (404; ours: asobi answers `economy.purchase_failed`).
    pub const ECONOMY_LISTING_NOT_FOUND: &str = "economy.listing_not_found";
    /// The currency is not one the economy file declares (400; ours: asobi has no list).
    pub const ECONOMY_UNKNOWN_CURRENCY: &str = "economy.unknown_currency";
    /// The idempotency key was already used for a different request (409; ours).
    pub const ECONOMY_IDEMPOTENCY_KEY_REUSED: &str = "economy.idempotency_key_reused";
    /// No inventory item with this id (404).
    pub const INVENTORY_ITEM_NOT_FOUND: &str = "inventory.item_not_found";
    /// The item stack holds fewer than the amount asked (400).
    pub const INVENTORY_INSUFFICIENT_QUANTITY: &str = "inventory.insufficient_quantity";
    /// `quantity` is missing, not a positive integer, or over the cap (400).
    pub const INVENTORY_INVALID_QUANTITY: &str = "inventory.invalid_quantity";
    // leaderboards
    /// Clients may not submit scores to this board (asobi's default for every board).
    pub const LEADERBOARD_CLIENT_SUBMIT_DISABLED: &str = "leaderboard.client_submit_disabled";
    /// The server holds as many boards as it may; a new board cannot start.
    pub const LEADERBOARD_CAPACITY_REACHED: &str = "leaderboard.capacity_reached";
    /// A player asked to befriend themselves.
    pub const SOCIAL_CANNOT_FRIEND_SELF: &str = "social.cannot_friend_self";
    /// No player exists with the friend id.
    pub const SOCIAL_FRIEND_NOT_FOUND: &str = "social.friend_not_found";
    /// The friendship exists already.
    pub const SOCIAL_ALREADY_FRIEND: &str = "social.already_friend";
    /// No friendship (or request) between these players.
    pub const SOCIAL_FRIENDSHIP_NOT_FOUND: &str = "social.friendship_not_found";
    /// No group with this id.
    pub const SOCIAL_GROUP_NOT_FOUND: &str = "social.group_not_found";
    /// The group is closed.
    pub const SOCIAL_GROUP_CLOSED: &str = "social.group_closed";
    /// The group holds as many members as allowed.
    pub const SOCIAL_GROUP_FULL: &str = "social.group_full";
    /// The player is a member already.
    pub const SOCIAL_ALREADY_MEMBER: &str = "social.already_member";
    /// Not a role groups define.
    pub const SOCIAL_INVALID_ROLE: &str = "social.invalid_role";
    /// No such member in the group.
    pub const SOCIAL_MEMBER_NOT_FOUND: &str = "social.member_not_found";
    /// The recipient blocked the sender.
    pub const DM_BLOCKED: &str = "dm.blocked";
    /// A direct message without content.
    pub const DM_CONTENT_EMPTY: &str = "dm.content_empty";
    /// A direct message over the size limit.
    pub const DM_CONTENT_TOO_LARGE: &str = "dm.content_too_large";
    /// No notification with this id.
    pub const NOTIFICATION_NOT_FOUND: &str = "notification.not_found";
    /// The channel id is empty, too long or has no known prefix.
    pub const CHAT_INVALID_CHANNEL_ID: &str = "chat.invalid_channel_id";
    /// This connection joined as many channels as allowed.
    pub const CHAT_TOO_MANY_CHANNELS: &str = "chat.too_many_channels";
    /// The channel holds as many members as one channel may, or its shard as many channels.
    pub const CHAT_CHANNEL_FULL: &str = "chat.channel_full";
    // storage, cloud saves, rpc
    /// No object at this collection and key (404).
    pub const STORAGE_NOT_FOUND: &str = "storage.not_found";
    /// The object's permissions do not allow this (403).
    pub const STORAGE_FORBIDDEN: &str = "storage.forbidden";
    /// The value is larger than the per-object limit (413).
    pub const STORAGE_VALUE_TOO_LARGE: &str = "storage.value_too_large";
    /// `read_perm` / `write_perm` is not a known permission (400).
    pub const STORAGE_INVALID_PERM: &str = "storage.invalid_perm";
    /// The body is not a JSON object of the documented shape (400).
    pub const STORAGE_INVALID_REQUEST: &str = "storage.invalid_request";
    /// The collection and key resolve to more than one object (500).
    pub const STORAGE_CONFLICT: &str = "storage.conflict";
    /// A write named a stale `version`; `details.current_version` (409; ours).
    pub const STORAGE_VERSION_CONFLICT: &str = "storage.version_conflict";
    /// No cloud save in this slot (404).
    pub const SAVE_NOT_FOUND: &str = "save.not_found";
    /// The save data is larger than the per-slot limit (413).
    pub const SAVE_TOO_LARGE: &str = "save.too_large";
    /// The slot was written by another client; `details.current_version` (409).
    pub const SAVE_VERSION_CONFLICT: &str = "save.version_conflict";
    /// Every cloud-save slot is in use (409).
    pub const SAVE_SLOT_LIMIT_REACHED: &str = "save.slot_limit_reached";
    /// No RPC is registered under this method (404).
    pub const RPC_UNKNOWN_METHOD: &str = "rpc.unknown_method";
    /// `cid` is missing, empty, over 64 bytes or not printable ASCII (400).
    pub const RPC_INVALID_CID: &str = "rpc.invalid_cid";
    /// `protocol` is not this server's RPC version (400).
    pub const RPC_UNSUPPORTED_PROTOCOL: &str = "rpc.unsupported_protocol";
    /// `params` is not a JSON object (400).
    pub const RPC_INVALID_PARAMS: &str = "rpc.invalid_params";
    /// The provider rejected the token (reason in `details.reason`).
    pub const AUTH_PROVIDER_REJECTED: &str = "auth.provider_rejected";
    /// No provider is configured under that name.
    pub const AUTH_UNSUPPORTED_PROVIDER: &str = "auth.unsupported_provider";
    /// The registration posture refuses new accounts.
    pub const AUTH_REGISTRATION_CLOSED: &str = "auth.registration_closed";
    /// `oauth_only`: password sign-up is off.
    pub const AUTH_PASSWORD_REGISTRATION_DISABLED: &str = "auth.password_registration_disabled";
    /// Two first sign-ins for one provider identity raced.
    pub const AUTH_ALREADY_REGISTERING: &str = "auth.already_registering";
    /// The provider account is linked to another player.
    pub const AUTH_PROVIDER_ALREADY_LINKED: &str = "auth.provider_already_linked";
    /// No such linked identity.
    pub const AUTH_IDENTITY_NOT_FOUND: &str = "auth.identity_not_found";
    /// Unlinking would leave no way to sign in.
    pub const AUTH_LAST_AUTH_METHOD: &str = "auth.last_auth_method";
    /// A provider-only player could not be created.
    pub const AUTH_REGISTRATION_FAILED: &str = "auth.registration_failed";
    /// The player is banned (ours: asobi refuses a banned player's token without a code).
    pub const AUTH_BANNED: &str = "auth.banned";
    /// Over the per-player join limit (10 per minute).
    pub const JOIN_RATE_LIMITED: &str = "join_rate_limited";
    /// No live world with this id (404).
    pub const WORLD_NOT_FOUND: &str = "world.not_found";
    /// The connection is already in another world (409).
    pub const WORLD_ALREADY_JOINED: &str = "world.already_joined";
    /// The player owns as many live worlds as `world_max_per_player` allows (429).
    pub const WORLD_PLAYER_LIMIT_REACHED: &str = "world.player_limit_reached";
    /// The deployment runs `world_max` worlds (503).
    pub const WORLD_CAPACITY_REACHED: &str = "world.capacity_reached";
    /// The world could not be created; `details.reason` says why (400).
    pub const WORLD_CREATE_FAILED: &str = "world.create_failed";
    /// Over the node-wide guest-creation limit.
    pub const GUEST_RATE_LIMITED: &str = "guest.rate_limited";
    /// The unclaimed-guest cap is reached.
    pub const GUEST_CAPACITY_REACHED: &str = "guest.capacity_reached";
    /// The guests could not be counted, so none is created.
    pub const GUEST_UNAVAILABLE: &str = "guest.unavailable";
    /// Erase: the password does not match.
    pub const PLAYER_CONFIRMATION_FAILED: &str = "player.confirmation_failed";
    /// Erase: the password changed meanwhile.
    pub const PLAYER_CREDENTIALS_CHANGED: &str = "player.credentials_changed";
    // tournaments
    /// No tournament with this id (404).
    pub const TOURNAMENT_NOT_FOUND: &str = "tournament.not_found";
    /// The tournament holds as many entrants as allowed (409).
    pub const TOURNAMENT_FULL: &str = "tournament.full";
    /// The player entered before (409).
    pub const TOURNAMENT_ALREADY_JOINED: &str = "tournament.already_joined";
    /// The tournament ended and takes no entrants (409; ours: asobi answers `not_found`).
    pub const TOURNAMENT_CLOSED: &str = "tournament.closed";
    /// The tournament has not started (409; ours: asobi lets players in early).
    pub const TOURNAMENT_NOT_STARTED: &str = "tournament.not_started";
    // in-app purchases
    /// The store rejected the receipt; `details.reason` names the step (422).
    pub const IAP_VERIFICATION_FAILED: &str = "iap.verification_failed";
    /// The verified receipt carries no transaction id (422).
    pub const IAP_MISSING_TRANSACTION_ID: &str = "iap.missing_transaction_id";
    /// Another player already claimed this transaction (409).
    pub const IAP_TRANSACTION_ALREADY_CLAIMED: &str = "iap.transaction_already_claimed";
    /// The verified transaction could not be recorded (500).
    pub const IAP_RECORD_FAILED: &str = "iap.record_failed";
    /// Ops: an id that is not the shape the endpoint accepts.
    pub const OPS_INVALID_ID: &str = "ops.invalid_id";
    /// Ops: a filter value that is not the shape its column holds.
    pub const OPS_INVALID_FILTER: &str = "ops.invalid_filter";
    /// Ops: no record with this id.
    pub const OPS_NOT_FOUND: &str = "ops.not_found";
    /// Ops: `sort` names a field the list does not sort on.
    pub const OPS_UNKNOWN_SORT_FIELD: &str = "ops.unknown_sort_field";
    /// Ops: `order` is neither `asc` nor `desc`.
    pub const OPS_UNKNOWN_SORT_ORDER: &str = "ops.unknown_sort_order";
    /// Ops: an irreversible action without its confirmation echo.
    pub const OPS_CONFIRMATION_REQUIRED: &str = "ops.confirmation_required";
    /// Ops: the confirmation echo does not match.
    pub const OPS_CONFIRMATION_MISMATCH: &str = "ops.confirmation_mismatch";
    /// Ops: a guest purge without a valid `inactive_for_seconds`.
    pub const OPS_INVALID_CUTOFF: &str = "ops.invalid_cutoff";
    /// Ops: `confirm_count` differs from the cohort counted now.
    pub const OPS_PURGE_COUNT_MISMATCH: &str = "ops.purge_count_mismatch";
    /// Console: off on this node, or no such resource.
    pub const CONSOLE_NOT_FOUND: &str = "console.not_found";
    // votes
    /// No stored vote with this id (404).
    pub const VOTE_NOT_FOUND: &str = "vote.not_found";
}

/// Codes whose REST body keeps its details at the top level too (asobi's `legacy/2`).
const LEGACY_TOP_LEVEL: &[&str] = &[code::VALIDATION_FAILED, code::RATE_LIMITED];

/// One failure as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status for REST answers (WebSocket frames ignore it).
    pub status: u16,
    /// Stable machine-readable code.
    pub code: Cow<'static, str>,
    /// Prose for a human reading a log.
    pub message: Cow<'static, str>,
    /// Always an object; `{}` when there is nothing to add.
    pub details: Value,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a Value,
}

impl ApiError {
    /// An error with empty details.
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: json!({}),
        }
    }

    /// Adds details (must be an object; anything else is wrapped as `{"value": ..}`).
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = match details {
            Value::Object(_) => details,
            other => json!({ "value": other }),
        };
        self
    }

    /// 400 `missing_field` naming the field.
    pub fn missing_field(field: &str) -> ApiError {
        ApiError::new(
            400,
            code::MISSING_FIELD,
            format!("The field `{field}` is required."),
        )
        .with_details(json!({ "field": field }))
    }

    /// 400 for a payload that does not decode, telling missing fields apart from wrong ones.
    pub fn invalid_payload(e: &serde_json::Error) -> ApiError {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return ApiError::missing_field(field);
        }
        if e.is_syntax() || e.is_eof() {
            return ApiError::new(400, code::INVALID_JSON, "The body is not valid JSON.");
        }
        ApiError::new(
            400,
            code::INVALID_FIELD,
            "A field has the wrong type or value.",
        )
        .with_details(json!({ "reason": text }))
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            401,
            code::UNAUTHENTICATED,
            "A valid bearer token is required.",
        )
    }

    /// 500 with a generic message; the cause belongs in the server log, not on the wire.
    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            code::INTERNAL,
            "The server failed to handle the request.",
        )
    }

    /// The REST body `{"error":{"code","message","details"}}`. For the codes whose details
    /// asobi also keeps at the top level (`validation_failed`'s `fields`/`errors`,
    /// `rate_limited`'s `retry_after`), those keys are repeated there, as asobi does.
    pub fn to_rest_body(&self) -> Vec<u8> {
        let mut body = match (&self.details, LEGACY_TOP_LEVEL.contains(&&*self.code)) {
            (Value::Object(d), true) => d.clone(),
            _ => serde_json::Map::new(),
        };
        body.insert("error".into(), self.body_value());
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// asobi's older flat `reason` for this error on the WebSocket: the raw reason for
    /// `ws.request_failed`, the names asobi's handler uses for match and world failures, and the
    /// code without its namespace otherwise.
    pub fn ws_reason(&self) -> &str {
        if self.code == code::REQUEST_FAILED {
            if let Some(r) = self.details.get("reason").and_then(Value::as_str) {
                return r;
            }
        }
        match &*self.code {
            "match.not_found" => "match_not_found",
            "match.full" => "match_full",
            "match.locked" => "match_locked",
            "match.join_refused" => "join_refused",
            "world.not_found" => "world_not_found",
            "world.already_joined" => "already_in_world",
            other => other.rsplit_once('.').map_or(other, |(_, leaf)| leaf),
        }
    }

    /// The WebSocket `error` frame. `reason` is asobi's older flat dialect; it defaults to the
    /// code without its namespace. `request_type` names the message that failed, when useful.
    pub fn to_ws_frame(
        &self,
        cid: Option<&RawValue>,
        reason: Option<&str>,
        request_type: Option<&str>,
    ) -> Bytes {
        let reason = reason.unwrap_or_else(|| self.ws_reason());
        let mut payload = serde_json::Map::new();
        if let Some(t) = request_type {
            payload.insert("type".into(), Value::from(t));
        }
        payload.insert("reason".into(), Value::from(reason));
        payload.insert("error".into(), self.body_value());
        crate::envelope::encode_frame("error", cid, &payload)
    }

    fn body_value(&self) -> Value {
        serde_json::to_value(ErrorBody {
            code: &self.code,
            message: &self.message,
            details: &self.details,
        })
        .unwrap_or(Value::Null)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A typed handle for codes, for callers that prefer not to pass strings around.
pub type Code = &'static str;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_body_has_asobi_shape() {
        let e = ApiError::new(404, code::NOT_FOUND, "nope");
        let v: Value = serde_json::from_slice(&e.to_rest_body()).unwrap();
        assert_eq!(
            v,
            json!({"error":{"code":"not_found","message":"nope","details":{}}})
        );
    }

    #[test]
    fn ws_frame_matches_fixture_shape() {
        let e = ApiError::new(
            400,
            code::INVALID_MESSAGE,
            "The message is missing a string `type` field.",
        );
        let v: Value = serde_json::from_slice(&e.to_ws_frame(None, None, None)).unwrap();
        let fixture: Value = serde_json::from_str(
            r#"{"type":"error","payload":{"reason":"invalid_message","error":{"code":"invalid_message","message":"The message is missing a string `type` field.","details":{}}}}"#,
        )
        .unwrap();
        assert_eq!(v, fixture);
    }

    #[test]
    fn namespaced_code_gives_leaf_reason() {
        let e = ApiError::new(400, code::MATCH_NOT_IN_MATCH, "x");
        let v: Value =
            serde_json::from_slice(&e.to_ws_frame(None, None, Some("match.input"))).unwrap();
        assert_eq!(v["payload"]["reason"], "not_in_match");
        assert_eq!(v["payload"]["type"], "match.input");
    }

    #[test]
    fn decode_errors_name_missing_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            token: String,
        }
        let e = serde_json::from_str::<P>("{}").unwrap_err();
        let api = ApiError::invalid_payload(&e);
        assert_eq!(api.code, code::MISSING_FIELD);
        assert_eq!(api.details["field"], "token");
        let e = serde_json::from_str::<P>(r#"{"token":1}"#).unwrap_err();
        assert_eq!(ApiError::invalid_payload(&e).code, code::INVALID_FIELD);
    }

    #[test]
    fn validation_failed_keeps_fields_at_top_level_too() {
        let e = ApiError::new(422, code::VALIDATION_FAILED, "x")
            .with_details(json!({"fields": {"password": ["too short"]}}));
        let v: Value = serde_json::from_slice(&e.to_rest_body()).unwrap();
        assert_eq!(v["fields"]["password"][0], "too short");
        assert_eq!(v["error"]["details"]["fields"]["password"][0], "too short");
        let other = ApiError::new(404, code::PLAYER_NOT_FOUND, "x").with_details(json!({"a": 1}));
        let v: Value = serde_json::from_slice(&other.to_rest_body()).unwrap();
        assert!(v.get("a").is_none());
    }

    #[test]
    fn ws_reasons_are_asobis() {
        let reason = |e: ApiError| e.ws_reason().to_owned();
        assert_eq!(
            reason(ApiError::new(404, code::MATCH_NOT_FOUND, "")),
            "match_not_found"
        );
        assert_eq!(
            reason(ApiError::new(409, code::MATCH_NOT_JOINABLE, "")),
            "match_locked"
        );
        assert_eq!(
            reason(ApiError::new(409, code::MATCH_FULL, "")),
            "match_full"
        );
        assert_eq!(
            reason(ApiError::new(403, code::MATCH_JOIN_REFUSED, "")),
            "join_refused"
        );
        let failed = ApiError::new(400, code::REQUEST_FAILED, "")
            .with_details(json!({"reason": code::INVALID_JOIN_CTX}));
        assert_eq!(reason(failed), "invalid_join_ctx");
    }

    /// asobi's closed set, as far as this server emits it (asobi `src/asobi_error.erl`).
    const ASOBI_CODES: &[&str] = &[
        "auth.provider_rejected",
        "auth.unsupported_provider",
        "auth.registration_closed",
        "auth.password_registration_disabled",
        "auth.already_registering",
        "auth.provider_already_linked",
        "auth.identity_not_found",
        "auth.last_auth_method",
        "auth.registration_failed",
        "player.confirmation_failed",
        "player.credentials_changed",
        "join_rate_limited",
        "guest.rate_limited",
        "guest.capacity_reached",
        "guest.unavailable",
        "internal",
        "rate_limited",
        "payload_too_large",
        "invalid_json",
        "invalid_message",
        "invalid_payload",
        "missing_field",
        "unknown_type",
        "unauthenticated",
        "forbidden",
        "ops.invalid_id",
        "ops.invalid_filter",
        "ops.not_found",
        "ops.unknown_sort_field",
        "ops.unknown_sort_order",
        "ops.confirmation_required",
        "ops.confirmation_mismatch",
        "ops.invalid_cutoff",
        "ops.purge_count_mismatch",
        "console.not_found",
        "validation_failed",
        "auth.username_taken",
        "auth.invalid_credentials",
        "guest.disabled",
        "guest.invalid_device_id",
        "guest.weak_device_secret",
        "guest.invalid_device_secret",
        "guest.revoked",
        "guest.already_upgraded",
        "guest.device_already_registered",
        "guest.not_unclaimed",
        "player.not_found",
        "matchmaker.ticket_not_found",
        "match.not_found",
        "match.not_in_match",
        "match.full",
        "match.locked",
        "match.join_refused",
        "world.not_found",
        "world.already_joined",
        "world.player_limit_reached",
        "world.capacity_reached",
        "world.create_failed",
        "matchmaker.unknown_mode",
        "matchmaker.queue_full",
        "ws.request_failed",
        "economy.insufficient_funds",
        "economy.listing_inactive",
        "economy.purchase_failed",
        "inventory.item_not_found",
        "inventory.insufficient_quantity",
        "inventory.invalid_quantity",
        "leaderboard.client_submit_disabled",
        "social.cannot_friend_self",
        "social.friend_not_found",
        "social.already_friend",
        "social.friendship_not_found",
        "social.group_not_found",
        "social.group_closed",
        "social.group_full",
        "social.already_member",
        "social.invalid_role",
        "social.member_not_found",
        "dm.blocked",
        "dm.content_empty",
        "dm.content_too_large",
        "notification.not_found",
        "chat.invalid_channel_id",
        "chat.too_many_channels",
        "storage.not_found",
        "storage.forbidden",
        "storage.value_too_large",
        "storage.invalid_perm",
        "storage.invalid_request",
        "storage.conflict",
        "save.not_found",
        "save.too_large",
        "save.version_conflict",
        "save.slot_limit_reached",
        "rpc.unknown_method",
        "rpc.invalid_cid",
        "rpc.unsupported_protocol",
        "rpc.invalid_params",
        "tournament.not_found",
        "tournament.full",
        "tournament.already_joined",
        "iap.verification_failed",
        "iap.missing_transaction_id",
        "iap.transaction_already_claimed",
        "iap.record_failed",
        "vote.not_found",
    ];

    /// Codes of our own, each where asobi has no equivalent; the README lists them.
    const OWN_CODES: &[&str] = &[
        "not_found",
        "method_not_allowed",
        "storage_unavailable",
        "request_timeout",
        "shutting_down",
        "match.already_in_match",
        "bad_websocket_upgrade",
        "overloaded",
        "matchmaker.properties_too_large",
        "invalid_utf8",
        "economy.listing_not_found",
        "economy.unknown_currency",
        "economy.idempotency_key_reused",
        "leaderboard.capacity_reached",
        "chat.channel_full",
        "storage.version_conflict",
        "auth.banned",
        "tournament.closed",
        "tournament.not_started",
        "party.not_found",
        "party.full",
        "party.not_leader",
        "party.not_member",
        "party.already_member",
        "party.in_another_party",
        "party.invite_only",
        "party.invite_not_found",
        "party.too_many_invites",
        "party.queued",
        "party.not_queued",
        "party.changed",
        "party.self_target",
        "matchmaker.party_too_large",
        "matchmaker.member_queued",
    ];

    #[test]
    fn every_code_is_asobis_or_a_listed_own_one() {
        let src = include_str!("error.rs");
        let module =
            &src[src.find("pub mod code").unwrap()..src.find("/// Codes whose REST").unwrap()];
        for line in module.lines().filter(|l| l.contains("pub const")) {
            let doc_reason = line.contains("JOIN_CTX");
            let value = line.split('"').nth(1).unwrap();
            if doc_reason {
                continue;
            }
            assert!(
                ASOBI_CODES.contains(&value) || OWN_CODES.contains(&value),
                "`{value}` is neither asobi's nor a listed code of our own"
            );
        }
        let readme = include_str!("../../README.md");
        for own in OWN_CODES {
            assert!(
                readme.contains(&format!("`{own}`")),
                "README does not list `{own}`"
            );
        }
    }
}
