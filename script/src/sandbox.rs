//! A fresh, sandboxed Lua state and the budgeted way to run code in it.
//!
//! The state gets the base library, `string`, `table`, `math`, `utf8` and a trimmed `os`;
//! the prelude (`prelude.lua`) removes the escape hatches, installs asobi's `require`, the
//! `game` table and the budget-aware `pcall`. No `io`, `debug`, `package` or `coroutine`:
//! the last one because budget enforcement and service calls yield the callback's
//! coroutine, and a script coroutine would absorb that yield (the prelude keeps
//! `coroutine.yield` and `isyieldable` for itself, then removes the library).
//!
//! A callback runs in a coroutine: [`Sandbox::start`] begins it and [`Sandbox::resume`]
//! continues one suspended on a service call; both answer a [`Step`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Thread,
    ThreadStatus, Value, VmState,
};

use crate::api::{self, Shared};
use crate::budget::{Allowance, Budgets, HookVerdict};
use crate::error::{parse_lua_message, BudgetKind, CallError};
use crate::json::Marks;
use crate::service::ServiceCall;

const PRELUDE: &str = include_str!("prelude.lua");

/// The prelude is compiled once per process and loaded as bytecode into every VM.
fn prelude_bytecode() -> &'static [u8] {
    static BYTECODE: OnceLock<Vec<u8>> = OnceLock::new();
    BYTECODE.get_or_init(|| {
        let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
            .expect("a bare Lua state can always be created");
        lua.load(PRELUDE)
            .set_name("=asobi:sandbox")
            .set_mode(ChunkMode::Text)
            .into_function()
            .expect("the embedded sandbox prelude compiles")
            .dump(false)
    })
}

/// A sandboxed Lua state with its budget meter and `game.*` plumbing.
pub(crate) struct Sandbox {
    pub(crate) lua: Lua,
    pub(crate) shared: Rc<Shared>,
    clear_require_cache: Function,
    install_extensions: Function,
    /// The prelude's `set_zone(ctx)`: the zone context of a world callback, or `nil`.
    pub(crate) set_zone: Function,
    globals: Table,
    /// A coroutine that finished normally, reused for the next call (creating one per call
    /// is a measurable share of a small callback).
    spare: RefCell<Option<Thread>>,
    /// The callback suspended on a service call or at the end of its slice, if any.
    suspended: RefCell<Option<Thread>>,
    /// When it suspended.
    suspended_at: std::cell::Cell<Option<std::time::Instant>>,
    /// Whether it suspended at the end of a slice (the hook yielded it) rather than on a
    /// service call.
    suspended_by_hook: std::cell::Cell<bool>,
}

/// How far a callback got.
pub(crate) enum Step {
    /// It returned these values.
    Done(MultiValue),
    /// It is suspended on this service call.
    Waiting(ServiceCall),
}

impl Sandbox {
    pub(crate) fn new(budgets: &Budgets) -> mlua::Result<Sandbox> {
        let libs = StdLib::STRING
            | StdLib::TABLE
            | StdLib::MATH
            | StdLib::UTF8
            | StdLib::OS
            | StdLib::COROUTINE;
        let lua = Lua::new_with(libs, LuaOptions::new())?;
        let shared = Rc::new(Shared::new(budgets, Marks::new(&lua)?));
        let helpers = api::helpers(&lua, &shared)?;
        let prelude = lua
            .load(prelude_bytecode())
            .set_mode(ChunkMode::Binary)
            .into_function()?;
        let internals: Table = prelude.call(helpers)?;
        let clear_require_cache = internals.raw_get("clear_require_cache")?;
        let install_extensions = internals.raw_get("install_extensions")?;
        let set_zone = internals.raw_get("set_zone")?;

        let meter_owner = shared.clone();
        let interval = shared.meter.hook_interval();
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(interval),
            move |_, _| match meter_owner.meter.on_hook() {
                HookVerdict::Continue => Ok(VmState::Continue),
                // A service call was just parked: the script yields for it on its own in a
                // few instructions; a slice yield now would swallow that request's reply.
                HookVerdict::Yield
                    if meter_owner.meter.sliced() && meter_owner.pending.borrow().is_some() =>
                {
                    Ok(VmState::Continue)
                }
                HookVerdict::Yield => Ok(VmState::Yield),
                HookVerdict::Raise => Err(mlua::Error::runtime("script aborted: over budget")),
            },
        )?;
        lua.set_memory_limit(budgets.memory_bytes)?;
        let globals = lua.globals();
        Ok(Sandbox {
            lua,
            shared,
            clear_require_cache,
            install_extensions,
            set_zone,
            globals,
            spare: RefCell::new(None),
            suspended: RefCell::new(None),
            suspended_at: std::cell::Cell::new(None),
            suspended_by_hook: std::cell::Cell::new(false),
        })
    }

    pub(crate) fn globals(&self) -> &Table {
        &self.globals
    }

    pub(crate) fn clear_require_cache(&self) -> mlua::Result<()> {
        self.clear_require_cache.call(())
    }

    /// Installs `game.<namespace>.<fn>` for every extension binding in `bindings` (and removes
    /// the ones an earlier call installed that `bindings` no longer has).
    pub(crate) fn install_extensions(&self, bindings: &crate::ext::Bindings) -> mlua::Result<()> {
        let spec = self.lua.create_table()?;
        for (ns, fns) in bindings.iter() {
            spec.raw_set(
                ns.as_str(),
                self.lua
                    .create_sequence_from(fns.iter().map(String::as_str))?,
            )?;
        }
        self.install_extensions.call(spec)
    }

    /// Loads compiled bytecode as a function (trusted: produced by [`crate::Game::load`]).
    pub(crate) fn load_bytecode(&self, bytecode: &[u8]) -> mlua::Result<Function> {
        self.lua
            .load(bytecode)
            .set_mode(ChunkMode::Binary)
            .into_function()
    }

    /// Runs `func(args)` inside a coroutine under `allowance`, where no service call may
    /// suspend and no slice ends. Classifies every way it can end.
    pub(crate) fn run<A>(
        &self,
        callback: &'static str,
        allowance: Allowance,
        func: Function,
        args: A,
    ) -> Result<MultiValue, CallError>
    where
        A: FnOnce(&Lua) -> mlua::Result<MultiValue>,
    {
        match self.start(callback, allowance, func, args, false)? {
            Step::Done(values) => Ok(values),
            // `service_call` refuses when the callback may not suspend; should a yield get
            // through anyway, it is dropped like an aborted call.
            Step::Waiting(_) => {
                self.abandon();
                Err(CallError::Budget {
                    kind: BudgetKind::Instructions,
                    callback,
                })
            }
        }
    }

    /// Starts `func(args)` in a coroutine under `allowance`. With `suspendable`, a service
    /// call suspends it ([`Step::Waiting`]) until [`Sandbox::resume`] or
    /// [`Sandbox::abandon`], and so does the end of a time slice (with
    /// [`ServiceCall::slice`]); only running time counts against the allowance.
    pub(crate) fn start<A>(
        &self,
        callback: &'static str,
        allowance: Allowance,
        func: Function,
        args: A,
        suspendable: bool,
    ) -> Result<Step, CallError>
    where
        A: FnOnce(&Lua) -> mlua::Result<MultiValue>,
    {
        self.abandon();
        let meter = &self.shared.meter;
        meter.arm(allowance, suspendable);
        self.shared.suspendable.set(suspendable);
        let thread = self.unmetered(|| args(&self.lua)).and_then(|args| {
            let thread = match self.spare.take() {
                Some(thread) => {
                    thread.reset(func)?;
                    thread
                }
                None => self.lua.create_thread(func)?,
            };
            Ok((args, thread))
        });
        let (args, thread) = match thread {
            Ok(ok) => ok,
            Err(e) => return Err(classify(callback, meter.spent(), &e)),
        };
        if !self.within_memory_limit() {
            return Err(CallError::Budget {
                kind: BudgetKind::Memory,
                callback,
            });
        }
        *self.shared.callback_thread.borrow_mut() = Some(thread.clone());
        let result = thread.resume::<MultiValue>(args);
        self.settle(callback, thread, result)
    }

    /// [`Self::resume`] with a JSON reply, as extensions and RPC handlers receive them; a reply
    /// Lua cannot hold arrives as `nil`.
    pub(crate) fn resume_json(
        &self,
        callback: &'static str,
        reply: &serde_json::Value,
    ) -> Result<Step, CallError> {
        let value = crate::json::to_lua(&self.lua, reply, &self.shared.marks).unwrap_or(Value::Nil);
        self.resume(callback, value)
    }

    /// Continues the suspended callback with `reply` as the service call's return value.
    pub(crate) fn resume(&self, callback: &'static str, reply: Value) -> Result<Step, CallError> {
        let waited_too_long = self
            .wait_deadline()
            .is_some_and(|d| std::time::Instant::now() >= d);
        let Some(thread) = self.suspended.take() else {
            return Err(CallError::NotWaiting);
        };
        self.suspended_at.set(None);
        self.shared.meter.resume();
        if waited_too_long || self.shared.meter.past_deadline() {
            self.abandon_thread();
            return Err(CallError::Budget {
                kind: BudgetKind::WallTime,
                callback,
            });
        }
        // A coroutine the hook yielded continues inside a Lua function: resuming it with
        // arguments would write them over that function's registers (mlua resets the
        // thread's stack top after a resume), so it gets none.
        let result = if self.suspended_by_hook.replace(false) {
            thread.resume::<MultiValue>(())
        } else {
            thread.resume::<MultiValue>(reply)
        };
        self.settle(callback, thread, result)
    }

    /// Drops a suspended callback without running any more of its code.
    pub(crate) fn abandon(&self) {
        self.suspended.take();
        self.suspended_at.set(None);
        self.suspended_by_hook.set(false);
        self.abandon_thread();
    }

    fn abandon_thread(&self) {
        self.shared.pending.take();
        self.shared.callback_thread.take();
        self.shared.suspendable.set(false);
    }

    /// When the running callback's allowance of running time would end.
    pub(crate) fn deadline(&self) -> std::time::Instant {
        self.shared.meter.deadline()
    }

    /// When the suspended callback stops waiting for its answer (its suspension plus
    /// [`Budgets::service_wait`]); `None` when nothing is suspended.
    pub(crate) fn wait_deadline(&self) -> Option<std::time::Instant> {
        self.suspended_at
            .get()
            .map(|at| at + self.shared.budgets.service_wait)
    }

    fn settle(
        &self,
        callback: &'static str,
        thread: Thread,
        result: mlua::Result<MultiValue>,
    ) -> Result<Step, CallError> {
        let meter = &self.shared.meter;
        meter.pause();
        let pending = self.shared.pending.take();
        match result {
            Ok(values) if thread.status() == ThreadStatus::Finished => {
                self.abandon_thread();
                self.spare.replace(Some(thread));
                Ok(Step::Done(values))
            }
            // Suspended on a service call, or at the end of its slice, with budget left.
            Ok(_) if meter.spent().is_none() && (pending.is_some() || meter.sliced()) => {
                self.suspended.replace(Some(thread));
                self.suspended_at.set(Some(std::time::Instant::now()));
                self.suspended_by_hook.set(pending.is_none());
                Ok(Step::Waiting(pending.unwrap_or_else(ServiceCall::slice)))
            }
            // Not finished: the hook yielded it. Dropping the thread abandons it without
            // running any more of its code.
            Ok(_) => {
                self.abandon_thread();
                Err(CallError::Budget {
                    kind: meter.spent().unwrap_or(BudgetKind::Instructions),
                    callback,
                })
            }
            Err(e) => {
                self.abandon_thread();
                Err(classify(callback, meter.spent(), &e))
            }
        }
    }

    /// The global `name` if it is a function.
    pub(crate) fn function(&self, name: &str) -> Option<Function> {
        match self.globals().raw_get::<Value>(name) {
            Ok(Value::Function(f)) => Some(f),
            _ => None,
        }
    }

    /// The global named by the interned string `name` if it is a function: the lookup a
    /// callback makes on every call, without creating (hashing, interning) the name again.
    pub(crate) fn function_named(&self, name: &mlua::String) -> Option<Function> {
        match self.globals().raw_get::<Value>(name) {
            Ok(Value::Function(f)) => Some(f),
            _ => None,
        }
    }

    /// Runs `build` (a callback's arguments) with the memory limit lifted. With a limit set,
    /// mlua runs every string, table and `raw_set` it creates in a protected call of its own,
    /// which costs more than the work itself for a small input; without one it pushes them
    /// directly. What `build` converts is bounded by its source (a frame the edge size-capped,
    /// a service reply), and [`Sandbox::within_memory_limit`] checks the total right after, so
    /// the budget still holds before any script code runs.
    fn unmetered<T>(&self, build: impl FnOnce() -> T) -> T {
        struct Restore<'a>(&'a Lua, usize);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let _ = self.0.set_memory_limit(self.1);
            }
        }
        let limit = self.shared.budgets.memory_bytes;
        let _restore = Restore(&self.lua, limit);
        let _ = self.lua.set_memory_limit(0);
        build()
    }

    /// Whether the state fits its memory budget, after a full collection if it does not at
    /// first (the garbage counts until collected, as it does for an allocation that fails).
    fn within_memory_limit(&self) -> bool {
        let limit = self.shared.budgets.memory_bytes;
        if limit == 0 || self.lua.used_memory() <= limit {
            return true;
        }
        let _ = self.lua.gc_collect();
        self.lua.used_memory() <= limit
    }
}

fn is_memory(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory(cause),
        mlua::Error::WithContext { cause, .. } => is_memory(cause),
        _ => false,
    }
}

fn innermost_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::CallbackError { cause, .. } => innermost_message(cause),
        mlua::Error::WithContext { cause, .. } => innermost_message(cause),
        other => other.to_string(),
    }
}

pub(crate) fn classify(
    callback: &'static str,
    spent: Option<BudgetKind>,
    e: &mlua::Error,
) -> CallError {
    if let Some(kind) = spent {
        return CallError::Budget { kind, callback };
    }
    // The bounded library reports an allocation it refused with Lua's own message.
    if is_memory(e) || innermost_message(e) == "not enough memory" {
        return CallError::Budget {
            kind: BudgetKind::Memory,
            callback,
        };
    }
    let (file, line, message) = parse_lua_message(&innermost_message(e));
    CallError::Lua {
        callback,
        file,
        line,
        message,
    }
}
