//! One match's VM: the callbacks the engine drives, failure accounting, service calls and
//! hot reload.
//!
//! Method kinds, all called from the shard thread that owns the match:
//!
//! * lifecycle callbacks: [`MatchVm::init`] once, then [`MatchVm::join`] /
//!   [`MatchVm::leave`] / [`MatchVm::handle_input`] as events arrive, and per tick
//!   [`MatchVm::tick`]; optional ones asobi also calls: [`MatchVm::vote_requested`],
//!   [`MatchVm::vote_resolved`], [`MatchVm::on_phase_started`], [`MatchVm::on_phase_ended`].
//!   These may **suspend**: they answer [`Call::Done`] with their result, or
//!   [`Call::Waiting`] with a [`crate::ServiceCall`] for the engine to route;
//! * immediate callbacks, which never suspend (a service call in them answers
//!   `{error = ...}` at once): [`MatchVm::state_for`] (per player, or once with `None`
//!   under `shared`) and [`MatchVm::phases`];
//! * the wait: [`MatchVm::resume`] with the reply, [`MatchVm::abandon`] when it does not
//!   come, and the queries [`MatchVm::waiting`] and [`MatchVm::wait_deadline`];
//! * queries after any call: [`MatchVm::finished`], [`MatchVm::failed`];
//! * [`MatchVm::reload`] when a new [`crate::Game`] is published.
//!
//! Polling order for the engine's match task:
//!
//! 1. Call a callback. On [`Call::Done`] carry on; on [`Call::Waiting`] send the request
//!    and arm a timer at [`MatchVm::wait_deadline`]. Effects the callback produced so far
//!    have already been handed to the [`Host`].
//! 2. While [`MatchVm::waiting`], call nothing else on this VM (they answer
//!    [`CallError::Waiting`]): queue the match's inputs and skip its ticks, so that its
//!    callbacks stay ordered. Other matches on the shard keep running.
//! 3. When the reply arrives, [`MatchVm::resume`]; it may answer [`Call::Waiting`] again
//!    (several calls in a row) — back to 1. When the timer fires first,
//!    [`MatchVm::abandon`] (an overrun) and drop the late reply when it comes.
//! 4. After every completed callback, check [`MatchVm::failed`] / [`MatchVm::finished`].
//!
//! State lives in the VM as a Lua value; a callback that returns nothing keeps the previous
//! state (Lua tables are mutated in place, so that is what the script meant). A callback
//! that fails, or is abandoned while waiting, also keeps it — though changes the script made
//! in place before failing stay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{IntoLuaMulti, Lua, MultiValue, Value};
use serde_json::json;

use crate::api::{Host, ModuleScope};
use crate::budget::{Allowance, Budgets, OverrunWindow};
use crate::error::{BudgetKind, CallError};
use crate::game::CompiledMode;
use crate::json::{self, EncodeError};
use crate::sandbox::{Sandbox, Step};
use crate::service::{Call, Resumed};

/// Minimum time between two "callback failed" log lines of one VM.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Longest join refusal reason passed on to the client (asobi's bound).
const MAX_REFUSAL_REASON: usize = 64;

/// The result of [`MatchVm::join`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The player is in; the state was updated.
    Accepted,
    /// The script returned `nil` (optionally `nil, "reason"`) or nothing: the player is not
    /// added. The reason is the script's own vocabulary (1–64 printable ASCII bytes), or
    /// `None` when it gave none (or one out of shape).
    Refused(Option<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callback {
    Load,
    Init,
    Join,
    Leave,
    HandleInput,
    Tick,
    GetState,
    OnReload,
    VoteRequested,
    VoteResolved,
    Phases,
    OnPhaseStarted,
    OnPhaseEnded,
}

const CALLBACKS: usize = 13;

/// Every [`Callback`], in declaration order (its index is `cb as usize`).
const ALL_CALLBACKS: [Callback; CALLBACKS] = [
    Callback::Load,
    Callback::Init,
    Callback::Join,
    Callback::Leave,
    Callback::HandleInput,
    Callback::Tick,
    Callback::GetState,
    Callback::OnReload,
    Callback::VoteRequested,
    Callback::VoteResolved,
    Callback::Phases,
    Callback::OnPhaseStarted,
    Callback::OnPhaseEnded,
];

impl Callback {
    fn name(self) -> &'static str {
        match self {
            Callback::Load => "load",
            Callback::Init => "init",
            Callback::Join => "join",
            Callback::Leave => "leave",
            Callback::HandleInput => "handle_input",
            Callback::Tick => "tick",
            Callback::GetState => "get_state",
            Callback::OnReload => "on_reload",
            Callback::VoteRequested => "vote_requested",
            Callback::VoteResolved => "vote_resolved",
            Callback::Phases => "phases",
            Callback::OnPhaseStarted => "on_phase_started",
            Callback::OnPhaseEnded => "on_phase_ended",
        }
    }

    /// Callbacks that may suspend on a service call. The rest must answer at once:
    /// `get_state` runs per player per tick, and setup code (the chunk, `phases`,
    /// `on_reload`) runs where the engine cannot wait.
    fn suspendable(self) -> bool {
        matches!(
            self,
            Callback::Init
                | Callback::Join
                | Callback::Leave
                | Callback::HandleInput
                | Callback::Tick
                | Callback::VoteRequested
                | Callback::VoteResolved
                | Callback::OnPhaseStarted
                | Callback::OnPhaseEnded
        )
    }

    /// What one call of this callback may spend: asobi's per-callback running time, with
    /// instructions in proportion.
    fn allowance(self, b: &Budgets) -> Allowance {
        let l = &b.limits;
        b.allowance(match self {
            Callback::Load | Callback::Init | Callback::OnReload | Callback::Phases => l.init,
            Callback::Join | Callback::Leave => l.join_leave,
            Callback::HandleInput => b.wall,
            Callback::Tick => l.tick,
            Callback::GetState => l.get_state,
            Callback::VoteRequested
            | Callback::VoteResolved
            | Callback::OnPhaseStarted
            | Callback::OnPhaseEnded => l.hooks,
        })
    }
}

/// What a completed callback produced, before it is handed out as the method's result.
#[derive(Debug)]
enum Outcome {
    Resumed(Resumed),
    State(Bytes),
    Phases(Option<serde_json::Value>),
    Unit,
}

impl Outcome {
    /// The result of a suspendable callback (the only kind that can be resumed).
    fn resumed(self) -> Resumed {
        match self {
            Outcome::Resumed(r) => r,
            other => unreachable!("only suspendable callbacks produce {other:?}"),
        }
    }
}

/// A match's Lua VM. Not `Send`: it lives on the shard thread that took it from its
/// [`crate::VmPool`].
pub struct MatchVm {
    sandbox: Sandbox,
    mode: Arc<CompiledMode>,
    match_id: String,
    state: Value,
    finished: Option<serde_json::Value>,
    failed: bool,
    streaks: [u32; CALLBACKS],
    overruns: u32,
    overrun_window: OverrunWindow,
    /// The callback suspended on a service call, if any.
    waiting_on: Option<Callback>,
    /// A reload that arrived while a callback was suspended.
    deferred_reload: Option<Arc<CompiledMode>>,
    last_failure_log: Option<Instant>,
    suppressed_failures: u32,
    /// Every callback's name and the state keys read after each callback, interned once in
    /// this VM: looking them up per call would create (hash, intern) the same strings again.
    names: Names,
    /// What the state being encoded is written inside ([`MatchVm::state_frame`]).
    envelope: Envelope,
    /// The length of the last encoded state: the next one's buffer is sized from it.
    last_state_len: usize,
}

/// Bytes written before and after an encoded state ([`MatchVm::state_frame`]), so that a
/// frame's envelope and the state share one buffer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Envelope {
    /// Written before the state.
    pub head: &'static [u8],
    /// Written after it.
    pub tail: &'static [u8],
}

/// Strings [`MatchVm`] reads on every call, as Lua strings of its VM.
struct Names {
    callbacks: Vec<mlua::String>,
    finished: mlua::String,
    result: mlua::String,
}

impl Names {
    fn new(lua: &Lua) -> mlua::Result<Names> {
        Ok(Names {
            callbacks: ALL_CALLBACKS
                .iter()
                .map(|cb| lua.create_string(cb.name()))
                .collect::<mlua::Result<_>>()?,
            finished: lua.create_string("_finished")?,
            result: lua.create_string("_result")?,
        })
    }
}

impl std::fmt::Debug for MatchVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchVm")
            .field("match_id", &self.match_id)
            .field("mode", &self.mode.name)
            .field("code_version", &self.mode.version)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn multi(lua: &Lua, args: impl IntoLuaMulti) -> mlua::Result<MultiValue> {
    args.into_lua_multi(lua)
}

impl MatchVm {
    /// Loads `mode`'s chunk into `sandbox` (a fresh state) for match `match_id`.
    pub(crate) fn start(
        sandbox: Sandbox,
        mode: &Arc<CompiledMode>,
        match_id: &str,
        host: &mut dyn Host,
    ) -> Result<MatchVm, CallError> {
        *sandbox.shared.match_id.borrow_mut() = match_id.to_owned();
        *sandbox.shared.mode_name.borrow_mut() = mode.name.clone();
        *sandbox.shared.scope.borrow_mut() = Some(mode.scope.clone());
        let names =
            Names::new(&sandbox.lua).map_err(|e| crate::sandbox::classify("load", None, &e))?;
        let vm = MatchVm {
            sandbox,
            mode: mode.clone(),
            match_id: match_id.to_owned(),
            state: Value::Nil,
            finished: None,
            failed: false,
            streaks: [0; CALLBACKS],
            overruns: 0,
            overrun_window: OverrunWindow::default(),
            waiting_on: None,
            deferred_reload: None,
            last_failure_log: None,
            suppressed_failures: 0,
            names,
            envelope: Envelope::default(),
            last_state_len: 0,
        };
        vm.run_chunk(mode, host)?;
        Ok(vm)
    }

    fn run_chunk(&self, mode: &CompiledMode, host: &mut dyn Host) -> Result<(), CallError> {
        self.sandbox
            .install_extensions(&mode.bindings)
            .map_err(|e| crate::sandbox::classify("load", None, &e))?;
        let func = self
            .sandbox
            .load_bytecode(&mode.main)
            .map_err(|e| crate::sandbox::classify("load", None, &e))?;
        let result = self.sandbox.run(
            "load",
            Callback::Load.allowance(&self.sandbox.shared.budgets),
            func,
            |_| Ok(MultiValue::new()),
        );
        self.sandbox.shared.flush(host);
        result.map(|_| ())
    }

    /// The match id this VM was acquired for.
    pub fn match_id(&self) -> &str {
        &self.match_id
    }

    /// The mode whose code this VM runs (the newest one it reloaded).
    pub fn mode(&self) -> &Arc<CompiledMode> {
        &self.mode
    }

    /// The [`crate::Game::version`] of the code this VM runs.
    pub fn code_version(&self) -> u64 {
        self.mode.version
    }

    /// Bytes the VM currently uses (bounded by the memory budget).
    pub fn memory_used(&self) -> usize {
        self.sandbox.lua.used_memory()
    }

    /// `Some(result)` once the script set `state._finished = true` (the value of
    /// `state._result`, `{}` when absent), or once the VM failed too often
    /// (`{"error": "script_failed", "callback": ..., "message": ...}`).
    pub fn finished(&self) -> Option<&serde_json::Value> {
        self.finished.as_ref()
    }

    /// Whether the VM has failed too often; the engine finishes the match with
    /// [`MatchVm::finished`] and releases the VM. Every further call returns
    /// [`CallError::VmFailed`].
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the script defines the global function `name` now (a reload may change it).
    pub fn defines(&self, name: &str) -> bool {
        self.sandbox.function(name).is_some()
    }

    /// The script's function for `cb`, if it defines one now.
    fn function(&self, cb: Callback) -> Option<mlua::Function> {
        match self.names.callbacks.get(cb as usize) {
            Some(name) => self.sandbox.function_named(name),
            None => self.sandbox.function(cb.name()),
        }
    }

    /// Starts callback `cb` if the script defines it (`Ok(None)` otherwise).
    fn begin(
        &mut self,
        cb: Callback,
        host: &mut dyn Host,
        args: impl FnOnce(&Lua, Value) -> mlua::Result<MultiValue>,
    ) -> Result<Option<Call<Outcome>>, CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        if self.waiting_on.is_some() {
            return Err(CallError::Waiting);
        }
        let Some(func) = self.function(cb) else {
            return Ok(None);
        };
        let state = self.state.clone();
        let step = self.sandbox.start(
            cb.name(),
            cb.allowance(&self.sandbox.shared.budgets),
            func,
            |lua| args(lua, state),
            cb.suspendable(),
        );
        self.after_step(cb, step, host).map(Some)
    }

    /// Like [`MatchVm::begin`] for callbacks every match script must define.
    fn begin_required(
        &mut self,
        cb: Callback,
        host: &mut dyn Host,
        args: impl FnOnce(&Lua, Value) -> mlua::Result<MultiValue>,
    ) -> Result<Call<Outcome>, CallError> {
        self.begin(cb, host, args)?
            .ok_or(CallError::MissingCallback {
                callback: cb.name(),
            })
    }

    /// Accounting after a callback started or resumed: hands its effects to the host; when
    /// it completed, processes its result, counts failures and overruns, and applies a
    /// reload deferred while it was suspended.
    fn after_step(
        &mut self,
        cb: Callback,
        step: Result<Step, CallError>,
        host: &mut dyn Host,
    ) -> Result<Call<Outcome>, CallError> {
        // Time inside one long C call never reaches the hook: a callback that returned
        // after its deadline still cost the shard an overrun.
        let late = self.sandbox.shared.meter.past_deadline();
        self.sandbox.shared.flush(host);
        let result = match step {
            Ok(Step::Waiting(call)) => {
                self.waiting_on = Some(cb);
                return Ok(Call::Waiting(call));
            }
            Ok(Step::Done(values)) => self.process(cb, values),
            Err(e) => Err(e),
        };
        self.waiting_on = None;
        match &result {
            Ok(_) => {
                self.streaks[cb as usize] = 0;
                if late {
                    let e = CallError::Budget {
                        kind: BudgetKind::WallTime,
                        callback: cb.name(),
                    };
                    self.log_failure(cb, &e);
                    self.count_overrun(cb, &e);
                } else {
                    self.overruns = 0;
                }
                self.check_finished();
            }
            Err(e) => self.record_failure(cb, e),
        }
        self.apply_deferred_reload(host);
        result.map(Call::Done)
    }

    fn apply_deferred_reload(&mut self, host: &mut dyn Host) {
        if let Some(mode) = self.deferred_reload.take() {
            // `reload` logs its own failure; the old code keeps running then.
            let _ = self.reload(&mode, host);
        }
    }

    /// Turns what callback `cb` returned into its result.
    fn process(&mut self, cb: Callback, values: MultiValue) -> Result<Outcome, CallError> {
        let done = |r: Resumed| Ok(Outcome::Resumed(r));
        match cb {
            Callback::Load => Ok(Outcome::Unit),
            Callback::Init => match values.into_iter().next() {
                Some(v) if !v.is_nil() => {
                    self.state = v;
                    done(Resumed::Init)
                }
                _ => Err(CallError::BadReturn {
                    callback: "init",
                    message: "init() must return the initial state".to_owned(),
                }),
            },
            Callback::Join => {
                let mut values = values.into_iter();
                match values.next() {
                    None | Some(Value::Nil) | Some(Value::Boolean(false)) => done(Resumed::Join(
                        JoinOutcome::Refused(refusal_reason(values.next())),
                    )),
                    Some(state) => {
                        self.state = state;
                        done(Resumed::Join(JoinOutcome::Accepted))
                    }
                }
            }
            Callback::Leave => {
                self.keep_state(values);
                done(Resumed::Leave)
            }
            Callback::HandleInput => {
                self.keep_state(values);
                done(Resumed::HandleInput)
            }
            Callback::Tick => {
                self.keep_state(values);
                done(Resumed::Tick)
            }
            Callback::VoteResolved => {
                self.keep_state(values);
                done(Resumed::VoteResolved)
            }
            Callback::OnPhaseStarted => {
                self.keep_state(values);
                done(Resumed::PhaseStarted)
            }
            Callback::OnPhaseEnded => {
                self.keep_state(values);
                done(Resumed::PhaseEnded)
            }
            Callback::OnReload => {
                self.keep_state(values);
                Ok(Outcome::Unit)
            }
            Callback::GetState => {
                let value = values.into_iter().next().unwrap_or(Value::Nil);
                self.wrap_state(&value).map(Outcome::State)
            }
            Callback::VoteRequested => match values.into_iter().next() {
                None | Some(Value::Nil) | Some(Value::Boolean(false)) => {
                    done(Resumed::VoteRequested(None))
                }
                Some(v) => match json::to_json(&v, &self.sandbox.shared.marks) {
                    Ok(serde_json::Value::Object(m)) if m.is_empty() => {
                        done(Resumed::VoteRequested(None))
                    }
                    Ok(config) => done(Resumed::VoteRequested(Some(config))),
                    Err(e) => Err(CallError::BadReturn {
                        callback: "vote_requested",
                        message: e.to_string(),
                    }),
                },
            },
            Callback::Phases => match values.into_iter().next() {
                None | Some(Value::Nil) => Ok(Outcome::Phases(None)),
                Some(v) => json::to_json(&v, &self.sandbox.shared.marks)
                    .map(|p| Outcome::Phases(Some(p)))
                    .map_err(|e| CallError::BadReturn {
                        callback: "phases",
                        message: e.to_string(),
                    }),
            },
        }
    }

    fn keep_state(&mut self, values: MultiValue) {
        if let Some(v) = values.into_iter().next() {
            if !v.is_nil() {
                self.state = v;
            }
        }
    }

    fn record_failure(&mut self, cb: Callback, e: &CallError) {
        if matches!(
            e,
            CallError::MissingCallback { .. }
                | CallError::VmFailed
                | CallError::Waiting
                | CallError::NotWaiting
        ) {
            return;
        }
        let overrun = matches!(e, CallError::Budget { .. });
        self.log_failure(cb, e);
        // A Lua error in handle_input is usually one client's doing; it must not let one
        // player end the match for everyone. An overrun costs the shard and always counts.
        if overrun || cb != Callback::HandleInput {
            self.streaks[cb as usize] += 1;
        }
        if overrun {
            self.count_overrun(cb, e);
        }
        if self.streaks[cb as usize] >= self.sandbox.shared.budgets.max_consecutive_failures {
            self.fail(cb, e);
        }
    }

    /// An overrun counts twice: in the consecutive streak (reset by a success) and in the
    /// sliding window (not reset), so that overruns interleaved with successes — one
    /// player's input driving `handle_input` over budget while ticks succeed — are bounded
    /// too.
    fn count_overrun(&mut self, cb: Callback, e: &CallError) {
        self.overruns += 1;
        let budgets = &self.sandbox.shared.budgets;
        let too_many_in_window = self.overrun_window.record(
            Instant::now(),
            budgets.overrun_window,
            budgets.max_overruns_in_window,
        );
        if self.overruns >= budgets.max_consecutive_overruns || too_many_in_window {
            self.fail(cb, e);
        }
    }

    fn fail(&mut self, cb: Callback, e: &CallError) {
        if self.failed {
            return;
        }
        self.failed = true;
        tracing::error!(match_id = %self.match_id, mode = %self.mode.name, callback = cb.name(), error = %e, "match script failed too often; stopping it");
        if self.finished.is_none() {
            self.finished = Some(json!({
                "error": "script_failed",
                "callback": cb.name(),
                "message": e.to_string(),
            }));
        }
    }

    /// At most one line per second per VM: a callback failing on every input of a flood must
    /// not turn into a log flood. The line says how many were suppressed.
    fn log_failure(&mut self, cb: Callback, e: &CallError) {
        let now = Instant::now();
        if let Some(last) = self.last_failure_log {
            if now.duration_since(last) < FAILURE_LOG_INTERVAL {
                self.suppressed_failures += 1;
                return;
            }
        }
        self.last_failure_log = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed_failures);
        tracing::warn!(match_id = %self.match_id, mode = %self.mode.name, callback = cb.name(), error = %e, suppressed, "lua callback failed");
    }

    fn check_finished(&mut self) {
        if self.finished.is_some() {
            return;
        }
        let Value::Table(state) = &self.state else {
            return;
        };
        if !matches!(
            state.raw_get::<Value>(&self.names.finished),
            Ok(Value::Boolean(true))
        ) {
            return;
        }
        let result = state
            .raw_get::<Value>(&self.names.result)
            .unwrap_or(Value::Nil);
        let result = match result {
            Value::Nil => json!({}),
            other => json::to_json(&other, &self.sandbox.shared.marks).unwrap_or_else(
                |e| json!({ "error": "unencodable_result", "message": e.to_string() }),
            ),
        };
        self.finished = Some(result);
    }

    fn to_lua(&self, lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
        json::to_lua(lua, value, &self.sandbox.shared.marks)
    }

    /// `init(config)`: the returned value becomes the state. May suspend.
    pub fn init(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        let config = self.to_lua(&self.sandbox.lua, config).ok();
        self.begin_required(Callback::Init, host, |lua, _| match config {
            Some(Value::Nil) | None => multi(lua, lua.create_table()?),
            Some(config) => multi(lua, config),
        })
        .map(|c| c.map(drop))
    }

    /// `join(player_id, state, ctx)`; `ctx` is the client's join context, an empty table
    /// when absent. Returning `nil` (or nothing) refuses the player. May suspend.
    pub fn join(
        &mut self,
        player_id: &str,
        ctx: Option<&serde_json::Value>,
        host: &mut dyn Host,
    ) -> Result<Call<JoinOutcome>, CallError> {
        let ctx = match ctx {
            Some(ctx) if !ctx.is_null() => Some(self.to_lua(&self.sandbox.lua, ctx)),
            _ => None,
        };
        self.begin_required(Callback::Join, host, |lua, state| {
            let ctx = match ctx {
                Some(ctx) => ctx?,
                None => Value::Table(lua.create_table()?),
            };
            multi(lua, (player_id, state, ctx))
        })
        .map(|c| {
            c.map(|o| match o.resumed() {
                Resumed::Join(outcome) => outcome,
                _ => JoinOutcome::Refused(None),
            })
        })
    }

    /// `leave(player_id, state)`. A script without `leave` is fine. May suspend.
    pub fn leave(&mut self, player_id: &str, host: &mut dyn Host) -> Result<Call<()>, CallError> {
        let call = self.begin(Callback::Leave, host, |lua, state| {
            multi(lua, (player_id, state))
        })?;
        Ok(call.map_or(Call::Done(()), |c| c.map(drop)))
    }

    /// `handle_input(player_id, input, state)`. May suspend.
    pub fn handle_input(
        &mut self,
        player_id: &str,
        input: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        let shared = self.sandbox.shared.clone();
        self.begin_required(Callback::HandleInput, host, |lua, state| {
            let input = json::to_lua(lua, input, &shared.marks)?;
            multi(lua, (player_id, input, state))
        })
        .map(|c| c.map(drop))
    }

    /// `handle_input(player_id, input, state)` for an input that is still JSON text (an
    /// object, as the engine checked): the text is parsed straight into the Lua table, with
    /// no `serde_json::Value` in between. Text that is not JSON fails the callback. May
    /// suspend.
    pub fn handle_input_json(
        &mut self,
        player_id: &str,
        input: &str,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        let shared = self.sandbox.shared.clone();
        self.begin_required(Callback::HandleInput, host, |lua, state| {
            let input = json::decode_str(lua, input, &shared.marks)?;
            multi(lua, (player_id, input, state))
        })
        .map(|c| c.map(drop))
    }

    /// `tick(state)`. May suspend.
    pub fn tick(&mut self, host: &mut dyn Host) -> Result<Call<()>, CallError> {
        self.begin_required(Callback::Tick, host, multi)
            .map(|c| c.map(drop))
    }

    /// The encoded JSON of `get_state(player_id, state)`, or of `get_state(state)` when
    /// `player_id` is `None` (the `shared` state strategy: once per tick). `nil` encodes as
    /// `{}`. Never suspends: a service call here answers `{error = ...}` at once.
    ///
    /// `get_state` is optional: a script without it sends every player the whole state (asobi
    /// sends an empty object, which leaves such a game unplayable).
    pub fn state_for(
        &mut self,
        player_id: Option<&str>,
        host: &mut dyn Host,
    ) -> Result<Bytes, CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        self.state_frame(player_id, Envelope::default(), host)
    }

    /// [`MatchVm::state_for`] written inside `envelope` (`head`, the state, `tail`) in one
    /// buffer: the engine's `match.state` frame without copying the state into it afterwards.
    /// `max_state_bytes` bounds the state alone.
    pub fn state_frame(
        &mut self,
        player_id: Option<&str>,
        envelope: Envelope,
        host: &mut dyn Host,
    ) -> Result<Bytes, CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        self.envelope = envelope;
        if self.function(Callback::GetState).is_none() {
            let state = self.state.clone();
            return self.wrap_state(&state);
        }
        let call = self.begin_required(Callback::GetState, host, |lua, state| match player_id {
            Some(player) => multi(lua, (player, state)),
            None => multi(lua, state),
        })?;
        match call {
            Call::Done(Outcome::State(bytes)) => Ok(bytes),
            _ => self.wrap_state(&Value::Nil),
        }
    }

    /// `state` encoded inside the current envelope; `nil` is `{}`.
    fn wrap_state(&mut self, state: &Value) -> Result<Bytes, CallError> {
        let Envelope { head, tail } = self.envelope;
        let mut out = Vec::with_capacity(head.len() + self.last_state_len.max(2) + tail.len() + 16);
        out.extend_from_slice(head);
        if state.is_nil() {
            out.extend_from_slice(b"{}");
        } else {
            let max = self.sandbox.shared.budgets.max_state_bytes;
            json::encode_into(state, &self.sandbox.shared.marks, max, &mut out).map_err(|e| {
                CallError::BadReturn {
                    callback: "get_state",
                    message: match e {
                        EncodeError::TooLarge => format!("state is larger than {max} bytes"),
                        other => other.to_string(),
                    },
                }
            })?;
        }
        self.last_state_len = out.len() - head.len();
        out.extend_from_slice(tail);
        Ok(Bytes::from(out))
    }

    /// Optional `vote_requested(state)`: a vote configuration, or `None` when the script
    /// does not define it or returns `nil`/`false`/an empty table. May suspend.
    pub fn vote_requested(
        &mut self,
        host: &mut dyn Host,
    ) -> Result<Call<Option<serde_json::Value>>, CallError> {
        let call = self.begin(Callback::VoteRequested, host, multi)?;
        Ok(match call {
            None => Call::Done(None),
            Some(c) => c.map(|o| match o.resumed() {
                Resumed::VoteRequested(config) => config,
                _ => None,
            }),
        })
    }

    /// Optional `vote_resolved(template, result, state)`. May suspend.
    pub fn vote_resolved(
        &mut self,
        template: &str,
        result: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        let shared = self.sandbox.shared.clone();
        let call = self.begin(Callback::VoteResolved, host, |lua, state| {
            let result = json::to_lua(lua, result, &shared.marks)?;
            multi(lua, (template, result, state))
        })?;
        Ok(call.map_or(Call::Done(()), |c| c.map(drop)))
    }

    /// Optional `phases(config)`: the phase definitions, `None` when not defined or `nil`.
    /// Never suspends.
    pub fn phases(
        &mut self,
        config: &serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let shared = self.sandbox.shared.clone();
        let call = self.begin(Callback::Phases, host, |lua, _| {
            let config = json::to_lua(lua, config, &shared.marks)?;
            multi(lua, config)
        })?;
        Ok(match call {
            Some(Call::Done(Outcome::Phases(phases))) => phases,
            _ => None,
        })
    }

    /// Optional `on_phase_started(phase_name, state)`. May suspend.
    pub fn on_phase_started(
        &mut self,
        phase: &str,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        self.phase_hook(Callback::OnPhaseStarted, phase, host)
    }

    /// Optional `on_phase_ended(phase_name, state)`. May suspend.
    pub fn on_phase_ended(
        &mut self,
        phase: &str,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        self.phase_hook(Callback::OnPhaseEnded, phase, host)
    }

    fn phase_hook(
        &mut self,
        cb: Callback,
        phase: &str,
        host: &mut dyn Host,
    ) -> Result<Call<()>, CallError> {
        let call = self.begin(cb, host, |lua, state| multi(lua, (phase, state)))?;
        Ok(call.map_or(Call::Done(()), |c| c.map(drop)))
    }

    /// Continues the suspended callback: `reply` becomes the return value of the `game.*`
    /// call it waits on. Answers which callback completed and its result, or
    /// [`Call::Waiting`] again when the callback makes another service call. A reply that
    /// cannot be converted to Lua reaches the script as `{error = ...}`.
    ///
    /// Past [`MatchVm::wait_deadline`] the callback is abandoned instead (as by
    /// [`MatchVm::abandon`]) and this returns the overrun.
    pub fn resume(
        &mut self,
        reply: serde_json::Value,
        host: &mut dyn Host,
    ) -> Result<Call<Resumed>, CallError> {
        let Some(cb) = self.waiting_on else {
            return Err(CallError::NotWaiting);
        };
        let lua = &self.sandbox.lua;
        let reply = match json::to_lua(lua, &reply, &self.sandbox.shared.marks) {
            Ok(v) => v,
            Err(e) => {
                let t = lua.create_table().and_then(|t| {
                    t.raw_set("error", format!("unconvertible reply: {e}"))
                        .map(|()| t)
                });
                t.map(Value::Table).unwrap_or(Value::Nil)
            }
        };
        let step = self.sandbox.resume(cb.name(), reply);
        self.after_step(cb, step, host)
            .map(|c| c.map(Outcome::resumed))
    }

    /// Whether a callback is suspended on a service call. While it is, every callback
    /// method answers [`CallError::Waiting`].
    pub fn waiting(&self) -> bool {
        self.waiting_on.is_some()
    }

    /// When the suspended callback stops waiting for its answer: its suspension plus
    /// [`Budgets::service_wait`] (the wait does not count against its running time); the
    /// engine calls [`MatchVm::abandon`] then. `None` when nothing waits.
    pub fn wait_deadline(&self) -> Option<Instant> {
        self.waiting_on.and(self.sandbox.wait_deadline())
    }

    /// Gives up on the suspended callback (the reply never came): its coroutine is dropped
    /// without running further, the state is the value it had before the callback (changes
    /// the script made in place before suspending stay, as with any aborted callback), and
    /// the wait counts as a wall-clock overrun. Returns that overrun, or
    /// [`CallError::NotWaiting`].
    pub fn abandon(&mut self, host: &mut dyn Host) -> CallError {
        let Some(cb) = self.waiting_on.take() else {
            return CallError::NotWaiting;
        };
        self.sandbox.abandon();
        self.sandbox.shared.flush(host);
        let e = CallError::Budget {
            kind: BudgetKind::WallTime,
            callback: cb.name(),
        };
        self.record_failure(cb, &e);
        self.apply_deferred_reload(host);
        e
    }

    /// Swaps in `mode`'s code between callbacks: clears the `require` cache and re-runs the
    /// chunk in this VM, so functions and globals are replaced while the state is untouched
    /// and `init` is not re-run. Then calls the optional `on_reload(state)`, whose non-`nil`
    /// return becomes the state.
    ///
    /// While a callback is suspended ([`MatchVm::waiting`]) the reload is deferred: it is
    /// applied inside the [`MatchVm::resume`] or [`MatchVm::abandon`] that ends the wait,
    /// and this returns `Ok`.
    ///
    /// If the new chunk fails, every global is restored and the VM keeps running its old
    /// code (`Err`). A failing `on_reload` is counted like any callback failure, but the new
    /// code stays (`Ok`). Mode-shape values (`match_size`, ...) are not re-read: they apply
    /// to new matches.
    pub fn reload(
        &mut self,
        mode: &Arc<CompiledMode>,
        host: &mut dyn Host,
    ) -> Result<(), CallError> {
        if self.failed {
            return Err(CallError::VmFailed);
        }
        if self.waiting_on.is_some() {
            // Re-running the chunk now would replace functions under a suspended coroutine
            // and run Lua while it waits; the reload is applied when that callback completes
            // or is abandoned (the newest one wins).
            self.deferred_reload = Some(mode.clone());
            return Ok(());
        }
        if Arc::ptr_eq(mode, &self.mode) {
            return Ok(());
        }
        let globals = self.sandbox.globals().clone();
        let snapshot: Vec<(Value, Value)> = globals
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .collect();
        let old_scope: Option<ModuleScope> =
            self.sandbox.shared.scope.replace(Some(mode.scope.clone()));
        let cleared = self.sandbox.clear_require_cache();
        let result = cleared
            .map_err(|e| crate::sandbox::classify("reload", None, &e))
            .and_then(|()| self.run_chunk(mode, host));
        if let Err(e) = result {
            let _ = self.sandbox.clear_require_cache();
            let _ = globals.clear();
            for (k, v) in snapshot {
                let _ = globals.raw_set(k, v);
            }
            *self.sandbox.shared.scope.borrow_mut() = old_scope;
            tracing::warn!(match_id = %self.match_id, mode = %mode.name, error = %e, "hot reload failed; keeping the old code");
            return Err(match e {
                CallError::Lua {
                    file,
                    line,
                    message,
                    ..
                } => CallError::Lua {
                    callback: "reload",
                    file,
                    line,
                    message,
                },
                CallError::Budget { kind, .. } => CallError::Budget {
                    kind,
                    callback: "reload",
                },
                other => other,
            });
        }
        self.mode = mode.clone();
        *self.sandbox.shared.mode_name.borrow_mut() = mode.name.clone();
        let _ = self.begin(Callback::OnReload, host, multi);
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
