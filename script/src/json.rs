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

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Maximum nesting of tables in either direction.
pub const MAX_DEPTH: usize = 64;

/// The metatables that record what shape a table had in JSON.
pub(crate) struct Marks {
    array: Table,
    object: Table,
    /// The state the marks belong to, for the encoder (weak: `Marks` lives inside the state's
    /// own shared data, so a strong handle would keep the state alive forever).
    lua: mlua::WeakLua,
    /// The JSON decoder's buffers, kept between inputs.
    decoder: std::cell::RefCell<asobi_luaraw::Decoder>,
}

impl Marks {
    pub(crate) fn new(lua: &Lua) -> mlua::Result<Marks> {
        Ok(Marks {
            array: lua.array_metatable(),
            object: lua.create_table()?,
            lua: lua.weak(),
            decoder: Default::default(),
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

const TOO_DEEP: &str = "\u{0}too deep";

/// Encodes `value` as JSON, failing once the output would exceed `max_bytes`.
pub(crate) fn encode(
    value: &Value,
    marks: &Marks,
    max_bytes: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(256);
    encode_into(value, marks, max_bytes, &mut out)?;
    Ok(out)
}

/// Appends `value` as JSON to `out` (so a caller can write a frame's envelope around it in one
/// buffer), failing once what this call appends would exceed `max_bytes`; on failure `out` is
/// left as it was. Same output as the `serde` path ([`to_json`]), written by
/// [`asobi_luaraw::encode`], which reads the tables through Lua's C API instead of making an
/// mlua reference for every key and nested table.
pub(crate) fn encode_into(
    value: &Value,
    marks: &Marks,
    max_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let Some(lua) = marks.lua.try_upgrade() else {
        return Err(EncodeError::Other("the Lua state is gone".to_owned()));
    };
    asobi_luaraw::encode(&lua, value, &marks.object, MAX_DEPTH, max_bytes, out).map_err(|e| match e
    {
        asobi_luaraw::EncodeError::TooLarge => EncodeError::TooLarge,
        asobi_luaraw::EncodeError::TooDeep => EncodeError::TooDeep,
        other => EncodeError::Other(format!("{other:?}")),
    })
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
        J::Object(map) => object_to_lua(lua, map, marks, depth),
        _ => Err(mlua::Error::runtime("not a JSON container")),
    }
}

/// A JSON object as a Lua table, as [`to_lua`] converts it, without wrapping (and so
/// cloning) the map into a `serde_json::Value` first.
pub(crate) fn map_to_lua(
    lua: &Lua,
    map: &serde_json::Map<String, serde_json::Value>,
    marks: &Marks,
) -> mlua::Result<Table> {
    object_to_lua(lua, map, marks, 0)
}

fn object_to_lua(
    lua: &Lua,
    map: &serde_json::Map<String, serde_json::Value>,
    marks: &Marks,
    depth: usize,
) -> mlua::Result<Table> {
    use serde_json::Value as J;
    if depth >= MAX_DEPTH {
        return Err(mlua::Error::runtime("JSON nests too deeply"));
    }
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

/// Decodes JSON text straight into a Lua value (see the module rules), with no
/// `serde_json::Value` in between: [`asobi_luaraw::Decoder`] parses it into tokens (buffers kept
/// per VM) and builds each table at its final size through Lua's C API.
pub(crate) fn decode_str(lua: &Lua, text: &str, marks: &Marks) -> mlua::Result<Value> {
    let mut decoder = marks
        .decoder
        .try_borrow_mut()
        .map_err(|_| mlua::Error::runtime("JSON decoder busy"))?;
    decoder.decode(lua, text, &marks.array, &marks.object, MAX_DEPTH)
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
    fn decoding_text_matches_decoding_a_value() {
        let lua = Lua::new();
        let marks = Marks::new(&lua).unwrap();
        let samples = [
            r#"{"action":"move","dx":1,"dy":-1,"seq":42}"#,
            r#"{}"#,
            r#"[]"#,
            r#"[1,null,3.5,"x",[[]],{}]"#,
            r#"{"a":null,"b":{"c":[true,false,null]},"e":"\u00e9\n"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"a":null}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808,"f":1e300,"z":2.0}"#,
            r#""text""#,
            r#"7"#,
            r#"null"#,
        ];
        for text in samples {
            let via_value: serde_json::Value = serde_json::from_str(text).unwrap();
            let a = to_lua(&lua, &via_value, &marks).unwrap();
            let b = decode_str(&lua, text, &marks).unwrap();
            // Tables sized differently walk their keys in another order: compare as JSON.
            let a: serde_json::Value =
                serde_json::from_slice(&encode(&a, &marks, usize::MAX).unwrap()).unwrap();
            let b: serde_json::Value =
                serde_json::from_slice(&encode(&b, &marks, usize::MAX).unwrap()).unwrap();
            assert_eq!(a, b, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(decode_str(&lua, &deep, &marks).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(decode_str(&lua, &ok, &marks).is_ok());
        for bad in ["{", r#"{"a":1} x"#, "", r#"{"a":}"#] {
            assert!(decode_str(&lua, bad, &marks).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_direct_writer_writes_what_serde_writes() {
        let lua = Lua::new();
        let marks = Marks::new(&lua).unwrap();
        let sources = [
            "{tick = 3, rules = 1, coin = {x = 4, y = 19}, players = {a = {x = 0, y = 0, score = 2, seq = 9}}}",
            "{1, 2.5, 'x', true, false, {}, {{}}}",
            "{[1] = 'a', [3] = 'c', [2.5] = 'f', [-7] = 'n'}",
            r#"{['q"uote'] = 'back\\slash', ctl = '\1\9\10\13\31', uni = 'é✓', bad = '\255\254'}"#,
            "{n = 0/0, inf = 1/0, f = 1e300, g = -0.0, h = 3.0, i = math.mininteger}",
            "{f = function() end, co = 1, [true] = 2}",
            "{1, print or function() end, 3}",
            "'just a string'",
            "12345",
            "2.25",
            "nil",
        ];
        for src in sources {
            let v: Value = lua.load(format!("return {src}")).eval().unwrap();
            let direct = encode(&v, &marks, usize::MAX).unwrap();
            let via_serde = serde_json::to_vec(&LuaJson {
                value: &v,
                marks: &marks,
                depth: 0,
            })
            .unwrap();
            if src.starts_with('{') && src.contains('=') {
                // Key order follows the table walk, the same for both; compare as JSON too.
                let a: serde_json::Value = serde_json::from_slice(&direct).unwrap();
                let b: serde_json::Value = serde_json::from_slice(&via_serde).unwrap();
                assert_eq!(a, b, "{src}");
            }
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&via_serde),
                "{src}"
            );
        }
        let mut out = b"head:".to_vec();
        let v: Value = lua.load("return {1, 2}").eval().unwrap();
        encode_into(&v, &marks, 5, &mut out).unwrap();
        assert_eq!(out, b"head:[1,2]");
        assert_eq!(
            encode_into(&v, &marks, 4, &mut out),
            Err(EncodeError::TooLarge)
        );
        assert_eq!(
            out, b"head:[1,2]",
            "a failed encode leaves the buffer as it was"
        );
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
