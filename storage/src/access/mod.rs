//! Access control around accounts: bans, revocation of access tokens (per player and per token),
//! sign-in identities from OIDC providers and Steam, spent Steam tickets, hard erasure with its
//! audit row, and the import of players from an asobi database.
//!
//! The engine keeps the revocations in memory on every shard (so checking a token never reads
//! the database); this module is where they are made durable and where a starting server reads
//! them back ([`StoreHandle::access_snapshot`]).

mod asobi;
mod postgres;
mod sqlite;

pub use asobi::{read_asobi_players, AsobiExport};

use serde_json::Value;

use crate::accounts::{NewPlayer, Player};
use crate::backend::Reply;
use crate::{StoreError, StoreHandle};

/// Every access token of `player_id` issued at or before `not_before_ms` is dead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The player.
    pub player_id: String,
    /// Tokens issued at or before this time (unix ms) are refused.
    pub not_before_ms: i64,
}

/// One access token ended early (logout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedToken {
    /// The token's `jti`.
    pub token_id: String,
    /// Whose token it was.
    pub player_id: String,
    /// When it would have expired anyway (unix ms); the row is useless afterwards.
    pub expires_at_ms: i64,
}

/// The revocations still in force, for a starting server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSnapshot {
    /// Per-player cut-offs newer than the snapshot's horizon.
    pub players: Vec<Revocation>,
    /// Single tokens not yet expired.
    pub tokens: Vec<RevokedToken>,
}

/// What a sign-in path must know about a player beyond the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInState {
    /// When the player was banned, if they are.
    pub banned_at: Option<i64>,
    /// The stored password hash, if the account has one.
    pub password_hash: Option<String>,
    /// Providers linked to the account (`google`, `steam`, ...).
    pub providers: Vec<String>,
    /// Whether the account is a device-bound guest.
    pub is_guest: bool,
}

/// What [`StoreHandle::erase_account`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EraseOutcome {
    /// Every row of the player is gone, the audit row and the revocation are written.
    Erased,
    /// The password hash is not the one the caller confirmed against: nothing was deleted.
    CredentialsChanged,
    /// No such player.
    NotFound,
}

/// A player read from an asobi database, to be created here with the same id.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedPlayer {
    /// asobi's player id (a UUID), kept so tokens, records and references stay meaningful.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// Optional avatar URL.
    pub avatar_url: Option<String>,
    /// Profile metadata (a JSON object).
    pub metadata: Value,
    /// asobi's stored hash (`$pbkdf2-sha256$...`), verified at login and rehashed then.
    pub password_hash: Option<String>,
    /// When asobi banned the player, if it did.
    pub banned_at: Option<i64>,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
    /// Linked providers as `(provider, provider_uid)`.
    pub identities: Vec<(String, String)>,
    /// An unclaimed guest (its devices come as [`ImportInsert`] rows).
    pub is_guest: bool,
}

/// One value bound into an [`ImportInsert`].
#[derive(Clone, Debug, PartialEq)]
pub enum ImportValue {
    /// TEXT (ids, names, JSON).
    Text(Option<String>),
    /// BIGINT (amounts, scores, unix ms).
    Int(Option<i64>),
    /// BOOLEAN.
    Bool(bool),
}

/// One row an import writes: an `INSERT ... ON CONFLICT DO NOTHING` statement (parameters
/// numbered `$n`) with its values. `kind` names the row in the report.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportInsert {
    /// What the row is ("wallets", "leaderboard entries", ...).
    pub kind: &'static str,
    /// The statement; must not overwrite an existing row.
    pub sql: &'static str,
    /// Its parameters, in order.
    pub values: Vec<ImportValue>,
    /// Index of an earlier insert of the same batch that must have written its row for this
    /// one to run (a ledger entry runs only when its wallet was created by this batch).
    pub only_if: Option<usize>,
}

/// Statements that delete one player's rows in every feature, run in this order inside the
/// erase transaction; `$1` is the player id. A feature that stores per-player rows adds its
/// statement here, children before parents.
const ERASE_STATEMENTS: &[&str] = &[
    "DELETE FROM wallet_ledger WHERE wallet_id IN (SELECT id FROM wallets WHERE player_id = $1)",
    "DELETE FROM wallets WHERE player_id = $1",
    "DELETE FROM player_items WHERE player_id = $1",
    "DELETE FROM economy_operations WHERE player_id = $1",
    "DELETE FROM leaderboard_entries WHERE player_id = $1",
    "DELETE FROM leaderboard_archive WHERE player_id = $1",
    "DELETE FROM match_record_players WHERE player_id = $1",
    "DELETE FROM storage_objects WHERE owner_id = $1",
    "DELETE FROM cloud_saves WHERE player_id = $1",
    "DELETE FROM player_stats WHERE player_id = $1",
    "DELETE FROM friendships WHERE player_id = $1 OR friend_id = $1",
    "DELETE FROM group_members WHERE player_id = $1",
    "DELETE FROM notifications WHERE player_id = $1",
    "DELETE FROM chat_messages WHERE sender_id = $1",
    "DELETE FROM tournament_entries WHERE player_id = $1",
    "DELETE FROM player_bans WHERE player_id = $1",
    // iap_transactions stay: a store transaction id must never grant twice, not even to a new
    // account made after an erase, and purchase records are kept for the store's refunds.
    "DELETE FROM refresh_tokens WHERE player_id = $1",
    "DELETE FROM player_credentials WHERE player_id = $1",
    "DELETE FROM guest_devices WHERE player_id = $1",
    "DELETE FROM player_identities WHERE player_id = $1",
    "DELETE FROM players WHERE id = $1",
];

/// Keeps the later of two cut-offs, so a stale revocation never re-enables tokens.
const UPSERT_REVOCATION: &str = "INSERT INTO access_revocations (player_id, not_before, reason) VALUES ($1, $2, $3) \
     ON CONFLICT (player_id) DO UPDATE SET \
     not_before = CASE WHEN excluded.not_before > access_revocations.not_before THEN excluded.not_before ELSE access_revocations.not_before END, \
     reason = excluded.reason";

/// Unclaimed guests none of whose devices was seen since `$1`.
const IDLE_GUESTS: &str = "SELECT p.id FROM players p WHERE p.is_guest \
     AND NOT EXISTS (SELECT 1 FROM player_identities i WHERE i.player_id = p.id) \
     AND NOT EXISTS (SELECT 1 FROM guest_devices d WHERE d.player_id = p.id \
                     AND COALESCE(d.last_seen, d.created_at) >= $1) \
     ORDER BY p.created_at LIMIT $2";

/// The same test for one player, inside the reaping transaction.
const STILL_IDLE: &str = "SELECT COUNT(*) FROM players p WHERE p.id = $1 AND p.is_guest \
     AND NOT EXISTS (SELECT 1 FROM player_identities i WHERE i.player_id = p.id) \
     AND NOT EXISTS (SELECT 1 FROM guest_devices d WHERE d.player_id = p.id \
                     AND COALESCE(d.last_seen, d.created_at) >= $2)";

const INSERT_AUDIT: &str =
    "INSERT INTO account_audit (id, player_id, action, actor, detail, at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Whether an unlink would leave the account with no way to sign in.
fn last_method(state: &SignInState, provider: &str) -> bool {
    let others = state.providers.iter().filter(|p| *p != provider).count();
    state.password_hash.is_none() && !state.is_guest && others == 0
}

fn audit_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The access-control operations one database implements.
pub(crate) trait Access: Send + Sync {
    fn access_snapshot(&self, since_ms: i64) -> Reply<'_, AccessSnapshot>;
    fn revoke_player_access(
        &self,
        player_id: String,
        not_before_ms: i64,
        reason: String,
        actor: String,
    ) -> Reply<'_, ()>;
    fn revoke_access_token(&self, t: RevokedToken, now_ms: i64) -> Reply<'_, ()>;
    fn set_ban(&self, player_id: String, banned: bool, actor: String, now_ms: i64)
        -> Reply<'_, ()>;
    fn sign_in_state(&self, player_id: String) -> Reply<'_, Option<SignInState>>;
    fn replace_password(
        &self,
        player_id: String,
        expected: Option<String>,
        new_hash: String,
        now_ms: i64,
    ) -> Reply<'_, bool>;
    fn identity_player(&self, provider: String, uid: String) -> Reply<'_, Option<String>>;
    fn create_identity_player(
        &self,
        p: NewPlayer,
        provider: String,
        uid: String,
    ) -> Reply<'_, Player>;
    fn link_identity(
        &self,
        player_id: String,
        provider: String,
        uid: String,
        now_ms: i64,
    ) -> Reply<'_, ()>;
    fn unlink_identity(&self, player_id: String, provider: String) -> Reply<'_, ()>;
    fn spend_steam_ticket(&self, ticket_hash: String, now_ms: i64) -> Reply<'_, bool>;
    fn erase_account(
        &self,
        player_id: String,
        expected_hash: Option<String>,
        actor: String,
        now_ms: i64,
    ) -> Reply<'_, EraseOutcome>;
    fn import_player(&self, p: ImportedPlayer) -> Reply<'_, bool>;
    fn import_rows(&self, rows: Vec<ImportInsert>) -> Reply<'_, Vec<bool>>;
    fn count_guests(&self) -> Reply<'_, i64>;
    fn touch_guest(&self, device_id: String, now_ms: i64) -> Reply<'_, ()>;
    fn idle_guests(&self, seen_before_ms: i64, limit: i64) -> Reply<'_, Vec<String>>;
    fn reap_guest(&self, player_id: String, seen_before_ms: i64, now_ms: i64) -> Reply<'_, bool>;
}

impl StoreHandle {
    /// Revocations still in force: per-player cut-offs after `since_ms` and single tokens
    /// expiring after it. A starting server passes now minus the access-token lifetime.
    pub async fn access_snapshot(&self, since_ms: i64) -> Result<AccessSnapshot, StoreError> {
        self.call(move |db| db.access_snapshot(since_ms)).await
    }

    /// Ends every access token of the player issued at or before `not_before_ms` and revokes
    /// every refresh token, with an audit row naming `reason` and `actor`. Works for a player
    /// that no longer exists (the cut-off outlives an erased row).
    pub async fn revoke_player_access(
        &self,
        player_id: &str,
        not_before_ms: i64,
        reason: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (p, r, a) = (player_id.to_owned(), reason.to_owned(), actor.to_owned());
        self.call(move |db| db.revoke_player_access(p, not_before_ms, r, a))
            .await
    }

    /// Ends one access token (logout). Idempotent.
    pub async fn revoke_access_token(&self, t: RevokedToken) -> Result<(), StoreError> {
        let now = crate::handle::wall_clock_ms();
        self.call(move |db| db.revoke_access_token(t, now)).await
    }

    /// Bans (`banned`) or unbans a player, with an audit row. A ban also ends every access and
    /// refresh token issued until `now_ms`. [`StoreError::NotFound`] if there is no player.
    pub async fn set_ban(
        &self,
        player_id: &str,
        banned: bool,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (p, a) = (player_id.to_owned(), actor.to_owned());
        self.call(move |db| db.set_ban(p, banned, a, now_ms)).await
    }

    /// Ban, password and linked providers of a player; `None` if there is no such player.
    pub async fn sign_in_state(&self, player_id: &str) -> Result<Option<SignInState>, StoreError> {
        let p = player_id.to_owned();
        self.call(move |db| db.sign_in_state(p)).await
    }

    /// Sets the password hash if the stored one is still `expected` (`None`: the account has
    /// none yet). False when it changed meanwhile; [`StoreError::NotFound`] without a player.
    pub async fn replace_password(
        &self,
        player_id: &str,
        expected: Option<&str>,
        new_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (p, e, n) = (
            player_id.to_owned(),
            expected.map(str::to_owned),
            new_hash.to_owned(),
        );
        self.call(move |db| db.replace_password(p, e, n, now_ms))
            .await
    }

    /// The player a provider account is linked to.
    pub async fn identity_player(
        &self,
        provider: &str,
        uid: &str,
    ) -> Result<Option<String>, StoreError> {
        let (p, u) = (provider.to_owned(), uid.to_owned());
        self.call(move |db| db.identity_player(p, u)).await
    }

    /// Creates a provider-only player and its identity in one transaction.
    /// [`StoreError::Conflict`] if the identity (or the username) exists already.
    pub async fn create_identity_player(
        &self,
        p: NewPlayer,
        provider: &str,
        uid: &str,
    ) -> Result<Player, StoreError> {
        let (pr, u) = (provider.to_owned(), uid.to_owned());
        self.call(move |db| db.create_identity_player(p, pr, u))
            .await
    }

    /// Links a provider account to a player. Linking the same account again is a no-op;
    /// [`StoreError::Conflict`] if it belongs to another player or the player has another
    /// account of that provider; [`StoreError::NotFound`] if the player does not exist.
    pub async fn link_identity(
        &self,
        player_id: &str,
        provider: &str,
        uid: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (p, pr, u) = (player_id.to_owned(), provider.to_owned(), uid.to_owned());
        self.call(move |db| db.link_identity(p, pr, u, now_ms))
            .await
    }

    /// Unlinks a provider. [`StoreError::NotFound`] if it is not linked,
    /// [`StoreError::Precondition`] if it is the account's last way to sign in.
    pub async fn unlink_identity(&self, player_id: &str, provider: &str) -> Result<(), StoreError> {
        let (p, pr) = (player_id.to_owned(), provider.to_owned());
        self.call(move |db| db.unlink_identity(p, pr)).await
    }

    /// Records a Steam ticket as spent; false if it was spent before (a replay).
    pub async fn spend_steam_ticket(
        &self,
        ticket_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let h = ticket_hash.to_owned();
        self.call(move |db| db.spend_steam_ticket(h, now_ms)).await
    }

    /// Deletes the player and its rows in every feature in one transaction, writes an audit row
    /// and the access cut-off. With `expected_hash`, only if the stored password hash is still
    /// that one.
    pub async fn erase_account(
        &self,
        player_id: &str,
        expected_hash: Option<&str>,
        actor: &str,
        now_ms: i64,
    ) -> Result<EraseOutcome, StoreError> {
        let (p, e, a) = (
            player_id.to_owned(),
            expected_hash.map(str::to_owned),
            actor.to_owned(),
        );
        self.call(move |db| db.erase_account(p, e, a, now_ms)).await
    }

    /// Unclaimed guests (guest accounts not upgraded), for the guest cap.
    pub async fn count_guests(&self) -> Result<i64, StoreError> {
        self.call(|db| db.count_guests()).await
    }

    /// Records that a guest device resumed now (the reaper spares it).
    pub async fn touch_guest(&self, device_id: &str, now_ms: i64) -> Result<(), StoreError> {
        let d = device_id.to_owned();
        self.call(move |db| db.touch_guest(d, now_ms)).await
    }

    /// Up to `limit` unclaimed guests whose every device was last seen before `seen_before_ms`.
    pub async fn idle_guests(
        &self,
        seen_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.call(move |db| db.idle_guests(seen_before_ms, limit))
            .await
    }

    /// Deletes an idle unclaimed guest the way an erase does (audit actor `reaper`), checking
    /// inside the transaction that it is still an unclaimed guest and still idle, so an upgrade
    /// or a resume racing the reaper wins. True when it was deleted.
    pub async fn reap_guest(
        &self,
        player_id: &str,
        seen_before_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let p = player_id.to_owned();
        self.call(move |db| db.reap_guest(p, seen_before_ms, now_ms))
            .await
    }

    /// Creates an imported player with its credentials and identities unless a player with
    /// that id exists already (true when created). Idempotent, so an import can be re-run.
    pub async fn import_player(&self, p: ImportedPlayer) -> Result<bool, StoreError> {
        self.call(move |db| db.import_player(p)).await
    }

    /// Writes one batch of imported rows in one transaction; for each row, whether it was
    /// written (false: a row with that key was already here, or its `only_if` row was not
    /// written). An error leaves nothing of the batch, so the import can simply be re-run.
    pub async fn import_rows(&self, rows: Vec<ImportInsert>) -> Result<Vec<bool>, StoreError> {
        self.call(move |db| db.import_rows(rows)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_method_rule() {
        let s = |hash: bool, guest: bool, providers: &[&str]| SignInState {
            banned_at: None,
            password_hash: hash.then(|| "h".to_owned()),
            providers: providers.iter().map(|p| (*p).to_owned()).collect(),
            is_guest: guest,
        };
        assert!(last_method(&s(false, false, &["google"]), "google"));
        assert!(!last_method(&s(true, false, &["google"]), "google"));
        assert!(!last_method(
            &s(false, false, &["google", "steam"]),
            "google"
        ));
        assert!(!last_method(&s(false, true, &["google"]), "google"));
    }
}
