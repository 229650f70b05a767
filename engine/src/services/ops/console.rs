//! The operator console at `/console`: a page and two assets embedded in the binary, and the
//! session routes that exchange the operator secret for a cookie + CSRF token. Off unless
//! `ASOBI_CONSOLE` is on and a secret is set; when off, every console path answers asobi's one
//! 404 `console.not_found`.

use std::rc::Rc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use asobi_net::http::{Head, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::auth::{self, CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL};
use crate::services::rest::RestResult;
use crate::services::Shard;

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// Scripts and styles only from this origin, no framing, no plugins: the console holds an
/// operator session, so an injected script or a clickjacking frame must not run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn not_found() -> ApiError {
    ApiError::new(
        404,
        code::CONSOLE_NOT_FOUND,
        "No console resource exists at this path.",
    )
}

fn asset(content_type: &str, body: &'static str) -> RestResult {
    Ok(Response {
        status: 200,
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("content-security-policy", CSP.to_owned()),
            ("x-frame-options", "DENY".to_owned()),
            ("x-content-type-options", "nosniff".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: Bytes::from_static(body.as_bytes()),
    })
}

/// `Secure` when the request came over TLS, directly or through a proxy that says so.
fn secure(head: &Head) -> &'static str {
    if head
        .header("x-forwarded-proto")
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Deserialize)]
struct SignIn {
    secret: Option<String>,
    label: Option<String>,
}

pub(crate) async fn handle(shard: &Rc<Shard>, head: &Head, body: Bytes) -> RestResult {
    let state = &shard.ctx.ops;
    if !state.config.console || state.config.secret.is_none() {
        return Err(not_found());
    }
    let path = head
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let get = matches!(head.method, Method::Get | Method::Head);
    match (path, head.method) {
        ("/console", _) if get => asset("text/html; charset=utf-8", INDEX),
        ("/console/assets/app.js", _) if get => asset("text/javascript; charset=utf-8", APP_JS),
        ("/console/assets/app.css", _) if get => asset("text/css; charset=utf-8", APP_CSS),
        ("/console/session", _) if get => {
            let actor = auth::authorize(state, head, auth::Cap::Read)?;
            let caps: Vec<&str> = ["read", "player_data", "config"].to_vec();
            crate::services::rest::ok(&json!({ "data": {
                "display": actor.display,
                "source": actor.source,
                "caps": caps,
                "attested": false,
                "label": state.config.label,
                "production": state.config.production,
            }}))
        }
        ("/console/session", Method::Post) => {
            let sign_in: SignIn = crate::services::rest::parse(&body)?;
            let secret = sign_in.secret.unwrap_or_default();
            if !auth::secret_matches(state, &secret) {
                tracing::warn!(event = "console_sign_in_refused", "console sign-in refused");
                return Err(auth::forbidden());
            }
            let label = sign_in
                .label
                .as_deref()
                .and_then(auth::clean_label)
                .unwrap_or_else(|| "operator".to_owned());
            let (id, session) = auth::open_session(state, &label);
            tracing::info!(event = "console_signed_in", label = %label, "console session opened");
            let max_age = SESSION_TTL.as_secs();
            let sec = secure(head);
            let body = json!({ "data": {
                "display": label,
                "expires_at": session.expires_unix,
                "csrf": session.csrf,
            }});
            Ok(Response::json(200, serde_json::to_vec(&body).unwrap_or_default())
                .with_header(
                    "set-cookie",
                    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{sec}"),
                )
                .with_header(
                    "set-cookie",
                    format!("{CSRF_COOKIE}={}; Path=/; SameSite=Lax; Max-Age={max_age}{sec}", session.csrf),
                ))
        }
        ("/console/session", Method::Delete) => {
            auth::close_session(state, head);
            Ok(Response::json(200, &br#"{"data":{"signed_out":true}}"#[..])
                .with_header(
                    "set-cookie",
                    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
                )
                .with_header(
                    "set-cookie",
                    format!("{CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0"),
                ))
        }
        _ => Err(not_found()),
    }
}
