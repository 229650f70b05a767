//! JSON → Lua in two passes: the text is parsed into a flat list of tokens (safe Rust, into
//! buffers the decoder keeps between calls), then the tokens are pushed as Lua values through the
//! C API inside one protected call, with every table created at its final size.
//!
//! The second pass may raise a Lua error (an allocation the memory limit refuses): it unwinds
//! through frames that own nothing (`&[Token]`, indices), as mlua's own protected pushes do.

use std::ffi::c_int;

use mlua::{ffi, Lua, Table, Value};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Where the stack holds the marks inside the protected call.
const ARRAY_MARK: c_int = 1;
const OBJECT_MARK: c_int = 2;

#[derive(Clone, Copy)]
enum Token {
    /// An object with this many entries (key, value pairs) following.
    Object(u32),
    /// An array with this many items following.
    Array(u32),
    /// A string (key or value): a range of the decoder's text buffer.
    Str(u32, u32),
    Int(i64),
    Num(f64),
    Bool(bool),
    Null,
}

/// Decodes JSON text into Lua values; keeps its buffers between calls.
#[derive(Default)]
pub struct Decoder {
    tokens: Vec<Token>,
    text: String,
}

/// A buffer that grew past this is dropped after the call instead of kept (a rare large input
/// must not pin its memory in every VM).
const KEEP_CAPACITY: usize = 16 * 1024;

impl Decoder {
    /// Decodes `json` as a Lua value: objects become tables with `object_mark` as metatable,
    /// arrays tables with `array_mark`; `null` leaves an object's key absent and is mlua's null
    /// sentinel inside an array; integers stay integers, numbers with a fraction or exponent (or
    /// beyond `i64`) are floats. Containers nest at most `max_depth` levels.
    pub fn decode(
        &mut self,
        lua: &Lua,
        json: &str,
        array_mark: &Table,
        object_mark: &Table,
        max_depth: usize,
    ) -> mlua::Result<Value> {
        self.tokens.clear();
        self.text.clear();
        let parsed = self.parse(json, max_depth);
        let result = parsed.and_then(|()| self.push(lua, array_mark, object_mark));
        if self.tokens.capacity() > KEEP_CAPACITY {
            self.tokens = Vec::new();
        }
        if self.text.capacity() > KEEP_CAPACITY {
            self.text = String::new();
        }
        result
    }

    fn parse(&mut self, json: &str, max_depth: usize) -> mlua::Result<()> {
        let mut de = serde_json::Deserializer::from_str(json);
        Seed {
            d: self,
            depth: 0,
            max_depth,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| mlua::Error::runtime(format!("invalid JSON: {e}")))
    }

    fn push(&self, lua: &Lua, array_mark: &Table, object_mark: &Table) -> mlua::Result<Value> {
        let mut ok = false;
        // SAFETY: the closure runs inside mlua's protected call on the locked state, with the
        // two marks at slots 1 and 2; `push_value` keeps the stack balanced and checks for room
        // before every push. It leaves exactly the decoded value in slot 1.
        let value = unsafe {
            lua.exec_raw::<Value>((array_mark, object_mark), |l| {
                let mut pos = 0usize;
                if push_value(l, &self.tokens, self.text.as_bytes(), &mut pos, false) {
                    ffi::lua_copy(l, -1, 1);
                    ffi::lua_settop(l, 1);
                    ok = true;
                } else {
                    ffi::lua_settop(l, 0);
                }
            })
        }?;
        if ok {
            Ok(value)
        } else {
            Err(mlua::Error::runtime("JSON could not be built in Lua"))
        }
    }
}

/// Pushes the value that starts at `tokens[*pos]` and advances past it; false (with nothing
/// pushed) when the tokens run out or the stack cannot grow.
///
/// # Safety
/// `l` is the locked state inside `exec_raw`, with the marks at slots 1 and 2.
unsafe fn push_value(
    l: *mut ffi::lua_State,
    tokens: &[Token],
    text: &[u8],
    pos: &mut usize,
    in_array: bool,
) -> bool {
    let Some(&token) = tokens.get(*pos) else {
        return false;
    };
    *pos += 1;
    // SAFETY: see the function's contract; a container pushes its table, then one key and one
    // value at a time, popped by `lua_rawset` / `lua_rawseti`, after checking for three slots.
    unsafe {
        if ffi::lua_checkstack(l, 3) == 0 {
            return false;
        }
        match token {
            Token::Null if in_array => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
            Token::Null => ffi::lua_pushnil(l),
            Token::Bool(b) => ffi::lua_pushboolean(l, c_int::from(b)),
            Token::Int(i) => ffi::lua_pushinteger(l, i),
            Token::Num(n) => ffi::lua_pushnumber(l, n),
            Token::Str(start, len) => {
                let Some(bytes) = text.get(start as usize..(start as usize + len as usize)) else {
                    return false;
                };
                ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
            }
            Token::Array(n) => {
                ffi::lua_createtable(l, c_int::try_from(n).unwrap_or(0), 0);
                for i in 1..=n {
                    if !push_value(l, tokens, text, pos, true) {
                        ffi::lua_pop(l, 1);
                        return false;
                    }
                    ffi::lua_rawseti(l, -2, ffi::lua_Integer::from(i));
                }
                ffi::lua_pushvalue(l, ARRAY_MARK);
                ffi::lua_setmetatable(l, -2);
            }
            Token::Object(n) => {
                ffi::lua_createtable(l, 0, c_int::try_from(n).unwrap_or(0));
                for _ in 0..n {
                    if !push_value(l, tokens, text, pos, false) {
                        ffi::lua_pop(l, 1);
                        return false;
                    }
                    if !push_value(l, tokens, text, pos, false) {
                        ffi::lua_pop(l, 2);
                        return false;
                    }
                    // A `null` value sets the key to nil: absent, and an earlier duplicate's
                    // value is gone too, as when the object went through a map first.
                    ffi::lua_rawset(l, -3);
                }
                ffi::lua_pushvalue(l, OBJECT_MARK);
                ffi::lua_setmetatable(l, -2);
            }
        }
    }
    true
}

/// The first pass: one JSON value into tokens.
struct Seed<'a> {
    d: &'a mut Decoder,
    depth: usize,
    max_depth: usize,
}

impl Seed<'_> {
    fn nested(&mut self) -> Seed<'_> {
        Seed {
            d: self.d,
            depth: self.depth + 1,
            max_depth: self.max_depth,
        }
    }

    fn string<E: serde::de::Error>(&mut self, s: &str) -> Result<(), E> {
        let start = u32::try_from(self.d.text.len()).map_err(|_| E::custom("JSON too large"))?;
        let len = u32::try_from(s.len()).map_err(|_| E::custom("JSON too large"))?;
        self.d.text.push_str(s);
        self.d.tokens.push(Token::Str(start, len));
        Ok(())
    }

    /// Opens a container: its token, patched with the count once it is closed.
    fn open<E: serde::de::Error>(&mut self, token: Token) -> Result<usize, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom("JSON nests too deeply"));
        }
        self.d.tokens.push(token);
        Ok(self.d.tokens.len() - 1)
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.d.tokens.push(Token::Null);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.d.tokens.push(Token::Bool(b));
        Ok(())
    }

    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        self.d.tokens.push(Token::Int(i));
        Ok(())
    }

    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        // As `serde_json::Number::as_i64`, then `as_f64`: too large for an integer is a float.
        self.d.tokens.push(match i64::try_from(u) {
            Ok(i) => Token::Int(i),
            Err(_) => Token::Num(u as f64),
        });
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        self.d.tokens.push(Token::Num(n));
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
        self.string(s)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let at = self.open(Token::Array(0))?;
        let mut n = 0u32;
        while seq.next_element_seed(self.nested())?.is_some() {
            n = n.saturating_add(1);
        }
        if let Some(t) = self.d.tokens.get_mut(at) {
            *t = Token::Array(n);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let at = self.open(Token::Object(0))?;
        let mut n = 0u32;
        while map
            .next_key_seed(Key {
                seed: self.nested(),
            })?
            .is_some()
        {
            map.next_value_seed(self.nested())?;
            n = n.saturating_add(1);
        }
        if let Some(t) = self.d.tokens.get_mut(at) {
            *t = Token::Object(n);
        }
        Ok(())
    }
}

/// An object key, copied into the text buffer.
struct Key<'a> {
    seed: Seed<'a>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
        self.seed.string(s)
    }
}
