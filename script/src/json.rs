//! Conversion between Lua values and JSON.
//!
//! Rules (both directions keep the distinctions a client can see):
//!
//! * Lua integers ⇄ JSON integers, Lua floats ⇄ JSON numbers with a fraction or exponent
//!   (`3.0` stays `3.0`). Non-finite floats encode as `null`.
//! * A Lua table encodes as an array when its keys are exactly `1..n` (n ≥ 1), as an object
//!   otherwise (mixed or sparse tables become objects with the integer keys as text, rather
//!   than silently losing entries).
//! * An **empty** table encodes as `[]`, which is what asobi sends (its Lua runtime decodes an
//!   empty table to an empty list), so clients written against asobi — `for (const c of
//!   state.coins)` — keep working; the exception is a table decoded from a JSON object,
//!   which carries a marker metatable and encodes back as `{}`. JSON arrays decode to tables
//!   with mlua's array metatable, so `[]` round-trips too.
//! * Object keys: strings as they are, numbers as their decimal text; other key types are
//!   skipped. Values that JSON cannot carry (functions, coroutines, userdata) are skipped in
//!   objects and written as `null` in arrays.
//! * JSON `null` inside an object leaves the key absent (so `if input.x then` means what a
//!   Lua programmer expects). Inside an array it becomes mlua's null sentinel
//!   ([`mlua::Value::NULL`]) so positions survive; the sentinel encodes back to `null`.
//! * Strings that are not valid UTF-8 are encoded lossily (U+FFFD).
//! * Tables nest at most [`MAX_DEPTH`] levels (asobi's figure); deeper structures, including
//!   tables that contain themselves, are an error instead of a stack overflow.
//!
//! Encoding reads tables raw: no metamethod runs, so encoding never executes script code.

use std::io;

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Maximum nesting of tables in either direction.
pub const MAX_DEPTH: usize = 64;

/// The metatables that record what shape a table had in JSON.
pub(crate) struct Marks {
    array: Table,
    object: Table,
}

impl Marks {
    pub(crate) fn new(lua: &Lua) -> mlua::Result<Marks> {
        Ok(Marks {
            array: lua.array_metatable(),
            object: lua.create_table()?,
        })
    }
}

/// Why a Lua value could not be encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EncodeError {
    TooLarge,
    TooDeep,
    Other(String),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLarge => f.write_str("encoded value is too large"),
            EncodeError::TooDeep => write!(f, "tables nest deeper than {MAX_DEPTH} levels"),
            EncodeError::Other(m) => f.write_str(m),
        }
    }
}

struct Capped {
    buf: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl io::Write for Capped {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data).map(|()| data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > self.max {
            self.overflowed = true;
            return Err(io::Error::other("too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const TOO_DEEP: &str = "\u{0}too deep";

/// Encodes `value` as JSON, failing once the output would exceed `max_bytes`.
pub(crate) fn encode(
    value: &Value,
    marks: &Marks,
    max_bytes: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Capped {
        buf: Vec::with_capacity(128),
        max: max_bytes,
        overflowed: false,
    };
    let result = serde_json::to_writer(
        &mut out,
        &LuaJson {
            value,
            marks,
            depth: 0,
        },
    );
    match result {
        Ok(()) => Ok(out.buf),
        Err(_) if out.overflowed => Err(EncodeError::TooLarge),
        Err(e) => Err(classify(e)),
    }
}

/// Converts `value` to a `serde_json::Value` (used for results and configuration).
pub(crate) fn to_json(value: &Value, marks: &Marks) -> Result<serde_json::Value, EncodeError> {
    serde_json::to_value(LuaJson {
        value,
        marks,
        depth: 0,
    })
    .map_err(classify)
}

fn classify(e: serde_json::Error) -> EncodeError {
    let text = e.to_string();
    if text.starts_with(TOO_DEEP) {
        EncodeError::TooDeep
    } else {
        EncodeError::Other(text)
    }
}

struct LuaJson<'a> {
    value: &'a Value,
    marks: &'a Marks,
    depth: usize,
}

fn representable(v: &Value) -> bool {
    matches!(
        v,
        Value::Nil
            | Value::Boolean(_)
            | Value::Integer(_)
            | Value::Number(_)
            | Value::String(_)
            | Value::Table(_)
    ) || *v == Value::NULL
}

impl Serialize for LuaJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Nil => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Number(n) => s.serialize_f64(*n),
            Value::String(text) => match text.to_str() {
                Ok(t) => s.serialize_str(&t),
                Err(_) => s.serialize_str(&text.to_string_lossy()),
            },
            Value::Table(t) => self.table(t, s),
            _ => s.serialize_unit(),
        }
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Array(usize),
    Object,
    EmptyObject,
}

impl LuaJson<'_> {
    fn child<'b>(&'b self, value: &'b Value) -> LuaJson<'b> {
        LuaJson {
            value,
            marks: self.marks,
            depth: self.depth + 1,
        }
    }

    fn table<S: Serializer>(&self, t: &Table, s: S) -> Result<S::Ok, S::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(S::Error::custom(TOO_DEEP));
        }
        // Errors from inside the iteration closures are carried out through this slot,
        // because the closures must return `mlua::Result`.
        let mut failure: Option<S::Error> = None;
        let stop = || mlua::Error::runtime("json");
        match shape(t, self.marks).map_err(S::Error::custom)? {
            Shape::Array(len) => {
                let mut seq = s.serialize_seq(Some(len))?;
                let walked = t.for_each_value(|v: Value| {
                    let element = if representable(&v) {
                        seq.serialize_element(&self.child(&v))
                    } else {
                        seq.serialize_element(&())
                    };
                    element.map_err(|e| {
                        failure = Some(e);
                        stop()
                    })
                });
                finish(walked, failure)?;
                seq.end()
            }
            Shape::EmptyObject => s.serialize_map(Some(0))?.end(),
            Shape::Object => {
                let mut map = s.serialize_map(None)?;
                let walked = t.for_each(|k: Value, v: Value| {
                    if !representable(&v) || v.is_nil() {
                        return Ok(());
                    }
                    let entry = match &k {
                        Value::String(key) => match key.to_str() {
                            Ok(key) => map.serialize_entry(&*key, &self.child(&v)),
                            Err(_) => map.serialize_entry(&key.to_string_lossy(), &self.child(&v)),
                        },
                        Value::Integer(i) => map.serialize_entry(i, &self.child(&v)),
                        Value::Number(n) => map.serialize_entry(&n.to_string(), &self.child(&v)),
                        _ => Ok(()),
                    };
                    entry.map_err(|e| {
                        failure = Some(e);
                        stop()
                    })
                });
                finish(walked, failure)?;
                map.end()
            }
        }
    }
}

fn finish<E: serde::ser::Error>(walked: mlua::Result<()>, failure: Option<E>) -> Result<(), E> {
    match (walked, failure) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(E::custom(e)),
        (Ok(()), None) => Ok(()),
    }
}

/// Decides how a table encodes without materialising it: an array iff its keys are exactly
/// `1..n`. The checks read booleans only, which mlua converts without creating references.
fn shape(t: &Table, marks: &Marks) -> mlua::Result<Shape> {
    let len = t.raw_len();
    if len == 0 {
        if !t.is_empty() {
            return Ok(Shape::Object);
        }
        let is_object = t.metatable().is_some_and(|mt| mt == marks.object);
        return Ok(if is_object {
            Shape::EmptyObject
        } else {
            Shape::Array(0)
        });
    }
    let mut keys = 0usize;
    t.for_each(|_: bool, _: bool| {
        keys += 1;
        Ok(())
    })?;
    if keys != len {
        return Ok(Shape::Object);
    }
    // `len` is a border, not a count: make sure 1..len has no hole.
    let mut run = 0usize;
    t.for_each_value(|_: bool| {
        run += 1;
        Ok(())
    })?;
    Ok(if run == len {
        Shape::Array(len)
    } else {
        Shape::Object
    })
}

/// Converts JSON to a Lua value (see the module rules).
pub(crate) fn to_lua(lua: &Lua, value: &serde_json::Value, marks: &Marks) -> mlua::Result<Value> {
    to_lua_at(lua, value, marks, 0)
}

fn to_lua_at(
    lua: &Lua,
    value: &serde_json::Value,
    marks: &Marks,
    depth: usize,
) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => number(n),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(_) | J::Object(_) => Value::Table(table_to_lua(lua, value, marks, depth)?),
    })
}

fn number(n: &serde_json::Number) -> Value {
    match n.as_i64() {
        Some(i) => Value::Integer(i),
        None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Builds a table, pushing scalars straight into it (no intermediate references).
fn table_to_lua(
    lua: &Lua,
    value: &serde_json::Value,
    marks: &Marks,
    depth: usize,
) -> mlua::Result<Table> {
    use serde_json::Value as J;
    if depth >= MAX_DEPTH {
        return Err(mlua::Error::runtime("JSON nests too deeply"));
    }
    match value {
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                let i = i + 1;
                match item {
                    J::Null => t.raw_set(i, Value::NULL)?,
                    J::Bool(b) => t.raw_set(i, *b)?,
                    J::Number(n) => t.raw_set(i, number(n))?,
                    J::String(s) => t.raw_set(i, s.as_str())?,
                    nested => t.raw_set(i, table_to_lua(lua, nested, marks, depth + 1)?)?,
                }
            }
            t.set_metatable(Some(marks.array.clone()))?;
            Ok(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                let k = k.as_str();
                match v {
                    J::Null => {}
                    J::Bool(b) => t.raw_set(k, *b)?,
                    J::Number(n) => t.raw_set(k, number(n))?,
                    J::String(s) => t.raw_set(k, s.as_str())?,
                    nested => t.raw_set(k, table_to_lua(lua, nested, marks, depth + 1)?)?,
                }
            }
            t.set_metatable(Some(marks.object.clone()))?;
            Ok(t)
        }
        _ => Err(mlua::Error::runtime("not a JSON container")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(lua: &Lua, v: serde_json::Value) -> String {
        let marks = Marks::new(lua).unwrap();
        let l = to_lua(lua, &v, &marks).unwrap();
        String::from_utf8(encode(&l, &marks, usize::MAX).unwrap()).unwrap()
    }

    #[test]
    fn round_trips_keep_shape() {
        let lua = Lua::new();
        assert_eq!(roundtrip(&lua, json!([])), "[]");
        assert_eq!(roundtrip(&lua, json!({})), "{}");
        assert_eq!(roundtrip(&lua, json!([1, 2.0, "x"])), r#"[1,2.0,"x"]"#);
        assert_eq!(roundtrip(&lua, json!([1, null, 3])), "[1,null,3]");
        assert_eq!(roundtrip(&lua, json!({"a": null, "b": 1})), r#"{"b":1}"#);
        assert_eq!(
            roundtrip(&lua, json!({"n": {"m": [[]]}})),
            r#"{"n":{"m":[[]]}}"#
        );
    }

    #[test]
    fn lua_tables_pick_array_or_object() {
        let lua = Lua::new();
        let marks = Marks::new(&lua).unwrap();
        let enc = |src: &str| {
            let v: Value = lua.load(src).eval().unwrap();
            String::from_utf8(encode(&v, &marks, usize::MAX).unwrap()).unwrap()
        };
        assert_eq!(enc("{3, 4}"), "[3,4]");
        assert_eq!(
            enc("{}"),
            "[]",
            "asobi sends an empty table as an empty list"
        );
        assert_eq!(enc("{[2] = 'b', [1] = 'a'}"), r#"["a","b"]"#);
        assert_eq!(enc("{[1] = 'a', [3] = 'c'}"), r#"{"1":"a","3":"c"}"#);
        assert_eq!(enc("{1, x = 2}").len(), r#"{"1":1,"x":2}"#.len());
        assert_eq!(enc("{f = function() end, n = 1}"), r#"{"n":1}"#);
        assert_eq!(enc("{1, print or function() end, 3}"), "[1,null,3]");
        assert_eq!(enc("1.5"), "1.5");
        assert_eq!(enc("7"), "7");
        assert_eq!(enc("0/0"), "null");
    }

    #[test]
    fn depth_and_size_are_capped() {
        let lua = Lua::new();
        let marks = Marks::new(&lua).unwrap();
        let v: Value = lua.load("local t = {} t.self = t return t").eval().unwrap();
        assert_eq!(encode(&v, &marks, usize::MAX), Err(EncodeError::TooDeep));
        let v: Value = lua.load("return string.rep('x', 100)").eval().unwrap();
        assert_eq!(encode(&v, &marks, 50), Err(EncodeError::TooLarge));
    }
}
