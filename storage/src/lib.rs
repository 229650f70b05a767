//! Persistence for asobi-rs.
//!
//! Shards never touch a database: they hold a [`StoreHandle`] and await its methods, which
//! hand the work to one "asobi-storage" bridge thread (a current-thread tokio runtime) and
//! await the reply through a runtime-agnostic oneshot. The bridge owns one of two backends with
//! identical behaviour, checked by one conformance suite:
//!
//! - SQLite (the embedded default): one file (mode 0600) in WAL mode, one connection on its own
//!   thread.
//! - PostgreSQL: tokio-postgres behind a small deadpool pool, over TLS (rustls) as libpq's
//!   `sslmode` asks.
//!
//! Every call has a deadline ([`StoreOptions::call_timeout`]), queueing and lock waits included.
//!
//! The code is grouped by feature (`accounts/`, `economy/`, `matches/`): each folder holds the feature's
//! types, a trait of its operations, that trait's SQLite and PostgreSQL implementations, and
//! its [`StoreHandle`] methods. The files at the top are the shared plumbing.
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

mod access;
mod accounts;
mod backend;
mod config;
mod economy;
mod error;
mod handle;
mod iap;
mod leaderboards;
mod matches;
mod migrations;
mod ops;
mod pg_tls;
mod postgres;
mod social;
mod sqlite;
mod storage;
mod tournaments;
mod votes;
mod worlds;

pub use access::{
    read_asobi_players, AccessSnapshot, AsobiExport, EraseOutcome, ImportInsert, ImportValue,
    ImportedPlayer, Revocation, RevokedToken, SignInState,
};
pub use accounts::{GuestDevice, NewPlayer, NewRefreshToken, Player, PlayerPatch, RotateOutcome};
pub use config::{StoreConfig, StoreOptions, DEFAULT_CALL_TIMEOUT, SSLMODE_ENV, SSLROOTCERT_ENV};
pub use economy::{
    Consume, ConsumeReceipt, Done, LedgerEntry, NewPurchase, Outcome, PlayerItem, PurchaseReceipt,
    Refusal, Wallet, WalletAudit, WalletChange, WalletReceipt, MAX_ECONOMY_LIST,
};
pub use error::StoreError;
pub use handle::{migrate, migrate_with, StoreHandle, REQUEST_QUEUE_CAPACITY};
pub use iap::{grant_key as iap_grant_key, IapClaim, IapOutcome, IapRevocation, RevokeOutcome};
pub use leaderboards::{ArchivedEntry, BoardEntry, PeriodEnd, SavedBoard, MAX_ARCHIVE_PAGE};
pub use matches::{MatchQuery, MatchRecord, MAX_MATCH_LIST};
pub use ops::{
    AuditEntry, Ban, BoardSummary, MatchListQuery, OpsPage, Order, PlayerListQuery, MAX_OPS_PAGE,
};
pub use ops::{ChatListQuery, NotificationListQuery};
pub use pg_tls::SslMode;
pub use social::{
    new_social_id, ChatMessage, Friendship, Group, GroupMember, GroupPatch,
    JoinOutcome as GroupJoinOutcome, Notification, MAX_SOCIAL_LIST,
};
pub use storage::{
    Checked, CloudSave, MatchStats, ObjectWrite, Perm, PlayerStats, SaveSlot, SaveWrite,
    StorageRefusal, StoredObject, MAX_OBJECT_LIST,
};
pub use tournaments::{
    entry_key, payout_key, season_key, Fee, JoinOutcome as TournamentJoinOutcome, JoinRequest,
    Placement, Season, SeasonSettlement, Settlement, Tournament, MAX_TOURNAMENT_LIST,
};
pub use votes::{VoteRecord, MAX_VOTE_LIST};
pub use worlds::{WorldRecord, WorldSnapshot, ZoneSnapshot, MAX_PERSISTENT_WORLDS};
