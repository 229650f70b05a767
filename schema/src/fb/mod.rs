//! The FlatBuffers binary wire (`asobi.fb.1`): the same messages as the JSON protocol, as the
//! tables of `schema/fbs/asobi.fbs`.
//!
//! This module owns the conversion between a binary frame and the three JSON pieces the engine
//! already works with — the message type, the cid as JSON text, the payload as JSON text — so the
//! engine stays wire-agnostic: a binary session converts at its edges and runs the same handlers.
//! Typed tables carry the protocol's own messages; game-defined values travel as embedded JSON
//! (see below). Every buffer is verified before it is read and every embedded JSON field is
//! validated before it is spliced into a payload; no input makes these functions panic.
//!
//! # Frames
//!
//! One frame is one finished FlatBuffer whose root is `Frame`, with file identifier `ASB1`: a
//! WebSocket binary message (subprotocol [`SUBPROTOCOL`]) or a length-prefixed QUIC frame. The
//! cid maps as follows: a JSON string cid is `Frame.cid`; a JSON integer cid (a plain literal in
//! the `i64` range) is `Frame.cid_num`; decoding gives back the JSON text (`"\"c-1\""`, `"7"`), so
//! replies echo it identically. A cid that is neither (floats, objects, ... which no binary client
//! can send) is carried as its JSON text in `Frame.cid`.
//!
//! # Why game values are embedded JSON and not FlexBuffers
//!
//! Measured with `cargo bench -p asobi-schema --bench fb_wire -- values` (x86-64, release, on a
//! shared two-core machine, so ±20 %; a `match.state` has a tick, a coin and per player 8 fields
//! keyed by a UUID; ns per call). "server encode" starts from the JSON text the script encoder
//! already produced; "client read" reads every field once (JSON: parse to a tree and walk it;
//! FlexBuffers: walk the zero-copy reader); "server decode" turns an inbound value back into the
//! JSON text the engine consumes.
//!
//! | value           | encoding    | bytes | server encode | client read | server decode |
//! |-----------------|-------------|------:|--------------:|------------:|--------------:|
//! | match.input     | JSON        |    42 |            10 |         255 |            46 |
//! | match.input     | FlexBuffers |    47 |           436 |         120 |           233 |
//! | match.input     | MessagePack |    26 |           143 |         209 |           106 |
//! | match.state 2p  | JSON        |   314 |            10 |        1555 |           264 |
//! | match.state 2p  | FlexBuffers |   313 |          1957 |         648 |          1501 |
//! | match.state 2p  | MessagePack |   264 |           879 |        1252 |           612 |
//! | match.state 16p | JSON        |  2056 |            25 |        9825 |          1565 |
//! | match.state 16p | FlexBuffers |  1903 |         11160 |        3895 |          9646 |
//! | match.state 16p | MessagePack |  1806 |          5082 |        8155 |          4189 |
//!
//! FlexBuffers saves at most 7 % of the bytes (an input grows by 12 %) and reads 2.1–2.5× faster
//! on a client, but costs the server 40–450× more per broadcast (it must re-encode the JSON the
//! script produced) and 5–6× more per inbound input, and its Rust reader has no verifier, so
//! untrusted input would need a hand-written depth and size budget. MessagePack sits in between
//! on every axis. The server encodes each broadcast once and fans it out, so its per-frame cost
//! and the fan-out bytes decide: embedded JSON keeps the server's cost at a copy and the bytes
//! within 8–14 % of the best binary form, and every SDK already has a JSON parser (FlexBuffers
//! has no GDScript or Lua implementation). A `flex` union variant can be added later without
//! breaking this version if a game needs it.
//!
//! Whole frames, from `cargo bench -p asobi-schema --bench fb_wire -- frames` (same machine).
//! JSON decode is [`Inbound::parse`] (validates the whole text, payload left raw); binary decode
//! is verification, payload validation and the owned [`InboundFrame`]:
//!
//! | frame                          | JSON B | fb B | encode JSON | encode fb | decode JSON | decode fb |
//! |--------------------------------|-------:|-----:|------------:|----------:|------------:|----------:|
//! | heartbeat reply (`encode_heartbeat`) | 72 | 96 |          43 |       122 |         n/a |       133 |
//! | session.heartbeat (`encode_frame`) | 72 |   96 |          36 |       233 |          91 |       130 |
//! | match.input                    |     75 |  120 |          34 |       115 |          96 |       145 |
//! | match.state 2p                 |    347 |  392 |          35 |       119 |         329 |       481 |
//! | match.state 16p                |   2089 | 2132 |          50 |       122 |        1593 |      1640 |
//!
//! A binary frame carries 24–45 bytes of FlatBuffers structure (identifier, root offset, vtables,
//! the type string) and costs about 80 ns more to encode; game payloads are the same bytes on both
//! wires. What the binary wire buys is typed, schema-checked protocol messages for SDKs, not
//! smaller game traffic.

mod decode;
mod encode;

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, VerifierOptions, WIPOffset};
use serde_json::json;
use serde_json::value::RawValue;

use crate::envelope::Inbound;
use crate::error::{code, ApiError};
use encode::Direction;

/// The generated FlatBuffers tables (`Frame`, `Payload`, `MatchJoined`, ...), for clients and
/// tests that want typed access instead of JSON text.
pub use asobi_fbs as tables;

/// The WebSocket subprotocol a client offers (`Sec-WebSocket-Protocol`) to speak this wire.
pub const SUBPROTOCOL: &str = "asobi.fb.1";

/// The file identifier every frame carries at bytes 4..8.
pub const FILE_IDENTIFIER: &str = tables::FRAME_IDENTIFIER;

/// A decoded client frame, independent of the wire: the same pieces the JSON path uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundFrame {
    /// The message type, e.g. `match.input`.
    pub kind: String,
    /// The cid as JSON text (`"\"c-1\""` or `"7"`), so a reply can echo it identically.
    pub cid: Option<String>,
    /// The payload as JSON text; `{}` when the frame has none.
    pub payload_json: String,
}

impl InboundFrame {
    /// The same frame as JSON envelope text.
    pub fn to_json(&self) -> String {
        json_envelope(&self.kind, self.cid.as_deref(), &self.payload_json)
    }
}

/// A decoded server frame, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundFrame {
    /// The message type, e.g. `match.state`.
    pub kind: String,
    /// The echoed cid as JSON text, when the frame answers a request.
    pub cid: Option<String>,
    /// The payload as JSON text; `{}` when the frame has none.
    pub payload_json: String,
}

impl OutboundFrame {
    /// The same frame as JSON envelope text, byte-compatible with the JSON wire's framing.
    pub fn to_json(&self) -> String {
        json_envelope(&self.kind, self.cid.as_deref(), &self.payload_json)
    }
}

/// Why a binary frame could not be read. Every variant is the peer's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FbError {
    /// Too short, or without the `ASB1` file identifier: not an `asobi.fb.1` frame at all.
    #[error("not an asobi.fb.1 frame (no ASB1 file identifier)")]
    NotAFrame,
    /// The buffer failed FlatBuffers verification (bad offsets, truncation, limits).
    #[error("malformed frame: {0}")]
    Malformed(#[from] flatbuffers::InvalidFlatbuffer),
    /// A valid frame without a message type.
    #[error("frame without a type")]
    MissingType {
        /// The frame's cid as JSON text, so the error can be correlated.
        cid: Option<String>,
    },
    /// Both `cid` and `cid_num` are set.
    #[error("frame sets both cid and cid_num")]
    ConflictingCid,
    /// A field that must hold one JSON value does not (or is not UTF-8).
    #[error("field `{field}` is not a single JSON value")]
    InvalidJson {
        /// The schema name of the field.
        field: &'static str,
        /// The frame's cid as JSON text.
        cid: Option<String>,
    },
    /// A payload union variant this server does not know (a newer schema).
    #[error("unknown payload variant {tag}")]
    UnknownPayload {
        /// The union tag.
        tag: u8,
        /// The frame's cid as JSON text.
        cid: Option<String>,
    },
}

impl FbError {
    /// The cid of the offending frame, when it could be read, for the error reply.
    pub fn cid(&self) -> Option<&str> {
        match self {
            FbError::MissingType { cid }
            | FbError::InvalidJson { cid, .. }
            | FbError::UnknownPayload { cid, .. } => cid.as_deref(),
            FbError::NotAFrame | FbError::Malformed(_) | FbError::ConflictingCid => None,
        }
    }

    /// The error a client sees: `invalid_json` for a bad embedded JSON field (as the JSON wire
    /// answers a payload that is not JSON), `invalid_message` for everything else.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            FbError::InvalidJson { field, .. } => ApiError::new(
                400,
                code::INVALID_JSON,
                "A JSON field of the binary frame is not valid JSON.",
            )
            .with_details(json!({ "field": field })),
            FbError::MissingType { .. } => ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "The message is missing a string `type` field.",
            ),
            other => ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "The binary frame is not a valid asobi.fb.1 frame.",
            )
            .with_details(json!({ "reason": other.to_string() })),
        }
    }
}

/// Reads a frame a client sent. Verifies it first; a malformed frame is an error, never a panic.
pub fn decode_inbound(buf: &[u8]) -> Result<InboundFrame, FbError> {
    let (kind, cid, payload_json) = decode(buf)?;
    Ok(InboundFrame {
        kind,
        cid,
        payload_json,
    })
}

/// Reads a frame the server sent, as a client does.
pub fn decode_frame(buf: &[u8]) -> Result<OutboundFrame, FbError> {
    let (kind, cid, payload_json) = decode(buf)?;
    Ok(OutboundFrame {
        kind,
        cid,
        payload_json,
    })
}

/// Encodes a server frame from the JSON pieces the server already has, so each broadcast is
/// encoded once per wire. `payload_json` must be JSON text, as for
/// [`encode_frame_raw`](crate::envelope::encode_frame_raw): game payloads are embedded unchanged.
/// A frame must stay under FlatBuffers' 2 GiB limit (the builder panics beyond it); the server's
/// frame caps are orders of magnitude below.
pub fn encode_frame(kind: &str, cid_json: Option<&str>, payload_json: &[u8]) -> Bytes {
    encode(kind, cid_json, payload_json, Direction::ToClient)
}

/// Encodes a client frame: what an SDK, the load generator or a test sends.
pub fn encode_inbound(kind: &str, cid_json: Option<&str>, payload_json: &str) -> Bytes {
    encode(kind, cid_json, payload_json.as_bytes(), Direction::ToServer)
}

/// The server's `session.heartbeat` reply, built without parsing any JSON.
pub fn encode_heartbeat(cid_json: Option<&str>, ts_ms: i64) -> Bytes {
    let mut fbb = FlatBufferBuilder::with_capacity(96);
    let (tag, table) = encode::build_heartbeat(&mut fbb, ts_ms);
    finish(fbb, "session.heartbeat", cid_json, tag, table)
}

/// Re-encodes a JSON server frame (as [`encode_frame`](crate::envelope::encode_frame) or
/// [`ApiError::to_ws_frame`] produce it) for this wire, for call sites that only hold the JSON.
pub fn transcode_json_frame(json_frame: &[u8]) -> Result<Bytes, FbError> {
    let invalid = || FbError::InvalidJson {
        field: "frame",
        cid: None,
    };
    let text = std::str::from_utf8(json_frame).map_err(|_| invalid())?;
    let frame = Inbound::parse(text).map_err(|_| invalid())?;
    let cid = frame.cid.map(RawValue::get);
    Ok(encode_frame(
        frame.kind(),
        cid,
        frame.payload_str().as_bytes(),
    ))
}

/// The verifier's limits. No table in the schema nests more than three deep; a listing of
/// matches is the largest table count a real frame has. The apparent-size bound (bytes the
/// verifier may visit, counting shared sub-objects once per reference) is proportional to the
/// frame, so a frame that points many offsets at one object cannot buy quadratic work.
fn verifier_options(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: 65_536,
        max_apparent_size: len.saturating_mul(8).max(1 << 16),
        ignore_missing_null_terminator: false,
    }
}

fn decode(buf: &[u8]) -> Result<(String, Option<String>, String), FbError> {
    // flatbuffers::buffer_has_identifier asserts on short input, so check the bytes directly.
    if buf.get(4..8) != Some(FILE_IDENTIFIER.as_bytes()) {
        return Err(FbError::NotAFrame);
    }
    let frame = flatbuffers::root_with_opts::<tables::Frame>(&verifier_options(buf.len()), buf)?;
    let cid = match (frame.cid(), frame.cid_num()) {
        (Some(_), Some(_)) => return Err(FbError::ConflictingCid),
        (Some(s), None) => {
            let mut text = String::with_capacity(s.len() + 2);
            decode::push_json_str(&mut text, s);
            Some(text)
        }
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    };
    let Some(kind) = frame.type_() else {
        return Err(FbError::MissingType { cid });
    };
    let mut payload_json = String::with_capacity(buf.len());
    match decode::read(&frame, &mut payload_json) {
        Ok(()) => Ok((kind.to_owned(), cid, payload_json)),
        Err(decode::ReadError::Json(field)) => Err(FbError::InvalidJson { field, cid }),
        Err(decode::ReadError::Unknown(tag)) => Err(FbError::UnknownPayload { tag, cid }),
    }
}

fn encode(kind: &str, cid_json: Option<&str>, payload_json: &[u8], dir: Direction) -> Bytes {
    let mut fbb = FlatBufferBuilder::with_capacity(payload_json.len() + kind.len() + 96);
    let (tag, table) = encode::build(&mut fbb, kind, payload_json, dir);
    finish(fbb, kind, cid_json, tag, table)
}

fn finish(
    mut fbb: FlatBufferBuilder<'_>,
    kind: &str,
    cid_json: Option<&str>,
    payload_type: tables::Payload,
    payload: Option<WIPOffset<UnionWIPOffset>>,
) -> Bytes {
    let type_ = Some(fbb.create_string(kind));
    let (cid, cid_num) = match cid_json.map(str::trim) {
        None => (None, None),
        Some(text) => match encode::parse_i64_literal(text) {
            Some(n) => (None, Some(n)),
            None => {
                let string = text
                    .starts_with('"')
                    .then(|| serde_json::from_str::<String>(text).ok())
                    .flatten();
                let cid = fbb.create_string(string.as_deref().unwrap_or(text));
                (Some(cid), None)
            }
        },
    };
    let frame = tables::Frame::create(
        &mut fbb,
        &tables::FrameArgs {
            type_,
            cid,
            cid_num,
            payload_type,
            payload,
        },
    );
    tables::finish_frame_buffer(&mut fbb, frame);
    // The builder writes back to front; hand out its buffer without copying the frame.
    let (buf, head) = fbb.collapse();
    Bytes::from(buf).slice(head..)
}

fn json_envelope(kind: &str, cid: Option<&str>, payload_json: &str) -> String {
    let mut out = String::with_capacity(kind.len() + payload_json.len() + 40);
    out.push_str("{\"type\":");
    decode::push_json_str(&mut out, kind);
    if let Some(cid) = cid {
        out.push_str(",\"cid\":");
        out.push_str(cid);
    }
    out.push_str(",\"payload\":");
    out.push_str(payload_json);
    out.push('}');
    out
}
