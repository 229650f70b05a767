//! One world's VM: the callbacks asobi's world server calls (`world-server.md`), run in one
//! sandbox for the whole world, each zone's entities and zone state handed in and taken back
//! per call.
//!
//! Method kinds, all called from the shard thread that owns the world:
//!
//! * world callbacks: [`WorldVm::init`] once, [`WorldVm::join`] / [`WorldVm::leave`],
//!   [`WorldVm::spawn_position`] per joining player, [`WorldVm::post_tick`] after each tick;
//!   optional setup ones: [`WorldVm::generate_world`], [`WorldVm::spawn_templates`],
//!   [`WorldVm::zone_loaded`], [`WorldVm::zone_unloaded`]; phases: [`WorldVm::phases`],
//!   [`WorldVm::on_phase_started`], [`WorldVm::on_phase_ended`];
//! * [`WorldVm::zone_tick_with`] (and [`WorldVm::zone_tick`]): one zone's tick —
//!   `zone_tick(entities, zone_state)`, the zone's queued inputs through
//!   `handle_input(player_id, input, entities)` in arrival order, then the effects neighbours
//!   addressed to it through `handle_effects(effects, entities)`, all on the same entities
//!   table (asobi's order); `game.zone.*`, the zone forms of `game.spatial.*` and, with a
//!   border band, `game.spatial.neighbours_*` work inside it;
//! * queries: [`WorldVm::finished`], [`WorldVm::failed`]; [`WorldVm::reload`] for hot reload.
//!
//! No world callback suspends: a `game.*` service call inside one answers `{error = ...}` at
//! once (a world ticks every zone in one pass, and holding the pass for a database reply
//! would stall every zone). The state lives in the VM; a callback returning nothing keeps the
//! previous state, as for matches.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};
use serde_json::{json, Map};

use crate::api::Host;
use crate::budget::SETUP_FACTOR;
use crate::error::CallError;
use crate::game::CompiledMode;
use crate::json;
use crate::sandbox::Sandbox;
use crate::vm::JoinOutcome;

/// A zone's entities by id: the fields of each (`x`, `y`, `type`, ...).
pub type ZoneEntities = BTreeMap<String, Map<String, serde_json::Value>>;

/// Consecutive failures of one callback after which the world is stopped (asobi keeps a
/// world running through script errors, but one failing every tick for this long is dead).
const MAX_CONSECUTIVE_FAILURES: u32 = 100;

/// Minimum time between two "callback failed" log lines of one world.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Longest join refusal reason passed on (asobi's bound, as for matches).
const MAX_REFUSAL_REASON: usize = 64;

/// Entities one zone may hold; past it the zone's tick result is refused (the memory budget
/// bounds the VM, this bounds the engine's copy and every keyframe built from it).
pub const MAX_ZONE_ENTITIES: usize = 20_000;

/// Coordinates one `game.terrain.preload` call may name (generation is work done for the
/// script; one call cannot ask for an unbounded amount of it).
const MAX_TERRAIN_PRELOAD: usize = 64;

/// The world's terrain as `game.terrain.*` reads it; the engine implements it over its chunk
/// cache. Called from inside a callback, so an implementation must not call back into the VM.
pub trait TerrainAccess {
    /// `game.terrain.get_chunk(cx, cy)`: the chunk's bytes (`{ ok = data }`) or the reason
    /// there is none (`{ error = reason }`).
    fn get_chunk(&mut self, cx: i32, cy: i32) -> Result<Vec<u8>, String>;
    /// `game.terrain.preload(coords_list)`: chunks to make soon (asynchronously, as asobi).
    fn preload(&mut self, coords: Vec<(i32, i32)>);
}

/// A Lua number as a chunk coordinate (truncated, as asobi does).
fn chunk_coord(v: &Value) -> Option<i32> {
    match v {
        Value::Integer(i) => i32::try_from(*i).ok(),
        Value::Number(n) if n.is_finite() && n.abs() < 2.0e9 => Some(n.trunc() as i32),
        _ => None,
    }
}

/// What a Lua terrain provider made: its return value as JSON, and the bytes when it returned
/// a string.
pub type GeneratedChunk = (serde_json::Value, Option<Vec<u8>>);

/// One input queued for a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneInput {
    /// Who sent it.
    pub player_id: String,
    /// The input map.
    pub input: serde_json::Value,
    /// The client's `seq`, when it asked for `world.ack`.
    pub seq: Option<u64>,
}

/// A `game.zone.spawn` request a zone callback made.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnRequest {
    /// The template id (known to the world's `spawn_templates`).
    pub template: String,
    /// Position.
    pub x: f64,
    /// Position.
    pub y: f64,
    /// Fields overriding the template's `base_state`.
    pub overrides: Map<String, serde_json::Value>,
}

/// Largest event one `game.zone.apply` sends, in bytes of its JSON (asobi: 4 KB). An event is
/// a verb (`{kind = "damage", amount = 12}`), not a copy of the world; past it `apply`
/// answers `false`.
pub const MAX_EFFECT_BYTES: usize = 4096;

/// `game.zone.apply` calls one zone tick may make (asobi's 64 per tick), counted whether or
/// not a neighbour publishes the entity: a script looping on `apply` cannot turn its own
/// budget into a neighbour's unbounded queue.
pub const MAX_EFFECT_SENDS: usize = 64;

/// What a zone can see of its neighbours during its tick: the border rows of the (up to)
/// eight touching zones. Called from inside a callback, so an implementation must not call
/// back into the VM.
pub trait ZoneBorder {
    /// Calls `f` with every entity the touching zones publish in their border band: copies,
    /// never the calling zone's own entities.
    fn each_neighbour(&self, f: &mut dyn FnMut(&str, &Map<String, serde_json::Value>));
    /// The touching zone publishing `entity_id`, if one does.
    fn owner(&self, entity_id: &str) -> Option<(u32, u32)>;
}

/// An effect a neighbour addressed to an entity of this zone (`game.zone.apply`).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneEffect {
    /// The entity it is for.
    pub entity_id: String,
    /// The event the sender passed (a JSON object).
    pub event: serde_json::Value,
}

/// A `game.zone.apply` a zone callback made: the effect for `entity_id`, addressed to the
/// zone that publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneApply {
    /// The zone owning the entity.
    pub zone: (u32, u32),
    /// The entity.
    pub entity_id: String,
    /// The event (a JSON object, at most [`MAX_EFFECT_BYTES`] encoded).
    pub event: serde_json::Value,
    /// Length of the event's JSON.
    pub bytes: usize,
}

/// One zone's tick as [`WorldVm::zone_tick_with`] runs it.
pub struct ZoneCall<'a> {
    /// The zone's grid coordinates.
    pub zone: (u32, u32),
    /// The world tick.
    pub tick: u64,
    /// The zone's entities.
    pub entities: &'a ZoneEntities,
    /// The zone's state.
    pub zone_state: &'a serde_json::Value,
    /// Inputs queued for the zone, in arrival order.
    pub inputs: Vec<ZoneInput>,
    /// Effects neighbours addressed to the zone, in arrival order.
    pub effects: Vec<ZoneEffect>,
    /// The border rows around the zone, when the world has a border band.
    pub border: Option<&'a dyn ZoneBorder>,
}

/// What one zone tick produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneStep {
    /// The zone's entities after the tick.
    pub entities: ZoneEntities,
    /// The zone state after the tick.
    pub zone_state: serde_json::Value,
    /// Players whose input was consumed, with the seq to acknowledge.
    pub acks: Vec<(String, u64)>,
    /// `game.zone.spawn` calls, in order.
    pub spawns: Vec<SpawnRequest>,
    /// `game.zone.despawn` calls, in order.
    pub despawns: Vec<String>,
    /// `game.zone.apply` calls that found their entity's owner, in order.
    pub applies: Vec<ZoneApply>,
    /// Callbacks that failed during the step (the step still completed).
    pub errors: Vec<CallError>,
}

fn multi(lua: &Lua, args: impl IntoLuaMulti) -> mlua::Result<MultiValue> {
    args.into_lua_multi(lua)
}

/// A world's Lua VM. Not `Send`: it lives on the shard thread that owns the world.
pub struct WorldVm {
    sandbox: Sandbox,
    mode: Arc<CompiledMode>,
    world_id: String,
    state: Value,
    /// Template ids `spawn_templates` declared, as the Lua set `game.zone.spawn` checks.
    templates: Option<Table>,
    finished: Option<serde_json::Value>,
    failed: bool,
    streak: u32,
    last_failure_log: Option<Instant>,
    suppressed_failures: u32,
    /// When a dropped batch of effects (no `handle_effects`) was last logged.
    last_effect_drop_log: Option<Instant>,
}

impl std::fmt::Debug for WorldVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldVm")
            .field("world_id", &self.world_id)
            .field("mode", &self.mode.name)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl WorldVm {
    /// Loads `mode`'s chunk into `sandbox` for world `world_id`.
    pub(crate) fn start(
        sandbox: Sandbox,
        mode: &Arc<CompiledMode>,
        world_id: &str,
        host: &mut dyn Host,
    ) -> Result<WorldVm, CallError> {
        *sandbox.shared.match_id.borrow_mut() = world_id.to_owned();
        *sandbox.shared.mode_name.borrow_mut() = mode.name.clone();
        *sandbox.shared.scope.borrow_mut() = Some(mode.scope.clone());
        let vm = WorldVm {
            sandbox,
            mode: mode.clone(),
            world_id: world_id.to_owned(),
            state: Value::Nil,
            templates: None,
            finished: None,
            failed: false,
            streak: 0,
            last_failure_log: None,
            suppressed_failures: 0,
            last_effect_drop_log: None,
        };
        vm.run_chunk(mode, host)?;
        Ok(vm)
    }

    fn run_chunk(&self, mode: &CompiledMode, host: &mut dyn Host) -> Result<(), CallError> {
        let func = self
            .sandbox
            .load_bytecode(&mode.main)
            .map_err(|e| crate::sandbox::classify("load", None, &e))?;
        let result = self.sandbox.run(
            "load",
            self.sandbox.shared.budgets.scaled(SETUP_FACTOR),
            func,
            |_| Ok(MultiValue::new()),
        );
        self.sandbox.shared.flush(host);
        result.map(|_| ())
    }

    /// The mode whose code this VM runs.
    pub fn mode(&self) -> &Arc<CompiledMode> {
        &self.mode
    }

    /// Whether the script defines the global function `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.sandbox.function(name).is_some()
    }

    /// `Some(result)` once the script set `state._finished = true` in `post_tick` (the value
    /// of `state._result`, `{}` when absent), or once the VM failed too often.
    pub fn finished(&self) -> Option<&serde_json::Value> {
        self.finished.as_ref()
    }

    /// Whether the VM failed too often and is stopped.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Bytes the VM uses.
    pub fn memory_used(&self) -> usize {
        self.sandbox.lua.used_memory()
    }

    /// Runs global `name` if defined (`Ok(None)` otherwise), never suspending.
    fn call(
        &mut self,
        name: &'static str,
        factor: u32,
        host: &mut dyn Host,
        args: impl FnOnce(&Lua, Value) -> mlua::Result<MultiValue>,
    ) -> Result<Option<MultiValue>, CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        let Some(func) = self.sandbox.function(name) else {
            return Ok(None);
        };
        let state = self.state.clone();
        let allowance = self.sandbox.shared.budgets.scaled(factor);
        let result = self
            .sandbox
            .run(name, allowance, func, |lua| args(lua, state));
        self.sandbox.shared.flush(host);
        match result {
            Ok(values) => {
                self.streak = 0;
                Ok(Some(values))
            }
            Err(e) => {
                self.record_failure(name, &e);
                Err(e)
            }
        }
    }

    fn required(
        &mut self,
        name: &'static str,
        factor: u32,
        host: &mut dyn Host,
        args: impl FnOnce(&Lua, Value) -> mlua::Result<MultiValue>,
    ) -> Result<MultiValue, CallError> {
        self.call(name, factor, host, args)?
            .ok_or(CallError::MissingCallback { callback: name })
    }

    fn record_failure(&mut self, name: &'static str, e: &CallError) {
        if matches!(e, CallError::MissingCallback { .. } | CallError::VmFailed) {
            return;
        }
        let now = Instant::now();
        let quiet = self
            .last_failure_log
            .is_some_and(|last| now.duration_since(last) < FAILURE_LOG_INTERVAL);
        if quiet {
            self.suppressed_failures += 1;
        } else {
            self.last_failure_log = Some(now);
            let suppressed = std::mem::take(&mut self.suppressed_failures);
            tracing::warn!(world_id = %self.world_id, mode = %self.mode.name, callback = name, error = %e, suppressed, "lua world callback failed");
        }
        // One player's bad input must not stop the world for everyone.
        if name == "handle_input" {
            return;
        }
        self.streak += 1;
        if self.streak >= MAX_CONSECUTIVE_FAILURES && !self.failed {
            self.failed = true;
            tracing::error!(world_id = %self.world_id, callback = name, error = %e, "world script failed too often; stopping it");
            self.finished.get_or_insert_with(
                || json!({ "error": "script_failed", "callback": name, "message": e.to_string() }),
            );
        }
    }

    fn keep_state(&mut self, values: MultiValue) {
        if let Some(v) = values.into_iter().next() {
            if !v.is_nil() {
                self.state = v;
            }
        }
    }

    fn to_lua(&self, value: &serde_json::Value) -> mlua::Result<Value> {
        json::to_lua(&self.sandbox.lua, value, &self.sandbox.shared.marks)
    }

    fn to_json(&self, value: &Value) -> Result<serde_json::Value, json::EncodeError> {
        json::to_json(value, &self.sandbox.shared.marks)
    }

    /// `init(config)`: the returned value becomes the world state.
    pub fn init(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<(), CallError> {
        let config = self.to_lua(config);
        let values = self.required("init", SETUP_FACTOR, host, |lua, _| match config? {
            Value::Nil => multi(lua, lua.create_table()?),
            c => multi(lua, c),
        })?;
        self.keep_state(values);
        Ok(())
    }

    /// `join(player_id, state[, ctx])`: `nil` (or nothing) refuses, as for matches.
    pub fn join(
        &mut self,
        player_id: &str,
        ctx: Option<&serde_json::Value>,
        host: &mut dyn Host,
    ) -> Result<JoinOutcome, CallError> {
        let ctx = match ctx {
            Some(c) if !c.is_null() => Some(self.to_lua(c)),
            _ => None,
        };
        let values = self.required("join", 1, host, |lua, state| {
            let ctx = match ctx {
                Some(c) => c?,
                None => Value::Table(lua.create_table()?),
            };
            multi(lua, (player_id, state, ctx))
        })?;
        let mut it = values.into_iter();
        match it.next() {
            None | Some(Value::Nil) => Ok(JoinOutcome::Refused(refusal_reason(it.next()))),
            Some(v) => {
                self.state = v;
                Ok(JoinOutcome::Accepted)
            }
        }
    }

    /// `leave(player_id, state)` (optional).
    pub fn leave(&mut self, player_id: &str, host: &mut dyn Host) -> Result<(), CallError> {
        if let Some(values) = self.call("leave", 1, host, |lua, s| multi(lua, (player_id, s)))? {
            self.keep_state(values);
        }
        Ok(())
    }

    /// `spawn_position(player_id, state)` → `{x, y}`.
    pub fn spawn_position(
        &mut self,
        player_id: &str,
        host: &mut dyn Host,
    ) -> Result<(f64, f64), CallError> {
        let values = self.required("spawn_position", 1, host, |lua, s| {
            multi(lua, (player_id, s))
        })?;
        let bad = || CallError::BadReturn {
            callback: "spawn_position",
            message: "must return a table with numeric x and y".into(),
        };
        let Some(Value::Table(t)) = values.into_iter().next() else {
            return Err(bad());
        };
        let num = |k: &str| match t.raw_get::<Value>(k) {
            Ok(Value::Integer(i)) => Some(i as f64),
            Ok(Value::Number(n)) if n.is_finite() => Some(n),
            _ => None,
        };
        match (num("x"), num("y")) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(bad()),
        }
    }

    /// `post_tick(tick, state)`; `state._finished` / `state._result` end the world.
    pub fn post_tick(&mut self, tick: u64, host: &mut dyn Host) -> Result<(), CallError> {
        if let Some(values) = self.call("post_tick", 1, host, |lua, s| multi(lua, (tick, s)))? {
            self.keep_state(values);
        }
        self.check_finished();
        Ok(())
    }

    fn check_finished(&mut self) {
        if self.finished.is_some() {
            return;
        }
        let Value::Table(state) = &self.state else {
            return;
        };
        if !matches!(
            state.raw_get::<Value>("_finished"),
            Ok(Value::Boolean(true))
        ) {
            return;
        }
        let result = match state.raw_get::<Value>("_result").unwrap_or(Value::Nil) {
            Value::Nil => json!({}),
            other => self.to_json(&other).unwrap_or_else(
                |e| json!({ "error": "unencodable_result", "message": e.to_string() }),
            ),
        };
        self.finished = Some(result);
    }

    /// `get_state(player_id, state)` (optional): the player's view of the world state.
    pub fn get_state(
        &mut self,
        player_id: &str,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let Some(values) = self.call("get_state", 1, host, |lua, s| multi(lua, (player_id, s)))?
        else {
            return Ok(None);
        };
        self.optional_json("get_state", values.into_iter().next())
    }

    /// A callback's first return value as JSON; `None` for nothing or `nil`.
    fn optional_json(
        &self,
        callback: &'static str,
        first: Option<Value>,
    ) -> Result<Option<serde_json::Value>, CallError> {
        match first {
            None | Some(Value::Nil) => Ok(None),
            Some(v) => self
                .to_json(&v)
                .map(Some)
                .map_err(|e| CallError::BadReturn {
                    callback,
                    message: e.to_string(),
                }),
        }
    }

    fn setup_table(
        &mut self,
        name: &'static str,
        host: &mut dyn Host,
        args: impl FnOnce(&Lua, Value) -> mlua::Result<MultiValue>,
    ) -> Result<Option<(Table, serde_json::Value)>, CallError> {
        let Some(values) = self.call(name, SETUP_FACTOR, host, args)? else {
            return Ok(None);
        };
        match values.into_iter().next() {
            Some(Value::Table(t)) => {
                let v =
                    self.to_json(&Value::Table(t.clone()))
                        .map_err(|e| CallError::BadReturn {
                            callback: name,
                            message: e.to_string(),
                        })?;
                Ok(Some((t, v)))
            }
            None | Some(Value::Nil) => Ok(None),
            Some(_) => Err(CallError::BadReturn {
                callback: name,
                message: "must return a table".into(),
            }),
        }
    }

    /// `phases(config)` (optional): the phase list as JSON (`None` when not defined or `nil`),
    /// for `asobi_rules::phases::parse`.
    pub fn phases(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let config = self.to_lua(config);
        let Some(values) = self.call("phases", SETUP_FACTOR, host, |lua, _| multi(lua, config?))?
        else {
            return Ok(None);
        };
        self.optional_json("phases", values.into_iter().next())
    }

    /// `on_phase_started(phase_name, state)` (optional).
    pub fn on_phase_started(&mut self, phase: &str, host: &mut dyn Host) -> Result<(), CallError> {
        if let Some(values) =
            self.call("on_phase_started", 1, host, |lua, s| multi(lua, (phase, s)))?
        {
            self.keep_state(values);
        }
        Ok(())
    }

    /// `on_phase_ended(phase_name, state)` (optional).
    pub fn on_phase_ended(&mut self, phase: &str, host: &mut dyn Host) -> Result<(), CallError> {
        if let Some(values) =
            self.call("on_phase_ended", 1, host, |lua, s| multi(lua, (phase, s)))?
        {
            self.keep_state(values);
        }
        Ok(())
    }

    /// `generate_world(seed, config)` (optional): zone states keyed `"x,y"`.
    pub fn generate_world(
        &mut self,
        seed: u64,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let config = self.to_lua(config);
        // Lua integers are i64; the seed is any 63-bit value.
        let seed = (seed >> 1) as i64;
        Ok(self
            .setup_table("generate_world", host, |lua, _| multi(lua, (seed, config?)))?
            .map(|(_, v)| v))
    }

    /// `spawn_templates(config)` (optional): the templates `game.zone.spawn` can use, keyed
    /// by id. Kept for the world's lifetime (asobi calls it once per zone at creation).
    pub fn spawn_templates(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let config = self.to_lua(config);
        let Some((table, v)) =
            self.setup_table("spawn_templates", host, |lua, _| multi(lua, config?))?
        else {
            return Ok(None);
        };
        self.templates = Some(table);
        Ok(Some(v))
    }

    /// `on_zone_loaded(cx, cy, state)` (optional), returning `zone_state, state`: the new
    /// zone's state when the first value is a table (`None` otherwise, and the zone keeps the
    /// state it was created with); a non-nil second value becomes the world state.
    pub fn zone_loaded(
        &mut self,
        cx: u32,
        cy: u32,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let Some(values) =
            self.call("on_zone_loaded", 1, host, |lua, s| multi(lua, (cx, cy, s)))?
        else {
            return Ok(None);
        };
        let mut it = values.into_iter();
        let zone_state = match it.next() {
            Some(v @ Value::Table(_)) => match self.to_json(&v) {
                Ok(serde_json::Value::Object(m)) => Some(serde_json::Value::Object(m)),
                // An empty Lua table reads back as an empty list.
                Ok(serde_json::Value::Array(a)) if a.is_empty() => Some(json!({})),
                Ok(_) => None,
                Err(e) => {
                    return Err(CallError::BadReturn {
                        callback: "on_zone_loaded",
                        message: format!("zone_state: {e}"),
                    })
                }
            },
            _ => None,
        };
        if let Some(state) = it.next().filter(|v| !v.is_nil()) {
            self.state = state;
        }
        Ok(zone_state)
    }

    /// `on_zone_unloaded(cx, cy, state)` (optional), returning the world state.
    pub fn zone_unloaded(
        &mut self,
        cx: u32,
        cy: u32,
        host: &mut dyn Host,
    ) -> Result<(), CallError> {
        if let Some(values) = self.call("on_zone_unloaded", 1, host, |lua, s| {
            multi(lua, (cx, cy, s))
        })? {
            self.keep_state(values);
        }
        Ok(())
    }

    /// Binds `game.terrain.get_chunk` and `game.terrain.preload` to the world's terrain, or,
    /// with `None`, to asobi's answer for a world without a terrain store.
    pub fn set_terrain(
        &mut self,
        terrain: Option<Rc<RefCell<dyn TerrainAccess>>>,
    ) -> Result<(), CallError> {
        let setup = |e: mlua::Error| crate::sandbox::classify("set_terrain", None, &e);
        let lua = &self.sandbox.lua;
        let game: Table = self.sandbox.globals().raw_get("game").map_err(setup)?;
        let table: Table = game.raw_get("terrain").map_err(setup)?;
        const NONE: &str = "terrain not available (no terrain store)";
        let t = terrain.clone();
        let get = lua
            .create_function(move |lua, (cx, cy): (Value, Value)| {
                let out = lua.create_table()?;
                let answer = match (&t, chunk_coord(&cx), chunk_coord(&cy)) {
                    (None, _, _) => Err(NONE.to_owned()),
                    (Some(t), Some(cx), Some(cy)) => match t.try_borrow_mut() {
                        Ok(mut t) => t.get_chunk(cx, cy),
                        Err(_) => Err("terrain busy".to_owned()),
                    },
                    _ => Err("get_chunk requires (cx, cy)".to_owned()),
                };
                match answer {
                    Ok(bytes) => out.raw_set("ok", lua.create_string(&bytes)?)?,
                    Err(reason) => out.raw_set("error", reason)?,
                }
                Ok(out)
            })
            .map_err(setup)?;
        let preload = lua
            .create_function(move |lua, list: Value| {
                let (Some(t), Value::Table(list)) = (&terrain, list) else {
                    let out = lua.create_table()?;
                    let reason = if terrain.is_none() {
                        NONE
                    } else {
                        "preload requires (coords_list)"
                    };
                    out.raw_set("error", reason)?;
                    return Ok(Value::Table(out));
                };
                let mut coords = Vec::new();
                for item in list.sequence_values::<Value>() {
                    if coords.len() == MAX_TERRAIN_PRELOAD {
                        break;
                    }
                    let Ok(Value::Table(c)) = item else { continue };
                    let get = |a: &str, b: &str| -> Option<i32> {
                        let v = match c.raw_get::<Value>(a) {
                            Ok(Value::Nil) | Err(_) => c.raw_get::<Value>(b).ok()?,
                            Ok(v) => v,
                        };
                        chunk_coord(&v)
                    };
                    if let (Some(x), Some(y)) = (get("cx", "x"), get("cy", "y")) {
                        coords.push((x, y));
                    }
                }
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.preload(coords);
                }
                Ok(Value::Boolean(true))
            })
            .map_err(setup)?;
        table.raw_set("get_chunk", get).map_err(setup)?;
        table.raw_set("preload", preload).map_err(setup)?;
        Ok(())
    }

    /// `terrain_provider(config)` (optional): its answer as JSON (`None` for `nil` or no
    /// such function), for `asobi_rules::terrain::parse_provider`.
    pub fn terrain_provider(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let config = self.to_lua(config);
        let Some(values) = self.call("terrain_provider", SETUP_FACTOR, host, |lua, _| {
            multi(lua, config?)
        })?
        else {
            return Ok(None);
        };
        match values.into_iter().next() {
            None | Some(Value::Nil) => Ok(None),
            Some(v) => self
                .to_json(&v)
                .map(Some)
                .map_err(|e| CallError::BadReturn {
                    callback: "terrain_provider",
                    message: e.to_string(),
                }),
        }
    }

    /// The Lua terrain provider's `generate_chunk(cx, cy, seed)`: what it returned as JSON,
    /// and the bytes when it returned a string (shipped verbatim). `None` when the script has
    /// no such function.
    pub fn generate_chunk(
        &mut self,
        cx: i32,
        cy: i32,
        seed: i64,
        host: &mut dyn Host,
    ) -> Result<Option<GeneratedChunk>, CallError> {
        let Some(values) = self.call("generate_chunk", SETUP_FACTOR, host, |lua, _| {
            multi(lua, (cx, cy, seed))
        })?
        else {
            return Ok(None);
        };
        match values.into_iter().next() {
            None | Some(Value::Nil) => Ok(Some((serde_json::Value::Null, None))),
            Some(Value::String(b)) => {
                Ok(Some((serde_json::Value::Null, Some(b.as_bytes().to_vec()))))
            }
            Some(v) => {
                self.to_json(&v)
                    .map(|j| Some((j, None)))
                    .map_err(|e| CallError::BadReturn {
                        callback: "generate_chunk",
                        message: e.to_string(),
                    })
            }
        }
    }

    /// `on_world_recovered(snapshot, state)` (optional).
    pub fn world_recovered(
        &mut self,
        snapshot: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<(), CallError> {
        let snapshot = self.to_lua(snapshot);
        if let Some(values) = self.call("on_world_recovered", SETUP_FACTOR, host, |lua, s| {
            multi(lua, (snapshot?, s))
        })? {
            self.keep_state(values);
        }
        Ok(())
    }

    /// One zone's tick with no effects and no border: [`WorldVm::zone_tick_with`].
    pub fn zone_tick(
        &mut self,
        zone: (u32, u32),
        tick: u64,
        entities: &ZoneEntities,
        zone_state: &serde_json::Value,
        inputs: Vec<ZoneInput>,
        host: &mut dyn Host,
    ) -> Result<ZoneStep, CallError> {
        self.zone_tick_with(
            ZoneCall {
                zone,
                tick,
                entities,
                zone_state,
                inputs,
                effects: Vec::new(),
                border: None,
            },
            host,
        )
    }

    /// One zone's tick: `zone_tick(entities, zone_state)` (with `zone_state.tick = tick`,
    /// as asobi adds it), then each input through `handle_input(player_id, input,
    /// entities)` in order, then the effects neighbours addressed to the zone through
    /// `handle_effects(effects, entities)` (asobi's order), only those naming an entity the
    /// zone holds at that point. With a border, `game.spatial.neighbours_*` read it and
    /// `game.zone.apply` addresses effects through it ([`ZoneStep::applies`]). A failing
    /// callback is reported in [`ZoneStep::errors`] and the step goes on with the entities
    /// as they were; only a VM that stopped, or entities that cannot be read back, fail the
    /// step.
    pub fn zone_tick_with(
        &mut self,
        call: ZoneCall<'_>,
        host: &mut dyn Host,
    ) -> Result<ZoneStep, CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        let setup = |e: mlua::Error| crate::sandbox::classify("zone_tick", None, &e);
        let Some(border) = call.border else {
            return self.zone_step(call, None, host);
        };
        let lua = self.sandbox.lua.clone();
        let shared = self.sandbox.shared.clone();
        let applies: RefCell<Vec<ZoneApply>> = RefCell::new(Vec::new());
        let sends = Cell::new(0usize);
        let step = lua
            .scope(|scope| {
                let neighbours = scope.create_function(|lua, ()| {
                    let out = lua.create_table()?;
                    let mut failed = None;
                    border.each_neighbour(&mut |id, fields| {
                        if failed.is_some() {
                            return;
                        }
                        let set = json::map_to_lua(lua, fields, &shared.marks)
                            .and_then(|e| out.raw_set(id, e));
                        if let Err(e) = set {
                            failed = Some(e);
                        }
                    });
                    match failed {
                        Some(e) => Err(e),
                        None => Ok(out),
                    }
                })?;
                let apply = scope.create_function(|_, (id, event): (String, Value)| {
                    let event = match json::to_json(&event, &shared.marks) {
                        Ok(v @ serde_json::Value::Object(_)) => v,
                        Ok(serde_json::Value::Array(a)) if a.is_empty() => json!({}),
                        _ => return Ok(false),
                    };
                    let bytes = serde_json::to_vec(&event).map_or(usize::MAX, |b| b.len());
                    // Both bounds are spent here, on the sender, before anything is queued.
                    if bytes > MAX_EFFECT_BYTES || sends.get() >= MAX_EFFECT_SENDS {
                        return Ok(false);
                    }
                    sends.set(sends.get() + 1);
                    let Some(zone) = border.owner(&id) else {
                        return Ok(false);
                    };
                    applies.borrow_mut().push(ZoneApply {
                        zone,
                        entity_id: id,
                        event,
                        bytes,
                    });
                    Ok(true)
                })?;
                Ok(self.zone_step(call, Some((neighbours, apply)), host))
            })
            .map_err(setup)?;
        let mut step = step?;
        step.applies = applies.into_inner();
        Ok(step)
    }

    /// The body of [`WorldVm::zone_tick_with`]; `border` is the pair of functions the zone
    /// context gets for `neighbours()` and `apply(id, event)`.
    fn zone_step(
        &mut self,
        call: ZoneCall<'_>,
        border: Option<(mlua::Function, mlua::Function)>,
        host: &mut dyn Host,
    ) -> Result<ZoneStep, CallError> {
        let ZoneCall {
            zone,
            tick,
            entities,
            zone_state,
            inputs,
            effects,
            border: _,
        } = call;
        let setup = |e: mlua::Error| crate::sandbox::classify("zone_tick", None, &e);
        let lua = self.sandbox.lua.clone();
        let marks = &self.sandbox.shared.marks;
        let mut ents = lua
            .create_table_with_capacity(0, entities.len())
            .map_err(setup)?;
        for (id, fields) in entities {
            let t = json::map_to_lua(&lua, fields, marks).map_err(setup)?;
            ents.raw_set(id.as_str(), t).map_err(setup)?;
        }
        let zs = match json::to_lua(&lua, zone_state, marks).map_err(setup)? {
            Value::Table(t) => t,
            _ => lua.create_table().map_err(setup)?,
        };
        zs.raw_set("tick", tick).map_err(setup)?;
        let mut zs = Value::Table(zs);
        let ctx = lua.create_table().map_err(setup)?;
        ctx.raw_set("entities", ents.clone()).map_err(setup)?;
        let templates = match &self.templates {
            Some(t) => t.clone(),
            None => lua.create_table().map_err(setup)?,
        };
        ctx.raw_set("templates", templates).map_err(setup)?;
        ctx.raw_set("cx", zone.0).map_err(setup)?;
        ctx.raw_set("cy", zone.1).map_err(setup)?;
        ctx.raw_set("spawns", lua.create_table().map_err(setup)?)
            .map_err(setup)?;
        ctx.raw_set("despawns", lua.create_table().map_err(setup)?)
            .map_err(setup)?;
        if let Some((neighbours, apply)) = border {
            ctx.raw_set("neighbours", neighbours).map_err(setup)?;
            ctx.raw_set("apply", apply).map_err(setup)?;
        }
        self.sandbox
            .set_zone
            .call::<()>(ctx.clone())
            .map_err(setup)?;

        let mut step = ZoneStep::default();
        // zone_tick first, then the inputs (asobi's order).
        let e0 = ents.clone();
        let z0 = zs.clone();
        match self.call("zone_tick", 1, host, move |lua, _| multi(lua, (e0, z0))) {
            Ok(Some(values)) => {
                let mut it = values.into_iter();
                if let Some(Value::Table(t)) = it.next() {
                    ents = t;
                }
                if let Some(v @ Value::Table(_)) = it.next() {
                    zs = v;
                }
                let _ = ctx.raw_set("entities", ents.clone());
            }
            Ok(None) => {}
            Err(e) => step.errors.push(e),
        }
        for input in inputs {
            if self.failed {
                break;
            }
            let shared = self.sandbox.shared.clone();
            let e0 = ents.clone();
            let pid = input.player_id.clone();
            let called = self.call("handle_input", 1, host, move |lua, _| {
                let i = json::to_lua(lua, &input.input, &shared.marks)?;
                multi(lua, (pid, i, e0))
            });
            match called {
                Ok(Some(values)) => {
                    let mut it = values.into_iter();
                    if let Some(Value::Table(t)) = it.next() {
                        ents = t;
                        let _ = ctx.raw_set("entities", ents.clone());
                    }
                    // A second return value is the seq the script consumed; otherwise the
                    // one the client stamped is acknowledged.
                    let consumed = match it.next() {
                        Some(Value::Integer(n)) if n >= 0 => Some(n as u64),
                        Some(Value::Number(n)) if n >= 0.0 && n.fract() == 0.0 && n < 9.0e15 => {
                            Some(n as u64)
                        }
                        _ => input.seq,
                    };
                    if let Some(seq) = consumed {
                        step.acks.push((input.player_id, seq));
                    }
                }
                Ok(None) => {}
                Err(e) => step.errors.push(e),
            }
        }
        if !effects.is_empty() && !self.failed {
            if let Some(t) = self.handle_effects(effects, &ents, &mut step, host) {
                ents = t;
                let _ = ctx.raw_set("entities", ents.clone());
            }
        }
        let _ = self.sandbox.set_zone.call::<()>(Value::Nil);

        step.entities = self.read_entities(&ents)?;
        step.zone_state = match self.to_json(&zs) {
            Ok(serde_json::Value::Array(a)) if a.is_empty() => json!({}),
            Ok(v) => v,
            Err(e) => {
                step.errors.push(CallError::BadReturn {
                    callback: "zone_tick",
                    message: format!("zone_state: {e}"),
                });
                zone_state.clone()
            }
        };
        step.spawns = self.read_spawns(&ctx);
        if let Ok(Value::Table(d)) = ctx.raw_get::<Value>("despawns") {
            step.despawns = d
                .sequence_values::<Value>()
                .filter_map(|v| match v {
                    Ok(Value::String(s)) => Some(s.to_string_lossy()),
                    _ => None,
                })
                .collect();
        }
        Ok(step)
    }

    /// `handle_effects(effects, entities)` with the effects naming an entity of `ents` (the
    /// rest are dropped: their target died or crossed away since the sender read it), each
    /// as `{entity_id, event}`. Returns the entities table the script handed back. Without a
    /// `handle_effects` the batch is dropped and logged (at most once a second).
    fn handle_effects(
        &mut self,
        effects: Vec<ZoneEffect>,
        ents: &Table,
        step: &mut ZoneStep,
        host: &mut dyn Host,
    ) -> Option<Table> {
        let live: Vec<ZoneEffect> = effects
            .into_iter()
            .filter(|e| {
                matches!(
                    ents.raw_get::<Value>(e.entity_id.as_str()),
                    Ok(Value::Table(_))
                )
            })
            .collect();
        if live.is_empty() {
            return None;
        }
        if !self.defines("handle_effects") {
            let now = Instant::now();
            let quiet = self
                .last_effect_drop_log
                .is_some_and(|last| now.duration_since(last) < FAILURE_LOG_INTERVAL);
            if !quiet {
                self.last_effect_drop_log = Some(now);
                tracing::warn!(world_id = %self.world_id, mode = %self.mode.name, dropped = live.len(), "game.zone.apply effects arrived but the script defines no handle_effects; dropped");
            }
            return None;
        }
        let shared = self.sandbox.shared.clone();
        let e0 = ents.clone();
        let called = self.call("handle_effects", 1, host, move |lua, _| {
            let list = lua.create_table_with_capacity(live.len(), 0)?;
            for (i, e) in live.iter().enumerate() {
                let t = lua.create_table_with_capacity(0, 2)?;
                t.raw_set("entity_id", e.entity_id.as_str())?;
                t.raw_set("event", json::to_lua(lua, &e.event, &shared.marks)?)?;
                list.raw_set(i + 1, t)?;
            }
            multi(lua, (list, e0))
        });
        match called {
            Ok(Some(values)) => match values.into_iter().next() {
                Some(Value::Table(t)) => Some(t),
                _ => None,
            },
            Ok(None) => None,
            Err(e) => {
                step.errors.push(e);
                None
            }
        }
    }

    fn read_entities(&mut self, ents: &Table) -> Result<ZoneEntities, CallError> {
        let bad = |message: String| CallError::BadReturn {
            callback: "zone_tick",
            message,
        };
        let mut out = ZoneEntities::new();
        for pair in ents.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(|e| bad(e.to_string()))?;
            let id = match k {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                // Keys that name no entity are not entities.
                _ => continue,
            };
            let Value::Table(_) = v else { continue };
            match self.to_json(&v) {
                Ok(serde_json::Value::Object(fields)) => {
                    out.insert(id, fields);
                }
                Ok(serde_json::Value::Array(a)) if a.is_empty() => {
                    out.insert(id, Map::new());
                }
                Ok(_) => {}
                Err(e) => return Err(bad(format!("entity {id}: {e}"))),
            }
            if out.len() > MAX_ZONE_ENTITIES {
                return Err(bad(format!(
                    "a zone holds more than {MAX_ZONE_ENTITIES} entities"
                )));
            }
        }
        Ok(out)
    }

    fn read_spawns(&self, ctx: &Table) -> Vec<SpawnRequest> {
        let Ok(Value::Table(list)) = ctx.raw_get::<Value>("spawns") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in list.sequence_values::<Table>().flatten() {
            let template = match item.raw_get::<Value>("template") {
                Ok(Value::String(s)) => s.to_string_lossy(),
                _ => continue,
            };
            let num = |k: &str| match item.raw_get::<Value>(k) {
                Ok(Value::Integer(i)) => Some(i as f64),
                Ok(Value::Number(n)) if n.is_finite() => Some(n),
                _ => None,
            };
            let (Some(x), Some(y)) = (num("x"), num("y")) else {
                continue;
            };
            let overrides = match item.raw_get::<Value>("overrides") {
                Ok(v @ Value::Table(_)) => match self.to_json(&v) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => Map::new(),
                },
                _ => Map::new(),
            };
            out.push(SpawnRequest {
                template,
                x,
                y,
                overrides,
            });
        }
        out
    }

    /// Swaps in `mode`'s code between callbacks (functions and globals replaced, the world
    /// state kept); a failing chunk keeps the old code.
    pub fn reload(
        &mut self,
        mode: &Arc<CompiledMode>,
        host: &mut dyn Host,
    ) -> Result<(), CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        if Arc::ptr_eq(mode, &self.mode) {
            return Ok(());
        }
        let globals = self.sandbox.globals().clone();
        let snapshot: Vec<(Value, Value)> = globals
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .collect();
        let old_scope = self.sandbox.shared.scope.replace(Some(mode.scope.clone()));
        let result = self
            .sandbox
            .clear_require_cache()
            .map_err(|e| crate::sandbox::classify("reload", None, &e))
            .and_then(|()| self.run_chunk(mode, host));
        if let Err(e) = result {
            let _ = self.sandbox.clear_require_cache();
            let _ = globals.clear();
            for (k, v) in snapshot {
                let _ = globals.raw_set(k, v);
            }
            *self.sandbox.shared.scope.borrow_mut() = old_scope;
            tracing::warn!(world_id = %self.world_id, mode = %mode.name, error = %e, "hot reload failed; keeping the old code");
            return Err(e);
        }
        self.mode = mode.clone();
        Ok(())
    }
}

fn refusal_reason(value: Option<Value>) -> Option<String> {
    let Some(Value::String(s)) = value else {
        return None;
    };
    let bytes = s.as_bytes();
    let printable = bytes.iter().all(|b| (32..=126).contains(b));
    if bytes.is_empty() || bytes.len() > MAX_REFUSAL_REASON || !printable {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
