//! Framing of the asobi QUIC stream: every message is `u32` big-endian length, then one
//! encoding byte (`0` JSON, `1` FlatBuffers), then the body; the length counts the encoding byte
//! and the body. Unreliable datagrams carry the encoding byte and the body, unframed.
//!
//! [`FrameReader`] is sans-IO: push whatever bytes arrived, pull whole frames. An incomplete
//! frame is a normal state; a frame over the limit or with an unknown encoding is an error, and
//! the reader never buffers more than one limit's worth.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The body is asobi 1.0 JSON.
pub const ENCODING_JSON: u8 = 0;
/// The body is an `asobi.fb.1` FlatBuffers message.
pub const ENCODING_FB: u8 = 1;
/// The body is asobi's binary `world.tick` (server to client only, for a session that asked for
/// `"wire": "binary"`); a client sending it is answered with an error.
pub const ENCODING_WORLD_TICK: u8 = 2;
/// Bytes before the body: length (4) and encoding (1).
pub const HEADER_LEN: usize = 5;

/// Why the stream cannot be read further.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame announced a body larger than the limit.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// A frame announced no encoding byte, or one that is not 0 or 1.
    #[error("unknown frame encoding")]
    BadEncoding,
}

/// One frame read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicFrame {
    /// [`ENCODING_JSON`], [`ENCODING_FB`] or [`ENCODING_WORLD_TICK`].
    pub encoding: u8,
    /// The message.
    pub body: Bytes,
}

/// Incremental reader of length-prefixed frames.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_body: usize,
}

impl FrameReader {
    /// A reader refusing bodies over `max_body` bytes.
    pub fn new(max_body: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            max_body,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<QuicFrame>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len == 0 {
            return Err(FrameError::BadEncoding);
        }
        if len - 1 > self.max_body {
            return Err(FrameError::TooLarge(len - 1));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let encoding = self.buf[4];
        if encoding != ENCODING_JSON && encoding != ENCODING_FB && encoding != ENCODING_WORLD_TICK {
            return Err(FrameError::BadEncoding);
        }
        self.buf.advance(HEADER_LEN);
        let body = self.buf.split_to(len - 1).freeze();
        Ok(Some(QuicFrame { encoding, body }))
    }
}

/// Appends one frame to `out`.
pub fn write_frame(out: &mut BytesMut, encoding: u8, body: &[u8]) {
    out.reserve(HEADER_LEN + body.len());
    out.put_u32((body.len() + 1) as u32);
    out.put_u8(encoding);
    out.put_slice(body);
}

/// A datagram: the encoding byte and the body.
pub fn datagram(encoding: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + body.len());
    out.put_u8(encoding);
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let mut wire = BytesMut::new();
        write_frame(&mut wire, ENCODING_JSON, br#"{"type":"a"}"#);
        write_frame(&mut wire, ENCODING_FB, &[1, 2, 3]);
        let mut r = FrameReader::new(1024);
        let mut got = Vec::new();
        for b in wire.iter() {
            r.push(&[*b]);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].body[..], br#"{"type":"a"}"#);
        assert_eq!(got[1].encoding, ENCODING_FB);
    }

    #[test]
    fn limits_and_bad_encodings() {
        let mut r = FrameReader::new(4);
        r.push(&[0, 0, 0, 6, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::TooLarge(5)));
        let mut r = FrameReader::new(4);
        r.push(&[0, 0, 0, 2, 9, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::BadEncoding));
        let mut r = FrameReader::new(4);
        r.push(&[0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::BadEncoding));
        // A huge announced length is refused before anything is buffered for it.
        let mut r = FrameReader::new(65536);
        r.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r.next_frame(), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn empty_body_is_a_frame() {
        let mut r = FrameReader::new(4);
        r.push(&[0, 0, 0, 1, 0]);
        assert_eq!(r.next_frame().unwrap().unwrap().body.len(), 0);
        assert_eq!(datagram(ENCODING_JSON, b"x")[..], [0, b'x']);
    }
}
