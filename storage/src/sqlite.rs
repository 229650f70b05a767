//! The embedded backend: one SQLite connection in WAL mode, owned by a dedicated
//! "asobi-sqlite" thread. SQLite allows one writer at a time anyway, so a single connection
//! loses nothing, and keeping it on its own thread means a slow fsync never stalls the bridge
//! runtime or the blocking pool used for password hashing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use futures::channel::oneshot;
use rusqlite::{ffi, params, Connection, ErrorCode, Row, TransactionBehavior};

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

/// How long a statement waits for a lock held by another process (e.g. `asobi migrate` or a
/// backup tool) before failing, instead of failing at once with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Command {
    Run(Job),
    /// Checkpoint, close the connection, then reply.
    Close(oneshot::Sender<()>),
}

/// Failures inside a job: SQL errors keep their detail until they are classified once.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
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
            Fail::Sql(e) => classify(e),
        }
    }
}

fn classify(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e {
        let detail = message.clone().unwrap_or_else(|| e.to_string());
        match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return conflict(&detail)
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::NotFound,
            _ => {}
        }
        if matches!(
            failure.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        ) {
            return StoreError::Unavailable(detail);
        }
        return StoreError::Backend(detail);
    }
    StoreError::Backend(e.to_string())
}

/// Handle to the SQLite thread.
pub(crate) struct SqliteBackend {
    commands: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the file, applies migrations, and starts the connection thread.
    pub(crate) async fn open(path: PathBuf) -> Result<(Self, Vec<String>), StoreError> {
        let (commands, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("asobi-sqlite".to_owned())
            .spawn(move || {
                let opened = open_connection(&path).and_then(|mut conn| {
                    let applied = migrate(&mut conn)?;
                    Ok((conn, applied))
                });
                match opened {
                    Ok((conn, applied)) => {
                        if ready_tx.send(Ok(applied)).is_ok() {
                            serve(conn, receiver);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot spawn sqlite thread: {e}")))?;
        let applied = ready_rx
            .await
            .map_err(|_| StoreError::Backend("sqlite thread died while opening".to_owned()))??;
        Ok((
            SqliteBackend {
                commands,
                thread: Mutex::new(Some(thread)),
            },
            applied,
        ))
    }

    /// Runs `f` on the connection thread and returns its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply_tx.send(f(conn).map_err(Fail::into_store));
        });
        self.commands
            .send(Command::Run(job))
            .map_err(|_| StoreError::bridge_gone())?;
        reply_rx
            .await
            .map_err(|_| StoreError::Backend("sqlite job panicked".to_owned()))?
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "cannot enable WAL (journal_mode is {mode})"
        )));
    }
    // FULL: a purchase acknowledged to a player must survive a power cut, not just a crash.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(classify)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<Vec<String>, StoreError> {
    let run = |conn: &mut Connection| -> Result<Vec<String>, Fail> {
        // IMMEDIATE takes the write lock up front, so two processes migrating at once serialise.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(CREATE_TRACKING_TABLE)?;
        let applied = {
            let mut stmt = tx.prepare("SELECT name FROM schema_migrations")?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            names.collect::<Result<Vec<_>, _>>()?
        };
        let now = wall_clock_ms();
        let mut names = Vec::new();
        for m in migrations::pending(&applied)? {
            tx.execute_batch(m.sql)
                .map_err(|e| StoreError::Migration(format!("{}: {e}", m.name)))?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                params![m.name, now],
            )?;
            names.push(m.name.to_owned());
        }
        tx.commit()?;
        Ok(names)
    };
    run(conn).map_err(|f| match f.into_store() {
        e @ StoreError::Migration(_) => e,
        other => StoreError::Migration(other.to_string()),
    })
}

fn serve(mut conn: Connection, commands: mpsc::Receiver<Command>) {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Run(job) => {
                // A bug in one job must not take the only connection down with it; the caller
                // sees its reply channel dropped, and an open transaction rolls back on drop.
                if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                    tracing::error!("sqlite job panicked");
                }
            }
            Command::Close(done) => {
                checkpoint(&conn);
                drop(conn);
                let _ = done.send(());
                return;
            }
        }
    }
    // Every handle was dropped without close(): still leave a tidy file behind.
    checkpoint(&conn);
}

/// Folds the WAL back into the main file so a copied or backed-up database is complete.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "sqlite WAL checkpoint failed");
    }
}

fn read_player(r: &Row<'_>) -> Result<Player, Fail> {
    let metadata: String = r.get(4)?;
    Ok(Player {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        avatar_url: r.get(3)?,
        metadata: parse_json("metadata", &metadata)?,
        is_guest: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        erased_at: r.get(8)?,
    })
}

fn read_match(r: &Row<'_>) -> Result<MatchRecord, Fail> {
    let players: String = r.get(3)?;
    let result: String = r.get(4)?;
    Ok(MatchRecord {
        id: r.get(0)?,
        mode: r.get(1)?,
        status: r.get(2)?,
        players: parse_players(&players)?,
        result: parse_json("result", &result)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
    })
}

fn load_player(conn: &Connection, id: &str) -> Result<Option<Player>, Fail> {
    let sql = format!("SELECT {PLAYER_COLUMNS} FROM players p WHERE p.id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id])?;
    rows.next()?.map(read_player).transpose()
}

fn insert_player(conn: &Connection, p: &NewPlayer, is_guest: bool) -> Result<Player, Fail> {
    conn.execute(
        "INSERT INTO players (id, username, username_lower, display_name, metadata, is_guest, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?6)",
        params![p.id, p.username, username_key(&p.username), p.display_name, is_guest, p.now_ms],
    )?;
    if let Some(hash) = &p.password_hash {
        conn.execute(
            "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3)",
            params![p.id, hash, p.now_ms],
        )?;
    }
    Ok(new_player_row(p, is_guest))
}

fn write_tx(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, Fail> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn create_player(&self, p: NewPlayer) -> Result<Player, StoreError> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let player = insert_player(&tx, &p, p.is_guest)?;
            tx.commit()?;
            Ok(player)
        })
        .await
    }

    async fn player(&self, id: String) -> Result<Option<Player>, StoreError> {
        self.run(move |conn| load_player(conn, &id)).await
    }

    async fn player_by_username(
        &self,
        username: String,
    ) -> Result<Option<(Player, Option<String>)>, StoreError> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {PLAYER_COLUMNS}, c.password_hash FROM players p \
                 LEFT JOIN player_credentials c ON c.player_id = p.id \
                 WHERE p.username_lower = ?1 AND p.erased_at IS NULL"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![username_key(&username)])?;
            match rows.next()? {
                Some(row) => Ok(Some((read_player(row)?, row.get(9)?))),
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(current) = load_player(&tx, &id)? else { return Ok(None) };
            let player = apply_patch(current, patch)?;
            tx.execute(
                "UPDATE players SET display_name = ?2, avatar_url = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, player.display_name, player.avatar_url, player.metadata.to_string(), player.updated_at],
            )?;
            tx.commit()?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(mut player) = load_player(&tx, &id)? else { return Err(StoreError::NotFound.into()) };
            if player.erased_at.is_some() {
                return Err(StoreError::Precondition("player is erased".to_owned()).into());
            }
            if !player.is_guest {
                return Err(StoreError::Precondition("player is not a guest".to_owned()).into());
            }
            tx.execute(
                "UPDATE players SET username = ?2, username_lower = ?3, is_guest = FALSE, updated_at = ?4 WHERE id = ?1",
                params![id, username, username_key(&username), now_ms],
            )?;
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                params![id, password_hash, now_ms],
            )?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = ?1", params![id])?;
            tx.commit()?;
            player.username = username;
            player.is_guest = false;
            player.updated_at = now_ms;
            Ok(player)
        })
        .await
    }

    async fn erase_player(&self, id: String, now_ms: i64) -> Result<(), StoreError> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let changed = tx.execute(
                "UPDATE players SET username = ?2, username_lower = NULL, display_name = NULL, avatar_url = NULL, \
                 metadata = '{}', erased_at = COALESCE(erased_at, ?3), updated_at = ?3 WHERE id = ?1",
                params![id, erased_username(&id), now_ms],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            tx.execute("DELETE FROM player_credentials WHERE player_id = ?1", params![id])?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = ?1", params![id])?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE player_id = ?1 AND revoked_at IS NULL",
                params![id, now_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn guest_device(&self, device_id: String) -> Result<Option<GuestDevice>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT device_id, player_id, verifier, revoked FROM guest_devices WHERE device_id = ?1",
            )?;
            let mut rows = stmt.query(params![device_id])?;
            let Some(r) = rows.next()? else { return Ok(None) };
            Ok(Some(GuestDevice {
                device_id: r.get(0)?,
                player_id: r.get(1)?,
                verifier: r.get(2)?,
                revoked: r.get(3)?,
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let player = insert_player(&tx, &p, true)?;
            tx.execute(
                "INSERT INTO guest_devices (device_id, player_id, verifier, revoked, created_at) VALUES (?1, ?2, ?3, FALSE, ?4)",
                params![device_id, p.id, verifier, p.now_ms],
            )?;
            tx.commit()?;
            Ok(player)
        })
        .await
    }

    async fn insert_refresh_token(&self, t: NewRefreshToken) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.token_hash, t.player_id, t.family_id, t.expires_at_ms, t.now_ms],
            )?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let old = {
                let mut stmt = tx.prepare_cached(
                    "SELECT player_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?1",
                )?;
                let mut rows = stmt.query(params![old_hash])?;
                match rows.next()? {
                    None => None,
                    Some(r) => Some((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    )),
                }
            };
            let Some((player_id, family_id, expires_at, used_at, revoked_at)) = old else {
                return Ok(RotateOutcome::Unknown);
            };
            if used_at.is_some() || revoked_at.is_some() {
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
                    params![family_id, now_ms],
                )?;
                tx.commit()?;
                return Ok(RotateOutcome::Reused);
            }
            if expires_at <= now_ms {
                return Ok(RotateOutcome::Expired);
            }
            tx.execute("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1", params![old_hash, now_ms])?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new.token_hash, player_id, family_id, new.expires_at_ms, new.now_ms],
            )?;
            tx.commit()?;
            Ok(RotateOutcome::Rotated { player_id })
        })
        .await
    }

    async fn revoke_refresh_family_of(
        &self,
        token_hash: String,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let changed = conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL AND family_id = \
                 (SELECT family_id FROM refresh_tokens WHERE token_hash = ?1)",
                params![token_hash, now_ms],
            )?;
            Ok(changed > 0)
        })
        .await
    }

    async fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE player_id = ?1 AND revoked_at IS NULL",
                params![player_id, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn insert_match_record(&self, r: MatchRecord) -> Result<(), StoreError> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let players = serde_json::Value::from(r.players.clone()).to_string();
            tx.execute(
                "INSERT INTO match_records (id, mode, status, players, result, started_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.id, r.mode, r.status, players, r.result.to_string(), r.started_at, r.finished_at],
            )?;
            for player in &r.players {
                tx.execute(
                    "INSERT INTO match_record_players (match_id, player_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![r.id, player],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn match_record(&self, id: String) -> Result<Option<MatchRecord>, StoreError> {
        self.run(move |conn| {
            let sql = format!("SELECT {MATCH_COLUMNS} FROM match_records m WHERE m.id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![id])?;
            rows.next()?.map(read_match).transpose()
        })
        .await
    }

    async fn list_match_records(&self, q: MatchQuery) -> Result<Vec<MatchRecord>, StoreError> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m \
                 WHERE (?1 IS NULL OR m.mode = ?1) AND (?2 IS NULL OR m.status = ?2) \
                 AND (?3 IS NULL OR EXISTS (SELECT 1 FROM match_record_players mp \
                      WHERE mp.match_id = m.id AND mp.player_id = ?3)) \
                 ORDER BY m.finished_at DESC, m.id DESC LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows =
                stmt.query(params![q.mode, q.status, q.player_id, clamp_limit(q.limit)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_match(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.commands.send(Command::Close(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            // The thread replied after closing the connection, so this join returns at once.
            let _ = thread.join();
        }
    }
}
