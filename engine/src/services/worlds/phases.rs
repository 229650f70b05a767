//! World phases (asobi's `phases(config)` for worlds, `guides/phases.md`): the same phase list
//! and clock as matches (`asobi_rules::phases`), walked at the end of every world tick, after
//! `post_tick`. Each transition runs `on_phase_ended` / `on_phase_started`; every player is
//! sent `world.phase_changed` (the phase info block plus `world_id`) when the phase changes, and
//! the info block again every [`PHASE_RESEND`]; a list walked to its end finishes the world with
//! `{status: "phases_complete"}`. A `players` start counts the world's players as they join.
//! In a world split over several shards the phases run on the host, with the world-level
//! callbacks.
//!
//! Where this differs from asobi, and why: asobi re-sends the info block on every tick of each
//! wall-clock second divisible by three (a burst of about twenty identical frames, documented
//! in its phases guide); here it goes once every three seconds. A phase change that a join
//! caused reaches clients at the next tick (asobi compares only across its phase clock's own
//! tick, so such a change is never announced).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use asobi_rules::phases::{Phases, Transition};
use asobi_schema::envelope::encode_frame;

use super::script::Effects;
use super::LiveWorld;
use crate::services::Shard;

/// How often every player is sent the current phase info again (asobi's three seconds).
pub(super) const PHASE_RESEND: Duration = Duration::from_secs(3);

/// A world's phase list and what its players were last told.
pub(super) struct WorldPhases {
    phases: Phases,
    /// `(status, phase)` of the last `world.phase_changed` transition frame.
    announced: (Value, Value),
    /// When the info block was last sent to everyone.
    sent_at: Instant,
    /// The last tick's time: what listings compute `remaining_ms` against.
    seen_at: Instant,
}

fn key(info: &Value) -> (Value, Value) {
    (info["status"].clone(), info["phase"].clone())
}

impl LiveWorld {
    /// Reads the script's optional `phases(config)` (after `init`) and starts walking the
    /// list: a first phase without a start condition starts now.
    pub(super) fn start_phases(&mut self, shard: &Shard, config: &Value, now: Instant) {
        if !self.vm.defines("phases") {
            return;
        }
        let mut fx = Effects::default();
        let declared = self.vm.phases(config, &mut fx);
        self.apply(shard, fx);
        let defs = match declared {
            Ok(Some(v)) => match asobi_rules::phases::parse(&v) {
                Some(defs) if !defs.is_empty() => defs,
                Some(_) => return,
                None => {
                    tracing::warn!(world_id = %self.id, "phases() returned no list; ignored");
                    return;
                }
            },
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(world_id = %self.id, "phases() failed: {e}");
                return;
            }
        };
        let (phases, first) = Phases::new(now, defs);
        let announced = key(&phases.info(now));
        self.phases = Some(Box::new(WorldPhases {
            phases,
            announced,
            sent_at: now,
            seen_at: now,
        }));
        self.run_transitions(shard, first);
    }

    /// A player joined: a phase waiting for this many players starts.
    pub(super) fn phases_joined(&mut self, shard: &Shard, now: Instant) {
        let count = self.population();
        let Some(p) = self.phases.as_mut() else {
            return;
        };
        p.seen_at = now;
        let due = p.phases.players(now, count);
        self.run_transitions(shard, due);
    }

    /// The end of a tick: durations and timed starts that came due, `world.phase_changed`
    /// when the phase changed (and the periodic info block), and the world's result once the
    /// list is walked to its end.
    pub(super) fn tick_phases(&mut self, shard: &Shard, now: Instant) -> Option<Value> {
        let p = self.phases.as_mut()?;
        let due = if p.phases.next_deadline().is_some_and(|at| at <= now) {
            p.phases.poll(now)
        } else {
            Vec::new()
        };
        self.run_transitions(shard, due);
        let p = self.phases.as_mut()?;
        p.seen_at = now;
        let info = p.phases.info(now);
        if key(&info) != p.announced {
            p.announced = key(&info);
            p.sent_at = now;
            let mut payload = info;
            if let Some(m) = payload.as_object_mut() {
                m.insert("world_id".into(), json!(self.id));
            }
            self.send_all(shard, &payload);
            self.publish(shard);
        } else if now.saturating_duration_since(p.sent_at) >= PHASE_RESEND {
            // asobi's periodic frame is the bare info block.
            p.sent_at = now;
            self.send_all(shard, &info);
            self.publish(shard);
        }
        let complete = self.phases.as_ref()?.phases.is_complete();
        complete.then(|| json!({ "status": "phases_complete" }))
    }

    /// The phase block of listings and `world.joined` (asobi's `listing_info`: the game's
    /// phase `config` and timers stay inside the world).
    pub(super) fn phase_listing(&self) -> Option<Value> {
        let p = self.phases.as_ref()?;
        let info = p.phases.info(p.seen_at);
        let mut out = serde_json::Map::new();
        for k in ["status", "phase", "remaining_ms", "start_condition"] {
            if let Some(v) = info.get(k) {
                out.insert(k.to_owned(), v.clone());
            }
        }
        Some(Value::Object(out))
    }

    fn run_transitions(&mut self, shard: &Shard, due: Vec<Transition>) {
        for t in due {
            let mut fx = Effects::default();
            let r = match &t {
                Transition::Started(name) => self.vm.on_phase_started(name, &mut fx),
                Transition::Ended(name) => self.vm.on_phase_ended(name, &mut fx),
            };
            self.apply(shard, fx);
            if let Err(e) = r {
                tracing::warn!(world_id = %self.id, transition = ?t, "phase callback failed: {e}");
            }
        }
    }

    /// `world.phase_changed` with `payload` to every connected player (on every part of a
    /// split world, as a broadcast from the script goes).
    fn send_all(&self, shard: &Shard, payload: &Value) {
        let frame = encode_frame("world.phase_changed", None, payload);
        self.apply(
            shard,
            Effects {
                frames: vec![(None, frame)],
            },
        );
    }
}
