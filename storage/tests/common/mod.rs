//! Test databases: a temp SQLite file, or a private PostgreSQL schema per test (so tests run in
//! parallel against one server) that is dropped again afterwards.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use asobi_storage::{NewPlayer, NewRefreshToken, StoreConfig, StoreHandle};

pub const PG_ENV: &str = "ASOBI_TEST_DATABASE_URL";

pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        admin_url: String,
        schema: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("asobi.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    /// A fresh schema on the server named by `ASOBI_TEST_DATABASE_URL`, or `None` (with a note)
    /// when the variable is unset.
    pub fn postgres() -> Option<TestDb> {
        let admin_url = pg_url()?;
        let schema = format!("asobi_t_{}", uuid::Uuid::now_v7().simple());
        pg_exec(&admin_url, &format!("CREATE SCHEMA {schema}"));
        let url = with_search_path(&admin_url, &schema);
        Some(TestDb::Postgres {
            admin_url,
            schema,
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
            admin_url, schema, ..
        } = self
        {
            pg_exec(
                admin_url,
                &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            );
        }
    }
}

/// The PostgreSQL URL for tests, or `None` after printing why the test is skipped.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipping PostgreSQL test: {PG_ENV} is not set");
            None
        }
    }
}

pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
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

/// Runs SQL on a short-lived connection with its own tiny runtime (tests have no runtime).
pub fn pg_exec(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let conn = tokio::spawn(conn);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        drop(client);
        let _ = conn.await;
    });
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
