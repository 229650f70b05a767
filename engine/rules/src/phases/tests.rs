//! Phase lists on a simulated clock.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn started(n: &str) -> Transition {
    Transition::Started(n.into())
}

fn ended(n: &str) -> Transition {
    Transition::Ended(n.into())
}

#[test]
fn durations_walk_the_list_to_completion() {
    let defs = parse(&json!([
        {"name": "warmup", "duration": 1000},
        {"name": "combat", "duration": 5000, "config": {"arena": 2}},
        {"name": "results", "duration": 500},
    ]))
    .unwrap();
    let t0 = Instant::now();
    let (mut p, first) = Phases::new(t0, defs);
    assert_eq!(first, vec![started("warmup")]);
    assert_eq!(p.next_deadline(), Some(t0 + ms(1000)));
    assert!(p.poll(t0 + ms(999)).is_empty());
    assert_eq!(
        p.poll(t0 + ms(1000)),
        vec![ended("warmup"), started("combat")]
    );
    assert_eq!(
        p.info(t0 + ms(2000)),
        json!({"status": "active", "phase": "combat", "remaining_ms": 4000, "config": {"arena": 2}})
    );
    // A late poll catches up over several phases at once, in order.
    assert_eq!(
        p.poll(t0 + ms(60_000)),
        vec![ended("combat"), started("results"), ended("results")]
    );
    assert!(p.is_complete());
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.info(t0), json!({"status": "complete", "phase": null}));
}

#[test]
fn a_players_start_condition_waits_for_the_roster() {
    let defs = parse(&json!([
        {"name": "lobby", "start": {"players": 3}, "duration": 100},
        {"name": "play"},
    ]))
    .unwrap();
    let t0 = Instant::now();
    let (mut p, first) = Phases::new(t0, defs);
    assert!(first.is_empty(), "the lobby waits");
    assert_eq!(p.next_deadline(), None);
    assert_eq!(
        p.info(t0),
        json!({"status": "waiting", "phase": "lobby", "start_condition": {"type": "players", "value": 3}})
    );
    assert!(p.players(t0 + ms(10), 2).is_empty());
    assert_eq!(p.players(t0 + ms(20), 3), vec![started("lobby")]);
    assert!(p.players(t0 + ms(30), 4).is_empty(), "starts once");
    assert_eq!(p.poll(t0 + ms(120)), vec![ended("lobby"), started("play")]);
    assert_eq!(
        p.next_deadline(),
        None,
        "no duration: runs until the match ends"
    );
    assert!(!p.is_complete());
}

#[test]
fn timer_and_all_ready_starts() {
    let defs = parse(&json!([
        {"name": "a", "duration": 10},
        {"name": "b", "start": 500, "duration": 10},
        {"name": "c", "start": "all_ready"},
        {"name": "d", "start": {"timer": 50}},
    ]))
    .unwrap();
    assert_eq!(defs[1].start, Start::Timer(ms(500)));
    assert_eq!(defs[3].start, Start::Timer(ms(50)));
    let t0 = Instant::now();
    let (mut p, _) = Phases::new(t0, defs);
    assert_eq!(p.poll(t0 + ms(10)), vec![ended("a")]);
    assert_eq!(
        p.next_deadline(),
        Some(t0 + ms(510)),
        "b waits 500 ms after a ended"
    );
    assert_eq!(p.poll(t0 + ms(510)), vec![started("b")]);
    assert_eq!(p.poll(t0 + ms(520)), vec![ended("b")]);
    assert!(p.poll(t0 + ms(10_000)).is_empty(), "all_ready has no clock");
    assert_eq!(p.all_ready(t0 + ms(10_000)), vec![started("c")]);
}

#[test]
fn odd_declarations_decode_as_asobi_does() {
    assert_eq!(parse(&json!("nope")), None);
    assert_eq!(parse(&json!({})), Some(vec![]));
    let defs = parse(&json!([{"duration": 5}, {"name": "x", "start": "whenever"}, 7])).unwrap();
    assert_eq!(defs.len(), 1, "entries without a name are skipped");
    assert_eq!(defs[0].start, Start::PrevEnded);
    let huge =
        parse(&json!([{"name": "x", "duration": 1e300, "start": {"timer": 1e300}}])).unwrap();
    assert_eq!(
        huge[0].duration,
        Some(MAX_PHASE_TIME),
        "no clock overflow from a script"
    );
    assert_eq!(huge[0].start, Start::Timer(MAX_PHASE_TIME));
    let (p, first) = Phases::new(Instant::now(), Vec::new());
    assert!(first.is_empty());
    assert!(!p.is_complete(), "an empty list never finishes the match");
}
