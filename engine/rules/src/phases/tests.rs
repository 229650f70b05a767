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
        json!({"status": "active", "phase": "combat", "remaining_ms": 4000, "config": {"arena": 2}, "timers": {}})
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

#[test]
fn a_duration_that_is_not_a_number_is_zero_as_in_asobi() {
    let defs = parse(&json!([
        {"name": "a", "duration": "10000"},
        {"name": "b", "duration": true},
        {"name": "c"},
    ]))
    .unwrap();
    assert_eq!(defs[0].duration, Some(Duration::ZERO));
    assert_eq!(defs[1].duration, Some(Duration::ZERO));
    assert_eq!(defs[2].duration, None, "absent: runs until the match ends");
    let t0 = Instant::now();
    let (mut p, first) = Phases::new(t0, defs);
    assert_eq!(first, vec![started("a")]);
    // Both zero-length phases start and end in the same poll.
    assert_eq!(
        p.poll(t0),
        vec![ended("a"), started("b"), ended("b"), started("c")]
    );
    assert_eq!(
        p.info(t0 + ms(5)),
        json!({"status": "active", "phase": "c", "remaining_ms": "infinity", "config": {}, "timers": {}})
    );
}

#[test]
fn the_listing_block_is_asobis_projection() {
    let defs = parse(&json!([{"name": "warmup", "duration": 1000, "config": {"k": 1}}])).unwrap();
    let t0 = Instant::now();
    let (p, _) = Phases::new(t0, defs);
    assert_eq!(
        p.listing(t0 + ms(250)),
        json!({"status": "active", "phase": "warmup", "remaining_ms": 750})
    );
}

#[test]
fn the_clock_stops_while_held_and_a_players_start_still_fires() {
    let defs = parse(&json!([
        {"name": "warmup", "duration": 1000},
        {"name": "lobby", "start": {"players": 2}, "duration": 500},
        {"name": "break", "start": {"timer": 300}, "duration": 100},
    ]))
    .unwrap();
    let t0 = Instant::now();
    let (mut p, first) = Phases::new(t0, defs);
    assert_eq!(
        first,
        vec![started("warmup")],
        "the first phase starts at once"
    );
    // The match waits for players for 5 s: warmup's clock does not run.
    p.hold(t0);
    assert!(p.is_held());
    assert_eq!(p.next_deadline(), None);
    assert!(p.poll(t0 + ms(5_000)).is_empty());
    assert_eq!(p.info(t0 + ms(5_000))["remaining_ms"], 1000);
    p.release(t0 + ms(5_000));
    assert_eq!(p.next_deadline(), Some(t0 + ms(6_000)));
    assert_eq!(p.poll(t0 + ms(6_000)), vec![ended("warmup")]);
    // Held again while the lobby waits: the players condition fires anyway, and its duration
    // counts from the release.
    p.hold(t0 + ms(6_100));
    assert_eq!(p.players(t0 + ms(7_000), 2), vec![started("lobby")]);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.info(t0 + ms(9_000))["remaining_ms"], 500);
    p.release(t0 + ms(10_000));
    assert_eq!(p.next_deadline(), Some(t0 + ms(10_500)));
    assert_eq!(p.poll(t0 + ms(10_500)), vec![ended("lobby")]);
    // A timer start waits in running time only.
    p.hold(t0 + ms(10_600));
    p.release(t0 + ms(20_600));
    assert_eq!(p.next_deadline(), Some(t0 + ms(20_800)));
    p.release(t0 + ms(20_700));
    assert_eq!(
        p.next_deadline(),
        Some(t0 + ms(20_800)),
        "a second release is a no-op"
    );
    assert_eq!(p.poll(t0 + ms(20_800)), vec![started("break")]);
    assert_eq!(p.poll(t0 + ms(20_900)), vec![ended("break")]);
    assert!(p.is_complete());
}

/// Tiny deterministic generator (Knuth MMIX LCG), so a walk replays per seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Seeded random walks over random phase lists: holds, releases, polls and joins at random
/// times. Invariants: transitions come in list order, each phase starts before it ends and
/// ends once; nothing is due while held; a phase with a duration is active for at least that
/// much running (unheld) time; and once released with everyone in, the list completes.
#[test]
fn random_walks_keep_order_and_count_only_running_time() {
    for seed in 0..300u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let n = 1 + rng.next(5) as usize;
        let mut list = Vec::new();
        for i in 0..n {
            let start = match rng.next(4) {
                0 => json!({"players": 1 + rng.next(4)}),
                1 => json!({"timer": rng.next(300)}),
                _ => json!("prev_ended"),
            };
            list.push(json!({"name": format!("p{i}"), "duration": rng.next(400), "start": start}));
        }
        let defs = parse(&json!(list)).unwrap();
        let t0 = Instant::now();
        let (mut p, first) = Phases::new(t0, defs);
        // Each transition with the running time (the phase clock) before and after the step
        // that reported it: it happened somewhere in between.
        let mut log: Vec<(Transition, Duration, Duration)> = Vec::new();
        let mut running = Duration::ZERO;
        let mut held = false;
        let mut now = t0;
        for t in first {
            log.push((t, running, running));
        }
        let mut players = 0;
        for round in 0..400 + 3 * n {
            let before = running;
            let settle = round >= 400;
            let step = if settle { ms(1_000) } else { ms(rng.next(120)) };
            now += step;
            if !held {
                running += step;
            }
            // The engine polls at every deadline: whatever came due during the step is seen
            // before anything else happens at its end.
            for t in p.poll(now) {
                log.push((t, before, running));
            }
            let action = if settle { 9 } else { rng.next(6) };
            let out = match action {
                0 if !held => {
                    p.hold(now);
                    held = true;
                    Vec::new()
                }
                1 if held => {
                    p.release(now);
                    held = false;
                    Vec::new()
                }
                2 => {
                    players += 1;
                    p.players(now, players)
                }
                9 => {
                    // Settling: released, everyone in, time passing.
                    if held {
                        p.release(now);
                        held = false;
                    }
                    let mut out = p.players(now, 100);
                    out.extend(p.poll(now));
                    out
                }
                _ => {
                    if held {
                        assert_eq!(p.next_deadline(), None, "seed {seed}: due while held");
                    }
                    p.poll(now)
                }
            };
            let mut out = out;
            out.extend(p.poll(now));
            for t in out {
                log.push((t, before, running));
            }
        }
        let mut expect = 0usize;
        let mut open: Option<Duration> = None;
        for (t, before, after) in &log {
            match t {
                Transition::Started(name) => {
                    assert!(open.is_none(), "seed {seed}: {name} started inside another");
                    assert_eq!(name, &format!("p{expect}"), "seed {seed}: out of order");
                    open = Some(*before);
                }
                Transition::Ended(name) => {
                    assert_eq!(name, &format!("p{expect}"), "seed {seed}: out of order");
                    let began = open.take().expect("ended before it started");
                    let want = ms(list[expect]["duration"].as_u64().unwrap());
                    assert!(
                        after.saturating_sub(began) >= want,
                        "seed {seed}: p{expect} ended too soon ({began:?}..{after:?}, {want:?})"
                    );
                    expect += 1;
                }
            }
        }
        assert_eq!(expect, n, "seed {seed}: the list did not complete");
        assert!(p.is_complete(), "seed {seed}");
    }
}
