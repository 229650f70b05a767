//! CORS for the REST API, as asobi's `nova_cors_plugin` with `ASOBI_CORS_ORIGINS`: a preflight
//! (`OPTIONS`) on any path is answered here, before routing, and every answer to an allowed
//! `Origin` carries `access-control-allow-origin`. Without `ASOBI_CORS_ORIGINS` no CORS header
//! is ever sent, so browsers keep their same-origin default.

use asobi_net::http::{Head, Response};

/// Methods the REST API serves.
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Headers the SDKs send.
const ALLOW_HEADERS: &str = "authorization, content-type";
/// Seconds a browser may cache a preflight answer.
const MAX_AGE_SECS: &str = "600";

/// The `Origin` to echo back, when `origins` allows it (`*` allows any).
fn allowed<'a>(origins: &[String], head: &'a Head) -> Option<&'a str> {
    let origin = head.header("origin")?;
    origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        .then_some(origin)
}

/// The answer to a preflight: 204, with the allow headers when the origin is allowed.
pub(crate) fn preflight(origins: &[String], head: &Head) -> Response {
    let mut r = Response {
        status: 204,
        headers: Vec::new(),
        body: Default::default(),
    };
    if allowed(origins, head).is_some() {
        decorate(origins, head, &mut r);
        r.headers
            .push(("access-control-allow-methods", ALLOW_METHODS.into()));
        let asked = head
            .header("access-control-request-headers")
            .unwrap_or(ALLOW_HEADERS);
        r.headers
            .push(("access-control-allow-headers", asked.into()));
        r.headers
            .push(("access-control-max-age", MAX_AGE_SECS.into()));
    }
    r
}

/// Adds the allow-origin header to an answer for an allowed origin.
pub(crate) fn decorate(origins: &[String], head: &Head, r: &mut Response) {
    if let Some(origin) = allowed(origins, head) {
        r.headers
            .push(("access-control-allow-origin", origin.to_owned()));
        r.headers.push(("vary", "origin".into()));
    }
}

/// `ASOBI_CORS_ORIGINS`: a comma- or space-separated list of origins, or `*`.
pub(crate) fn parse_origins(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect()
}
