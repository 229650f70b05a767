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
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            self.overflowed = true;
            return Err(io::Error::other("too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

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

enum Shape {
    Array(Vec<Value>),
    Object(Vec<(Value, Value)>),
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
        match shape(t, self.marks).map_err(S::Error::custom)? {
            Shape::Array(values) => {
                let mut seq = s.serialize_seq(Some(values.len()))?;
                for v in &values {
                    if representable(v) {
                        seq.serialize_element(&self.child(v))?;
                    } else {
                        seq.serialize_element(&())?;
                    }
                }
                seq.end()
            }
            Shape::Object(pairs) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in &pairs {
                    if !representable(v) || matches!(v, Value::Nil) {
                        continue;
                    }
                    match k {
                        Value::String(key) => match key.to_str() {
                            Ok(key) => map.serialize_entry(&*key, &self.child(v))?,
                            Err(_) => {
                                map.serialize_entry(&key.to_string_lossy(), &self.child(v))?
                            }
                        },
                        Value::Integer(i) => map.serialize_entry(&i.to_string(), &self.child(v))?,
                        Value::Number(n) => map.serialize_entry(&n.to_string(), &self.child(v))?,
                        _ => {}
                    }
                }
                map.end()
            }
        }
    }
}

/// Decides whether a table is an array (keys exactly `1..n`) and collects its entries.
fn shape(t: &Table, marks: &Marks) -> mlua::Result<Shape> {
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    let mut sequence = true;
    t.for_each(|k: Value, v: Value| {
        if sequence {
            sequence = matches!(k, Value::Integer(i) if i >= 1);
        }
        pairs.push((k, v));
        Ok(())
    })?;
    if pairs.is_empty() {
        let is_object = t.metatable().is_some_and(|mt| mt == marks.object);
        return Ok(if is_object {
            Shape::Object(pairs)
        } else {
            Shape::Array(Vec::new())
        });
    }
    if sequence {
        let n = pairs.len();
        let mut slots: Vec<Option<Value>> = vec![None; n];
        for (k, v) in &pairs {
            let Value::Integer(i) = k else {
                unreachable_shape()
            };
            let idx = usize::try_from(*i - 1).unwrap_or(usize::MAX);
            match slots.get_mut(idx) {
                Some(slot) => *slot = Some(v.clone()),
                None => return Ok(Shape::Object(pairs)),
            }
        }
        // Keys are distinct and all within 1..=n, so every slot is filled.
        return Ok(Shape::Array(
            slots.into_iter().map(Option::unwrap_or_default).collect(),
        ));
    }
    Ok(Shape::Object(pairs))
}

#[cold]
fn unreachable_shape() -> ! {
    // `sequence` is only true when every key is a positive integer.
    unreachable!("non-integer key in a sequence")
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
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(mlua::Error::runtime("JSON nests too deeply"));
            }
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                let v = match item {
                    J::Null => Value::NULL,
                    other => to_lua_at(lua, other, marks, depth + 1)?,
                };
                t.raw_set(i + 1, v)?;
            }
            t.set_metatable(Some(marks.array.clone()))?;
            Value::Table(t)
        }
        J::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(mlua::Error::runtime("JSON nests too deeply"));
            }
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                t.raw_set(lua.create_string(k)?, to_lua_at(lua, v, marks, depth + 1)?)?;
            }
            t.set_metatable(Some(marks.object.clone()))?;
            Value::Table(t)
        }
    })
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
