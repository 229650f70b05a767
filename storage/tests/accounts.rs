//! Accounts behaviour, run against SQLite and PostgreSQL: players, guests, refresh tokens and
//! the GDPR erase. Every test body awaits the store through `futures::executor::block_on` on a
//! plain test thread, so the suite also proves the handle needs no tokio runtime on the
//! caller's side.

mod common;

use asobi_storage::{PlayerPatch, RotateOutcome, StoreError};
use common::{new_id, new_player, now_ms, token, TestDb};
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(
    create_and_get_player,
    username_is_unique_ignoring_case,
    update_player_patch,
    guest_create_lookup_and_upgrade,
    erase_player_anonymises_and_revokes,
    refresh_rotation,
    logout_revokes_one_family,
    erased_player_cannot_change,
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
            Err(StoreError::Gone(_))
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

/// An erased player is a tombstone: every change is refused as `Gone` (not as a generic
/// precondition the engine would turn into a 500), and the tombstone itself stays unchanged.
fn erased_player_cannot_change(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let guest = new_player("guest_gone", None);
        store
            .create_guest(guest.clone(), "device-g", "v")
            .await
            .unwrap();
        store.erase_player(&guest.id).await.unwrap();
        let before = store.player(&guest.id).await.unwrap().unwrap();

        let patch = PlayerPatch {
            display_name: Some(Some("back again".into())),
            metadata: Some(json!({"x": 1})),
            now_ms: now_ms(),
            ..Default::default()
        };
        let err = store.update_player(&guest.id, patch).await.unwrap_err();
        assert_eq!(err, StoreError::Gone("player is erased".into()));
        let err = store
            .upgrade_guest(&guest.id, "Revived", "h")
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::Gone("player is erased".into()));
        assert_eq!(store.player(&guest.id).await.unwrap(), Some(before));
        assert!(store.player_by_username("revived").await.unwrap().is_none());
    });
    store.shutdown();
}
