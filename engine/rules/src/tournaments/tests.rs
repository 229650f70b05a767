//! The tournament calendar on a simulated clock, and reward tables.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

use super::*;

const MIN: i64 = 60_000;

fn w(start: i64, end: i64) -> Window {
    Window {
        start_at: start,
        end_at: end,
    }
}

#[test]
fn a_window_opens_and_closes_once_each() {
    let mut cal = Calendar::default();
    cal.insert("cup", w(10 * MIN, 70 * MIN), Phase::Pending);
    assert_eq!(cal.next_deadline(), Some(10 * MIN));
    assert!(cal.poll(0).is_empty());
    assert!(cal.poll(10 * MIN - 1).is_empty());
    assert_eq!(
        cal.poll(10 * MIN),
        [Transition {
            id: "cup".into(),
            to: Phase::Active
        }]
    );
    assert!(cal.poll(10 * MIN).is_empty(), "reported once");
    assert_eq!(cal.next_deadline(), Some(70 * MIN));
    assert!(cal.poll(70 * MIN - 1).is_empty());
    assert_eq!(
        cal.poll(70 * MIN),
        [Transition {
            id: "cup".into(),
            to: Phase::Ended
        }]
    );
    assert!(cal.is_empty(), "an ended window is dropped");
    assert_eq!(cal.next_deadline(), None);
}

#[test]
fn a_window_missed_while_down_reports_both_changes_in_order() {
    let mut cal = Calendar::default();
    cal.insert("old", w(MIN, 2 * MIN), Phase::Pending);
    // Stored as active before a restart, ended since.
    cal.insert("was_active", w(MIN, 3 * MIN), Phase::Active);
    let t = cal.poll(100 * MIN);
    assert_eq!(
        t,
        [
            Transition {
                id: "old".into(),
                to: Phase::Active
            },
            Transition {
                id: "old".into(),
                to: Phase::Ended
            },
            Transition {
                id: "was_active".into(),
                to: Phase::Ended
            },
        ]
    );
}

/// A random walk of windows and clock steps: every window reports `Active` at most once and
/// `Ended` exactly once, never before its time, and never `Ended` before `Active`; the calendar
/// never sleeps past a due change.
#[test]
fn random_walk_reports_each_change_once_and_on_time() {
    for seed in 0..50u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cal = Calendar::default();
        let mut windows = Vec::new();
        for i in 0..20 {
            let start = rng.random_range(0..100 * MIN);
            let end = start + rng.random_range(1..50 * MIN);
            let id = format!("t{i}");
            cal.insert(&id, w(start, end), Phase::Pending);
            windows.push((id, w(start, end)));
        }
        let mut now = 0;
        let mut polled = false;
        let mut seen: Vec<(String, Phase, i64)> = Vec::new();
        while !cal.is_empty() {
            let deadline = cal
                .next_deadline()
                .expect("a tracked window has a deadline");
            // After a poll at `now`, nothing tracked is due at or before `now`.
            assert!(
                !polled || deadline > now,
                "seed {seed}: a due change was not reported"
            );
            // Jump straight to the deadline, or a bit past it (a late timer).
            now = now.max(deadline) + rng.random_range(0..MIN / 10);
            polled = true;
            for t in cal.poll(now) {
                seen.push((t.id, t.to, now));
            }
        }
        for (id, window) in &windows {
            let active: Vec<_> = seen
                .iter()
                .filter(|(i, p, _)| i == id && *p == Phase::Active)
                .collect();
            let ended: Vec<_> = seen
                .iter()
                .filter(|(i, p, _)| i == id && *p == Phase::Ended)
                .collect();
            assert_eq!(ended.len(), 1, "seed {seed}: {id} ends once");
            assert!(active.len() <= 1);
            assert!(ended[0].2 >= window.end_at, "never early");
            assert!(
                ended[0].2 < window.end_at + MIN / 10 + 1,
                "never late by more than the timer"
            );
            if let Some(a) = active.first() {
                assert!(a.2 >= window.start_at);
                assert!(a.2 <= ended[0].2);
            }
        }
    }
}

#[test]
fn rewards_parse_and_pay_by_rank() {
    let r = Rewards::parse(&json!([
        {"rank": 1, "currency": "gold", "amount": 500},
        {"from": 2, "to": 3, "currency": "gold", "amount": 200},
        {"from": 4, "to": 10, "currency": "gems", "amount": 5},
    ]))
    .unwrap();
    assert_eq!(r.for_rank(1).unwrap().amount, 500);
    assert_eq!(r.for_rank(3).unwrap().amount, 200);
    assert_eq!(r.for_rank(10).unwrap().currency, "gems");
    assert!(r.for_rank(11).is_none());
    assert_eq!(r.deepest(), 10);
    assert_eq!(Rewards::parse(&json!({})).unwrap(), Rewards::default());
    assert_eq!(Rewards::parse(&json!(null)).unwrap(), Rewards::default());
}

#[test]
fn bad_reward_tables_are_refused() {
    let bad = [
        json!("gold"),
        json!([1]),
        json!([{"rank": 0, "currency": "gold", "amount": 1}]),
        json!([{"from": 3, "to": 2, "currency": "gold", "amount": 1}]),
        json!([{"rank": 1, "currency": "", "amount": 1}]),
        json!([{"rank": 1, "currency": "gold", "amount": -5}]),
        json!([{"rank": 1, "currency": "gold", "amount": 1.5}]),
        json!([{"rank": 1, "currency": "gold"}]),
        json!([{"from": 1, "to": 5, "currency": "gold", "amount": 1},
               {"rank": 5, "currency": "gems", "amount": 1}]),
    ];
    for b in bad {
        assert!(Rewards::parse(&b).is_err(), "{b} should be refused");
    }
}

#[test]
fn only_entrants_are_placed_and_ranked_among_themselves() {
    let rewards = Rewards::parse(&json!([
        {"rank": 1, "currency": "gold", "amount": 500},
        {"rank": 2, "currency": "gold", "amount": 100},
    ]))
    .unwrap();
    let board = [("outsider", 999), ("bob", 80), ("alice", 70), ("carol", 5)];
    let entered = |p: &str| p != "outsider";
    let places = place(board, entered, &rewards);
    assert_eq!(
        places
            .iter()
            .map(|p| (p.player_id.as_str(), p.rank, p.reward.clone()))
            .collect::<Vec<_>>(),
        [
            ("bob", 1, Some(("gold".to_owned(), 500))),
            ("alice", 2, Some(("gold".to_owned(), 100))),
            ("carol", 3, None),
        ]
    );
}

#[test]
fn times_read_as_ms_or_utc_text() {
    assert_eq!(
        parse_time(&json!(1_700_000_000_000i64)),
        Some(1_700_000_000_000)
    );
    let t = parse_time(&json!("2026-11-26T22:25:00Z")).unwrap();
    assert_eq!(
        crate::leaderboards::Civil::rfc3339(t),
        "2026-11-26T22:25:00Z"
    );
    assert_eq!(parse_time(&json!("2026-11-26T22:25:00.123Z")), Some(t));
    for bad in [
        json!("2026-11-26 22:25:00"),
        json!("2026-13-01T00:00:00Z"),
        json!(true),
        json!("x"),
    ] {
        assert_eq!(parse_time(&bad), None, "{bad}");
    }
}
