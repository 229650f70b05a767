//! The Rust half of the `game.*` API and the [`Host`] trait through which its effects leave
//! the VM.
//!
//! Calls that reach the outside world (`broadcast`, `send`, `match.set_joinable`,
//! `bots.add/remove`) are validated and encoded at the call site, then queued in the VM's
//! outbox; the runtime hands the queue to the [`Host`] when the callback returns. That keeps
//! the host out of `'static` Lua closures and bounds what one callback can emit. Argument
//! mistakes and rejected calls return `{ error = "..." }` to the script, as in asobi.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{ChunkMode, Function, Lua, Table, Value};

use crate::budget::{Budgets, Meter};
use crate::game::GameCode;
use crate::json::{self, EncodeError, Marks};

/// What the engine provides to a running script. Implemented by the engine; tests use a
/// recording fake.
///
/// Effects are delivered in the order the script produced them, right after the callback
/// that produced them returns (also when it failed: what it emitted before failing was
/// legitimately emitted).
pub trait Host {
    /// `game.broadcast(event, payload)`: `payload` is the validated, encoded JSON payload;
    /// clients receive it as `match.<event>`.
    fn broadcast(&mut self, event: &str, payload: Bytes);
    /// `game.send(player_id, message)`: `message` is the encoded JSON of the value; the client
    /// receives it inside a `module.message` frame.
    fn send(&mut self, player_id: &str, message: Bytes);
    /// `game.match.set_joinable(open)`.
    fn set_joinable(&mut self, open: bool);
    /// `game.bots.add(name)`: place a bot in this match. `name` is validated (1–32 of
    /// `[A-Za-z0-9_-]`). Ignored unless the engine implements it.
    fn add_bot(&mut self, name: &str) {
        let _ = name;
    }
    /// `game.bots.remove(bot)`: the bare name or the full bot id. Ignored unless the engine
    /// implements it.
    fn remove_bot(&mut self, bot: &str) {
        let _ = bot;
    }
}

/// A host that drops every effect; used while probing a mode's configuration.
pub(crate) struct NullHost;

impl Host for NullHost {
    fn broadcast(&mut self, _: &str, _: Bytes) {}
    fn send(&mut self, _: &str, _: Bytes) {}
    fn set_joinable(&mut self, _: bool) {}
}

/// Longest event name a script may broadcast.
pub const MAX_EVENT_NAME: usize = 64;
/// Largest encoded broadcast or send payload (asobi's cap: the same bound as an inbound frame,
/// because it fans out to every player).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Event names asobi emits itself; a script may not forge them.
pub const RESERVED_EVENTS: &[&str] = &[
    "ack",
    "finished",
    "joined",
    "left",
    "list",
    "matched",
    "matchmaker_expired",
    "matchmaker_failed",
    "phase_changed",
    "state",
    "terrain",
    "tick",
    "vote_result",
    "vote_start",
    "vote_tally",
    "vote_vetoed",
];
/// `game.log` message cap in characters (truncated past it).
const MAX_LOG_MESSAGE_CHARS: usize = 500;
/// `game.log` meta cap in encoded bytes (replaced by `{"_truncated": true}` past it).
const MAX_LOG_META_BYTES: usize = 2048;
/// Node-wide `game.log` lines per second, across every match on every shard: a backstop so
/// that many noisy matches together cannot drown the log pipeline.
const NODE_LOG_PER_SECOND: u32 = 300;
/// Longest bot name (`game.bots.add`).
const MAX_BOT_NAME: usize = 32;
/// Longest player id accepted by `game.send`.
const MAX_PLAYER_ID: usize = 256;

/// Validates a broadcast event name; the error is the code returned to the script.
pub fn validate_event_name(event: &str) -> Result<(), &'static str> {
    let ok_chars = event
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if event.is_empty() || event.len() > MAX_EVENT_NAME || !ok_chars {
        return Err("invalid_event_name");
    }
    if RESERVED_EVENTS.contains(&event) {
        return Err("reserved_event_name");
    }
    Ok(())
}

/// One queued effect of a callback.
#[derive(Debug)]
pub(crate) enum Effect {
    Broadcast(String, Bytes),
    Send(String, Bytes),
    SetJoinable(bool),
    AddBot(String),
    RemoveBot(String),
}

#[derive(Default)]
pub(crate) struct Outbox {
    effects: Vec<Effect>,
    bytes: usize,
}

/// Where `require` looks for modules: the game's compiled files and the directory of the
/// mode script (`"arena/"`, or `""` at the top level).
#[derive(Clone)]
pub(crate) struct ModuleScope {
    pub(crate) code: Arc<GameCode>,
    pub(crate) dir: String,
}

/// Per-VM state shared by the `game.*` closures, the hook and the runtime.
pub(crate) struct Shared {
    pub(crate) meter: Meter,
    pub(crate) budgets: Budgets,
    pub(crate) marks: Marks,
    pub(crate) match_id: RefCell<String>,
    pub(crate) mode_name: RefCell<String>,
    pub(crate) scope: RefCell<Option<ModuleScope>>,
    outbox: RefCell<Outbox>,
    log_window: Cell<Option<Instant>>,
    log_count: Cell<u32>,
    /// Whether the running callback may suspend on a service call.
    pub(crate) suspendable: Cell<bool>,
    /// The coroutine of the running callback: a service call from any other one is refused.
    pub(crate) callback_thread: RefCell<Option<mlua::Thread>>,
    /// The service call the callback is about to yield for.
    pub(crate) pending: RefCell<Option<crate::service::ServiceCall>>,
}

impl Shared {
    pub(crate) fn new(budgets: &Budgets, marks: Marks) -> Self {
        Self {
            meter: Meter::new(budgets),
            budgets: budgets.clone(),
            marks,
            match_id: RefCell::new(String::new()),
            mode_name: RefCell::new(String::new()),
            scope: RefCell::new(None),
            outbox: RefCell::new(Outbox::default()),
            log_window: Cell::new(None),
            log_count: Cell::new(0),
            suspendable: Cell::new(false),
            callback_thread: RefCell::new(None),
            pending: RefCell::new(None),
        }
    }

    /// Hands every queued effect to `host`, in order.
    pub(crate) fn flush(&self, host: &mut dyn Host) {
        let effects = {
            let mut outbox = self.outbox.borrow_mut();
            outbox.bytes = 0;
            std::mem::take(&mut outbox.effects)
        };
        for effect in effects {
            match effect {
                Effect::Broadcast(event, payload) => host.broadcast(&event, payload),
                Effect::Send(player, message) => host.send(&player, message),
                Effect::SetJoinable(open) => host.set_joinable(open),
                Effect::AddBot(name) => host.add_bot(&name),
                Effect::RemoveBot(bot) => host.remove_bot(&bot),
            }
        }
    }

    fn queue(&self, effect: Effect, bytes: usize) -> Result<(), &'static str> {
        let mut outbox = self.outbox.borrow_mut();
        if outbox.bytes + bytes > self.budgets.outbox_bytes {
            return Err("outbox_full");
        }
        outbox.bytes += bytes;
        outbox.effects.push(effect);
        Ok(())
    }

    fn log_allowed(&self) -> bool {
        let now = Instant::now();
        match self.log_window.get() {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                if self.log_count.get() >= self.budgets.log_per_second {
                    return false;
                }
                self.log_count.set(self.log_count.get() + 1);
            }
            _ => {
                self.log_window.set(Some(now));
                self.log_count.set(1);
            }
        }
        node_log_allowed()
    }
}

fn node_log_allowed() -> bool {
    static START: OnceLock<Instant> = OnceLock::new();
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    let second = START.get_or_init(Instant::now).elapsed().as_secs() as u32;
    let mut current = WINDOW.load(Ordering::Relaxed);
    loop {
        let (window, count) = ((current >> 32) as u32, current as u32);
        let next = if window == second {
            if count >= NODE_LOG_PER_SECOND {
                return false;
            }
            current + 1
        } else {
            (u64::from(second) << 32) | 1
        };
        match WINDOW.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => current = seen,
        }
    }
}

fn error_table(lua: &Lua, message: &str) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set("error", message)?;
    Ok(Value::Table(t))
}

fn encode_payload(shared: &Shared, value: &Value) -> Result<Bytes, &'static str> {
    match json::encode(value, &shared.marks, MAX_PAYLOAD_BYTES) {
        Ok(bytes) => Ok(Bytes::from(bytes)),
        Err(EncodeError::TooLarge) => Err("payload_too_large"),
        Err(_) => Err("unencodable_payload"),
    }
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Builds the helper table the sandbox prelude receives.
pub(crate) fn helpers(lua: &Lua, shared: &std::rc::Rc<Shared>) -> mlua::Result<Table> {
    let h = lua.create_table()?;

    crate::strlib::install(lua, &h, shared)?;
    crate::service::install(lua, &h, shared)?;

    let s = shared.clone();
    h.raw_set(
        "exhausted",
        lua.create_function(move |_, ()| Ok(s.meter.spent().is_some()))?,
    )?;

    h.raw_set(
        "id",
        lua.create_function(|_, ()| Ok(uuid::Uuid::now_v7().to_string()))?,
    )?;

    let s = shared.clone();
    let broadcast = lua.create_function(move |lua, (event, payload): (Value, Value)| {
        let event = match &event {
            Value::String(e) => e.to_string_lossy(),
            _ => return error_table(lua, "invalid_event_name"),
        };
        if let Err(code) = validate_event_name(&event) {
            return error_table(lua, code);
        }
        let payload = match payload {
            Value::Nil => Bytes::from_static(b"{}"),
            other => match encode_payload(&s, &other) {
                Ok(bytes) => bytes,
                Err(code) => return error_table(lua, code),
            },
        };
        let size = payload.len() + event.len();
        match s.queue(Effect::Broadcast(event, payload), size) {
            Ok(()) => Ok(Value::Boolean(true)),
            Err(code) => error_table(lua, code),
        }
    })?;
    h.raw_set("broadcast", broadcast)?;

    let s = shared.clone();
    let send = lua.create_function(move |lua, (player, message): (Value, Value)| {
        let player = match &player {
            Value::String(p) if !p.as_bytes().is_empty() && p.as_bytes().len() <= MAX_PLAYER_ID => {
                p.to_string_lossy()
            }
            _ => return error_table(lua, "send requires (player_id, message)"),
        };
        let message = match encode_payload(&s, &message) {
            Ok(bytes) => bytes,
            Err(code) => return error_table(lua, code),
        };
        let size = message.len() + player.len();
        match s.queue(Effect::Send(player, message), size) {
            Ok(()) => Ok(Value::Boolean(true)),
            Err(code) => error_table(lua, code),
        }
    })?;
    h.raw_set("send", send)?;

    let s = shared.clone();
    let set_joinable = lua.create_function(move |lua, open: Value| match open {
        Value::Boolean(open) => match s.queue(Effect::SetJoinable(open), 1) {
            Ok(()) => Ok(Value::Boolean(true)),
            Err(code) => error_table(lua, code),
        },
        _ => error_table(lua, "set_joinable requires (open: boolean)"),
    })?;
    h.raw_set("set_joinable", set_joinable)?;

    let s = shared.clone();
    let bot_add = lua.create_function(move |lua, name: Value| {
        let name = match &name {
            Value::String(n) => n.to_string_lossy(),
            _ => return error_table(lua, "bots.add requires (name)"),
        };
        if !is_name(&name, MAX_BOT_NAME) {
            return error_table(lua, "invalid_bot_name");
        }
        let size = name.len();
        match s.queue(Effect::AddBot(name), size) {
            Ok(()) => Ok(Value::Boolean(true)),
            Err(code) => error_table(lua, code),
        }
    })?;
    h.raw_set("bot_add", bot_add)?;

    let s = shared.clone();
    let bot_remove = lua.create_function(move |lua, bot: Value| {
        let bot = match &bot {
            Value::String(b) if !b.as_bytes().is_empty() && b.as_bytes().len() <= MAX_PLAYER_ID => {
                b.to_string_lossy()
            }
            _ => return error_table(lua, "bots.remove requires (bot_id)"),
        };
        let size = bot.len();
        match s.queue(Effect::RemoveBot(bot), size) {
            Ok(()) => Ok(Value::Boolean(true)),
            Err(code) => error_table(lua, code),
        }
    })?;
    h.raw_set("bot_remove", bot_remove)?;

    let s = shared.clone();
    let log = lua.create_function(move |lua, (level, message, meta): (Value, Value, Value)| {
        game_log(lua, &s, level, message, meta)
    })?;
    h.raw_set("log", log)?;

    let s = shared.clone();
    let fetch = lua.create_function(move |lua, name: Value| fetch_module(lua, &s, name))?;
    h.raw_set("fetch_module", fetch)?;

    Ok(h)
}

#[derive(Clone, Copy)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

fn game_log(
    lua: &Lua,
    s: &Shared,
    level: Value,
    message: Value,
    meta: Value,
) -> mlua::Result<Value> {
    let level = match &level {
        Value::String(l) => match &*l.to_string_lossy() {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => return error_table(lua, "log level must be debug, info, warn, warning or error"),
        },
        _ => return error_table(lua, "log requires (level, message[, meta])"),
    };
    if !s.log_allowed() {
        return Ok(Value::Boolean(false));
    }
    let mut text = match &message {
        Value::String(m) => m.to_string_lossy(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "nil".to_owned(),
        other => match json::encode(other, &s.marks, 4 * MAX_LOG_MESSAGE_CHARS) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(EncodeError::TooLarge) => "<message too large>".to_owned(),
            Err(_) => format!("<{}>", other.type_name()),
        },
    };
    if let Some((cut, _)) = text.char_indices().nth(MAX_LOG_MESSAGE_CHARS) {
        text.truncate(cut);
    }
    let text = escape_log_text(&text);
    let meta = match &meta {
        Value::Nil => String::new(),
        other => match json::encode(other, &s.marks, MAX_LOG_META_BYTES) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(EncodeError::TooLarge) => r#"{"_truncated":true}"#.to_owned(),
            Err(_) => r#"{"_unencodable":true}"#.to_owned(),
        },
    };
    let meta = &*escape_log_json(&meta);
    let match_id = s.match_id.borrow();
    let mode = s.mode_name.borrow();
    let (match_id, mode) = (match_id.as_str(), mode.as_str());
    match level {
        LogLevel::Debug => tracing::debug!(target: "game.log", match_id, mode, meta, "{text}"),
        LogLevel::Info => tracing::info!(target: "game.log", match_id, mode, meta, "{text}"),
        LogLevel::Warn => tracing::warn!(target: "game.log", match_id, mode, meta, "{text}"),
        LogLevel::Error => tracing::error!(target: "game.log", match_id, mode, meta, "{text}"),
    }
    Ok(Value::Boolean(true))
}

/// Characters a log line must not carry raw: line breaks and other control characters
/// (a script fed player text could otherwise forge whole log lines or drive a terminal
/// with escape sequences), and the bidirectional overrides that reorder what a reader sees.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A `game.log` message as one line: `\n`, `\r`, `\t`, `\\` and `\u{..}` escapes, so the
/// original text can be read back unambiguously.
pub(crate) fn escape_log_text(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || needs_escape(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `game.log` metadata, already JSON: JSON escapes C0 controls itself; the rest that
/// [`needs_escape`] names becomes `\uXXXX`, so the metadata stays valid JSON.
pub(crate) fn escape_log_json(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `require` names: `seg(.seg)*`, each segment `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|seg| {
            let mut bytes = seg.bytes();
            matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

fn fetch_module(lua: &Lua, s: &Shared, name: Value) -> mlua::Result<(Value, Value)> {
    let fail = |msg: String| -> mlua::Result<(Value, Value)> {
        Ok((Value::Nil, Value::String(lua.create_string(msg)?)))
    };
    let name = match &name {
        Value::String(n) => n.to_string_lossy(),
        _ => return fail("module name must be a string".to_owned()),
    };
    if !valid_module_name(&name) {
        return fail(format!("invalid module name '{name}'"));
    }
    let scope = s.scope.borrow().clone();
    let Some(scope) = scope else {
        return fail(format!("module '{name}' not found"));
    };
    let rel = format!("{}.lua", name.replace('.', "/"));
    let local = format!("{}{rel}", scope.dir);
    let bytecode = scope
        .code
        .files
        .get(&local)
        .or_else(|| scope.code.files.get(&rel));
    let Some(bytecode) = bytecode else {
        return fail(format!(
            "module '{name}' not found: no file '{local}' in the game directory"
        ));
    };
    let func: Function = lua
        .load(&bytecode[..])
        .set_mode(ChunkMode::Binary)
        .into_function()?;
    Ok((Value::Function(func), Value::Nil))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert_eq!(validate_event_name("score_update"), Ok(()));
        assert_eq!(validate_event_name("a-B_9"), Ok(()));
        assert_eq!(validate_event_name(""), Err("invalid_event_name"));
        assert_eq!(validate_event_name("a.b"), Err("invalid_event_name"));
        assert_eq!(
            validate_event_name(&"x".repeat(65)),
            Err("invalid_event_name")
        );
        assert_eq!(validate_event_name(&"x".repeat(64)), Ok(()));
        for reserved in RESERVED_EVENTS {
            assert_eq!(validate_event_name(reserved), Err("reserved_event_name"));
        }
    }

    #[test]
    fn log_text_is_one_line() {
        let forged = "hi\n2026-01-01T00:00:00Z ERROR game.log: forged\r\x1b[2J\u{202e}x\\n";
        let escaped = escape_log_text(forged);
        assert!(!escaped.chars().any(needs_escape), "{escaped}");
        assert_eq!(
            escaped,
            "hi\\n2026-01-01T00:00:00Z ERROR game.log: forged\\r\\u{1b}[2J\\u{202e}x\\\\n"
        );
        assert_eq!(escape_log_text("plain text é"), "plain text é");
        let json = escape_log_json("{\"a\":\"x\u{2028}\u{85}y\"}");
        assert_eq!(json, "{\"a\":\"x\\u2028\\u0085y\"}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["a"], "x\u{2028}\u{85}y");
    }

    #[test]
    fn module_names() {
        assert!(valid_module_name("physics"));
        assert!(valid_module_name("bots.chaser"));
        assert!(valid_module_name("_x1.y_2"));
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "foo/bar",
            "42",
            "a..b",
            "a.",
            "foo\n",
        ] {
            assert!(!valid_module_name(bad), "{bad:?}");
        }
    }
}
