//! Access control, run against SQLite and PostgreSQL: bans, revocations and their snapshot,
//! identities and the last-method rule, spent Steam tickets, hard erasure with its audit row,
//! compare-and-swap password replacement and the idempotent import.

mod common;

use asobi_storage::{
    EraseOutcome, ImportInsert, ImportValue, ImportedPlayer, RevokedToken, StoreError,
};
use common::{new_id, new_player, now_ms, token, TestDb};
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(
    bans_revoke_and_unban,
    revocations_come_back_in_the_snapshot,
    identities_link_unlink_and_the_last_method,
    steam_tickets_are_spent_once,
    erase_deletes_every_row_and_audits,
    erase_refuses_when_the_password_changed,
    passwords_are_replaced_only_when_unchanged,
    imports_are_idempotent,
    imported_rows_are_written_once_and_all_or_nothing,
    idle_guests_are_reaped,
);

fn idle_guests_are_reaped(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let t0 = now_ms();
        let make = |name: &str, device: &str| {
            let mut g = new_player(name, None);
            g.is_guest = true;
            g.now_ms = t0 - 10_000;
            (g, device.to_owned())
        };
        let (idle, d1) = make("guest_idle", "dev-idle");
        let (busy, d2) = make("guest_busy", "dev-busy");
        let (claimed, d3) = make("guest_claimed", "dev-claimed");
        for (g, d) in [(&idle, &d1), (&busy, &d2), (&claimed, &d3)] {
            store.create_guest(g.clone(), d, "v").await.unwrap();
        }
        store.touch_guest(&d2, t0).await.unwrap();
        store
            .upgrade_guest(&claimed.id, "claimed_name", "h")
            .await
            .unwrap();
        let cutoff = t0 - 1_000;
        assert_eq!(
            store.idle_guests(cutoff, 10).await.unwrap(),
            vec![idle.id.clone()]
        );
        assert!(store.reap_guest(&idle.id, cutoff, t0).await.unwrap());
        assert!(
            !store.reap_guest(&busy.id, cutoff, t0).await.unwrap(),
            "seen since the cutoff"
        );
        assert!(
            !store.reap_guest(&claimed.id, cutoff, t0).await.unwrap(),
            "upgraded"
        );
        assert!(store.player(&idle.id).await.unwrap().is_none());
        assert!(store.guest_device(&d1).await.unwrap().is_none());
        assert!(store.player(&busy.id).await.unwrap().is_some());
        let snap = store.access_snapshot(0).await.unwrap();
        assert!(snap.players.iter().any(|r| r.player_id == idle.id));
    });
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM account_audit WHERE action = 'reap'"
        ),
        1
    );
    store.shutdown();
}

/// Rows matching `sql` (a `SELECT COUNT(*) ...`), read outside the store.
fn count(db: &TestDb, sql: &str) -> i64 {
    match db {
        TestDb::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        TestDb::Postgres { url, .. } => common::pg_query(url, sql)[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap(),
    }
}

fn bans_revoke_and_unban(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Banned", Some("h")))
            .await
            .unwrap();
        let t = token("tok-ban", &p.id, "fam", now_ms() + 60_000);
        store.insert_refresh_token(t).await.unwrap();
        let at = now_ms();
        store.set_ban(&p.id, true, "ops", at).await.unwrap();
        let st = store.sign_in_state(&p.id).await.unwrap().unwrap();
        assert_eq!(st.banned_at, Some(at));
        // The ban ended the refresh tokens and set the access cut-off.
        let snap = store.access_snapshot(at - 1).await.unwrap();
        assert!(snap
            .players
            .iter()
            .any(|r| r.player_id == p.id && r.not_before_ms == at));
        let spent = store
            .rotate_refresh_token(
                "tok-ban",
                token("tok-2", "", "", now_ms() + 60_000),
                now_ms(),
            )
            .await
            .unwrap();
        assert_ne!(
            spent,
            asobi_storage::RotateOutcome::Rotated {
                player_id: p.id.clone()
            }
        );
        store.set_ban(&p.id, false, "ops", at + 5).await.unwrap();
        assert_eq!(
            store.sign_in_state(&p.id).await.unwrap().unwrap().banned_at,
            None
        );
        assert_eq!(
            store.set_ban(&new_id(), true, "ops", at).await,
            Err(StoreError::NotFound)
        );
    });
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM account_audit WHERE action IN ('ban', 'unban')"
        ),
        2
    );
    store.shutdown();
}

fn revocations_come_back_in_the_snapshot(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let now = now_ms();
        store
            .revoke_player_access("p-old", now - 10_000, "password_changed", "p-old")
            .await
            .unwrap();
        store
            .revoke_player_access("p-new", now, "password_changed", "p-new")
            .await
            .unwrap();
        // An older cut-off never moves a newer one back.
        store
            .revoke_player_access("p-new", now - 50, "logout_all", "p-new")
            .await
            .unwrap();
        for (id, exp) in [("j1", now + 60_000), ("j2", now - 1), ("j1", now + 60_000)] {
            store
                .revoke_access_token(RevokedToken {
                    token_id: id.into(),
                    player_id: "p".into(),
                    expires_at_ms: exp,
                })
                .await
                .unwrap();
        }
        let snap = store.access_snapshot(now - 5_000).await.unwrap();
        assert_eq!(snap.players.len(), 1);
        assert_eq!(snap.players[0].player_id, "p-new");
        assert_eq!(snap.players[0].not_before_ms, now);
        let ids: Vec<&str> = snap.tokens.iter().map(|t| t.token_id.as_str()).collect();
        assert_eq!(ids, ["j1"], "expired tokens are not in the snapshot");
    });
    store.shutdown();
}

fn identities_link_unlink_and_the_last_method(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let mut np = new_player("g_one", None);
        np.display_name = None;
        let p = store
            .create_identity_player(np.clone(), "google", "sub-1")
            .await
            .unwrap();
        assert_eq!(
            store
                .identity_player("google", "sub-1")
                .await
                .unwrap()
                .as_deref(),
            Some(p.id.as_str())
        );
        // The same identity cannot create a second player.
        let mut again = new_player("g_two", None);
        again.display_name = None;
        assert!(matches!(
            store.create_identity_player(again, "google", "sub-1").await,
            Err(StoreError::Conflict(_))
        ));
        // Its only method cannot be unlinked.
        assert!(matches!(
            store.unlink_identity(&p.id, "google").await,
            Err(StoreError::Precondition(_))
        ));
        assert_eq!(
            store.unlink_identity(&p.id, "discord").await,
            Err(StoreError::NotFound)
        );
        store
            .link_identity(&p.id, "discord", "d-1", now_ms())
            .await
            .unwrap();
        store
            .link_identity(&p.id, "discord", "d-1", now_ms())
            .await
            .unwrap();
        let other = store
            .create_player(new_player("Other", Some("h")))
            .await
            .unwrap();
        assert!(matches!(
            store
                .link_identity(&other.id, "discord", "d-1", now_ms())
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.link_identity(&p.id, "discord", "d-2", now_ms()).await,
            Err(StoreError::Conflict(_))
        ));
        store.unlink_identity(&p.id, "google").await.unwrap();
        let st = store.sign_in_state(&p.id).await.unwrap().unwrap();
        assert_eq!(st.providers, ["discord"]);
        assert!(matches!(
            store.unlink_identity(&p.id, "discord").await,
            Err(StoreError::Precondition(_))
        ));
        // A password account may drop its last provider.
        store
            .link_identity(&other.id, "steam", "765", now_ms())
            .await
            .unwrap();
        store.unlink_identity(&other.id, "steam").await.unwrap();
    });
    store.shutdown();
}

fn steam_tickets_are_spent_once(db: &TestDb) {
    let store = db.start();
    block_on(async {
        assert!(store.spend_steam_ticket("abc", now_ms()).await.unwrap());
        assert!(!store.spend_steam_ticket("abc", now_ms()).await.unwrap());
        assert!(store.spend_steam_ticket("abd", now_ms()).await.unwrap());
        // (The guest count, read by the guest cap, is checked here too: no guests yet.)
        assert_eq!(store.count_guests().await.unwrap(), 0);
        let mut g = new_player("guest_one", None);
        g.is_guest = true;
        store.create_guest(g, "device-1", "verifier").await.unwrap();
        assert_eq!(store.count_guests().await.unwrap(), 1);
    });
    store.shutdown();
}

fn erase_deletes_every_row_and_audits(db: &TestDb) {
    let store = db.start();
    let p = block_on(async {
        let p = store
            .create_player(new_player("Eraser", Some("hash-e")))
            .await
            .unwrap();
        store
            .link_identity(&p.id, "google", "e-sub", now_ms())
            .await
            .unwrap();
        store
            .insert_refresh_token(token("tok-e", &p.id, "fam-e", now_ms() + 60_000))
            .await
            .unwrap();
        p
    });
    let id = &p.id;
    db.exec(&format!(
        "INSERT INTO wallets (id, player_id, currency, balance, updated_at) VALUES ('w-{id}', '{id}', 'gold', 5, 1);
         INSERT INTO wallet_ledger (id, wallet_id, amount, balance_after, reason, idempotency_key, inserted_at)
           VALUES ('l-{id}', 'w-{id}', 5, 5, 'grant', 'k', 1);
         INSERT INTO player_items (id, player_id, item_def_id, quantity, acquired_at, updated_at)
           VALUES ('i-{id}', '{id}', 'sword', 1, 1, 1);
         INSERT INTO leaderboard_entries (board_id, player_id, score, sub_score, seq, updated_at)
           VALUES ('b', '{id}', 10, 0, 1, 1);"
    ));
    let outcome = block_on(store.erase_account(id, Some("hash-e"), id, now_ms())).unwrap();
    assert_eq!(outcome, EraseOutcome::Erased);
    for table in [
        "players WHERE id",
        "player_credentials WHERE player_id",
        "player_identities WHERE player_id",
        "refresh_tokens WHERE player_id",
        "wallets WHERE player_id",
        "player_items WHERE player_id",
        "leaderboard_entries WHERE player_id",
    ] {
        assert_eq!(
            count(db, &format!("SELECT COUNT(*) FROM {table} = '{id}'")),
            0,
            "{table}"
        );
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM wallet_ledger"), 0);
    assert_eq!(
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM account_audit WHERE player_id = '{id}' AND action = 'erase'"
            )
        ),
        1
    );
    block_on(async {
        // The cut-off outlives the row; a second erase finds nothing.
        let snap = store.access_snapshot(0).await.unwrap();
        assert!(snap.players.iter().any(|r| &r.player_id == id));
        assert_eq!(
            store.erase_account(id, None, id, now_ms()).await.unwrap(),
            EraseOutcome::NotFound
        );
        // The username is free again.
        store
            .create_player(new_player("eraser", Some("h")))
            .await
            .unwrap();
    });
    store.shutdown();
}

fn erase_refuses_when_the_password_changed(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Keeper", Some("old")))
            .await
            .unwrap();
        assert_eq!(
            store
                .erase_account(&p.id, Some("stale"), &p.id, now_ms())
                .await
                .unwrap(),
            EraseOutcome::CredentialsChanged
        );
        assert!(store.player(&p.id).await.unwrap().is_some());
    });
    store.shutdown();
}

fn passwords_are_replaced_only_when_unchanged(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let p = store
            .create_player(new_player("Changer", Some("h1")))
            .await
            .unwrap();
        assert!(store
            .replace_password(&p.id, Some("h1"), "h2", now_ms())
            .await
            .unwrap());
        assert!(!store
            .replace_password(&p.id, Some("h1"), "h3", now_ms())
            .await
            .unwrap());
        let (_, hash) = store.player_by_username("changer").await.unwrap().unwrap();
        assert_eq!(hash.as_deref(), Some("h2"));
        assert_eq!(
            store.replace_password(&new_id(), None, "x", now_ms()).await,
            Err(StoreError::NotFound)
        );
    });
    store.shutdown();
}

fn imports_are_idempotent(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let imported = ImportedPlayer {
            id: new_id(),
            username: "OldTimer".into(),
            display_name: Some("Old".into()),
            avatar_url: None,
            metadata: json!({"level": 3}),
            password_hash: Some("$pbkdf2-sha256$1000$c2FsdA==$ZGs=".into()),
            banned_at: None,
            created_at: 1_000,
            updated_at: 2_000,
            identities: vec![("discord".into(), "d-9".into())],
            is_guest: false,
        };
        assert!(store.import_player(imported.clone()).await.unwrap());
        assert!(!store.import_player(imported.clone()).await.unwrap());
        let (p, hash) = store.player_by_username("oldtimer").await.unwrap().unwrap();
        assert_eq!(p.id, imported.id);
        assert_eq!(p.metadata, json!({"level": 3}));
        assert_eq!(hash, imported.password_hash);
        assert_eq!(
            store.identity_player("discord", "d-9").await.unwrap(),
            Some(imported.id.clone())
        );
    });
    store.shutdown();
}

fn wallet_row(id: &str, player: &str, currency: &str, balance: i64) -> ImportInsert {
    let t = |v: &str| ImportValue::Text(Some(v.to_owned()));
    ImportInsert {
        kind: "wallets",
        sql: "INSERT INTO wallets (id, player_id, currency, balance, updated_at) \
              VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        values: vec![
            t(id),
            t(player),
            t(currency),
            ImportValue::Int(Some(balance)),
            ImportValue::Int(Some(1_000)),
        ],
        only_if: None,
    }
}

fn ledger_row(id: &str, wallet: &str, amount: i64, only_if: usize) -> ImportInsert {
    let t = |v: &str| ImportValue::Text(Some(v.to_owned()));
    ImportInsert {
        kind: "ledger entries",
        sql: "INSERT INTO wallet_ledger (id, wallet_id, amount, balance_after, reason, reference_type, \
              reference_id, metadata, idempotency_key, inserted_at) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        values: vec![
            t(id),
            t(wallet),
            ImportValue::Int(Some(amount)),
            ImportValue::Int(Some(amount)),
            t("grant"),
            ImportValue::Text(None),
            ImportValue::Text(None),
            t("{}"),
            t(&format!("asobi:{id}")),
            ImportValue::Int(Some(1_000)),
        ],
        only_if: Some(only_if),
    }
}

fn imported_rows_are_written_once_and_all_or_nothing(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let player = new_id();
        let wallet = new_id();
        let batch = vec![
            wallet_row(&wallet, &player, "gold", 70),
            ledger_row(&new_id(), &wallet, 70, 0),
        ];
        assert_eq!(
            store.import_rows(batch.clone()).await.unwrap(),
            vec![true, true]
        );
        // A re-run writes nothing, and a ledger entry never lands without its wallet's insert.
        assert_eq!(store.import_rows(batch).await.unwrap(), vec![false, false]);
        let late = vec![
            wallet_row(&wallet, &player, "gold", 70),
            ledger_row(&new_id(), &wallet, 5, 0),
        ];
        assert_eq!(store.import_rows(late).await.unwrap(), vec![false, false]);
        let wallets = store.wallets(&player).await.unwrap();
        assert_eq!(wallets.len(), 1);
        assert_eq!(wallets[0].balance, 70);

        // A row that fails (a negative balance) leaves nothing of its batch.
        let other = new_id();
        let failing = vec![
            wallet_row(&new_id(), &other, "gold", 10),
            wallet_row(&new_id(), &other, "gems", -1),
        ];
        assert!(store.import_rows(failing).await.is_err());
        assert!(store.wallets(&other).await.unwrap().is_empty());
    });
    store.shutdown();
}
