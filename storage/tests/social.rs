//! Social persistence, run against SQLite and PostgreSQL: friendships, groups and membership,
//! notifications (with delivery tracking) and chat history.

mod common;

use asobi_storage::{
    new_social_id, ChatMessage, Friendship, Group, GroupJoinOutcome as JoinOutcome, GroupPatch,
    Notification,
};
use common::TestDb;
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(
    friendships_request_accept_block_remove,
    groups_create_join_roles_and_leave,
    a_full_or_closed_group_refuses_joins,
    notifications_list_read_delete_and_delivery,
    chat_history_keeps_the_newest_in_order
);

fn row(player: &str, friend: &str, status: &str, at: i64) -> Friendship {
    Friendship {
        id: new_social_id(),
        player_id: player.to_owned(),
        friend_id: friend.to_owned(),
        status: status.to_owned(),
        inserted_at: at,
        updated_at: at,
    }
}

fn friendships_request_accept_block_remove(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let first = row("a", "b", "pending", 10);
        let (kept, created) = store.request_friend(first.clone()).await.unwrap();
        assert!(created);
        assert_eq!(kept, first);
        // A repeated request keeps the first row.
        let (again, created) = store
            .request_friend(row("a", "b", "pending", 20))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again.id, first.id);
        assert_eq!(
            store.friendship("a", "b").await.unwrap(),
            Some(first.clone())
        );
        assert_eq!(store.friendship("b", "a").await.unwrap(), None);

        // Accepting replaces the status and keeps id and creation time.
        let accepted = store
            .put_friendship(row("a", "b", "accepted", 30))
            .await
            .unwrap();
        assert_eq!(accepted.id, first.id);
        assert_eq!(
            (
                accepted.status.as_str(),
                accepted.inserted_at,
                accepted.updated_at
            ),
            ("accepted", 10, 30)
        );
        store
            .put_friendship(row("b", "a", "accepted", 30))
            .await
            .unwrap();
        store
            .request_friend(row("a", "c", "pending", 40))
            .await
            .unwrap();
        store
            .put_friendship(row("d", "a", "accepted", 50))
            .await
            .unwrap();
        store
            .put_friendship(row("e", "a", "blocked", 60))
            .await
            .unwrap();

        let all = store.friends("a", None, 50).await.unwrap();
        assert_eq!(
            all.iter().map(|f| f.friend_id.as_str()).collect::<Vec<_>>(),
            ["c", "b"],
            "newest first"
        );
        let pending = store.friends("a", Some("pending"), 50).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(store.friends("a", None, 1).await.unwrap().len(), 1);

        let mut ids = store.accepted_friend_ids("a").await.unwrap();
        ids.sort();
        assert_eq!(ids, ["b", "d"], "both directions, accepted only");

        assert!(store.delete_friendship("a", "b").await.unwrap());
        assert!(!store.delete_friendship("a", "b").await.unwrap());
        assert_eq!(store.friendship("a", "b").await.unwrap(), None);
        assert_eq!(
            store.friendship("e", "a").await.unwrap().map(|f| f.status),
            Some("blocked".to_owned())
        );
    });
    store.shutdown();
}

fn group(id: &str, creator: &str, open: bool, max: i64) -> Group {
    Group {
        id: id.to_owned(),
        name: format!("group {id}"),
        description: Some("about".to_owned()),
        max_members: max,
        open,
        creator_id: creator.to_owned(),
        metadata: json!({"tag": "x"}),
        inserted_at: 100,
        updated_at: 100,
    }
}

fn groups_create_join_roles_and_leave(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let g = group("g1", "owner", true, 10);
        store.create_group(g.clone()).await.unwrap();
        assert_eq!(store.group("g1").await.unwrap(), Some(g.clone()));
        assert_eq!(store.group("nope").await.unwrap(), None);
        let owner = store.member("g1", "owner").await.unwrap().unwrap();
        assert_eq!(owner.role, "owner");

        match store.join_group("g1", "p1", 200).await.unwrap() {
            JoinOutcome::Joined(m) => assert_eq!((m.role.as_str(), m.joined_at), ("member", 200)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.join_group("g1", "p1", 201).await.unwrap(),
            JoinOutcome::AlreadyMember
        );
        assert_eq!(
            store.join_group("missing", "p1", 201).await.unwrap(),
            JoinOutcome::NotFound
        );
        store.join_group("g1", "p2", 300).await.unwrap();
        let members = store.members("g1", 50).await.unwrap();
        assert_eq!(
            members
                .iter()
                .map(|m| m.player_id.as_str())
                .collect::<Vec<_>>(),
            ["owner", "p1", "p2"]
        );
        assert_eq!(store.members("g1", 2).await.unwrap().len(), 2);

        let promoted = store.set_role("g1", "p1", "admin").await.unwrap().unwrap();
        assert_eq!(promoted.role, "admin");
        assert_eq!(store.set_role("g1", "nobody", "admin").await.unwrap(), None);

        let patched = store
            .update_group(
                "g1",
                GroupPatch {
                    name: Some("renamed".into()),
                    description: Some(None),
                    max_members: Some(3),
                    open: Some(false),
                },
                400,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                patched.name.as_str(),
                patched.description.as_deref(),
                patched.max_members,
                patched.open,
                patched.updated_at
            ),
            ("renamed", None, 3, false, 400)
        );
        assert_eq!(patched.metadata, json!({"tag": "x"}));
        assert_eq!(store.group("g1").await.unwrap(), Some(patched));
        assert_eq!(
            store
                .update_group("zz", GroupPatch::default(), 1)
                .await
                .unwrap(),
            None
        );

        assert!(store.remove_member("g1", "p2").await.unwrap());
        assert!(!store.remove_member("g1", "p2").await.unwrap());
        assert_eq!(store.member("g1", "p2").await.unwrap(), None);
    });
    store.shutdown();
}

fn a_full_or_closed_group_refuses_joins(db: &TestDb) {
    let store = db.start();
    block_on(async {
        store
            .create_group(group("small", "o", true, 2))
            .await
            .unwrap();
        store.join_group("small", "a", 1).await.unwrap();
        assert_eq!(
            store.join_group("small", "b", 2).await.unwrap(),
            JoinOutcome::Full
        );
        store
            .create_group(group("shut", "o", false, 50))
            .await
            .unwrap();
        assert_eq!(
            store.join_group("shut", "b", 2).await.unwrap(),
            JoinOutcome::Closed
        );
        // Joins racing for the last seat: exactly one wins.
        store
            .create_group(group("race", "o", true, 2))
            .await
            .unwrap();
        let joins: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                std::thread::spawn(move || {
                    block_on(s.join_group("race", &format!("r{i}"), 5)).unwrap()
                })
            })
            .collect();
        let won = joins
            .into_iter()
            .map(|j| j.join().unwrap())
            .filter(|o| matches!(o, JoinOutcome::Joined(_)))
            .count();
        assert_eq!(won, 1);
        assert_eq!(store.members("race", 50).await.unwrap().len(), 2);
    });
    store.shutdown();
}

fn note(player: &str, subject: &str, at: i64) -> Notification {
    Notification {
        id: new_social_id(),
        player_id: player.to_owned(),
        kind: "reward".to_owned(),
        subject: subject.to_owned(),
        content: json!({"gold": at}),
        read: false,
        sent_at: at,
    }
}

fn notifications_list_read_delete_and_delivery(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let (n1, n2, n3) = (
            note("p", "one", 1),
            note("p", "two", 2),
            note("p", "three", 3),
        );
        store
            .insert_notifications(vec![(n1.clone(), false), (n2.clone(), false)])
            .await
            .unwrap();
        // Pushed live when stored: never handed out for replay.
        let live = note("p", "live", 0);
        store
            .insert_notifications(vec![(n3.clone(), false), (live.clone(), true)])
            .await
            .unwrap();
        store.insert_notifications(vec![]).await.unwrap();
        store
            .insert_notifications(vec![(note("q", "other", 4), false)])
            .await
            .unwrap();
        let listed = store.notifications("p", None, 50).await.unwrap();
        assert_eq!(listed, [n3.clone(), n2.clone(), n1.clone(), live.clone()]);
        assert_eq!(store.notifications("p", None, 2).await.unwrap().len(), 2);

        let read = store.mark_notification_read(&n2.id).await.unwrap().unwrap();
        assert!(read.read);
        assert_eq!(store.mark_notification_read("missing").await.unwrap(), None);
        assert_eq!(
            store.notifications("p", Some(true), 50).await.unwrap(),
            std::slice::from_ref(&read)
        );
        assert_eq!(
            store
                .notifications("p", Some(false), 50)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(store.notification(&n1.id).await.unwrap(), Some(n1.clone()));

        // Delivery: oldest first; once marked, they are not handed out again.
        let pending = store.undelivered_notifications("p", 50).await.unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|n| n.subject.as_str())
                .collect::<Vec<_>>(),
            ["one", "two", "three"]
        );
        store
            .mark_delivered(vec![n1.id.clone(), n2.id.clone()])
            .await
            .unwrap();
        store.mark_delivered(vec![]).await.unwrap();
        let pending = store.undelivered_notifications("p", 50).await.unwrap();
        assert_eq!(pending, std::slice::from_ref(&n3));

        assert!(store.delete_notification(&n3.id).await.unwrap());
        assert!(!store.delete_notification(&n3.id).await.unwrap());
        assert_eq!(store.notification(&n3.id).await.unwrap(), None);
    });
    store.shutdown();
}

fn msg(channel: &str, n: i64) -> ChatMessage {
    ChatMessage {
        id: new_social_id(),
        channel_id: channel.to_owned(),
        channel_type: channel.split(':').next().unwrap().to_owned(),
        sender_id: format!("s{}", n % 3),
        content: format!("message {n} ✓"),
        sent_at: 1_000 + n,
    }
}

fn chat_history_keeps_the_newest_in_order(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let batch: Vec<ChatMessage> = (0..30).map(|n| msg("room:x", n)).collect();
        store.save_chat_messages(batch.clone()).await.unwrap();
        // A retried batch does not duplicate.
        store
            .save_chat_messages(batch[25..].to_vec())
            .await
            .unwrap();
        store
            .save_chat_messages(vec![msg("dm:a:b", 99)])
            .await
            .unwrap();
        store.save_chat_messages(vec![]).await.unwrap();
        let last = store.chat_history("room:x", 5).await.unwrap();
        assert_eq!(last, batch[25..].to_vec(), "newest five, oldest first");
        assert_eq!(store.chat_history("room:x", 500).await.unwrap().len(), 30);
        assert_eq!(store.chat_history("dm:a:b", 50).await.unwrap().len(), 1);
        assert!(store
            .chat_history("global:none", 50)
            .await
            .unwrap()
            .is_empty());
    });
    store.shutdown();
}
