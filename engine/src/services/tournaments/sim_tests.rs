//! A tournament's week on the simulation harness, with real SQLite: the owning shard's
//! calendar opens and closes the window on the virtual clock, settlement reads the board from
//! its owner across the mesh and pays the winner once; seven days pass in milliseconds.

use std::time::Duration;

use futures::executor::block_on;
use serde_json::json;

use asobi_rules::leaderboards::Civil;
use asobi_storage::{BoardEntry, WalletChange};

use super::error::Error;
use super::{join, set_wall_clock};
use crate::services::sim::Sim;
use crate::services::Settings;

const DAY: i64 = 86_400_000;

/// Runs the simulation until `done` holds (storage answers on its own thread).
fn until(sim: &mut Sim, what: &str, done: impl Fn(&Sim) -> bool) {
    for _ in 0..5_000 {
        if done(sim) {
            return;
        }
        sim.advance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("{what} never happened");
}

#[test]
fn a_week_long_tournament_opens_closes_and_pays_once_on_the_virtual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Civil::from_ms(0).to_ms() + 21_915 * DAY; // 2030-01-01T00:00:00Z
    std::fs::write(dir.path().join("config.lua"), "return {}\n").unwrap();
    std::fs::write(
        dir.path().join("tournaments.json"),
        json!({"tournaments": [{
            "id": "wk", "name": "Week", "leaderboard_id": "wk-board", "max_entries": 2,
            "entry_fee": {"currency": "gold", "amount": 10},
            "rewards": [{"rank": 1, "currency": "gold", "amount": 100}],
            "start_at": "2030-01-01T00:00:00Z", "end_at": t0 + 7 * DAY}]})
        .to_string(),
    )
    .unwrap();
    let mut sim = Sim::new(3, dir.path(), Settings::default());
    for s in &sim.shards {
        set_wall_clock(s, t0 - 3_600_000);
    }
    let store = sim.ctx.store.clone();
    until(&mut sim, "creation", |_| {
        block_on(store.tournament("wk")).unwrap().is_some()
    });
    for p in ["ann", "bob", "cat"] {
        block_on(store.change_wallet(WalletChange {
            player_id: p.into(),
            currency: "gold".into(),
            amount: 25,
            reason: "seed".into(),
            reference_type: None,
            reference_id: None,
            metadata: json!({}),
            idempotency_key: format!("seed-{p}"),
            now_ms: t0,
        }))
        .unwrap()
        .unwrap();
    }
    let shard = sim.shards[1].clone();
    assert!(matches!(
        block_on(join(&shard, "wk", "ann")),
        Err(Error::NotStarted)
    ));

    // The start, an hour later on the virtual clock: the owner stores `active`.
    sim.advance(Duration::from_secs(3_600));
    until(&mut sim, "the start", |_| {
        block_on(store.tournament("wk")).unwrap().unwrap().status == "active"
    });
    for p in ["ann", "bob"] {
        block_on(join(&shard, "wk", p)).unwrap();
    }
    assert!(matches!(
        block_on(join(&shard, "wk", "cat")),
        Err(Error::Full)
    ));
    let entry = |p: &str, score: i64, seq: i64| BoardEntry {
        player_id: p.into(),
        score,
        sub_score: 0,
        seq,
        metadata: None,
        updated_at: t0,
    };
    // The board as its owner will read it back: cat tops it but did not enter.
    block_on(store.save_leaderboard_entries(
        "wk-board",
        vec![
            entry("cat", 90, 1),
            entry("bob", 70, 2),
            entry("ann", 40, 3),
        ],
    ))
    .unwrap();

    // A week later (virtual): settled, bob paid once.
    let real = std::time::Instant::now();
    sim.advance(Duration::from_millis(7 * DAY as u64));
    until(&mut sim, "settlement", |_| {
        block_on(store.tournament("wk"))
            .unwrap()
            .unwrap()
            .settled_at
            .is_some()
    });
    assert!(real.elapsed() < Duration::from_secs(30));
    let gold = |p: &str| {
        block_on(store.wallets(p))
            .unwrap()
            .iter()
            .find(|w| w.currency == "gold")
            .map_or(0, |w| w.balance)
    };
    assert_eq!(gold("bob"), 25 - 10 + 100);
    assert_eq!(gold("ann"), 15);
    assert_eq!(gold("cat"), 25);
    assert!(matches!(
        block_on(join(&shard, "wk", "cat")),
        Err(Error::Closed)
    ));
    // More virtual days: nothing is paid again.
    sim.advance(Duration::from_millis(3 * DAY as u64));
    assert_eq!(gold("bob"), 115);
    let t = block_on(store.tournament("wk")).unwrap().unwrap();
    assert_eq!(t.status, "finished");
}
