//! Match history behaviour, run against SQLite and PostgreSQL.

mod common;

use asobi_storage::{MatchQuery, MatchRecord, StoreError};
use common::{record, TestDb};
use futures::executor::block_on;

on_both_backends!(match_records_insert_get_list);

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
