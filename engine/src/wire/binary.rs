//! The FlatBuffers wire at the session's edge: client frames are decoded into the same envelope
//! the JSON path reads, and server frames are converted from their JSON encoding once per frame
//! (see [`crate::frame::Frame::fb`]). Everything between the edges is wire-agnostic.

use bytes::Bytes;
use serde_json::value::RawValue;

use asobi_schema::envelope::Inbound;
use asobi_schema::error::code;
use asobi_schema::fb;
use asobi_schema::ApiError;

/// WebSocket subprotocol that selects the binary wire.
pub(crate) const SUBPROTOCOL: &str = "asobi.fb.1";

/// Converts an encoded JSON server frame to FlatBuffers.
pub(crate) fn json_frame_to_fb(json: &str) -> Option<Bytes> {
    let f = Inbound::parse(json).ok()?;
    Some(fb::encode_frame(
        f.kind(),
        f.cid.map(RawValue::get),
        f.payload_str().as_bytes(),
    ))
}

/// A decoded binary client frame, owning the pieces an [`Inbound`] borrows.
pub(crate) struct Decoded {
    kind: String,
    cid: Option<Box<RawValue>>,
    payload: Box<RawValue>,
}

impl Decoded {
    /// Decodes a client frame; a failure carries the frame's cid when it could be read, so the
    /// error reply can echo it.
    pub(crate) fn parse(buf: &[u8]) -> Result<Decoded, (ApiError, Option<Box<RawValue>>)> {
        let invalid = || {
            let e = ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "The binary frame is not a valid asobi.fb.1 message.",
            );
            (e, None)
        };
        let f = fb::decode_inbound(buf).map_err(|e| {
            let cid = e
                .cid()
                .and_then(|c| RawValue::from_string(c.to_owned()).ok());
            (e.to_api_error(), cid)
        })?;
        let cid = match f.cid {
            Some(c) => Some(RawValue::from_string(c).map_err(|_| invalid())?),
            None => None,
        };
        let payload = RawValue::from_string(if f.payload_json.is_empty() {
            "{}".to_owned()
        } else {
            f.payload_json
        })
        .map_err(|_| invalid())?;
        Ok(Decoded {
            kind: f.kind,
            cid,
            payload,
        })
    }

    pub(crate) fn inbound(&self) -> Inbound<'_> {
        Inbound::from_parts(&self.kind, self.cid.as_deref(), Some(&self.payload))
    }
}
