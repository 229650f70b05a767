//! In-app purchase records, run against SQLite and PostgreSQL: a transaction grants once, is
//! bound to the first player who claims it, and a refund takes back what the balance allows.

mod common;

use asobi_storage::{IapClaim, IapOutcome, IapRevocation, RevokeOutcome, StoreHandle};
use common::{now_ms, TestDb};
use futures::executor::block_on;

on_both_backends!(
    a_transaction_grants_once_and_belongs_to_one_player,
    refunds_take_back_what_the_balance_allows,
    concurrent_claims_grant_once
);

fn claim(player: &str, txn: &str, amount: Option<i64>) -> IapClaim {
    IapClaim {
        provider: "apple".into(),
        transaction_id: txn.into(),
        player_id: player.into(),
        original_transaction_id: Some(txn.into()),
        product_id: Some("gems_100".into()),
        grant: amount.map(|a| ("gems".to_owned(), a)),
        now_ms: now_ms(),
    }
}

fn gems(store: &StoreHandle, player: &str) -> i64 {
    block_on(store.wallets(player))
        .unwrap()
        .iter()
        .find(|w| w.currency == "gems")
        .map_or(0, |w| w.balance)
}

fn assert_sound(store: &StoreHandle) {
    for w in block_on(store.audit_wallets()).unwrap() {
        assert_eq!(w.balance, w.ledger_sum, "{w:?}");
        assert!(w.balance >= 0);
    }
}

fn a_transaction_grants_once_and_belongs_to_one_player(db: &TestDb) {
    let store = db.start();
    let IapOutcome::Claimed { granted: Some(r) } =
        block_on(store.claim_iap(claim("ann", "t1", Some(100)))).unwrap()
    else {
        panic!("first claim grants");
    };
    assert_eq!(r.wallet.balance, 100);
    assert_eq!(r.entry.idempotency_key, "iap:apple:t1");
    assert_eq!(r.entry.reason, "iap_purchase");
    assert_eq!(
        block_on(store.claim_iap(claim("ann", "t1", Some(100)))).unwrap(),
        IapOutcome::Duplicate
    );
    assert_eq!(
        block_on(store.claim_iap(claim("bob", "t1", Some(100)))).unwrap(),
        IapOutcome::ClaimedByOther
    );
    assert_eq!(gems(&store, "ann"), 100);
    assert_eq!(gems(&store, "bob"), 0);
    // The same id at another store is another transaction.
    let mut google = claim("bob", "t1", Some(5));
    google.provider = "google".into();
    assert!(matches!(
        block_on(store.claim_iap(google)).unwrap(),
        IapOutcome::Claimed { granted: Some(_) }
    ));
    // A product with no grant is still recorded (and replay-protected).
    assert_eq!(
        block_on(store.claim_iap(claim("cat", "t2", None))).unwrap(),
        IapOutcome::Claimed { granted: None }
    );
    assert_eq!(
        block_on(store.claim_iap(claim("dan", "t2", None))).unwrap(),
        IapOutcome::ClaimedByOther
    );
    assert!(block_on(store.claim_iap(claim("cat", "t3", Some(0)))).is_err());
    // Survives a restart.
    store.shutdown();
    let store = db.start();
    assert_eq!(
        block_on(store.claim_iap(claim("ann", "t1", Some(100)))).unwrap(),
        IapOutcome::Duplicate
    );
    assert_eq!(gems(&store, "ann"), 100);
    assert_sound(&store);
    store.shutdown();
}

fn refunds_take_back_what_the_balance_allows(db: &TestDb) {
    let store = db.start();
    let revoke = |txn: &str| IapRevocation {
        provider: "apple".into(),
        transaction_id: txn.into(),
        status: "refunded".into(),
        now_ms: now_ms(),
    };
    block_on(store.claim_iap(claim("ann", "r1", Some(100)))).unwrap();
    block_on(store.claim_iap(claim("ann", "r2", Some(100)))).unwrap();
    assert_eq!(
        block_on(store.revoke_iap(revoke("r1"))).unwrap(),
        RevokeOutcome::Revoked { reversed: 100 }
    );
    assert_eq!(gems(&store, "ann"), 100);
    assert_eq!(
        block_on(store.revoke_iap(revoke("r1"))).unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    // Spend most of it; the second refund takes back only what is left.
    block_on(store.change_wallet(asobi_storage::WalletChange {
        player_id: "ann".into(),
        currency: "gems".into(),
        amount: -70,
        reason: "purchase".into(),
        reference_type: None,
        reference_id: None,
        metadata: serde_json::json!({}),
        idempotency_key: "spend".into(),
        now_ms: now_ms(),
    }))
    .unwrap()
    .unwrap();
    assert_eq!(
        block_on(store.revoke_iap(revoke("r2"))).unwrap(),
        RevokeOutcome::Revoked { reversed: 30 }
    );
    assert_eq!(gems(&store, "ann"), 0);
    assert_eq!(
        block_on(store.revoke_iap(revoke("nope"))).unwrap(),
        RevokeOutcome::NotFound
    );
    // A refunded transaction is still claimed: it never grants again.
    assert_eq!(
        block_on(store.claim_iap(claim("ann", "r1", Some(100)))).unwrap(),
        IapOutcome::Duplicate
    );
    assert_sound(&store);
    store.shutdown();
}

fn concurrent_claims_grant_once(db: &TestDb) {
    let store = db.start();
    let outcomes: Vec<IapOutcome> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    block_on(store.claim_iap(claim(&format!("p{}", i % 4), "race", Some(10))))
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let claimed = outcomes
        .iter()
        .filter(|o| matches!(o, IapOutcome::Claimed { .. }))
        .count();
    assert_eq!(claimed, 1);
    let total: i64 = (0..4).map(|i| gems(&store, &format!("p{i}"))).sum();
    assert_eq!(total, 10);
    assert_sound(&store);
    store.shutdown();
}
