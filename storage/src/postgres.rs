//! The production backend: tokio-postgres behind a small deadpool pool, running on the bridge
//! runtime. Every operation has a deadline, so a database that vanishes turns into a quick
//! `Unavailable` instead of a hung shard request, and the pool reconnects once it is back.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::backend::Backend;
use crate::migrations::{self, CREATE_TRACKING_TABLE};
use crate::model::{
    apply_patch, clamp_limit, conflict, erased_username, new_player_row, parse_json, parse_players,
    username_key, wall_clock_ms, MATCH_COLUMNS, PLAYER_COLUMNS,
};
use crate::{
    GuestDevice, MatchQuery, MatchRecord, NewPlayer, NewRefreshToken, Player, PlayerPatch,
    RotateOutcome, StoreError,
};

/// TCP connect deadline for a new pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline for creating or recycling one pooled connection.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline for a whole operation, pool wait included. Every operation is a handful of indexed
/// statements, so hitting this means the database is unreachable or badly overloaded.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for applying migrations: schema changes on a large database (an index build) can
/// take far longer than a normal operation. Reaching the server is still bounded by the pool's
/// connect deadlines, so an unreachable database fails start-up within seconds.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);
/// Key for `pg_advisory_xact_lock`, so servers starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x6173_6f62_695f_6d69; // "asobi_mi"

/// Failures inside an operation, classified once at the end.
enum Fail {
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

/// The pooled PostgreSQL backend.
pub(crate) struct PgBackend {
    pool: Pool,
}

impl PgBackend {
    /// Builds the pool, proves a connection works and applies pending migrations.
    pub(crate) async fn open(
        url: &str,
        pool_size: usize,
    ) -> Result<(Self, Vec<String>), StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("postgres url: {e}")))?;
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
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .wait_timeout(Some(OP_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let backend = PgBackend { pool };
        let applied = backend.migrate().await?;
        Ok((backend, applied))
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let result = self
            .op_within(MIGRATION_TIMEOUT, async {
                let mut client = self.pool.get().await?;
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
                    tx.batch_execute(m.sql).await.map_err(|e| {
                        StoreError::Migration(format!("{}: {}", m.name, classify(&e)))
                    })?;
                    tx.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                        &[&m.name, &now],
                    )
                    .await?;
                    names.push(m.name.to_owned());
                }
                tx.commit().await?;
                Ok(names)
            })
            .await;
        // Cannot reach the server: keep Unavailable so callers can tell "down" from "broken".
        result.map_err(|e| match e {
            e @ (StoreError::Migration(_) | StoreError::Unavailable(_)) => e,
            other => StoreError::Migration(other.to_string()),
        })
    }

    /// Runs one operation under the normal deadline and classifies its failure.
    async fn op<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Fail>>,
    ) -> Result<T, StoreError> {
        self.op_within(OP_TIMEOUT, fut).await
    }

    async fn op_within<T>(
        &self,
        deadline: Duration,
        fut: impl std::future::Future<Output = Result<T, Fail>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(result) => result.map_err(Fail::into_store),
            Err(_) => Err(StoreError::Unavailable(format!(
                "database did not answer within {}s",
                deadline.as_secs()
            ))),
        }
    }

    async fn client(&self) -> Result<Object, Fail> {
        Ok(self.pool.get().await?)
    }
}

fn read_player(r: &Row) -> Result<Player, Fail> {
    let metadata: String = r.try_get(4)?;
    Ok(Player {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        display_name: r.try_get(2)?,
        avatar_url: r.try_get(3)?,
        metadata: parse_json("metadata", &metadata)?,
        is_guest: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
        erased_at: r.try_get(8)?,
    })
}

fn read_match(r: &Row) -> Result<MatchRecord, Fail> {
    let players: String = r.try_get(3)?;
    let result: String = r.try_get(4)?;
    Ok(MatchRecord {
        id: r.try_get(0)?,
        mode: r.try_get(1)?,
        status: r.try_get(2)?,
        players: parse_players(&players)?,
        result: parse_json("result", &result)?,
        started_at: r.try_get(5)?,
        finished_at: r.try_get(6)?,
    })
}

/// Loads a player; `lock` adds FOR UPDATE so a read-modify-write cannot interleave.
async fn load_player(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Player>, Fail> {
    let sql = format!(
        "SELECT {PLAYER_COLUMNS} FROM players p WHERE p.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(read_player)
        .transpose()
}

async fn insert_player(
    c: &impl GenericClient,
    p: &NewPlayer,
    is_guest: bool,
) -> Result<Player, Fail> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO players (id, username, username_lower, display_name, metadata, is_guest, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '{}', $5, $6, $6)",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &p.id,
            &p.username,
            &username_key(&p.username),
            &p.display_name,
            &is_guest,
            &p.now_ms,
        ],
    )
    .await?;
    if let Some(hash) = &p.password_hash {
        c.execute(
            "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3)",
            &[&p.id, hash, &p.now_ms],
        )
        .await?;
    }
    Ok(new_player_row(p, is_guest))
}

#[async_trait]
impl Backend for PgBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        self.op(async {
            self.client().await?.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    async fn create_player(&self, p: NewPlayer) -> Result<Player, StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let player = insert_player(&tx, &p, p.is_guest).await?;
            tx.commit().await?;
            Ok(player)
        })
        .await
    }

    async fn player(&self, id: String) -> Result<Option<Player>, StoreError> {
        self.op(async { load_player(&self.client().await?, &id, false).await })
            .await
    }

    async fn player_by_username(
        &self,
        username: String,
    ) -> Result<Option<(Player, Option<String>)>, StoreError> {
        self.op(async {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {PLAYER_COLUMNS}, c.password_hash FROM players p \
                 LEFT JOIN player_credentials c ON c.player_id = p.id \
                 WHERE p.username_lower = $1 AND p.erased_at IS NULL"
            );
            let stmt = client.prepare_cached(&sql).await?;
            match client.query_opt(&stmt, &[&username_key(&username)]).await? {
                Some(row) => Ok(Some((read_player(&row)?, row.try_get(9)?))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn update_player(
        &self,
        id: String,
        patch: PlayerPatch,
    ) -> Result<Option<Player>, StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(current) = load_player(&tx, &id, true).await? else { return Ok(None) };
            let player = apply_patch(current, patch)?;
            tx.execute(
                "UPDATE players SET display_name = $2, avatar_url = $3, metadata = $4, updated_at = $5 WHERE id = $1",
                &[&id, &player.display_name, &player.avatar_url, &player.metadata.to_string(), &player.updated_at],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(player))
        })
        .await
    }

    async fn upgrade_guest(
        &self,
        id: String,
        username: String,
        password_hash: String,
        now_ms: i64,
    ) -> Result<Player, StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(mut player) = load_player(&tx, &id, true).await? else {
                return Err(StoreError::NotFound.into());
            };
            if player.erased_at.is_some() {
                return Err(StoreError::Precondition("player is erased".to_owned()).into());
            }
            if !player.is_guest {
                return Err(StoreError::Precondition("player is not a guest".to_owned()).into());
            }
            tx.execute(
                "UPDATE players SET username = $2, username_lower = $3, is_guest = FALSE, updated_at = $4 WHERE id = $1",
                &[&id, &username, &username_key(&username), &now_ms],
            )
            .await?;
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                &[&id, &password_hash, &now_ms],
            )
            .await?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = $1", &[&id]).await?;
            tx.commit().await?;
            player.username = username;
            player.is_guest = false;
            player.updated_at = now_ms;
            Ok(player)
        })
        .await
    }

    async fn erase_player(&self, id: String, now_ms: i64) -> Result<(), StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE players SET username = $2, username_lower = NULL, display_name = NULL, avatar_url = NULL, \
                     metadata = '{}', erased_at = COALESCE(erased_at, $3), updated_at = $3 WHERE id = $1",
                    &[&id, &erased_username(&id), &now_ms],
                )
                .await?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            tx.execute("DELETE FROM player_credentials WHERE player_id = $1", &[&id]).await?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = $1", &[&id]).await?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE player_id = $1 AND revoked_at IS NULL",
                &[&id, &now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn guest_device(&self, device_id: String) -> Result<Option<GuestDevice>, StoreError> {
        self.op(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT device_id, player_id, verifier, revoked FROM guest_devices WHERE device_id = $1",
                )
                .await?;
            let Some(r) = client.query_opt(&stmt, &[&device_id]).await? else { return Ok(None) };
            Ok(Some(GuestDevice {
                device_id: r.try_get(0)?,
                player_id: r.try_get(1)?,
                verifier: r.try_get(2)?,
                revoked: r.try_get(3)?,
            }))
        })
        .await
    }

    async fn create_guest(
        &self,
        p: NewPlayer,
        device_id: String,
        verifier: String,
    ) -> Result<Player, StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let player = insert_player(&tx, &p, true).await?;
            tx.execute(
                "INSERT INTO guest_devices (device_id, player_id, verifier, revoked, created_at) VALUES ($1, $2, $3, FALSE, $4)",
                &[&device_id, &p.id, &verifier, &p.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(player)
        })
        .await
    }

    async fn insert_refresh_token(&self, t: NewRefreshToken) -> Result<(), StoreError> {
        self.op(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            client
                .execute(&stmt, &[&t.token_hash, &t.player_id, &t.family_id, &t.expires_at_ms, &t.now_ms])
                .await?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: String,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // FOR UPDATE: two racing rotations of one token serialise here, and the loser sees
            // it used and revokes the family, which is exactly the reuse signal we want.
            let row = tx
                .query_opt(
                    "SELECT player_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens \
                     WHERE token_hash = $1 FOR UPDATE",
                    &[&old_hash],
                )
                .await?;
            let Some(row) = row else { return Ok(RotateOutcome::Unknown) };
            let player_id: String = row.try_get(0)?;
            let family_id: String = row.try_get(1)?;
            let expires_at: i64 = row.try_get(2)?;
            let used_at: Option<i64> = row.try_get(3)?;
            let revoked_at: Option<i64> = row.try_get(4)?;
            if used_at.is_some() || revoked_at.is_some() {
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                    &[&family_id, &now_ms],
                )
                .await?;
                tx.commit().await?;
                return Ok(RotateOutcome::Reused);
            }
            if expires_at <= now_ms {
                return Ok(RotateOutcome::Expired);
            }
            tx.execute("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", &[&old_hash, &now_ms])
                .await?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&new.token_hash, &player_id, &family_id, &new.expires_at_ms, &new.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(RotateOutcome::Rotated { player_id })
        })
        .await
    }

    async fn revoke_refresh_family_of(
        &self,
        token_hash: String,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.op(async {
            let changed = self
                .client()
                .await?
                .execute(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = \
                     (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                    &[&token_hash, &now_ms],
                )
                .await?;
            Ok(changed > 0)
        })
        .await
    }

    async fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Result<(), StoreError> {
        self.op(async {
            self.client()
                .await?
                .execute(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE player_id = $1 AND revoked_at IS NULL",
                    &[&player_id, &now_ms],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_match_record(&self, r: MatchRecord) -> Result<(), StoreError> {
        self.op(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let players = serde_json::Value::from(r.players.clone()).to_string();
            tx.execute(
                "INSERT INTO match_records (id, mode, status, players, result, started_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&r.id, &r.mode, &r.status, &players, &r.result.to_string(), &r.started_at, &r.finished_at],
            )
            .await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO match_record_players (match_id, player_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .await?;
            for player in &r.players {
                tx.execute(&stmt, &[&r.id, player]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn match_record(&self, id: String) -> Result<Option<MatchRecord>, StoreError> {
        self.op(async {
            let client = self.client().await?;
            let sql = format!("SELECT {MATCH_COLUMNS} FROM match_records m WHERE m.id = $1");
            let stmt = client.prepare_cached(&sql).await?;
            client
                .query_opt(&stmt, &[&id])
                .await?
                .as_ref()
                .map(read_match)
                .transpose()
        })
        .await
    }

    async fn list_match_records(&self, q: MatchQuery) -> Result<Vec<MatchRecord>, StoreError> {
        self.op(async {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m \
                 WHERE ($1::text IS NULL OR m.mode = $1) AND ($2::text IS NULL OR m.status = $2) \
                 AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM match_record_players mp \
                      WHERE mp.match_id = m.id AND mp.player_id = $3)) \
                 ORDER BY m.finished_at DESC, m.id DESC LIMIT $4"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = i64::from(clamp_limit(q.limit));
            let rows = client
                .query(&stmt, &[&q.mode, &q.status, &q.player_id, &limit])
                .await?;
            rows.iter().map(read_match).collect()
        })
        .await
    }

    async fn close(&self) {
        self.pool.close();
    }
}
