//! Account settings: the registration posture, rate limits, sign-in providers, the ops token.
//! Every flag has an `ASOBI_*` variable; `node::config` flattens [`AccountArgs`] into `serve`.

use std::collections::BTreeMap;

use asobi_rules::accounts::Rate;
use asobi_script::Registration;
use serde::Deserialize;

/// The limiter groups, by the routes they cover (asobi's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// `POST /auth/register` (it runs the password hash).
    Register,
    /// `POST /players/me/erase` (it runs the password hash on a wrong password too).
    Erase,
    /// The rest of `/auth/*`.
    Auth,
    /// `/iap/*`.
    Iap,
    /// Every other route.
    Api,
    /// `match.join` and `match.find_or_create`, per player.
    Join,
    /// Guest creation, one bucket for the whole node.
    GuestGlobal,
    /// `world.resync`, per player (asobi's `resync`).
    Resync,
    /// `world.resync`, one bucket for the whole node (after each player's own limit).
    ResyncGlobal,
}

impl Group {
    pub(crate) const ALL: [Group; 9] = [
        Group::Register,
        Group::Erase,
        Group::Auth,
        Group::Iap,
        Group::Api,
        Group::Join,
        Group::GuestGlobal,
        Group::Resync,
        Group::ResyncGlobal,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::Register => "register",
            Group::Erase => "erase",
            Group::Auth => "auth",
            Group::Iap => "iap",
            Group::Api => "api",
            Group::Join => "join",
            Group::GuestGlobal => "guest_global",
            Group::Resync => "resync",
            Group::ResyncGlobal => "resync_global",
        }
    }

    /// asobi's defaults (asobi_sup `register_limiters`).
    pub(crate) fn default_rate(self) -> Rate {
        match self {
            Group::Register => Rate::per_ms(3, 1000),
            Group::Erase => Rate::per_ms(3, 60_000),
            Group::Auth => Rate::per_ms(5, 1000),
            Group::Iap => Rate::per_ms(10, 1000),
            Group::Api => Rate::per_ms(300, 1000),
            Group::Join => Rate::per_ms(10, 60_000),
            Group::GuestGlobal => Rate::per_ms(100, 1000),
            // A resync answers a whole zone keyframe (asobi measured ~400× the request), so
            // the node's egress is bounded as well as each player's. An honest client sends
            // one per gap it detects, which TCP makes rare.
            Group::Resync => Rate::per_ms(2, 10_000),
            Group::ResyncGlobal => Rate::per_ms(20, 1000),
        }
    }
}

/// One rate per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateLimits(pub(crate) [Rate; 9]);

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits(Group::ALL.map(Group::default_rate))
    }
}

impl RateLimits {
    pub(crate) fn get(&self, g: Group) -> Rate {
        self.0[g as usize]
    }
}

/// `ASOBI_RATE_LIMITS`: `group=limit/window_ms` pairs separated by commas, e.g.
/// `auth=10/1000,api=600/1000`; groups not named keep asobi's defaults; a limit of 0 disables.
pub(crate) fn parse_rate_limits(text: &str) -> Result<RateLimits, String> {
    let mut limits = RateLimits::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, rate) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected group=limit/window_ms"))?;
        let group = Group::ALL
            .into_iter()
            .find(|g| g.name() == name.trim())
            .ok_or_else(|| {
                format!("unknown rate-limit group `{name}` (register, erase, auth, iap, api, join, guest_global, resync, resync_global)")
            })?;
        let (limit, window) = rate
            .split_once('/')
            .ok_or_else(|| format!("`{part}`: expected group=limit/window_ms"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: bad limit"))?;
        let window: u64 = window
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: bad window"))?;
        if window == 0 {
            return Err(format!("`{part}`: the window must be at least 1 ms"));
        }
        limits.0[group as usize] = Rate::per_ms(limit, window);
    }
    Ok(limits)
}

/// One OIDC provider, as `ASOBI_OIDC_PROVIDERS` configures it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OidcProvider {
    /// The `iss` every ID token must carry.
    pub(crate) issuer: String,
    /// The audience (`aud`) every ID token must name: the game's client id at the provider.
    pub(crate) client_id: String,
    /// Where the provider's signing keys are; defaults to the issuer's well-known JWKS path.
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
}

/// The providers asobi knows by name.
pub(crate) const OIDC_PROVIDERS: &[&str] = &["google", "apple", "microsoft", "discord"];

/// `ASOBI_OIDC_PROVIDERS`: a JSON object from provider name to
/// `{"issuer", "client_id", "jwks_uri"?}`. As in asobi, an issuer must be `https://`; plain
/// `http://` is accepted only for a loopback host (a local provider in tests and development).
pub(crate) fn parse_providers(text: &str) -> Result<BTreeMap<String, OidcProvider>, String> {
    let map: BTreeMap<String, OidcProvider> =
        serde_json::from_str(text).map_err(|e| format!("ASOBI_OIDC_PROVIDERS: {e}"))?;
    for (name, p) in &map {
        if !OIDC_PROVIDERS.contains(&name.as_str()) {
            return Err(format!(
                "ASOBI_OIDC_PROVIDERS: unknown provider `{name}` (google, apple, microsoft, discord)"
            ));
        }
        for url in std::iter::once(&p.issuer).chain(p.jwks_uri.iter()) {
            if !secure_or_loopback(url) {
                return Err(format!(
                    "ASOBI_OIDC_PROVIDERS: {name}: `{url}` must be https (http only for localhost)"
                ));
            }
        }
        if p.client_id.is_empty() {
            return Err(format!("ASOBI_OIDC_PROVIDERS: {name}: client_id is empty"));
        }
    }
    Ok(map)
}

pub(crate) fn secure_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn parse_registration(text: &str) -> Result<Registration, String> {
    match text {
        "open" => Ok(Registration::Open),
        "oauth_only" => Ok(Registration::OauthOnly),
        "closed" => Ok(Registration::Closed),
        other => Err(format!("`{other}`: expected open, oauth_only or closed")),
    }
}

/// The account flags of `asobi serve`.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct AccountArgs {
    /// Registration posture: open, oauth_only or closed. Wins over the game's `registration`.
    #[arg(long, env = "ASOBI_REGISTRATION", value_parser = parse_registration)]
    pub(crate) registration: Option<Registration>,
    /// Rate limits per route group, e.g. `auth=5/1000,register=3/1000` (asobi's defaults).
    #[arg(long, env = "ASOBI_RATE_LIMITS", default_value = "", value_parser = parse_rate_limits)]
    pub(crate) rate_limits: RateLimits,
    /// OIDC providers as JSON: `{"google":{"issuer":..,"client_id":..,"jwks_uri":..}}`.
    #[arg(long, env = "ASOBI_OIDC_PROVIDERS", value_parser = parse_providers)]
    pub(crate) oidc_providers: Option<BTreeMap<String, OidcProvider>>,
    /// Steam Web API key (Steam sign-in is off without it).
    #[arg(long, env = "ASOBI_STEAM_API_KEY", hide_env_values = true)]
    pub(crate) steam_api_key: Option<String>,
    /// Steam app id the tickets must be for.
    #[arg(long, env = "ASOBI_STEAM_APP_ID")]
    pub(crate) steam_app_id: Option<String>,
    /// Base URL of the Steam Web API.
    #[arg(
        long,
        env = "ASOBI_STEAM_API_URL",
        default_value = "https://partner.steam-api.com"
    )]
    pub(crate) steam_api_url: String,
    /// Most unclaimed guests at once (asobi's `guest_unlinked_cap`); 0: no cap.
    #[arg(long, env = "ASOBI_GUEST_UNLINKED_CAP", default_value_t = 100_000)]
    pub(crate) guest_unlinked_cap: u64,
    /// Seconds after which an unclaimed guest that has not resumed is deleted (asobi's
    /// `guest_reap_after`); unset: guests are permanent.
    #[arg(long, env = "ASOBI_GUEST_REAP_AFTER")]
    pub(crate) guest_reap_after: Option<u64>,
    /// Password hashes that may run at once; more wait, up to as many again, then get 503.
    #[arg(long, env = "ASOBI_HASH_CONCURRENCY", default_value_t = 4)]
    pub(crate) hash_concurrency: usize,
}

/// What the account services read.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) registration: Option<Registration>,
    pub(crate) rate_limits: RateLimits,
    pub(crate) oidc: BTreeMap<String, OidcProvider>,
    pub(crate) steam: Option<Steam>,
    pub(crate) hash_concurrency: usize,
    pub(crate) guest_unlinked_cap: u64,
    pub(crate) guest_reap_after: Option<std::time::Duration>,
}

/// Steam sign-in settings.
#[derive(Clone, Debug)]
pub(crate) struct Steam {
    pub(crate) api_key: String,
    pub(crate) app_id: String,
    pub(crate) api_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registration: None,
            rate_limits: RateLimits::default(),
            oidc: BTreeMap::new(),
            steam: None,
            hash_concurrency: 4,
            guest_unlinked_cap: 100_000,
            guest_reap_after: None,
        }
    }
}

impl AccountArgs {
    pub(crate) fn config(&self) -> Config {
        Config {
            registration: self.registration,
            rate_limits: self.rate_limits.clone(),
            oidc: self.oidc_providers.clone().unwrap_or_default(),
            steam: match (&self.steam_api_key, &self.steam_app_id) {
                (Some(k), Some(a)) => Some(Steam {
                    api_key: k.clone(),
                    app_id: a.clone(),
                    api_url: self.steam_api_url.trim_end_matches('/').to_owned(),
                }),
                _ => None,
            },
            hash_concurrency: self.hash_concurrency.max(1),
            guest_unlinked_cap: self.guest_unlinked_cap,
            guest_reap_after: self
                .guest_reap_after
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_over_defaults() {
        let r = parse_rate_limits("auth=10/1000, api = 600/2000").unwrap();
        assert_eq!(r.get(Group::Auth), Rate::per_ms(10, 1000));
        assert_eq!(r.get(Group::Api), Rate::per_ms(600, 2000));
        assert_eq!(r.get(Group::Register), Rate::per_ms(3, 1000));
        assert_eq!(parse_rate_limits("").unwrap(), RateLimits::default());
        assert!(parse_rate_limits("nope=1/1").is_err());
        assert!(parse_rate_limits("auth=1").is_err());
        assert!(parse_rate_limits("auth=1/0").is_err());
    }

    #[test]
    fn providers_need_https_except_on_loopback() {
        let ok = parse_providers(
            r#"{"google":{"issuer":"https://accounts.google.com","client_id":"c"},
                "discord":{"issuer":"http://127.0.0.1:9000","client_id":"d","jwks_uri":"http://127.0.0.1:9000/jwks"}}"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(
            parse_providers(r#"{"google":{"issuer":"http://evil.example","client_id":"c"}}"#)
                .is_err()
        );
        assert!(parse_providers(r#"{"myspace":{"issuer":"https://x","client_id":"c"}}"#).is_err());
        assert!(!secure_or_loopback("http://localhost.evil.com/x"));
        assert!(secure_or_loopback("http://localhost:80/x"));
    }
}
