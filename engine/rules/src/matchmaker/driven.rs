//! A seeded random walk over several modes, driven the way a runtime drives queues: inputs at
//! arbitrary times, ticks only when a queue's `next_deadline()` comes due, ticket ids from
//! [`ModeQueue::new_ticket_id`] resolved back through [`ModeIndex`]. Checked after every step:
//! no ticket is lost (each accepted ticket is pending or got exactly one outcome), no player is
//! ever in two matches, tickets expire on time, and held properties stay within their bounds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::*;

const MODES: [&str; 3] = ["arena", "duel", "squad"];
const PLAYERS: u64 = 30;
const MAX_PROPS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
enum Player {
    Free,
    /// In a formed group (spawning or playing), by group number.
    InMatch(usize),
}

struct Walk {
    rng: StdRng,
    now: Instant,
    queues: Vec<ModeQueue>,
    index: ModeIndex,
    players: BTreeMap<String, Player>,
    /// Pending tickets: id → (queue index, player).
    open: BTreeMap<String, (usize, String)>,
    /// Groups formed and not yet over: number → (queue index, ticket ids, players).
    groups: BTreeMap<usize, (usize, Vec<String>, Vec<String>)>,
    next_group: usize,
    outcomes: usize,
    /// When a failed spawn put a ticket back (it keeps its submission time, so it may already
    /// be overdue and expires on the queue's next tick).
    requeued_at: BTreeMap<String, Instant>,
}

impl Walk {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let queues = MODES
            .iter()
            .map(|m| {
                let cfg = QueueConfig {
                    match_size: Some(rng.random_range(1..=4)),
                    strategy: if rng.random_bool(0.5) {
                        Strategy::Fill
                    } else {
                        Strategy::SkillBased
                    },
                    max_wait: Duration::from_secs(15),
                    max_queue: 12,
                    status_retention: Duration::from_secs(10),
                    max_retained: 25,
                    max_properties_bytes: MAX_PROPS,
                    ..QueueConfig::default()
                };
                ModeQueue::new((*m).into(), cfg)
            })
            .collect();
        Self {
            rng,
            now: Instant::now(),
            queues,
            index: ModeIndex::new(MODES),
            players: (0..PLAYERS)
                .map(|i| (format!("p{i}"), Player::Free))
                .collect(),
            open: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_group: 0,
            outcomes: 0,
            requeued_at: BTreeMap::new(),
        }
    }

    /// Advances the clock to `until`, ticking each queue whenever its deadline comes due.
    fn advance(&mut self, until: Instant) {
        loop {
            let due = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.next_deadline().map(|d| (d, i)))
                .filter(|(d, _)| *d <= until)
                .min();
            let Some((at, qi)) = due else { break };
            self.now = self.now.max(at);
            let events = self.queues[qi].tick(self.now);
            for event in events {
                self.on_event(qi, event);
            }
        }
        self.now = until;
    }

    fn close(&mut self, id: &str, qi: usize) -> String {
        let (q, player) = self.open.remove(id).expect("outcome for a pending ticket");
        assert_eq!(q, qi, "outcome from the wrong queue");
        self.outcomes += 1;
        player
    }

    fn on_event(&mut self, qi: usize, event: QueueEvent) {
        match event {
            QueueEvent::Expired(t) => {
                let player = self.close(&t.ticket_id, qi);
                assert_eq!(player, t.player_id);
            }
            QueueEvent::Formed(group) => {
                assert_eq!(group.mode, MODES[qi]);
                let n = self.next_group;
                self.next_group += 1;
                for t in &group.tickets {
                    let player = self.close(&t.ticket_id, qi);
                    assert_eq!(player, t.player_id);
                    let state = self.players.get_mut(&player).expect("known player");
                    assert_eq!(*state, Player::Free, "{player} matched twice");
                    *state = Player::InMatch(n);
                    // The runtime's part: a matched player leaves every other mode's queue.
                    for (other, q) in self.queues.iter_mut().enumerate() {
                        if other != qi {
                            if let Some(id) = q.remove_player(self.now, &player) {
                                let (oq, _) = self.open.remove(&id).expect("pending elsewhere");
                                assert_eq!(oq, other);
                                self.outcomes += 1;
                            }
                        }
                    }
                }
                self.groups
                    .insert(n, (qi, group.ticket_ids(), group.player_ids()));
            }
        }
    }

    fn step(&mut self) {
        let until = self.now + Duration::from_millis(self.rng.random_range(0..1_500));
        self.advance(until);
        let player = format!("p{}", self.rng.random_range(0..PLAYERS));
        match self.rng.random_range(0..100) {
            0..=44 => self.add(player),
            45..=59 => self.remove_some(&player),
            60..=79 => self.end_some_group(),
            _ => {}
        }
    }

    fn add(&mut self, player: String) {
        if self.players[&player] != Player::Free {
            return; // the runtime refuses to queue a player who is in a match
        }
        let qi = self.rng.random_range(0..MODES.len());
        let pad = self.rng.random_range(0..MAX_PROPS + 64);
        let properties =
            json!({ "skill": self.rng.random_range(800..1400), "pad": "x".repeat(pad) });
        let fits = serde_json::to_string(&properties).expect("json").len() <= MAX_PROPS;
        let unix_ms = 1_764_000_000_000 + self.outcomes as u64;
        let id = self.queues[qi].new_ticket_id(unix_ms, self.rng.random());
        let existing = self
            .open
            .iter()
            .find(|(_, (q, p))| *q == qi && *p == player)
            .map(|(id, _)| id.clone());
        match self.queues[qi].add(self.now, id.clone(), player.clone(), properties) {
            Ok(queued) if queued.already_queued => {
                assert_eq!(Some(queued.ticket_id), existing);
            }
            Ok(queued) => {
                assert!(existing.is_none() && fits);
                assert_eq!(queued.ticket_id, id);
                self.open.insert(id, (qi, player));
            }
            Err(AddError::PropertiesTooLarge { .. }) => assert!(!fits),
            Err(AddError::QueueFull { .. }) => {
                assert!(self.open.values().filter(|(q, _)| *q == qi).count() >= 12);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    fn remove_some(&mut self, player: &str) {
        let mine: Vec<String> = self
            .open
            .iter()
            .filter(|(_, (_, p))| p == player)
            .map(|(id, _)| id.clone())
            .collect();
        let Some(id) = mine.first() else { return };
        // Routed by the id alone, as a REST `DELETE /matchmaker/:id` would be.
        let mode = self.index.modes_of(id).next().expect("id names its mode");
        let qi = MODES.iter().position(|m| *m == mode).expect("known mode");
        assert_eq!(self.queues[qi].remove(self.now, id, player), Ok(()));
        self.close(id, qi);
    }

    fn end_some_group(&mut self) {
        let Some(&n) = self.groups.keys().next() else {
            return;
        };
        let (qi, tickets, players) = self.groups.remove(&n).expect("group");
        let free = |walk: &mut Self, p: &String| {
            let state = walk.players.get_mut(p).expect("player");
            assert_eq!(*state, Player::InMatch(n));
            *state = Player::Free;
        };
        if self.rng.random_bool(0.7) {
            // Spawned, played, finished.
            self.queues[qi].mark_matched(&tickets, &format!("m{n}"));
            for p in &players {
                free(self, p);
            }
        } else {
            let retry = self.queues[qi].formation_failed(self.now, &tickets);
            for p in &players {
                free(self, p);
            }
            for id in retry.requeued {
                let p = players[tickets.iter().position(|t| *t == id).expect("member")].clone();
                self.requeued_at.insert(id.clone(), self.now);
                self.open.insert(id, (qi, p));
            }
        }
    }

    fn check(&self) {
        for (qi, q) in self.queues.iter().enumerate() {
            let mine: Vec<(&String, &String)> = self
                .open
                .iter()
                .filter(|(_, (oq, _))| *oq == qi)
                .map(|(id, (_, p))| (id, p))
                .collect();
            assert_eq!(q.len(), mine.len(), "queue and model disagree: lost ticket");
            assert!(q.retained() <= 25);
            assert!(q.properties_bytes() <= (q.len() + q.retained()) * MAX_PROPS);
            for (id, player) in mine {
                assert_eq!(self.index.modes_of(id).collect::<Vec<_>>(), vec![MODES[qi]]);
                let status = q.status(self.now, id, player).expect("pending visible");
                assert_eq!(status.state, TicketState::Pending);
                // Deadline-driven ticks still expire within one interval of max_wait (or of
                // the requeue, for a ticket that came back overdue).
                let submitted = self.now - status.age;
                let mut due = submitted + Duration::from_secs(15);
                if let Some(back) = self.requeued_at.get(id) {
                    due = due.max(*back);
                }
                assert!(
                    self.now <= due + DEFAULT_TICK_INTERVAL,
                    "overdue ticket kept"
                );
            }
        }
        for (player, state) in &self.players {
            if let Player::InMatch(n) = state {
                assert!(
                    self.groups[n].2.contains(player),
                    "{player} not in its group"
                );
            }
        }
    }
}

#[test]
fn deadline_driven_walk_loses_no_ticket_and_double_books_no_player() {
    let mut outcomes = 0;
    for seed in 0..12 {
        let mut walk = Walk::new(seed);
        for _ in 0..2_000 {
            walk.step();
            walk.check();
        }
        // Left alone, every queue drains and then needs no timer at all.
        while walk.end_some_group_all() {}
        let far = walk.now + Duration::from_secs(600);
        walk.advance(far);
        while walk.end_some_group_all() {}
        walk.advance(far + Duration::from_secs(600));
        walk.check();
        assert!(walk.open.is_empty(), "seed {seed}: tickets left pending");
        for q in &walk.queues {
            assert_eq!(
                q.next_deadline(),
                None,
                "seed {seed}: idle queue kept a timer"
            );
            assert_eq!(q.retained(), 0);
        }
        outcomes += walk.outcomes;
    }
    assert!(
        outcomes > 1_000,
        "the walk resolved too few tickets: {outcomes}"
    );
}

impl Walk {
    /// Ends one group if any; false when none is left.
    fn end_some_group_all(&mut self) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        self.end_some_group();
        true
    }
}

#[test]
fn walk_replays_per_seed() {
    let run = |seed| {
        let mut walk = Walk::new(seed);
        for _ in 0..500 {
            walk.step();
        }
        (
            walk.outcomes,
            walk.open.keys().cloned().collect::<BTreeSet<_>>(),
        )
    };
    assert_eq!(run(5), run(5));
}
