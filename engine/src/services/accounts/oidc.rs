//! Proving a provider identity: OIDC ID tokens (Google, Apple, Microsoft, Discord) checked
//! against the provider's published keys, and Steam session tickets checked with the Steam Web
//! API. Every refusal is one [`Rejection`] with a reason label, which the route answers as
//! asobi's `auth.provider_rejected` (or `auth.unsupported_provider`).
//!
//! HTTP calls (key sets, discovery, Steam) are blocking `ureq` calls run on the storage
//! bridge's blocking pool, never on a shard. Key sets are cached per provider for an hour and
//! fetched again, at most once a minute, when a token names a key the cache lacks (rotation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config::{OidcProvider, Steam};
use crate::services::Shard;

/// How long a fetched key set is trusted.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// Fewest seconds between two fetches of one provider's keys.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Deadline of one call to a provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest token or ticket looked at; anything bigger is not one.
const MAX_TOKEN_BYTES: usize = 8192;
/// Steam tickets are hex and at most this long (asobi's bound).
const MAX_STEAM_TICKET: usize = 4096;

/// Why a provider credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No provider of that name is configured.
    Unsupported,
    /// The provider (or its token) said no; the label goes to `details.reason`.
    Rejected(&'static str),
}

/// A proven provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) provider: String,
    pub(crate) uid: String,
}

struct Cached {
    keys: Arc<JwkSet>,
    fetched: Instant,
}

/// Key sets per provider.
#[derive(Default)]
pub(crate) struct KeyCache {
    sets: Mutex<HashMap<String, Cached>>,
}

impl KeyCache {
    fn get(&self, provider: &str, kid: Option<&str>) -> (Option<Arc<JwkSet>>, bool) {
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        match sets.get(provider) {
            Some(c) => {
                let fresh = c.fetched.elapsed() < KEYS_TTL;
                let has_kid = kid.is_none_or(|k| c.keys.find(k).is_some());
                let may_refetch = c.fetched.elapsed() >= REFETCH_AFTER;
                let refetch = !fresh || (!has_kid && may_refetch);
                (Some(c.keys.clone()), refetch)
            }
            None => (None, true),
        }
    }

    fn put(&self, provider: &str, keys: Arc<JwkSet>) {
        self.sets.lock().unwrap_or_else(|e| e.into_inner()).insert(
            provider.to_owned(),
            Cached {
                keys,
                fetched: Instant::now(),
            },
        );
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

/// Fetches a provider's key set (through discovery when no `jwks_uri` is configured).
fn fetch_keys(p: &OidcProvider) -> Result<JwkSet, &'static str> {
    let agent = agent();
    let uri = match &p.jwks_uri {
        Some(u) => u.clone(),
        None => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                p.issuer.trim_end_matches('/')
            );
            let d: Discovery = agent
                .get(&url)
                .call()
                .map_err(|_| "discovery_unreachable")?
                .body_mut()
                .read_json()
                .map_err(|_| "discovery_invalid")?;
            if !super::config::secure_or_loopback(&d.jwks_uri) {
                return Err("discovery_invalid");
            }
            d.jwks_uri
        }
    };
    let mut resp = agent.get(&uri).call().map_err(|_| "jwks_unreachable")?;
    if !resp.status().is_success() {
        return Err("jwks_unreachable");
    }
    resp.body_mut().read_json().map_err(|_| "jwks_invalid")
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
}

/// Checks an OIDC ID token: signature against the provider's keys (RS256/ES256 only), issuer,
/// audience (the configured client id) and expiry.
pub(crate) async fn verify_id_token(
    shard: &Shard,
    provider: &str,
    token: &str,
) -> Result<Identity, Rejection> {
    let Some(p) = shard.ctx.settings.accounts.oidc.get(provider).cloned() else {
        return Err(Rejection::Unsupported);
    };
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::Rejected("invalid_token"));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Rejection::Rejected("invalid_token"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(Rejection::Rejected("unsupported_algorithm"));
    }
    let cache = &shard.ctx.accounts.keys;
    let (mut keys, refetch) = cache.get(provider, header.kid.as_deref());
    if refetch {
        let config = p.clone();
        match shard.ctx.store.blocking(move || fetch_keys(&config)).await {
            Ok(Ok(set)) => {
                let set = Arc::new(set);
                cache.put(provider, set.clone());
                keys = Some(set);
            }
            // A stale set still serves while the provider is unreachable.
            Ok(Err(reason)) if keys.is_none() => return Err(Rejection::Rejected(reason)),
            Err(_) if keys.is_none() => return Err(Rejection::Rejected("jwks_unreachable")),
            _ => tracing::warn!(
                provider,
                "refreshing the provider's keys failed; using the cached set"
            ),
        }
    }
    let keys = keys.ok_or(Rejection::Rejected("jwks_unreachable"))?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or(Rejection::Rejected("unknown_key"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Rejection::Rejected("unknown_key"))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[p.issuer.as_str()]);
    v.set_audience(&[p.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 30;
    let data = jsonwebtoken::decode::<IdClaims>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        Rejection::Rejected(match e.kind() {
            K::ExpiredSignature => "token_expired",
            K::InvalidAudience => "wrong_audience",
            K::InvalidIssuer => "wrong_issuer",
            K::InvalidSignature => "invalid_signature",
            K::ImmatureSignature => "token_not_yet_valid",
            _ => "invalid_token",
        })
    })?;
    if data.claims.sub.is_empty() || data.claims.sub.len() > 255 {
        return Err(Rejection::Rejected("invalid_token"));
    }
    Ok(Identity {
        provider: provider.to_owned(),
        uid: data.claims.sub,
    })
}

#[derive(Deserialize)]
struct SteamReply {
    response: SteamResponse,
}

#[derive(Deserialize)]
struct SteamResponse {
    #[serde(default)]
    params: Option<SteamParams>,
    #[serde(default)]
    error: Option<SteamError>,
}

#[derive(Deserialize)]
struct SteamParams {
    result: String,
    steamid: String,
    #[serde(default)]
    ownersteamid: Option<String>,
    #[serde(default)]
    publisherbanned: bool,
}

#[derive(Deserialize)]
struct SteamError {
    #[serde(default)]
    errorcode: i64,
}

fn ask_steam(s: &Steam, ticket: &str) -> Result<String, &'static str> {
    let url = format!("{}/ISteamUserAuth/AuthenticateUserTicket/v1/", s.api_url);
    let mut resp = agent()
        .get(&url)
        .query("key", &s.api_key)
        .query("appid", &s.app_id)
        .query("ticket", ticket)
        .call()
        .map_err(|_| "steam_unreachable")?;
    if !resp.status().is_success() {
        return Err("steam_unreachable");
    }
    let reply: SteamReply = resp
        .body_mut()
        .read_json()
        .map_err(|_| "steam_invalid_reply")?;
    if let Some(e) = reply.response.error {
        return Err(match e.errorcode {
            101 | 102 => "ticket_invalid",
            _ => "steam_rejected",
        });
    }
    let p = reply.response.params.ok_or("steam_invalid_reply")?;
    if p.result != "OK" {
        return Err("steam_rejected");
    }
    if p.publisherbanned {
        return Err("publisher_banned");
    }
    // A family-shared copy authenticates as its borrower but belongs to the owner.
    if p.ownersteamid.as_deref().is_some_and(|o| o != p.steamid) {
        return Err("not_owner");
    }
    if p.steamid.is_empty() || !p.steamid.bytes().all(|b| b.is_ascii_digit()) {
        return Err("steam_invalid_reply");
    }
    Ok(p.steamid)
}

/// Checks a Steam session ticket with the Steam Web API and spends it, so it cannot be used
/// twice.
pub(crate) async fn verify_steam_ticket(
    shard: &Shard,
    ticket: &str,
) -> Result<Identity, Rejection> {
    let Some(steam) = shard.ctx.settings.accounts.steam.clone() else {
        return Err(Rejection::Unsupported);
    };
    if ticket.is_empty()
        || ticket.len() > MAX_STEAM_TICKET
        || !ticket.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Rejection::Rejected("invalid_ticket"));
    }
    let t = ticket.to_ascii_lowercase();
    let asked = t.clone();
    let steamid = match shard
        .ctx
        .store
        .blocking(move || ask_steam(&steam, &asked))
        .await
    {
        Ok(Ok(id)) => id,
        Ok(Err(reason)) => return Err(Rejection::Rejected(reason)),
        Err(_) => return Err(Rejection::Rejected("steam_unreachable")),
    };
    let hash: String = Sha256::digest(t.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match shard
        .ctx
        .store
        .spend_steam_ticket(&hash, super::tokens::now_ms())
        .await
    {
        Ok(true) => Ok(Identity {
            provider: "steam".into(),
            uid: steamid,
        }),
        Ok(false) => Err(Rejection::Rejected("ticket_reused")),
        Err(_) => Err(Rejection::Rejected("ticket_unverifiable")),
    }
}

/// Proves a credential for `provider`.
pub(crate) async fn verify(
    shard: &Shard,
    provider: &str,
    token: &str,
) -> Result<Identity, Rejection> {
    if provider == "steam" {
        verify_steam_ticket(shard, token).await
    } else {
        verify_id_token(shard, provider, token).await
    }
}
