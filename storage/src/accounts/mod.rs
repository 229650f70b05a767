//! Accounts: players, their credentials, guest devices, refresh tokens and the GDPR erase.
//!
//! This file holds the feature's types, the rules both backends apply identically (patch
//! merging, username folding), the [`Accounts`] trait each backend implements in
//! `sqlite.rs` / `postgres.rs`, and the [`StoreHandle`] methods, each one line that ships the
//! trait call to the bridge. A new operation is a trait method, its two implementations and
//! one facade line; nothing outside this folder changes.

pub(crate) mod postgres;
pub(crate) mod sqlite;

pub(crate) use postgres::insert_player as pg_insert_player;
pub(crate) use sqlite::insert_player as sqlite_insert_player;

use serde_json::Value;

use crate::backend::Reply;
use crate::handle::wall_clock_ms;
use crate::{StoreError, StoreHandle};

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

/// What [`StoreHandle::rotate_refresh_token`] did.
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

/// The accounts operations one database implements. Arguments are owned so a call can move
/// onto the bridge thread; the clock is passed in where the public call has none.
pub(crate) trait Accounts: Send + Sync {
    fn create_player(&self, p: NewPlayer) -> Reply<'_, Player>;
    fn player(&self, id: String) -> Reply<'_, Option<Player>>;
    fn player_by_username(&self, username: String) -> Reply<'_, Option<(Player, Option<String>)>>;
    fn update_player(&self, id: String, patch: PlayerPatch) -> Reply<'_, Option<Player>>;
    fn upgrade_guest(
        &self,
        id: String,
        username: String,
        hash: String,
        now_ms: i64,
    ) -> Reply<'_, Player>;
    fn erase_player(&self, id: String, now_ms: i64) -> Reply<'_, ()>;
    fn guest_device(&self, device_id: String) -> Reply<'_, Option<GuestDevice>>;
    fn create_guest(&self, p: NewPlayer, device_id: String, verifier: String) -> Reply<'_, Player>;
    fn insert_refresh_token(&self, t: NewRefreshToken) -> Reply<'_, ()>;
    fn rotate_refresh_token(
        &self,
        old_hash: String,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Reply<'_, RotateOutcome>;
    fn revoke_refresh_family_of(&self, token_hash: String, now_ms: i64) -> Reply<'_, bool>;
    fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Reply<'_, ()>;
}

impl StoreHandle {
    /// Creates a player (with its password hash, if any). [`StoreError::Conflict`] if the
    /// username is taken ignoring case, or the id exists.
    pub async fn create_player(&self, p: NewPlayer) -> Result<Player, StoreError> {
        self.call(move |db| db.create_player(p)).await
    }

    /// The player with this id, erased players included (their `erased_at` is set).
    pub async fn player(&self, id: &str) -> Result<Option<Player>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.player(id)).await
    }

    /// For login: the player with this username (ignoring case) and its password hash (`None`
    /// for guests). Erased players are never found.
    pub async fn player_by_username(
        &self,
        username: &str,
    ) -> Result<Option<(Player, Option<String>)>, StoreError> {
        let username = username.to_owned();
        self.call(move |db| db.player_by_username(username)).await
    }

    /// Applies `patch`; `Ok(None)` if there is no such player. [`StoreError::Gone`] if the
    /// player is erased, [`StoreError::Precondition`] if `patch.metadata` is not a JSON object.
    pub async fn update_player(
        &self,
        id: &str,
        patch: PlayerPatch,
    ) -> Result<Option<Player>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.update_player(id, patch)).await
    }

    /// Guest → password account: sets username + password hash, `is_guest = false`, deletes the
    /// guest device verifier. [`StoreError::Conflict`] if the username is taken,
    /// [`StoreError::NotFound`] if there is no player, [`StoreError::Gone`] if it is erased,
    /// [`StoreError::Precondition`] if it is not a guest.
    pub async fn upgrade_guest(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
    ) -> Result<Player, StoreError> {
        let (id, username, hash) = (id.to_owned(), username.to_owned(), password_hash.to_owned());
        let now = wall_clock_ms();
        self.call(move |db| db.upgrade_guest(id, username, hash, now))
            .await
    }

    /// GDPR erase: anonymises the row (username → `erased_<id>`, display name, avatar and
    /// metadata cleared, `erased_at` set), deletes the credentials and guest devices, and revokes
    /// every refresh token. Idempotent for an existing player; [`StoreError::NotFound`] if the id
    /// was never stored.
    pub async fn erase_player(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        let now = wall_clock_ms();
        self.call(move |db| db.erase_player(id, now)).await
    }

    /// The device binding for a guest login.
    pub async fn guest_device(&self, device_id: &str) -> Result<Option<GuestDevice>, StoreError> {
        let device_id = device_id.to_owned();
        self.call(move |db| db.guest_device(device_id)).await
    }

    /// Creates the player (`is_guest = true`, whatever `p.is_guest` says) and the device row in
    /// one transaction. [`StoreError::Conflict`] if the device or username exists.
    pub async fn create_guest(
        &self,
        p: NewPlayer,
        device_id: &str,
        verifier: &str,
    ) -> Result<Player, StoreError> {
        let (device_id, verifier) = (device_id.to_owned(), verifier.to_owned());
        self.call(move |db| db.create_guest(p, device_id, verifier))
            .await
    }

    /// Stores a refresh token hash. [`StoreError::Conflict`] on a duplicate hash,
    /// [`StoreError::NotFound`] if the player does not exist.
    pub async fn insert_refresh_token(&self, t: NewRefreshToken) -> Result<(), StoreError> {
        self.call(move |db| db.insert_refresh_token(t)).await
    }

    /// Single-use rotation in one transaction. If `old_hash` is live (not used, not revoked, not
    /// expired at `now_ms`) it is marked used and `new` is inserted in the same family and for
    /// the same player (`new.family_id` and `new.player_id` are ignored) → `Rotated`. If it was
    /// already used or revoked, the whole family is revoked → `Reused`. Unknown hash →
    /// `Unknown`; past its expiry → `Expired` (nothing changes).
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let old_hash = old_hash.to_owned();
        self.call(move |db| db.rotate_refresh_token(old_hash, new, now_ms))
            .await
    }

    /// Logout: revokes the family `token_hash` belongs to. Returns whether any token was newly
    /// revoked (false for an unknown or already revoked family).
    pub async fn revoke_refresh_family_of(&self, token_hash: &str) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        let now = wall_clock_ms();
        self.call(move |db| db.revoke_refresh_family_of(token_hash, now))
            .await
    }

    /// Revokes every refresh token of a player (e.g. after a password change).
    pub async fn revoke_player_tokens(&self, player_id: &str) -> Result<(), StoreError> {
        let player_id = player_id.to_owned();
        let now = wall_clock_ms();
        self.call(move |db| db.revoke_player_tokens(player_id, now))
            .await
    }
}

/// The key that enforces case-insensitive username uniqueness.
fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// Username given to an erased player; it carries no personal data.
fn erased_username(id: &str) -> String {
    format!("erased_{id}")
}

/// Merges a patch into the current profile; both backends write back exactly these fields.
fn apply_patch(mut player: Player, patch: PlayerPatch) -> Result<Player, StoreError> {
    if player.erased_at.is_some() {
        return Err(StoreError::erased());
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

/// Checks that a guest may be upgraded, then applies the upgrade to the loaded row.
fn upgraded(mut player: Player, username: String, now_ms: i64) -> Result<Player, StoreError> {
    if player.erased_at.is_some() {
        return Err(StoreError::erased());
    }
    if !player.is_guest {
        return Err(StoreError::Precondition("player is not a guest".to_owned()));
    }
    player.username = username;
    player.is_guest = false;
    player.updated_at = now_ms;
    Ok(player)
}

/// A fresh player as `create_player` / `create_guest` store it.
fn new_player_row(p: &NewPlayer, is_guest: bool) -> Player {
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

/// What a refresh token row says about rotating it, read by both backends the same way.
struct TokenState {
    player_id: String,
    family_id: String,
    expires_at: i64,
    spent: bool,
}

/// The rotation rule, shared so the two backends cannot disagree on it.
enum Rotation {
    /// Revoke the whole family: the token was replayed.
    RevokeFamily,
    /// Nothing to change.
    Expired,
    /// Mark the old token used and insert the new one.
    Rotate,
}

impl TokenState {
    fn decide(&self, now_ms: i64) -> Rotation {
        if self.spent {
            Rotation::RevokeFamily
        } else if self.expires_at <= now_ms {
            Rotation::Expired
        } else {
            Rotation::Rotate
        }
    }
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
            apply_patch(erased.clone(), PlayerPatch::default()),
            Err(StoreError::Gone(_))
        ));
        assert!(matches!(
            upgraded(erased, "x".into(), 1),
            Err(StoreError::Gone(_))
        ));
    }

    #[test]
    fn rotation_rule() {
        let state = |spent, expires_at| TokenState {
            player_id: "p".into(),
            family_id: "f".into(),
            expires_at,
            spent,
        };
        assert!(matches!(state(true, 0).decide(5), Rotation::RevokeFamily));
        assert!(matches!(state(false, 5).decide(5), Rotation::Expired));
        assert!(matches!(state(false, 6).decide(5), Rotation::Rotate));
    }
}
