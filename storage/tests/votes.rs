//! Vote history, run against SQLite and PostgreSQL.

mod common;

use asobi_storage::{StoreError, VoteRecord};
use common::TestDb;
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(votes_insert_read_and_list_newest_first);

fn vote(id: &str, match_id: &str, at: i64) -> VoteRecord {
    VoteRecord {
        id: id.to_owned(),
        match_id: match_id.to_owned(),
        template: "boon_pick".into(),
        method: "ranked".into(),
        visibility: "hidden".into(),
        options: json!([{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]),
        votes_cast: json!({"p1": ["a", "b"], "p2": ["b"]}),
        result: json!({"winner": "b", "counts": {"a": 1, "b": 1}, "total_votes": 2}),
        distribution: json!({"a": 0.5, "b": 0.5}),
        turnout: 2.0 / 3.0,
        eligible_count: 3,
        window_ms: 15_000,
        opened_at: at - 15_000,
        closed_at: at,
        inserted_at: at,
    }
}

fn votes_insert_read_and_list_newest_first(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let v1 = vote("v1", "m1", 1_000);
        store.insert_vote(v1.clone()).await.unwrap();
        store.insert_vote(vote("v2", "m1", 3_000)).await.unwrap();
        store.insert_vote(vote("v3", "m1", 2_000)).await.unwrap();
        store.insert_vote(vote("v4", "m2", 5_000)).await.unwrap();
        assert!(matches!(
            store.insert_vote(vote("v1", "m9", 1)).await,
            Err(StoreError::Conflict(_))
        ));
        // Everything round-trips, the float turnout and the JSON columns included.
        assert_eq!(store.vote("v1").await.unwrap(), Some(v1));
        assert_eq!(store.vote("nope").await.unwrap(), None);
        let ids = |l: Vec<VoteRecord>| l.into_iter().map(|v| v.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.votes_for_match("m1", 50).await.unwrap()),
            ["v2", "v3", "v1"]
        );
        assert_eq!(
            ids(store.votes_for_match("m1", 2).await.unwrap()),
            ["v2", "v3"]
        );
        assert_eq!(
            ids(store.votes_for_match("m2", 0).await.unwrap()),
            ["v4"],
            "limit 0 is one row"
        );
        assert!(store.votes_for_match("m3", 50).await.unwrap().is_empty());
        for i in 0..60 {
            store
                .insert_vote(vote(&format!("w{i:02}"), "m5", 10_000 + i))
                .await
                .unwrap();
        }
        let page = store.votes_for_match("m5", 500).await.unwrap();
        assert_eq!(page.len(), 50, "at most the newest 50");
        assert_eq!(page[0].id, "w59");
    });
    store.shutdown();
}
