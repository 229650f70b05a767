//! Purchases per second through the storage bridge: the path every `POST /store/purchase` and
//! `game.economy.purchase` takes once validated (bridge queue → backend transaction: idempotency
//! row, conditional debit, ledger row, inventory row, commit). HTTP and Lua are not included.
//!
//! ```text
//! cargo run --release -p asobi-storage --example economy_bench -- sqlite <dir> [purchases] [in_flight]
//! cargo run --release -p asobi-storage --example economy_bench -- postgres <url> [purchases] [in_flight]
//! ```
//!
//! Prints one JSON line: backend, purchases, wallets, in-flight calls, seconds, purchases/s,
//! and the audit result (every balance equals its ledger).

use std::time::Instant;

use asobi_storage::{NewPurchase, StoreConfig, StoreHandle, WalletChange};
use futures::executor::block_on;
use futures::StreamExt;

const WALLETS: usize = 100;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: economy_bench sqlite <dir> | postgres <url> [purchases] [in_flight]";
    let (backend, target) = (args.get(1).expect(usage), args.get(2).expect(usage));
    let purchases: usize = args.get(3).map_or(20_000, |n| n.parse().expect(usage));
    let in_flight: usize = args.get(4).map_or(64, |n| n.parse().expect(usage));
    let config = match backend.as_str() {
        "sqlite" => StoreConfig::Sqlite {
            path: std::path::Path::new(target).join("bench.db"),
        },
        "postgres" => StoreConfig::Postgres {
            url: target.clone(),
            pool_size: 16,
        },
        _ => panic!("{usage}"),
    };
    let store = StoreHandle::start(config).expect("store starts");
    let run = format!("{}", now_ms());
    // Enough gold for every purchase, so each one commits (a refusal would be cheaper).
    block_on(async {
        for w in 0..WALLETS {
            let grant = WalletChange {
                player_id: format!("bench-{run}-{w}"),
                currency: "gold".into(),
                amount: 1_000_000_000,
                reason: "bench".into(),
                reference_type: None,
                reference_id: None,
                metadata: serde_json::json!({}),
                idempotency_key: format!("seed-{w}"),
                now_ms: now_ms(),
            };
            store.change_wallet(grant).await.unwrap().unwrap();
        }
    });
    let started = Instant::now();
    let ok = block_on(
        futures::stream::iter(0..purchases)
            .map(|i| {
                let store = store.clone();
                let p = NewPurchase {
                    player_id: format!("bench-{run}-{}", i % WALLETS),
                    listing_id: "bench-listing".into(),
                    item_def_id: "bench-item".into(),
                    currency: "gold".into(),
                    price: 7,
                    quantity: 1,
                    idempotency_key: format!("buy-{i}"),
                    now_ms: now_ms(),
                };
                async move { matches!(store.purchase(p).await, Ok(Ok(_))) }
            })
            .buffer_unordered(in_flight)
            .filter(|ok| futures::future::ready(*ok))
            .count(),
    );
    let secs = started.elapsed().as_secs_f64();
    let audit = block_on(store.audit_wallets()).unwrap();
    let sound = audit
        .iter()
        .all(|w| w.balance == w.ledger_sum && w.balance >= 0);
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "purchases": purchases,
            "committed": ok,
            "wallets": WALLETS,
            "in_flight": in_flight,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "purchases_per_sec": (ok as f64 / secs).round(),
            "audit_sound": sound,
        })
    );
    store.shutdown();
}
