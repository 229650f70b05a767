//! A match's phase list (asobi's `guides/phases.md`): phases walked in order, each with an
//! optional duration and a start condition.
//!
//! The engine builds [`Phases`] from what the script's `phases(config)` returned, and drives
//! it: [`Phases::poll`] at [`Phases::next_deadline`] (durations and `timer` starts),
//! [`Phases::players`] when the roster grows, [`Phases::all_ready`] when the game says so. Each
//! returns the transitions to run (`on_phase_ended`, `on_phase_started`) in order; once the
//! last phase ends, [`Phases::is_complete`] and the match finishes with `phases_complete`.
//!
//! The phase clock runs only while the match runs: asobi advances durations and `timer` starts
//! from the running match's tick, so a match still waiting for `min_players` keeps its phase
//! where it is. The engine brackets that time with [`Phases::hold`] and [`Phases::release`];
//! a `players` start still fires while held (asobi counts joins in both states).
//!
//! asobi's per-phase `timers`, `end_condition` and the `players_ratio` / `event` starts are
//! Erlang-only (its Lua decoder reads `name`, `duration`, `start` and `config`), and asobi's
//! phase engine never evaluates `end_condition` at all; a Lua script here gets the same four
//! keys.

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Most phases one list may hold: the list is walked per transition, and a script that
/// generates thousands is a bug.
pub const MAX_PHASES: usize = 64;

/// Longest duration or start timer a phase may declare; longer ones are cut to this (a
/// script's `1e30` must not overflow the clock).
pub const MAX_PHASE_TIME: Duration = Duration::from_secs(30 * 24 * 3600);

fn millis(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_millis(ms.min(MAX_PHASE_TIME.as_millis() as f64) as u64)
}

/// When a phase starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// When the previous phase ends (the default).
    PrevEnded,
    /// When the roster reaches this many players.
    Players(u32),
    /// After waiting this long.
    Timer(Duration),
    /// When the game signals every player ready.
    AllReady,
}

/// One phase as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseDef {
    /// `name`.
    pub name: String,
    /// `duration`; `None` runs until the match ends.
    pub duration: Option<Duration>,
    /// `start`.
    pub start: Start,
    /// `config`, passed through.
    pub config: Value,
}

/// A phase transition, for the script's callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `on_phase_started(name, state)`.
    Started(String),
    /// `on_phase_ended(name, state)`.
    Ended(String),
}

fn start_of(v: Option<&Value>) -> Start {
    match v {
        Some(Value::String(s)) if s == "all_ready" => Start::AllReady,
        Some(Value::Number(n)) => Start::Timer(millis(n.as_f64().unwrap_or(0.0))),
        Some(Value::Object(m)) => {
            if let Some(n) = m.get("players").and_then(Value::as_f64) {
                Start::Players(n.max(0.0).min(u32::MAX as f64) as u32)
            } else if let Some(n) = m.get("timer").and_then(Value::as_f64) {
                Start::Timer(millis(n))
            } else {
                Start::PrevEnded
            }
        }
        _ => Start::PrevEnded,
    }
}

/// Reads the list `phases(config)` returned as asobi's Lua decoder does: entries without a
/// `name` are skipped; `duration` in milliseconds; `start` as `"prev_ended"`, `"all_ready"`,
/// `{players = N}`, `{timer = Ms}` or a bare number of milliseconds; anything else means
/// `prev_ended`. Returns `None` when it is not a list.
pub fn parse(v: &Value) -> Option<Vec<PhaseDef>> {
    let items = match v {
        Value::Array(a) => a,
        // An empty Lua table encodes as an empty object.
        Value::Object(o) if o.is_empty() => return Some(Vec::new()),
        _ => return None,
    };
    Some(
        items
            .iter()
            .take(MAX_PHASES)
            .filter_map(|p| {
                let name = p.get("name")?;
                let name = match name {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // asobi truncates a number and reads anything else as 0: `duration = "10000"`
                // starts and ends the phase at once.
                let duration = match p.get("duration") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_f64().map_or(Duration::ZERO, millis)),
                };
                Some(PhaseDef {
                    name,
                    duration,
                    start: start_of(p.get("start")),
                    config: p.get("config").cloned().unwrap_or_else(|| json!({})),
                })
            })
            .collect(),
    )
}

/// Where a match is in its phase list.
#[derive(Debug)]
pub struct Phases {
    defs: Vec<PhaseDef>,
    index: usize,
    /// When the current phase started; `None` while it waits for its condition.
    started_at: Option<Instant>,
    /// When the current phase began waiting.
    waiting_since: Instant,
    /// Since when the clock has been stopped (the match is not running yet).
    held_since: Option<Instant>,
    complete: bool,
}

impl Phases {
    /// Starts walking `defs` at `now`; the first phase starts at once unless it has a start
    /// condition. An empty list is complete from the start (asobi: and never finishes the
    /// match; see [`Phases::is_complete`]).
    pub fn new(now: Instant, defs: Vec<PhaseDef>) -> (Phases, Vec<Transition>) {
        let complete = defs.is_empty();
        let mut p = Phases {
            defs,
            index: 0,
            started_at: None,
            waiting_since: now,
            held_since: None,
            complete,
        };
        let mut out = Vec::new();
        if !complete && p.defs[0].start == Start::PrevEnded {
            p.begin(now, &mut out);
        }
        (p, out)
    }

    /// The phase clock's reading at `now`: stopped at the hold while held.
    fn clock(&self, now: Instant) -> Instant {
        self.held_since.unwrap_or(now)
    }

    /// Stops the phase clock at `now` (the match waits for players): no duration runs out and
    /// no `timer` start comes due until [`Phases::release`].
    pub fn hold(&mut self, now: Instant) {
        self.held_since.get_or_insert(now);
    }

    /// Restarts the clock at `now`; the held time is added to every running deadline.
    pub fn release(&mut self, now: Instant) {
        let Some(at) = self.held_since.take() else {
            return;
        };
        let held = now.saturating_duration_since(at);
        if let Some(s) = self.started_at.as_mut() {
            *s += held;
        }
        self.waiting_since += held;
    }

    /// Whether the clock is stopped.
    pub fn is_held(&self) -> bool {
        self.held_since.is_some()
    }

    fn begin(&mut self, now: Instant, out: &mut Vec<Transition>) {
        // A phase that starts during a hold starts at the stopped clock; the release moves it
        // on with everything else.
        self.started_at = Some(self.clock(now));
        out.push(Transition::Started(self.defs[self.index].name.clone()));
    }

    fn current(&self) -> Option<&PhaseDef> {
        (!self.complete).then(|| &self.defs[self.index])
    }

    /// Whether every phase has ended (a non-empty list walked to its end).
    pub fn is_complete(&self) -> bool {
        self.complete && !self.defs.is_empty()
    }

    /// The next time [`Phases::poll`] has something to do; none while held.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.is_held() {
            return None;
        }
        let def = self.current()?;
        match self.started_at {
            Some(at) => def.duration.map(|d| at + d),
            None => match def.start {
                Start::Timer(d) => Some(self.waiting_since + d),
                _ => None,
            },
        }
    }

    /// Durations that ran out and `timer` starts that came due by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Transition> {
        let mut out = Vec::new();
        // A chain of zero-length phases resolves in one poll: each phase takes at most two
        // steps (its start and its end), so twice the list bounds the loop.
        for _ in 0..=2 * self.defs.len() {
            let Some(at) = self.next_deadline().filter(|at| *at <= now) else {
                break;
            };
            if self.started_at.is_some() {
                self.advance(at, &mut out);
            } else {
                self.begin(at, &mut out);
            }
        }
        out
    }

    fn advance(&mut self, at: Instant, out: &mut Vec<Transition>) {
        out.push(Transition::Ended(self.defs[self.index].name.clone()));
        self.started_at = None;
        self.waiting_since = at;
        if self.index + 1 >= self.defs.len() {
            self.complete = true;
            return;
        }
        self.index += 1;
        if self.defs[self.index].start == Start::PrevEnded {
            self.begin(at, out);
        }
    }

    /// The roster now holds `count` players.
    pub fn players(&mut self, now: Instant, count: usize) -> Vec<Transition> {
        let mut out = Vec::new();
        if let Some(Start::Players(n)) = self
            .current()
            .filter(|_| self.started_at.is_none())
            .map(|d| &d.start)
        {
            if count >= *n as usize {
                self.begin(now, &mut out);
            }
        }
        out
    }

    /// The game signalled every player ready.
    pub fn all_ready(&mut self, now: Instant) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.started_at.is_none() && self.current().is_some_and(|d| d.start == Start::AllReady) {
            self.begin(now, &mut out);
        }
        out
    }

    /// The `phase` block of `match.joined` (asobi's `get_info`): `{status: "active", phase,
    /// remaining_ms, config, timers}`, `{status: "waiting", phase, start_condition}`, or
    /// `{status: "complete", phase: null}`. A phase with no duration has `remaining_ms:
    /// "infinity"`, as asobi's encoder writes its atom; `timers` is always empty (Lua cannot
    /// declare phase timers). Listings show less: see [`Phases::listing`].
    pub fn info(&self, now: Instant) -> Value {
        let now = self.clock(now);
        let Some(def) = self.current() else {
            return json!({ "status": "complete", "phase": null });
        };
        match self.started_at {
            Some(at) => {
                let remaining = match def.duration {
                    Some(d) => json!((at + d).saturating_duration_since(now).as_millis() as u64),
                    None => json!("infinity"),
                };
                json!({
                    "status": "active",
                    "phase": def.name,
                    "remaining_ms": remaining,
                    "config": def.config,
                    "timers": {},
                })
            }
            None => {
                let cond = match &def.start {
                    Start::PrevEnded => json!("prev_ended"),
                    Start::AllReady => json!("all_ready"),
                    Start::Players(n) => json!({ "type": "players", "value": n }),
                    Start::Timer(d) => json!({ "type": "timer", "value": d.as_millis() as u64 }),
                };
                json!({ "status": "waiting", "phase": def.name, "start_condition": cond })
            }
        }
    }

    /// The `phase` block on match listings (`GET /matches/live`, `match.list`): asobi's
    /// listing keeps `status`, `phase`, `remaining_ms` and `start_condition` only.
    pub fn listing(&self, now: Instant) -> Value {
        let mut v = self.info(now);
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "status" | "phase" | "remaining_ms" | "start_condition"
                )
            });
        }
        v
    }
}
