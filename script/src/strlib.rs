//! Library functions that would otherwise run unbounded in C, re-done with a charge.
//!
//! The count hook only runs between VM instructions, so a single C call is invisible to the
//! budget. Three kinds of stock functions can run long in one call:
//!
//! * **Pattern matching** (`string.find`, `match`, `gmatch`, `gsub`) backtracks
//!   exponentially. They are replaced by [`crate::pattern`], which charges every step.
//!   `gsub` with a function or table replacement runs its loop in the prelude, so the
//!   replacement is ordinary, metered (and yieldable) Lua.
//! * **Functions that loop over a count the script chooses** rather than over data it had to
//!   build: `string.rep` (`("").rep("", 2^50)` loops forever in stock Lua), `table.concat`
//!   over an `__index` table, `table.move`, `table.insert`/`remove` on a table whose `__len`
//!   lies, `table.sort`. `rep` and `concat` are re-done here with the cost charged before the
//!   work (and the result checked against the memory limit); the others are wrapped in the
//!   prelude, which charges their size through [`charge`] before calling the original.
//! * **Functions linear in a string's length** (`upper`, `lower`, `reverse`, `sub`,
//!   `format`, `byte`, `pack`, `unpack`, `utf8.len`, `load`, `os.date`): each call is bounded
//!   by the memory limit, but a loop calling them on a 30 MB string does ~10 ms of C per
//!   instruction. The prelude charges their input length too.
//!
//! One step is charged as one instruction; copying is charged one instruction per
//! [`BYTES_PER_STEP`] bytes. Errors use Lua's own messages. A function here that finds the
//! budget spent returns the failure marker with [`ABORT_MESSAGE`]; the prelude raises it, and
//! the sandbox `pcall` re-raises it since the meter is spent.
//!
//! What stays outside: VM operators on huge strings (`..`, `==`, `<`), one instruction each
//! but linear in the operands. They are bounded per instruction by the memory limit, and
//! the runtime compares every callback's wall time with its budget afterwards, so they
//! still count as overruns.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::api::Shared;
use crate::budget::Meter;
use crate::pattern::{is_plain, Capture, Fuel, Matcher, Stop};

/// Bytes copied per charged instruction: `memcpy` moves 16 bytes in well under the time a VM
/// instruction takes.
pub(crate) const BYTES_PER_STEP: u64 = 16;

/// The message of a library call aborted because the budget is spent.
pub(crate) const ABORT_MESSAGE: &str = "script aborted: over budget";

struct MeterFuel<'a>(&'a Meter);

impl Fuel for MeterFuel<'_> {
    fn burn(&mut self, steps: u64) -> bool {
        self.0.charge(steps)
    }
}

/// Why a library call failed: a Lua error message, or the budget.
enum Fail {
    Message(String),
    Spent,
}

impl From<Stop> for Fail {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Error(m) => Fail::Message(m),
            Stop::Spent => Fail::Spent,
        }
    }
}

type Outcome<T> = Result<T, Fail>;

fn message<T>(m: impl Into<String>) -> Outcome<T> {
    Err(Fail::Message(m.into()))
}

/// Lua's name for the type of `v` in argument errors (`__name` honoured, as `luaL_typeerror`
/// does).
fn type_name(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "no value".to_owned();
    };
    let meta = match v {
        Value::Table(t) => t.metatable(),
        _ => None,
    };
    if let Some(Value::String(name)) = meta.and_then(|m| m.raw_get::<Value>("__name").ok()) {
        return name.to_string_lossy();
    }
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) => "light userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
    .to_owned()
}

struct Args<'a> {
    lua: &'a Lua,
    values: Vec<Value>,
    func: &'static str,
}

impl<'a> Args<'a> {
    fn new(lua: &'a Lua, args: MultiValue, func: &'static str) -> Self {
        Args {
            lua,
            values: args.into_vec(),
            func,
        }
    }

    fn get(&self, n: usize) -> Option<&Value> {
        self.values.get(n - 1)
    }

    fn absent(&self, n: usize) -> bool {
        matches!(self.get(n), None | Some(Value::Nil))
    }

    fn bad<T>(&self, n: usize, what: &str) -> Outcome<T> {
        message(format!("bad argument #{n} to '{}' ({what})", self.func))
    }

    fn expected<T>(&self, n: usize, what: &str) -> Outcome<T> {
        self.bad(
            n,
            &format!("{what} expected, got {}", type_name(self.get(n))),
        )
    }

    /// `luaL_checklstring`: strings, and numbers converted to strings.
    fn string(&self, n: usize) -> Outcome<mlua::String> {
        match self.get(n) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v @ (Value::Integer(_) | Value::Number(_))) => {
                match self.lua.coerce_string(v.clone()) {
                    Ok(Some(s)) => Ok(s),
                    _ => self.expected(n, "string"),
                }
            }
            _ => self.expected(n, "string"),
        }
    }

    fn opt_string(&self, n: usize) -> Outcome<Option<mlua::String>> {
        if self.absent(n) {
            Ok(None)
        } else {
            self.string(n).map(Some)
        }
    }

    /// `luaL_checkinteger`.
    fn integer(&self, n: usize) -> Outcome<i64> {
        let Some(v) = self.get(n) else {
            return self.expected(n, "number");
        };
        match v {
            Value::Integer(i) => Ok(*i),
            Value::Number(_) | Value::String(_) => {
                if let Ok(Some(i)) = self.lua.coerce_integer(v.clone()) {
                    return Ok(i);
                }
                if let Ok(Some(_)) = self.lua.coerce_number(v.clone()) {
                    return self.bad(n, "number has no integer representation");
                }
                self.expected(n, "number")
            }
            _ => self.expected(n, "number"),
        }
    }

    fn opt_integer(&self, n: usize, default: i64) -> Outcome<i64> {
        if self.absent(n) {
            Ok(default)
        } else {
            self.integer(n)
        }
    }

    fn truthy(&self, n: usize) -> bool {
        !matches!(
            self.get(n),
            None | Some(Value::Nil) | Some(Value::Boolean(false))
        )
    }
}

/// Lua's `posrelatI`: a 1-based start position, negative from the end, clipped to 1.
fn start_position(pos: i64, len: usize) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    if pos > 0 {
        usize::try_from(pos).unwrap_or(usize::MAX)
    } else if pos == 0 || pos < -len_i {
        1
    } else {
        (len_i + pos + 1) as usize
    }
}

/// Everything the library functions need from the VM.
#[derive(Clone)]
struct Ctx {
    shared: Rc<Shared>,
    fail: Table,
}

impl Ctx {
    /// Bytes a result may still take before it would break the memory limit.
    fn room(&self, lua: &Lua) -> usize {
        self.shared
            .budgets
            .memory_bytes
            .saturating_sub(lua.used_memory())
    }

    /// Whether a result of `bytes` fits under the memory limit; like Lua's allocator, a
    /// full collection is tried before saying no.
    fn fits(&self, lua: &Lua, bytes: usize) -> bool {
        if bytes <= self.room(lua) {
            return true;
        }
        // The charge before this call already paid for the size of the work.
        let _ = lua.gc_collect();
        bytes <= self.room(lua)
    }

    fn finish(&self, lua: &Lua, outcome: Outcome<MultiValue>) -> mlua::Result<MultiValue> {
        match outcome {
            Ok(values) => Ok(values),
            Err(Fail::Message(m)) => {
                let mut values = MultiValue::new();
                values.push_back(Value::Table(self.fail.clone()));
                values.push_back(Value::String(lua.create_string(m)?));
                Ok(values)
            }
            Err(Fail::Spent) => self.finish(lua, message(ABORT_MESSAGE)),
        }
    }

    fn charge_bytes(&self, bytes: usize) -> Outcome<()> {
        if self.shared.meter.charge(bytes as u64 / BYTES_PER_STEP + 1) {
            Ok(())
        } else {
            Err(Fail::Spent)
        }
    }
}

fn push_captures(
    lua: &Lua,
    caps: Vec<Capture>,
    src: &[u8],
    out: &mut MultiValue,
) -> mlua::Result<()> {
    for cap in caps {
        out.push_back(match cap {
            Capture::Text(s, e) => Value::String(lua.create_string(&src[s..e])?),
            Capture::Position(p) => Value::Integer(p as i64),
        });
    }
    Ok(())
}

fn lua_fail(e: mlua::Error) -> Fail {
    Fail::Message(e.to_string())
}

/// `string.find` (`find == true`) and `string.match`.
fn find_or_match(lua: &Lua, ctx: &Ctx, args: MultiValue, find: bool) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, if find { "find" } else { "match" });
    let s = args.string(1)?;
    let p = args.string(2)?;
    let init = args.opt_integer(3, 1)?;
    let (src, pat) = (s.as_bytes(), p.as_bytes());
    let init = start_position(init, src.len()) - 1;
    let mut out = MultiValue::new();
    if init > src.len() {
        out.push_back(Value::Nil);
        return Ok(out);
    }
    if find && (args.truthy(4) || is_plain(&pat)) {
        let mut m = Matcher::new(&src, &pat, MeterFuel(&ctx.shared.meter));
        let found = m.find_plain(init)?;
        m.settle()?;
        match found {
            Some(at) => {
                out.push_back(Value::Integer(at as i64 + 1));
                out.push_back(Value::Integer((at + pat.len()) as i64));
            }
            None => out.push_back(Value::Nil),
        }
        return Ok(out);
    }
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, &pat[..]),
    };
    let mut m = Matcher::new(&src, pat, MeterFuel(&ctx.shared.meter));
    let found = m.next_match(init, None, anchor)?;
    m.settle()?;
    match found {
        Some((start, end)) => {
            if find {
                out.push_back(Value::Integer(start as i64 + 1));
                out.push_back(Value::Integer(end as i64));
                let caps = (0..m.capture_count())
                    .map(|i| m.capture(i, start, end))
                    .collect::<Result<Vec<_>, _>>()?;
                push_captures(lua, caps, &src, &mut out).map_err(lua_fail)?;
            } else {
                let caps = m.captures(start, end)?;
                push_captures(lua, caps, &src, &mut out).map_err(lua_fail)?;
            }
        }
        None => out.push_back(Value::Nil),
    }
    Ok(out)
}

/// `string.gmatch`: the iterator (which the prelude wraps to raise its failures).
fn gmatch(lua: &Lua, ctx: &Ctx, args: MultiValue) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, "gmatch");
    let s = args.string(1)?;
    let p = args.string(2)?;
    let init = args.opt_integer(3, 1)?;
    let len = s.as_bytes().len();
    let init = (start_position(init, len) - 1).min(len + 1);
    let pos = Cell::new(init);
    let last: Cell<Option<usize>> = Cell::new(None);
    let inner = ctx.clone();
    let iterator = lua
        .create_function(move |lua, ()| {
            let outcome = (|| {
                let (src, pat) = (s.as_bytes(), p.as_bytes());
                let mut m = Matcher::new(&src, &pat, MeterFuel(&inner.shared.meter));
                let found = m.next_match(pos.get(), last.get(), false)?;
                m.settle()?;
                let mut out = MultiValue::new();
                if let Some((start, end)) = found {
                    pos.set(end);
                    last.set(Some(end));
                    let caps = m.captures(start, end)?;
                    push_captures(lua, caps, &src, &mut out).map_err(lua_fail)?;
                }
                Ok(out)
            })();
            inner.finish(lua, outcome)
        })
        .map_err(lua_fail)?;
    let mut out = MultiValue::new();
    out.push_back(Value::Function(iterator));
    Ok(out)
}

/// Appends the replacement string `repl` for the match `start..end` (`%0`–`%9`, `%%`).
fn expand<F: Fuel>(
    m: &Matcher<'_, F>,
    src: &[u8],
    repl: &[u8],
    start: usize,
    end: usize,
    out: &mut Vec<u8>,
) -> Outcome<()> {
    let mut i = 0;
    while i < repl.len() {
        let c = repl[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let d = repl.get(i).copied().unwrap_or(0);
        i += 1;
        match d {
            b'%' => out.push(b'%'),
            b'0' => out.extend_from_slice(&src[start..end]),
            b'1'..=b'9' => match m.capture(usize::from(d - b'1'), start, end)? {
                Capture::Text(s, e) => out.extend_from_slice(&src[s..e]),
                Capture::Position(p) => out.extend_from_slice(p.to_string().as_bytes()),
            },
            _ => return message("invalid use of '%' in replacement string"),
        }
    }
    Ok(())
}

/// `string.gsub`. With a string (or number) replacement, the whole substitution. With a
/// function or table, the checked arguments behind the defer marker: the prelude runs the
/// loop with [`next_match`].
fn gsub(lua: &Lua, ctx: &Ctx, defer: &Table, args: MultiValue) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, "gsub");
    let s = args.string(1)?;
    let p = args.string(2)?;
    let len = s.as_bytes().len();
    let max = args.opt_integer(4, i64::try_from(len).unwrap_or(i64::MAX).saturating_add(1))?;
    let repl = match args.get(3) {
        Some(Value::String(r)) => r.clone(),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone()) {
            Ok(Some(r)) => r,
            _ => return args.expected(3, "string/function/table"),
        },
        Some(Value::Function(_) | Value::Table(_)) => {
            let mut out = MultiValue::new();
            out.push_back(Value::Table(defer.clone()));
            out.push_back(Value::String(s));
            out.push_back(Value::String(p));
            out.push_back(Value::Integer(max));
            return Ok(out);
        }
        _ => return args.expected(3, "string/function/table"),
    };
    let (src, pat, repl) = (s.as_bytes(), p.as_bytes(), repl.as_bytes());
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, &pat[..]),
    };
    let room = ctx.room(lua);
    let mut m = Matcher::new(&src, pat, MeterFuel(&ctx.shared.meter));
    let mut out = Vec::new();
    let (mut pos, mut last, mut count) = (0usize, None, 0i64);
    while count < max {
        let Some((start, end)) = m.next_match(pos, last, anchor)? else {
            break;
        };
        count += 1;
        let before = out.len();
        out.extend_from_slice(&src[pos..start]);
        expand(&m, &src, &repl, start, end, &mut out)?;
        ctx.charge_bytes(out.len() - before)?;
        if out.len() > room {
            return message("not enough memory");
        }
        pos = end;
        last = Some(end);
        if anchor {
            break;
        }
    }
    m.settle()?;
    let mut values = MultiValue::new();
    if count == 0 {
        values.push_back(Value::String(s.clone()));
    } else {
        out.extend_from_slice(&src[pos..]);
        ctx.charge_bytes(src.len() - pos)?;
        values.push_back(Value::String(lua.create_string(&out).map_err(lua_fail)?));
    }
    values.push_back(Value::Integer(count));
    Ok(values)
}

/// `next_match(s, p, from, last)` for the prelude's `gsub` loop: positions are 0-based byte
/// offsets, `last` is -1 before the first match. Returns `start, end, ncaptures, captures`
/// or nothing.
fn next_match(lua: &Lua, ctx: &Ctx, args: MultiValue) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, "gsub");
    let s = args.string(1)?;
    let p = args.string(2)?;
    let from = usize::try_from(args.integer(3)?).unwrap_or(usize::MAX);
    let last = usize::try_from(args.integer(4)?).ok();
    let (src, pat) = (s.as_bytes(), p.as_bytes());
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, &pat[..]),
    };
    let mut m = Matcher::new(&src, pat, MeterFuel(&ctx.shared.meter));
    let found = m.next_match(from, last, anchor)?;
    m.settle()?;
    let mut out = MultiValue::new();
    if let Some((start, end)) = found {
        let caps = m.captures(start, end)?;
        let n = caps.len();
        let mut values = MultiValue::new();
        push_captures(lua, caps, &src, &mut values).map_err(lua_fail)?;
        let table = lua
            .create_sequence_from(values.into_vec())
            .map_err(lua_fail)?;
        out.push_back(Value::Integer(start as i64));
        out.push_back(Value::Integer(end as i64));
        out.push_back(Value::Integer(n as i64));
        out.push_back(Value::Table(table));
    }
    Ok(out)
}

/// `string.rep`, charged by the size of its result before building it.
fn rep(lua: &Lua, ctx: &Ctx, args: MultiValue) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, "rep");
    let s = args.string(1)?;
    let n = args.integer(2)?;
    let sep = args.opt_string(3)?;
    let (s, sep) = (s.as_bytes(), sep.as_ref().map(|x| x.as_bytes()));
    let sep: &[u8] = sep.as_deref().unwrap_or(b"");
    let mut out = MultiValue::new();
    if n <= 0 || (s.is_empty() && sep.is_empty()) {
        out.push_back(Value::String(lua.create_string("").map_err(lua_fail)?));
        return Ok(out);
    }
    let n = n as u64;
    let total = (s.len() as u64).checked_mul(n).and_then(|a| {
        (sep.len() as u64)
            .checked_mul(n - 1)
            .and_then(|b| a.checked_add(b))
    });
    let Some(total) = total.filter(|t| *t < i64::MAX as u64) else {
        return message("resulting string too large");
    };
    ctx.charge_bytes(usize::try_from(total).unwrap_or(usize::MAX))?;
    if !ctx.fits(lua, usize::try_from(total).unwrap_or(usize::MAX)) {
        return message("not enough memory");
    }
    // `repeat` copies by doubling: a handful of large copies, not `n` small ones.
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let buf = if sep.is_empty() {
        s.repeat(n)
    } else {
        let mut unit = s.to_vec();
        unit.extend_from_slice(sep);
        let mut buf = unit.repeat(n - 1);
        buf.extend_from_slice(&s);
        buf
    };
    out.push_back(Value::String(lua.create_string(&buf).map_err(lua_fail)?));
    Ok(out)
}

/// `table.concat`, charged per element and per byte as it goes.
fn concat(lua: &Lua, ctx: &Ctx, args: MultiValue) -> Outcome<MultiValue> {
    let args = Args::new(lua, args, "concat");
    let table = match args.get(1) {
        Some(Value::Table(t)) => t.clone(),
        _ => return args.expected(1, "table"),
    };
    let sep = args.opt_string(2)?;
    let sep = sep
        .as_ref()
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default();
    let first = args.opt_integer(3, 1)?;
    let last = if args.absent(4) {
        table.len().map_err(lua_fail)?
    } else {
        args.integer(4)?
    };
    let room = ctx.room(lua);
    let mut buf = Vec::new();
    let mut i = first;
    while i <= last {
        let before = buf.len();
        let value: Value = table.get(i).map_err(lua_fail)?;
        match value {
            Value::String(s) => buf.extend_from_slice(&s.as_bytes()),
            v @ (Value::Integer(_) | Value::Number(_)) => {
                let text = lua.coerce_string(v).map_err(lua_fail)?;
                if let Some(text) = text {
                    buf.extend_from_slice(&text.as_bytes());
                }
            }
            _ => {
                return message(format!(
                    "invalid value (at index {i}) in table for 'concat'"
                ))
            }
        }
        if i < last {
            buf.extend_from_slice(&sep);
        }
        ctx.charge_bytes(buf.len() - before)?;
        if buf.len() > room {
            return message("not enough memory");
        }
        if i == i64::MAX {
            break;
        }
        i += 1;
    }
    let mut out = MultiValue::new();
    out.push_back(Value::String(lua.create_string(&buf).map_err(lua_fail)?));
    Ok(out)
}

/// `charge(n)`: charges `n` instructions of work a wrapped C function is about to do;
/// `true` when the budget is spent (the prelude then raises [`ABORT_MESSAGE`]).
fn charge(ctx: &Ctx, n: Value) -> bool {
    let steps = match n {
        Value::Integer(i) => u64::try_from(i).unwrap_or(0),
        Value::Number(f) if f >= 0.0 => {
            if f.is_finite() && f < u64::MAX as f64 {
                f as u64
            } else {
                u64::MAX
            }
        }
        _ => 0,
    };
    !ctx.shared.meter.charge(steps)
}

/// Adds the bounded library to the prelude's helper table `h`: `str_find`, `str_match`,
/// `str_gmatch`, `str_gsub`, `next_match`, `str_rep`, `tbl_concat`, `charge`, and the
/// markers `fail` (first result of a failed call, followed by the message) and `defer`.
pub(crate) fn install(lua: &Lua, h: &Table, shared: &Rc<Shared>) -> mlua::Result<()> {
    let ctx = Ctx {
        shared: shared.clone(),
        fail: lua.create_table()?,
    };
    let defer = lua.create_table()?;
    h.raw_set("fail", ctx.fail.clone())?;
    h.raw_set("defer", defer.clone())?;
    h.raw_set("bytes_per_step", BYTES_PER_STEP)?;
    h.raw_set("abort_message", ABORT_MESSAGE)?;

    type Impl = fn(&Lua, &Ctx, MultiValue) -> Outcome<MultiValue>;
    let simple: [(&str, Impl); 6] = [
        ("str_find", |l, c, a| find_or_match(l, c, a, true)),
        ("str_match", |l, c, a| find_or_match(l, c, a, false)),
        ("str_gmatch", gmatch),
        ("next_match", next_match),
        ("str_rep", rep),
        ("tbl_concat", concat),
    ];
    for (name, imp) in simple {
        let c = ctx.clone();
        let f: Function =
            lua.create_function(move |lua, args: MultiValue| c.finish(lua, imp(lua, &c, args)))?;
        h.raw_set(name, f)?;
    }
    let c = ctx.clone();
    h.raw_set(
        "str_gsub",
        lua.create_function(move |lua, args: MultiValue| {
            c.finish(lua, gsub(lua, &c, &defer, args))
        })?,
    )?;
    let c = ctx;
    h.raw_set(
        "charge",
        lua.create_function(move |_, n: Value| Ok(charge(&c, n)))?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlua::StdLib;

    use crate::budget::Budgets;
    use crate::sandbox::Sandbox;

    /// Runs `code` in a sandbox where `mine` is the bounded `string` table and `stock` the
    /// untouched C library, under a generous budget.
    fn compare(code: &str) {
        let sandbox = Sandbox::new(&Budgets::default()).unwrap();
        let globals = sandbox.globals().clone();
        let mine: mlua::Table = globals.get("string").unwrap();
        let my_table: mlua::Table = globals.get("table").unwrap();
        sandbox
            .lua
            .load_std_libs(StdLib::STRING | StdLib::TABLE)
            .unwrap();
        let stock: mlua::Table = globals.get("string").unwrap();
        let stock_table: mlua::Table = globals.get("table").unwrap();
        globals.set("mine", mine.clone()).unwrap();
        globals.set("stock", stock).unwrap();
        globals.set("my_table", my_table.clone()).unwrap();
        globals.set("stock_table", stock_table).unwrap();
        globals.set("string", mine).unwrap();
        globals.set("table", my_table).unwrap();
        let func = sandbox.lua.load(code).into_function().unwrap();
        let result = sandbox.run("test", crate::Budgets::default().scaled(200), func, |_| {
            Ok(mlua::MultiValue::new())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// Compares the bounded pattern functions with stock Lua on a table of patterns and on
    /// thousands of random ones: same results, same errors.
    #[test]
    fn patterns_agree_with_stock_lua() {
        compare(COMPARE_LUA);
    }

    const COMPARE_LUA: &str = r##"
local function norm(ok, ...)
  local out = { ok = ok, n = select("#", ...) }
  for i = 1, out.n do
    local v = select(i, ...)
    if not ok and type(v) == "string" then
      v = v:gsub("'string%.(%a+)'", "'%1'"):gsub("'table%.(%a+)'", "'%1'")
    end
    out[i] = v
  end
  return out
end
local function same(a, b)
  if a.ok ~= b.ok or a.n ~= b.n then return false end
  for i = 1, a.n do
    if a[i] ~= b[i] and not (a[i] ~= a[i] and b[i] ~= b[i]) then return false end
  end
  return true
end
local function show(r)
  local parts = { tostring(r.ok) }
  for i = 1, r.n do
    local v, t = r[i], type(r[i])
    if t == "string" or t == "number" or t == "nil" or t == "boolean" then
      v = string.format("%q", v)
    end
    parts[#parts + 1] = tostring(v)
  end
  return table.concat(parts, ", ")
end
local checked = 0
local function check(what, f_mine, f_stock, ...)
  local a = norm(pcall(f_mine, ...))
  local b = norm(pcall(f_stock, ...))
  checked = checked + 1
  if not same(a, b) then
    local args = {}
    for i = 1, select("#", ...) do args[i] = string.format("%q", tostring((select(i, ...)))) end
    error(what .. "(" .. table.concat(args, ", ") .. "): mine " .. show(a) .. " / stock " .. show(b), 0)
  end
end
local function collect(gm)
  return function(...)
    local out = {}
    local it = gm(...)
    for _ = 1, 50 do
      local r = table.pack(it())
      if r[1] == nil then break end
      for i = 1, r.n do out[#out + 1] = r[i] end
      out[#out + 1] = "|"
    end
    return table.concat(out, ",")
  end
end
local counter = 0
local function fn_repl(...)
  counter = counter + 1
  if counter % 3 == 0 then return false end
  if counter % 5 == 0 then return counter end
  return "<" .. table.concat(table.pack(...), ":") .. ">"
end
local tbl_repl = setmetatable({ a = "A", hello = 1, [2] = "two" }, { __index = function(_, k)
  if k == "l" then return "L" end
end })

local function all(s, p, init)
  check("find", mine.find, stock.find, s, p, init)
  check("find plain", mine.find, stock.find, s, p, init, true)
  check("match", mine.match, stock.match, s, p, init)
  check("gmatch", collect(mine.gmatch), collect(stock.gmatch), s, p, init)
  for _, repl in ipairs({ "<%0>", "%1-%1", "%%", "x", "%2", "%", "%a", 7 }) do
    check("gsub", mine.gsub, stock.gsub, s, p, repl)
    check("gsub n", mine.gsub, stock.gsub, s, p, repl, 2)
  end
  counter = 0
  local a = norm(pcall(mine.gsub, s, p, fn_repl))
  counter = 0
  local b = norm(pcall(stock.gsub, s, p, fn_repl))
  if not same(a, b) then error("gsub fn " .. s .. " " .. p .. ": " .. show(a) .. " / " .. show(b), 0) end
  check("gsub table", mine.gsub, stock.gsub, s, p, tbl_repl)
  check("gsub table n", mine.gsub, stock.gsub, s, p, tbl_repl, 1)
end

local fixed = {
  {"hello world", "o"}, {"hello world", "o", 6}, {"hello world", "l+"}, {"hello", ""},
  {"", ""}, {"", "a*"}, {"abc", "^a"}, {"abc", "^b"}, {"abc", "c$"}, {"abc", "b$"},
  {"a$c", "$c"}, {"a^c", "a^"}, {"a^c", "^"}, {"THE (quick) fox", "%((%a+)%)"},
  {"key = value", "(%w+)%s*=%s*(%w+)"}, {"  trim  ", "^%s*(.-)%s*$"},
  {"f(a(b)c)d", "%b()"}, {"f(a(b)c", "%b()"}, {"THE (quick) fox", "%f[%a]%a+"},
  {"hello", "()ll()"}, {"abcabc", "(abc)%1"}, {"aaa", "a-b"}, {"aaab", "a-b"},
  {"aaa", "a?a?a?a"}, {"x=1, y=2", "(%w+)=(%w+)"}, {"[test]", "[[]"}, {"a]b", "[]]"},
  {"a-b", "[a-]"}, {"a-b", "[%-]"}, {"0x1F", "%x+"}, {"tab\there", "%c"},
  {"v\vx", "%s"}, {"ABC def", "%u+"}, {"ABC def", "%l+"}, {"a.b", "%."}, {"a.b", "."},
  {"a,b;c", "%p+"}, {"abc", "[^a]"}, {"abc", "[^%a]"}, {"abc123", "%D+"},
  {"abc123", "[%d]+"}, {"hello", "l*"}, {"hello", "x*"}, {"hello", "(h)(e)(l)(l)(o)"},
  {"hello", "%"}, {"hello", "[a"}, {"hello", "[^"}, {"hello", "[]"}, {"hello", "(()"},
  {"hello", "%1"}, {"hello", "(h)%2"}, {"hello", "(h%1)"}, {"hello", "%f"}, {"hello", "%fx"},
  {"hello", "%b"}, {"hello", "%bx"}, {"hello", ")"}, {"hello", "%0"}, {"x", "[a-"},
  {"x", "[%"}, {"hello", "h", -3}, {"hello", "l", -100}, {"hello", "l", 100},
  {"hello", "", 6}, {"hello", "", 7}, {"hello", "", -1}, {"hello", "o", 0},
  {"a\0b", "%z"}, {"a\0b", "\0"}, {"a\0b", "[\0]"}, {"a\0b", "[%z]"}, {"a+b", "a+b"},
  {"a.b", "."}, {1234, 3}, {12.5, "%."}, {"\200\201x", "[\128-\255]+"},
  {"word1 word2", "%f[%w]%w+"}, {"THE", "%f[%l]"}, {"aXb", "%f[%u]."}, {"ab", "%f[%z]"},
  {"ab", "%f[^%z]"}, {"((a)", "%b()"}, {"abc", "a(b)c()"}, {"abab", "(ab)%1"}, {"a", "()"},
  {"a", "()()"}, {"aaa", "()a()"}, {"x()y", "%(%)"}, {"hello", "h.-o"}, {"hello", "h.*l"},
  {"hello", ".-"}, {"hello", "e?"}, {"hello", "[h-l]+"}, {"hello", "[l-h]+"},
  {"hello", "[%a-z]"}, {"a-z", "[a%-z]+"}, {"hello", "[^]l]+"}, {"he]llo", "[]l]+"},
  {"hello", "(h)(.)"}, {"hello", "(h)()(.)"}, {"one two  three", "%S+"},
  {"one two", "(%w+) (%w+)"}, {"abc", "^(a)"}, {"abc", "^()"}, {"", "^$"}, {"x", "^$"},
  {"aaa", "^a-$"}, {"aaa", "a-$"}, {"[[x]]", "%[(%b[])%]"}, {"$1.50", "%$(%d+)%.(%d+)"},
  {"hello", "(l)(l)%2%1"}, {"hello", "(l*)"}, {"hello", "(x*)"}, {"éa", "[é]"},
}
for _, case in ipairs(fixed) do
  all(case[1], case[2], case[3])
end
local deep = string.rep("(", 33) .. "h" .. string.rep(")", 33)
all("hello", deep)
all("hello", string.rep("a?", 300))
all(string.rep("a", 300), string.rep("a?", 150))

-- argument errors
for _, args in ipairs({ {nil, "x"}, {"x"}, {"x", {}}, {"x", "x", "a"}, {"x", "x", 1.5},
                        {"x", "x", "2"}, {{}, "x"}, {true, "x"} }) do
  check("find", mine.find, stock.find, args[1], args[2], args[3])
  check("match", mine.match, stock.match, args[1], args[2], args[3])
  check("gmatch", collect(mine.gmatch), collect(stock.gmatch), args[1], args[2], args[3])
end
check("gsub", mine.gsub, stock.gsub, "x", "x")
check("gsub", mine.gsub, stock.gsub, "x", "x", true)
check("gsub", mine.gsub, stock.gsub, "x", "x", "y", "z")
check("gsub", mine.gsub, stock.gsub, "x", "x", "y", 1.5)
check("gsub", mine.gsub, stock.gsub, "x", "x", function() return {} end)
check("gsub", mine.gsub, stock.gsub, "x", "x", function() return true end)
check("gsub", mine.gsub, stock.gsub, "abc", "%w", "%1")
check("gsub", mine.gsub, stock.gsub, "abc", "", "-")
check("gsub", mine.gsub, stock.gsub, "abc", "b*", "-")
check("gsub", mine.gsub, stock.gsub, "abc", "^", "-")
check("gsub", mine.gsub, stock.gsub, "abc", "$", "-")
check("gsub", mine.gsub, stock.gsub, "abc", "x*", "-", 0)
check("gsub", mine.gsub, stock.gsub, "abc", "x*", "-", -1)
check("gsub", mine.gsub, stock.gsub, "hello world", "(o)", { o = 0.5 })
check("gsub", mine.gsub, stock.gsub, "hello", "()", "%1")
check("gmatch init", collect(mine.gmatch), collect(stock.gmatch), "abcabc", "a", 2)
check("gmatch init", collect(mine.gmatch), collect(stock.gmatch), "abcabc", "a", -3)
check("gmatch anchor", collect(mine.gmatch), collect(stock.gmatch), "aaa", "^a")

-- rep and concat
for _, args in ipairs({ {"ab", 3}, {"ab", 3, ","}, {"", 5}, {"x", 0}, {"x", -1}, {"x", 1, ","},
                        {"", 3, "-"}, {"x"}, {nil, 2}, {"x", 2.5}, {"x", "3"}, {"x", 1e100},
                        {"x", math.maxinteger}, {123, 2} }) do
  check("rep", mine.rep, stock.rep, args[1], args[2], args[3])
end
for _, args in ipairs({ { {"a", "b", 3} }, { {"a", "b"}, ", " }, { {"a", "b", "c"}, "", 2 },
                        { {"a", "b", "c"}, "", 2, 3 }, { {"a", {}, "c"} }, { {} },
                        { {1.5, 2, "x"}, "-" }, { nil }, { {"a"}, {} }, { {"a"}, "", 3, 1 },
                        { {"a"}, "", 1, 2 } }) do
  check("concat", my_table.concat, stock_table.concat, args[1], args[2], args[3], args[4])
end

-- random patterns over small subjects
local tokens = { "a", "b", ".", "%a", "%d", "[ab]", "[^a]", "%s", "(", ")", "()", "%1", "*", "+",
                 "-", "?", "^", "$", "%b()", "%f[%a]", "[a-c]", "%", "]", "[", "x" }
local letters = { "a", "b", "c", "(", ")", " ", "1", "x", "." }
math.randomseed(42)
for _ = 1, 4000 do
  local p = {}
  for i = 1, math.random(1, 6) do p[i] = tokens[math.random(#tokens)] end
  local s = {}
  for i = 1, math.random(0, 10) do s[i] = letters[math.random(#letters)] end
  local init = nil
  if math.random(4) == 1 then init = math.random(-12, 12) end
  all(table.concat(s), table.concat(p), init)
end
assert(checked > 40000, checked)
"##;
}
