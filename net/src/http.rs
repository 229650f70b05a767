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
            // asobi's REST bodies are small JSON documents; 1 MiB is the cap.
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
            .any(|t| t.trim().eq_ignore_ascii_case(token))
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
    /// A transfer encoding other than chunked.
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
        out_headers.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
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
    if let Some(te) = head.header("transfer-encoding") {
        if !te.eq_ignore_ascii_case("chunked") {
            return Err(HttpError::UnsupportedEncoding);
        }
        head.body = BodyKind::Chunked;
    } else {
        let mut lengths = head.headers.iter().filter(|(n, _)| n == "content-length");
        if let Some((_, v)) = lengths.next() {
            let n: usize = v
                .parse()
                .map_err(|_| HttpError::Malformed("invalid content-length"))?;
            if lengths.any(|(_, other)| other != v) {
                return Err(HttpError::Malformed("conflicting content-length"));
            }
            if n > limits.max_body {
                return Err(HttpError::BodyTooLarge);
            }
            head.body = if n == 0 {
                BodyKind::Empty
            } else {
                BodyKind::Length(n)
            };
        }
    }
    Ok(Some(head))
}

/// Incremental decoder of a chunked body.
#[derive(Debug, Default)]
pub struct ChunkedBody {
    body: BytesMut,
    done: bool,
}

impl ChunkedBody {
    /// Consumes as much of `buf` as forms whole chunks; returns bytes consumed. After the last
    /// chunk and trailers, [`ChunkedBody::finish`] returns the body.
    pub fn feed(&mut self, buf: &[u8], limits: &Limits) -> Result<usize, HttpError> {
        let mut pos = 0;
        while !self.done {
            let rest = &buf[pos..];
            let (hdr, size) = match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete(v)) => v,
                Ok(httparse::Status::Partial) => return Ok(pos),
                Err(_) => return Err(HttpError::Malformed("invalid chunk size")),
            };
            let size = usize::try_from(size).map_err(|_| HttpError::BodyTooLarge)?;
            if size == 0 {
                // Trailers end with an empty line; accept none or skip them whole.
                match find_blank_line_end(&rest[hdr..]) {
                    Some(end) => {
                        pos += hdr + end;
                        self.done = true;
                        return Ok(pos);
                    }
                    None if rest.len() - hdr > limits.max_head => {
                        return Err(HttpError::HeadTooLarge)
                    }
                    None => return Ok(pos),
                }
            }
            if self.body.len() + size > limits.max_body {
                return Err(HttpError::BodyTooLarge);
            }
            if rest.len() < hdr + size + 2 {
                return Ok(pos);
            }
            if &rest[hdr + size..hdr + size + 2] != b"\r\n" {
                return Err(HttpError::Malformed("chunk not terminated by CRLF"));
            }
            self.body.extend_from_slice(&rest[hdr..hdr + size]);
            pos += hdr + size + 2;
        }
        Ok(pos)
    }

    /// The body, once the terminating chunk was read.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.done.then(|| std::mem::take(&mut self.body).freeze())
    }
}

/// Position just after the trailer section (`\r\n` alone, or headers then `\r\n\r\n`).
fn find_blank_line_end(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
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
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
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
