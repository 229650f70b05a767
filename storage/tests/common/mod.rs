//! Test databases: a temp SQLite file, or a throwaway PostgreSQL database per test (so tests run
//! in parallel against one server) that is dropped again afterwards.
//!
//! PostgreSQL is found at `ASOBI_TEST_DATABASE_URL` or, when that is unset, at the local default
//! `postgres://postgres@127.0.0.1:5432/postgres`. The test harness cannot mark a test ignored
//! at run time, and a suite that quietly skips half its backends looks green while testing
//! nothing, so a missing server fails every PostgreSQL test with a loud note, unless
//! `ASOBI_TEST_ALLOW_NO_PG=1` says skipping is intended (then they print the note and pass).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use asobi_storage::{MatchRecord, NewPlayer, NewRefreshToken, StoreConfig, StoreHandle};

pub const PG_ENV: &str = "ASOBI_TEST_DATABASE_URL";
pub const ALLOW_NO_PG_ENV: &str = "ASOBI_TEST_ALLOW_NO_PG";
pub const LOCAL_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("asobi.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    /// A fresh database on the test server, or `None` when there is no server and
    /// `ASOBI_TEST_ALLOW_NO_PG=1` (see the module comment; without it this panics).
    pub fn postgres() -> Option<TestDb> {
        let admin_url = pg_admin_url()?;
        let name = format!("asobi_t_{}", uuid::Uuid::now_v7().simple());
        pg_exec(&admin_url, &format!("CREATE DATABASE {name}"));
        let url = with_dbname(&admin_url, &name);
        Some(TestDb::Postgres {
            admin_url,
            name,
            url,
        })
    }

    pub fn config(&self) -> StoreConfig {
        match self {
            TestDb::Sqlite { path, .. } => StoreConfig::Sqlite { path: path.clone() },
            TestDb::Postgres { url, .. } => StoreConfig::Postgres {
                url: url.clone(),
                pool_size: 4,
            },
        }
    }

    pub fn start(&self) -> StoreHandle {
        StoreHandle::start(self.config()).expect("store starts")
    }

    /// Runs raw SQL against this test's database (outside the store).
    pub fn exec(&self, sql: &str) {
        match self {
            TestDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open sqlite");
                conn.execute_batch(sql).expect("sqlite exec");
            }
            TestDb::Postgres { url, .. } => pg_exec(url, sql),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            pg_exec(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// The URL of a PostgreSQL server the tests may create databases on; see the module comment.
pub fn pg_admin_url() -> Option<String> {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let url = std::env::var(PG_ENV)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| LOCAL_PG.to_owned());
        match pg_try(&url, "SELECT 1") {
            Ok(()) => Ok(url),
            Err(e) => Err(format!("{} ({e})", with_dbname(&url, "…"))),
        }
    });
    match found {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            let note = format!(
                "\n!!! NO POSTGRESQL: cannot reach {why}.\n!!! Start one (pg_ctlcluster <version> main start), \
                 set {PG_ENV}, or set {ALLOW_NO_PG_ENV}=1 to skip the PostgreSQL tests on purpose.\n"
            );
            if std::env::var(ALLOW_NO_PG_ENV).as_deref() == Ok("1") {
                eprintln!("{note}!!! skipping this PostgreSQL test ({ALLOW_NO_PG_ENV}=1)\n");
                None
            } else {
                panic!("{note}");
            }
        }
    }
}

/// Replaces the database name in a `postgres://.../db?...` URL.
pub fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// Replaces the host in a `postgres://user@host:port/...` URL.
pub fn with_host(url: &str, host: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    let host_end = rest[host_start..]
        .find([':', '/', '?'])
        .map_or(rest.len(), |i| host_start + i);
    format!(
        "{}{}{host}{}",
        &url[..scheme_end],
        &rest[..host_start],
        &rest[host_end..]
    )
}

/// Appends a query parameter to a URL.
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Runs SQL and returns the text of every row's columns (tests have no runtime of their own).
pub fn pg_query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    pg_run(url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn pg_exec(url: &str, sql: &str) {
    pg_query(url, sql);
}

fn pg_try(url: &str, sql: &str) -> Result<(), String> {
    pg_run(url, sql).map(drop)
}

fn pg_run(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        config.connect_timeout(Duration::from_secs(3));
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let conn = tokio::spawn(conn);
        let messages = client.simple_query(sql).await.map_err(|e| format!("{e}"))?;
        drop(client);
        let _ = conn.await;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn new_player(username: &str, password_hash: Option<&str>) -> NewPlayer {
    NewPlayer {
        id: new_id(),
        username: username.to_owned(),
        display_name: Some(format!("{username} display")),
        password_hash: password_hash.map(str::to_owned),
        is_guest: false,
        now_ms: now_ms(),
    }
}

pub fn token(hash: &str, player_id: &str, family_id: &str, expires_at_ms: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.to_owned(),
        player_id: player_id.to_owned(),
        family_id: family_id.to_owned(),
        expires_at_ms,
        now_ms: now_ms(),
    }
}

pub fn record(
    id: &str,
    mode: &str,
    status: &str,
    players: &[&str],
    finished_at: i64,
) -> MatchRecord {
    MatchRecord {
        id: id.to_owned(),
        mode: mode.to_owned(),
        status: status.to_owned(),
        players: players.iter().map(|p| (*p).to_owned()).collect(),
        result: serde_json::json!({"winner": players.first(), "scores": {"x": 1.5}}),
        started_at: finished_at - 60_000,
        finished_at,
    }
}

/// Declares one `#[test]` per listed body in two modules, `sqlite` and `postgres`, each
/// handing the body a fresh database of that kind.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                let db = $crate::common::TestDb::sqlite();
                super::$name(&db);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let Some(db) = $crate::common::TestDb::postgres() else { return };
                super::$name(&db);
            })*
        }
    };
}
