//! Economy behaviour (wallets, ledger, idempotency, purchases, inventory) and the concurrency
//! proof, run against SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use asobi_storage::{
    Consume, Done, NewPurchase, Outcome, Refusal, StoreConfig, StoreError, StoreHandle,
    WalletChange,
};
use common::{now_ms, TestDb};
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(
    grants_debits_and_history,
    a_replayed_key_applies_once,
    purchases_debit_and_grant_together,
    consuming_items,
    one_thousand_concurrent_purchases_and_grants
);

fn change(player: &str, currency: &str, amount: i64, key: &str) -> WalletChange {
    WalletChange {
        player_id: player.to_owned(),
        currency: currency.to_owned(),
        amount,
        reason: if amount > 0 {
            "match_reward"
        } else {
            "respawn_fee"
        }
        .to_owned(),
        reference_type: None,
        reference_id: None,
        metadata: json!({}),
        idempotency_key: key.to_owned(),
        now_ms: now_ms(),
    }
}

fn purchase(player: &str, listing: &str, price: i64, key: &str) -> NewPurchase {
    NewPurchase {
        player_id: player.to_owned(),
        listing_id: listing.to_owned(),
        item_def_id: format!("def-{listing}"),
        currency: "gold".to_owned(),
        price,
        quantity: 1,
        idempotency_key: key.to_owned(),
        now_ms: now_ms(),
    }
}

fn done<T>(o: Outcome<T>) -> T {
    match o {
        Ok(Done {
            value,
            replayed: false,
        }) => value,
        Ok(Done { replayed: true, .. }) => panic!("replayed, expected a fresh application"),
        Err(r) => panic!("refused: {r:?}"),
    }
}

fn assert_sound(store: &StoreHandle) {
    for w in block_on(store.audit_wallets()).unwrap() {
        assert_eq!(w.balance, w.ledger_sum, "balance equals its ledger: {w:?}");
        assert!(w.balance >= 0, "never negative: {w:?}");
    }
}

fn grants_debits_and_history(db: &TestDb) {
    let store = db.start();
    block_on(async {
        assert!(store.wallets("p1").await.unwrap().is_empty());
        let g = done(
            store
                .change_wallet(change("p1", "gold", 100, "k1"))
                .await
                .unwrap(),
        );
        assert_eq!(g.wallet.balance, 100);
        assert_eq!(g.entry.amount, 100);
        assert_eq!(g.entry.balance_after, 100);
        let d = done(
            store
                .change_wallet(change("p1", "gold", -30, "k2"))
                .await
                .unwrap(),
        );
        assert_eq!(d.wallet.balance, 70);
        assert_eq!(d.entry.wallet_id, g.entry.wallet_id);
        // A debit past the balance changes nothing.
        let refused = store
            .change_wallet(change("p1", "gold", -71, "k3"))
            .await
            .unwrap();
        assert_eq!(refused, Err(Refusal::InsufficientFunds { balance: 70 }));
        // A debit from a wallet that does not exist is refused the same way.
        let none = store
            .change_wallet(change("p1", "gems", -1, "k4"))
            .await
            .unwrap();
        assert_eq!(none, Err(Refusal::InsufficientFunds { balance: 0 }));
        done(
            store
                .change_wallet(change("p1", "gems", 5, "k5"))
                .await
                .unwrap(),
        );
        done(
            store
                .change_wallet(change("p2", "gold", 9, "k1"))
                .await
                .unwrap(),
        );

        let wallets = store.wallets("p1").await.unwrap();
        let view: Vec<(&str, i64)> = wallets
            .iter()
            .map(|w| (w.currency.as_str(), w.balance))
            .collect();
        assert_eq!(view, [("gems", 5), ("gold", 70)]);

        let history = store.wallet_history("p1", "gold", 50).await.unwrap();
        let amounts: Vec<(i64, i64)> = history
            .iter()
            .map(|e| (e.amount, e.balance_after))
            .collect();
        assert_eq!(amounts, [(-30, 70), (100, 100)], "newest first");
        assert_eq!(history[0].reason, "respawn_fee");
        assert_eq!(history[0].idempotency_key, "k2");
        assert_eq!(history[0].metadata, json!({}));
        assert_eq!(
            store.wallet_history("p1", "gold", 0).await.unwrap().len(),
            1,
            "limit clamps to 1"
        );
        assert!(store
            .wallet_history("p1", "silver", 50)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .wallet_history("nobody", "gold", 50)
            .await
            .unwrap()
            .is_empty());

        let zero = store
            .change_wallet(change("p1", "gold", 0, "k6"))
            .await
            .unwrap_err();
        assert!(matches!(zero, StoreError::Precondition(_)));
        let mut bad_meta = change("p1", "gold", 1, "k7");
        bad_meta.metadata = json!([1]);
        assert!(matches!(
            store.change_wallet(bad_meta).await.unwrap_err(),
            StoreError::Precondition(_)
        ));
    });
    assert_sound(&store);
}

fn a_replayed_key_applies_once(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let first = done(
            store
                .change_wallet(change("p", "gold", 50, "grant-1"))
                .await
                .unwrap(),
        );
        let again = store
            .change_wallet(change("p", "gold", 50, "grant-1"))
            .await
            .unwrap()
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.value, first, "the first result comes back");
        assert_eq!(
            store.wallets("p").await.unwrap()[0].balance,
            50,
            "applied once"
        );

        // The same key for a different request is refused, and changes nothing.
        let other = store
            .change_wallet(change("p", "gold", 60, "grant-1"))
            .await
            .unwrap();
        assert_eq!(other, Err(Refusal::KeyReused));
        // Keys are per player: another player may use the same one.
        done(
            store
                .change_wallet(change("q", "gold", 60, "grant-1"))
                .await
                .unwrap(),
        );

        // A refused debit records no key: the retry applies once the funds are there.
        let refused = store
            .change_wallet(change("p", "gold", -80, "debit-1"))
            .await
            .unwrap();
        assert_eq!(refused, Err(Refusal::InsufficientFunds { balance: 50 }));
        done(
            store
                .change_wallet(change("p", "gold", 30, "grant-2"))
                .await
                .unwrap(),
        );
        let d = done(
            store
                .change_wallet(change("p", "gold", -80, "debit-1"))
                .await
                .unwrap(),
        );
        assert_eq!(d.wallet.balance, 0);

        let p1 = purchase("p", "l1", 0, "buy-0");
        assert!(matches!(
            store.purchase(p1).await.unwrap_err(),
            StoreError::Precondition(_)
        ));
        assert_eq!(
            store.wallet_history("p", "gold", 200).await.unwrap().len(),
            3
        );
    });
    assert_sound(&store);
}

fn purchases_debit_and_grant_together(db: &TestDb) {
    let store = db.start();
    block_on(async {
        let poor = store
            .purchase(purchase("p", "sword", 500, "b1"))
            .await
            .unwrap();
        assert_eq!(poor, Err(Refusal::InsufficientFunds { balance: 0 }));
        assert!(
            store.inventory("p", 50).await.unwrap().is_empty(),
            "nothing granted"
        );

        done(
            store
                .change_wallet(change("p", "gold", 1200, "g1"))
                .await
                .unwrap(),
        );
        let bought = done(
            store
                .purchase(purchase("p", "sword", 500, "b1"))
                .await
                .unwrap(),
        );
        assert_eq!(bought.wallet.balance, 700);
        assert_eq!(bought.item.item_def_id, "def-sword");
        assert_eq!(bought.item.player_id, "p");
        assert_eq!(bought.item.quantity, 1);
        assert_eq!(bought.entry.amount, -500);
        assert_eq!(bought.entry.reason, "purchase");
        assert_eq!(
            bought.entry.reference_type.as_deref(),
            Some("store_listing")
        );
        assert_eq!(bought.entry.reference_id.as_deref(), Some("sword"));

        // Retried: the same item comes back, no second debit, no second item.
        let retry = store
            .purchase(purchase("p", "sword", 500, "b1"))
            .await
            .unwrap()
            .unwrap();
        assert!(retry.replayed);
        assert_eq!(retry.value.item.id, bought.item.id);
        let mut other = purchase("p", "shield", 500, "b1");
        other.item_def_id = "def-shield".into();
        assert_eq!(
            store.purchase(other).await.unwrap(),
            Err(Refusal::KeyReused)
        );

        let mut two = purchase("p", "potion", 100, "b2");
        two.quantity = 2;
        let potions = done(store.purchase(two).await.unwrap());
        assert_eq!(potions.item.quantity, 2);
        assert_eq!(potions.wallet.balance, 600);

        let inv = store.inventory("p", 50).await.unwrap();
        let ids: Vec<&str> = inv.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [potions.item.id.as_str(), bought.item.id.as_str()],
            "newest first"
        );
        assert_eq!(store.inventory("p", 1).await.unwrap().len(), 1);
        assert!(store.inventory("q", 50).await.unwrap().is_empty());
    });
    assert_sound(&store);
}

fn consuming_items(db: &TestDb) {
    let store = db.start();
    block_on(async {
        done(
            store
                .change_wallet(change("p", "gold", 100, "g"))
                .await
                .unwrap(),
        );
        let mut p = purchase("p", "potion", 10, "b");
        p.quantity = 5;
        let item = done(store.purchase(p).await.unwrap()).item;
        let consume = |player: &str, item: &str, quantity, key: Option<&str>| Consume {
            player_id: player.to_owned(),
            item_id: item.to_owned(),
            quantity,
            idempotency_key: key.map(str::to_owned),
            now_ms: now_ms(),
        };
        assert_eq!(
            store
                .consume_item(consume("p", "nope", 1, None))
                .await
                .unwrap(),
            Err(Refusal::ItemNotFound)
        );
        assert_eq!(
            store
                .consume_item(consume("q", &item.id, 1, None))
                .await
                .unwrap(),
            Err(Refusal::NotYourItem)
        );
        assert_eq!(
            store
                .consume_item(consume("p", &item.id, 6, None))
                .await
                .unwrap(),
            Err(Refusal::InsufficientQuantity { have: 5 })
        );
        let left = done(
            store
                .consume_item(consume("p", &item.id, 2, Some("c1")))
                .await
                .unwrap(),
        );
        assert_eq!(left.remaining, 3);
        let replay = store
            .consume_item(consume("p", &item.id, 2, Some("c1")))
            .await
            .unwrap()
            .unwrap();
        assert!(replay.replayed);
        assert_eq!(replay.value.remaining, 3);
        assert_eq!(
            store.inventory("p", 50).await.unwrap()[0].quantity,
            3,
            "consumed once"
        );
        assert_eq!(
            done(
                store
                    .consume_item(consume("p", &item.id, 3, None))
                    .await
                    .unwrap()
            )
            .remaining,
            0
        );
        assert!(
            store.inventory("p", 50).await.unwrap().is_empty(),
            "an empty stack is deleted"
        );
        assert!(matches!(
            store
                .consume_item(consume("p", &item.id, 0, None))
                .await
                .unwrap_err(),
            StoreError::Precondition(_)
        ));
    });
}

/// The concurrency proof: 1,000 operations against 10 wallets, from 8 threads each with many
/// calls in flight (and, on PostgreSQL, 16 pooled connections): grants, purchases that race
/// each other for the same funds, and every 10th operation sent twice with the same key. In the
/// end every balance equals the sum of its ledger, none is negative, every applied key wrote
/// exactly one ledger row, and every item row belongs to exactly one applied purchase.
fn one_thousand_concurrent_purchases_and_grants(db: &TestDb) {
    const OPS: usize = 1000;
    const WALLETS: usize = 10;
    const THREADS: usize = 8;
    const PRICE: i64 = 7;
    let config = match db.config() {
        StoreConfig::Postgres { url, .. } => StoreConfig::Postgres { url, pool_size: 16 },
        other => other,
    };
    let store = StoreHandle::start(config).expect("store starts");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let calls = (0..OPS).filter(|i| i % THREADS == t).flat_map(|i| {
                    let player = format!("p{}", i % WALLETS);
                    let key = format!("op-{i}");
                    // Every 10th operation is also retried concurrently with the same key.
                    let copies = if i % 10 == 0 { 2 } else { 1 };
                    (0..copies).map(move |_| (i, player.clone(), key.clone()))
                });
                let futures = calls.map(|(i, player, key)| {
                    let store = store.clone();
                    async move {
                        if i % 3 == 0 {
                            let o = store.change_wallet(change(&player, "gold", 10, &key)).await;
                            (player, key, "grant", o.map(|o| o.map(|d| d.replayed)))
                        } else {
                            let o = store.purchase(purchase(&player, "gem", PRICE, &key)).await;
                            (player, key, "purchase", o.map(|o| o.map(|d| d.replayed)))
                        }
                    }
                });
                block_on(futures::future::join_all(futures))
            })
        })
        .collect();
    let mut applied: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut purchases: BTreeMap<String, usize> = BTreeMap::new();
    let mut replays = 0;
    for t in threads {
        for (player, key, kind, outcome) in t.join().unwrap() {
            match outcome.expect("no storage failure") {
                Ok(false) => {
                    assert!(
                        applied.entry(player.clone()).or_default().insert(key),
                        "applied twice"
                    );
                    let delta = if kind == "grant" { 10 } else { -PRICE };
                    *expected.entry(player.clone()).or_default() += delta;
                    if kind == "purchase" {
                        *purchases.entry(player).or_default() += 1;
                    }
                }
                Ok(true) => replays += 1,
                Err(Refusal::InsufficientFunds { .. }) => {}
                Err(other) => panic!("unexpected refusal {other:?}"),
            }
        }
    }
    assert!(
        replays > 0 && replays <= OPS / 10,
        "retries were replayed: {replays}"
    );
    let audit = block_on(store.audit_wallets()).unwrap();
    assert_eq!(audit.len(), WALLETS);
    let mut total_purchases = 0;
    for w in &audit {
        assert_eq!(w.balance, w.ledger_sum, "balance equals its ledger: {w:?}");
        assert!(w.balance >= 0, "never negative: {w:?}");
        assert_eq!(
            w.balance, expected[&w.player_id],
            "what the callers saw applied: {w:?}"
        );
        assert_eq!(
            w.entries as usize,
            applied[&w.player_id].len(),
            "one row per applied key"
        );
        let items = block_on(store.inventory(&w.player_id, 200)).unwrap();
        let bought = purchases.get(&w.player_id).copied().unwrap_or(0);
        assert_eq!(items.len(), bought, "one item per applied purchase");
        total_purchases += bought;
    }
    assert!(total_purchases > 0, "some purchases went through");
    store.shutdown();

    // Every answered success was durable before it was answered: a restarted store holds
    // exactly what the callers were told (SQLite answers a batch only after its one commit).
    let store = db.start();
    let after = block_on(store.audit_wallets()).unwrap();
    assert_eq!(after, audit, "the same wallets and ledgers after a restart");
    store.shutdown();
}
