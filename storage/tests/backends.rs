//! Behaviour specific to one backend: SQLite file handling, PostgreSQL outages.

mod common;

use std::time::{Duration, Instant};

use asobi_storage::{StoreConfig, StoreError, StoreHandle};
use common::{new_player, pg_exec, pg_url, with_dbname, TestDb};
use futures::executor::block_on;

#[test]
fn sqlite_uses_wal_and_checkpoints_on_shutdown() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let store = db.start();
    assert!(path.exists(), "file and its parent directory were created");
    block_on(async {
        for i in 0..20 {
            store
                .create_player(new_player(&format!("wal-{i}"), Some("h")))
                .await
                .unwrap();
        }
    });
    let wal = path.with_extension("db-wal");
    assert!(
        wal.metadata().map(|m| m.len()).unwrap_or(0) > 0,
        "writes go to the WAL first"
    );
    store.shutdown();
    assert_eq!(
        wal.metadata().map(|m| m.len()).unwrap_or(0),
        0,
        "WAL truncated on shutdown"
    );

    let conn = rusqlite::Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let players: i64 = conn
        .query_row("SELECT count(*) FROM players", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        players, 20,
        "everything is in the main file after the checkpoint"
    );
}

#[test]
fn sqlite_unopenable_path_fails_start() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let config = StoreConfig::Sqlite {
        path: blocker.join("asobi.db"),
    };
    assert!(matches!(
        StoreHandle::start(config),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn handle_dropped_without_shutdown_still_closes() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let store = db.start();
    block_on(store.create_player(new_player("dropped", None))).unwrap();
    drop(store);
    // The bridge notices every handle is gone and checkpoints; a new store sees the data.
    let deadline = Instant::now() + Duration::from_secs(5);
    while path
        .with_extension("db-wal")
        .metadata()
        .map(|m| m.len())
        .unwrap_or(0)
        > 0
    {
        assert!(Instant::now() < deadline, "WAL was never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let store = db.start();
    assert!(block_on(store.player_by_username("DROPPED"))
        .unwrap()
        .is_some());
    store.shutdown();
}

#[test]
fn postgres_unreachable_fails_start_quickly() {
    // Port 1 refuses connections on any sane test machine; no server needed.
    let config = StoreConfig::Postgres {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        pool_size: 1,
    };
    let started = Instant::now();
    let err = StoreHandle::start(config.clone()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        asobi_storage::migrate(&config),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn postgres_bad_url_is_a_config_error() {
    let config = StoreConfig::Postgres {
        url: "postgres://a@h:notaport/x".into(),
        pool_size: 1,
    };
    assert!(matches!(
        StoreHandle::start(config),
        Err(StoreError::Config(_))
    ));
}

/// Simulates the database going away (connections refused and existing ones killed) without
/// stopping the shared server, then coming back.
#[test]
fn postgres_outage_and_recovery() {
    let Some(admin_url) = pg_url() else { return };
    let db = format!("asobi_outage_{}", uuid::Uuid::now_v7().simple());
    pg_exec(&admin_url, &format!("CREATE DATABASE {db}"));
    let store = StoreHandle::start(StoreConfig::Postgres {
        url: with_dbname(&admin_url, &db),
        pool_size: 2,
    })
    .expect("store starts");
    let player = block_on(store.create_player(new_player("survivor", Some("h")))).unwrap();

    pg_exec(
        &admin_url,
        &format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ),
    );
    // The first call may still hit a pooled connection that has not noticed it was killed;
    // after that the pool has to reconnect and is refused.
    let started = Instant::now();
    let mut last = Ok(None);
    for _ in 0..3 {
        last = block_on(store.player(&player.id));
        if matches!(last, Err(StoreError::Unavailable(_))) {
            break;
        }
    }
    assert!(matches!(last, Err(StoreError::Unavailable(_))), "{last:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );

    pg_exec(
        &admin_url,
        &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
    );
    let back = block_on(store.player(&player.id)).expect("works again once the database is back");
    assert_eq!(back, Some(player));

    store.shutdown();
    pg_exec(&admin_url, &format!("DROP DATABASE {db} WITH (FORCE)"));
}
