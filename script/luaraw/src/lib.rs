//! Lua ⇄ JSON without mlua's safe API: [`encode`] and [`Decoder`].
//!
//! `asobi-script` forbids `unsafe`; this crate holds the one place that needs it. Encoding a
//! match state through mlua's safe API creates a reference for every string key and every
//! nested table it reads (a heap allocation, a push onto mlua's reference thread, and the
//! reverse on drop): measured on the arena duel, ~1,300 instructions per table entry, more
//! than the script's own work. Here the walk reads the tables where they are, on the Lua stack,
//! inside one protected call, and writes bytes as it goes.
//!
//! What the code may do, and why it is sound:
//!
//! * it runs inside [`mlua::Lua::exec_raw`] (a protected call on the VM's own thread, with the
//!   Lua state locked), and only calls C API functions that **raise no Lua error**: reads
//!   (`lua_type`, `lua_to*`, `lua_rawlen`, `lua_rawequal`, `lua_getmetatable`, `lua_rawgeti`,
//!   `lua_next` on a table nobody modifies during the walk) and stack management
//!   (`lua_checkstack`, which reports failure by its return value, `lua_settop`). So no
//!   `longjmp` ever crosses the Rust frames here;
//! * `lua_tolstring` is called only on values whose type is `LUA_TSTRING`, so it never converts
//!   a number in place (which would break `lua_next`), and the bytes it returns are read while
//!   the string stays on the stack;
//! * every push is preceded by a `lua_checkstack`; nesting is bounded by the caller's depth
//!   limit, and the stack is reset as a whole when the walk ends, however it ends.
//!
//! Output rules: those of `asobi_script`'s JSON module (its tests compare this encoder with the
//! `serde` one, value by value).

use std::ffi::c_int;

mod decode;
pub use decode::Decoder;

use mlua::ffi;
use mlua::{Lua, Table, Value};

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output would be longer than the caller's limit.
    TooLarge,
    /// Tables nest deeper than the caller's limit (or contain themselves).
    TooDeep,
    /// The Lua stack could not grow for the walk, or the protected call failed.
    Lua(String),
}

/// Appends `value` as JSON to `out`. `object_mark` is the metatable that marks an empty table
/// decoded from a JSON object (it encodes as `{}`; any other empty table as `[]`). Tables nest at
/// most `max_depth` levels and the appended bytes are at most `max_bytes`; on an error `out` is
/// left as it was.
pub fn encode(
    lua: &Lua,
    value: &Value,
    object_mark: &Table,
    max_depth: usize,
    max_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let mut w = Writer {
        out,
        limit: start.saturating_add(max_bytes),
        max_depth,
    };
    let mut result = Ok(());
    // SAFETY: see the module documentation. `walk` only calls C API functions that raise no
    // error, on the two arguments `exec_raw` placed at stack slots 1 and 2.
    let called = unsafe {
        lua.exec_raw::<()>((value, object_mark), |state| {
            result = w.value(state, 1, 0);
            ffi::lua_settop(state, 0);
        })
    };
    if let Err(e) = called {
        result = Err(EncodeError::Lua(e.to_string()));
    }
    if result.is_err() {
        w.out.truncate(start);
    }
    result
}

/// Where the stack holds the object mark inside the protected call.
const MARK: c_int = 2;

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// `out` may not grow past this length.
    limit: usize,
    max_depth: usize,
}

enum Shape {
    Array(usize),
    Object,
    EmptyObject,
}

impl Writer<'_> {
    fn room(&self, more: usize) -> Result<(), EncodeError> {
        if self.out.len().saturating_add(more) > self.limit {
            Err(EncodeError::TooLarge)
        } else {
            Ok(())
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.room(bytes.len())?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes the value at absolute stack index `idx`.
    fn value(
        &mut self,
        l: *mut ffi::lua_State,
        idx: c_int,
        depth: usize,
    ) -> Result<(), EncodeError> {
        // SAFETY (all blocks below): `l` is the locked state inside `exec_raw`, `idx` a valid
        // absolute index, and none of these calls raises an error.
        match unsafe { ffi::lua_type(l, idx) } {
            ffi::LUA_TBOOLEAN => {
                if unsafe { ffi::lua_toboolean(l, idx) } != 0 {
                    self.raw(b"true")
                } else {
                    self.raw(b"false")
                }
            }
            ffi::LUA_TNUMBER => {
                if unsafe { ffi::lua_isinteger(l, idx) } != 0 {
                    let i = unsafe { ffi::lua_tointegerx(l, idx, std::ptr::null_mut()) };
                    self.raw(itoa::Buffer::new().format(i).as_bytes())
                } else {
                    let n = unsafe { ffi::lua_tonumberx(l, idx, std::ptr::null_mut()) };
                    self.number(n)
                }
            }
            ffi::LUA_TSTRING => {
                let bytes = unsafe { string_at(l, idx) };
                self.string(bytes)
            }
            ffi::LUA_TTABLE => self.table(l, idx, depth),
            // nil, mlua's null sentinel, and what JSON cannot carry (written as `null` where a
            // position must be kept; objects skip them before getting here).
            _ => self.raw(b"null"),
        }
    }

    fn number(&mut self, n: f64) -> Result<(), EncodeError> {
        if !n.is_finite() {
            return self.raw(b"null");
        }
        // serde_json's float format (`3.0` stays `3.0`); floats are rare in states.
        let mut text = Vec::with_capacity(24);
        serde_json::to_writer(&mut text, &n).map_err(|e| EncodeError::Lua(e.to_string()))?;
        self.raw(&text)
    }

    /// A string as serde_json writes it; bytes that are not UTF-8 become U+FFFD.
    fn string(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let plain = bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\');
        if plain {
            self.room(bytes.len() + 2)?;
            self.out.push(b'"');
            self.out.extend_from_slice(bytes);
            self.out.push(b'"');
            return Ok(());
        }
        let text = String::from_utf8_lossy(bytes);
        let mut escaped = Vec::with_capacity(text.len() + 8);
        serde_json::to_writer(&mut escaped, &*text).map_err(|e| EncodeError::Lua(e.to_string()))?;
        self.raw(&escaped)
    }

    fn table(
        &mut self,
        l: *mut ffi::lua_State,
        idx: c_int,
        depth: usize,
    ) -> Result<(), EncodeError> {
        if depth >= self.max_depth {
            return Err(EncodeError::TooDeep);
        }
        // Each level pushes at most a key, a value and a metatable.
        // SAFETY: as in `value`; `lua_checkstack` reports failure instead of raising.
        if unsafe { ffi::lua_checkstack(l, 4) } == 0 {
            return Err(EncodeError::Lua("Lua stack exhausted".to_owned()));
        }
        match unsafe { shape(l, idx) } {
            Shape::EmptyObject => self.raw(b"{}"),
            Shape::Array(len) => {
                self.raw(b"[")?;
                for i in 1..=len {
                    if i > 1 {
                        self.raw(b",")?;
                    }
                    // SAFETY: a raw read of a table slot pushes one value, which is popped
                    // below; the stack has room (checked above).
                    unsafe { ffi::lua_rawgeti(l, idx, i as ffi::lua_Integer) };
                    let top = unsafe { ffi::lua_gettop(l) };
                    self.value(l, top, depth + 1)?;
                    unsafe { ffi::lua_settop(l, top - 1) };
                }
                self.raw(b"]")
            }
            Shape::Object => {
                self.raw(b"{")?;
                let mut first = true;
                // SAFETY: `lua_next` on a table no one modifies during the walk; the key and
                // value it pushes are at `top - 1` and `top`, and the value is popped before the
                // next step so the key stays for it.
                unsafe { ffi::lua_pushnil(l) };
                while unsafe { ffi::lua_next(l, idx) } != 0 {
                    let top = unsafe { ffi::lua_gettop(l) };
                    let key = top - 1;
                    let wanted = unsafe { representable(l, top) };
                    if wanted {
                        if let Some(key) = unsafe { object_key(l, key) } {
                            if !first {
                                self.raw(b",")?;
                            }
                            first = false;
                            match key {
                                ObjectKey::Text(bytes) => self.string(bytes)?,
                                ObjectKey::Integer(i) => {
                                    let mut b = itoa::Buffer::new();
                                    let digits = b.format(i);
                                    self.room(digits.len() + 2)?;
                                    self.out.push(b'"');
                                    self.out.extend_from_slice(digits.as_bytes());
                                    self.out.push(b'"');
                                }
                                ObjectKey::Float(n) => self.string(n.to_string().as_bytes())?,
                            }
                            self.raw(b":")?;
                            self.value(l, top, depth + 1)?;
                        }
                    }
                    unsafe { ffi::lua_settop(l, key) };
                }
                self.raw(b"}")
            }
        }
    }
}

/// An object key as JSON writes it; other key types are skipped.
enum ObjectKey<'s> {
    Text(&'s [u8]),
    Integer(i64),
    Float(f64),
}

/// The key at `idx`, if JSON can name it.
///
/// # Safety
/// `idx` must be a valid index of the locked state; a string key's bytes are valid while it
/// stays on the stack.
unsafe fn object_key<'s>(l: *mut ffi::lua_State, idx: c_int) -> Option<ObjectKey<'s>> {
    // SAFETY: reads only; `string_at` is called on a string.
    unsafe {
        match ffi::lua_type(l, idx) {
            ffi::LUA_TSTRING => Some(ObjectKey::Text(string_at(l, idx))),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, idx) != 0 => Some(ObjectKey::Integer(
                ffi::lua_tointegerx(l, idx, std::ptr::null_mut()),
            )),
            ffi::LUA_TNUMBER => Some(ObjectKey::Float(ffi::lua_tonumberx(
                l,
                idx,
                std::ptr::null_mut(),
            ))),
            _ => None,
        }
    }
}

/// The bytes of the string at `idx`, valid while it stays on the stack.
///
/// # Safety
/// The value at `idx` must be a string (`LUA_TSTRING`), so `lua_tolstring` converts nothing.
unsafe fn string_at<'s>(l: *mut ffi::lua_State, idx: c_int) -> &'s [u8] {
    let mut len = 0usize;
    // SAFETY: a string value; Lua keeps its bytes alive while it is on the stack.
    unsafe {
        let ptr = ffi::lua_tolstring(l, idx, &mut len);
        if ptr.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Whether an object keeps the value at `idx`: what JSON can carry, and mlua's null sentinel
/// (a null light userdata).
///
/// # Safety
/// `idx` must be a valid index of the locked state.
unsafe fn representable(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: reads only.
    unsafe {
        match ffi::lua_type(l, idx) {
            ffi::LUA_TBOOLEAN | ffi::LUA_TNUMBER | ffi::LUA_TSTRING | ffi::LUA_TTABLE => true,
            ffi::LUA_TLIGHTUSERDATA => ffi::lua_touserdata(l, idx).is_null(),
            _ => false,
        }
    }
}

/// An array iff the keys are exactly `1..n`; an empty table is an object only when it carries
/// the object mark.
///
/// # Safety
/// `idx` must be the absolute index of a table, with room for three pushes on the stack.
unsafe fn shape(l: *mut ffi::lua_State, idx: c_int) -> Shape {
    // SAFETY: reads and pops only; `lua_next` walks a table no one modifies.
    unsafe {
        let top = ffi::lua_gettop(l);
        let len = ffi::lua_rawlen(l, idx);
        ffi::lua_pushnil(l);
        if len == 0 {
            let any = ffi::lua_next(l, idx) != 0;
            ffi::lua_settop(l, top);
            if any {
                return Shape::Object;
            }
            let marked = ffi::lua_getmetatable(l, idx) != 0 && ffi::lua_rawequal(l, -1, MARK) != 0;
            ffi::lua_settop(l, top);
            return if marked {
                Shape::EmptyObject
            } else {
                Shape::Array(0)
            };
        }
        let mut keys = 0usize;
        while ffi::lua_next(l, idx) != 0 {
            keys += 1;
            ffi::lua_settop(l, top + 1);
        }
        ffi::lua_settop(l, top);
        if keys != len {
            return Shape::Object;
        }
        // `len` is a border, not a count: make sure 1..len has no hole.
        for i in 1..=len {
            let t = ffi::lua_rawgeti(l, idx, i as ffi::lua_Integer);
            ffi::lua_settop(l, top);
            if t == ffi::LUA_TNIL {
                return Shape::Object;
            }
        }
        Shape::Array(len)
    }
}
