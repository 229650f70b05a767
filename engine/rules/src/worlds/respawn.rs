//! Respawn timers of spawn templates (asobi's `asobi_zone_spawner`): a zone remembers which
//! template and position each entity it spawned came from; when the script despawns one whose
//! template has a `respawn = {delay, jitter, max_respawns}` rule, the same entity (same id,
//! `base_state`, original position, no overrides) comes back `delay` plus a random `1 ..=
//! jitter` milliseconds later, unless the zone has already spawned `max_respawns` entities of
//! that template.
//!
//! That cap counts every spawn of the template in the zone, first spawns included, exactly as
//! asobi's spawner counts them: a template spawned once with `max_respawns = 3` comes back
//! twice. Kept for drop-in compatibility; a game that wants "three respawns per entity"
//! writes `max_respawns = 4`.
//!
//! Sans-IO: [`Spawner`] takes `now` and returns what is due; the jitter comes from a seeded
//! generator, so a test replays a zone exactly. One spawner per zone.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// Entities one zone tracks for respawning at most. A zone holds far fewer live entities
/// (the script bounds it at 20,000); past this a new spawn is simply not tracked, so a script
/// spawning in a loop cannot grow the table without bound.
pub const MAX_TRACKED: usize = 50_000;

/// A template's `respawn` rule (asobi's only strategy, `timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespawnRule {
    /// Time from the despawn to the respawn.
    pub delay: Duration,
    /// Upper bound of the random extra delay, in milliseconds (0: none).
    pub jitter_ms: u64,
    /// How many entities of the template the zone may spawn in all; `None`: no cap.
    pub max_respawns: Option<u64>,
}

/// A Lua number as asobi's `to_integer` reads it (truncated; anything else, or a negative
/// value, is 0).
fn ms(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .unwrap_or(0),
        _ => 0,
    }
}

impl RespawnRule {
    /// The rule of one `spawn_templates` entry: `None` when it has no `respawn` table (absent,
    /// `false`, or anything else, as asobi decodes it). A missing `max_respawns` or one that is
    /// not a number is no cap.
    pub fn of_template(template: &Value) -> Option<RespawnRule> {
        let Value::Object(r) = template.get("respawn")? else {
            return None;
        };
        let max_respawns = match r.get("max_respawns") {
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .or_else(|| n.as_f64().map(|f| if f > 0.0 { f as u64 } else { 0 }))
                    .unwrap_or(0),
            ),
            _ => None,
        };
        Some(RespawnRule {
            delay: Duration::from_millis(ms(r.get("delay"))),
            jitter_ms: ms(r.get("jitter")),
            max_respawns,
        })
    }
}

/// An entity waiting to come back.
#[derive(Debug, Clone, PartialEq)]
pub struct Respawn {
    /// The template it is built from.
    pub template: String,
    /// The id it had, and has again.
    pub entity_id: String,
    /// Where it was first spawned.
    pub x: f64,
    /// Where it was first spawned.
    pub y: f64,
    /// When it is due.
    pub at: Instant,
}

/// One zone's spawn bookkeeping and respawn queue.
///
/// Method kinds: [`spawned`](Self::spawned) and [`despawned`](Self::despawned) record what
/// the zone did; [`poll`](Self::poll) hands back the respawns due at `now`;
/// [`has_pending`](Self::has_pending) keeps the zone awake while something waits;
/// [`retain`](Self::retain) forgets entities the zone no longer holds;
/// [`to_json`](Self::to_json) / [`from_json`](Self::from_json) carry it through a snapshot in
/// asobi's `spawner_state` shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Spawner {
    /// Spawns per template in this zone (asobi's `spawn_counts`).
    counts: BTreeMap<String, u64>,
    /// Template and first position of each tracked entity.
    tracked: HashMap<String, (String, f64, f64)>,
    /// Respawns waiting, in the order they were scheduled.
    queue: Vec<Respawn>,
    /// The jitter generator's state (splitmix64).
    rng: u64,
    /// Whether [`seed_once`](Self::seed_once) (or a constructor with a seed) set `rng`.
    seeded: bool,
}

impl Spawner {
    /// An empty spawner whose jitter comes from `seed`.
    pub fn new(seed: u64) -> Spawner {
        Spawner {
            counts: BTreeMap::new(),
            tracked: HashMap::new(),
            queue: Vec::new(),
            rng: seed,
            seeded: true,
        }
    }

    /// A spawner whose generator is seeded later, by [`seed_once`](Self::seed_once) (a zone
    /// is created before the runtime knows what to seed it with).
    pub fn unseeded() -> Spawner {
        Spawner {
            seeded: false,
            ..Spawner::new(0)
        }
    }

    /// Seeds the jitter generator unless it already is.
    pub fn seed_once(&mut self, seed: u64) {
        if !self.seeded {
            self.rng = seed;
            self.seeded = true;
        }
    }

    /// Whether a respawn is waiting (the zone is not idle while one is).
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether nothing is tracked and nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.tracked.is_empty() && self.counts.is_empty()
    }

    /// When the earliest respawn is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.iter().map(|r| r.at).min()
    }

    /// How many entities the zone tracks.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// How many entities of `template` this zone has spawned.
    pub fn count(&self, template: &str) -> u64 {
        self.counts.get(template).copied().unwrap_or(0)
    }

    /// The zone spawned `entity_id` from `template` at `(x, y)` (or respawned it).
    pub fn spawned(&mut self, template: &str, entity_id: &str, x: f64, y: f64) {
        *self.counts.entry(template.to_owned()).or_insert(0) += 1;
        if self.tracked.len() < MAX_TRACKED || self.tracked.contains_key(entity_id) {
            self.tracked
                .insert(entity_id.to_owned(), (template.to_owned(), x, y));
        }
    }

    /// The script despawned `entity_id` at `now`: it is queued to come back when its template
    /// (`rule_of(template)`) has a respawn rule and the template's cap is not reached;
    /// otherwise it is forgotten. Returns when it comes back, if it does.
    pub fn despawned(
        &mut self,
        entity_id: &str,
        now: Instant,
        rule_of: impl FnOnce(&str) -> Option<RespawnRule>,
    ) -> Option<Instant> {
        let (template, x, y) = self.tracked.remove(entity_id)?;
        let rule = rule_of(&template)?;
        if rule
            .max_respawns
            .is_some_and(|cap| self.count(&template) >= cap)
        {
            return None;
        }
        // asobi's `rand:uniform(J)`: 1 ..= J.
        let jitter = match rule.jitter_ms {
            0 => 0,
            j => 1 + self.next_random() % j,
        };
        let at = now + rule.delay + Duration::from_millis(jitter);
        self.queue.push(Respawn {
            template,
            entity_id: entity_id.to_owned(),
            x,
            y,
            at,
        });
        Some(at)
    }

    /// The respawns due at `now`, in the order they were scheduled; each is tracked again
    /// once the caller reports it [`spawned`](Self::spawned).
    pub fn poll(&mut self, now: Instant) -> Vec<Respawn> {
        if self.queue.iter().all(|r| r.at > now) {
            return Vec::new();
        }
        let (due, waiting) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|r| r.at <= now);
        self.queue = waiting;
        due
    }

    /// Forgets tracked entities for which `holds` is false (they crossed into another zone
    /// or the script dropped them without `game.zone.despawn`): a zone respawns only what it
    /// still owned when it was despawned.
    pub fn retain(&mut self, mut holds: impl FnMut(&str) -> bool) {
        if !self.tracked.is_empty() {
            self.tracked.retain(|id, _| holds(id));
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// asobi's `spawner_state`: `respawn_queue` (each with `respawn_at` in unix
    /// milliseconds, `now` being `now_ms`), `spawn_counts`, `entity_templates`,
    /// `entity_positions`.
    pub fn to_json(&self, now: Instant, now_ms: i64) -> Value {
        let queue: Vec<Value> = self
            .queue
            .iter()
            .map(|r| {
                let left = i64::try_from(r.at.saturating_duration_since(now).as_millis())
                    .unwrap_or(i64::MAX);
                json!({
                    "template_id": r.template,
                    "entity_id": r.entity_id,
                    "position": { "x": r.x, "y": r.y },
                    "overrides": {},
                    "respawn_at": now_ms.saturating_add(left),
                })
            })
            .collect();
        let mut templates = Map::new();
        let mut positions = Map::new();
        for (id, (t, x, y)) in &self.tracked {
            templates.insert(id.clone(), json!(t));
            positions.insert(id.clone(), json!({ "x": x, "y": y }));
        }
        json!({
            "respawn_queue": queue,
            "spawn_counts": self.counts,
            "entity_templates": templates,
            "entity_positions": positions,
        })
    }

    /// A spawner from asobi's `spawner_state` (see [`to_json`](Self::to_json)); malformed
    /// parts are skipped. A respawn whose time passed while the world was down is due at once.
    pub fn from_json(v: &Value, now: Instant, now_ms: i64, seed: u64) -> Spawner {
        let mut s = Spawner::new(seed);
        let num = |v: Option<&Value>| v.and_then(Value::as_f64).filter(|f| f.is_finite());
        if let Some(Value::Object(c)) = v.get("spawn_counts") {
            for (t, n) in c {
                if let Some(n) = n.as_u64() {
                    s.counts.insert(t.clone(), n);
                }
            }
        }
        if let (Some(Value::Object(t)), Some(Value::Object(p))) =
            (v.get("entity_templates"), v.get("entity_positions"))
        {
            for (id, template) in t.iter().take(MAX_TRACKED) {
                let (Some(template), Some(pos)) = (template.as_str(), p.get(id)) else {
                    continue;
                };
                if let (Some(x), Some(y)) = (num(pos.get("x")), num(pos.get("y"))) {
                    s.tracked.insert(id.clone(), (template.to_owned(), x, y));
                }
            }
        }
        if let Some(Value::Array(q)) = v.get("respawn_queue") {
            for r in q.iter().take(MAX_TRACKED) {
                let (Some(template), Some(id)) = (
                    r.get("template_id").and_then(Value::as_str),
                    r.get("entity_id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let pos = r.get("position");
                let (Some(x), Some(y)) = (
                    num(pos.and_then(|p| p.get("x"))),
                    num(pos.and_then(|p| p.get("y"))),
                ) else {
                    continue;
                };
                let at_ms = r
                    .get("respawn_at")
                    .and_then(Value::as_i64)
                    .unwrap_or(now_ms);
                let left = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
                s.queue.push(Respawn {
                    template: template.to_owned(),
                    entity_id: id.to_owned(),
                    x,
                    y,
                    at: now + Duration::from_millis(left),
                });
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(delay: u64, jitter_ms: u64, max: Option<u64>) -> Option<RespawnRule> {
        Some(RespawnRule {
            delay: Duration::from_millis(delay),
            jitter_ms,
            max_respawns: max,
        })
    }

    #[test]
    fn rules_are_read_as_asobi_decodes_them() {
        let t = json!({ "respawn": { "delay": 5000, "jitter": 1000.7, "max_respawns": 3 } });
        assert_eq!(RespawnRule::of_template(&t), rule(5000, 1000, Some(3)));
        let t = json!({ "respawn": { "delay": "soon", "max_respawns": "many" } });
        assert_eq!(RespawnRule::of_template(&t), rule(0, 0, None));
        assert_eq!(RespawnRule::of_template(&json!({ "respawn": false })), None);
        assert_eq!(RespawnRule::of_template(&json!({ "type": "npc" })), None);
    }

    #[test]
    fn a_despawned_entity_is_due_after_its_delay_and_not_before() {
        let t0 = Instant::now();
        let mut s = Spawner::new(7);
        s.spawned("goblin", "g1", 10.0, 20.0);
        let at = s.despawned("g1", t0, |_| rule(5000, 0, None));
        assert_eq!(at, Some(t0 + Duration::from_millis(5000)));
        assert!(s.has_pending());
        assert!(s.poll(t0 + Duration::from_millis(4999)).is_empty());
        let due = s.poll(t0 + Duration::from_millis(5000));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].entity_id.as_str(), due[0].x, due[0].y),
            ("g1", 10.0, 20.0)
        );
        assert!(!s.has_pending());
    }

    #[test]
    fn jitter_stays_within_one_to_jitter_milliseconds_and_replays_by_seed() {
        let t0 = Instant::now();
        let delays = |seed| {
            let mut s = Spawner::new(seed);
            (0..200)
                .map(|i| {
                    let id = format!("e{i}");
                    s.spawned("t", &id, 0.0, 0.0);
                    let at = s.despawned(&id, t0, |_| rule(100, 50, None)).unwrap();
                    at.duration_since(t0).as_millis() as u64
                })
                .collect::<Vec<u64>>()
        };
        let a = delays(1);
        assert!(a.iter().all(|d| (101..=150).contains(d)), "{a:?}");
        assert!(a.iter().any(|d| *d < 110) && a.iter().any(|d| *d > 140));
        assert_eq!(a, delays(1));
        assert_ne!(a, delays(2));
    }

    #[test]
    fn the_cap_counts_every_spawn_of_the_template_in_the_zone() {
        let t0 = Instant::now();
        let mut s = Spawner::new(0);
        s.spawned("goblin", "g", 0.0, 0.0);
        let mut back = 0;
        let mut now = t0;
        while s.despawned("g", now, |_| rule(10, 0, Some(3))).is_some() {
            now += Duration::from_millis(10);
            for r in s.poll(now) {
                s.spawned(&r.template, &r.entity_id, r.x, r.y);
                back += 1;
            }
        }
        // Spawned once, back twice: three spawns of "goblin" in all.
        assert_eq!((back, s.count("goblin")), (2, 3));
        // Not tracked any more: a later despawn schedules nothing.
        assert_eq!(s.despawned("g", now, |_| rule(10, 0, None)), None);
    }

    #[test]
    fn untracked_or_ruleless_entities_are_not_respawned() {
        let t0 = Instant::now();
        let mut s = Spawner::new(0);
        assert_eq!(s.despawned("stranger", t0, |_| rule(1, 0, None)), None);
        s.spawned("chest", "c", 0.0, 0.0);
        assert_eq!(s.despawned("c", t0, |_| None), None);
        s.spawned("goblin", "g", 0.0, 0.0);
        s.retain(|id| id != "g");
        assert_eq!(s.despawned("g", t0, |_| rule(1, 0, None)), None);
        assert!(!s.has_pending());
    }

    #[test]
    fn the_state_survives_asobis_snapshot_shape() {
        let t0 = Instant::now();
        let mut s = Spawner::new(3);
        s.spawned("goblin", "a", 1.0, 2.0);
        s.spawned("goblin", "b", 3.0, 4.0);
        s.despawned("a", t0, |_| rule(4000, 0, None));
        let v = s.to_json(t0 + Duration::from_millis(1000), 1_000_000);
        assert_eq!(v["respawn_queue"][0]["respawn_at"], json!(1_003_000));
        assert_eq!(v["spawn_counts"], json!({ "goblin": 2 }));
        assert_eq!(v["entity_templates"], json!({ "b": "goblin" }));
        // Restored on another monotonic clock at the same wall time: 3 s left.
        let t1 = Instant::now() + Duration::from_secs(100);
        let mut r = Spawner::from_json(&v, t1, 1_000_000, 3);
        assert!(r.poll(t1 + Duration::from_millis(2999)).is_empty());
        assert_eq!(r.count("goblin"), 2);
        let due = r.poll(t1 + Duration::from_millis(3000));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].x, due[0].y), (1.0, 2.0));
        assert!(r.despawned("b", t1, |_| rule(0, 0, None)).is_some());
        // Restored long after it was due: due at once.
        let mut late = Spawner::from_json(&v, t1, 5_000_000, 3);
        assert_eq!(late.poll(t1).len(), 1);
        assert!(Spawner::from_json(&json!({}), t1, 0, 0).is_empty());
    }
}
