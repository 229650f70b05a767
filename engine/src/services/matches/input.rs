//! `match.input`'s payload, checked without being built: the session finds the object the script
//! will receive and passes its JSON text on; the match parses that text straight into a Lua table
//! (`MatchVm::handle_input_json`), so an input is parsed once and never becomes a
//! `serde_json::Value`.
//!
//! The rules are asobi's: the payload is the input object, except that older SDKs send the
//! single-key wrapper `{"data": {...}}` or `{"data": "<json object text>"}`, which is unwrapped
//! (`asobi_schema::payload::unwrap_match_input` states the same rules on a `Value`). Anything that
//! is not an object, after unwrapping, is refused.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use asobi_schema::ApiError;

/// What a payload holds, read in one pass.
enum Shape<'a> {
    /// An object that is not the legacy wrapper.
    Object,
    /// An object whose only key is `data` (the last one, if repeated, as a map keeps it).
    Wrapped(&'a RawValue),
    /// Anything else.
    Other,
}

/// The JSON text of the object `handle_input` receives: `Ok(None)` when the payload is valid JSON
/// but no object (or a wrapper around no object); an `invalid_payload` error when it is not JSON.
pub(super) fn object_text(payload: &str) -> Result<Option<Cow<'_, str>>, ApiError> {
    let shape = shape(payload).map_err(|e| ApiError::invalid_payload(&e))?;
    Ok(match shape {
        Shape::Object => Some(Cow::Borrowed(payload)),
        Shape::Wrapped(data) => unwrap(data),
        Shape::Other => None,
    })
}

/// The legacy wrapper's content, when it is an object or the text of one.
fn unwrap(data: &RawValue) -> Option<Cow<'_, str>> {
    let text = data.get();
    if text.starts_with('{') {
        return Some(Cow::Borrowed(text));
    }
    if !text.starts_with('"') {
        return None;
    }
    let inner: String = serde_json::from_str(text).ok()?;
    // The decoded text is the input as it stands (asobi unwraps once); a lone `data` key
    // inside it must hold an object, or the input is unusable.
    let usable = match shape(&inner) {
        Ok(Shape::Object) => true,
        Ok(Shape::Wrapped(d)) => d.get().starts_with('{'),
        _ => false,
    };
    usable.then_some(Cow::Owned(inner))
}

fn shape(text: &str) -> Result<Shape<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let shape = de.deserialize_any(ShapeVisitor)?;
    de.end()?;
    Ok(shape)
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_unit<E>(self) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<'de>, A::Error> {
        let mut only_data = true;
        let mut data = None;
        while let Some(is_data) = map.next_key_seed(IsData)? {
            if is_data {
                data = Some(map.next_value::<&'de RawValue>()?);
            } else {
                only_data = false;
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match data {
            Some(data) if only_data => Shape::Wrapped(data),
            _ => Shape::Object,
        })
    }
}

/// Whether an object key is `data`, without copying it.
struct IsData;

impl<'de> DeserializeSeed<'de> for IsData {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsData {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == "data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asobi_schema::payload;
    use serde_json::Value;

    /// What the `Value` path (asobi's rules in `asobi_schema::payload`) makes of `payload`.
    fn via_value(text: &str) -> Result<Option<Value>, ()> {
        let v: Value = serde_json::from_str(text).map_err(drop)?;
        let v = payload::unwrap_match_input(v);
        if !v.is_object() || payload::is_unusable_legacy_input(&v) {
            return Ok(None);
        }
        Ok(Some(v))
    }

    #[test]
    fn agrees_with_the_value_rules() {
        let samples = [
            r#"{"action":"move","dx":1}"#,
            r#"{}"#,
            r#" { "a" : [1, {"data": 2}] } "#,
            r#"{"data":{"x":1}}"#,
            r#"{"data": {"x":1} }"#,
            r#"{"d\u0061ta":{"x":1}}"#,
            r#"{"data":"{\"x\":1}"}"#,
            r#"{"data":"{\"data\":3}"}"#,
            r#"{"data":"[1]"}"#,
            r#"{"data":"not json"}"#,
            r#"{"data":5}"#,
            r#"{"data":null}"#,
            r#"{"data":[1]}"#,
            r#"{"data":1,"data":{"y":2}}"#,
            r#"{"data":{"y":2},"data":1}"#,
            r#"{"data":{"y":2},"other":1}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"3"#,
            r#"null"#,
            r#"true"#,
        ];
        for text in samples {
            let ours = object_text(text)
                .unwrap_or_else(|e| panic!("{text}: {e:?}"))
                .map(|t| serde_json::from_str::<Value>(&t).unwrap());
            assert_eq!(Ok(ours), via_value(text), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_json_is_an_invalid_payload() {
        for text in ["{", r#"{"a":1} x"#, "", r#"{"a":}"#, r#"{"data":{"x":}}"#] {
            let e = object_text(text).err().unwrap_or_else(|| panic!("{text}"));
            assert_eq!(e.code, asobi_schema::error::code::INVALID_JSON, "{text}");
        }
    }
}
