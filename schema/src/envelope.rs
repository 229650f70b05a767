//! The JSON envelope: `{"type", "cid"?, "payload"}` in both directions.
//!
//! Inbound frames are parsed in two layers: [`Inbound::parse`] reads only the envelope and keeps
//! `cid` and `payload` as raw JSON slices, so a heartbeat is answered without ever building a
//! tree for its payload; the handler then decodes the payload type it expects. Outbound frames
//! are written straight into one buffer, echoing the request's `cid` byte for byte.

use std::borrow::Cow;
use std::io::Write;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{code, ApiError};

/// A client frame with its envelope read and its payload left raw.
#[derive(Debug, Deserialize)]
pub struct Inbound<'a> {
    /// The message type, e.g. `session.heartbeat`.
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    /// The correlation id, kept as raw JSON so a reply echoes exactly what was sent.
    #[serde(borrow, default)]
    pub cid: Option<&'a RawValue>,
    /// The payload, decoded later by the handler of `kind`.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// `world.input`'s optional input sequence number, a sibling of `payload` (asobi reads it
    /// there so that the payload stays the input map). Raw: only `world.input` reads it.
    #[serde(borrow, default)]
    pub seq: Option<&'a RawValue>,
}

/// Why an inbound frame could not be read as an envelope.
#[derive(Debug)]
pub enum EnvelopeError {
    /// Not JSON at all, or not a JSON object.
    InvalidJson,
    /// JSON, but without a string `type`. Carries the `cid` when one could be read.
    MissingType(Option<Box<RawValue>>),
}

impl EnvelopeError {
    /// The error a client sees for this failure.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            EnvelopeError::InvalidJson => {
                ApiError::new(400, code::INVALID_JSON, "The frame is not a JSON object.")
            }
            EnvelopeError::MissingType(_) => ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "The message is missing a string `type` field.",
            ),
        }
    }
}

impl<'a> Inbound<'a> {
    /// Reads the envelope of one text frame.
    pub fn parse(text: &'a str) -> Result<Inbound<'a>, EnvelopeError> {
        match serde_json::from_str::<Inbound<'a>>(text) {
            Ok(frame) if frame.kind.is_some() => Ok(frame),
            Ok(frame) => Err(EnvelopeError::MissingType(
                frame.cid.map(RawValue::to_owned),
            )),
            Err(e) if e.is_data() => {
                // Valid JSON of the wrong shape, e.g. a numeric `type`: salvage the cid.
                #[derive(Deserialize)]
                struct CidOnly<'b> {
                    #[serde(borrow, default)]
                    cid: Option<&'b RawValue>,
                }
                let cid = serde_json::from_str::<CidOnly<'_>>(text)
                    .ok()
                    .and_then(|c| c.cid.map(RawValue::to_owned));
                Err(EnvelopeError::MissingType(cid))
            }
            Err(_) => Err(EnvelopeError::InvalidJson),
        }
    }

    /// An envelope assembled from parts decoded elsewhere (e.g. the binary wire).
    pub fn from_parts(
        kind: &'a str,
        cid: Option<&'a RawValue>,
        payload: Option<&'a RawValue>,
    ) -> Inbound<'a> {
        Inbound {
            kind: Some(Cow::Borrowed(kind)),
            cid,
            payload,
            seq: None,
        }
    }

    /// The message type.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or_default()
    }

    /// The raw payload, `{}` when absent or `null`.
    pub fn payload_str(&self) -> &str {
        match self.payload {
            Some(raw) if raw.get() != "null" => raw.get(),
            _ => "{}",
        }
    }

    /// Decodes the payload as `T`, with an `invalid_payload` error naming what was wrong.
    pub fn decode<T: Deserialize<'a>>(&self) -> Result<T, ApiError> {
        let raw: &'a str = match self.payload {
            Some(raw) if raw.get() != "null" => raw.get(),
            _ => "{}",
        };
        serde_json::from_str(raw).map_err(|e| ApiError::invalid_payload(&e))
    }
}

/// A frame ready for the wire: encoded once, shared by reference between recipients.
pub type OutFrame = Bytes;

/// Encodes a server frame whose payload is any serialisable value.
pub fn encode_frame<T: serde::Serialize + ?Sized>(
    kind: &str,
    cid: Option<&RawValue>,
    payload: &T,
) -> OutFrame {
    let mut out = Vec::with_capacity(96);
    write_head(&mut out, kind, cid);
    // Serialising a Serialize value into a Vec cannot fail for the types this crate is used with
    // (string keys only); fall back to null rather than emit a broken frame if it ever does.
    let mark = out.len();
    if serde_json::to_writer(&mut out, payload).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
    Bytes::from(out)
}

/// Encodes a server frame whose payload is already JSON (e.g. a script's encoded state).
pub fn encode_frame_raw(kind: &str, cid: Option<&RawValue>, payload_json: &[u8]) -> OutFrame {
    let mut out = Vec::with_capacity(payload_json.len() + kind.len() + 40);
    write_head(&mut out, kind, cid);
    out.extend_from_slice(payload_json);
    out.push(b'}');
    Bytes::from(out)
}

/// The reply to `session.heartbeat`: the hottest frame there is, written without serde.
pub fn encode_heartbeat(cid: Option<&RawValue>, ts_ms: i64) -> OutFrame {
    let mut out = Vec::with_capacity(72);
    write_head(&mut out, "session.heartbeat", cid);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"ts\":{ts_ms}}}}}");
    Bytes::from(out)
}

fn write_head(out: &mut Vec<u8>, kind: &str, cid: Option<&RawValue>) {
    out.extend_from_slice(b"{\"type\":");
    write_json_str(out, kind);
    if let Some(cid) = cid {
        out.extend_from_slice(b",\"cid\":");
        out.extend_from_slice(cid.get().as_bytes());
    }
    out.extend_from_slice(b",\"payload\":");
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f);
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_and_keeps_raw_cid() {
        let f = Inbound::parse(r#"{"type":"session.heartbeat","cid":"c-1","payload":{}}"#).unwrap();
        assert_eq!(f.kind(), "session.heartbeat");
        assert_eq!(f.cid.unwrap().get(), "\"c-1\"");
        let out = encode_heartbeat(f.cid, 5);
        assert_eq!(
            &out[..],
            br#"{"type":"session.heartbeat","cid":"c-1","payload":{"ts":5}}"#
        );
    }

    #[test]
    fn numeric_cid_is_echoed_as_sent() {
        let f = Inbound::parse(r#"{"cid":7,"type":"x"}"#).unwrap();
        let out = encode_frame("y", f.cid, &serde_json::json!({"a":1}));
        assert_eq!(&out[..], br#"{"type":"y","cid":7,"payload":{"a":1}}"#);
    }

    #[test]
    fn missing_or_wrong_type_is_invalid_message_with_cid() {
        match Inbound::parse(r#"{"cid":"9","payload":{}}"#) {
            Err(EnvelopeError::MissingType(Some(cid))) => assert_eq!(cid.get(), "\"9\""),
            other => panic!("unexpected {other:?}"),
        }
        match Inbound::parse(r#"{"cid":"9","type":3}"#) {
            Err(EnvelopeError::MissingType(Some(cid))) => assert_eq!(cid.get(), "\"9\""),
            other => panic!("unexpected {other:?}"),
        }
        let e = Inbound::parse("{}").unwrap_err().to_api_error();
        assert_eq!(e.code, code::INVALID_MESSAGE);
    }

    #[test]
    fn garbage_and_non_objects_are_invalid_json() {
        for text in ["not json", "{\"type\":", "[1,2]", "\"str\"", ""] {
            let e = Inbound::parse(text).unwrap_err();
            assert!(
                matches!(
                    e,
                    EnvelopeError::InvalidJson | EnvelopeError::MissingType(None)
                ),
                "{text}: {e:?}"
            );
        }
    }

    #[test]
    fn escaped_type_is_unescaped() {
        let f = Inbound::parse(r#"{"type":"match\u002einput"}"#).unwrap();
        assert_eq!(f.kind(), "match.input");
        assert_eq!(f.payload_str(), "{}");
    }

    #[test]
    fn frame_type_with_quotes_is_escaped() {
        let out = encode_frame_raw("a\"b", None, b"1");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "a\"b");
    }
}
