//! Bounds on a ticket's `properties`, and the compact form a queue keeps them in.
//!
//! Properties are client input that a queue holds for as long as the ticket waits (and, for a
//! matched ticket, until its match is confirmed), so they are capped before they are stored and
//! kept as their compact JSON text: its length is then exactly what the ticket costs, with none
//! of the per-node overhead of a parsed tree (a 4 KiB array of zeros is ~64 KiB as a `Value`).
//! The matcher reads only `skill`, which is extracted once at submission.
//!
//! asobi itself puts no bound of its own on properties; they are limited only by its transport
//! (64 KiB per WebSocket frame, 1 MiB per REST body, both answered with `payload_too_large`).

use std::io;

use serde_json::Value;

/// Largest encoded `properties` a ticket may carry. asobi's examples (`{"skill": 1200, "region":
/// "eu-west"}`) are about 40 bytes; 4 KiB leaves a hundred times that for tags, loadouts and
/// party hints while keeping a full queue ([`super::DEFAULT_MAX_QUEUE`] tickets) under 40 MiB
/// per mode. A WebSocket client could send asobi up to 64 KiB here; such a ticket is refused
/// with [`super::AddError::PropertiesTooLarge`] rather than kept.
pub const DEFAULT_MAX_PROPERTIES_BYTES: usize = 4 * 1024;

/// Deepest nesting of objects and arrays in `properties` (`{}` is depth 1, `{"a": [1]}` is 2).
/// Matchmaking inputs are flat in practice; 8 levels fits any grouped shape a strategy could
/// use and keeps every walk over them (depth check, skill lookup, clone) shallow.
pub const DEFAULT_MAX_PROPERTIES_DEPTH: usize = 8;

/// Why properties were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Oversize {
    Bytes,
    Depth,
}

/// A ticket's properties as compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored(Box<str>);

impl Stored {
    /// Checks `value` against the bounds and encodes it. The encoder stops as soon as the
    /// output passes `max_bytes`, so a megabyte of input costs a few kilobytes of work.
    pub(super) fn new(value: &Value, max_bytes: usize, max_depth: usize) -> Result<Self, Oversize> {
        if exceeds_depth(value, max_depth) {
            return Err(Oversize::Depth);
        }
        let mut out = Capped {
            buf: Vec::new(),
            max: max_bytes,
        };
        if serde_json::to_writer(&mut out, value).is_err() {
            return Err(Oversize::Bytes);
        }
        // serde_json writes valid UTF-8; the fallback is unreachable but keeps this panic-free.
        let text = String::from_utf8(out.buf).map_err(|_| Oversize::Bytes)?;
        Ok(Self(text.into_boxed_str()))
    }

    /// The properties as a JSON value (parsed on demand: status lookups and formed groups).
    pub(super) fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// Encoded length in bytes.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// True when `value` nests deeper than `max`. Never recurses more than `max + 1` levels.
fn exceeds_depth(value: &Value, max: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return false,
    };
    if max == 0 {
        return true;
    }
    for child in children {
        if exceeds_depth(child, max - 1) {
            return true;
        }
    }
    false
}

/// A writer that fails once more than `max` bytes were written.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(io::Error::other("properties too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn size_is_the_compact_encoding() {
        let v = json!({ "skill": 1200, "region": "eu-west" });
        let s = Stored::new(&v, 64, 8).expect("fits");
        assert_eq!(s.len(), r#"{"skill":1200,"region":"eu-west"}"#.len());
        assert_eq!(s.to_value(), v);
        let exact = s.len();
        assert!(Stored::new(&v, exact, 8).is_ok());
        assert_eq!(Stored::new(&v, exact - 1, 8), Err(Oversize::Bytes));
    }

    #[test]
    fn depth_counts_containers() {
        assert!(Stored::new(&json!(5), 64, 0).is_ok());
        assert_eq!(Stored::new(&json!({}), 64, 0), Err(Oversize::Depth));
        assert!(Stored::new(&json!({ "a": [1] }), 64, 2).is_ok());
        assert_eq!(
            Stored::new(&json!({ "a": [[1]] }), 64, 2),
            Err(Oversize::Depth)
        );
    }

    #[test]
    fn a_megabyte_is_refused_without_encoding_it_all() {
        let big = Value::String("x".repeat(1 << 20));
        assert_eq!(
            Stored::new(&big, DEFAULT_MAX_PROPERTIES_BYTES, 8),
            Err(Oversize::Bytes)
        );
    }
}
