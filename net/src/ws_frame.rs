//! WebSocket frames (RFC 6455 §5) as a server reads and writes them, without a socket.
//!
//! The engine keeps no read or write buffer per connection: it borrows one from its shard while
//! bytes are moving and gives it back when the socket goes quiet. So the decoder here works on a
//! slice the caller owns — "the bytes read so far" — and says either how many bytes the next
//! frame needs in total, or how many it used and what message (if any) they finished. The only
//! state it keeps between calls is a fragmented message being assembled, which is rare.
//!
//! Frames the server writes are never masked and never fragmented: [`encode_header`] writes the
//! header, the caller appends the payload.

use std::fmt;

/// Largest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// A later fragment of a text or binary message.
    pub const CONTINUATION: u8 = 0x0;
    /// UTF-8 text.
    pub const TEXT: u8 = 0x1;
    /// Bytes.
    pub const BINARY: u8 = 0x2;
    /// Closing handshake.
    pub const CLOSE: u8 = 0x8;
    /// Keep-alive probe; answered with a pong carrying the same payload.
    pub const PING: u8 = 0x9;
    /// Answer to a ping (or an unsolicited heartbeat).
    pub const PONG: u8 = 0xA;
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message, already checked to be UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; its payload goes back in the pong.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The client started the closing handshake, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why a client's bytes cannot be read as WebSocket frames. The connection cannot continue
/// after any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer broke the framing rules (close 1002).
    Protocol(&'static str),
    /// A frame or a fragmented message over the limit (close 1009).
    TooLarge,
    /// A text message that is not UTF-8 (close 1007).
    BadUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Protocol(why) => write!(f, "websocket protocol error: {why}"),
            FrameError::TooLarge => f.write_str("websocket message over the size limit"),
            FrameError::BadUtf8 => f.write_str("websocket text message is not UTF-8"),
        }
    }
}

impl std::error::Error for FrameError {}

/// What [`Decoder::decode`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The next frame is incomplete: it needs this many bytes in total (header included, or
    /// [`MAX_HEADER`] while the header itself is incomplete). Read more and call again.
    Need(usize),
    /// A frame of `consumed` bytes was read; `message` is set when it finished one.
    Frame {
        /// Bytes of the buffer the frame took; drop them before the next call.
        consumed: usize,
        /// The message the frame completed, if any (a non-final fragment completes none).
        message: Option<Message>,
    },
}

/// A fragmented text or binary message being put together.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
}

/// Reads a client's frames into messages. `max` bounds a frame and a whole fragmented message.
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    partial: Option<Partial>,
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: usize,
    header_len: usize,
}

impl Decoder {
    /// A decoder for a server socket whose messages may be at most `max` bytes.
    pub fn new(max: usize) -> Decoder {
        Decoder { max, partial: None }
    }

    /// Decodes the frame at the start of `buf`. Call again with the rest after a `Frame`.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Step, FrameError> {
        let Some(h) = self.header(buf)? else {
            return Ok(Step::Need(MAX_HEADER));
        };
        let total = h.header_len + h.len;
        let Some(masked) = buf.get(h.header_len..total) else {
            return Ok(Step::Need(total));
        };
        let mut payload = Vec::with_capacity(h.len);
        unmask_into(&mut payload, masked, h.mask);
        let message = self.finish(&h, payload)?;
        Ok(Step::Frame {
            consumed: total,
            message,
        })
    }

    /// Whether a fragmented message is waiting for its remaining fragments.
    pub fn assembling(&self) -> bool {
        self.partial.is_some()
    }

    fn header(&self, buf: &[u8]) -> Result<Option<Header>, FrameError> {
        let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        let control = opcode & 0x08 != 0;
        match opcode {
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
            opcode::CLOSE | opcode::PING | opcode::PONG => {}
            _ => return Err(FrameError::Protocol("unknown opcode")),
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Protocol("client frame not masked"));
        }
        let short = usize::from(b1 & 0x7F);
        let (len, at) = match short {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (usize::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(FrameError::Protocol("frame length with the top bit set"));
                }
                (usize::try_from(n).unwrap_or(usize::MAX), 10)
            }
            n => (n, 2),
        };
        if control && (!fin || len > 125) {
            return Err(FrameError::Protocol("fragmented or long control frame"));
        }
        if len > self.max {
            return Err(FrameError::TooLarge);
        }
        let Some(m) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [m[0], m[1], m[2], m[3]],
            len,
            header_len: at + 4,
        }))
    }

    fn finish(&mut self, h: &Header, payload: Vec<u8>) -> Result<Option<Message>, FrameError> {
        match h.opcode {
            opcode::PING => Ok(Some(Message::Ping(payload))),
            opcode::PONG => Ok(Some(Message::Pong)),
            opcode::CLOSE => match payload.len() {
                0 => Ok(Some(Message::Close(None))),
                1 => Err(FrameError::Protocol("close frame with a one-byte body")),
                _ => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    if std::str::from_utf8(&payload[2..]).is_err() {
                        return Err(FrameError::BadUtf8);
                    }
                    Ok(Some(Message::Close(Some(code))))
                }
            },
            opcode::CONTINUATION => {
                let Some(p) = self.partial.as_mut() else {
                    return Err(FrameError::Protocol("continuation without a message"));
                };
                if p.data.len() + payload.len() > self.max {
                    return Err(FrameError::TooLarge);
                }
                p.data.extend_from_slice(&payload);
                if !h.fin {
                    return Ok(None);
                }
                let Some(p) = self.partial.take() else {
                    return Ok(None);
                };
                whole(p.text, p.data).map(Some)
            }
            data => {
                if self.partial.is_some() {
                    return Err(FrameError::Protocol("new message inside a fragmented one"));
                }
                let text = data == opcode::TEXT;
                if h.fin {
                    whole(text, payload).map(Some)
                } else {
                    self.partial = Some(Partial {
                        text,
                        data: payload,
                    });
                    Ok(None)
                }
            }
        }
    }
}

fn whole(text: bool, data: Vec<u8>) -> Result<Message, FrameError> {
    if text {
        String::from_utf8(data)
            .map(Message::Text)
            .map_err(|_| FrameError::BadUtf8)
    } else {
        Ok(Message::Binary(data))
    }
}

/// Appends `src` unmasked with `mask` to `dst`, eight bytes at a time.
pub fn unmask_into(dst: &mut Vec<u8>, src: &[u8], mask: [u8; 4]) {
    let start = dst.len();
    dst.extend_from_slice(src);
    let out = &mut dst[start..];
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = out.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8 bytes, so at mask offset 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends the header of a final, unmasked server frame of `len` payload bytes.
pub fn encode_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | (opcode & 0x0F));
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a whole close frame with `code` and as much of `reason` as fits a control frame.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    encode_header(out, opcode::CLOSE, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(op: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | op];
        let n = payload.len();
        if n < 126 {
            out.push(0x80 | n as u8);
        } else if n <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Decodes `wire` fed `step` bytes at a time, as a socket would deliver it.
    fn decode_in_pieces(wire: &[u8], step: usize, max: usize) -> Result<Vec<Message>, FrameError> {
        let mut d = Decoder::new(max);
        let (mut buf, mut fed, mut out) = (Vec::new(), 0, Vec::new());
        loop {
            match d.decode(&buf)? {
                Step::Frame { consumed, message } => {
                    buf.drain(..consumed);
                    out.extend(message);
                }
                Step::Need(n) => {
                    assert!(n > buf.len() || buf.len() < MAX_HEADER);
                    if fed == wire.len() {
                        return Ok(out);
                    }
                    let next = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn every_length_form_round_trips_in_any_piece_size() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in [0usize, 1, 7, 8, 9, 125, 126, 127, 65_535, 65_536, 70_001] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let wire = client(opcode::TEXT, true, text.as_bytes(), mask);
            for step in [1, 3, 13, 4096, usize::MAX / 2] {
                let got = decode_in_pieces(&wire, step, 1 << 20).unwrap();
                assert_eq!(
                    got,
                    vec![Message::Text(text.clone())],
                    "len {len} step {step}"
                );
            }
        }
    }

    #[test]
    fn fragments_join_and_controls_may_come_between() {
        let m = [1, 2, 3, 4];
        let mut wire = client(opcode::TEXT, false, b"hel", m);
        wire.extend(client(opcode::PING, true, b"p", m));
        wire.extend(client(opcode::CONTINUATION, false, b"lo ", m));
        wire.extend(client(opcode::CONTINUATION, true, "wörld".as_bytes(), m));
        wire.extend(client(opcode::BINARY, true, &[0, 255], m));
        wire.extend(client(opcode::PONG, true, b"", m));
        wire.extend(client(opcode::CLOSE, true, &[0x03, 0xE8, b'o', b'k'], m));
        let got = decode_in_pieces(&wire, 5, 1024).unwrap();
        assert_eq!(
            got,
            vec![
                Message::Ping(b"p".to_vec()),
                Message::Text("hello wörld".into()),
                Message::Binary(vec![0, 255]),
                Message::Pong,
                Message::Close(Some(1000)),
            ]
        );
    }

    #[test]
    fn limits_apply_to_frames_and_to_joined_fragments() {
        let m = [9, 9, 9, 9];
        let big = client(opcode::BINARY, true, &[0; 101], m);
        assert_eq!(decode_in_pieces(&big, 1, 100), Err(FrameError::TooLarge));
        // Refused from the header alone: the payload never has to arrive.
        assert_eq!(
            Decoder::new(100).decode(&big[..8]),
            Err(FrameError::TooLarge)
        );
        let mut frag = client(opcode::TEXT, false, &[b'a'; 60], m);
        frag.extend(client(opcode::CONTINUATION, true, &[b'a'; 60], m));
        assert_eq!(decode_in_pieces(&frag, 7, 100), Err(FrameError::TooLarge));
    }

    #[test]
    fn broken_framing_is_refused() {
        let m = [1, 1, 1, 1];
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (
                vec![0x81, 0x01, b'a'],
                FrameError::Protocol("client frame not masked"),
            ),
            (
                client(0x3, true, b"", m),
                FrameError::Protocol("unknown opcode"),
            ),
            (
                client(opcode::PING, false, b"", m),
                FrameError::Protocol("fragmented or long control frame"),
            ),
            (
                client(opcode::PING, true, &[0; 126], m),
                FrameError::Protocol("fragmented or long control frame"),
            ),
            (
                client(opcode::CONTINUATION, true, b"x", m),
                FrameError::Protocol("continuation without a message"),
            ),
            (
                client(opcode::TEXT, true, &[0xff, 0xfe], m),
                FrameError::BadUtf8,
            ),
            (
                client(opcode::CLOSE, true, &[3], m),
                FrameError::Protocol("close frame with a one-byte body"),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(decode_in_pieces(&wire, 2, 1024), Err(want));
        }
        let mut rsv = client(opcode::TEXT, true, b"a", m);
        rsv[0] |= 0x40;
        assert!(matches!(
            decode_in_pieces(&rsv, 1, 1024),
            Err(FrameError::Protocol(_))
        ));
        let mut nested = client(opcode::TEXT, false, b"a", m);
        nested.extend(client(opcode::TEXT, true, b"b", m));
        assert!(matches!(
            decode_in_pieces(&nested, 64, 1024),
            Err(FrameError::Protocol(_))
        ));
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        for (len, want) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
        ] {
            let mut out = Vec::new();
            encode_header(&mut out, opcode::TEXT, len);
            assert_eq!(out.len(), want, "len {len}");
            assert_eq!(out[0], 0x81);
        }
        let mut close = Vec::new();
        encode_close(&mut close, 1013, &"é".repeat(100));
        assert_eq!(close[0], 0x88);
        let body = usize::from(close[1]);
        assert!(body <= 125);
        assert_eq!(&close[2..4], &1013u16.to_be_bytes());
        assert!(std::str::from_utf8(&close[4..]).is_ok());
    }

    #[test]
    fn unmasking_matches_the_bytewise_definition_at_every_length() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..40 {
            let src: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut got = vec![0xAA];
            unmask_into(&mut got, &src, mask);
            let want: Vec<u8> = std::iter::once(0xAA)
                .chain(src.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]))
                .collect();
            assert_eq!(got, want);
        }
    }
}
