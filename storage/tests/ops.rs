//! The ops plane's storage, one conformance suite run against SQLite and PostgreSQL: paged and
//! sorted player and match lists with totals, search with literal wildcards, bans, the audit
//! trail, board summaries and the unclaimed-guest cohort.

mod common;

use asobi_storage::{
    Ban, BoardEntry, ChatListQuery, ChatMessage, MatchListQuery, NewPlayer, Notification,
    NotificationListQuery, OpsPage, Order, PlayerListQuery, StoreError,
};
use common::{new_player, record, TestDb};
use futures::executor::block_on;

on_both_backends!(
    ops_lists_bans_audit_and_guests,
    ops_lists_notifications_and_chat_history
);

fn page(limit: u32, offset: u32, sort: &str, order: Order, q: Option<&str>) -> OpsPage {
    OpsPage {
        limit,
        offset,
        sort: sort.to_owned(),
        order,
        q: q.map(str::to_owned),
    }
}

fn ops_lists_bans_audit_and_guests(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let mut ids = Vec::new();
        for name in ["alice", "bob", "carol_x", "dave%"] {
            let p = store
                .create_player(new_player(name, Some("hash")))
                .await
                .unwrap();
            ids.push(p.id);
        }
        let guest = store
            .create_guest(
                NewPlayer {
                    id: uuid::Uuid::now_v7().to_string(),
                    username: "guest_1".into(),
                    display_name: None,
                    password_hash: None,
                    is_guest: true,
                    now_ms: 1_000,
                },
                "device-1",
                "verifier",
            )
            .await
            .unwrap();

        // Sorted, paged, with the total of the whole filter.
        let q = |p: OpsPage, guest: Option<bool>| PlayerListQuery { page: p, guest };
        let (rows, total) = store
            .ops_players(q(page(2, 0, "username", Order::Asc, None), None))
            .await
            .unwrap();
        assert_eq!(total, 5);
        let names: Vec<&str> = rows.iter().map(|p| p.username.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let (rows, _) = store
            .ops_players(q(page(2, 2, "username", Order::Asc, None), None))
            .await
            .unwrap();
        assert_eq!(rows[0].username, "carol_x");
        let (rows, _) = store
            .ops_players(q(page(1, 0, "username", Order::Desc, None), None))
            .await
            .unwrap();
        assert_eq!(rows[0].username, "guest_1");
        // `_` and `%` are matched literally, case-insensitively, in username or display name.
        let (rows, total) = store
            .ops_players(q(page(50, 0, "id", Order::Asc, Some("L_X")), None))
            .await
            .unwrap();
        assert_eq!((total, rows[0].username.as_str()), (1, "carol_x"));
        let (_, total) = store
            .ops_players(q(page(50, 0, "id", Order::Asc, Some("%")), None))
            .await
            .unwrap();
        assert_eq!(total, 1, "only dave% has a literal %");
        let (_, total) = store
            .ops_players(q(
                page(50, 0, "id", Order::Asc, Some("ALICE DISPLAY")),
                None,
            ))
            .await
            .unwrap();
        assert_eq!(total, 1);
        let (rows, total) = store
            .ops_players(q(page(50, 0, "id", Order::Asc, None), Some(true)))
            .await
            .unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, guest.id.as_str()));
        let err = store
            .ops_players(q(page(5, 0, "password_hash", Order::Asc, None), None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)));

        // Match records.
        for (i, mode) in ["duel", "duel", "arena"].iter().enumerate() {
            store
                .insert_match_record(record(
                    &format!("m{i}"),
                    mode,
                    "finished",
                    &["p"],
                    1_000 + i as i64,
                ))
                .await
                .unwrap();
        }
        let mq = |p: OpsPage, mode: Option<&str>| MatchListQuery {
            page: p,
            mode: mode.map(str::to_owned),
            status: None,
        };
        let (rows, total) = store
            .ops_matches(mq(page(1, 0, "finished_at", Order::Desc, None), None))
            .await
            .unwrap();
        assert_eq!((total, rows[0].id.as_str()), (3, "m2"));
        let (_, total) = store
            .ops_matches(mq(page(10, 0, "id", Order::Asc, None), Some("duel")))
            .await
            .unwrap();
        assert_eq!(total, 2);
        let (_, total) = store
            .ops_matches(mq(page(10, 0, "id", Order::Asc, Some("ARE")), None))
            .await
            .unwrap();
        assert_eq!(total, 1);

        // Bans: replace on a second ban, list, lift.
        let ban = |reason: &str, at: i64| Ban {
            player_id: ids[1].clone(),
            reason: reason.into(),
            banned_by: "ops".into(),
            banned_at: at,
        };
        store.ban_player(ban("spam", 5)).await.unwrap();
        store.ban_player(ban("cheating", 6)).await.unwrap();
        assert_eq!(store.bans().await.unwrap(), vec![ban("cheating", 6)]);
        assert!(store.unban_player(&ids[1]).await.unwrap());
        assert!(!store.unban_player(&ids[1]).await.unwrap());
        assert!(store.bans().await.unwrap().is_empty());

        // Audit rows, newest first per target.
        store
            .append_audit(
                "kaito",
                "player.kick",
                Some(&ids[0]),
                "ok",
                serde_json::json!({"reason": "x"}),
            )
            .await
            .unwrap();
        store
            .append_audit(
                "kaito",
                "wallet.grant",
                Some(&ids[0]),
                "ok",
                serde_json::json!({}),
            )
            .await
            .unwrap();
        store
            .append_audit("kaito", "guests.purge", None, "ok", serde_json::json!({}))
            .await
            .unwrap();
        let trail = store.audit_for(&ids[0], 10).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["wallet.grant", "player.kick"]);
        assert_eq!(trail[1].details, r#"{"reason":"x"}"#);

        // Boards.
        let entry = |player: &str, score: i64| BoardEntry {
            player_id: player.into(),
            score,
            sub_score: 0,
            seq: score,
            metadata: None,
            updated_at: score,
        };
        store
            .save_leaderboard_entries("arena", vec![entry("a", 10), entry("b", 30)])
            .await
            .unwrap();
        let boards = store.board_summaries().await.unwrap();
        assert_eq!(boards.len(), 1);
        assert_eq!(
            (boards[0].entries, boards[0].top_score, boards[0].updated_at),
            (2, 30, 30)
        );

        // The unclaimed-guest cohort: guests untouched since the cutoff, never password holders.
        let (n, who) = store.unclaimed_guests(2_000, 10).await.unwrap();
        assert_eq!((n, who), (1, vec![guest.id.clone()]));
        let (n, _) = store.unclaimed_guests(500, 10).await.unwrap();
        assert_eq!(n, 0);
        store.erase_player(&guest.id).await.unwrap();
        assert_eq!(store.unclaimed_guests(i64::MAX, 10).await.unwrap().0, 0);
    });
    store.shutdown();
}

fn note(id: &str, player: &str, kind: &str, subject: &str, read: bool, at: i64) -> Notification {
    Notification {
        id: id.to_owned(),
        player_id: player.to_owned(),
        kind: kind.to_owned(),
        subject: subject.to_owned(),
        content: serde_json::json!({ "n": at }),
        read,
        sent_at: at,
    }
}

fn chat(id: &str, channel: &str, sender: &str, content: &str, at: i64) -> ChatMessage {
    ChatMessage {
        id: id.to_owned(),
        channel_id: channel.to_owned(),
        channel_type: channel.split(':').next().unwrap_or("").to_owned(),
        sender_id: sender.to_owned(),
        content: content.to_owned(),
        sent_at: at,
    }
}

fn ops_lists_notifications_and_chat_history(db: &TestDb) {
    let store = db.start();
    block_on(async {
        store
            .insert_notifications(vec![
                (note("n1", "p1", "reward", "Daily 100%", false, 10), true),
                (note("n2", "p1", "system", "Maintenance", true, 20), false),
                (note("n3", "p2", "reward", "Weekly_bonus", false, 30), true),
            ])
            .await
            .unwrap();
        let nq = |page: OpsPage, player: Option<&str>, kind: Option<&str>, read: Option<bool>| {
            NotificationListQuery {
                page,
                player_id: player.map(str::to_owned),
                kind: kind.map(str::to_owned),
                read,
            }
        };
        // Every player's, newest first, with the total.
        let (rows, total) = store
            .ops_notifications(nq(
                page(2, 0, "sent_at", Order::Desc, None),
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!(total, 3);
        let ids: Vec<&str> = rows.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["n3", "n2"]);
        assert_eq!(rows[0].content, serde_json::json!({ "n": 30 }));
        // Offsets page on.
        let (rows, _) = store
            .ops_notifications(nq(
                page(2, 2, "sent_at", Order::Desc, None),
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "n1");
        // Filters: recipient, type, read.
        let (rows, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, None),
                Some("p1"),
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!((total, rows.len()), (2, 2));
        let (rows, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, None),
                None,
                Some("reward"),
                Some(false),
            ))
            .await
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].id, "n1");
        let (_, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, None),
                None,
                None,
                Some(true),
            ))
            .await
            .unwrap();
        assert_eq!(total, 1);
        // Subject search is case-insensitive, wildcards literal.
        let (rows, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, Some("100%")),
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, "n1"));
        let (_, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, Some("WEEKLY_")),
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!(total, 1);
        let (_, total) = store
            .ops_notifications(nq(
                page(50, 0, "id", Order::Asc, Some("_")),
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!(total, 1, "`_` is matched literally");
        // A sort outside the list is refused before any SQL.
        assert!(matches!(
            store
                .ops_notifications(nq(
                    page(50, 0, "content", Order::Asc, None),
                    None,
                    None,
                    None
                ))
                .await,
            Err(StoreError::Precondition(_))
        ));

        store
            .save_chat_messages(vec![
                chat("c1", "room:lobby", "p1", "hello there", 1),
                chat("c2", "room:lobby", "p2", "Spam SPAM", 2),
                chat("c3", "room:lobby", "p1", "bye", 3),
                chat("c4", "room:other", "p1", "elsewhere", 4),
            ])
            .await
            .unwrap();
        let cq = |page: OpsPage, sender: Option<&str>| ChatListQuery {
            page,
            channel_id: "room:lobby".into(),
            sender_id: sender.map(str::to_owned),
            channel_type: None,
        };
        let (rows, total) = store
            .ops_chat_messages(cq(page(2, 0, "sent_at", Order::Desc, None), None))
            .await
            .unwrap();
        assert_eq!(total, 3, "only the one channel");
        let ids: Vec<&str> = rows.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["c3", "c2"]);
        let (_, total) = store
            .ops_chat_messages(cq(page(50, 0, "sent_at", Order::Desc, None), Some("p1")))
            .await
            .unwrap();
        assert_eq!(total, 2);
        let (rows, total) = store
            .ops_chat_messages(cq(page(50, 0, "sent_at", Order::Desc, Some("spam")), None))
            .await
            .unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, "c2"));
        let (_, total) = store
            .ops_chat_messages(ChatListQuery {
                channel_type: Some("dm".into()),
                ..cq(page(50, 0, "id", Order::Asc, None), None)
            })
            .await
            .unwrap();
        assert_eq!(total, 0);
    });
}
