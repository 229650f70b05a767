//! Google Play purchases, verified against the Play Developer API: a service-account access
//! token (a JWT grant signed with the account's RSA key, posted to its token URL), then
//! `GET {api}/androidpublisher/v3/applications/{package}/purchases/products/{product}/tokens/{token}`.
//! Both URLs are configurable, so tests (and proxies) can stand in for Google.
//!
//! The calls block, so they run on a thread of their own, never on a shard; a shard awaits the
//! answer through a oneshot. Failures are asobi's `details.reason` strings:
//! `google_iap_not_configured`, `purchase_not_found`, `purchase_cancelled`, `purchase_pending`,
//! `google_api_error`, `google_api_unavailable`, `invalid_google_response`,
//! `google_token_exchange_failed`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Google's production API.
pub(crate) const DEFAULT_API_BASE: &str = "https://androidpublisher.googleapis.com";
/// The scope the access token asks for.
const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";
/// How long one call to Google may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Google verifications in flight at once, server-wide: each holds a thread for up to
/// [`TIMEOUT`], so this bounds the threads a burst of requests can start.
const MAX_IN_FLIGHT: usize = 32;
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Longest product id or purchase token accepted (Google's tokens are a few hundred bytes).
pub(crate) const MAX_FIELD: usize = 4096;

/// What Google verification needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct GoogleConfig {
    package_name: Option<String>,
    key: Option<ServiceAccount>,
    api_base: String,
    token_url: Option<String>,
}

#[derive(Clone, Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl GoogleConfig {
    /// From `ASOBI_GOOGLE_PACKAGE_NAME`, `ASOBI_GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON key file),
    /// `ASOBI_GOOGLE_API_BASE` and `ASOBI_GOOGLE_TOKEN_URL` (default: the key's `token_uri`).
    /// A key file that cannot be read stops the server at start.
    pub(crate) fn from_env() -> Result<GoogleConfig, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let key = match var("ASOBI_GOOGLE_SERVICE_ACCOUNT_KEY") {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("google service account key {path}: {e}"))?;
                Some(
                    serde_json::from_str::<ServiceAccount>(&text)
                        .map_err(|e| format!("google service account key {path}: {e}"))?,
                )
            }
        };
        Ok(GoogleConfig {
            package_name: var("ASOBI_GOOGLE_PACKAGE_NAME"),
            key,
            api_base: var("ASOBI_GOOGLE_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
            token_url: var("ASOBI_GOOGLE_TOKEN_URL"),
        })
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// A compact RS256 JWT signed with a PKCS#8 PEM key (the service account's `private_key`).
fn sign_rs256(pem: &str, claims: &Claims<'_>) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).ok()?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok()?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?);
    let input = format!("{header}.{body}");
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .ok()?;
    Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Percent-encodes one path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

fn access_token(
    agent: &ureq::Agent,
    key: &ServiceAccount,
    url: &str,
) -> Result<String, &'static str> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        iss: &key.client_email,
        scope: SCOPE,
        aud: url,
        iat: now,
        exp: now + 3600,
    };
    let jwt = sign_rs256(&key.private_key, &claims).ok_or("google_iap_not_configured")?;
    let mut resp = agent
        .post(url)
        .send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.as_str()),
        ])
        .map_err(|_| "google_api_unavailable")?;
    if resp.status() != 200 {
        return Err("google_token_exchange_failed");
    }
    let body: Value = resp
        .body_mut()
        .read_json()
        .map_err(|_| "google_token_exchange_failed")?;
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or("google_token_exchange_failed")
}

/// Asks Google about a purchase (blocking). Answers asobi's result fields on success.
fn verify_blocking(cfg: &GoogleConfig, product: &str, token: &str) -> Result<Value, &'static str> {
    let (Some(package), Some(key)) = (&cfg.package_name, &cfg.key) else {
        return Err("google_iap_not_configured");
    };
    let token_url = cfg
        .token_url
        .clone()
        .or_else(|| key.token_uri.clone())
        .unwrap_or_else(|| "https://oauth2.googleapis.com/token".to_owned());
    let agent = agent();
    let access = access_token(&agent, key, &token_url)?;
    let url = format!(
        "{}/androidpublisher/v3/applications/{}/purchases/products/{}/tokens/{}",
        cfg.api_base.trim_end_matches('/'),
        segment(package),
        segment(product),
        segment(token)
    );
    let mut resp = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {access}"))
        .call()
        .map_err(|_| "google_api_unavailable")?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err("purchase_not_found"),
        status => {
            tracing::warn!(status, "google play api error");
            return Err("google_api_error");
        }
    }
    let body: Value = resp
        .body_mut()
        .read_json()
        .map_err(|_| "invalid_google_response")?;
    match body.get("purchaseState").and_then(Value::as_i64) {
        Some(0) => {}
        Some(1) => return Err("purchase_cancelled"),
        Some(2) => return Err("purchase_pending"),
        Some(_) => return Err("purchase_unknown"),
        None => return Err("invalid_google_response"),
    }
    let field = |k: &str| {
        body.get(k)
            .cloned()
            .unwrap_or(Value::String("undefined".into()))
    };
    Ok(serde_json::json!({
        "product_id": body.get("productId").cloned().unwrap_or_else(|| Value::String(product.to_owned())),
        "order_id": field("orderId"),
        "purchase_time": field("purchaseTimeMillis"),
        "consumption_state": field("consumptionState"),
        "acknowledged": body.get("acknowledgementState").and_then(Value::as_i64) == Some(1),
        "quantity": body.get("quantity").and_then(Value::as_i64).unwrap_or(1),
        "valid": true,
    }))
}

/// Verifies a purchase on a thread of its own; the shard awaits the answer.
pub(crate) async fn verify(
    cfg: &GoogleConfig,
    product: &str,
    token: &str,
) -> Result<Value, &'static str> {
    if cfg.package_name.is_none() || cfg.key.is_none() {
        return Err("google_iap_not_configured");
    }
    use std::sync::atomic::Ordering;
    if IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err("google_api_unavailable");
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    let (cfg, product, token) = (cfg.clone(), product.to_owned(), token.to_owned());
    let spawned = std::thread::Builder::new()
        .name("asobi-iap-google".into())
        .spawn(move || {
            let answer = verify_blocking(&cfg, &product, &token);
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(answer);
        });
    if spawned.is_err() {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err("google_api_unavailable");
    }
    rx.await.unwrap_or(Err("google_api_unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("gems_100"), "gems_100");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}
