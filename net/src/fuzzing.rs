//! The bodies of the fuzz targets in `fuzz/`, kept here so the corpus replay test
//! (`net/tests/fuzz_corpus.rs`) runs exactly what the fuzzer ran, on stable and in CI.
//!
//! Each function takes arbitrary bytes and panics only when an invariant breaks. They drive the
//! parsers the way the engine's connection loop does: bytes arrive in pieces, a head is parsed,
//! then its body, then the next request on the same connection. Not an API: the signatures
//! change with the targets.

use bytes::{Bytes, BytesMut};

use crate::http::{parse_head, BodyKind, ChunkedBody, HttpError, Limits, Method};
use crate::quic_frame::FrameReader;
use crate::{ws, ws_frame};

/// Small limits, so that inputs of a few KiB reach every limit check. The checks compare
/// against the limit and do not depend on its size.
const HTTP_LIMITS: Limits = Limits {
    max_head: 512,
    max_body: 1024,
};

/// What one connection's bytes were read as: the requests, and whether reading ended in an
/// error (rather than in the middle of a request, or after an upgrade).
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    requests: Vec<(Method, String, Option<String>, Bytes)>,
    upgraded: bool,
    failed: bool,
}

/// HTTP/1.1 request framing. The first byte picks the read size; the rest is the wire. Read in
/// pieces or all at once, the wire must read as the same requests: a framing decision that
/// depended on where a read ended would be a smuggling bug. No panic, no body over the limit.
pub fn http_request(data: &[u8]) {
    let Some((&first, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(first).max(1);
    let whole = read_connection(wire, wire.len().max(1));
    let pieces = read_connection(wire, step);
    assert_eq!(whole, pieces, "reads of {step} bytes changed the framing");
}

/// Reads requests from `wire`, `step` bytes at a time, like the engine's connection loop.
fn read_connection(wire: &[u8], step: usize) -> Exchange {
    let limits = HTTP_LIMITS;
    let mut reads = wire.chunks(step);
    let mut buf = BytesMut::new();
    let mut out = Exchange {
        requests: Vec::new(),
        upgraded: false,
        failed: false,
    };
    let mut fill = |buf: &mut BytesMut| match reads.next() {
        Some(piece) => {
            buf.extend_from_slice(piece);
            true
        }
        None => false,
    };
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&buf, &limits) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(e) => return failed(out, &e),
                }
            }
            if !fill(&mut buf) {
                return out;
            }
        };
        assert!(head.len <= buf.len() && head.len <= limits.max_head);
        let _ = buf.split_to(head.len);
        if ws::is_upgrade(&head) {
            if let Ok(up) = ws::accept(&head) {
                // The answer echoes what the client offered: it must still be one clean head.
                let chosen = up.protocols.first().map(String::as_str);
                let answer = ws::switching_protocols(&up, chosen);
                let mut headers = [httparse::EMPTY_HEADER; 8];
                let parsed = httparse::Response::new(&mut headers).parse(&answer);
                assert_eq!(parsed, Ok(httparse::Status::Complete(answer.len())));
            }
            // Whatever follows belongs to the WebSocket (see `ws_frame`).
            out.upgraded = true;
            return out;
        }
        let body = match head.body {
            BodyKind::Empty => Bytes::new(),
            BodyKind::Length(n) => {
                assert!(n <= limits.max_body);
                while buf.len() < n {
                    if !fill(&mut buf) {
                        return out;
                    }
                }
                buf.split_to(n).freeze()
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedBody::default();
                loop {
                    let used = match decoder.feed(&buf, &limits) {
                        Ok(used) => used,
                        Err(e) => return failed(out, &e),
                    };
                    assert!(used <= buf.len());
                    let _ = buf.split_to(used);
                    if let Some(body) = decoder.finish() {
                        break body;
                    }
                    if !fill(&mut buf) {
                        return out;
                    }
                }
            }
        };
        assert!(body.len() <= limits.max_body);
        out.requests
            .push((head.method, head.path, head.query, body));
    }
}

fn failed(mut out: Exchange, e: &HttpError) -> Exchange {
    assert!(matches!(e.status(), 400 | 413 | 431 | 501), "{e:?}");
    out.failed = true;
    out
}

/// The engine's WebSocket frame limit is configurable (64 KiB by default); a small one lets
/// fuzz inputs cross it. Frames and joined fragments are bounded alike, as the engine does.
const WS_MAX: usize = 1024;

/// WebSocket input on the server side. The first byte picks the read size. When the rest starts
/// with an upgrade request, it goes through [`ws::accept`] first and the bytes after its head
/// are the ones the engine hands to the frame decoder as already read; otherwise the rest is
/// frames. Read in pieces or whole, the frames must decode to the same messages (or the same
/// error); every message is within the limit, and an incomplete frame never asks for fewer
/// bytes than it already has.
pub fn ws_frame(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first).max(1);
    let mut frames = rest;
    if let Ok(Some(head)) = parse_head(rest, &Limits::default()) {
        if ws::is_upgrade(&head) {
            if ws::accept(&head).is_err() {
                return;
            }
            frames = rest.get(head.len..).unwrap_or_default();
        }
    }
    let whole = ws_decode(frames, frames.len().max(1));
    let pieces = ws_decode(frames, step);
    assert_eq!(whole, pieces, "piecewise decoding differs");
}

/// Decodes `wire` arriving `step` bytes at a time, the way the engine's socket loop feeds the
/// decoder from a borrowed buffer.
fn ws_decode(wire: &[u8], step: usize) -> (Vec<ws_frame::Message>, Option<ws_frame::FrameError>) {
    let mut decoder = ws_frame::Decoder::new(WS_MAX);
    let (mut buf, mut fed, mut out) = (Vec::new(), 0, Vec::new());
    loop {
        match decoder.decode(&buf) {
            Err(e) => return (out, Some(e)),
            Ok(ws_frame::Step::Frame { consumed, message }) => {
                assert!(consumed > 0 && consumed <= buf.len());
                buf.drain(..consumed);
                if let Some(m) = message {
                    let len = match &m {
                        ws_frame::Message::Text(t) => t.len(),
                        ws_frame::Message::Binary(b) | ws_frame::Message::Ping(b) => b.len(),
                        _ => 0,
                    };
                    assert!(len <= WS_MAX, "message of {len} bytes");
                    out.push(m);
                }
            }
            Ok(ws_frame::Step::Need(n)) => {
                assert!(n > buf.len() || n == ws_frame::MAX_HEADER);
                assert!(n <= WS_MAX + ws_frame::MAX_HEADER);
                if fed == wire.len() {
                    return (out, None);
                }
                let next = fed + step.min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..next]);
                fed = next;
            }
        }
    }
}

/// The asobi QUIC stream reader. The first byte picks the read size; the rest is the stream.
/// Frames or a clean error, never a panic, never a frame over the limit.
pub fn quic_frame(data: &[u8]) {
    const LIMIT: usize = 64 * 1024;
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(first).max(1);
    let mut reader = FrameReader::new(LIMIT);
    for piece in stream.chunks(step) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => assert!(frame.body.len() <= LIMIT),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
