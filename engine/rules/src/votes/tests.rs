//! Votes on a simulated clock.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::*;

fn cfg(extra: Value) -> VoteConfig {
    let mut v = json!({
        "options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}, {"id": "c", "label": "C"}],
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    VoteConfig::parse(&v, &Map::new()).unwrap()
}

fn players(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("p{i}")).collect()
}

fn one(s: &str) -> Ballot {
    Ballot::One(s.into())
}

fn many(l: &[&str]) -> Ballot {
    Ballot::Many(l.iter().map(|s| s.to_string()).collect())
}

fn open(extra: Value, n: usize) -> (Instant, Vote) {
    let t0 = Instant::now();
    (t0, Vote::open(t0, "v1".into(), cfg(extra), players(n), 7))
}

fn counts(c: &Closed) -> Vec<(String, f64)> {
    c.outcome.counts.clone()
}

#[test]
fn plurality_most_ballots_wins_with_distribution_and_turnout() {
    let (t0, mut v) = open(json!({}), 4);
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("b")).unwrap();
    v.cast(t0, "p3", one("a")).unwrap();
    assert_eq!(
        v.close_at(),
        t0 + DEFAULT_WINDOW,
        "a fixed window never closes early"
    );
    let c = v.close(t0 + DEFAULT_WINDOW);
    assert_eq!(c.outcome.winner.as_deref(), Some("a"));
    assert_eq!(
        counts(&c),
        vec![("a".into(), 2.0), ("b".into(), 1.0), ("c".into(), 0.0)]
    );
    let d = c.outcome.distribution.clone().unwrap();
    assert!((d[0].1 - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(c.cast, 3);
    assert!((c.turnout - 0.75).abs() < 1e-9);
    assert_eq!(
        c.outcome.to_json()["counts"],
        json!({"a": 2, "b": 1, "c": 0})
    );
    assert_eq!(c.open_for, DEFAULT_WINDOW);
}

#[test]
fn ties_go_first_or_to_the_seeded_pick() {
    let (t0, mut v) = open(json!({"tie_breaker": "first"}), 2);
    v.cast(t0, "p1", one("b")).unwrap();
    v.cast(t0, "p2", one("c")).unwrap();
    assert_eq!(v.close(t0).outcome.winner.as_deref(), Some("b"));

    // Random: replayable from the seed, and only ever one of the tied options.
    let mut seen = std::collections::HashSet::new();
    for seed in 0..64 {
        let t0 = Instant::now();
        let mut v = Vote::open(t0, "v".into(), cfg(json!({})), players(2), seed);
        v.cast(t0, "p1", one("b")).unwrap();
        v.cast(t0, "p2", one("c")).unwrap();
        let w = v.close(t0).outcome.winner.unwrap();
        assert!(w == "b" || w == "c");
        seen.insert(w.clone());
        let mut again = Vote::open(t0, "v".into(), cfg(json!({})), players(2), seed);
        again.cast(t0, "p1", one("b")).unwrap();
        again.cast(t0, "p2", one("c")).unwrap();
        assert_eq!(again.close(t0).outcome.winner.unwrap(), w);
    }
    assert_eq!(seen.len(), 2, "both tied options come up across seeds");
}

#[test]
fn approval_counts_every_approved_option() {
    let (t0, mut v) = open(json!({"method": "approval"}), 3);
    v.cast(t0, "p1", many(&["a", "b"])).unwrap();
    v.cast(t0, "p2", many(&["b", "c"])).unwrap();
    v.cast(t0, "p3", one("b")).unwrap();
    assert_eq!(
        v.cast(t0, "p3", many(&["a", "a"])),
        Err(Refused::InvalidOption),
        "duplicates refused"
    );
    let c = v.close(t0);
    assert_eq!(c.outcome.winner.as_deref(), Some("b"));
    assert_eq!(
        counts(&c),
        vec![("a".into(), 1.0), ("b".into(), 3.0), ("c".into(), 1.0)]
    );
    assert!(c.outcome.distribution.is_none());
}

#[test]
fn weighted_multiplies_by_weight_and_absent_weight_is_one() {
    let (t0, mut v) = open(json!({"method": "weighted", "weights": {"p1": 3}}), 3);
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("b")).unwrap();
    v.cast(t0, "p3", one("b")).unwrap();
    assert_eq!(
        v.cast(t0, "p3", many(&["a"])),
        Err(Refused::InvalidOption),
        "one option per ballot"
    );
    let c = v.close(t0);
    assert_eq!(c.outcome.winner.as_deref(), Some("a"));
    assert_eq!(counts(&c)[0], ("a".into(), 3.0));
    assert_eq!(counts(&c)[1], ("b".into(), 2.0));
    assert_eq!(c.outcome.to_json()["counts"]["a"], json!(3.0));
    assert!((c.outcome.distribution.unwrap()[0].1 - 0.6).abs() < 1e-9);
}

#[test]
fn ranked_eliminates_the_weakest_and_transfers_until_a_majority() {
    // First choices a:2 b:2 c:1 - no majority. c is out; its voter's next choice is b: b 3/5.
    let (t0, mut v) = open(json!({"method": "ranked"}), 5);
    v.cast(t0, "p1", many(&["a", "b", "c"])).unwrap();
    v.cast(t0, "p2", many(&["a", "c", "b"])).unwrap();
    v.cast(t0, "p3", many(&["b", "a", "c"])).unwrap();
    v.cast(t0, "p4", many(&["b", "c", "a"])).unwrap();
    v.cast(t0, "p5", many(&["c", "b", "a"])).unwrap();
    assert_eq!(
        v.live(),
        vec![("a".into(), 2.0), ("b".into(), 2.0), ("c".into(), 1.0)]
    );
    let c = v.close(t0);
    assert_eq!(
        c.outcome.winner.as_deref(),
        Some("b"),
        "plurality of firsts would be a tie; runoff gives b"
    );
    // Counts are the first choices.
    assert_eq!(
        counts(&c),
        vec![("a".into(), 2.0), ("b".into(), 2.0), ("c".into(), 1.0)]
    );
}

#[test]
fn ranked_with_a_first_choice_majority_wins_in_round_one() {
    let (t0, mut v) = open(json!({"method": "ranked", "tie_breaker": "first"}), 3);
    v.cast(t0, "p1", many(&["c", "a"])).unwrap();
    v.cast(t0, "p2", many(&["c"])).unwrap();
    v.cast(t0, "p3", many(&["a", "c"])).unwrap();
    assert_eq!(v.close(t0).outcome.winner.as_deref(), Some("c"));
}

#[test]
fn ready_up_closes_when_everyone_voted() {
    let (t0, mut v) = open(json!({"window_type": "ready_up"}), 2);
    v.cast(t0 + Duration::from_millis(100), "p1", one("a"))
        .unwrap();
    assert_eq!(v.close_at(), t0 + DEFAULT_WINDOW);
    v.cast(t0 + Duration::from_millis(900), "p2", one("a"))
        .unwrap();
    assert_eq!(v.close_at(), t0 + Duration::from_millis(900));
}

#[test]
fn ready_up_without_everyone_runs_the_full_window() {
    let (t0, mut v) = open(json!({"window_type": "ready_up", "window_ms": 2000}), 3);
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("a")).unwrap();
    assert_eq!(v.close_at(), t0 + Duration::from_millis(2000));
}

#[test]
fn hybrid_waits_for_the_minimum_window() {
    let (t0, mut v) = open(json!({"window_type": "hybrid", "min_window_ms": 5000}), 2);
    v.cast(t0 + Duration::from_millis(100), "p1", one("a"))
        .unwrap();
    v.cast(t0 + Duration::from_millis(200), "p2", one("b"))
        .unwrap();
    assert_eq!(
        v.close_at(),
        t0 + Duration::from_millis(5000),
        "all in early: closes at the minimum"
    );

    let (t0, mut v) = open(json!({"window_type": "hybrid", "min_window_ms": 1000}), 2);
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0 + Duration::from_millis(3000), "p2", one("b"))
        .unwrap();
    assert_eq!(
        v.close_at(),
        t0 + Duration::from_millis(3000),
        "past the minimum: closes at once"
    );
}

#[test]
fn adaptive_shrinks_to_three_seconds_on_supermajority_and_never_grows_back() {
    let (t0, mut v) = open(json!({"window_type": "adaptive", "window_ms": 20000}), 4);
    let t1 = t0 + Duration::from_millis(1000);
    v.cast(t1, "p1", one("a")).unwrap();
    // One ballot of one is 100%: the supermajority is there at once.
    assert_eq!(v.close_at(), t1 + ADAPTIVE_SHRINK);
    let t2 = t0 + Duration::from_millis(2000);
    v.cast(t2, "p2", one("b")).unwrap();
    v.cast(t2, "p3", one("c")).unwrap();
    assert_eq!(
        v.close_at(),
        t1 + ADAPTIVE_SHRINK,
        "losing the supermajority keeps the short timer"
    );
    assert_eq!(v.remaining(t2), Duration::from_millis(2000));
}

#[test]
fn supermajority_is_the_leading_share_of_ballots_cast() {
    let c = cfg(json!({}));
    let mut ballots = BTreeMap::new();
    ballots.insert("p1".to_string(), one("a"));
    ballots.insert("p2".to_string(), one("b"));
    assert!(!has_supermajority(&live(&c, &ballots), 2, 0.75));
    ballots.insert("p3".to_string(), one("a"));
    ballots.insert("p4".to_string(), one("a"));
    assert!(has_supermajority(&live(&c, &ballots), 4, 0.75));
    assert!(!has_supermajority(&live(&c, &BTreeMap::new()), 0, 0.75));
}

#[test]
fn quorum_not_reached_gives_no_winner() {
    let (t0, mut v) = open(json!({"quorum": 0.5}), 4);
    v.cast(t0, "p1", one("a")).unwrap();
    let c = v.close(t0);
    assert_eq!(c.outcome.winner, None);
    assert_eq!(c.outcome.status, Some("no_quorum"));
    assert_eq!(c.outcome.to_json()["winner"], Value::Null);

    let (t0, mut v) = open(json!({"quorum": 0.5}), 4);
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("a")).unwrap();
    assert_eq!(
        v.close(t0).outcome.winner.as_deref(),
        Some("a"),
        "exactly the quorum is enough"
    );
}

#[test]
fn defaults_and_delegation_fill_in_for_absentees_only() {
    let (t0, mut v) = open(
        json!({"default_votes": {"p2": "b", "p1": "c"}, "delegation": {"p3": "p1"}, "quorum": 1.0}),
        3,
    );
    v.cast(t0, "p1", one("a")).unwrap();
    let c = v.close(t0);
    // p1 voted (their default is ignored), p2 defaulted to b, p3 follows p1.
    assert_eq!(c.outcome.winner.as_deref(), Some("a"));
    assert_eq!(counts(&c)[0].1, 2.0);
    assert_eq!(counts(&c)[1].1, 1.0);
    assert_eq!(c.cast, 1, "defaults are not active ballots");
    assert_eq!(c.ballots.len(), 3);
}

#[test]
fn supermajority_requirement_gives_no_consensus() {
    let (t0, mut v) = open(
        json!({"require_supermajority": true, "supermajority": 0.75}),
        3,
    );
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("a")).unwrap();
    v.cast(t0, "p3", one("b")).unwrap();
    let c = v.close(t0);
    assert_eq!(c.outcome.winner, None);
    assert_eq!(c.outcome.status, Some("no_consensus"));
}

#[test]
fn spectators_are_a_separate_pool_merged_by_weight() {
    let (t0, mut v) = open(
        json!({"spectators": ["s1", "s2"], "spectator_weight": 0.3, "tie_breaker": "first"}),
        2,
    );
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p2", one("a")).unwrap();
    v.cast(t0, "s1", one("b")).unwrap();
    v.cast(t0, "s2", one("b")).unwrap();
    let c = v.close(t0);
    assert_eq!(c.outcome.winner.as_deref(), Some("a"));
    assert!((counts(&c)[0].1 - 0.7).abs() < 1e-9);
    assert!((counts(&c)[1].1 - 0.3).abs() < 1e-9);
    assert_eq!(c.outcome.total_votes, 4);
    assert!(
        (c.turnout - 2.0).abs() < 1e-9,
        "turnout counts every ballot over the eligible players, as asobi"
    );
}

#[test]
fn refusals_eligibility_options_and_revote_limit() {
    let (t0, mut v) = open(json!({"max_revotes": 1}), 2);
    assert_eq!(v.cast(t0, "stranger", one("a")), Err(Refused::NotEligible));
    assert_eq!(v.cast(t0, "p1", one("zzz")), Err(Refused::InvalidOption));
    v.cast(t0, "p1", one("a")).unwrap();
    v.cast(t0, "p1", one("b")).unwrap();
    assert_eq!(v.cast(t0, "p1", one("c")), Err(Refused::RateLimited));
    assert_eq!(
        v.live()[1],
        ("b".into(), 1.0),
        "the change replaced the first ballot"
    );
}

#[test]
fn veto_needs_it_enabled_and_an_eligible_voter() {
    let (_, v) = open(json!({}), 2);
    assert_eq!(v.check_veto("p1"), Err(Refused::VetoDisabled));
    let (_, v) = open(json!({"veto_enabled": true}), 2);
    assert_eq!(v.check_veto("stranger"), Err(Refused::NotEligible));
    assert_eq!(v.check_veto("p2"), Ok(()));
}

#[test]
fn templates_fill_in_and_the_call_overrides() {
    let mut templates = Map::new();
    templates.insert(
        "boon".into(),
        json!({"method": "approval", "window_ms": 20000, "visibility": "hidden"}),
    );
    let c = VoteConfig::parse(
        &json!({"template": "boon", "options": [{"id": "x"}], "window_ms": 1000}),
        &templates,
    )
    .unwrap();
    assert_eq!(c.method, Method::Approval);
    assert_eq!(c.visibility, Visibility::Hidden);
    assert_eq!(c.window, Duration::from_millis(1000));
    assert_eq!(c.template, "boon");
}

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let none = Map::new();
    let p = |v: Value| VoteConfig::parse(&v, &none).err();
    assert_eq!(p(json!([])), Some(ConfigError::NotAnObject));
    assert_eq!(p(json!({})), Some(ConfigError::Options));
    assert_eq!(p(json!({"options": []})), Some(ConfigError::Options));
    assert_eq!(
        p(json!({"options": [{"label": "x"}]})),
        Some(ConfigError::Options)
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}, {"id": "x"}]})),
        Some(ConfigError::Options)
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}], "method": "borda"})),
        Some(ConfigError::Key("method"))
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}], "window_ms": 0})),
        Some(ConfigError::Key("window_ms"))
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}], "window_ms": 1e12})),
        Some(ConfigError::Key("window_ms"))
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}], "quorum": 2})),
        Some(ConfigError::Key("quorum"))
    );
    assert_eq!(
        p(json!({"options": [{"id": "x"}], "weights": {"a": -1}})),
        Some(ConfigError::Key("weights"))
    );
    // Lua encodes an empty table as `[]` or `{}`: both mean "none".
    assert!(p(json!({"options": [{"id": "x"}], "weights": [], "spectators": {}})).is_none());
}

#[test]
fn no_ballots_still_resolves() {
    let (t0, v) = open(json!({"tie_breaker": "first", "method": "ranked"}), 3);
    let c = v.close(t0 + DEFAULT_WINDOW);
    assert_eq!(c.cast, 0);
    assert_eq!(c.turnout, 0.0);
    assert!(
        c.outcome.winner.is_some(),
        "asobi settles an empty count by the tie breaker"
    );
}

use std::collections::BTreeMap;
