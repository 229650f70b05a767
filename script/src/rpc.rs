//! Lua RPCs: the functions a game serves to clients through `rpc.call` and
//! `POST /api/v1/rpc/:method`.
//!
//! asobi serves RPCs from Erlang extensions; asobi-rs lets a Lua game declare them. The game
//! directory's `rpc.lua` fills a global table `rpc` with `["<namespace>.<name>"] =
//! function(params, ctx)`, and may declare the codes its handlers answer in a global `codes`
//! (`["quests.already_claimed"] = { status = 409, message = "..." }`), like an extension's
//! `codes/0`. A handler returns a table (the result object) or `nil, code[, details]`.
//!
//! An [`RpcVm`] runs handlers in the same sandbox as a match, under the same per-callback
//! budgets, and may make the same suspending `game.*` calls ([`Call::Waiting`]). A handler that
//! fails or runs over its budget marks the VM failed; the engine replaces a failed VM rather
//! than trusting it again.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlua::{IntoLuaMulti, MultiValue, Value};

use crate::api::{ModuleScope, NullHost};
use crate::budget::{Budgets, SETUP_FACTOR};
use crate::error::{CallError, Diagnostic};
use crate::game::GameCode;
use crate::json;
use crate::sandbox::{Sandbox, Step};
use crate::service::Call;

/// The file a game declares its RPCs in.
pub const RPC_FILE: &str = "rpc.lua";
/// Longest RPC method name (asobi's event-name bound).
pub const MAX_METHOD: usize = 64;

/// A code a game's RPCs may answer, as declared in `codes`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcCode {
    /// HTTP status for the REST transport.
    pub status: u16,
    /// Message for a human.
    pub message: String,
}

/// A game's `rpc.lua`, compiled and probed.
#[non_exhaustive]
pub struct RpcScript {
    /// Declared methods, sorted.
    pub methods: Vec<String>,
    /// Declared codes.
    pub codes: BTreeMap<String, RpcCode>,
    /// The game version this was compiled in.
    pub version: u64,
    pub(crate) main: Arc<[u8]>,
    pub(crate) scope: ModuleScope,
    pub(crate) bindings: Arc<crate::ext::Bindings>,
}

impl std::fmt::Debug for RpcScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcScript")
            .field("methods", &self.methods)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// How a handler answered.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RpcReply {
    /// `rpc.ok` with this result object.
    Ok(serde_json::Value),
    /// `rpc.error` with a code the game returned, and its details (an object).
    Error {
        /// The code, as returned (the engine checks it against the declared set).
        code: String,
        /// Details object (`{}` when none).
        details: serde_json::Value,
    },
    /// No such method in `rpc`.
    UnknownMethod,
    /// The handler returned something outside the contract (a defect: `internal`).
    Invalid(String),
}

/// Runs the chunk of `rpc.lua` in `sandbox`.
fn load(
    sandbox: &Sandbox,
    main: &[u8],
    scope: &ModuleScope,
    bindings: &crate::ext::Bindings,
) -> Result<(), CallError> {
    *sandbox.shared.scope.borrow_mut() = Some(scope.clone());
    sandbox
        .install_extensions(bindings)
        .map_err(|e| crate::sandbox::classify("load", None, &e))?;
    *sandbox.shared.mode_name.borrow_mut() = "rpc".to_owned();
    let func = sandbox
        .load_bytecode(main)
        .map_err(|e| crate::sandbox::classify("load", None, &e))?;
    let result = sandbox.run(
        "load",
        sandbox.shared.budgets.scaled(SETUP_FACTOR),
        func,
        |_| Ok(MultiValue::new()),
    );
    sandbox.shared.flush(&mut NullHost);
    result.map(|_| ())
}

/// Compiles and probes `rpc.lua` when the game has one. Problems are errors: a game whose RPC
/// file does not load must not start half-served.
pub(crate) fn resolve(
    code: &Arc<GameCode>,
    version: u64,
    budgets: &Budgets,
    bindings: &Arc<crate::ext::Bindings>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Arc<RpcScript>> {
    let main = code.files.get(RPC_FILE)?.clone();
    let scope = ModuleScope {
        code: code.clone(),
        dir: String::new(),
    };
    let fail = |diagnostics: &mut Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::error(RPC_FILE, None, message));
        None
    };
    let sandbox = match Sandbox::new(budgets) {
        Ok(s) => s,
        Err(e) => return fail(diagnostics, format!("creating a Lua state: {e}")),
    };
    if let Err(e) = load(&sandbox, &main, &scope, bindings) {
        return fail(diagnostics, format!("rpc.lua failed to load: {e}"));
    }
    let Ok(Value::Table(table)) = sandbox.globals().raw_get::<Value>("rpc") else {
        return fail(
            diagnostics,
            "rpc.lua must set a global table `rpc` of method = function(params, ctx)".into(),
        );
    };
    let mut methods = Vec::new();
    for (k, v) in table.pairs::<Value, Value>().filter_map(Result::ok) {
        let name = match &k {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return fail(
                    diagnostics,
                    format!(
                        "rpc method names must be strings, got {}",
                        other.type_name()
                    ),
                )
            }
        };
        if name.is_empty() || name.len() > MAX_METHOD {
            return fail(
                diagnostics,
                format!("rpc method {name:?} must be 1-{MAX_METHOD} bytes"),
            );
        }
        if !matches!(v, Value::Function(_)) {
            return fail(
                diagnostics,
                format!("rpc method {name:?} must be a function"),
            );
        }
        methods.push(name);
    }
    methods.sort();
    let mut codes = BTreeMap::new();
    if let Ok(Value::Table(t)) = sandbox.globals().raw_get::<Value>("codes") {
        for (k, v) in t.pairs::<Value, Value>().filter_map(Result::ok) {
            let (Value::String(name), Value::Table(spec)) = (&k, &v) else {
                return fail(
                    diagnostics,
                    "codes must map a code string to {status, message}".into(),
                );
            };
            let status = spec
                .raw_get::<Option<i64>>("status")
                .ok()
                .flatten()
                .unwrap_or(400);
            let Ok(status) = u16::try_from(status).map_err(drop).and_then(|s| {
                if (400..600).contains(&s) {
                    Ok(s)
                } else {
                    Err(())
                }
            }) else {
                return fail(
                    diagnostics,
                    format!("code {:?}: status must be 400-599", name.to_string_lossy()),
                );
            };
            let message = spec
                .raw_get::<Option<String>>("message")
                .ok()
                .flatten()
                .unwrap_or_default();
            codes.insert(name.to_string_lossy(), RpcCode { status, message });
        }
    }
    Some(Arc::new(RpcScript {
        methods,
        codes,
        version,
        main,
        scope,
        bindings: bindings.clone(),
    }))
}

/// A VM serving a game's RPCs. Not `Send`: it lives on the shard that made it.
pub struct RpcVm {
    sandbox: Sandbox,
    script: Arc<RpcScript>,
    failed: bool,
    waiting: bool,
}

impl std::fmt::Debug for RpcVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcVm")
            .field("version", &self.script.version)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl RpcVm {
    /// A fresh VM with `script` loaded, under `budgets`.
    pub fn new(script: &Arc<RpcScript>, budgets: &Budgets) -> Result<RpcVm, CallError> {
        let sandbox =
            Sandbox::new(budgets).map_err(|e| crate::sandbox::classify("load", None, &e))?;
        load(&sandbox, &script.main, &script.scope, &script.bindings)?;
        Ok(RpcVm {
            sandbox,
            script: script.clone(),
            failed: false,
            waiting: false,
        })
    }

    /// The game version of the code this VM runs.
    pub fn code_version(&self) -> u64 {
        self.script.version
    }

    /// Whether a handler failed or overran in this VM (then it must not be reused).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Calls `method(params, ctx)`. A handler that makes a suspending `game.*` call answers
    /// [`Call::Waiting`]; continue it with [`RpcVm::resume`] or drop it with
    /// [`RpcVm::abandon`].
    pub fn call(
        &mut self,
        method: &str,
        params: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<Call<RpcReply>, CallError> {
        let func = match self.sandbox.globals().raw_get::<Value>("rpc") {
            Ok(Value::Table(t)) => match t.raw_get::<Value>(method) {
                Ok(Value::Function(f)) => f,
                _ => return Ok(Call::Done(RpcReply::UnknownMethod)),
            },
            _ => return Ok(Call::Done(RpcReply::UnknownMethod)),
        };
        let marks = &self.sandbox.shared.marks;
        let step = self.sandbox.start(
            "rpc",
            self.sandbox.shared.budgets.scaled(1),
            func,
            |lua| {
                let p = json::to_lua(lua, params, marks)?;
                let c = json::to_lua(lua, ctx, marks)?;
                (p, c).into_lua_multi(lua)
            },
            true,
        );
        self.settle(step)
    }

    /// Continues a handler suspended on a service call with `reply` as the call's value.
    pub fn resume(&mut self, reply: &serde_json::Value) -> Result<Call<RpcReply>, CallError> {
        let step = self.sandbox.resume_json("rpc", reply);
        self.settle(step)
    }

    /// Drops a suspended handler (its reply never came). The VM is marked failed.
    pub fn abandon(&mut self) {
        self.sandbox.abandon();
        self.waiting = false;
        self.failed = true;
    }

    /// When the running or suspended handler's wall-clock budget ends.
    pub fn deadline(&self) -> std::time::Instant {
        self.sandbox.deadline()
    }

    fn settle(&mut self, step: Result<Step, CallError>) -> Result<Call<RpcReply>, CallError> {
        self.sandbox.shared.flush(&mut NullHost);
        match step {
            Ok(Step::Waiting(call)) => {
                self.waiting = true;
                Ok(Call::Waiting(call))
            }
            Ok(Step::Done(values)) => {
                self.waiting = false;
                Ok(Call::Done(self.reply(values)))
            }
            Err(e) => {
                self.waiting = false;
                self.failed = true;
                Err(e)
            }
        }
    }

    fn reply(&self, values: MultiValue) -> RpcReply {
        let marks = &self.sandbox.shared.marks;
        let mut it = values.into_iter();
        let first = it.next().unwrap_or(Value::Nil);
        match first {
            Value::Table(_) => match json::to_json(&first, marks) {
                Ok(v @ serde_json::Value::Object(_)) => RpcReply::Ok(v),
                // An empty Lua table encodes as `[]`; a result is always an object.
                Ok(serde_json::Value::Array(a)) if a.is_empty() => {
                    RpcReply::Ok(serde_json::json!({}))
                }
                Ok(_) => RpcReply::Invalid("the result must be a table with string keys".into()),
                Err(e) => RpcReply::Invalid(format!("the result cannot be encoded: {e}")),
            },
            Value::Nil => match it.next() {
                Some(Value::String(code)) => {
                    let details = match it.next() {
                        Some(d @ Value::Table(_)) => match json::to_json(&d, marks) {
                            Ok(v @ serde_json::Value::Object(_)) => v,
                            _ => serde_json::json!({}),
                        },
                        _ => serde_json::json!({}),
                    };
                    RpcReply::Error {
                        code: code.to_string_lossy(),
                        details,
                    }
                }
                _ => RpcReply::Invalid("return a result table, or nil and an error code".into()),
            },
            other => RpcReply::Invalid(format!(
                "the result must be a table, got {}",
                other.type_name()
            )),
        }
    }
}
