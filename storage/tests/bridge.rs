//! The bridge itself, run against SQLite and PostgreSQL: restarts, migrations, the blocking
//! helper, concurrent callers and shutdown.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use asobi_storage::{RotateOutcome, StoreError, StoreHandle};
use common::{new_player, now_ms, record, token, TestDb};
use futures::executor::block_on;

on_both_backends!(
    data_survives_restart,
    migrate_is_idempotent,
    blocking_helper_runs_off_the_bridge,
    concurrent_calls_from_threads,
    shutdown_is_idempotent_and_final,
);

fn data_survives_restart(db: &TestDb) {
    let store = db.start();
    let player = block_on(async {
        let p = store
            .create_player(new_player("Kim", Some("hash-k")))
            .await
            .unwrap();
        store
            .insert_match_record(record("persisted", "duel", "finished", &[&p.id], 5))
            .await
            .unwrap();
        p
    });
    store.shutdown();
    let store = db.start();
    block_on(async {
        assert_eq!(
            store.player(&player.id).await.unwrap(),
            Some(player.clone())
        );
        let (_, hash) = store.player_by_username("kim").await.unwrap().unwrap();
        assert_eq!(hash.as_deref(), Some("hash-k"));
        assert!(store.match_record("persisted").await.unwrap().is_some());
    });
    store.shutdown();
}

fn migrate_is_idempotent(db: &TestDb) {
    assert_eq!(
        asobi_storage::migrate(&db.config()).unwrap(),
        [
            "0001_initial",
            "0002_economy",
            "0003_leaderboards",
            "0004_storage",
            "0005_social",
            "0006_ops",
            "0007_accounts",
            "0008_votes",
            "0009_tournaments",
            "0010_iap",
            "0012_world_snapshots",
            "0013_season_resets"
        ]
    );
    assert!(asobi_storage::migrate(&db.config()).unwrap().is_empty());
    let store = db.start();
    block_on(store.ping()).unwrap();
    assert!(
        asobi_storage::migrate(&db.config()).unwrap().is_empty(),
        "works beside a running store"
    );
    store.shutdown();

    // A database touched by a newer build is refused rather than used.
    db.exec("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', 0)");
    assert!(matches!(
        StoreHandle::start(db.config()),
        Err(StoreError::Migration(_))
    ));
    assert!(matches!(
        asobi_storage::migrate(&db.config()),
        Err(StoreError::Migration(_))
    ));
}

fn blocking_helper_runs_off_the_bridge(db: &TestDb) {
    let store = db.start();
    block_on(async {
        assert_eq!(store.blocking(|| 6 * 7).await.unwrap(), 42);
        let name = store
            .blocking(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("asobi-storage-blocking"));

        // A slow blocking job does not hold up database calls queued behind it.
        let slow = store.blocking(|| std::thread::sleep(Duration::from_millis(800)));
        let fast = async {
            futures_timer_free_delay().await;
            let started = Instant::now();
            store.ping().await.unwrap();
            started.elapsed()
        };
        let ((), ping_took) = futures::join!(async { slow.await.unwrap() }, fast);
        assert!(
            ping_took < Duration::from_millis(500),
            "ping waited {ping_took:?}"
        );

        let err = store
            .blocking(|| -> u8 { panic!("boom") })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        store.ping().await.unwrap();
    });
    store.shutdown();
}

/// Yields once so the slow job is queued first, without needing a timer runtime.
async fn futures_timer_free_delay() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

fn concurrent_calls_from_threads(db: &TestDb) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20;
    let store = db.start();
    let owner = block_on(store.create_player(new_player("Owner", Some("h")))).unwrap();
    let later = now_ms() + 3_600_000;
    block_on(store.insert_refresh_token(token("contested", &owner.id, "fam", later))).unwrap();

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                block_on(async {
                    let mut created = Vec::new();
                    for i in 0..PER_THREAD {
                        let p = store
                            .create_player(new_player(&format!("user-{t}-{i}"), None))
                            .await
                            .unwrap();
                        assert_eq!(store.player(&p.id).await.unwrap().as_ref(), Some(&p));
                        created.push(p.id);
                    }
                    // Everyone races to rotate the same token.
                    let new = token(&format!("contested-{t}"), "", "", later);
                    let outcome = store
                        .rotate_refresh_token("contested", new, now_ms())
                        .await
                        .unwrap();
                    (created, outcome)
                })
            })
        })
        .collect();

    let mut ids = HashSet::new();
    let mut rotated = 0;
    for worker in workers {
        let (created, outcome) = worker.join().expect("worker thread");
        ids.extend(created);
        match outcome {
            RotateOutcome::Rotated { player_id } => {
                assert_eq!(player_id, owner.id);
                rotated += 1;
            }
            RotateOutcome::Reused => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ids.len(), THREADS * PER_THREAD);
    assert_eq!(
        rotated, 1,
        "exactly one racer may rotate a single-use token"
    );
    store.shutdown();
}

fn shutdown_is_idempotent_and_final(db: &TestDb) {
    let store = db.start();
    let clone = store.clone();
    block_on(clone.ping()).unwrap();
    let from_other_thread = std::thread::spawn({
        let store = store.clone();
        move || store.shutdown()
    });
    store.shutdown();
    from_other_thread.join().unwrap();
    store.shutdown();
    assert!(matches!(
        block_on(clone.ping()),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        block_on(clone.blocking(|| 1)),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        block_on(clone.player("x")),
        Err(StoreError::Unavailable(_))
    ));
}
