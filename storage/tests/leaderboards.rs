//! Leaderboard persistence, run against SQLite and PostgreSQL: the write-behind upsert, the
//! read-back a board is rebuilt from, and a period reset that archives.

mod common;

use asobi_storage::{ArchivedEntry, BoardEntry, PeriodEnd, SavedBoard};
use common::TestDb;
use futures::executor::block_on;

on_both_backends!(
    entries_upsert_and_read_back,
    reset_archives_and_starts_a_period,
    a_restart_keeps_entries
);

fn entry(player: &str, score: i64, seq: i64) -> BoardEntry {
    BoardEntry {
        player_id: player.to_owned(),
        score,
        sub_score: score % 7,
        seq,
        metadata: (score % 2 == 0).then(|| format!("{{\"s\":{score}}}")),
        updated_at: 1_000 + seq,
    }
}

fn sorted(mut v: Vec<BoardEntry>) -> Vec<BoardEntry> {
    v.sort_by(|a, b| a.player_id.cmp(&b.player_id));
    v
}

fn entries_upsert_and_read_back(db: &TestDb) {
    let store = db.start();
    block_on(async {
        assert_eq!(
            store.saved_leaderboard("weekly").await.unwrap(),
            SavedBoard::default()
        );
        store
            .save_leaderboard_entries("weekly", vec![entry("a", 10, 1), entry("b", 20, 2)])
            .await
            .unwrap();
        // A second flush replaces a player's row and adds new ones.
        store
            .save_leaderboard_entries("weekly", vec![entry("a", 31, 3), entry("c", 5, 4)])
            .await
            .unwrap();
        store
            .save_leaderboard_entries("other", vec![entry("a", 1, 1)])
            .await
            .unwrap();
        store
            .save_leaderboard_entries("weekly", vec![])
            .await
            .unwrap();
        let saved = store.saved_leaderboard("weekly").await.unwrap();
        assert_eq!(saved.period_start, None);
        assert_eq!(
            sorted(saved.entries),
            [entry("a", 31, 3), entry("b", 20, 2), entry("c", 5, 4)]
        );
        // Extreme values survive both engines.
        let extreme = BoardEntry {
            score: i64::MIN,
            sub_score: i64::MAX,
            ..entry("x", 0, 9)
        };
        store
            .save_leaderboard_entries("edge", vec![extreme.clone()])
            .await
            .unwrap();
        assert_eq!(
            store.saved_leaderboard("edge").await.unwrap().entries,
            [extreme]
        );
    });
    store.shutdown();
}

fn reset_archives_and_starts_a_period(db: &TestDb) {
    let store = db.start();
    block_on(async {
        store
            .save_leaderboard_entries("daily", vec![entry("a", 10, 1), entry("b", 20, 2)])
            .await
            .unwrap();
        let end = PeriodEnd {
            board_id: "daily".into(),
            period_start: i64::MIN,
            next_period_start: 86_400_000,
            ranked: vec![
                ArchivedEntry {
                    rank: 1,
                    entry: entry("b", 20, 2),
                },
                ArchivedEntry {
                    rank: 2,
                    entry: entry("a", 10, 1),
                },
            ],
            archived_at: 86_400_001,
        };
        store.reset_leaderboard(end.clone()).await.unwrap();
        // Repeating a reset (a retry after a lost reply) changes nothing.
        store.reset_leaderboard(end).await.unwrap();
        let saved = store.saved_leaderboard("daily").await.unwrap();
        assert_eq!(saved.period_start, Some(86_400_000));
        assert!(saved.entries.is_empty());
        let archive = store
            .leaderboard_archive("daily", i64::MIN, 10)
            .await
            .unwrap();
        let got: Vec<(i64, &str, i64)> = archive
            .iter()
            .map(|a| (a.rank, a.entry.player_id.as_str(), a.entry.score))
            .collect();
        assert_eq!(got, [(1, "b", 20), (2, "a", 10)]);
        assert_eq!(
            archive[0].entry.metadata.as_deref(),
            Some("{\"s\":20}"),
            "metadata is archived"
        );
        assert_eq!(
            store
                .leaderboard_archive("daily", i64::MIN, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .leaderboard_archive("daily", 86_400_000, 10)
            .await
            .unwrap()
            .is_empty());
        // The next period's entries are separate from the archive.
        store
            .save_leaderboard_entries("daily", vec![entry("c", 3, 3)])
            .await
            .unwrap();
        assert_eq!(
            store.saved_leaderboard("daily").await.unwrap().entries,
            [entry("c", 3, 3)]
        );
    });
    store.shutdown();
}

fn a_restart_keeps_entries(db: &TestDb) {
    let store = db.start();
    let many: Vec<BoardEntry> = (0..2_000)
        .map(|i| entry(&format!("p{i:05}"), i, i))
        .collect();
    block_on(store.save_leaderboard_entries("big", many.clone())).unwrap();
    store.shutdown();
    let store = db.start();
    let saved = block_on(store.saved_leaderboard("big")).unwrap();
    assert_eq!(sorted(saved.entries), many);
    store.shutdown();
}
