//! Lua extensions: asobi's extension surface for a Lua game.
//!
//! asobi installs Erlang applications whose `<app>_extension` module declares what core cannot
//! discover (`rpc/0`, `lua/0`, `routes/0`, `codes/0`). asobi-rs reads the same declarations
//! from Lua: every file directly in the game directory's `extensions/` folder is one
//! extension, and its global `extension` table is the manifest:
//!
//! ```lua
//! extension = {
//!   name = "quests",                       -- game.quests, /api/v1/quests/..., quests.* codes
//!   version = 1,                           -- recorded, like extension_version
//!   codes = { ["quests.already_claimed"] = { status = 409, message = "Already claimed." } },
//!   routes = { { method = "get", path = "/api/v1/quests/board", handler = "board" } },
//!   rpc = { ["quests.claim"] = "claim" },  -- method = global function
//!   lua = { progress = "progress" },        -- game.quests.progress = global function
//!   events = { "quests.completed" },        -- optional closed set for game.emit
//! }
//! ```
//!
//! Handlers are named, like asobi's `{Module, Function, Arity}`, and must be global functions
//! of the file once it has run: a missing one is a load error, not a 500 later. Everything
//! the extension claims lives under its own name, so two extensions, or an extension and
//! core, cannot collide; the names core uses are refused. Problems are load errors, so at
//! start-up the server refuses the game and on a hot reload the watcher keeps the old one.
//!
//! An [`ExtVm`] runs one extension's functions under the same budgets as a match callback
//! and may make the same suspending `game.*` calls. It does not get other extensions'
//! `game.<namespace>` tables, so extensions cannot call each other in a loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlua::{IntoLuaMulti, MultiValue, Table, Value};

use crate::api::{ModuleScope, NullHost};
use crate::budget::{Budgets, SETUP_FACTOR};
use crate::error::{CallError, Diagnostic};
use crate::game::GameCode;
use crate::json;
use crate::rpc::{RpcCode, RpcReply, MAX_METHOD};
use crate::sandbox::{Sandbox, Step};
use crate::service::Call;

/// The folder of the game directory whose top-level `.lua` files are extensions.
pub const EXT_DIR: &str = "extensions";
/// Longest extension name.
pub const MAX_EXT_NAME: usize = 32;
/// Most routes one extension may declare (a manifest is a few declarations, not a table).
const MAX_ROUTES: usize = 64;
/// Most path segments of a declared route.
const MAX_SEGMENTS: usize = 16;
/// Longest event name (asobi's bound on `module.event` names).
pub(crate) const MAX_EVENT_NAME: usize = 64;

/// Names an extension may not take: the `game.*` names core installs (asobi reserves its own
/// Lua namespaces the same way), the first path segment of every core REST route (so a
/// declared route can never shadow or be shadowed by one of core's), and asobi's privileged
/// plane prefixes. The engine tests that every core route's first segment is listed.
pub const RESERVED_NAMES: &[&str] = &[
    // game.* and asobi's reserved namespaces and code domains
    "id",
    "log",
    "broadcast",
    "send",
    "match",
    "bots",
    "spatial",
    "economy",
    "leaderboard",
    "storage",
    "notify",
    "notify_many",
    "emit",
    "chat",
    "zone",
    "terrain",
    "game",
    "module",
    "rpc",
    "event",
    "auth",
    "session",
    "world",
    "presence",
    "matchmaker",
    "vote",
    "social",
    "tournament",
    "iap",
    "ops",
    "console",
    "ws",
    "internal",
    "lua",
    // first segments of core REST routes
    "api",
    "dm",
    "friends",
    "groups",
    "health",
    "inventory",
    "leaderboards",
    "live",
    "matches",
    "metrics",
    "notifications",
    "players",
    "ready",
    "saves",
    "store",
    "tournaments",
    "votes",
    "wallets",
    "parties",
    "party",
    "worlds",
];

/// Who may call a declared route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// A player's bearer token, checked like every core `/api/v1` route.
    Player,
    /// Nobody is checked: the handler authenticates its caller (a store's signature).
    Webhook,
}

/// One route from an extension's `routes`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExtRoute {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path as declared (`/api/v1/quests/board/:id`).
    pub path: String,
    /// The path's segments below `/api/v1` (`:name` for a binding).
    pub segments: Vec<String>,
    /// The global function answering it.
    pub handler: String,
    /// Who may call it.
    pub security: Security,
}

/// One extension, compiled and checked.
#[non_exhaustive]
pub struct ExtScript {
    /// Its name: the `game.<name>` namespace, the `/api/v1/<name>` path root and the domain
    /// of its codes, RPC methods and events.
    pub name: String,
    /// Its file, relative to the game directory.
    pub file: String,
    /// `version` from the manifest (1 when absent).
    pub extension_version: i64,
    /// The game version this was compiled in.
    pub version: u64,
    /// Declared codes.
    pub codes: BTreeMap<String, RpcCode>,
    /// Declared routes.
    pub routes: Vec<ExtRoute>,
    /// RPC method → global function.
    pub rpc: BTreeMap<String, String>,
    /// `game.<name>.<fn>` → global function.
    pub lua: BTreeMap<String, String>,
    /// The events it may emit, when it declared a closed set.
    pub events: Option<Vec<String>>,
    main: Arc<[u8]>,
    scope: ModuleScope,
}

impl std::fmt::Debug for ExtScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtScript")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl ExtScript {
    /// Whether this extension may emit `event`: `<name>.<event>` with both halves in
    /// `[A-Za-z0-9_-]`, at most [`MAX_EVENT_NAME`] bytes, and in `events` when it declared
    /// them. `Err` is asobi's code for the refusal.
    pub fn may_emit(&self, event: &str) -> Result<(), &'static str> {
        let Some((domain, name)) = event.split_once('.') else {
            return Err("event.invalid_name");
        };
        let charset = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if event.len() > MAX_EVENT_NAME || !charset(domain) || !charset(name) {
            return Err("event.invalid_name");
        }
        if domain != self.name {
            return Err("event.unowned_domain");
        }
        match &self.events {
            Some(events) if !events.iter().any(|e| e == event) => Err("event.unowned_domain"),
            _ => Ok(()),
        }
    }
}

/// `game.<namespace>` → its functions, for installing into match and RPC VMs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings(Vec<(String, Vec<String>)>);

impl Bindings {
    /// Namespaces and their function names.
    pub fn iter(&self) -> impl Iterator<Item = &(String, Vec<String>)> {
        self.0.iter()
    }
}

/// A game's extensions.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Extensions {
    /// Every extension, by name.
    pub by_name: BTreeMap<String, Arc<ExtScript>>,
    /// The `game.<namespace>` surface they declare.
    pub bindings: Arc<Bindings>,
}

/// A declared route that fits a request.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteMatch<'a> {
    /// The extension declaring it.
    pub ext: &'a Arc<ExtScript>,
    /// The route.
    pub route: &'a ExtRoute,
    /// The `:name` bindings with the request's values.
    pub params: Vec<(String, String)>,
}

/// What [`Extensions::route`] found for a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum RouteLookup<'a> {
    /// A route answers this method and path.
    Found(RouteMatch<'a>),
    /// The path is declared, but not for this method (405).
    WrongMethod,
    /// No extension declares the path.
    None,
}

impl Extensions {
    /// The route answering `method` (`"GET"`, ...) on `segments` (the path below `/api/v1`).
    pub fn route(&self, method: &str, segments: &[&str]) -> RouteLookup<'_> {
        let Some(first) = segments.first() else {
            return RouteLookup::None;
        };
        let Some(ext) = self.by_name.get(*first) else {
            return RouteLookup::None;
        };
        let mut known = false;
        for route in &ext.routes {
            if route.segments.len() != segments.len() {
                continue;
            }
            let fits = route
                .segments
                .iter()
                .zip(segments)
                .all(|(p, s)| p.starts_with(':') || p == s);
            if !fits {
                continue;
            }
            known = true;
            if route.method == method {
                let params = route
                    .segments
                    .iter()
                    .zip(segments)
                    .filter_map(|(p, s)| {
                        p.strip_prefix(':').map(|n| (n.to_owned(), (*s).to_owned()))
                    })
                    .collect();
                return RouteLookup::Found(RouteMatch { ext, route, params });
            }
        }
        if known {
            RouteLookup::WrongMethod
        } else {
            RouteLookup::None
        }
    }

    /// The extension and function serving RPC `method`.
    pub fn rpc(&self, method: &str) -> Option<(&Arc<ExtScript>, &str)> {
        let (domain, _) = method.split_once('.')?;
        let ext = self.by_name.get(domain)?;
        ext.rpc.get(method).map(|f| (ext, f.as_str()))
    }

    /// The extension and function behind `game.<ns>.<fn>`, from a service call's `op`
    /// (`"<ns>.<fn>"`).
    pub fn binding(&self, op: &str) -> Option<(&Arc<ExtScript>, &str)> {
        let (ns, func) = op.split_once('.')?;
        let ext = self.by_name.get(ns)?;
        ext.lua.get(func).map(|f| (ext, f.as_str()))
    }
}

/// Runs an extension's chunk in `sandbox`.
fn load(
    sandbox: &Sandbox,
    ext_name: &str,
    main: &[u8],
    scope: &ModuleScope,
) -> Result<(), CallError> {
    *sandbox.shared.scope.borrow_mut() = Some(scope.clone());
    *sandbox.shared.mode_name.borrow_mut() = format!("extension:{ext_name}");
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EXT_NAME
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// One manifest, read and checked.
struct Manifest {
    name: String,
    extension_version: i64,
    codes: BTreeMap<String, RpcCode>,
    routes: Vec<ExtRoute>,
    rpc: BTreeMap<String, String>,
    lua: BTreeMap<String, String>,
    events: Option<Vec<String>>,
}

/// Reads one manifest; `Err` is the problem, for a diagnostic on the extension's file.
fn read_manifest(sandbox: &Sandbox, file: &str) -> Result<Manifest, String> {
    let globals = sandbox.globals();
    let Ok(Value::Table(m)) = globals.raw_get::<Value>("extension") else {
        return Err("an extension must set a global table `extension` (its manifest)".into());
    };
    let name = match m.raw_get::<Value>("name") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        _ => return Err("extension.name must be a string".into()),
    };
    if !valid_name(&name) {
        return Err(format!(
            "extension.name {name:?} must be 1-{MAX_EXT_NAME} bytes of [a-z0-9_], starting with a letter"
        ));
    }
    if RESERVED_NAMES.contains(&name.as_str()) {
        return Err(format!("extension.name {name:?} is reserved by core"));
    }
    let extension_version = match m.raw_get::<Value>("version") {
        Ok(Value::Nil) => 1,
        Ok(Value::Integer(v)) if v >= 1 => v,
        _ => return Err("extension.version must be a positive integer".into()),
    };
    let is_function = |f: &str| matches!(globals.raw_get::<Value>(f), Ok(Value::Function(_)));
    let handler = |what: &str, v: &Value| -> Result<String, String> {
        let Value::String(s) = v else {
            return Err(format!(
                "{what}: the handler must be the name of a global function"
            ));
        };
        let f = s.to_string_lossy();
        if !is_function(&f) {
            return Err(format!(
                "{what}: handler {f:?} is not a global function of {file}"
            ));
        }
        Ok(f)
    };
    let own = |what: &str, full: &str| -> Result<(), String> {
        match full.split_once('.') {
            Some((d, rest)) if d == name && !rest.is_empty() && full.len() <= MAX_METHOD => Ok(()),
            _ => Err(format!(
                "{what} {full:?} must be \"{name}.<name>\" (at most {MAX_METHOD} bytes): an extension owns only its own domain"
            )),
        }
    };
    let pairs = |key: &str| -> Result<Vec<(Value, Value)>, String> {
        match m.raw_get::<Value>(key) {
            Ok(Value::Nil) => Ok(Vec::new()),
            Ok(Value::Table(t)) => Ok(t.pairs::<Value, Value>().filter_map(Result::ok).collect()),
            _ => Err(format!("extension.{key} must be a table")),
        }
    };

    let mut codes = BTreeMap::new();
    for (k, v) in pairs("codes")? {
        let (Value::String(code), Value::Table(spec)) = (&k, &v) else {
            return Err("extension.codes must map a code string to {status, message}".into());
        };
        let code = code.to_string_lossy();
        own("code", &code)?;
        let status = match spec.raw_get::<Value>("status") {
            Ok(Value::Integer(s)) if (100..600).contains(&s) => s as u16,
            _ => return Err(format!("code {code:?}: status must be an integer 100-599")),
        };
        let message = match spec.raw_get::<Value>("message") {
            Ok(Value::String(s)) if !s.as_bytes().is_empty() => s.to_string_lossy(),
            _ => return Err(format!("code {code:?}: message must be a non-empty string")),
        };
        codes.insert(code, RpcCode { status, message });
    }

    let mut rpc = BTreeMap::new();
    for (k, v) in pairs("rpc")? {
        let Value::String(method) = &k else {
            return Err("extension.rpc must map method names to handler names".into());
        };
        let method = method.to_string_lossy();
        own("rpc method", &method)?;
        let f = handler(&format!("rpc {method:?}"), &v)?;
        rpc.insert(method, f);
    }

    let mut lua = BTreeMap::new();
    for (k, v) in pairs("lua")? {
        let Value::String(func) = &k else {
            return Err("extension.lua must map function names to handler names".into());
        };
        let func = func.to_string_lossy();
        if !valid_name(&func) {
            return Err(format!(
                "lua function {func:?} must be [a-z0-9_], starting with a letter"
            ));
        }
        let f = handler(&format!("game.{name}.{func}"), &v)?;
        lua.insert(func, f);
    }

    let events = match m.raw_get::<Value>("events") {
        Ok(Value::Nil) => None,
        Ok(Value::Table(t)) => {
            let mut events = Vec::new();
            for v in t.sequence_values::<Value>() {
                match v {
                    Ok(Value::String(s)) => {
                        let e = s.to_string_lossy();
                        own("event", &e)?;
                        events.push(e);
                    }
                    _ => return Err("extension.events must be a list of event names".into()),
                }
            }
            Some(events)
        }
        _ => return Err("extension.events must be a list of event names".into()),
    };

    let mut routes: Vec<ExtRoute> = Vec::new();
    let declared = pairs("routes")?;
    if declared.len() > MAX_ROUTES {
        return Err(format!("at most {MAX_ROUTES} routes"));
    }
    let Ok(route_list) = (match m.raw_get::<Value>("routes") {
        Ok(Value::Table(t)) => t
            .sequence_values::<Table>()
            .collect::<mlua::Result<Vec<_>>>(),
        _ => Ok(Vec::new()),
    }) else {
        return Err("extension.routes must be a list of {method, path, handler, security}".into());
    };
    if route_list.len() != declared.len() {
        return Err("extension.routes must be a list of {method, path, handler, security}".into());
    }
    for (i, r) in route_list.iter().enumerate() {
        let at = format!("routes[{}]", i + 1);
        let method = match r.raw_get::<Value>("method") {
            Ok(Value::String(s)) => match s.to_string_lossy().to_ascii_lowercase().as_str() {
                "get" => "GET",
                "post" => "POST",
                "put" => "PUT",
                "delete" => "DELETE",
                _ => return Err(format!("{at}: method must be get, post, put or delete")),
            },
            _ => return Err(format!("{at}: method must be get, post, put or delete")),
        };
        let path = match r.raw_get::<Value>("path") {
            Ok(Value::String(s)) => s.to_string_lossy(),
            _ => return Err(format!("{at}: path must be a string")),
        };
        let prefix = format!("/api/v1/{name}");
        let below = match path.strip_prefix("/api/v1/") {
            Some(b) if path == prefix || path.starts_with(&format!("{prefix}/")) => b,
            _ => {
                return Err(format!(
                    "{at}: path {path:?} must be {prefix} or below it (an extension's routes live under its name)"
                ))
            }
        };
        let segments: Vec<String> = below.split('/').map(str::to_owned).collect();
        if segments.len() > MAX_SEGMENTS {
            return Err(format!(
                "{at}: path {path:?} has more than {MAX_SEGMENTS} segments"
            ));
        }
        for seg in &segments {
            let lit = seg.strip_prefix(':').unwrap_or(seg);
            let ok = !lit.is_empty()
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'));
            if !ok {
                return Err(format!(
                    "{at}: path {path:?}: every segment must be [A-Za-z0-9_~-]+ or :name"
                ));
            }
        }
        let security = match r.raw_get::<Value>("security") {
            Ok(Value::Nil) => Security::Player,
            Ok(Value::String(s)) if s.as_bytes() == b"player" => Security::Player,
            Ok(Value::String(s)) if s.as_bytes() == b"webhook" => Security::Webhook,
            _ => return Err(format!("{at}: security must be \"player\" or \"webhook\"")),
        };
        let f = handler(&at, &r.raw_get::<Value>("handler").unwrap_or(Value::Nil))?;
        for other in &routes {
            if other.path == path {
                if other.method == method {
                    return Err(format!("{at}: {method} {path} is declared twice"));
                }
                if other.security != security {
                    return Err(format!(
                        "{at}: {path} is declared with two security classes"
                    ));
                }
            } else if other.segments.len() == segments.len()
                && other
                    .segments
                    .iter()
                    .zip(&segments)
                    .all(|(a, b)| a == b || a.starts_with(':') || b.starts_with(':'))
            {
                return Err(format!(
                    "{at}: {path} collides with {} (some request matches both)",
                    other.path
                ));
            }
        }
        routes.push(ExtRoute {
            method,
            path,
            segments,
            handler: f,
            security,
        });
    }
    Ok(Manifest {
        name,
        extension_version,
        codes,
        routes,
        rpc,
        lua,
        events,
    })
}

/// Compiles and checks every extension of the game. Problems are errors.
pub(crate) fn resolve(
    code: &Arc<GameCode>,
    version: u64,
    budgets: &Budgets,
    diagnostics: &mut Vec<Diagnostic>,
) -> Extensions {
    let mut by_name: BTreeMap<String, Arc<ExtScript>> = BTreeMap::new();
    let prefix = format!("{EXT_DIR}/");
    let files: Vec<(&String, &Arc<[u8]>)> = code
        .files
        .iter()
        .filter(|(rel, _)| rel.strip_prefix(&prefix).is_some_and(|f| !f.contains('/')))
        .collect();
    for (rel, main) in files {
        let scope = ModuleScope {
            code: code.clone(),
            dir: prefix.clone(),
        };
        let sandbox = match Sandbox::new(budgets) {
            Ok(s) => s,
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    rel.as_str(),
                    None,
                    format!("creating a Lua state: {e}"),
                ));
                continue;
            }
        };
        if let Err(e) = load(&sandbox, rel, main, &scope) {
            diagnostics.push(Diagnostic::error(
                rel.as_str(),
                None,
                format!("extension failed to load: {e}"),
            ));
            continue;
        }
        match read_manifest(&sandbox, rel) {
            Ok(Manifest {
                name,
                extension_version,
                codes,
                routes,
                rpc,
                lua,
                events,
            }) => {
                if let Some(other) = by_name.get(&name) {
                    diagnostics.push(Diagnostic::error(
                        rel.as_str(),
                        None,
                        format!("extension {name:?} is already declared by {}", other.file),
                    ));
                    continue;
                }
                by_name.insert(
                    name.clone(),
                    Arc::new(ExtScript {
                        name,
                        file: rel.clone(),
                        extension_version,
                        version,
                        codes,
                        routes,
                        rpc,
                        lua,
                        events,
                        main: main.clone(),
                        scope,
                    }),
                );
            }
            Err(message) => diagnostics.push(Diagnostic::error(rel.as_str(), None, message)),
        }
    }
    let bindings = Bindings(
        by_name
            .values()
            .filter(|e| !e.lua.is_empty())
            .map(|e| (e.name.clone(), e.lua.keys().cloned().collect()))
            .collect(),
    );
    Extensions {
        by_name,
        bindings: Arc::new(bindings),
    }
}

/// What an extension function answered, as JSON values (`nil` is `null`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Returned {
    /// The return values.
    Values(Vec<serde_json::Value>),
    /// A return value that cannot be encoded (a function, a cycle).
    Invalid(String),
}

impl Returned {
    /// Read as a route or RPC handler's answer: a result table (with an optional 2xx status
    /// after it, for routes) or `nil, code[, details]`.
    pub fn reply(&self) -> (RpcReply, u16) {
        let values = match self {
            Returned::Values(v) => v,
            Returned::Invalid(why) => return (RpcReply::Invalid(why.clone()), 500),
        };
        let mut it = values.iter();
        match it.next().unwrap_or(&serde_json::Value::Null) {
            serde_json::Value::Object(o) => {
                let status = match it.next() {
                    Some(serde_json::Value::Number(n)) => match n.as_u64() {
                        Some(s @ 200..=299) => s as u16,
                        _ => return (RpcReply::Invalid("a status must be 200-299".into()), 500),
                    },
                    _ => 200,
                };
                (RpcReply::Ok(serde_json::Value::Object(o.clone())), status)
            }
            serde_json::Value::Array(a) if a.is_empty() => {
                (RpcReply::Ok(serde_json::json!({})), 200)
            }
            serde_json::Value::Null => match it.next() {
                Some(serde_json::Value::String(code)) => {
                    let details = match it.next() {
                        Some(d @ serde_json::Value::Object(_)) => d.clone(),
                        _ => serde_json::json!({}),
                    };
                    (
                        RpcReply::Error {
                            code: code.clone(),
                            details,
                        },
                        500,
                    )
                }
                _ => (
                    RpcReply::Invalid("return a result table, or nil and an error code".into()),
                    500,
                ),
            },
            _ => (
                RpcReply::Invalid("the result must be a table with string keys".into()),
                500,
            ),
        }
    }

    /// Read as a `game.<ns>.<fn>` binding's answer, in asobi's envelope: `value` →
    /// `{ok = value}`, `nil, message` → `{error = message}`.
    pub fn envelope(&self) -> serde_json::Value {
        let values = match self {
            Returned::Values(v) => v,
            Returned::Invalid(why) => return serde_json::json!({ "error": why }),
        };
        match (values.first(), values.get(1)) {
            (None | Some(serde_json::Value::Null), Some(serde_json::Value::String(e))) => {
                serde_json::json!({ "error": e })
            }
            (Some(v), _) => serde_json::json!({ "ok": v }),
            (None, _) => serde_json::json!({ "ok": null }),
        }
    }
}

/// A VM running one extension's functions. Not `Send`: it lives on the shard that made it.
pub struct ExtVm {
    sandbox: Sandbox,
    script: Arc<ExtScript>,
    failed: bool,
}

impl std::fmt::Debug for ExtVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtVm")
            .field("extension", &self.script.name)
            .field("version", &self.script.version)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl ExtVm {
    /// A fresh VM with `script` loaded, under `budgets`.
    pub fn new(script: &Arc<ExtScript>, budgets: &Budgets) -> Result<ExtVm, CallError> {
        let sandbox =
            Sandbox::new(budgets).map_err(|e| crate::sandbox::classify("load", None, &e))?;
        load(&sandbox, &script.name, &script.main, &script.scope)?;
        Ok(ExtVm {
            sandbox,
            script: script.clone(),
            failed: false,
        })
    }

    /// The extension this VM runs.
    pub fn script(&self) -> &Arc<ExtScript> {
        &self.script
    }

    /// Whether a call failed or overran in this VM (then it must not be reused).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Calls global function `func` with `args`. A call that makes a suspending `game.*`
    /// call answers [`Call::Waiting`]; continue it with [`ExtVm::resume`] or drop it with
    /// [`ExtVm::abandon`].
    pub fn call(
        &mut self,
        func: &str,
        args: &[serde_json::Value],
    ) -> Result<Call<Returned>, CallError> {
        let f = match self.sandbox.globals().raw_get::<Value>(func) {
            Ok(Value::Function(f)) => f,
            _ => {
                return Ok(Call::Done(Returned::Invalid(format!(
                    "{func} is no longer a function"
                ))))
            }
        };
        let marks = &self.sandbox.shared.marks;
        let step = self.sandbox.start(
            "extension",
            self.sandbox.shared.budgets.scaled(1),
            f,
            |lua| {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(json::to_lua(lua, a, marks)?);
                }
                MultiValue::from_vec(values).into_lua_multi(lua)
            },
            true,
        );
        self.settle(step)
    }

    /// Continues a call suspended on a service call with `reply` as the call's value.
    pub fn resume(&mut self, reply: &serde_json::Value) -> Result<Call<Returned>, CallError> {
        let step = self.sandbox.resume_json("extension", reply);
        self.settle(step)
    }

    /// Drops a suspended call (its reply never came). The VM is marked failed.
    pub fn abandon(&mut self) {
        self.sandbox.abandon();
        self.failed = true;
    }

    fn settle(&mut self, step: Result<Step, CallError>) -> Result<Call<Returned>, CallError> {
        self.sandbox.shared.flush(&mut NullHost);
        match step {
            Ok(Step::Waiting(call)) => Ok(Call::Waiting(call)),
            Ok(Step::Done(values)) => {
                let marks = &self.sandbox.shared.marks;
                let mut out = Vec::with_capacity(values.len());
                for v in values.iter() {
                    match json::to_json(v, marks) {
                        Ok(j) => out.push(j),
                        Err(e) => {
                            return Ok(Call::Done(Returned::Invalid(format!(
                                "the result cannot be encoded: {e}"
                            ))))
                        }
                    }
                }
                Ok(Call::Done(Returned::Values(out)))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_not_valid_extension_names_by_accident() {
        for n in RESERVED_NAMES {
            assert!(!n.is_empty());
        }
        assert!(valid_name("quests"));
        assert!(!valid_name("Quests"));
        assert!(!valid_name("9lives"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(MAX_EXT_NAME + 1)));
    }

    #[test]
    fn replies_and_envelopes_follow_the_contract() {
        let r = Returned::Values(vec![serde_json::json!({"a": 1}), serde_json::json!(201)]);
        assert_eq!(r.reply(), (RpcReply::Ok(serde_json::json!({"a": 1})), 201));
        let r = Returned::Values(vec![serde_json::json!({"a": 1}), serde_json::json!(404)]);
        assert!(matches!(r.reply().0, RpcReply::Invalid(_)));
        let r = Returned::Values(vec![serde_json::Value::Null, serde_json::json!("q.x")]);
        assert!(matches!(r.reply().0, RpcReply::Error { ref code, .. } if code == "q.x"));
        let r = Returned::Values(vec![serde_json::json!("s")]);
        assert!(matches!(r.reply().0, RpcReply::Invalid(_)));
        assert_eq!(
            Returned::Values(vec![serde_json::json!(3)]).envelope(),
            serde_json::json!({"ok": 3})
        );
        assert_eq!(
            Returned::Values(vec![serde_json::Value::Null, serde_json::json!("no")]).envelope(),
            serde_json::json!({"error": "no"})
        );
        assert_eq!(
            Returned::Values(vec![]).envelope(),
            serde_json::json!({"ok": null})
        );
    }
}
