//! Tournament and season persistence, run against SQLite and PostgreSQL: joins with their cap,
//! their fee and their refusals, settlement that pays once, and concurrent joins for the last
//! seats.

mod common;

use std::collections::BTreeMap;

use asobi_storage::{
    JoinRequest, Placement, Season, SeasonSettlement, Settlement, StoreHandle, Tournament,
    TournamentJoinOutcome as JoinOutcome, WalletChange,
};
use common::{now_ms, TestDb};
use futures::executor::block_on;
use serde_json::json;

on_both_backends!(
    join_cap_fee_and_refusals,
    settlement_pays_once_and_survives_a_restart,
    concurrent_joins_never_overfill,
    seasons_pay_each_board_once
);

fn tournament(id: &str, max: Option<i64>, fee: serde_json::Value) -> Tournament {
    let now = now_ms();
    Tournament {
        id: id.to_owned(),
        name: format!("Cup {id}"),
        leaderboard_id: format!("board-{id}"),
        max_entries: max,
        entry_fee: fee,
        rewards: json!([{"from": 1, "to": 1, "currency": "gold", "amount": 500}]),
        status: "active".to_owned(),
        start_at: now - 1_000,
        end_at: now + 3_600_000,
        metadata: json!({"tier": "gold"}),
        inserted_at: now,
        settled_at: None,
        entrants: 0,
    }
}

fn join(id: &str, player: &str) -> JoinRequest {
    JoinRequest {
        tournament_id: id.to_owned(),
        player_id: player.to_owned(),
        now_ms: now_ms(),
    }
}

fn grant(store: &StoreHandle, player: &str, amount: i64) {
    let c = WalletChange {
        player_id: player.to_owned(),
        currency: "gold".to_owned(),
        amount,
        reason: "admin_grant".to_owned(),
        reference_type: None,
        reference_id: None,
        metadata: json!({}),
        idempotency_key: format!("seed:{player}:{amount}"),
        now_ms: now_ms(),
    };
    block_on(store.change_wallet(c)).unwrap().unwrap();
}

fn balance(store: &StoreHandle, player: &str) -> i64 {
    block_on(store.wallets(player))
        .unwrap()
        .iter()
        .find(|w| w.currency == "gold")
        .map_or(0, |w| w.balance)
}

fn assert_sound(store: &StoreHandle) {
    for w in block_on(store.audit_wallets()).unwrap() {
        assert_eq!(w.balance, w.ledger_sum, "balance equals its ledger: {w:?}");
        assert!(w.balance >= 0, "never negative: {w:?}");
    }
}

fn join_cap_fee_and_refusals(db: &TestDb) {
    let store = db.start();
    let fee = json!({"currency": "gold", "amount": 100});
    assert!(block_on(store.create_tournament(tournament("t1", Some(2), fee.clone()))).unwrap());
    // Creating again keeps the first.
    let mut other = tournament("t1", Some(9), json!({}));
    other.name = "changed".into();
    assert!(!block_on(store.create_tournament(other)).unwrap());
    assert_eq!(
        block_on(store.tournament("t1")).unwrap().unwrap().name,
        "Cup t1"
    );

    grant(&store, "alice", 250);
    grant(&store, "bob", 100);
    grant(&store, "carol", 1_000);
    // Too poor: refused, nothing charged, not entered.
    assert_eq!(
        block_on(store.join_tournament(join("t1", "dave"))).unwrap(),
        JoinOutcome::InsufficientFunds { balance: 0 }
    );
    let JoinOutcome::Joined { fee: Some(r) } =
        block_on(store.join_tournament(join("t1", "alice"))).unwrap()
    else {
        panic!("alice joins with a fee");
    };
    assert_eq!(r.wallet.balance, 150);
    assert_eq!(r.entry.idempotency_key, "tournament:t1:entry");
    assert_eq!(r.entry.reason, "tournament_entry");
    // A second join neither enters nor charges again.
    assert_eq!(
        block_on(store.join_tournament(join("t1", "alice"))).unwrap(),
        JoinOutcome::AlreadyJoined
    );
    assert_eq!(balance(&store, "alice"), 150);
    assert!(matches!(
        block_on(store.join_tournament(join("t1", "bob"))).unwrap(),
        JoinOutcome::Joined { fee: Some(_) }
    ));
    assert_eq!(balance(&store, "bob"), 0);
    // Full: carol is refused and keeps her money.
    assert_eq!(
        block_on(store.join_tournament(join("t1", "carol"))).unwrap(),
        JoinOutcome::Full
    );
    assert_eq!(balance(&store, "carol"), 1_000);
    assert_eq!(
        block_on(store.join_tournament(join("nope", "carol"))).unwrap(),
        JoinOutcome::NotFound
    );
    let t = block_on(store.tournament("t1")).unwrap().unwrap();
    assert_eq!(t.entrants, 2);
    assert_eq!(t.metadata, json!({"tier": "gold"}));
    assert_eq!(block_on(store.tournament_entrants("t1")).unwrap().len(), 2);

    // A free tournament that has ended refuses joins.
    let mut past = tournament("t2", None, json!({}));
    past.start_at -= 7_200_000;
    past.end_at = now_ms() - 1;
    block_on(store.create_tournament(past)).unwrap();
    assert_eq!(
        block_on(store.join_tournament(join("t2", "carol"))).unwrap(),
        JoinOutcome::Closed
    );
    // Listing by status.
    block_on(store.set_tournament_status("t2", "finished")).unwrap();
    let active = block_on(store.tournaments(Some("active"), 50)).unwrap();
    assert_eq!(
        active.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1"]
    );
    assert_eq!(block_on(store.tournaments(None, 50)).unwrap().len(), 2);
    assert!(block_on(store.set_tournament_status("t1", "bogus")).is_err());
    assert_sound(&store);
    store.shutdown();
}

fn placements() -> Vec<Placement> {
    vec![
        Placement {
            player_id: "alice".into(),
            rank: 1,
            score: 90,
            reward: Some(("gold".into(), 500)),
        },
        Placement {
            player_id: "bob".into(),
            rank: 2,
            score: 70,
            reward: Some(("gems".into(), 3)),
        },
        Placement {
            player_id: "carol".into(),
            rank: 3,
            score: 10,
            reward: None,
        },
    ]
}

fn settlement_pays_once_and_survives_a_restart(db: &TestDb) {
    let store = db.start();
    block_on(store.create_tournament(tournament("t3", None, json!({})))).unwrap();
    for p in ["alice", "bob", "carol"] {
        block_on(store.join_tournament(join("t3", p))).unwrap();
    }
    let s = Settlement {
        tournament_id: "t3".into(),
        placements: placements(),
        now_ms: now_ms(),
    };
    assert!(block_on(store.settle_tournament(s.clone())).unwrap());
    assert_eq!(balance(&store, "alice"), 500);
    // Settling again (a retry, a second shard, a restart) pays nobody twice.
    assert!(!block_on(store.settle_tournament(s.clone())).unwrap());
    store.shutdown();
    let store = db.start();
    assert!(!block_on(store.settle_tournament(s)).unwrap());
    assert_eq!(balance(&store, "alice"), 500);
    let gems = block_on(store.wallets("bob")).unwrap();
    assert_eq!(gems[0].currency, "gems");
    assert_eq!(gems[0].balance, 3);
    let history = block_on(store.wallet_history("alice", "gold", 10)).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].idempotency_key, "tournament:t3:payout");
    assert_eq!(history[0].reason, "tournament_reward");
    let t = block_on(store.tournament("t3")).unwrap().unwrap();
    assert_eq!(t.status, "finished");
    assert!(t.settled_at.is_some());
    // Finished stays finished.
    block_on(store.set_tournament_status("t3", "active")).unwrap();
    assert_eq!(
        block_on(store.tournament("t3")).unwrap().unwrap().status,
        "finished"
    );
    // A non-positive reward is refused before it reaches the database.
    let mut bad = placements();
    bad[0].reward = Some(("gold".into(), 0));
    assert!(block_on(store.settle_tournament(Settlement {
        tournament_id: "t3".into(),
        placements: bad,
        now_ms: now_ms(),
    }))
    .is_err());
    assert_sound(&store);
    store.shutdown();
}

fn concurrent_joins_never_overfill(db: &TestDb) {
    const PLAYERS: usize = 40;
    const SEATS: i64 = 7;
    let store = db.start();
    let fee = json!({"currency": "gold", "amount": 10});
    block_on(store.create_tournament(tournament("t4", Some(SEATS), fee))).unwrap();
    for p in 0..PLAYERS {
        grant(&store, &format!("p{p}"), 10);
    }
    let outcomes: Vec<JoinOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PLAYERS)
            .map(|p| {
                let store = store.clone();
                s.spawn(move || block_on(store.join_tournament(join("t4", &format!("p{p}")))))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        let k = match o {
            JoinOutcome::Joined { .. } => "joined",
            JoinOutcome::Full => "full",
            other => panic!("unexpected {other:?}"),
        };
        *kinds.entry(k).or_default() += 1;
    }
    assert_eq!(kinds["joined"], SEATS as usize);
    assert_eq!(kinds["full"], PLAYERS - SEATS as usize);
    let paid: i64 = (0..PLAYERS)
        .map(|p| 10 - balance(&store, &format!("p{p}")))
        .sum();
    assert_eq!(paid, SEATS * 10, "only entrants paid");
    assert_eq!(
        block_on(store.tournament("t4")).unwrap().unwrap().entrants,
        SEATS
    );
    assert_sound(&store);
    store.shutdown();
}

fn seasons_pay_each_board_once(db: &TestDb) {
    let store = db.start();
    let now = now_ms();
    let season = Season {
        id: "s1".into(),
        name: "Season 1".into(),
        boards: vec!["ranked".into(), "casual".into()],
        rewards: json!([{"from": 1, "to": 1, "currency": "gold", "amount": 500}]),
        start_at: now - 10,
        end_at: now + 10,
        inserted_at: now,
        settled_at: None,
        reset_at: None,
    };
    assert!(block_on(store.create_season(season.clone())).unwrap());
    assert!(
        !block_on(store.finish_season("s1", now)).unwrap(),
        "an unpaid season cannot be finished"
    );
    assert!(!block_on(store.create_season(season)).unwrap());
    let s = SeasonSettlement {
        season_id: "s1".into(),
        // alice tops both boards: she is paid on each, once.
        boards: vec![
            ("ranked".into(), placements()),
            ("casual".into(), placements()),
        ],
        now_ms: now,
    };
    assert!(block_on(store.settle_season(s.clone())).unwrap());
    assert!(!block_on(store.settle_season(s)).unwrap());
    assert_eq!(balance(&store, "alice"), 1_000);
    let seasons = block_on(store.seasons()).unwrap();
    assert_eq!(seasons[0].boards, ["ranked", "casual"]);
    assert!(seasons[0].settled_at.is_some());
    assert_eq!(seasons[0].reset_at, None, "paid, boards not yet reset");
    // The second step of the season's end is recorded once.
    assert!(block_on(store.finish_season("s1", now + 5)).unwrap());
    assert!(!block_on(store.finish_season("s1", now + 6)).unwrap());
    assert!(!block_on(store.finish_season("nope", now)).unwrap());
    assert_eq!(
        block_on(store.seasons()).unwrap()[0].reset_at,
        Some(now + 5)
    );
    assert_sound(&store);
    store.shutdown();
}
