//! Behaviour specific to one backend: SQLite file handling and locking, PostgreSQL outages
//! and TLS.

mod common;

use std::time::{Duration, Instant};

use asobi_storage::{SslMode, StoreConfig, StoreError, StoreHandle, StoreOptions};
use common::{
    new_player, pg_admin_url, pg_exec, pg_query, with_dbname, with_host, with_param, TestDb,
};
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
    let Some(admin_url) = pg_admin_url() else {
        return;
    };
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

/// The database holds password and token hashes: the file, its WAL and shared-memory files and
/// a data directory the store creates are private to the server's user, whatever the umask.
#[cfg(unix)]
#[test]
fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::sqlite();
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let store = db.start();
    block_on(store.create_player(new_player("private", Some("h")))).unwrap();
    let mode = |p: &std::path::Path| {
        p.metadata()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(path), 0o600, "database file");
    assert_eq!(mode(&path.with_extension("db-wal")), 0o600, "WAL file");
    assert_eq!(
        mode(&path.with_extension("db-shm")),
        0o600,
        "shared-memory file"
    );
    assert_eq!(
        mode(path.parent().unwrap()),
        0o700,
        "data directory it created"
    );
    store.shutdown();
}

/// Another process holding SQLite's write lock (a backup, an operator's shell) makes writes
/// fail with `Unavailable` once their deadline passes, each on its own clock: requests queued
/// behind a blocked one do not add a busy timeout each. Reads go on (WAL), and writes work as
/// soon as the lock is gone.
#[test]
fn sqlite_locked_by_another_process_answers_within_the_deadline() {
    const WRITERS: usize = 4;
    let db = TestDb::sqlite();
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let store = db.start();
    block_on(store.ping()).unwrap();
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let result =
                    block_on(store.create_player(new_player(&format!("locked-{i}"), None)));
                (result, started.elapsed())
            })
        })
        .collect();
    for writer in writers {
        let (result, took) = writer.join().unwrap();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            took < asobi_storage::DEFAULT_CALL_TIMEOUT + Duration::from_secs(2),
            "a queued write answered after {took:?}"
        );
    }
    let read_started = Instant::now();
    assert!(block_on(store.player_by_username("nobody"))
        .unwrap()
        .is_none());
    assert!(
        read_started.elapsed() < Duration::from_secs(1),
        "reads are not blocked"
    );

    holder.execute_batch("ROLLBACK").unwrap();
    block_on(store.create_player(new_player("after-lock", None))).unwrap();
    assert!(
        block_on(store.player_by_username("locked-0"))
            .unwrap()
            .is_none(),
        "timed-out writes were not applied later"
    );
    store.shutdown();
}

/// `call_timeout` is the caller's knob: a short one answers sooner.
#[test]
fn sqlite_call_timeout_is_configurable() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    let mut options = StoreOptions::default();
    options.call_timeout = Duration::from_millis(300);
    let store = StoreHandle::start_with(db.config(), options).unwrap();
    block_on(store.ping()).unwrap();
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let result = block_on(store.create_player(new_player("short", None)));
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    holder.execute_batch("ROLLBACK").unwrap();
    store.shutdown();
}

/// Whether each connection the store holds to `db` is encrypted, as the server sees it.
fn server_side_ssl(admin_url: &str, db: &str) -> Vec<bool> {
    pg_query(
        admin_url,
        &format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{db}' AND a.application_name = 'asobi'"
        ),
    )
    .into_iter()
    .map(|row| row[0].as_deref() == Some("t"))
    .collect()
}

fn start_pg(url: &str) -> Result<StoreHandle, StoreError> {
    StoreHandle::start_with(
        StoreConfig::Postgres {
            url: url.to_owned(),
            pool_size: 1,
        },
        StoreOptions::default(),
    )
}

/// sslmode from the URL (and from the options when the URL has none) decides whether the link
/// is encrypted, checked from the server's side in `pg_stat_ssl`.
#[test]
fn postgres_sslmode_disable_prefer_require() {
    let Some(db) = TestDb::postgres() else { return };
    let TestDb::Postgres {
        admin_url,
        name,
        url,
    } = &db
    else {
        unreachable!()
    };
    let server_ssl = pg_query(admin_url, "SHOW ssl")[0][0].as_deref() == Some("on");

    let store = start_pg(&with_param(url, "sslmode=disable")).expect("disable connects");
    block_on(store.ping()).unwrap();
    assert_eq!(server_side_ssl(admin_url, name), [false]);
    store.shutdown();

    let store = start_pg(&with_param(url, "sslmode=prefer")).expect("prefer connects");
    block_on(store.ping()).unwrap();
    assert_eq!(server_side_ssl(admin_url, name), [server_ssl]);
    store.shutdown();

    let mut options = StoreOptions::default();
    options.pg_sslmode = Some(SslMode::Disable);
    let store = StoreHandle::start_with(db.config(), options).expect("option applies");
    block_on(store.ping()).unwrap();
    assert_eq!(
        server_side_ssl(admin_url, name),
        [false],
        "option used when the URL has none"
    );
    store.shutdown();

    if !server_ssl {
        eprintln!("NOTE: the test server has ssl=off; sslmode=require is only checked to fail");
        let err = start_pg(&with_param(url, "sslmode=require")).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        return;
    }
    let store = start_pg(&with_param(url, "sslmode=require")).expect("require connects");
    block_on(store.ping()).unwrap();
    assert_eq!(server_side_ssl(admin_url, name), [true]);
    store.shutdown();
}

/// verify-ca and verify-full against the server's own certificate, when it is readable here
/// (Debian's clusters use the snakeoil certificate, issued to `localhost`).
#[test]
fn postgres_verify_ca_and_full() {
    let Some(db) = TestDb::postgres() else { return };
    let TestDb::Postgres {
        admin_url,
        name,
        url,
    } = &db
    else {
        unreachable!()
    };
    let show = |what: &str| {
        pg_query(admin_url, &format!("SHOW {what}"))[0][0]
            .clone()
            .unwrap_or_default()
    };
    let cert = show("ssl_cert_file");
    if show("ssl") != "on" || !std::path::Path::new(&cert).is_file() {
        eprintln!("NOTE: server TLS or its certificate {cert:?} is not available here; verify modes not exercised");
        return;
    }
    let root = format!("sslrootcert={cert}");
    let url = with_host(url, "127.0.0.1");

    // The chain is the server's own certificate: verify-ca passes whatever the host name.
    let store = start_pg(&with_param(&with_param(&url, "sslmode=verify-ca"), &root))
        .expect("verify-ca with the server's certificate");
    block_on(store.ping()).unwrap();
    assert_eq!(server_side_ssl(admin_url, name), [true]);
    store.shutdown();

    // Some other CA: refused.
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), OTHER_CA).unwrap();
    let err = start_pg(&with_param(
        &with_param(&url, "sslmode=verify-ca"),
        &format!("sslrootcert={}", other.path().display()),
    ))
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    // verify-full also checks the name: the certificate names no IP address.
    let names = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", &cert])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let err = start_pg(&with_param(&with_param(&url, "sslmode=verify-full"), &root)).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    if names.contains("DNS:localhost") {
        let store = start_pg(&with_param(
            &with_param(&with_host(&url, "localhost"), "sslmode=verify-full"),
            &root,
        ))
        .expect("verify-full by the certificate's name");
        block_on(store.ping()).unwrap();
        store.shutdown();
    } else {
        eprintln!("NOTE: the server certificate does not name localhost; verify-full success not exercised");
    }
}

/// A CA that signed nothing on this machine (a throwaway self-signed certificate).
const OTHER_CA: &str = include_str!("other_ca.pem");

/// The nice value of a thread, from its `/proc/.../stat` (field 19).
fn nice_of(stat_path: &std::path::Path) -> Option<i32> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(16)?.parse().ok()
}

/// The SQLite thread yields its core to the shards: it runs 5 nice steps below the thread that
/// opened the store (capped at 19).
#[test]
fn the_sqlite_thread_runs_below_the_process_priority() {
    let own = nice_of(std::path::Path::new("/proc/thread-self/stat")).unwrap();
    let db = TestDb::sqlite();
    let store = db.start();
    let mut seen = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim() == "asobi-sqlite" {
            assert_eq!(nice_of(&dir.join("stat")), Some((own + 5).min(19)));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no asobi-sqlite thread found");
    store.shutdown();
}
