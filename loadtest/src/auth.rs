//! Test players: registration and login over asobi's REST API, and a cache of their tokens
//! between runs. Registering costs the server a password hash each, so thousands of players
//! take a while the first time; after that the cache makes a run start in seconds, refreshing
//! tokens that are about to expire (refresh is cheap) and falling back to login, then to
//! registration, when the server no longer knows a player (e.g. a fresh data directory).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Password of every load-test player. Not a secret: these accounts exist only on test servers.
const PASSWORD: &str = "asobi-loadtest-pw-1";
/// A cached token is refreshed when it has less than this left, so it cannot expire mid-run.
const MIN_TOKEN_LIFE: Duration = Duration::from_secs(10 * 60);
/// Assumed lifetime of a token that is not a JWT (its expiry cannot be read); if the server
/// expires it sooner, the rejected `session.connect` triggers a re-login anyway.
const OPAQUE_TOKEN_LIFE: Duration = Duration::from_secs(60 * 60);

/// One registered player and its tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Player {
    /// Login name.
    pub username: String,
    /// Server-assigned id.
    pub player_id: String,
    /// Bearer token for `session.connect`.
    pub access_token: String,
    /// Token for `POST /api/v1/auth/refresh`.
    #[serde(default)]
    pub refresh_token: String,
    /// Unix seconds when the tokens were obtained.
    pub obtained_at: u64,
}

impl Player {
    /// Unix seconds at which the access token expires (JWT `exp`, else an assumed lifetime).
    pub fn expires_at(&self) -> u64 {
        jwt_exp(&self.access_token).unwrap_or(self.obtained_at + OPAQUE_TOKEN_LIFE.as_secs())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct CacheFile {
    server: String,
    players: Vec<Option<Player>>,
}

/// REST client for one server plus the on-disk token cache.
pub struct Accounts {
    base: String,
    agent: ureq::Agent,
    path: PathBuf,
    players: Mutex<Vec<Option<Player>>>,
}

/// Default cache file for a server, under `~/.cache/asobi-loadtest/`.
pub fn default_cache_path(base: &str) -> PathBuf {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let key: String = base
        .trim_start_matches("http://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    home.join("asobi-loadtest")
        .join(format!("players-{key}.json"))
}

impl Accounts {
    /// Opens the cache at `path` for the server at `base` (`http://host:port`). A cache written
    /// for another server is ignored.
    pub fn open(base: &str, path: &Path) -> Accounts {
        let cached: CacheFile = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|c: &CacheFile| c.server == base)
            .unwrap_or_default();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Accounts {
            base: base.to_string(),
            agent,
            path: path.to_path_buf(),
            players: Mutex::new(cached.players),
        }
    }

    /// Makes sure players `0..count` exist with usable tokens, registering, logging in or
    /// refreshing with at most `concurrency` requests in flight. Returns them in order.
    pub fn ensure(&self, count: usize, concurrency: usize) -> anyhow::Result<Vec<Player>> {
        {
            let mut p = self.players.lock().map_err(|_| anyhow!("cache poisoned"))?;
            if p.len() < count {
                p.resize(count, None);
            }
        }
        let now = unix_now();
        let todo: Vec<usize> = {
            let p = self.players.lock().map_err(|_| anyhow!("cache poisoned"))?;
            (0..count)
                .filter(|&i| match &p[i] {
                    Some(pl) => pl.expires_at() < now + MIN_TOKEN_LIFE.as_secs(),
                    None => true,
                })
                .collect()
        };
        if !todo.is_empty() {
            eprintln!(
                "players: {} cached and valid, {} to register/login/refresh at {} ({} in flight)",
                count - todo.len(),
                todo.len(),
                self.base,
                concurrency
            );
        }
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..concurrency.max(1).min(todo.len().max(1)) {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let prior = self.players.lock().ok().and_then(|p| p[i].clone());
                    match self.obtain(i, prior.as_ref()) {
                        Ok(pl) => {
                            if let Ok(mut p) = self.players.lock() {
                                p[i] = Some(pl);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failures.lock() {
                                f.push(format!("player {i}: {e:#}"));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
            let mut last = Instant::now();
            while done.load(Ordering::Relaxed) < todo.len() {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= Duration::from_secs(1) {
                    last = Instant::now();
                    let d = done.load(Ordering::Relaxed);
                    eprintln!(
                        "players: {d}/{} ready ({:.0}/s)",
                        todo.len(),
                        d as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        self.save()?;
        let failures = failures.into_inner().unwrap_or_default();
        if !failures.is_empty() {
            bail!(
                "{} of {} players could not be prepared; first: {}",
                failures.len(),
                todo.len(),
                failures[0]
            );
        }
        let p = self.players.lock().map_err(|_| anyhow!("cache poisoned"))?;
        p[..count]
            .iter()
            .map(|x| {
                x.clone()
                    .ok_or_else(|| anyhow!("player missing after preparation"))
            })
            .collect()
    }

    /// Fresh tokens for player `i` after the server rejected the cached ones: login (which
    /// also covers a server that restarted with a new signing key), else register.
    pub fn reauthenticate(&self, i: usize) -> anyhow::Result<Player> {
        let pl = self.obtain(i, None)?;
        if let Ok(mut p) = self.players.lock() {
            if p.len() <= i {
                p.resize(i + 1, None);
            }
            p[i] = Some(pl.clone());
        }
        Ok(pl)
    }

    fn obtain(&self, i: usize, prior: Option<&Player>) -> anyhow::Result<Player> {
        if let Some(p) = prior.filter(|p| !p.refresh_token.is_empty()) {
            if let Ok(fresh) = self.refresh(p) {
                return Ok(fresh);
            }
        }
        let username = format!("loadtest_{i:06}");
        let body = serde_json::json!({"username": username, "password": PASSWORD});
        match self.post("/api/v1/auth/login", &body) {
            Ok(v) => return player_from(&v, &username),
            Err(RestError::Status(..)) => {}
            Err(e) => return Err(e.into()),
        }
        match self.post("/api/v1/auth/register", &body) {
            Ok(v) => player_from(&v, &username),
            Err(RestError::Status(409, _)) => {
                let v = self.post("/api/v1/auth/login", &body)?;
                player_from(&v, &username)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn refresh(&self, p: &Player) -> anyhow::Result<Player> {
        let v = self.post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": p.refresh_token}),
        )?;
        let mut fresh = player_from(&v, &p.username)?;
        if fresh.player_id.is_empty() {
            fresh.player_id.clone_from(&p.player_id);
        }
        if fresh.refresh_token.is_empty() {
            fresh.refresh_token.clone_from(&p.refresh_token);
        }
        Ok(fresh)
    }

    /// One POST; a server that says "not now" (503 `overloaded` from its bounded password
    /// hashing pool, 429 from a limiter) is retried with backoff, as a real client would.
    fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, RestError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0u32;
        loop {
            let mut resp = self
                .agent
                .post(&url)
                .send_json(body)
                .map_err(|e| RestError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .read_to_string()
                .map_err(|e| RestError::Transport(e.to_string()))?;
            if (status == 503 || status == 429) && attempt < BUSY_RETRIES {
                attempt += 1;
                let backoff = (20u64 << attempt.min(5)).min(500);
                std::thread::sleep(std::time::Duration::from_millis(backoff));
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(RestError::Status(status, text));
            }
            return serde_json::from_str(&text)
                .map_err(|e| RestError::Transport(format!("bad JSON from {path}: {e}")));
        }
    }

    /// Writes the cache file.
    pub fn save(&self) -> anyhow::Result<()> {
        let players = self
            .players
            .lock()
            .map_err(|_| anyhow!("cache poisoned"))?
            .clone();
        let file = CacheFile {
            server: self.base.clone(),
            players,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&file)?)?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Attempts at a request the server answered busy (about a minute of backoff in all).
const BUSY_RETRIES: u32 = 120;

#[derive(Debug)]
enum RestError {
    Status(u16, String),
    Transport(String),
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Status(s, b) => {
                write!(f, "HTTP {s}: {}", b.chars().take(200).collect::<String>())
            }
            RestError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RestError {}

/// Builds a player from a register/login/refresh reply. Accepts asobi's `access_token`
/// and the older `session_token` name.
fn player_from(v: &serde_json::Value, username: &str) -> anyhow::Result<Player> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let access = s("access_token")
        .or_else(|| s("session_token"))
        .or_else(|| s("token"))
        .ok_or_else(|| anyhow!("reply has no access_token: {v}"))?;
    Ok(Player {
        username: s("username").unwrap_or_else(|| username.to_string()),
        player_id: s("player_id")
            .or_else(|| {
                v.pointer("/player/id")
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default(),
        access_token: access,
        refresh_token: s("refresh_token").unwrap_or_default(),
        obtained_at: unix_now(),
    })
}

/// `exp` claim of a JWT, if the token is one.
fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"HS256"}"#),
            e.encode(format!(r#"{{"sub":"p","exp":{exp}}}"#))
        )
    }

    #[test]
    fn reads_jwt_expiry_and_assumes_a_lifetime_for_opaque_tokens() {
        let mut p = Player {
            username: "u".into(),
            player_id: "p".into(),
            access_token: jwt(2_000_000_000),
            refresh_token: String::new(),
            obtained_at: 100,
        };
        assert_eq!(p.expires_at(), 2_000_000_000);
        p.access_token = "opaque".into();
        assert_eq!(p.expires_at(), 100 + OPAQUE_TOKEN_LIFE.as_secs());
    }

    #[test]
    fn parses_both_token_field_names() {
        let v = serde_json::json!({"player_id":"p1","access_token":"a","refresh_token":"r","username":"n"});
        let p = player_from(&v, "x").unwrap();
        assert_eq!(
            (
                p.player_id.as_str(),
                p.access_token.as_str(),
                p.username.as_str()
            ),
            ("p1", "a", "n")
        );
        let v = serde_json::json!({"player_id":"p2","session_token":"s"});
        assert_eq!(player_from(&v, "x").unwrap().access_token, "s");
        assert!(player_from(&serde_json::json!({"player_id":"p"}), "x").is_err());
    }

    #[test]
    fn cache_round_trips_and_ignores_other_servers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let a = Accounts::open("http://127.0.0.1:1", &path);
        a.players.lock().unwrap().push(Some(Player {
            username: "u".into(),
            player_id: "p".into(),
            access_token: "t".into(),
            refresh_token: "r".into(),
            obtained_at: 5,
        }));
        a.save().unwrap();
        let b = Accounts::open("http://127.0.0.1:1", &path);
        assert_eq!(b.players.lock().unwrap().len(), 1);
        let c = Accounts::open("http://127.0.0.1:2", &path);
        assert!(c.players.lock().unwrap().is_empty());
    }
}
