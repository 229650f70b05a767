//! The rows the engine reads and writes, plus the rules both backends apply identically
//! (patch merging, username folding, list limits) so the two never drift apart.

use serde_json::Value;

use crate::StoreError;

/// A player to create. The caller picks the id (a UUIDv7 string) and the clock.
#[derive(Clone, Debug)]
pub struct NewPlayer {
    /// Primary key chosen by the caller.
    pub id: String,
    /// Login name; unique ignoring case.
    pub username: String,
    /// Optional name shown to other players.
    pub display_name: Option<String>,
    /// Password hash (the engine hashes); `None` for guests.
    pub password_hash: Option<String>,
    /// Whether this is a device-bound guest account.
    pub is_guest: bool,
    /// Creation time, unix milliseconds.
    pub now_ms: i64,
}

/// A stored player profile. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Player {
    /// Primary key (UUIDv7 string).
    pub id: String,
    /// Login name as entered; `erased_<id>` after erasure.
    pub username: String,
    /// Optional name shown to other players.
    pub display_name: Option<String>,
    /// Optional avatar URL.
    pub avatar_url: Option<String>,
    /// Free-form JSON object, `{}` by default.
    pub metadata: Value,
    /// Whether this is a device-bound guest account.
    pub is_guest: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last profile change.
    pub updated_at: i64,
    /// When the player was erased (GDPR), if ever.
    pub erased_at: Option<i64>,
}

/// A partial profile update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct PlayerPatch {
    /// New display name, or `Some(None)` to clear it.
    pub display_name: Option<Option<String>>,
    /// New avatar URL, or `Some(None)` to clear it.
    pub avatar_url: Option<Option<String>>,
    /// Replacement metadata; must be a JSON object.
    pub metadata: Option<Value>,
    /// Time of the change, unix milliseconds (becomes `updated_at`).
    pub now_ms: i64,
}

/// A guest device binding: the device id a client presents and the verifier the engine checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDevice {
    /// Client-chosen device identifier (primary key).
    pub device_id: String,
    /// The guest player this device logs in as.
    pub player_id: String,
    /// Opaque verifier computed by the engine (an HMAC); storage only keeps it.
    pub verifier: String,
    /// Whether the binding was revoked by an operator.
    pub revoked: bool,
}

/// A refresh token to store. Only a hash of the token ever reaches storage.
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    /// Hash of the token (primary key).
    pub token_hash: String,
    /// Owner of the token.
    pub player_id: String,
    /// Rotation family: every token rotated from the same login shares it.
    pub family_id: String,
    /// Expiry, unix milliseconds.
    pub expires_at_ms: i64,
    /// Issue time, unix milliseconds.
    pub now_ms: i64,
}

/// What [`crate::StoreHandle::rotate_refresh_token`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token was live: it is now used and the new one is stored in its family.
    Rotated {
        /// Owner of the token family.
        player_id: String,
    },
    /// The old token had already been used or revoked: the whole family is now revoked.
    Reused,
    /// No such token.
    Unknown,
    /// The old token is past its expiry; nothing changed.
    Expired,
}

/// A finished match as recorded for history and replays.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MatchRecord {
    /// Match id (primary key).
    pub id: String,
    /// Game mode name.
    pub mode: String,
    /// Final status: "finished", "error", ...
    pub status: String,
    /// Player ids in roster order.
    pub players: Vec<String>,
    /// Result JSON produced by the match script.
    pub result: Value,
    /// Start time, unix milliseconds.
    pub started_at: i64,
    /// End time, unix milliseconds.
    pub finished_at: i64,
}

/// Filters for [`crate::StoreHandle::list_match_records`]; `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct MatchQuery {
    /// Only this game mode.
    pub mode: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only matches this player took part in.
    pub player_id: Option<String>,
    /// Maximum rows; clamped to `1..=MAX_MATCH_LIST` (0 therefore returns one row).
    pub limit: u32,
}

/// Largest page `list_match_records` returns, so one request cannot pull the whole history.
pub const MAX_MATCH_LIST: u32 = 200;

/// The key that enforces case-insensitive username uniqueness.
pub(crate) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// Username given to an erased player; it carries no personal data.
pub(crate) fn erased_username(id: &str) -> String {
    format!("erased_{id}")
}

pub(crate) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_MATCH_LIST)
}

/// Wall-clock milliseconds, for the few calls whose signature carries no `now_ms`.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Merges a patch into the current profile; both backends write back exactly these fields.
pub(crate) fn apply_patch(mut player: Player, patch: PlayerPatch) -> Result<Player, StoreError> {
    if player.erased_at.is_some() {
        return Err(StoreError::Precondition("player is erased".to_owned()));
    }
    if let Some(metadata) = patch.metadata {
        if !metadata.is_object() {
            return Err(StoreError::Precondition(
                "metadata must be a JSON object".to_owned(),
            ));
        }
        player.metadata = metadata;
    }
    if let Some(display_name) = patch.display_name {
        player.display_name = display_name;
    }
    if let Some(avatar_url) = patch.avatar_url {
        player.avatar_url = avatar_url;
    }
    player.updated_at = patch.now_ms;
    Ok(player)
}

/// Parses a JSON column; a column that does not parse means the row was written by something else.
pub(crate) fn parse_json(column: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("column {column} holds invalid JSON: {e}")))
}

pub(crate) fn parse_players(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("column players holds invalid JSON: {e}")))
}

/// A fresh player as `create_player` / `create_guest` store it.
pub(crate) fn new_player_row(p: &NewPlayer, is_guest: bool) -> Player {
    Player {
        id: p.id.clone(),
        username: p.username.clone(),
        display_name: p.display_name.clone(),
        avatar_url: None,
        metadata: Value::Object(serde_json::Map::new()),
        is_guest,
        created_at: p.now_ms,
        updated_at: p.now_ms,
        erased_at: None,
    }
}

/// Column list every player SELECT uses, in the order the row mappers read.
pub(crate) const PLAYER_COLUMNS: &str =
    "p.id, p.username, p.display_name, p.avatar_url, p.metadata, p.is_guest, p.created_at, p.updated_at, p.erased_at";

/// Column list every match record SELECT uses, in the order the row mappers read.
pub(crate) const MATCH_COLUMNS: &str =
    "m.id, m.mode, m.status, m.players, m.result, m.started_at, m.finished_at";

/// Names a unique-key violation by what it means to the caller, from the constraint or message
/// text either backend reports (both mention the table; the username key mentions the column).
pub(crate) fn conflict(raw: &str) -> StoreError {
    let what = if raw.contains("username_lower") {
        "username already taken"
    } else if raw.contains("guest_devices") {
        "device already registered"
    } else if raw.contains("match_record") {
        "match record already exists"
    } else if raw.contains("refresh_tokens") {
        "refresh token already exists"
    } else if raw.contains("players") {
        "player id already exists"
    } else {
        return StoreError::Conflict(raw.to_owned());
    };
    StoreError::Conflict(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Player {
        new_player_row(
            &NewPlayer {
                id: "p1".into(),
                username: "Ann".into(),
                display_name: Some("Ann".into()),
                password_hash: None,
                is_guest: false,
                now_ms: 10,
            },
            false,
        )
    }

    #[test]
    fn patch_sets_clears_and_keeps() {
        let patch = PlayerPatch {
            display_name: Some(None),
            avatar_url: Some(Some("http://a/b.png".into())),
            metadata: None,
            now_ms: 20,
        };
        let p = apply_patch(sample(), patch).unwrap();
        assert_eq!(p.display_name, None);
        assert_eq!(p.avatar_url.as_deref(), Some("http://a/b.png"));
        assert_eq!(p.metadata, serde_json::json!({}));
        assert_eq!((p.created_at, p.updated_at), (10, 20));
    }

    #[test]
    fn patch_rejects_non_object_metadata_and_erased() {
        let bad = PlayerPatch {
            metadata: Some(serde_json::json!([1])),
            ..Default::default()
        };
        assert!(matches!(
            apply_patch(sample(), bad),
            Err(StoreError::Precondition(_))
        ));
        let mut erased = sample();
        erased.erased_at = Some(5);
        assert!(matches!(
            apply_patch(erased, PlayerPatch::default()),
            Err(StoreError::Precondition(_))
        ));
    }

    #[test]
    fn limits_clamp() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(50), 50);
        assert_eq!(clamp_limit(10_000), MAX_MATCH_LIST);
    }
}
