//! Lua calls that wait for an answer: the data that crosses the seam between a suspended
//! callback and the engine.
//!
//! A `game.*` call that needs another service (economy, leaderboards, storage, chat,
//! notifications) does not block the shard. The callback's coroutine yields; the VM hands the
//! engine a [`ServiceCall`] inside [`Call::Waiting`]; the engine routes it (to the owning
//! shard's service, to the storage bridge) and later hands the reply to
//! [`crate::MatchVm::resume`], which continues the coroutine with the reply as the call's
//! return value. Everything here is plain data: no closures or channels, so a call can cross
//! a shard or, later, a process.
//!
//! | Lua | `service` | `op` |
//! |---|---|---|
//! | `game.economy.grant/debit/balance/purchase(...)` | `"economy"` | the function name |
//! | `game.leaderboard.submit/top/rank/around(...)` | `"leaderboard"` | the function name |
//! | `game.storage.get/set/player_get/player_set(...)` | `"storage"` | the function name |
//! | `game.chat.send(...)` | `"chat"` | `"send"` |
//! | `game.notify(...)`, `game.notify_many(...)` | `"notify"` | `"notify"`, `"notify_many"` |
//! | `game.tournament.create(spec)` | `"tournament"` | `"create"` |
//!
//! `args` is the call's arguments as a JSON array (`nil` becomes `null`, trailing `nil`s are
//! kept). The reply is any JSON value; asobi's failure shape is `{"error": "..."}`, which an
//! engine without the feature answers, so scripts see exactly what they saw before the seam.
//! `game.leaderboard.submit` answers a plain boolean (asobi's shape): `true` once the owning
//! shard recorded the score.

use serde::{Deserialize, Serialize};

use crate::vm::JoinOutcome;

/// Services a script may call, and the operations of each (see the module table).
pub(crate) const SERVICES: &[(&str, &[&str])] = &[
    ("economy", &["grant", "debit", "balance", "purchase"]),
    ("leaderboard", &["submit", "top", "rank", "around"]),
    ("storage", &["get", "set", "player_get", "player_set"]),
    ("chat", &["send"]),
    ("notify", &["notify", "notify_many"]),
    ("tournament", &["create"]),
];

/// Most arguments one service call may carry once encoded, in bytes: the same bound as a
/// broadcast payload, so one call cannot ship the whole VM heap to another shard.
pub const MAX_SERVICE_ARGS_BYTES: usize = crate::api::MAX_PAYLOAD_BYTES;

/// A request from a suspended callback to a service outside the VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCall {
    /// The `game.*` namespace: `"economy"`, `"leaderboard"`, `"storage"`, `"chat"`,
    /// `"notify"`.
    pub service: String,
    /// The function called: `"grant"`, `"top"`, `"get"`, ...
    pub op: String,
    /// The arguments, as a JSON array.
    pub args: serde_json::Value,
}

/// The service of [`ServiceCall::slice`].
pub(crate) const SLICE_SERVICE: &str = "asobi.slice";

impl ServiceCall {
    /// Not a call: the callback ran for its time slice and yielded so the shard can run
    /// other work. Answer it (with any value, which the callback does not see) once the
    /// work due before it has run; it waits for free, like a service call.
    pub fn slice() -> ServiceCall {
        ServiceCall {
            service: SLICE_SERVICE.to_owned(),
            op: "continue".to_owned(),
            args: serde_json::Value::Null,
        }
    }

    /// Whether this is the end of a time slice rather than a call to a service.
    pub fn is_slice(&self) -> bool {
        self.service == SLICE_SERVICE
    }
}

/// The result of a callback that may wait for a service.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a Waiting call must be resumed or abandoned before the VM can run anything else"]
pub enum Call<R> {
    /// The callback completed with this result.
    Done(R),
    /// The callback is suspended until [`crate::MatchVm::resume`] brings the reply (or
    /// [`crate::MatchVm::abandon`] gives up on it).
    Waiting(ServiceCall),
}

impl<R> Call<R> {
    /// Maps the result of a completed call.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> Call<S> {
        match self {
            Call::Done(r) => Call::Done(f(r)),
            Call::Waiting(call) => Call::Waiting(call),
        }
    }

    /// The result, when the call completed.
    pub fn done(self) -> Option<R> {
        match self {
            Call::Done(r) => Some(r),
            Call::Waiting(_) => None,
        }
    }
}

/// Which callback a [`crate::MatchVm::resume`] completed, with its result (the `R` its
/// method would have returned in [`Call::Done`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Resumed {
    /// `init` completed; the state is set.
    Init,
    /// `join` completed.
    Join(JoinOutcome),
    /// `leave` completed.
    Leave,
    /// `handle_input` completed.
    HandleInput,
    /// `tick` completed.
    Tick,
    /// `vote_requested` completed with this vote configuration.
    VoteRequested(Option<serde_json::Value>),
    /// `vote_resolved` completed.
    VoteResolved,
    /// `on_phase_started` completed.
    PhaseStarted,
    /// `on_phase_ended` completed.
    PhaseEnded,
}

/// Adds `service_call(service, op, ...)` to the prelude's helper table. It checks that the
/// running code may suspend (a suspendable callback, on the callback's own coroutine),
/// encodes the arguments and parks the request for the runtime; `true` means "now yield",
/// anything else is the `{error = ...}` value to return to the script instead.
pub(crate) fn install(
    lua: &mlua::Lua,
    h: &mlua::Table,
    shared: &std::rc::Rc<crate::api::Shared>,
) -> mlua::Result<()> {
    use mlua::{MultiValue, Value};
    let s = shared.clone();
    let f = lua.create_function(
        move |lua, (service, op, args): (String, String, MultiValue)| {
            let name = if service == op || service == "ext" {
                format!("game.{op}")
            } else {
                format!("game.{service}.{op}")
            };
            let fail = |message: String| -> mlua::Result<Value> {
                let t = lua.create_table_with_capacity(0, 1)?;
                t.raw_set("error", message)?;
                Ok(Value::Table(t))
            };
            if !s.suspendable.get() {
                return fail(format!(
                    "{name} cannot wait for an answer in this callback \
                     (get_state, on_reload, phases and top-level code must not suspend)"
                ));
            }
            let on_callback_thread =
                s.callback_thread.borrow().as_ref() == Some(&lua.current_thread());
            if !on_callback_thread {
                return fail(format!("{name} cannot be called from inside a coroutine"));
            }
            let mut encoded = Vec::with_capacity(args.len());
            for arg in args.iter() {
                match crate::json::to_json(arg, &s.marks) {
                    Ok(v) => encoded.push(v),
                    Err(e) => return fail(format!("{name}: unencodable argument: {e}")),
                }
            }
            let args = serde_json::Value::Array(encoded);
            let size = serde_json::to_vec(&args)
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if size > MAX_SERVICE_ARGS_BYTES {
                return fail("payload_too_large".to_owned());
            }
            *s.pending.borrow_mut() = Some(ServiceCall { service, op, args });
            Ok(Value::Boolean(true))
        },
    )?;
    h.raw_set("service_call", f)?;
    let services = lua.create_table()?;
    for (service, ops) in SERVICES {
        services.raw_set(*service, lua.create_sequence_from(ops.iter().copied())?)?;
    }
    h.raw_set("services", services)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlua::{MultiValue, StdLib, Value};

    use crate::budget::Budgets;
    use crate::sandbox::{Sandbox, Step};

    /// Scripts get no `coroutine` library; should one ever be exposed, a service call made
    /// inside a script's own coroutine must not yield into it (the script would swallow the
    /// request): it answers an error value instead.
    #[test]
    fn a_call_from_a_script_coroutine_answers_an_error() {
        let sandbox = Sandbox::new(&Budgets::default()).unwrap();
        sandbox.lua.load_std_libs(StdLib::COROUTINE).unwrap();
        let func = sandbox
            .lua
            .load(
                r#"
                local co = coroutine.create(function() return game.economy.balance("p") end)
                local ok, r = coroutine.resume(co)
                return ok, r.error, coroutine.status(co)
                "#,
            )
            .into_function()
            .unwrap();
        let step = sandbox
            .start(
                "handle_input",
                Budgets::default().scaled(1),
                func,
                |_| Ok(MultiValue::new()),
                true,
            )
            .unwrap();
        let Step::Done(values) = step else {
            panic!("the call must not suspend the callback");
        };
        let values: Vec<Value> = values.into_vec();
        assert_eq!(values[0], Value::Boolean(true));
        let message = values[1].as_string().unwrap().to_string_lossy();
        assert!(message.contains("from inside a coroutine"), "{message}");
        assert_eq!(values[2].as_string().unwrap().to_string_lossy(), "dead");
    }
}
