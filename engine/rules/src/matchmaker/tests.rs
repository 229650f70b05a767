//! Deterministic tests on a simulated clock: every `now` is a base instant plus an offset.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

fn ms(base: Instant, offset_ms: u64) -> Instant {
    base + Duration::from_millis(offset_ms)
}

fn config(match_size: usize, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        match_size: Some(match_size),
        strategy,
        ..QueueConfig::default()
    }
}

/// Queues player `p-<name>` with ticket `t-<name>`.
fn enqueue(q: &mut ModeQueue, now: Instant, name: &str, properties: Value) -> Queued {
    q.add(now, format!("t-{name}"), format!("p-{name}"), properties)
        .expect("add accepted")
}

fn with_skill(skill: i64) -> Value {
    json!({ "skill": skill })
}

/// Player ids of each formed group, in event order.
fn groups(events: &[QueueEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .filter_map(|e| match e {
            QueueEvent::Formed(g) => Some(g.player_ids()),
            QueueEvent::Expired(_) => None,
        })
        .collect()
}

fn expired(events: &[QueueEvent]) -> Vec<TicketRef> {
    events
        .iter()
        .filter_map(|e| match e {
            QueueEvent::Expired(t) => Some(t.clone()),
            QueueEvent::Formed(_) => None,
        })
        .collect()
}

fn players(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("p-{n}")).collect()
}

fn state_of(q: &ModeQueue, now: Instant, name: &str) -> Result<TicketState, TicketAccessError> {
    q.status(now, &format!("t-{name}"), &format!("p-{name}"))
        .map(|s| s.state)
}

#[test]
fn fill_groups_in_arrival_order_and_forms_several_groups_per_tick() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(3, Strategy::Fill));
    for (i, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
        enqueue(&mut q, ms(t0, i as u64 * 10), name, json!({}));
    }
    let events = q.tick(ms(t0, 1000));
    assert_eq!(
        groups(&events),
        vec![players(&["a", "b", "c"]), players(&["d", "e", "f"])]
    );
    assert_eq!(q.len(), 1);
    assert_eq!(state_of(&q, ms(t0, 1000), "g"), Ok(TicketState::Pending));
    match &events[0] {
        QueueEvent::Formed(g) => {
            assert_eq!(g.mode, "arena");
            assert_eq!(g.ticket_ids(), vec!["t-a", "t-b", "t-c"]);
            assert_eq!(g.tickets[0].waited, Duration::from_millis(1000));
        }
        other => panic!("expected a formed group, got {other:?}"),
    }
}

#[test]
fn fill_waits_until_match_size_players_are_queued() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    assert!(q.tick(ms(t0, 1000)).is_empty());
    assert_eq!(q.len(), 1);
    enqueue(&mut q, ms(t0, 1500), "b", json!({}));
    assert_eq!(groups(&q.tick(ms(t0, 2000))), vec![players(&["a", "b"])]);
    assert!(q.is_empty());
}

#[test]
fn leftover_tickets_stay_queued_ahead_of_later_arrivals() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    for name in ["a", "b", "c"] {
        enqueue(&mut q, t0, name, json!({}));
    }
    assert_eq!(groups(&q.tick(ms(t0, 1000))), vec![players(&["a", "b"])]);
    enqueue(&mut q, ms(t0, 1100), "d", json!({}));
    enqueue(&mut q, ms(t0, 1200), "e", json!({}));
    assert_eq!(groups(&q.tick(ms(t0, 2000))), vec![players(&["c", "d"])]);
    assert_eq!(state_of(&q, ms(t0, 2000), "e"), Ok(TicketState::Pending));
}

#[test]
fn match_size_one_forms_each_ticket_alone() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("solo".into(), config(1, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(10));
    enqueue(&mut q, t0, "b", with_skill(5000));
    assert_eq!(groups(&q.tick(t0)), vec![players(&["a"]), players(&["b"])]);
}

#[test]
fn undeclared_match_size_groups_in_twos_and_reports_null() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), QueueConfig::default());
    let queued = enqueue(&mut q, t0, "a", json!({}));
    assert_eq!(queued.players_needed, None);
    assert_eq!(queued.to_json()["players_needed"], Value::Null);
    enqueue(&mut q, t0, "b", json!({}));
    enqueue(&mut q, t0, "c", json!({}));
    assert_eq!(groups(&q.tick(t0)), vec![players(&["a", "b"])]);
}

#[test]
fn skill_based_sorts_by_skill_and_groups_neighbours() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(1500));
    enqueue(&mut q, t0, "b", with_skill(1000));
    enqueue(&mut q, t0, "c", with_skill(1490));
    enqueue(&mut q, t0, "d", with_skill(1010));
    assert_eq!(
        groups(&q.tick(t0)),
        vec![players(&["b", "d"]), players(&["c", "a"])]
    );
}

#[test]
fn skill_window_boundary_at_zero_wait() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(1000));
    enqueue(&mut q, t0, "b", with_skill(1201));
    assert!(q.tick(t0).is_empty(), "201 apart is outside the 200 window");

    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(1000));
    enqueue(&mut q, t0, "b", with_skill(1200));
    assert_eq!(groups(&q.tick(t0)), vec![players(&["a", "b"])]);
}

#[test]
fn skill_window_widens_in_whole_five_second_steps() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(1000));
    enqueue(&mut q, t0, "b", with_skill(1300));
    // window = 200 + (wait_s div 5) * 50: 250 from 5 s, 300 from 10 s.
    assert!(q.tick(ms(t0, 4_999)).is_empty());
    assert!(q.tick(ms(t0, 5_000)).is_empty(), "250 < 300");
    assert!(q.tick(ms(t0, 9_999)).is_empty());
    assert_eq!(groups(&q.tick(ms(t0, 10_000))), vec![players(&["a", "b"])]);
}

#[test]
fn skill_window_formula_uses_configured_base_and_growth() {
    let cfg = QueueConfig {
        skill_base: 100.0,
        skill_growth_per_5s: 10.0,
        ..QueueConfig::default()
    };
    assert_eq!(cfg.skill_window(Duration::ZERO), 100.0);
    assert_eq!(cfg.skill_window(Duration::from_millis(4_999)), 100.0);
    assert_eq!(cfg.skill_window(Duration::from_secs(5)), 110.0);
    assert_eq!(cfg.skill_window(Duration::from_secs(59)), 210.0);

    let t0 = Instant::now();
    let mut q = ModeQueue::new(
        "ranked".into(),
        QueueConfig {
            match_size: Some(2),
            strategy: Strategy::SkillBased,
            ..cfg
        },
    );
    enqueue(&mut q, t0, "a", with_skill(1000));
    enqueue(&mut q, t0, "b", with_skill(1110));
    assert!(q.tick(ms(t0, 4_999)).is_empty());
    assert_eq!(groups(&q.tick(ms(t0, 5_000))), vec![players(&["a", "b"])]);
}

#[test]
fn skill_window_widens_with_the_lowest_skill_tickets_wait() {
    let t0 = Instant::now();
    // The high-skill player has waited 20 s, the low-skill one just arrived: asobi measures
    // the wait of the candidate's first (lowest-skill) ticket, so the window is still 200.
    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "high", with_skill(1250));
    enqueue(&mut q, ms(t0, 20_000), "low", with_skill(1000));
    assert!(q.tick(ms(t0, 20_000)).is_empty());
    // Once the low-skill ticket itself has waited 5 s the window is 250.
    assert_eq!(
        groups(&q.tick(ms(t0, 25_000))),
        vec![players(&["low", "high"])]
    );
}

#[test]
fn skill_based_slides_past_a_ticket_that_fits_no_group() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
    enqueue(&mut q, t0, "a", with_skill(1000));
    enqueue(&mut q, t0, "b", with_skill(1500));
    enqueue(&mut q, t0, "c", with_skill(1600));
    enqueue(&mut q, t0, "d", with_skill(2500));
    assert_eq!(groups(&q.tick(t0)), vec![players(&["b", "c"])]);
    assert_eq!(q.len(), 2);
    assert_eq!(state_of(&q, t0, "a"), Ok(TicketState::Pending));
    assert_eq!(state_of(&q, t0, "d"), Ok(TicketState::Pending));
}

#[test]
fn skill_defaults_to_1000_when_missing_or_not_a_number() {
    assert_eq!(ticket_skill(&json!({})), 1000.0);
    assert_eq!(ticket_skill(&json!({ "skill": "high" })), 1000.0);
    assert_eq!(ticket_skill(&json!({ "skill": null })), 1000.0);
    assert_eq!(ticket_skill(&json!({ "skill": [1500] })), 1000.0);
    assert_eq!(ticket_skill(&json!("not an object")), 1000.0);
    assert_eq!(ticket_skill(&json!({ "skill": 1337 })), 1337.0);
    assert_eq!(ticket_skill(&json!({ "skill": 1100.5 })), 1100.5);

    let t0 = Instant::now();
    for props in [json!({}), json!({ "skill": "high" }), Value::Null] {
        let mut q = ModeQueue::new("ranked".into(), config(2, Strategy::SkillBased));
        enqueue(&mut q, t0, "x", props.clone());
        enqueue(&mut q, t0, "far", with_skill(1201));
        assert!(q.tick(t0).is_empty(), "{props} must rank as 1000");
        enqueue(&mut q, t0, "near", with_skill(1200));
        assert_eq!(groups(&q.tick(t0)), vec![players(&["x", "near"])]);
    }
}

#[test]
fn re_adding_returns_the_existing_ticket() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(4, Strategy::Fill));
    let first = enqueue(&mut q, t0, "a", json!({ "skill": 1 }));
    assert_eq!(
        first,
        Queued {
            ticket_id: "t-a".into(),
            players_needed: Some(4),
            already_queued: false
        }
    );
    let again = q
        .add(
            ms(t0, 500),
            "t-other".into(),
            "p-a".into(),
            json!({ "skill": 2 }),
        )
        .expect("re-add accepted");
    assert_eq!(again.ticket_id, "t-a");
    assert!(again.already_queued);
    assert_eq!(q.len(), 1);
    let status = q.status(ms(t0, 500), "t-a", "p-a").expect("found");
    assert_eq!(
        status.properties,
        Some(json!({ "skill": 1 })),
        "original ticket kept"
    );
    assert_eq!(
        q.status(t0, "t-other", "p-a"),
        Err(TicketAccessError::NotFound)
    );
}

#[test]
fn queued_reply_has_the_fixture_shape() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    let body = enqueue(&mut q, t0, "a", json!({})).to_json();
    assert_eq!(
        body,
        json!({ "ticket_id": "t-a", "status": "pending", "players_needed": 2, "already_queued": false })
    );
}

#[test]
fn tickets_expire_only_after_max_wait_has_passed() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    assert!(
        q.tick(ms(t0, 60_000)).is_empty(),
        "exactly max_wait: still waiting"
    );
    assert_eq!(state_of(&q, ms(t0, 60_000), "a"), Ok(TicketState::Pending));

    // A partner arriving in the same tick does not rescue an expiring ticket.
    enqueue(&mut q, ms(t0, 60_001), "b", json!({}));
    let events = q.tick(ms(t0, 60_001));
    assert_eq!(
        events,
        vec![QueueEvent::Expired(TicketRef {
            ticket_id: "t-a".into(),
            player_id: "p-a".into()
        })]
    );
    assert_eq!(state_of(&q, ms(t0, 60_001), "a"), Ok(TicketState::Expired));
    assert_eq!(q.len(), 1);
}

#[test]
fn max_wait_is_configurable() {
    let t0 = Instant::now();
    let cfg = QueueConfig {
        max_wait: Duration::from_secs(5),
        ..config(2, Strategy::Fill)
    };
    let mut q = ModeQueue::new("arena".into(), cfg);
    enqueue(&mut q, t0, "a", json!({}));
    assert!(q.tick(ms(t0, 5_000)).is_empty());
    assert_eq!(expired(&q.tick(ms(t0, 5_001))).len(), 1);
}

#[test]
fn a_full_queue_refuses_new_players_but_not_queued_ones() {
    let t0 = Instant::now();
    let cfg = QueueConfig {
        max_queue: 2,
        ..config(5, Strategy::Fill)
    };
    let mut q = ModeQueue::new("arena".into(), cfg);
    enqueue(&mut q, t0, "a", json!({}));
    enqueue(&mut q, t0, "b", json!({}));
    let err = q
        .add(t0, "t-c".into(), "p-c".into(), json!({}))
        .expect_err("full");
    assert_eq!(err, AddError::QueueFull { max_queue: 2 });
    assert_eq!(err.code(), "matchmaker.queue_full");
    assert!(err.to_string().contains("full"));
    assert!(enqueue(&mut q, t0, "a", json!({})).already_queued);

    q.remove(t0, "t-a", "p-a").expect("owner removes");
    assert!(!enqueue(&mut q, t0, "c", json!({})).already_queued);
}

#[test]
fn only_the_owner_can_remove_a_ticket() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    let err = q.remove(t0, "t-a", "p-mallory").expect_err("not owner");
    assert_eq!(err, TicketAccessError::NotOwner);
    assert_eq!((err.code(), err.http_status()), ("forbidden", 403));
    assert_eq!(state_of(&q, t0, "a"), Ok(TicketState::Pending));

    assert_eq!(q.remove(ms(t0, 10), "t-a", "p-a"), Ok(()));
    assert_eq!(state_of(&q, ms(t0, 10), "a"), Ok(TicketState::Cancelled));
    assert!(q.is_empty());
    let err = q.remove(ms(t0, 20), "t-a", "p-a").expect_err("gone");
    assert_eq!(err, TicketAccessError::NotFound);
    assert_eq!(
        (err.code(), err.http_status()),
        ("matchmaker.ticket_not_found", 404)
    );
    assert_eq!(
        q.remove(t0, "t-never", "p-a"),
        Err(TicketAccessError::NotFound)
    );
}

#[test]
fn remove_player_cancels_their_ticket() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    assert_eq!(q.remove_player(t0, "p-a"), Some("t-a".into()));
    assert_eq!(q.remove_player(t0, "p-a"), None);
    assert_eq!(q.remove_player(t0, "p-nobody"), None);
    assert!(q.is_empty());
    assert_eq!(state_of(&q, t0, "a"), Ok(TicketState::Cancelled));
    let again = q
        .add(t0, "t-a2".into(), "p-a".into(), json!({}))
        .expect("may queue again");
    assert!(!again.already_queued);
    assert!(
        q.tick(ms(t0, 1000)).is_empty(),
        "the cancelled ticket never forms"
    );
}

#[test]
fn status_goes_pending_then_matched_then_is_forgotten_after_retention() {
    let t0 = Instant::now();
    let cfg = QueueConfig {
        status_retention: Duration::from_secs(30),
        ..config(2, Strategy::Fill)
    };
    let mut q = ModeQueue::new("arena".into(), cfg);
    enqueue(&mut q, t0, "a", json!({ "region": "eu" }));
    let pending = q.status(ms(t0, 400), "t-a", "p-a").expect("pending");
    assert_eq!(pending.state, TicketState::Pending);
    assert_eq!(pending.age, Duration::from_millis(400));
    assert_eq!(
        pending.to_json(1_000_000),
        json!({
            "id": "t-a", "ticket_id": "t-a", "mode": "arena", "status": "pending",
            "properties": { "region": "eu" }, "submitted_at": 999_600, "players_needed": 2,
        })
    );
    assert_eq!(q.status(t0, "t-a", "p-b"), Err(TicketAccessError::NotOwner));

    enqueue(&mut q, t0, "b", json!({}));
    let events = q.tick(ms(t0, 1_000));
    assert_eq!(groups(&events).len(), 1);
    assert_eq!(
        state_of(&q, ms(t0, 1_000), "a"),
        Ok(TicketState::Matched { match_id: None })
    );
    q.mark_matched(["t-a", "t-b"], "m-1");
    let matched = q.status(ms(t0, 2_000), "t-a", "p-a").expect("matched");
    assert_eq!(
        matched.state,
        TicketState::Matched {
            match_id: Some("m-1".into())
        }
    );
    let body = matched.to_json(5_000);
    assert_eq!(body["status"], "matched");
    assert_eq!(body["match_id"], "m-1");
    assert!(body.get("players_needed").is_none());
    assert_eq!(
        q.status(ms(t0, 2_000), "t-b", "p-a"),
        Err(TicketAccessError::NotOwner)
    );

    // Retained for 30 s after it resolved at 1 s; gone at exactly 31 s, swept or not.
    assert!(q.status(ms(t0, 30_999), "t-a", "p-a").is_ok());
    assert_eq!(
        q.status(ms(t0, 31_000), "t-a", "p-a"),
        Err(TicketAccessError::NotFound)
    );
    assert!(q.tick(ms(t0, 31_000)).is_empty());
    assert!(q.resolved.is_empty() && q.resolved_order.is_empty());
}

#[test]
fn expired_status_is_retained_too() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    q.tick(ms(t0, 61_000));
    let status = q.status(ms(t0, 62_000), "t-a", "p-a").expect("retained");
    assert_eq!(status.to_json(0)["status"], "expired");
}

#[test]
fn retained_statuses_are_bounded() {
    let t0 = Instant::now();
    let cfg = QueueConfig {
        max_retained: 3,
        ..config(2, Strategy::Fill)
    };
    let mut q = ModeQueue::new("arena".into(), cfg);
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let now = ms(t0, i as u64);
        enqueue(&mut q, now, name, json!({}));
        q.remove_player(now, &format!("p-{name}"));
    }
    assert_eq!(q.resolved.len(), 3);
    assert_eq!(
        state_of(&q, ms(t0, 9), "a"),
        Err(TicketAccessError::NotFound)
    );
    assert_eq!(
        state_of(&q, ms(t0, 9), "b"),
        Err(TicketAccessError::NotFound)
    );
    for name in ["c", "d", "e"] {
        assert_eq!(state_of(&q, ms(t0, 9), name), Ok(TicketState::Cancelled));
    }
}

#[test]
fn a_reused_ticket_id_is_refused() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    let err = q.add(t0, "t-a".into(), "p-b".into(), json!({}));
    assert_eq!(err, Err(AddError::TicketIdInUse));
    q.remove_player(t0, "p-a");
    let err = q.add(t0, "t-a".into(), "p-b".into(), json!({}));
    assert_eq!(err, Err(AddError::TicketIdInUse));
}

#[test]
fn a_failed_formation_is_retried_then_given_up() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    enqueue(&mut q, t0, "b", json!({}));
    for attempt in 1..MAX_FORMATION_ATTEMPTS {
        let now = ms(t0, u64::from(attempt) * 1_000);
        let events = q.tick(now);
        assert_eq!(groups(&events), vec![players(&["a", "b"])]);
        if attempt == 1 {
            // A later arrival queues behind the re-queued pair.
            enqueue(&mut q, now, "c", json!({}));
        }
        let retry = q.formation_failed(now, ["t-a", "t-b"]);
        assert_eq!(retry.requeued, vec!["t-a", "t-b"]);
        assert!(retry.gave_up.is_empty());
        assert_eq!(state_of(&q, now, "a"), Ok(TicketState::Pending));
        let age = q.status(now, "t-a", "p-a").expect("pending").age;
        assert_eq!(age, now - t0, "keeps its original submission time");
    }
    let now = ms(t0, 10_000);
    assert_eq!(groups(&q.tick(now)), vec![players(&["a", "b"])]);
    let retry = q.formation_failed(now, ["t-a", "t-b"]);
    assert!(retry.requeued.is_empty());
    assert_eq!(
        retry.gave_up,
        vec![
            TicketRef {
                ticket_id: "t-a".into(),
                player_id: "p-a".into()
            },
            TicketRef {
                ticket_id: "t-b".into(),
                player_id: "p-b".into()
            },
        ]
    );
    assert_eq!(state_of(&q, now, "a"), Ok(TicketState::Failed));
    assert_eq!(
        q.status(now, "t-a", "p-a")
            .map(|s| s.to_json(0)["status"].clone()),
        Ok(json!("failed"))
    );
    assert_eq!(q.len(), 1, "only c is left");
}

#[test]
fn a_failed_formation_does_not_requeue_a_player_who_queued_again() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(2, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    enqueue(&mut q, t0, "b", json!({}));
    q.tick(t0);
    let fresh = q
        .add(t0, "t-a2".into(), "p-a".into(), json!({}))
        .expect("queues again");
    assert!(!fresh.already_queued);
    let retry = q.formation_failed(t0, ["t-a", "t-b", "t-unknown"]);
    assert_eq!(retry.requeued, vec!["t-b"]);
    assert_eq!(state_of(&q, t0, "a"), Ok(TicketState::Cancelled));
    assert_eq!(q.len(), 2);
    assert_eq!(
        groups(&q.tick(ms(t0, 1))),
        vec![players(&["b", "a"])],
        "the re-queued ticket keeps its earlier place"
    );
}

#[test]
fn reconfigure_applies_to_the_next_tick() {
    let t0 = Instant::now();
    let mut q = ModeQueue::new("arena".into(), config(3, Strategy::Fill));
    enqueue(&mut q, t0, "a", json!({}));
    enqueue(&mut q, t0, "b", json!({}));
    assert!(q.tick(t0).is_empty());
    q.reconfigure(config(2, Strategy::Fill));
    assert_eq!(q.config().group_size(), 2);
    assert_eq!(q.mode(), "arena");
    assert_eq!(groups(&q.tick(t0)), vec![players(&["a", "b"])]);
}

#[test]
fn strategy_names_resolve_like_asobi() {
    assert_eq!(
        Strategy::from_mode_value("skill_based"),
        Strategy::SkillBased
    );
    assert_eq!(Strategy::from_mode_value("fill"), Strategy::Fill);
    assert_eq!(Strategy::from_mode_value("my_custom"), Strategy::Fill);
    assert_eq!(config(0, Strategy::Fill).group_size(), 1);
}
