//! HTTP/1.1 framing on top of `httparse`: request heads, bodies (length or chunked) and
//! responses.
//!
//! A head that has not fully arrived is a normal state ([`parse_head`] returns `Ok(None)`), not an
//! error. Limits are checked before anything is buffered past them, so an oversized request costs
//! the server at most one limit's worth of memory.

use bytes::{Bytes, BytesMut};

/// Size limits for one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line + headers) accepted.
    pub max_head: usize,
    /// Largest body accepted; larger ones get 413 `payload_too_large`.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Browsers and SDKs send well under 8 KiB of headers; 16 KiB leaves room for long
            // bearer tokens and cookies while keeping a slow-loris client cheap.
            max_head: 16 * 1024,
            // asobi's REST bodies are small JSON documents; 1 MiB is the issue's cap.
            max_body: 1024 * 1024,
        }
    }
}

/// Most headers a request may carry; more is a 431.
const MAX_HEADERS: usize = 64;

/// The request methods the server routes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Anything else; always answered 405 or 501.
    Other,
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The path, percent-encoding untouched, without the query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Headers with lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// How the body is framed.
    pub body: BodyKind,
    /// Bytes the head took in the buffer.
    pub len: usize,
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Head {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a header's comma-separated value list contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
    }

    /// The bearer token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The value of a query parameter (percent-decoded, `+` as space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }
}

/// Why a request could not be read. Each maps to a status and an asobi error code.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The head is not valid HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The head exceeds [`Limits::max_head`] or has too many headers.
    #[error("request head too large")]
    HeadTooLarge,
    /// The body exceeds [`Limits::max_body`].
    #[error("request body too large")]
    BodyTooLarge,
    /// Chunked over another transfer coding (say `gzip, chunked`): the framing is sound but the
    /// server does not decode that coding.
    #[error("unsupported transfer encoding")]
    UnsupportedEncoding,
}

impl HttpError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedEncoding => 501,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Malformed(_) => "bad_request",
            HttpError::HeadTooLarge => "header_too_large",
            HttpError::BodyTooLarge => "payload_too_large",
            HttpError::UnsupportedEncoding => "unsupported_transfer_encoding",
        }
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)` means more bytes are needed.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::Malformed("invalid request head")),
    };
    if len > limits.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    let method = Method::parse(req.method.unwrap_or_default());
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let version = req.version.unwrap_or(1);
    let mut out_headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed("header value is not UTF-8"))?;
        out_headers.push((h.name.to_ascii_lowercase(), trim_ows(value).to_owned()));
    }
    let mut head = Head {
        method,
        path,
        query,
        headers: out_headers,
        keep_alive: version == 1,
        body: BodyKind::Empty,
        len,
    };
    if head.header_has_token("connection", "close") {
        head.keep_alive = false;
    } else if head.header_has_token("connection", "keep-alive") {
        head.keep_alive = true;
    }
    if head.headers.iter().filter(|(n, _)| n == "host").count() > 1 {
        return Err(HttpError::Malformed("more than one host header"));
    }
    head.body = body_kind(&head, version, limits)?;
    Ok(Some(head))
}

/// How the body is framed (RFC 9112 §6). Anything two parsers could read two ways is refused,
/// since a proxy in front of us may have picked the other reading: that is request smuggling.
fn body_kind(head: &Head, version: u8, limits: &Limits) -> Result<BodyKind, HttpError> {
    let mut lengths = head.headers.iter().filter(|(n, _)| n == "content-length");
    let length = lengths.next().map(|(_, v)| v.as_str());
    if lengths.next().is_some() {
        // RFC 9110 lets equal duplicates through; refusing them all is simpler and safe.
        return Err(HttpError::Malformed("more than one content-length"));
    }
    let mut codings = head
        .headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .peekable();
    if codings.peek().is_none() {
        return match length {
            None => Ok(BodyKind::Empty),
            Some(v) => match parse_content_length(v)? {
                0 => Ok(BodyKind::Empty),
                n if n > limits.max_body => Err(HttpError::BodyTooLarge),
                n => Ok(BodyKind::Length(n)),
            },
        };
    }
    if length.is_some() {
        return Err(HttpError::Malformed(
            "content-length together with transfer-encoding",
        ));
    }
    if version == 0 {
        return Err(HttpError::Malformed(
            "transfer-encoding in an HTTP/1.0 request",
        ));
    }
    // Several header lines form one list; empty list elements are ignored (RFC 9110 §5.6.1).
    let codings: Vec<&str> = codings
        .flat_map(|(_, v)| v.split(','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
        .collect();
    let is_chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
    match codings.split_last() {
        Some((last, before)) if is_chunked(last) => {
            if before.iter().any(is_chunked) {
                Err(HttpError::Malformed("chunked applied more than once"))
            } else if before.is_empty() {
                Ok(BodyKind::Chunked)
            } else {
                Err(HttpError::UnsupportedEncoding)
            }
        }
        // Without chunked last, the body's end cannot be known: 400 and close (RFC 9112 §6.3).
        _ => Err(HttpError::Malformed(
            "chunked is not the final transfer coding",
        )),
    }
}

/// `Content-Length = 1*DIGIT`: no sign, no list, no whitespace inside. A value of digits too
/// large for `usize` is a body too large, never a wrapped small number.
fn parse_content_length(v: &str) -> Result<usize, HttpError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed("invalid content-length"));
    }
    v.bytes().try_fold(0usize, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or(HttpError::BodyTooLarge)
    })
}

/// Strips optional whitespace (spaces and tabs only, RFC 9110 §5.6.3); `str::trim` would also
/// strip Unicode spaces a proxy treats as part of the value.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Longest chunk-size line (size, extensions, CRLF) accepted. A size is at most 16 hex digits;
/// asobi clients send no extensions, so 1 KiB is room for a proxy's and stops a client from
/// streaming an endless line into the buffer.
const MAX_CHUNK_LINE: usize = 1024;

/// Incremental decoder of a chunked body.
#[derive(Debug, Default)]
pub struct ChunkedBody {
    body: BytesMut,
    done: bool,
}

impl ChunkedBody {
    /// Consumes as much of `buf` as forms whole chunks; returns bytes consumed. After the last
    /// chunk and trailers, [`ChunkedBody::finish`] returns the body.
    ///
    /// Every size and offset here comes from the peer, so all arithmetic on them is checked:
    /// no input reaches a panic.
    pub fn feed(&mut self, buf: &[u8], limits: &Limits) -> Result<usize, HttpError> {
        let mut pos = 0;
        while !self.done {
            let rest = buf.get(pos..).unwrap_or_default();
            let Some((hdr, size)) = chunk_line(rest)? else {
                return Ok(pos);
            };
            let data = rest.get(hdr..).unwrap_or_default();
            if size == 0 {
                // Trailers are bounded like a head, whether they arrive whole or in pieces.
                return match trailers_len(data)? {
                    Some(end) if end > limits.max_head => Err(HttpError::HeadTooLarge),
                    Some(end) => {
                        self.done = true;
                        Ok(pos + hdr + end)
                    }
                    None if data.len() > limits.max_head => Err(HttpError::HeadTooLarge),
                    None => Ok(pos),
                };
            }
            let room = limits.max_body.saturating_sub(self.body.len());
            let size = usize::try_from(size)
                .ok()
                .filter(|&n| n <= room)
                .ok_or(HttpError::BodyTooLarge)?;
            // `size <= max_body`, so `size + 2` cannot overflow; checked all the same.
            let framed = size.checked_add(2).ok_or(HttpError::BodyTooLarge)?;
            let Some(chunk) = data.get(..framed) else {
                return Ok(pos);
            };
            let (bytes, crlf) = chunk.split_at(size);
            if crlf != b"\r\n" {
                return Err(HttpError::Malformed("chunk not terminated by CRLF"));
            }
            self.body.extend_from_slice(bytes);
            pos += hdr + framed;
        }
        Ok(pos)
    }

    /// The body, once the terminating chunk was read.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.done.then(|| std::mem::take(&mut self.body).freeze())
    }
}

/// A chunk-size line at the start of `buf`: `(line length, size)`, or `None` until it is whole.
///
/// httparse reads the size but is lenient where proxies are not: it takes a line with no digits
/// as size 0 (the last chunk) and passes any byte, bare CR and LF included, inside extensions.
/// Those lines are refused here before httparse's reading is trusted.
fn chunk_line(buf: &[u8]) -> Result<Option<(usize, u64)>, HttpError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if !first.is_ascii_hexdigit() {
        return Err(HttpError::Malformed("invalid chunk size"));
    }
    // The line ends at the first LF, which must follow a CR; before that, no control byte but
    // HTAB. A partial line is checked as far as it goes.
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = buf.get(..line_end.unwrap_or(buf.len())).unwrap_or_default();
    let (line, has_cr) = match line.strip_suffix(b"\r") {
        Some(l) => (l, true),
        None => (line, false),
    };
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::Malformed("control byte in chunk size line"));
    }
    let Some(line_end) = line_end else {
        return if buf.len() >= MAX_CHUNK_LINE {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    if !has_cr {
        return Err(HttpError::Malformed("chunk size line not ended by CRLF"));
    }
    if line_end >= MAX_CHUNK_LINE {
        return Err(HttpError::HeadTooLarge);
    }
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((len, size))) if len == line_end + 1 => Ok(Some((len, size))),
        // httparse has the whole line; any other reading of it than ours is refused.
        _ => Err(HttpError::Malformed("invalid chunk size")),
    }
}

/// Length of the trailer section after the last chunk (header lines, then an empty line), or
/// `None` until it is whole.
fn trailers_len(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((len, _))) => Ok(Some(len)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadTooLarge),
        Err(_) => Err(HttpError::Malformed("invalid trailer section")),
    }
}

/// A response ready to be written.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (content-length, connection and date are written for you).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the response to `out`. `head_only` omits the body (HEAD requests).
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool, head_only: bool) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: {}\r\n",
            self.status,
            reason_phrase(self.status),
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Head>, HttpError> {
        parse_head(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn partial_head_is_not_an_error() {
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: x\r\n")
                .unwrap()
                .map(|h| h.len),
            None
        );
    }

    #[test]
    fn parses_path_query_headers_and_length() {
        let h = parse("POST /api/v1/x?a=1&b=hello%20w+x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nAuthorization: Bearer abc\r\n\r\nxyz")
            .unwrap()
            .unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path, "/api/v1/x");
        assert_eq!(h.query_param("b").as_deref(), Some("hello w x"));
        assert_eq!(h.query_param("a").as_deref(), Some("1"));
        assert_eq!(h.body, BodyKind::Length(3));
        assert_eq!(h.bearer(), Some("abc"));
        assert!(h.keep_alive);
        assert_eq!(&"POST /api/v1/x?a=1&b=hello%20w+x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nAuthorization: Bearer abc\r\n\r\nxyz"[h.len..], "xyz");
    }

    #[test]
    fn limits_are_enforced() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
        assert_eq!(parse(&big).unwrap_err(), HttpError::HeadTooLarge);
        let body = "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
        assert_eq!(parse(body).unwrap_err().status(), 413);
        assert_eq!(parse("GARBAGE\r\n\r\n").unwrap_err().status(), 400);
        let conflicting = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(conflicting).unwrap_err().status(), 400);
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse(gzip).unwrap_err().status(), 501);
    }

    #[test]
    fn connection_close_and_http10() {
        assert!(
            !parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn chunked_body_in_pieces() {
        let limits = Limits::default();
        let wire = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nNEXT";
        let mut dec = ChunkedBody::default();
        let mut consumed = 0;
        // Feed one byte more at a time, as a slow client would.
        for end in 1..=wire.len() {
            consumed += dec.feed(&wire[consumed..end], &limits).unwrap();
        }
        assert_eq!(&dec.finish().unwrap()[..], b"Wikipedia");
        assert_eq!(&wire[consumed..], b"NEXT");
    }

    #[test]
    fn chunked_body_over_limit() {
        let limits = Limits {
            max_head: 1024,
            max_body: 4,
        };
        let mut dec = ChunkedBody::default();
        assert_eq!(
            dec.feed(b"5\r\nhello\r\n", &limits).unwrap_err(),
            HttpError::BodyTooLarge
        );
    }

    /// The review's reproducer: a small chunk, then a size that wraps `len + size` around.
    #[test]
    fn chunk_size_near_u64_max_is_refused_not_a_panic() {
        let limits = Limits::default();
        let mut dec = ChunkedBody::default();
        let wire = b"2\r\nab\r\nFFFFFFFFFFFFFFFE\r\nxy\r\n0\r\n\r\n";
        assert_eq!(dec.feed(wire, &limits), Err(HttpError::BodyTooLarge));
        // The same on a fresh decoder, and byte by byte.
        for size in ["FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFE", "FFFFFFFFFFFFFFFD"] {
            let wire = format!("2\r\nab\r\n{size}\r\nxy\r\n");
            let mut dec = ChunkedBody::default();
            let mut consumed = 0;
            let mut result = Ok(0);
            for end in 1..=wire.len() {
                result = dec.feed(&wire.as_bytes()[consumed..end], &limits);
                match result {
                    Ok(n) => consumed += n,
                    Err(_) => break,
                }
            }
            assert_eq!(result, Err(HttpError::BodyTooLarge), "{size}");
        }
    }

    #[test]
    fn chunk_size_lines_are_strict() {
        let limits = Limits::default();
        for wire in [
            // No digits: an empty size line must not pass for the last chunk.
            &b"\r\n\r\n"[..],
            b" \r\n\r\n",
            b";ext\r\n\r\n",
            // A bare LF or CR inside an extension reads as a line break to some proxies.
            b"1;a\nb\r\nx\r\n0\r\n\r\n",
            b"1;a\rb\r\nx\r\n0\r\n\r\n",
            // Signs and prefixes are not hex digits.
            b"+1\r\nx\r\n0\r\n\r\n",
            b"0x1\r\nx\r\n0\r\n\r\n",
            // Chunk data must end in CRLF exactly.
            b"1\r\nxy0\r\n\r\n",
            b"1\r\nx\n0\r\n\r\n",
            // Trailers are header lines, not arbitrary bytes.
            b"0\r\nnot a header\r\n\r\n",
        ] {
            let mut dec = ChunkedBody::default();
            assert!(
                matches!(dec.feed(wire, &limits), Err(HttpError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut dec = ChunkedBody::default();
        let wire = b"1;name=value\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(dec.feed(wire, &limits), Ok(wire.len()));
        assert_eq!(&dec.finish().unwrap()[..], b"x");
    }

    #[test]
    fn endless_chunk_size_line_is_bounded() {
        let limits = Limits::default();
        let mut dec = ChunkedBody::default();
        let wire = format!("1;{}", "a".repeat(limits.max_head + 1));
        assert!(dec.feed(wire.as_bytes(), &limits).is_err());
    }

    #[test]
    fn content_length_must_be_plain_digits() {
        for value in [
            "+2", "-2", " 2 2", "2,2", "2, 2", "0x2", "2.0", "", "\u{a0}2", "２",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nab");
            assert_eq!(
                parse(&req).map(|h| h.map(|h| h.body)),
                Err(HttpError::Malformed("invalid content-length")),
                "{value:?}"
            );
        }
        let ok = parse("POST / HTTP/1.1\r\nContent-Length: 002\r\n\r\nab");
        assert_eq!(ok.unwrap().unwrap().body, BodyKind::Length(2));
        // All digits but past usize: too large, never a wrapped small number.
        let huge = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(parse(huge).unwrap_err(), HttpError::BodyTooLarge);
    }

    #[test]
    fn duplicate_content_length_is_refused_even_when_equal() {
        let req = "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(parse(req).unwrap_err().status(), 400);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused() {
        for req in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        ] {
            assert_eq!(parse(req).unwrap_err().status(), 400, "{req:?}");
        }
    }

    #[test]
    fn chunked_must_be_the_final_coding_and_only_once() {
        let te = |values: &[&str]| {
            let mut req = String::from("POST / HTTP/1.1\r\nHost: x\r\n");
            for v in values {
                req.push_str(&format!("Transfer-Encoding: {v}\r\n"));
            }
            req.push_str("\r\n");
            parse(&req).map(|h| h.unwrap().body)
        };
        assert_eq!(te(&["chunked"]), Ok(BodyKind::Chunked));
        assert_eq!(te(&["Chunked"]), Ok(BodyKind::Chunked));
        for bad in [
            &["gzip"][..],
            &["chunked, gzip"],
            &["chunked", "gzip"],
            &["chunked, chunked"],
            &["chunked", "chunked"],
            &["chunked;q=1"],
            &["chunkedx"],
            &["\"chunked\""],
            &[""],
        ] {
            assert_eq!(te(bad).map_err(|e| e.status()), Err(400), "{bad:?}");
        }
        // Chunked last but over a coding we do not decode: framing is sound, the coding is not
        // supported.
        assert_eq!(te(&["gzip, chunked"]), Err(HttpError::UnsupportedEncoding));
        assert_eq!(
            te(&["gzip", "chunked"]),
            Err(HttpError::UnsupportedEncoding)
        );
        // HTTP/1.0 has no chunked coding: a Transfer-Encoding there is faulty framing.
        let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(parse(old).unwrap_err().status(), 400);
    }

    #[test]
    fn header_whitespace_tricks_are_refused() {
        for req in [
            // Whitespace between name and colon.
            "POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\nab",
            "POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n",
            // obs-fold: a continuation line.
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            // A header line that starts with whitespace.
            "POST / HTTP/1.1\r\n Content-Length: 2\r\n\r\nab",
        ] {
            assert_eq!(parse(req).map(|_| ()).unwrap_err().status(), 400, "{req:?}");
        }
        // Only spaces and tabs around a value are optional whitespace.
        let h = parse("GET / HTTP/1.1\r\nX-A: \t v \t\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.header("x-a"), Some("v"));
    }

    #[test]
    fn duplicate_host_is_refused() {
        let req = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert_eq!(parse(req).unwrap_err().status(), 400);
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        Response::json(404, "{}").write_to(&mut out, true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: keep-alive\r\ncontent-type: application/json\r\n\r\n{}"));
    }

    #[test]
    fn percent_decoding_edge_cases() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41%42"), "AB");
    }
}
