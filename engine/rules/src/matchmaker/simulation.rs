//! Simulation test: a seeded random walk of adds, removals, disconnects, ticks, match reports
//! and spawn failures against a model of the live tickets, checking invariants after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// Tiny deterministic generator (Knuth MMIX LCG) so the random walk replays per seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct ModelTicket {
    player: String,
    submitted: Instant,
    skill: f64,
}

/// How often the walk reached each outcome, so a test can insist it was exercised.
#[derive(Default)]
struct Coverage {
    formed: usize,
    expired: usize,
    queue_full: usize,
    not_owner: usize,
    requeued: usize,
    gave_up: usize,
}

/// Random adds, removals, disconnects, ticks, match reports and spawn failures against a
/// model of which tickets are live, checking the queue's answers and every formed group.
fn random_walk(seed: u64, strategy: Strategy, seen: &mut Coverage) {
    let mut rng = Lcg(seed);
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = QueueConfig {
        match_size: Some(2 + rng.below(3) as usize),
        strategy,
        max_wait: Duration::from_secs(20),
        max_queue: 12,
        status_retention: Duration::from_secs(10),
        max_retained: 40,
        ..QueueConfig::default()
    };
    let size = cfg.group_size();
    let mut q = ModeQueue::new("walk".into(), cfg.clone());
    let mut live: BTreeMap<String, ModelTicket> = BTreeMap::new();
    let mut formed_now: BTreeMap<String, ModelTicket> = BTreeMap::new();
    let mut recent_groups: Vec<Vec<String>> = Vec::new();
    let mut next_id = 0u64;

    for _ in 0..3_000 {
        match rng.below(100) {
            0..=39 => {
                let player = format!("p{}", rng.below(24));
                let properties = match rng.below(4) {
                    0 => json!({}),
                    1 => json!({ "skill": "n/a" }),
                    _ => json!({ "skill": 600 + rng.below(1200) }),
                };
                let skill = ticket_skill(&properties);
                next_id += 1;
                let ticket_id = format!("t{next_id}");
                let existing = live
                    .iter()
                    .find(|(_, t)| t.player == player)
                    .map(|(id, _)| id.clone());
                let result = q.add(now, ticket_id.clone(), player.clone(), properties);
                match (existing, result) {
                    (Some(id), Ok(queued)) => {
                        assert!(queued.already_queued);
                        assert_eq!(queued.ticket_id, id);
                    }
                    (None, Err(AddError::QueueFull { .. })) => {
                        assert!(live.len() >= cfg.max_queue);
                        seen.queue_full += 1;
                    }
                    (None, Ok(queued)) => {
                        assert!(!queued.already_queued && queued.ticket_id == ticket_id);
                        live.insert(
                            ticket_id,
                            ModelTicket {
                                player,
                                submitted: now,
                                skill,
                            },
                        );
                    }
                    (existing, result) => panic!("add: model {existing:?}, queue {result:?}"),
                }
            }
            40..=49 => {
                let ids: Vec<&String> = live.keys().collect();
                if ids.is_empty() {
                    continue;
                }
                let id = ids[rng.below(ids.len() as u64) as usize].clone();
                let owner = live[&id].player.clone();
                let requester = if rng.below(2) == 0 {
                    owner.clone()
                } else {
                    format!("p{}", rng.below(24))
                };
                let result = q.remove(now, &id, &requester);
                if requester == owner {
                    assert_eq!(result, Ok(()));
                    live.remove(&id);
                } else {
                    assert_eq!(result, Err(TicketAccessError::NotOwner));
                    seen.not_owner += 1;
                }
            }
            50..=54 => {
                let player = format!("p{}", rng.below(24));
                let expected = live
                    .iter()
                    .find(|(_, t)| t.player == player)
                    .map(|(id, _)| id.clone());
                assert_eq!(q.remove_player(now, &player), expected);
                if let Some(id) = expected {
                    live.remove(&id);
                }
            }
            55..=89 => {
                now += Duration::from_millis(rng.below(3_000));
                let events = q.tick(now);
                let mut seen_tickets = BTreeSet::new();
                let mut seen_players = BTreeSet::new();
                for event in &events {
                    match event {
                        QueueEvent::Expired(t) => {
                            let model = live.remove(&t.ticket_id).expect("expired a live ticket");
                            assert_eq!(model.player, t.player_id);
                            assert!(now - model.submitted > cfg.max_wait);
                            assert!(seen_tickets.insert(t.ticket_id.clone()));
                            seen.expired += 1;
                        }
                        QueueEvent::Formed(group) => {
                            assert_eq!(group.tickets.len(), size);
                            let mut members = Vec::new();
                            for t in &group.tickets {
                                assert!(
                                    seen_tickets.insert(t.ticket_id.clone()),
                                    "ticket in two outcomes"
                                );
                                assert!(
                                    seen_players.insert(t.player_id.clone()),
                                    "player in two groups"
                                );
                                let model =
                                    live.remove(&t.ticket_id).expect("formed a live ticket");
                                assert_eq!(model.player, t.player_id);
                                assert!(now - model.submitted <= cfg.max_wait);
                                members.push(model);
                            }
                            if strategy == Strategy::SkillBased {
                                assert!(members.windows(2).all(|w| w[0].skill <= w[1].skill));
                                let spread = members[size - 1].skill - members[0].skill;
                                assert!(spread <= cfg.skill_window(now - members[0].submitted));
                            }
                            for (t, m) in group.tickets.iter().zip(members) {
                                formed_now.insert(t.ticket_id.clone(), m);
                            }
                            recent_groups.push(group.ticket_ids());
                            seen.formed += 1;
                        }
                    }
                }
                for model in live.values() {
                    assert!(
                        now - model.submitted <= cfg.max_wait,
                        "overdue ticket survived a tick"
                    );
                }
                if strategy == Strategy::Fill {
                    assert!(live.len() < size, "fill leaves fewer than a group");
                }
            }
            _ => {
                let Some(group) = recent_groups.pop() else {
                    continue;
                };
                if rng.below(2) == 0 {
                    q.mark_matched(&group, "m");
                    for id in &group {
                        let owner = &formed_now[id].player;
                        if let Ok(status) = q.status(now, id, owner) {
                            assert_eq!(
                                status.state,
                                TicketState::Matched {
                                    match_id: Some("m".into())
                                }
                            );
                        }
                    }
                } else {
                    let retry = q.formation_failed(now, &group);
                    seen.gave_up += retry.gave_up.len();
                    seen.requeued += retry.requeued.len();
                    for id in retry.requeued {
                        let model = formed_now.remove(&id).expect("requeued a formed ticket");
                        assert!(live.values().all(|t| t.player != model.player));
                        live.insert(id, model);
                    }
                }
            }
        }
        assert_eq!(q.len(), live.len());
        assert!(q.len() <= cfg.max_queue + size);
        assert!(q.resolved.len() <= cfg.max_retained);
        let mut live_players = BTreeSet::new();
        for (id, model) in &live {
            assert!(
                live_players.insert(&model.player),
                "one live ticket per player"
            );
            let status = q
                .status(now, id, &model.player)
                .expect("live ticket visible");
            assert_eq!(status.state, TicketState::Pending);
        }
    }
}

#[test]
fn random_walk_fill_keeps_invariants() {
    let mut seen = Coverage::default();
    for seed in 1..=8 {
        random_walk(seed, Strategy::Fill, &mut seen);
    }
    assert_exercised(&seen);
}

fn assert_exercised(seen: &Coverage) {
    let counts = [
        ("formed", seen.formed),
        ("expired", seen.expired),
        ("queue_full", seen.queue_full),
        ("not_owner", seen.not_owner),
        ("requeued", seen.requeued),
        ("gave_up", seen.gave_up),
    ];
    for (what, n) in counts {
        assert!(n > 0, "the walk never reached {what}");
    }
}

#[test]
fn random_walk_skill_based_keeps_invariants() {
    let mut seen = Coverage::default();
    for seed in 101..=108 {
        random_walk(seed, Strategy::SkillBased, &mut seen);
    }
    assert_exercised(&seen);
}
