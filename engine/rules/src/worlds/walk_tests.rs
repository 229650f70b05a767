//! Seeded random walks over a model world: entities wander across zone borders, observers
//! follow some of them, and every client that follows the frame contract must show exactly
//! the entities of the zones it sees — no duplicate, no ghost, no gap — after every tick.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::*;

struct Zone {
    entities: Entities,
    stream: ZoneStream,
}

struct Model {
    grid: Grid,
    zones: BTreeMap<ZoneId, Zone>,
    /// entity id → owning zone.
    home: BTreeMap<String, ZoneId>,
    observers: Vec<(String, Interest, ClientView)>,
    tick: u64,
    interval: u64,
}

impl Model {
    fn new(size: u32, entities: usize, observers: usize, radius: u32, rng: &mut StdRng) -> Model {
        let grid = Grid::new(size, 100.0);
        let mut zones = BTreeMap::new();
        for y in 0..size {
            for x in 0..size {
                zones.insert(
                    ZoneId::new(x, y),
                    Zone {
                        entities: Entities::new(),
                        stream: ZoneStream::default(),
                    },
                );
            }
        }
        let mut m = Model {
            grid,
            zones,
            home: BTreeMap::new(),
            observers: Vec::new(),
            tick: 0,
            interval: 2,
        };
        let side = f64::from(size) * 100.0;
        for i in 0..entities {
            let (x, y) = (rng.random_range(0.0..side), rng.random_range(0.0..side));
            let id = format!("e{i}");
            let z = m.grid.zone_of(x, y);
            let mut f = Fields::new();
            f.insert("x".into(), json!(x));
            f.insert("y".into(), json!(y));
            m.zones.get_mut(&z).unwrap().entities.insert(id.clone(), f);
            m.home.insert(id, z);
        }
        for i in 0..observers {
            m.observers
                .push((format!("e{i}"), Interest::new(radius), ClientView::new()));
        }
        m
    }

    fn pos(&self, id: &str) -> (f64, f64) {
        let z = self.home[id];
        let f = &self.zones[&z].entities[id];
        (f["x"].as_f64().unwrap(), f["y"].as_f64().unwrap())
    }

    /// One simulation tick: every entity takes a step, crossings are resolved, observers'
    /// interest follows their entity, and on broadcast ticks every zone sends its delta.
    fn step(&mut self, rng: &mut StdRng) {
        self.tick += 1;
        let side = f64::from(self.grid.size()) * 100.0;
        let ids: Vec<String> = self.home.keys().cloned().collect();
        for id in &ids {
            let (x, y) = self.pos(id);
            let nx = (x + rng.random_range(-30.0..30.0)).clamp(0.0, side - 0.001);
            let ny = (y + rng.random_range(-30.0..30.0)).clamp(0.0, side - 0.001);
            let z = self.home[id];
            let e = self
                .zones
                .get_mut(&z)
                .unwrap()
                .entities
                .get_mut(id)
                .unwrap();
            e.insert("x".into(), json!(nx));
            e.insert("y".into(), json!(ny));
            if rng.random_bool(0.3) {
                e.insert("hp".into(), json!(rng.random_range(0..100)));
            }
        }
        // Crossings, after positions are final.
        for id in &ids {
            let (x, y) = self.pos(id);
            let z = self.home[id];
            if let Some(to) = self.grid.rehome(z, x, y, REHOME_MARGIN) {
                let f = self.zones.get_mut(&z).unwrap().entities.remove(id).unwrap();
                self.zones
                    .get_mut(&to)
                    .unwrap()
                    .entities
                    .insert(id.clone(), f);
                self.home.insert(id.clone(), to);
            }
        }
        // Interest follows the observed entity; entered zones get a keyframe, left zones the
        // leave frame.
        for k in 0..self.observers.len() {
            let center = self.home[&self.observers[k].0];
            let (_, interest, _) = &mut self.observers[k];
            let change = interest.move_to(&self.grid, Some(center));
            for z in change.left {
                let ops = self.zones[&z].stream.leave();
                if !ops.is_empty() {
                    self.observers[k].2.apply(z, None, false, &ops);
                }
            }
            for z in change.entered {
                let (seq, ops) = self.zones[&z].stream.keyframe();
                assert_eq!(
                    self.observers[k].2.apply(z, Some(seq), true, &ops),
                    Received::Applied
                );
            }
        }
        if self.tick.is_multiple_of(self.interval) {
            let coords: Vec<ZoneId> = self.zones.keys().copied().collect();
            for z in coords {
                let zone = self.zones.get_mut(&z).unwrap();
                if let Some((seq, ops)) = zone.stream.broadcast(&zone.entities) {
                    for (_, interest, view) in &mut self.observers {
                        if interest.sees(z) {
                            assert_eq!(view.apply(z, Some(seq), false, &ops), Received::Applied);
                        }
                    }
                }
            }
        }
    }

    /// What an observer should show: the broadcast baselines of the zones it sees.
    fn expected(&self, interest: &Interest) -> Entities {
        let mut out = Entities::new();
        for z in interest.zones(&self.grid) {
            for (id, f) in self.zones[&z].stream.baseline() {
                assert!(
                    out.insert(id.clone(), f.clone()).is_none(),
                    "{id} in two zones"
                );
            }
        }
        out
    }
}

fn run(seed: u64, size: u32, entities: usize, radius: u32, ticks: u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = Model::new(size, entities, 4, radius, &mut rng);
    let mut crossings_seen = 0usize;
    let mut last_home = m.home.clone();
    for _ in 0..ticks {
        m.step(&mut rng);
        crossings_seen += m
            .home
            .iter()
            .filter(|(id, z)| last_home.get(*id) != Some(z))
            .count();
        last_home.clone_from(&m.home);
        for (id, interest, view) in &m.observers {
            assert!(
                view.duplicates().is_empty(),
                "seed {seed}: duplicates {:?}",
                view.duplicates()
            );
            assert_eq!(
                view.visible(),
                m.expected(interest),
                "seed {seed}, observer {id}"
            );
            // The observer's own entity is always in view once broadcast.
            if m.tick >= m.interval {
                assert!(
                    m.expected(interest).contains_key(id)
                        || !m.zones[&m.home[id]].stream.baseline().contains_key(id),
                    "seed {seed}: {id} lost from its own view"
                );
            }
        }
    }
    assert!(
        crossings_seen > 0,
        "seed {seed}: the walk never crossed a border"
    );
}

#[test]
fn random_walks_never_duplicate_or_lose_entities() {
    for seed in 0..24 {
        run(seed, 6, 40, 1, 300);
    }
}

#[test]
fn random_walks_with_radius_zero_and_two() {
    for seed in 100..108 {
        run(seed, 5, 30, 0, 200);
        run(seed, 8, 30, 2, 200);
    }
}

/// A lost shared frame is noticed at the next one, and a keyframe repairs it.
#[test]
fn a_lost_frame_is_a_gap_and_a_keyframe_repairs_it() {
    let z = ZoneId::new(0, 0);
    let mut s = ZoneStream::default();
    let mut view = ClientView::new();
    let mut now = Entities::new();
    let (seq, ops) = s.keyframe();
    view.apply(z, Some(seq), true, &ops);
    let mut f = Fields::new();
    f.insert("x".into(), json!(1));
    now.insert("a".into(), f.clone());
    let lost = s.broadcast(&now).unwrap();
    assert_eq!(lost.0, 1);
    f.insert("x".into(), json!(2));
    now.insert("a".into(), f);
    let (seq, ops) = s.broadcast(&now).unwrap();
    assert_eq!(view.apply(z, Some(seq), false, &ops), Received::Gap);
    let (seq, ops) = s.keyframe();
    assert_eq!(view.apply(z, Some(seq), true, &ops), Received::Applied);
    assert_eq!(&view.visible(), s.baseline());
    // The lost frame arriving late is stale.
    assert_eq!(view.apply(z, Some(lost.0), false, &lost.1), Received::Stale);
}
