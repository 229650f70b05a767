//! Persistent worlds' snapshots, run against SQLite and PostgreSQL.

mod common;

use asobi_storage::{WorldRecord, WorldSnapshot, ZoneSnapshot, MAX_PERSISTENT_WORLDS};
use common::TestDb;
use futures::executor::block_on;
use serde_json::{json, Value};

on_both_backends!(
    world_snapshots_round_trip_replace_and_forget,
    a_failed_snapshot_leaves_the_previous_one_whole,
    persistent_worlds_are_listed_oldest_first
);

fn world(id: &str, started_at: i64, tick: i64) -> WorldRecord {
    WorldRecord {
        world_id: id.to_owned(),
        mode: "walkers".into(),
        creator: Some("p1".into()),
        started_at,
        tick,
        snapshot_at: started_at + tick,
    }
}

fn zone(x: i64, y: i64, tick: i64, entities: Value) -> ZoneSnapshot {
    ZoneSnapshot {
        zone_x: x,
        zone_y: y,
        entities,
        zone_state: json!({ "tick": tick, "weather": "rain", "ore": [1, 2.5, null] }),
        entity_timers: json!({}),
        spawner_state: json!({}),
        tick,
        snapshot_at: 1_000 + tick,
    }
}

fn world_snapshots_round_trip_replace_and_forget(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let w1 = world("w1", 1_000, 600);
        let first = WorldSnapshot {
            world: w1.clone(),
            zones: vec![
                zone(
                    0,
                    0,
                    600,
                    json!({ "goblin-1": { "x": 10.5, "y": 20, "type": "npc" } }),
                ),
                zone(
                    3,
                    7,
                    600,
                    json!({ "chest-1": { "x": 700, "y": 1450, "loot": "rare" } }),
                ),
                zone(1, 0, 600, json!({})),
            ],
            removed: vec![],
        };
        store.save_world_snapshot(first.clone()).await.unwrap();
        let (got_world, got_zones) = store.world_snapshot("w1").await.unwrap().unwrap();
        assert_eq!(got_world, w1);
        let mut want = first.zones.clone();
        want.sort_by_key(|z| (z.zone_x, z.zone_y));
        assert_eq!(
            got_zones, want,
            "every column round-trips, ordered by x then y"
        );
        assert_eq!(store.world_snapshot("nope").await.unwrap(), None);

        // The next snapshot replaces zones in place, adds new ones, removes the dropped ones,
        // and moves the world row on; the creator and start stay as first written.
        let mut w1b = world("w1", 1_000, 1_200);
        w1b.creator = None;
        let second = WorldSnapshot {
            world: w1b,
            zones: vec![
                zone(0, 0, 1_200, json!({})),
                zone(1, 0, 1_200, json!({ "goblin-1": { "x": 210, "y": 20 } })),
                zone(2, 2, 1_200, json!({ "tree": { "x": 450, "y": 450 } })),
            ],
            removed: vec![(3, 7), (9, 9)],
        };
        store.save_world_snapshot(second.clone()).await.unwrap();
        let (got_world, got_zones) = store.world_snapshot("w1").await.unwrap().unwrap();
        assert_eq!(got_world.tick, 1_200);
        assert_eq!(got_world.snapshot_at, 2_200);
        assert_eq!(got_world.creator.as_deref(), Some("p1"));
        assert_eq!(got_world.started_at, 1_000);
        let coords: Vec<(i64, i64)> = got_zones.iter().map(|z| (z.zone_x, z.zone_y)).collect();
        assert_eq!(
            coords,
            [(0, 0), (1, 0), (2, 2)],
            "one row per zone, (3,7) removed"
        );
        assert_eq!(
            got_zones[1].entities,
            json!({ "goblin-1": { "x": 210, "y": 20 } })
        );
        assert!(got_zones.iter().all(|z| z.tick == 1_200));

        // Another world's rows are its own.
        store
            .save_world_snapshot(WorldSnapshot {
                world: world("w2", 2_000, 5),
                zones: vec![zone(0, 0, 5, json!({ "x": { "x": 1, "y": 1 } }))],
                removed: vec![],
            })
            .await
            .unwrap();
        assert!(store.delete_world_snapshot("w1").await.unwrap());
        assert!(!store.delete_world_snapshot("w1").await.unwrap());
        assert_eq!(store.world_snapshot("w1").await.unwrap(), None);
        let (w2, z2) = store.world_snapshot("w2").await.unwrap().unwrap();
        assert_eq!((w2.tick, z2.len()), (5, 1));
        // A forgotten world written again starts with no stale zones.
        store
            .save_world_snapshot(WorldSnapshot {
                world: world("w1", 3_000, 1),
                zones: vec![],
                removed: vec![],
            })
            .await
            .unwrap();
        let (w1c, z1c) = store.world_snapshot("w1").await.unwrap().unwrap();
        assert_eq!((w1c.started_at, z1c.len()), (3_000, 0));
    });
    store.shutdown();
}

/// A write that fails part way (here a trigger refuses one zone's row) changes nothing: the
/// world row and every other zone keep the previous snapshot.
fn a_failed_snapshot_leaves_the_previous_one_whole(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let good = WorldSnapshot {
            world: world("w1", 1_000, 10),
            zones: vec![
                zone(0, 0, 10, json!({ "a": { "x": 1, "y": 1 } })),
                zone(1, 0, 10, json!({})),
            ],
            removed: vec![],
        };
        store.save_world_snapshot(good.clone()).await.unwrap();
    });
    match db {
        TestDb::Sqlite { .. } => db.exec(
            "CREATE TRIGGER refuse_zone BEFORE INSERT ON zone_snapshots \
             WHEN NEW.zone_x = 99 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        ),
        TestDb::Postgres { .. } => db.exec(
            "CREATE FUNCTION refuse_zone() RETURNS trigger AS $$ BEGIN \
             IF NEW.zone_x = 99 THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END \
             $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_zone BEFORE INSERT ON zone_snapshots \
             FOR EACH ROW EXECUTE FUNCTION refuse_zone();",
        ),
    }
    block_on(async {
        // The entity moved from (0,0) to (1,0); the write also touches a refused zone.
        let torn = WorldSnapshot {
            world: world("w1", 1_000, 20),
            zones: vec![
                zone(0, 0, 20, json!({})),
                zone(1, 0, 20, json!({ "a": { "x": 201, "y": 1 } })),
                zone(99, 0, 20, json!({})),
            ],
            removed: vec![],
        };
        assert!(store.save_world_snapshot(torn).await.is_err());
        let (w, zones) = store.world_snapshot("w1").await.unwrap().unwrap();
        assert_eq!(w.tick, 10, "the world row is the previous snapshot's");
        let mut want = vec![
            zone(0, 0, 10, json!({ "a": { "x": 1, "y": 1 } })),
            zone(1, 0, 10, json!({})),
        ];
        want.sort_by_key(|z| (z.zone_x, z.zone_y));
        assert_eq!(zones, want, "no zone of the failed write landed");
        // The next good write goes through as usual.
        store
            .save_world_snapshot(WorldSnapshot {
                world: world("w1", 1_000, 30),
                zones: vec![zone(0, 0, 30, json!({}))],
                removed: vec![(1, 0)],
            })
            .await
            .unwrap();
        let (w, zones) = store.world_snapshot("w1").await.unwrap().unwrap();
        assert_eq!((w.tick, zones.len()), (30, 1));
    });
    store.shutdown();
}

fn persistent_worlds_are_listed_oldest_first(db: &TestDb) {
    let store = db.start();
    block_on(async {
        assert!(store.persistent_worlds(10).await.unwrap().is_empty());
        for (id, at) in [("b", 3_000), ("a", 3_000), ("c", 1_000), ("d", 2_000)] {
            store
                .save_world_snapshot(WorldSnapshot {
                    world: world(id, at, 1),
                    zones: vec![],
                    removed: vec![],
                })
                .await
                .unwrap();
        }
        let ids = |l: Vec<WorldRecord>| l.into_iter().map(|w| w.world_id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.persistent_worlds(10).await.unwrap()),
            ["c", "d", "a", "b"]
        );
        assert_eq!(ids(store.persistent_worlds(2).await.unwrap()), ["c", "d"]);
        assert_eq!(
            ids(store.persistent_worlds(0).await.unwrap()),
            ["c"],
            "limit 0 is one row"
        );
        assert_eq!(
            store.persistent_worlds(u32::MAX).await.unwrap().len(),
            4,
            "a large limit is clamped to {MAX_PERSISTENT_WORLDS}"
        );
    });
    store.shutdown();
}
