//! Simulated-clock tests: every `now` is a base instant plus an offset.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// A stand-in for the engine's session address.
type Sess = u32;

const GRACE: Duration = Duration::from_secs(30);

fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

fn roster_of(t0: Instant, players: &[(&str, Option<Sess>)]) -> Roster<Sess> {
    let mut r = Roster::new(GRACE);
    for (p, s) in players {
        assert_eq!(r.join(t0, p, *s), Joined::Seated);
    }
    r
}

#[test]
fn grace_expiry_removes_only_seats_whose_grace_ran_out() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1)), ("b", Some(2)), ("c", Some(3))]);
    assert_eq!(r.next_deadline(), None);
    assert!(r.disconnect(at(t0, 1_000), "a", 1));
    assert!(r.disconnect(at(t0, 5_000), "b", 2));
    assert_eq!(r.connected().collect::<Vec<_>>(), vec![3]);
    assert_eq!(r.next_deadline(), Some(at(t0, 1_000) + GRACE));
    // One instant before the grace ends nothing expires; at the end it does.
    assert!(r
        .expire(at(t0, 1_000) + GRACE - Duration::from_nanos(1))
        .is_empty());
    let gone = r.expire(at(t0, 1_000) + GRACE);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].player_id, "a");
    assert_eq!(r.players().collect::<Vec<_>>(), vec!["b", "c"]);
    assert_eq!(r.next_deadline(), Some(at(t0, 5_000) + GRACE));
}

#[test]
fn reattach_within_grace_keeps_the_seat() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1))]);
    assert!(r.disconnect(at(t0, 100), "a", 1));
    assert_eq!(r.session_of("a"), None);
    assert!(r.reattach(at(t0, 100) + GRACE - Duration::from_millis(1), "a", 9));
    assert_eq!(r.session_of("a"), Some(9));
    assert_eq!(r.next_deadline(), None);
    assert!(r.expire(at(t0, 100) + GRACE * 2).is_empty());
}

#[test]
fn reattach_after_grace_is_refused_even_before_expire_runs() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1))]);
    r.disconnect(t0, "a", 1);
    assert!(!r.reattach(t0 + GRACE, "a", 2));
    assert!(!r.reattach(t0, "stranger", 2));
    assert_eq!(r.expire(t0 + GRACE).len(), 1);
}

#[test]
fn a_stale_disconnect_does_not_detach_a_newer_session() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1))]);
    // The player opened a second connection, which took over the seat.
    assert_eq!(r.join(at(t0, 10), "a", Some(2)), Joined::Rebound);
    assert!(!r.disconnect(at(t0, 20), "a", 1), "old session's notice");
    assert_eq!(r.session_of("a"), Some(2));
    assert!(r.disconnect(at(t0, 30), "a", 2));
}

#[test]
fn players_seated_offline_start_their_grace_at_creation() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1)), ("offline", None)]);
    assert_eq!(r.next_deadline(), Some(t0 + GRACE));
    // Joining without a session does not reset a running grace.
    assert_eq!(r.join(at(t0, 10_000), "offline", None), Joined::Rebound);
    assert_eq!(r.next_deadline(), Some(t0 + GRACE));
    assert_eq!(r.expire(t0 + GRACE)[0].player_id, "offline");
}

#[test]
fn admission_checks_seat_then_joinable_then_capacity() {
    let t0 = Instant::now();
    let r = roster_of(t0, &[("a", Some(1)), ("b", Some(2))]);
    assert_eq!(r.admit("a", false, 2), Ok(Admission::AlreadySeated));
    assert_eq!(r.admit("c", false, 8), Err(JoinRefused::NotJoinable));
    assert_eq!(r.admit("c", true, 2), Err(JoinRefused::Full));
    assert_eq!(r.admit("c", true, 3), Ok(Admission::Open));
    assert_eq!(JoinRefused::Full.code(), "match.full");
    assert_eq!(JoinRefused::NotJoinable.code(), "match.not_joinable");
}

#[test]
fn the_match_is_abandoned_when_the_last_seated_player_leaves() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1)), ("b", Some(2))]);
    let mut life = Lifecycle::new(t0, r.len());
    assert_eq!(life.next_deadline(), None);
    r.leave("a");
    life.roster_changed(r.len());
    assert_eq!(life.poll(at(t0, 1)), None);
    // A drop is not a leave: the seat stays, the match runs on.
    r.disconnect(at(t0, 2), "b", 2);
    life.roster_changed(r.len());
    assert_eq!(life.poll(at(t0, 2)), None);
    // Grace runs out: that is leaving for good.
    let gone = r.expire(at(t0, 2) + GRACE);
    assert_eq!(gone.len(), 1);
    life.roster_changed(r.len());
    let ending = life.poll(at(t0, 2) + GRACE).expect("ended");
    assert_eq!(ending.outcome, Outcome::Abandoned);
    assert_eq!(ending.outcome.as_str(), "abandoned");
    assert_eq!(ending.result, json!({ "reason": "abandoned" }));
    assert!(life.is_over());
    assert_eq!(
        life.poll(at(t0, 2) + GRACE * 2),
        None,
        "an ending is reported once"
    );
}

#[test]
fn an_empty_match_that_nobody_joins_is_abandoned_after_the_idle_window() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(t0, 0);
    assert_eq!(life.next_deadline(), Some(t0 + EMPTY_MATCH_IDLE));
    assert_eq!(
        life.poll(t0 + EMPTY_MATCH_IDLE - Duration::from_millis(1)),
        None
    );
    let ending = life.poll(t0 + EMPTY_MATCH_IDLE).expect("abandoned");
    assert_eq!(ending.outcome, Outcome::Abandoned);
    assert_eq!(life.next_deadline(), None);
}

#[test]
fn a_match_waits_for_min_players_then_runs_once() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(t0, 1).needing(t0, 1, 3);
    assert!(!life.is_running(), "one of three seated: waiting");
    assert_eq!(life.next_deadline(), Some(t0 + EMPTY_MATCH_IDLE));
    life.roster_changed(2);
    assert!(!life.is_running() && !life.take_started());
    life.roster_changed(3);
    assert!(life.is_running());
    assert!(
        life.take_started(),
        "the change that started it is reported"
    );
    assert!(!life.take_started(), "once");
    assert_eq!(
        life.next_deadline(),
        None,
        "no waiting deadline once running"
    );
    life.roster_changed(1);
    assert!(
        life.is_running(),
        "dropping below min_players does not stop a running match"
    );
    assert_eq!(life.poll(t0 + EMPTY_MATCH_IDLE * 2), None);
}

#[test]
fn a_match_still_waiting_after_the_window_ends_with_waiting_timeout() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(t0, 1).needing(t0, 1, 2);
    assert_eq!(
        life.poll(t0 + EMPTY_MATCH_IDLE - Duration::from_millis(1)),
        None
    );
    let ending = life.poll(t0 + EMPTY_MATCH_IDLE).expect("timed out");
    assert_eq!(ending.outcome, Outcome::Abandoned);
    assert_eq!(ending.result, json!({ "reason": "waiting_timeout" }));
    assert!(!life.is_running());
}

#[test]
fn a_match_seated_at_creation_runs_at_once() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(t0, 2).needing(t0, 2, 2);
    assert!(life.is_running());
    assert!(!life.take_started(), "it never waited");
}

#[test]
fn a_first_join_cancels_the_idle_window() {
    let t0 = Instant::now();
    let mut r: Roster<Sess> = Roster::new(GRACE);
    let mut life = Lifecycle::new(t0, r.len());
    r.join(at(t0, 50), "a", Some(1));
    life.roster_changed(r.len());
    assert_eq!(life.next_deadline(), None);
    assert_eq!(life.poll(t0 + EMPTY_MATCH_IDLE * 10), None);
    r.leave("a");
    life.roster_changed(r.len());
    assert_eq!(
        life.poll(t0 + EMPTY_MATCH_IDLE * 10).map(|e| e.outcome),
        Some(Outcome::Abandoned)
    );
}

#[test]
fn failure_outranks_a_result_which_outranks_abandonment() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(t0, 2);
    life.roster_changed(0);
    life.script_finished(json!({ "winner": "a" }));
    let ending = life.poll(t0).expect("ended");
    assert_eq!(ending.outcome, Outcome::Finished);
    assert_eq!(ending.result, json!({ "winner": "a" }));

    let mut life = Lifecycle::new(t0, 2);
    life.script_finished(json!({ "winner": "a" }));
    life.script_failed(None);
    let ending = life.poll(t0).expect("ended");
    assert_eq!(ending.outcome, Outcome::Failed);
    assert_eq!(ending.outcome.as_str(), "error");
    assert_eq!(ending.result, json!({ "error": "script_failed" }));

    let mut life = Lifecycle::new(t0, 2);
    life.script_failed(Some(json!({ "partial": true })));
    assert_eq!(
        life.poll(t0).expect("ended").result,
        json!({ "partial": true })
    );

    let mut life = Lifecycle::new(t0, 2);
    life.abort();
    let ending = life.poll(t0).expect("ended");
    assert_eq!(
        (ending.outcome.as_str(), ending.result),
        ("aborted", json!({ "reason": "server_shutdown" }))
    );
}

#[test]
fn ticks_keep_their_schedule_when_a_tick_runs_long() {
    let t0 = Instant::now();
    let period = Duration::from_millis(100);
    let mut s = TickSchedule::new(t0, period);
    assert_eq!(s.next_deadline(), at(t0, 100));
    assert_eq!(s.poll(at(t0, 99)), None, "woken early");
    let tick = s.poll(at(t0, 100)).expect("due");
    assert_eq!((tick.scheduled, tick.skipped), (at(t0, 100), 0));
    // Woken 40 ms late: the next deadline is still on the grid, not 100 ms after the wake.
    let tick = s.poll(at(t0, 240)).expect("due");
    assert_eq!((tick.late, tick.skipped), (Duration::from_millis(40), 0));
    assert_eq!(s.next_deadline(), at(t0, 300));
}

#[test]
fn ticks_more_than_a_period_late_are_skipped_not_bunched() {
    let t0 = Instant::now();
    let period = Duration::from_millis(100);
    let mut s = TickSchedule::new(t0, period);
    // A 350 ms stall after the first deadline: one tick runs, the 200 and 300 ones are skipped.
    let tick = s.poll(at(t0, 450)).expect("due");
    assert_eq!(tick.scheduled, at(t0, 100));
    assert_eq!(tick.skipped, 3);
    assert_eq!(s.next_deadline(), at(t0, 500));
    assert_eq!(s.poll(at(t0, 450)), None, "nothing runs back to back");
    // Exactly one period late is not skipped (the engine's rule: more than one period).
    let mut s = TickSchedule::new(t0, period);
    assert_eq!(s.poll(at(t0, 200)).map(|t| t.skipped), Some(0));
    assert_eq!(s.next_deadline(), at(t0, 200));
}

#[test]
fn a_zero_period_is_clamped() {
    let t0 = Instant::now();
    let mut s = TickSchedule::new(t0, Duration::ZERO);
    assert_eq!(s.period(), MIN_TICK_PERIOD);
    s.set_period(at(t0, 10), Duration::from_millis(50));
    assert_eq!(s.next_deadline(), at(t0, 60));
}

/// A driver loop over all three, waking only at the earliest deadline: an offline player's
/// seat expires, the match is abandoned, and ticks ran on their grid until then.
#[test]
fn driven_by_deadlines_a_match_of_offline_players_ends() {
    let t0 = Instant::now();
    let mut r = roster_of(t0, &[("a", Some(1)), ("b", None)]);
    let mut life = Lifecycle::new(t0, r.len());
    let mut sched = TickSchedule::new(t0, Duration::from_secs(1));
    r.disconnect(at(t0, 2_500), "a", 1);
    let mut ticks = 0;
    let mut now;
    let ending = loop {
        now = [
            Some(sched.next_deadline()),
            r.next_deadline(),
            life.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline");
        if !r.expire(now).is_empty() {
            life.roster_changed(r.len());
        }
        if sched.poll(now).is_some() {
            ticks += 1;
        }
        if let Some(ending) = life.poll(now) {
            break ending;
        }
    };
    assert_eq!(ending.outcome, Outcome::Abandoned);
    assert_eq!(now, at(t0, 2_500) + GRACE);
    assert_eq!(ticks, 32, "one tick per second up to and including 32.5 s");
}

#[test]
fn a_player_matched_while_offline_gets_the_arrival_grace_even_when_a_drop_is_a_leave() {
    let t0 = Instant::now();
    let mut r: Roster<Sess> = Roster::new(Duration::ZERO);
    r.join(t0, "late", None);
    r.join(t0, "here", Some(1));
    assert!(r.expire(at(t0, 1)).is_empty(), "on their way");
    assert!(r.reattach(at(t0, 5_000), "late", 2));
    assert!(r.disconnect(at(t0, 6_000), "late", 2));
    let gone: Vec<String> = r
        .expire(at(t0, 6_000))
        .into_iter()
        .map(|s| s.player_id)
        .collect();
    assert_eq!(
        gone,
        vec!["late".to_owned()],
        "a real drop with no grace is a leave"
    );
    r.join(t0, "never", None);
    assert!(r.expire(at(t0, 29_999)).is_empty());
    assert_eq!(r.expire(t0 + ARRIVAL_GRACE).len(), 1);
}

#[test]
fn a_bot_seat_never_runs_out() {
    let t0 = Instant::now();
    let mut r: Roster<Sess> = Roster::new(Duration::ZERO);
    assert_eq!(r.join_bot("bot"), Joined::Seated);
    assert_eq!(r.next_deadline(), None);
    assert!(r.expire(t0 + Duration::from_secs(3600)).is_empty());
    assert_eq!(r.connected().count(), 0, "no session to send to");
}

#[test]
fn matches_started_together_tick_spread_over_the_period() {
    let t0 = Instant::now();
    let period = Duration::from_millis(100);
    // A wave of 1,000 matches started in the same instant, numbered consecutively from any base.
    for base in [0u64, 1, 7_919, u64::MAX - 2_000] {
        let mut bins = [0usize; 10];
        for seq in base..base + 1_000 {
            let s = TickSchedule::spread(t0, period, seq);
            let first = s.next_deadline().duration_since(t0);
            assert!(
                first >= period && first < 2 * period,
                "first tick at {first:?}"
            );
            assert_eq!(s.period(), period);
            let phase = (first - period).as_micros() as usize;
            bins[phase * 10 / 100_000] += 1;
        }
        // Each tenth of the period holds about a tenth of the matches.
        assert!(
            bins.iter().all(|&n| (80..=120).contains(&n)),
            "uneven spread from {base}: {bins:?}"
        );
    }
    // The period itself stays drift-free after the shift.
    let mut s = TickSchedule::spread(t0, period, 3);
    let first = s.next_deadline();
    let tick = s.poll(first).unwrap();
    assert_eq!(tick.late, Duration::ZERO);
    assert_eq!(s.next_deadline(), first + period);
}
