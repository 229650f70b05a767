//! Persistence for asobi-rs.
//!
//! Shards never touch a database: they hold a [`StoreHandle`] and await its methods, which
//! hand the work to one "asobi-storage" bridge thread (a current-thread tokio runtime) and
//! await the reply through a runtime-agnostic oneshot. The bridge owns one of two backends with
//! identical behaviour, checked by one conformance suite:
//!
//! - SQLite (the embedded default): one file in WAL mode, one connection on its own thread.
//! - PostgreSQL: tokio-postgres behind a small deadpool pool, with deadlines on every operation.
//!
//! Both apply the same portable SQL migrations (`storage/migrations/*.sql`, embedded in the
//! binary and tracked in `schema_migrations`) at start-up and through [`migrate`].
//!
//! ```no_run
//! use asobi_storage::{StoreConfig, StoreHandle};
//! let store = StoreHandle::start(StoreConfig::Sqlite { path: "./data/asobi.db".into() })?;
//! futures::executor::block_on(store.ping())?;
//! store.shutdown();
//! # Ok::<(), asobi_storage::StoreError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod config;
mod error;
mod handle;
mod migrations;
mod model;
mod postgres;
mod sqlite;

pub use config::StoreConfig;
pub use error::StoreError;
pub use handle::{migrate, StoreHandle, REQUEST_QUEUE_CAPACITY};
pub use model::{
    GuestDevice, MatchQuery, MatchRecord, NewPlayer, NewRefreshToken, Player, PlayerPatch,
    RotateOutcome, MAX_MATCH_LIST,
};
