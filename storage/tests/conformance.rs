//! One behaviour suite, run against SQLite and PostgreSQL. Every test body awaits the store
//! through `futures::executor::block_on` on a plain test thread, so the whole suite also proves
//! the handle needs no tokio runtime on the caller's side.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use asobi_storage::{MatchQuery, MatchRecord, PlayerPatch, RotateOutcome, StoreError, StoreHandle};
use common::{new_id, new_player, now_ms, token, TestDb};
use futures::executor::block_on;
use serde_json::json;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                let db = crate::common::TestDb::sqlite();
                super::$name(&db);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let Some(db) = crate::common::TestDb::postgres() else { return };
                super::$name(&db);
            })*
        }
    };
}

conformance!(
    create_and_get_player,
    username_is_unique_ignoring_case,
    update_player_patch,
    guest_create_lookup_and_upgrade,
    erase_player_anonymises_and_revokes,
    refresh_rotation,
    logout_revokes_one_family,
    match_records_insert_get_list,
    data_survives_restart,
    migrate_is_idempotent,
    blocking_helper_runs_off_the_bridge,
    concurrent_calls_from_threads,
    shutdown_is_idempotent_and_final,
);

fn create_and_get_player(db: &TestDb) {
    let store = db.start();
    block_on(async {
        store.ping().await.unwrap();
        let new = new_player("Alice", Some("hash-a"));
        let created = store.create_player(new.clone()).await.unwrap();
        assert_eq!(created.id, new.id);
        assert_eq!(created.username, "Alice");
        assert_eq!(created.display_name.as_deref(), Some("Alice display"));
        assert_eq!(created.metadata, json!({}));
        assert!(!created.is_guest);
        assert_eq!(
            (created.created_at, created.updated_at, created.erased_at),
            (new.now_ms, new.now_ms, None)
        );

        assert_eq!(store.player(&new.id).await.unwrap(), Some(created.clone()));
        assert_eq!(store.player(&new_id()).await.unwrap(), None);

        let (found, hash) = store.player_by_username("aLiCe").await.unwrap().unwrap();
        assert_eq!(found, created);
        assert_eq!(hash.as_deref(), Some("hash-a"));
        assert!(store.player_by_username("bob").await.unwrap().is_none());

        let mut no_password = new_player("NoPass", None);
        no_password.display_name = None;
        store.create_player(no_password).await.unwrap();
        let (p, hash) = store.player_by_username("nopass").await.unwrap().unwrap();
        assert_eq!((p.display_name, hash), (None, None));
    });
    assert_eq!(store.backend_name(), db.config().backend_name());
    store.shutdown();
}

fn username_is_unique_ignoring_case(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let first = store
            .create_player(new_player("Carol", Some("h")))
            .await
            .unwrap();
        let err = store
            .create_player(new_player("cAROL", Some("h")))
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::Conflict("username already taken".into()));

        let mut same_id = new_player("Dave", None);
        same_id.id = first.id.clone();
        assert!(matches!(
            store.create_player(same_id).await,
            Err(StoreError::Conflict(_))
        ));
        // The failed inserts left nothing behind.
        assert!(store.player_by_username("dave").await.unwrap().is_none());
        assert_eq!(
            store
                .player_by_username("CAROL")
                .await
                .unwrap()
                .unwrap()
                .0
                .id,
            first.id
        );
    });
    store.shutdown();
}

fn update_player_patch(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store.create_player(new_player("Erin", None)).await.unwrap();
        let patch = PlayerPatch {
            avatar_url: Some(Some("https://cdn/erin.png".into())),
            metadata: Some(json!({"level": 3, "tags": ["a"]})),
            now_ms: p.created_at + 5,
            ..Default::default()
        };
        let updated = store.update_player(&p.id, patch).await.unwrap().unwrap();
        assert_eq!(updated.display_name, p.display_name, "untouched field kept");
        assert_eq!(updated.avatar_url.as_deref(), Some("https://cdn/erin.png"));
        assert_eq!(updated.metadata, json!({"level": 3, "tags": ["a"]}));
        assert_eq!(
            (updated.created_at, updated.updated_at),
            (p.created_at, p.created_at + 5)
        );
        assert_eq!(store.player(&p.id).await.unwrap(), Some(updated.clone()));

        let clear = PlayerPatch {
            display_name: Some(None),
            now_ms: p.created_at + 9,
            ..Default::default()
        };
        let cleared = store.update_player(&p.id, clear).await.unwrap().unwrap();
        assert_eq!(cleared.display_name, None);
        assert_eq!(cleared.metadata, updated.metadata);
        assert_eq!(store.player(&p.id).await.unwrap(), Some(cleared));

        let bad = PlayerPatch {
            metadata: Some(json!("text")),
            ..Default::default()
        };
        assert!(matches!(
            store.update_player(&p.id, bad).await,
            Err(StoreError::Precondition(_))
        ));
        assert_eq!(
            store
                .update_player(&new_id(), PlayerPatch::default())
                .await
                .unwrap(),
            None
        );
    });
    store.shutdown();
}

fn guest_create_lookup_and_upgrade(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let mut guest = new_player("guest_1", None);
        guest.is_guest = false; // create_guest forces guest status regardless
        let created = store
            .create_guest(guest.clone(), "device-1", "verifier-1")
            .await
            .unwrap();
        assert!(created.is_guest);
        assert_eq!(store.player(&guest.id).await.unwrap().unwrap(), created);

        let device = store.guest_device("device-1").await.unwrap().unwrap();
        assert_eq!(
            (
                device.device_id.as_str(),
                device.player_id.as_str(),
                device.verifier.as_str(),
                device.revoked
            ),
            ("device-1", guest.id.as_str(), "verifier-1", false)
        );
        assert!(store.guest_device("device-2").await.unwrap().is_none());
        let (_, hash) = store.player_by_username("GUEST_1").await.unwrap().unwrap();
        assert_eq!(hash, None);

        // Same device again: conflict, and the second player was not created either.
        let other = new_player("guest_2", None);
        let err = store
            .create_guest(other.clone(), "device-1", "v")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::Conflict("device already registered".into())
        );
        assert!(store.player(&other.id).await.unwrap().is_none());

        let taken = store
            .create_player(new_player("Frank", Some("f")))
            .await
            .unwrap();
        let err = store
            .upgrade_guest(&guest.id, "FRANK", "hash")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(
            store.player(&guest.id).await.unwrap().unwrap().is_guest,
            "failed upgrade changed nothing"
        );
        assert!(store.guest_device("device-1").await.unwrap().is_some());

        let upgraded = store
            .upgrade_guest(&guest.id, "Grace", "hash-g")
            .await
            .unwrap();
        assert_eq!(
            (upgraded.username.as_str(), upgraded.is_guest),
            ("Grace", false)
        );
        assert_eq!(
            store.player(&guest.id).await.unwrap(),
            Some(upgraded.clone())
        );
        assert!(
            store.guest_device("device-1").await.unwrap().is_none(),
            "verifier deleted"
        );
        let (p, hash) = store.player_by_username("grace").await.unwrap().unwrap();
        assert_eq!((p.id, hash.as_deref()), (guest.id.clone(), Some("hash-g")));
        assert!(store.player_by_username("guest_1").await.unwrap().is_none());

        let err = store
            .upgrade_guest(&taken.id, "Other", "h")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        assert_eq!(
            store.upgrade_guest(&new_id(), "Nobody", "h").await,
            Err(StoreError::NotFound)
        );
    });
    store.shutdown();
}

fn erase_player_anonymises_and_revokes(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Heidi", Some("hash-h")))
            .await
            .unwrap();
        let later = now_ms() + 3_600_000;
        store
            .insert_refresh_token(token("rt-1", &p.id, "fam-1", later))
            .await
            .unwrap();
        store
            .insert_refresh_token(token("rt-2", &p.id, "fam-2", later))
            .await
            .unwrap();
        let patch = PlayerPatch {
            metadata: Some(json!({"email": "h@x"})),
            now_ms: now_ms(),
            ..Default::default()
        };
        store.update_player(&p.id, patch).await.unwrap();

        store.erase_player(&p.id).await.unwrap();
        assert!(store.player_by_username("heidi").await.unwrap().is_none());
        let erased = store.player(&p.id).await.unwrap().unwrap();
        assert_eq!(erased.username, format!("erased_{}", p.id));
        assert_eq!((erased.display_name, erased.avatar_url), (None, None));
        assert_eq!(erased.metadata, json!({}));
        let erased_at = erased.erased_at.expect("erased_at set");
        let next = token("rt-new", "ignored", "ignored", later);
        assert_eq!(
            store
                .rotate_refresh_token("rt-1", next.clone(), now_ms())
                .await
                .unwrap(),
            RotateOutcome::Reused
        );
        assert_eq!(
            store
                .rotate_refresh_token("rt-2", next, now_ms())
                .await
                .unwrap(),
            RotateOutcome::Reused
        );
        let patch = PlayerPatch {
            display_name: Some(Some("back".into())),
            ..Default::default()
        };
        assert!(matches!(
            store.update_player(&p.id, patch).await,
            Err(StoreError::Precondition(_))
        ));

        // Idempotent, keeps the first erasure time; the name is free for someone else.
        store.erase_player(&p.id).await.unwrap();
        assert_eq!(
            store.player(&p.id).await.unwrap().unwrap().erased_at,
            Some(erased_at)
        );
        store
            .create_player(new_player("HEIDI", Some("x")))
            .await
            .unwrap();
        assert_eq!(
            store.erase_player(&new_id()).await,
            Err(StoreError::NotFound)
        );

        let guest = new_player("guest_erase", None);
        store
            .create_guest(guest.clone(), "device-e", "v")
            .await
            .unwrap();
        store.erase_player(&guest.id).await.unwrap();
        assert!(store.guest_device("device-e").await.unwrap().is_none());
    });
    store.shutdown();
}

fn refresh_rotation(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Ivan", Some("h")))
            .await
            .unwrap();
        let now = now_ms();
        let later = now + 3_600_000;
        store
            .insert_refresh_token(token("a", &p.id, "fam", later))
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_refresh_token(token("a", &p.id, "fam", later))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store
                .insert_refresh_token(token("orphan", &new_id(), "fam", later))
                .await,
            Err(StoreError::NotFound)
        );

        // family_id and player_id of the new token come from the old one.
        let rotated = store
            .rotate_refresh_token("a", token("b", "someone-else", "other-fam", later), now)
            .await;
        assert_eq!(
            rotated.unwrap(),
            RotateOutcome::Rotated {
                player_id: p.id.clone()
            }
        );
        let rotated = store
            .rotate_refresh_token("b", token("c", &p.id, "x", later), now)
            .await;
        assert_eq!(
            rotated.unwrap(),
            RotateOutcome::Rotated {
                player_id: p.id.clone()
            }
        );

        // Replaying "a" is theft: the family dies, including the live "c".
        assert_eq!(
            store
                .rotate_refresh_token("a", token("d", &p.id, "", later), now)
                .await
                .unwrap(),
            RotateOutcome::Reused
        );
        assert_eq!(
            store
                .rotate_refresh_token("c", token("e", &p.id, "", later), now)
                .await
                .unwrap(),
            RotateOutcome::Reused
        );
        assert_eq!(
            store
                .rotate_refresh_token("d", token("f", &p.id, "", later), now)
                .await
                .unwrap(),
            RotateOutcome::Unknown
        );

        store
            .insert_refresh_token(token("old", &p.id, "fam-2", now - 1))
            .await
            .unwrap();
        let outcome = store
            .rotate_refresh_token("old", token("g", &p.id, "", later), now)
            .await
            .unwrap();
        assert_eq!(outcome, RotateOutcome::Expired);
        assert_eq!(
            store
                .rotate_refresh_token("nope", token("h", &p.id, "", later), now)
                .await
                .unwrap(),
            RotateOutcome::Unknown
        );

        // A failed rotation (new hash collides) leaves the old token live.
        store
            .insert_refresh_token(token("live", &p.id, "fam-3", later))
            .await
            .unwrap();
        let clash = store
            .rotate_refresh_token("live", token("old", &p.id, "", later), now)
            .await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        let ok = store
            .rotate_refresh_token("live", token("live-2", &p.id, "", later), now)
            .await
            .unwrap();
        assert_eq!(
            ok,
            RotateOutcome::Rotated {
                player_id: p.id.clone()
            }
        );
    });
    store.shutdown();
}

fn logout_revokes_one_family(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Judy", Some("h")))
            .await
            .unwrap();
        let now = now_ms();
        let later = now + 3_600_000;
        store
            .insert_refresh_token(token("phone-1", &p.id, "phone", later))
            .await
            .unwrap();
        store
            .rotate_refresh_token("phone-1", token("phone-2", &p.id, "", later), now)
            .await
            .unwrap();
        store
            .insert_refresh_token(token("laptop-1", &p.id, "laptop", later))
            .await
            .unwrap();

        // Logging out with the already-rotated token still finds its family.
        assert!(store.revoke_refresh_family_of("phone-1").await.unwrap());
        assert!(
            !store.revoke_refresh_family_of("phone-2").await.unwrap(),
            "already revoked"
        );
        assert!(!store.revoke_refresh_family_of("unknown").await.unwrap());
        let outcome = store
            .rotate_refresh_token("phone-2", token("phone-3", &p.id, "", later), now)
            .await
            .unwrap();
        assert_eq!(outcome, RotateOutcome::Reused);

        let outcome = store
            .rotate_refresh_token("laptop-1", token("laptop-2", &p.id, "", later), now)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            RotateOutcome::Rotated {
                player_id: p.id.clone()
            },
            "other family intact"
        );

        store.revoke_player_tokens(&p.id).await.unwrap();
        let outcome = store
            .rotate_refresh_token("laptop-2", token("laptop-3", &p.id, "", later), now)
            .await
            .unwrap();
        assert_eq!(outcome, RotateOutcome::Reused);
    });
    store.shutdown();
}

fn record(id: &str, mode: &str, status: &str, players: &[&str], finished_at: i64) -> MatchRecord {
    MatchRecord {
        id: id.to_owned(),
        mode: mode.to_owned(),
        status: status.to_owned(),
        players: players.iter().map(|p| (*p).to_owned()).collect(),
        result: json!({"winner": players.first(), "scores": {"x": 1.5}}),
        started_at: finished_at - 60_000,
        finished_at,
    }
}

fn ids(records: &[MatchRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn match_records_insert_get_list(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let all = [
            record("m1", "duel", "finished", &["p1", "p2"], 1_000),
            record("m2", "duel", "error", &["p2", "p3"], 2_000),
            record("m3", "arena", "finished", &["p3", "p1", "p3"], 2_000),
            record("m4", "arena", "finished", &[], 3_000),
        ];
        for r in &all {
            store.insert_match_record(r.clone()).await.unwrap();
        }
        let dup = store
            .insert_match_record(record("m1", "x", "finished", &[], 1))
            .await
            .unwrap_err();
        assert_eq!(
            dup,
            StoreError::Conflict("match record already exists".into())
        );
        assert_eq!(
            store.match_record("m3").await.unwrap().as_ref(),
            Some(&all[2])
        );
        assert_eq!(store.match_record("m9").await.unwrap(), None);

        let q =
            |mode: Option<&str>, status: Option<&str>, player: Option<&str>, limit| MatchQuery {
                mode: mode.map(str::to_owned),
                status: status.map(str::to_owned),
                player_id: player.map(str::to_owned),
                limit,
            };
        // finished_at desc, ties broken by id desc.
        assert_eq!(
            ids(&store
                .list_match_records(q(None, None, None, 10))
                .await
                .unwrap()),
            ["m4", "m3", "m2", "m1"]
        );
        assert_eq!(
            ids(&store
                .list_match_records(q(Some("duel"), None, None, 10))
                .await
                .unwrap()),
            ["m2", "m1"]
        );
        assert_eq!(
            ids(&store
                .list_match_records(q(None, Some("finished"), None, 10))
                .await
                .unwrap()),
            ["m4", "m3", "m1"]
        );
        assert_eq!(
            ids(&store
                .list_match_records(q(None, None, Some("p1"), 10))
                .await
                .unwrap()),
            ["m3", "m1"]
        );
        assert_eq!(
            ids(&store
                .list_match_records(q(Some("arena"), Some("finished"), Some("p3"), 10))
                .await
                .unwrap()),
            ["m3"]
        );
        assert!(store
            .list_match_records(q(Some("none"), None, None, 10))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            ids(&store
                .list_match_records(q(None, None, None, 2))
                .await
                .unwrap()),
            ["m4", "m3"]
        );
        assert_eq!(
            ids(&store
                .list_match_records(q(None, None, None, 0))
                .await
                .unwrap()),
            ["m4"],
            "0 clamps to 1"
        );
        let all_listed = store
            .list_match_records(q(None, None, None, u32::MAX))
            .await
            .unwrap();
        assert_eq!(all_listed.len(), 4);
        assert_eq!(
            all_listed[1], all[2],
            "roster order and duplicates kept, JSON round-trips"
        );
    });
    store.shutdown();
}

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
        ["0001_initial"]
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
