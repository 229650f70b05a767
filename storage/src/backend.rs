//! The contract both databases implement: one trait per feature (`accounts::Accounts`,
//! `matches::Matches`) gathered into [`Backend`], plus choosing and opening the database.
//! The bridge thread holds one `Arc<dyn Backend>`; nothing outside this crate sees the traits.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::access::Access;
use crate::accounts::Accounts;
use crate::economy::Economy;
use crate::iap::Iap;
use crate::leaderboards::Leaderboards;
use crate::matches::Matches;
use crate::ops::Ops;
use crate::social::Social;
use crate::storage::Storage;
use crate::tournaments::Tournaments;
use crate::votes::Votes;
use crate::worlds::Worlds;
use crate::{StoreConfig, StoreError, StoreOptions};

/// What every backend operation returns: a boxed future borrowing the backend, so the traits
/// stay usable as `dyn` objects and a facade call is one closure.
pub(crate) type Reply<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// One database: every feature's operations, plus what the bridge itself needs.
/// A new feature adds its trait here.
pub(crate) trait Backend:
    Accounts
    + Economy
    + Matches
    + Leaderboards
    + Social
    + Storage
    + Access
    + Tournaments
    + Iap
    + Ops
    + Votes
    + Worlds
{
    /// Round-trips to the database.
    fn ping(&self) -> Reply<'_, ()>;
    /// Flushes and releases the database; called once, after the last call finished.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Connects and applies pending migrations. Returns the backend and the migration names applied.
pub(crate) async fn open(
    config: &StoreConfig,
    options: &StoreOptions,
) -> Result<(Arc<dyn Backend>, Vec<String>), StoreError> {
    match config {
        StoreConfig::Sqlite { path } => {
            let (backend, applied) =
                crate::sqlite::SqliteBackend::open(path.clone(), options).await?;
            Ok((Arc::new(backend), applied))
        }
        StoreConfig::Postgres { url, pool_size } => {
            let (backend, applied) =
                crate::postgres::PgBackend::open(url, *pool_size, options).await?;
            Ok((Arc::new(backend), applied))
        }
    }
}
