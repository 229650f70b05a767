//! Player storage, run against SQLite and PostgreSQL: objects with permissions and versions,
//! the server (Lua) namespace, cloud-save slots with versions and the slot cap, and match stats
//! folded in once per match.

mod common;

use asobi_storage::{
    MatchStats, ObjectWrite, Perm, SaveWrite, StorageRefusal, StoreHandle, StoredObject,
};
use common::TestDb;
use futures::executor::block_on;
use serde_json::{json, Value};

on_both_backends!(
    objects_permissions_and_versions,
    server_namespace_is_separate,
    saves_versions_and_slot_cap,
    stats_fold_each_match_once,
    concurrent_writers_never_both_win
);

fn write(
    c: &str,
    k: &str,
    caller: &str,
    value: Value,
    perms: (Perm, Perm),
    expected: Option<i64>,
) -> ObjectWrite {
    ObjectWrite {
        collection: c.into(),
        key: k.into(),
        caller: caller.into(),
        value,
        read_perm: perms.0,
        write_perm: perms.1,
        expected_version: expected,
        now_ms: 1_000,
    }
}

async fn put(s: &StoreHandle, w: ObjectWrite) -> Result<StoredObject, StorageRefusal> {
    s.write_object(w).await.unwrap()
}

fn objects_permissions_and_versions(db: &TestDb) {
    let s = db.start();
    block_on(async {
        let own = (Perm::Owner, Perm::Owner);
        let a = put(
            &s,
            write("prefs", "ui", "alice", json!({"dark": true}), own, None),
        )
        .await
        .unwrap();
        assert_eq!(a.version, 1);
        assert_eq!(a.player_id.as_deref(), Some("alice"));
        assert_eq!(a.value, json!({"dark": true}));
        // The owner reads it; another player may not.
        assert_eq!(
            s.read_object("prefs", "ui", "alice")
                .await
                .unwrap()
                .unwrap()
                .value,
            json!({"dark": true})
        );
        assert_eq!(
            s.read_object("prefs", "ui", "bob").await.unwrap(),
            Err(StorageRefusal::Forbidden)
        );
        assert_eq!(
            put(&s, write("prefs", "ui", "bob", json!(1), own, None)).await,
            Err(StorageRefusal::Forbidden)
        );
        assert_eq!(
            s.delete_object("prefs", "ui", "bob", None).await.unwrap(),
            Err(StorageRefusal::Forbidden)
        );
        // A stale version is refused with the current one; the right one moves it on.
        assert_eq!(
            put(&s, write("prefs", "ui", "alice", json!(2), own, Some(0))).await,
            Err(StorageRefusal::VersionConflict { current_version: 1 })
        );
        let a2 = put(
            &s,
            write(
                "prefs",
                "ui",
                "alice",
                json!(2),
                (Perm::Public, Perm::Owner),
                Some(1),
            ),
        )
        .await
        .unwrap();
        assert_eq!((a2.version, a2.read_perm.as_str()), (2, "public"));
        assert_eq!(
            s.read_object("prefs", "ui", "bob")
                .await
                .unwrap()
                .unwrap()
                .value,
            json!(2)
        );
        // Listing shows what the caller may read.
        put(
            &s,
            write("prefs", "zz", "alice", json!("secret"), own, None),
        )
        .await
        .unwrap();
        put(
            &s,
            write(
                "prefs",
                "hidden",
                "alice",
                json!(0),
                (Perm::None, Perm::None),
                None,
            ),
        )
        .await
        .unwrap();
        let keys = |v: Vec<StoredObject>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list_objects("prefs", "alice", 50).await.unwrap()),
            ["ui", "zz"]
        );
        assert_eq!(
            keys(s.list_objects("prefs", "bob", 50).await.unwrap()),
            ["ui"]
        );
        assert_eq!(
            keys(s.list_objects("prefs", "alice", 1).await.unwrap()),
            ["ui"]
        );
        // `none` is closed even to its owner, for reads and writes alike.
        assert_eq!(
            s.read_object("prefs", "hidden", "alice").await.unwrap(),
            Err(StorageRefusal::Forbidden)
        );
        assert_eq!(
            put(&s, write("prefs", "hidden", "alice", json!(1), own, None)).await,
            Err(StorageRefusal::Forbidden)
        );
        // A public-write object takes others' values but keeps its owner's permissions.
        put(
            &s,
            write(
                "board",
                "wall",
                "alice",
                json!([]),
                (Perm::Public, Perm::Public),
                None,
            ),
        )
        .await
        .unwrap();
        let by_bob = put(
            &s,
            write("board", "wall", "bob", json!(["hi"]), own, Some(1)),
        )
        .await
        .unwrap();
        assert_eq!(by_bob.player_id.as_deref(), Some("alice"));
        assert_eq!((by_bob.version, by_bob.write_perm.as_str()), (2, "public"));
        // Delete with a stale version is refused; then the owner deletes.
        assert_eq!(
            s.delete_object("prefs", "ui", "alice", Some(1))
                .await
                .unwrap(),
            Err(StorageRefusal::VersionConflict { current_version: 2 })
        );
        assert_eq!(
            s.delete_object("prefs", "ui", "alice", Some(2))
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            s.read_object("prefs", "ui", "alice").await.unwrap(),
            Err(StorageRefusal::NotFound)
        );
        assert_eq!(
            s.delete_object("prefs", "ui", "alice", None).await.unwrap(),
            Err(StorageRefusal::NotFound)
        );
    });
    s.shutdown();
}

fn server_namespace_is_separate(db: &TestDb) {
    let s = db.start();
    block_on(async {
        assert_eq!(s.server_object("cfg", "motd", None).await.unwrap(), None);
        let g = s
            .server_write_object("cfg", "motd", None, json!({"text": "hi"}), 5)
            .await
            .unwrap();
        assert_eq!((g.version, g.player_id.clone()), (1, None));
        let g2 = s
            .server_write_object("cfg", "motd", None, json!({"text": "yo"}), 6)
            .await
            .unwrap();
        assert_eq!((g2.version, g2.value.clone()), (2, json!({"text": "yo"})));
        // Per-player server rows: one per player under the same collection and key.
        s.server_write_object("progress", "level", Some("p1"), json!(3), 7)
            .await
            .unwrap();
        s.server_write_object("progress", "level", Some("p2"), json!(9), 7)
            .await
            .unwrap();
        let p1 = s
            .server_object("progress", "level", Some("p1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p1.value, json!(3));
        // Players see their own row first; the global row is never a player's.
        assert_eq!(
            s.read_object("progress", "level", "p2")
                .await
                .unwrap()
                .unwrap()
                .value,
            json!(9)
        );
        assert_eq!(
            s.read_object("progress", "level", "p3").await.unwrap(),
            Err(StorageRefusal::Ambiguous)
        );
        assert_eq!(
            s.read_object("cfg", "motd", "p1").await.unwrap(),
            Err(StorageRefusal::NotFound)
        );
        // Values of every JSON kind survive both databases.
        for v in [
            json!(null),
            json!(1.5),
            json!("é\u{1f600}"),
            json!([1, {"a": []}]),
        ] {
            let o = s
                .server_write_object("kinds", "k", None, v.clone(), 8)
                .await
                .unwrap();
            assert_eq!(o.value, v);
        }
    });
    s.shutdown();
}

fn save(player: &str, slot: &str, data: Value, expected: Option<i64>, max: u32) -> SaveWrite {
    SaveWrite {
        player_id: player.into(),
        slot: slot.into(),
        data,
        expected_version: expected,
        max_slots: max,
        now_ms: 2_000,
    }
}

fn saves_versions_and_slot_cap(db: &TestDb) {
    let s = db.start();
    block_on(async {
        assert!(s.save_slots("pa").await.unwrap().is_empty());
        assert_eq!(s.cloud_save("pa", "main").await.unwrap(), None);
        let first = s
            .write_save(save("pa", "main", json!({"lvl": 1}), None, 2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.version, 1);
        let second = s
            .write_save(save("pa", "main", json!({"lvl": 2}), Some(1), 2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(
            s.write_save(save("pa", "main", json!({"lvl": 0}), Some(1), 2))
                .await
                .unwrap(),
            Err(StorageRefusal::VersionConflict { current_version: 2 })
        );
        let read = s.cloud_save("pa", "main").await.unwrap().unwrap();
        assert_eq!((read.version, read.data), (2, json!({"lvl": 2})));
        s.write_save(save("pa", "alt", json!([]), None, 2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            s.write_save(save("pa", "third", json!([]), None, 2))
                .await
                .unwrap(),
            Err(StorageRefusal::SlotLimitReached)
        );
        // Another player's slots are their own.
        s.write_save(save("pb", "main", json!(1), None, 2))
            .await
            .unwrap()
            .unwrap();
        let slots: Vec<_> = s
            .save_slots("pa")
            .await
            .unwrap()
            .into_iter()
            .map(|x| (x.slot, x.version))
            .collect();
        assert_eq!(slots, [("alt".to_owned(), 1), ("main".to_owned(), 2)]);
    });
    s.shutdown();
}

fn stats_fold_each_match_once(db: &TestDb) {
    let s = db.start();
    block_on(async {
        let m = |id: &str, players: Vec<(&str, bool, bool)>| MatchStats {
            match_id: id.into(),
            players: players
                .into_iter()
                .map(|(p, w, l)| (p.into(), w, l))
                .collect(),
            now_ms: 3_000,
        };
        assert_eq!(s.player_stats("w").await.unwrap(), None);
        assert!(s
            .record_match_stats(m("m1", vec![("w", true, false), ("l", false, true)]))
            .await
            .unwrap());
        // The same match again changes nothing.
        assert!(!s
            .record_match_stats(m("m1", vec![("w", true, false), ("l", false, true)]))
            .await
            .unwrap());
        assert!(s
            .record_match_stats(m("m2", vec![("w", false, false), ("w", false, false)]))
            .await
            .unwrap());
        let w = s.player_stats("w").await.unwrap().unwrap();
        assert_eq!((w.games_played, w.wins, w.losses), (2, 1, 0));
        let l = s.player_stats("l").await.unwrap().unwrap();
        assert_eq!((l.games_played, l.wins, l.losses), (1, 0, 1));
    });
    s.shutdown();
}

/// Many writers race on one object, each with the version it read: exactly one wins per
/// version, so the final version equals the number of successful writes.
fn concurrent_writers_never_both_win(db: &TestDb) {
    let s = db.start();
    block_on(put(
        &s,
        write(
            "race",
            "k",
            "owner",
            json!(0),
            (Perm::Owner, Perm::Public),
            None,
        ),
    ))
    .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut wins = 0;
                for _ in 0..10 {
                    let seen = block_on(s.read_object("race", "k", "owner"))
                        .unwrap()
                        .unwrap();
                    let w = write(
                        "race",
                        "k",
                        &format!("w{i}"),
                        json!(i),
                        (Perm::Owner, Perm::Owner),
                        Some(seen.version),
                    );
                    match block_on(s.write_object(w)).unwrap() {
                        Ok(_) => wins += 1,
                        Err(StorageRefusal::VersionConflict { .. }) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                wins
            })
        })
        .collect();
    let wins: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let last = block_on(s.read_object("race", "k", "owner"))
        .unwrap()
        .unwrap();
    assert!(wins >= 1);
    assert_eq!(last.version, 1 + wins);
    s.shutdown();
}
