//! The bounds added after the security review: properties size and depth, no properties kept
//! for tickets that can never be matched, sweeping without a busy queue, the next deadline,
//! and ticket ids that route without a global map. Simulated clock throughout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

fn queue(match_size: usize) -> ModeQueue {
    ModeQueue::new(
        "arena".into(),
        QueueConfig {
            match_size: Some(match_size),
            ..QueueConfig::default()
        },
    )
}

fn blob(bytes: usize) -> Value {
    json!({ "skill": 1200, "pad": "x".repeat(bytes) })
}

#[test]
fn oversized_properties_are_refused_with_a_stable_code() {
    let t0 = Instant::now();
    let mut q = queue(2);
    let err = q
        .add(t0, "t1".into(), "p1".into(), blob(1 << 20))
        .expect_err("a megabyte is refused");
    assert_eq!(
        err,
        AddError::PropertiesTooLarge {
            max_bytes: DEFAULT_MAX_PROPERTIES_BYTES
        }
    );
    assert_eq!(err.code(), "matchmaker.properties_too_large");
    assert_eq!(err.http_status(), 413);
    assert!(q.is_empty());
    assert_eq!(q.next_deadline(), None, "a refused add arms nothing");

    // Just under the bound is accepted; its size is what the queue then holds.
    let fits = blob(DEFAULT_MAX_PROPERTIES_BYTES - 40);
    let encoded = serde_json::to_string(&fits).expect("encodes").len();
    assert!(encoded <= DEFAULT_MAX_PROPERTIES_BYTES);
    q.add(t0, "t2".into(), "p2".into(), fits).expect("fits");
    assert_eq!(q.properties_bytes(), encoded);
}

#[test]
fn deeply_nested_properties_are_refused() {
    let t0 = Instant::now();
    let mut q = queue(2);
    let mut deep = json!(1);
    for _ in 0..DEFAULT_MAX_PROPERTIES_DEPTH {
        deep = json!([deep]);
    }
    q.add(t0, "t1".into(), "p1".into(), deep.clone())
        .expect("exactly the bound is accepted");
    let err = q
        .add(t0, "t2".into(), "p2".into(), json!([deep]))
        .expect_err("one deeper is refused");
    assert_eq!(
        err,
        AddError::PropertiesTooDeep {
            max_depth: DEFAULT_MAX_PROPERTIES_DEPTH
        }
    );
    assert_eq!(err.code(), "matchmaker.properties_too_large");
}

/// The reported attack: one account adding and deleting tickets with large properties. Each
/// cancelled ticket keeps a status record, but none keeps its properties.
#[test]
fn add_delete_churn_keeps_no_properties() {
    let t0 = Instant::now();
    let mut q = queue(2);
    for i in 0..10_000u64 {
        let now = at(t0, i);
        let id = q.new_ticket_id(1_000 + i, i);
        q.add(now, id.clone(), "p".into(), blob(4_000))
            .expect("fits");
        q.remove(now, &id, "p").expect("owner removes");
        if i % 1_000 == 0 {
            assert_eq!(q.properties_bytes(), 0, "cancelled ticket kept properties");
        }
    }
    assert_eq!(q.properties_bytes(), 0);
    assert!(q.retained() <= DEFAULT_MAX_RETAINED);
    let last = q.status(at(t0, 10_000), &q.new_ticket_id(1_000 + 9_999, 9_999), "p");
    let last = last.expect("recent status answers");
    assert_eq!(last.state, TicketState::Cancelled);
    assert_eq!(last.properties, None);
    assert!(last.to_json(0).get("properties").is_none());
}

/// Churn on a queue that never holds a waiting ticket at tick time is still swept: by the next
/// add or remove, without any tick.
#[test]
fn resolved_records_are_swept_by_inputs_on_an_empty_queue() {
    let t0 = Instant::now();
    let mut q = queue(2);
    for i in 0..100 {
        let id = format!("t{i}");
        q.add(at(t0, i), id.clone(), "p".into(), json!({}))
            .expect("add");
        q.remove(at(t0, i), &id, "p").expect("remove");
    }
    assert_eq!(q.retained(), 100);
    let later = t0 + DEFAULT_STATUS_RETENTION + Duration::from_secs(1);
    q.add(later, "fresh".into(), "p".into(), json!({}))
        .expect("add");
    assert_eq!(q.retained(), 0, "add swept the expired records");
    q.remove(later, "fresh", "p").expect("remove");
    assert_eq!(q.retained(), 1);
    assert_eq!(q.remove_player(later, "nobody"), None);
    assert_eq!(
        q.next_deadline(),
        Some(later + DEFAULT_STATUS_RETENTION),
        "the last record's retention is the only deadline left"
    );
    let events = q.tick(later + DEFAULT_STATUS_RETENTION);
    assert!(events.is_empty());
    assert_eq!(q.retained(), 0);
    assert_eq!(q.next_deadline(), None, "idle queue needs no timer");
}

#[test]
fn next_deadline_follows_the_tick_interval_while_tickets_wait() {
    let t0 = Instant::now();
    let mut q = queue(2);
    assert_eq!(q.next_deadline(), None);
    q.add(t0, "a".into(), "pa".into(), json!({})).expect("add");
    assert_eq!(q.next_deadline(), Some(t0 + DEFAULT_TICK_INTERVAL));
    // A second ticket does not push the due tick back.
    q.add(at(t0, 500), "b".into(), "pb".into(), json!({}))
        .expect("add");
    assert_eq!(q.next_deadline(), Some(t0 + DEFAULT_TICK_INTERVAL));
    let due = t0 + DEFAULT_TICK_INTERVAL;
    assert_eq!(q.tick(due).len(), 1, "the pair forms");
    // Nothing waits now: the next deadline is the retention of the two matched records.
    assert_eq!(q.next_deadline(), Some(due + DEFAULT_STATUS_RETENTION));

    q.add(due, "c".into(), "pc".into(), json!({})).expect("add");
    assert_eq!(q.next_deadline(), Some(due + DEFAULT_TICK_INTERVAL));
    let later = due + DEFAULT_TICK_INTERVAL;
    assert!(q.tick(later).is_empty());
    assert_eq!(q.next_deadline(), Some(later + DEFAULT_TICK_INTERVAL));
    // Removing the only waiting ticket disarms the forming tick.
    q.remove(later, "c", "pc").expect("remove");
    assert_eq!(q.next_deadline(), Some(due + DEFAULT_STATUS_RETENTION));
}

/// A driver that ticks only at `next_deadline()` still expires every ticket within one tick
/// interval of `max_wait`.
#[test]
fn deadline_driven_ticks_expire_on_time() {
    let t0 = Instant::now();
    let mut q = queue(3);
    q.add(t0, "a".into(), "pa".into(), json!({})).expect("add");
    let mut now = t0;
    let mut expired_at = None;
    while let Some(due) = q.next_deadline() {
        now = due;
        for event in q.tick(now) {
            if let QueueEvent::Expired(t) = event {
                assert_eq!(t.ticket_id, "a");
                expired_at = Some(now);
            }
        }
        if expired_at.is_some() {
            break;
        }
    }
    let waited = expired_at.expect("expired") - t0;
    assert!(waited > DEFAULT_MAX_WAIT);
    assert!(waited <= DEFAULT_MAX_WAIT + DEFAULT_TICK_INTERVAL);
    assert_eq!(now, expired_at.expect("expired"));
}

/// A matched ticket keeps its properties (a failed spawn re-forms it with them); the match
/// sees them; a failed-for-good ticket drops them.
#[test]
fn matched_tickets_keep_properties_until_they_cannot_return() {
    let t0 = Instant::now();
    let mut q = queue(2);
    q.add(
        t0,
        "a".into(),
        "pa".into(),
        json!({ "skill": 10, "r": "eu" }),
    )
    .expect("add");
    q.add(t0, "b".into(), "pb".into(), json!({ "skill": 20 }))
        .expect("add");
    let mut now = at(t0, 1_000);
    let mut attempts = 0;
    loop {
        let events = q.tick(now);
        let Some(QueueEvent::Formed(group)) = events.first() else {
            panic!("expected a group, got {events:?}");
        };
        assert_eq!(
            group.tickets[0].properties,
            json!({ "skill": 10, "r": "eu" })
        );
        assert_eq!(
            q.status(now, "a", "pa").expect("status").properties,
            Some(json!({ "skill": 10, "r": "eu" }))
        );
        attempts += 1;
        let retry = q.formation_failed(now, group.ticket_ids());
        if !retry.gave_up.is_empty() {
            break;
        }
        now += DEFAULT_TICK_INTERVAL;
    }
    assert_eq!(attempts, MAX_FORMATION_ATTEMPTS);
    assert_eq!(q.properties_bytes(), 0);
    let failed = q.status(now, "a", "pa").expect("status");
    assert_eq!(failed.state, TicketState::Failed);
    assert_eq!(failed.properties, None);
}

/// The runtime resolves a bare ticket id to its mode with the game's mode list alone.
#[test]
fn ticket_ids_route_to_their_queue_without_a_ticket_map() {
    let t0 = Instant::now();
    let modes = ["arena", "duel", "brawl"];
    let mut queues: Vec<ModeQueue> = modes
        .iter()
        .map(|m| ModeQueue::new((*m).into(), QueueConfig::default()))
        .collect();
    let index = ModeIndex::new(modes);
    let mut issued = Vec::new();
    for (i, q) in queues.iter_mut().enumerate() {
        let id = q.new_ticket_id(1_764_000_000_000, i as u64 * 7919);
        let queued = q
            .add(t0, id.clone(), format!("p{i}"), json!({}))
            .expect("add");
        issued.push((queued.ticket_id, format!("p{i}"), modes[i]));
    }
    for (id, player, mode) in issued {
        let found: Vec<&str> = index.modes_of(&id).collect();
        assert_eq!(found, vec![mode]);
        let q = queues
            .iter()
            .find(|q| q.mode() == mode)
            .expect("queue of the mode");
        assert_eq!(
            q.status(t0, &id, &player).expect("status").state,
            TicketState::Pending
        );
    }
}
