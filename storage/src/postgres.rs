//! The production backend's plumbing: tokio-postgres behind a small deadpool pool on the
//! bridge runtime, over TLS as `sslmode` asks (see `pg_tls`). The features' statements live in
//! `<feature>/postgres.rs` and wrap their bodies in [`op`]. The call deadline is applied by the
//! handle, so a database that vanishes turns into a quick `Unavailable` instead of a hung shard
//! request, and the pool reconnects once it is back.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::future::BoxFuture;
use tokio_postgres::error::SqlState;

use crate::backend::{Backend, Reply};
use crate::error::conflict;
use crate::handle::wall_clock_ms;
use crate::migrations::{self, CREATE_TRACKING_TABLE};
use crate::{StoreError, StoreOptions};

/// TCP connect deadline for a new pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline for creating or recycling one pooled connection (TLS handshake included).
const POOL_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline for applying migrations: schema changes on a large database (an index build) can
/// take far longer than a normal operation. Reaching the server is still bounded by the pool's
/// connect deadlines, so an unreachable database fails start-up within seconds.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);
/// Key for `pg_advisory_xact_lock`, so servers starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x6173_6f62_695f_6d69; // "asobi_mi"

/// Failures inside an operation, classified once at the end.
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        Fail::Pool(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Pg(e) => classify(&e),
            // Failing to get a connection at all always means "cannot reach the database now",
            // whatever the server said (refused, shutting down, not accepting connections).
            Fail::Pool(e) => StoreError::Unavailable(e.to_string()),
        }
    }
}

fn classify(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return conflict(db.constraint().unwrap_or(db.message()));
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::NotFound;
        }
        let class = code.code().get(..2).unwrap_or("");
        // 08 connection exception, 53 insufficient resources, 57 operator intervention
        // (shutdown, cancelled by statement_timeout), 3D database does not exist.
        if matches!(class, "08" | "53" | "57" | "3D") {
            return StoreError::Unavailable(db.message().to_owned());
        }
        return StoreError::Backend(format!("{}: {}", code.code(), db.message()));
    }
    let io_error = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io_error {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Boxes one operation's body and classifies its failure; the features' bodies go through here.
pub(crate) fn op<'a, T: 'a>(
    body: impl Future<Output = Result<T, Fail>> + Send + 'a,
) -> Reply<'a, T> {
    Box::pin(async move { body.await.map_err(Fail::into_store) })
}

/// The pooled PostgreSQL backend.
pub(crate) struct PgBackend {
    pool: Pool,
}

impl PgBackend {
    /// Builds the pool, proves a connection works and applies pending migrations.
    pub(crate) async fn open(
        url: &str,
        pool_size: usize,
        options: &StoreOptions,
    ) -> Result<(Self, Vec<String>), StoreError> {
        let (mut config, tls) = crate::pg_tls::parse(url, options)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("asobi");
        }
        // Fast recycling trusts a connection that is not known to be closed; a dead one fails
        // one operation, is dropped, and the next checkout reconnects.
        let manager = Manager::from_config(
            config,
            tls.connector()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .wait_timeout(Some(options.call_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let backend = PgBackend { pool };
        let applied = backend.migrate().await?;
        tracing::debug!(sslmode = ?tls.mode, "postgresql connected");
        Ok((backend, applied))
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let body = op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
                .await?;
            tx.batch_execute(CREATE_TRACKING_TABLE).await?;
            let applied: Vec<String> = tx
                .query("SELECT name FROM schema_migrations", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let now = wall_clock_ms();
            let mut names = Vec::new();
            for m in migrations::pending(&applied)? {
                tx.batch_execute(m.sql)
                    .await
                    .map_err(|e| StoreError::Migration(format!("{}: {}", m.name, classify(&e))))?;
                tx.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                    &[&m.name, &now],
                )
                .await?;
                names.push(m.name.to_owned());
            }
            tx.commit().await?;
            Ok(names)
        });
        let result = tokio::time::timeout(MIGRATION_TIMEOUT, body)
            .await
            .unwrap_or_else(|_| Err(StoreError::deadline(MIGRATION_TIMEOUT)));
        // Cannot reach the server: keep Unavailable so callers can tell "down" from "broken".
        result.map_err(|e| match e {
            e @ (StoreError::Migration(_) | StoreError::Unavailable(_)) => e,
            other => StoreError::Migration(other.to_string()),
        })
    }

    /// A pooled connection; the features' bodies start here.
    pub(crate) async fn client(&self) -> Result<Object, Fail> {
        Ok(self.pool.get().await?)
    }
}

impl Backend for PgBackend {
    fn ping(&self) -> Reply<'_, ()> {
        op(async {
            self.client().await?.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.pool.close();
        Box::pin(async {})
    }
}
