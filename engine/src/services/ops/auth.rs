//! Who may use the ops plane, as asobi decides it.
//!
//! Two transports carry one credential, the operator secret:
//! - **bearer**: `Authorization: Bearer <secret>`, compared in constant time over SHA-256
//!   digests (so neither content nor length leaks through timing). Holds every capability.
//! - **console session**: `POST /console/session {"secret","label"?}` exchanges the secret for
//!   an `HttpOnly` session cookie plus a script-readable CSRF cookie; each later request needs
//!   both the cookie and the CSRF value echoed as `x-csrf-token`, so a cross-site request that
//!   arrives with the browser's cookies gets 403. A session holds every capability except
//!   erasure (asobi's default). Sessions live in this process and end with it.
//!
//! No secret configured, a wrong one, a bad session and a missing capability all answer the
//! same 403 `forbidden`: a caller guessing learns nothing from the difference. A bearer token
//! wins when both are present. Player tokens are never consulted.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use asobi_net::http::Head;
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::{lock, OpsState};

/// The session cookie (`HttpOnly`).
pub(crate) const SESSION_COOKIE: &str = "asobi_console";
/// The CSRF cookie (readable by the page, echoed as `x-csrf-token`).
pub(crate) const CSRF_COOKIE: &str = "asobi_console_csrf";
/// asobi's default session lifetime; absolute, reading does not extend it.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Console sessions held at once; the oldest goes first past it, so sign-ins in a loop cannot
/// grow memory without bound.
const MAX_SESSIONS: usize = 1024;
/// Longest operator label kept (asobi: 64 bytes of printable ASCII).
const LABEL_MAX: usize = 64;

/// What a route needs (asobi's capability classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    Read,
    PlayerData,
    Config,
    Erasure,
}

/// Who is acting.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    /// Label for the audit trail: the session's, or `x-asobi-operator`, or `operator`.
    pub(crate) display: String,
    /// `static_secret` or `local_user` (asobi's names).
    pub(crate) source: &'static str,
    pub(crate) caps: &'static [Cap],
}

const ALL: &[Cap] = &[Cap::Read, Cap::PlayerData, Cap::Config, Cap::Erasure];
const SESSION_CAPS: &[Cap] = &[Cap::Read, Cap::PlayerData, Cap::Config];

/// One signed-in console.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSession {
    pub(crate) csrf: String,
    pub(crate) label: String,
    pub(crate) expires: Instant,
    pub(crate) expires_unix: i64,
    created: Instant,
}

/// asobi's one rejection.
pub(crate) fn forbidden() -> ApiError {
    ApiError::new(
        403,
        code::FORBIDDEN,
        "The caller may not perform this action.",
    )
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether `presented` is the configured secret; false when none is configured.
pub(crate) fn secret_matches(state: &OpsState, presented: &str) -> bool {
    match &state.config.secret {
        Some(secret) if !presented.is_empty() => {
            bool::from(digest(secret).ct_eq(&digest(presented)))
        }
        _ => false,
    }
}

/// A label as asobi accepts it: 1–64 bytes of printable ASCII, else `None`.
pub(crate) fn clean_label(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty() && t.len() <= LABEL_MAX && t.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .then(|| t.to_owned())
}

/// The value of a cookie in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(head: &'a Head, name: &str) -> Option<&'a str> {
    head.headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Resolves the request's credential and checks it holds `need`.
pub(crate) fn authorize(state: &OpsState, head: &Head, need: Cap) -> Result<Actor, ApiError> {
    let actor = resolve(state, head).ok_or_else(|| {
        if state.config.secret.is_none() {
            tracing::warn!(
                event = "ops_rejected_unconfigured",
                "ops request rejected: no ops_secret configured"
            );
        }
        forbidden()
    })?;
    if actor.caps.contains(&need) {
        Ok(actor)
    } else {
        Err(forbidden())
    }
}

fn resolve(state: &OpsState, head: &Head) -> Option<Actor> {
    if let Some(token) = head.bearer() {
        // A bearer that is wrong is refused even with a valid cookie beside it.
        return secret_matches(state, token).then(|| Actor {
            display: head
                .header("x-asobi-operator")
                .and_then(clean_label)
                .unwrap_or_else(|| "operator".to_owned()),
            source: "static_secret",
            caps: ALL,
        });
    }
    let session = session(state, head)?;
    let csrf = head.header("x-csrf-token")?;
    bool::from(digest(csrf).ct_eq(&digest(&session.csrf))).then_some(Actor {
        display: session.label,
        source: "local_user",
        caps: SESSION_CAPS,
    })
}

/// The live session named by the request's cookie (no CSRF check).
pub(crate) fn session(state: &OpsState, head: &Head) -> Option<ConsoleSession> {
    let id = cookie(head, SESSION_COOKIE)?;
    let mut sessions = lock(&state.sessions);
    match sessions.get(id) {
        Some(s) if s.expires > Instant::now() => Some(s.clone()),
        Some(_) => {
            sessions.remove(id);
            None
        }
        None => None,
    }
}

fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Opens a console session for a correct secret: (session id, session).
pub(crate) fn open_session(state: &OpsState, label: &str) -> (String, ConsoleSession) {
    let id = random_token();
    let now = Instant::now();
    let s = ConsoleSession {
        csrf: random_token(),
        label: label.to_owned(),
        expires: now + SESSION_TTL,
        expires_unix: super::now_ms() / 1000 + SESSION_TTL.as_secs() as i64,
        created: now,
    };
    let mut sessions = lock(&state.sessions);
    sessions.retain(|_, s| s.expires > now);
    if sessions.len() >= MAX_SESSIONS {
        if let Some(oldest) = sessions
            .iter()
            .min_by_key(|(_, s)| s.created)
            .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
    }
    sessions.insert(id.clone(), s.clone());
    (id, s)
}

/// Ends the request's session, if any.
pub(crate) fn close_session(state: &OpsState, head: &Head) {
    if let Some(id) = cookie(head, SESSION_COOKIE) {
        lock(&state.sessions).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ops::OpsConfig;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: asobi_net::http::Method::Get,
            path: "/api/v1/ops/stats".into(),
            query: None,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            keep_alive: true,
            body: asobi_net::http::BodyKind::Empty,
            len: 0,
        }
    }

    fn state(secret: Option<&str>) -> OpsState {
        OpsState::new(
            OpsConfig {
                secret: secret.map(str::to_owned),
                ..OpsConfig::default()
            },
            Vec::new(),
        )
    }

    #[test]
    fn no_secret_refuses_everything() {
        let s = state(None);
        let h = head(&[("authorization", "Bearer anything")]);
        assert_eq!(authorize(&s, &h, Cap::Read).unwrap_err().status, 403);
        assert!(!secret_matches(&s, ""));
    }

    #[test]
    fn bearer_and_sessions() {
        let s = state(Some("s3cret"));
        assert!(authorize(
            &s,
            &head(&[("authorization", "Bearer s3cret")]),
            Cap::Erasure
        )
        .is_ok());
        assert!(authorize(&s, &head(&[("authorization", "Bearer s3cre")]), Cap::Read).is_err());
        let (id, sess) = open_session(&s, "kaito");
        let cookie = format!("{SESSION_COOKIE}={id}; other=1");
        // Cookie alone is not a credential.
        assert!(authorize(&s, &head(&[("cookie", &cookie)]), Cap::Read).is_err());
        let ok = head(&[("cookie", &cookie), ("x-csrf-token", &sess.csrf)]);
        let actor = authorize(&s, &ok, Cap::Config).unwrap();
        assert_eq!(actor.display, "kaito");
        // A console session cannot erase.
        assert!(authorize(&s, &ok, Cap::Erasure).is_err());
        close_session(&s, &ok);
        assert!(authorize(&s, &ok, Cap::Read).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(clean_label(" ops-bot "), Some("ops-bot".into()));
        assert_eq!(clean_label(""), None);
        assert_eq!(clean_label(&"x".repeat(65)), None);
        assert_eq!(clean_label("名前"), None);
    }
}
