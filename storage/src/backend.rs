//! The contract both databases implement. The bridge thread holds one `Arc<dyn Backend>` and
//! runs every job against it; nothing outside this crate sees the trait.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    GuestDevice, MatchQuery, MatchRecord, NewPlayer, NewRefreshToken, Player, PlayerPatch,
    RotateOutcome, StoreConfig, StoreError,
};

/// One database. Methods mirror `StoreHandle`'s, with owned arguments so jobs can move them
/// onto the bridge thread, and with the clock passed in where the public call has none.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
    async fn create_player(&self, p: NewPlayer) -> Result<Player, StoreError>;
    async fn player(&self, id: String) -> Result<Option<Player>, StoreError>;
    async fn player_by_username(
        &self,
        username: String,
    ) -> Result<Option<(Player, Option<String>)>, StoreError>;
    async fn update_player(
        &self,
        id: String,
        patch: PlayerPatch,
    ) -> Result<Option<Player>, StoreError>;
    async fn upgrade_guest(
        &self,
        id: String,
        username: String,
        password_hash: String,
        now_ms: i64,
    ) -> Result<Player, StoreError>;
    async fn erase_player(&self, id: String, now_ms: i64) -> Result<(), StoreError>;
    async fn guest_device(&self, device_id: String) -> Result<Option<GuestDevice>, StoreError>;
    async fn create_guest(
        &self,
        p: NewPlayer,
        device_id: String,
        verifier: String,
    ) -> Result<Player, StoreError>;
    async fn insert_refresh_token(&self, t: NewRefreshToken) -> Result<(), StoreError>;
    async fn rotate_refresh_token(
        &self,
        old_hash: String,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Result<RotateOutcome, StoreError>;
    async fn revoke_refresh_family_of(
        &self,
        token_hash: String,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    async fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Result<(), StoreError>;
    async fn insert_match_record(&self, r: MatchRecord) -> Result<(), StoreError>;
    async fn match_record(&self, id: String) -> Result<Option<MatchRecord>, StoreError>;
    async fn list_match_records(&self, q: MatchQuery) -> Result<Vec<MatchRecord>, StoreError>;
    /// Flushes and releases the database; called once, after the last job finished.
    async fn close(&self);
}

/// Connects and applies pending migrations. Returns the backend and the migration names applied.
pub(crate) async fn open(
    config: &StoreConfig,
) -> Result<(Arc<dyn Backend>, Vec<String>), StoreError> {
    match config {
        StoreConfig::Sqlite { path } => {
            let (backend, applied) = crate::sqlite::SqliteBackend::open(path.clone()).await?;
            Ok((Arc::new(backend), applied))
        }
        StoreConfig::Postgres { url, pool_size } => {
            let (backend, applied) = crate::postgres::PgBackend::open(url, *pool_size).await?;
            Ok((Arc::new(backend), applied))
        }
    }
}
