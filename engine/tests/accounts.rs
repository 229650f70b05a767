//! Accounts and abuse controls over real sockets: sessions that end (logout, ban, erase,
//! password change) on REST and on open WebSockets of both shards, OIDC sign-in against a local
//! provider with its own keys, Steam tickets against a local fake Web API, link and unlink, the
//! registration posture, and every rate limiter's 429.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{pg_db, unique, Opts, Player, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
/// A revoked token must be refused, and its sockets closed, within this.
const REVOKED_WITHIN: Duration = Duration::from_secs(1);
/// The ops plane's credential (`ASOBI_OPS_SECRET`), sent as a bearer token.
const OPS_SECRET: &str = "ops-secret-for-the-tests-0123456789";

fn start(data: &Path, game: &Path, db: Option<String>, env: &[(&str, String)]) -> Server {
    if !game.join("config.lua").exists() {
        common::copy_example_game(game);
    }
    let mut opts = Opts {
        shards: Some(2),
        database_url: db,
        ..Opts::default()
    };
    opts.env
        .push(("ASOBI_OPS_SECRET".into(), OPS_SECRET.into()));
    for (k, v) in env {
        opts.env.push(((*k).to_owned(), v.clone()));
    }
    Server::start(data, game, &opts)
}

/// One request; the status, the headers (lower-cased names) and the JSON body.
fn request(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    stream.write_all(req.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, headers, value)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn get_me(s: &Server, p: &Player, token: &str) -> u16 {
    s.http(
        "GET",
        &format!("/api/v1/players/{}", p.id),
        Some(token),
        None,
    )
    .0
}

/// Polls until `check` holds, for at most `within`.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One authenticated socket on each shard.
fn sockets(s: &Server, token: &str) -> Vec<Ws> {
    (0..2)
        .map(|shard| {
            let mut ws = s.ws_on(shard);
            ws.connect(token);
            ws
        })
        .collect()
}

fn assert_closed(sockets: &mut [Ws], reason: &str) {
    for ws in sockets {
        let started = Instant::now();
        let frame = ws.close_frame(REVOKED_WITHIN + Duration::from_millis(500));
        assert_eq!(frame, Some((1008, reason.to_owned())));
        assert!(started.elapsed() <= REVOKED_WITHIN + Duration::from_millis(500));
    }
}

fn login(s: &Server, username: &str, password: &str) -> (u16, Value) {
    s.post(
        "/api/v1/auth/login",
        json!({"username": username, "password": password}),
    )
}

fn sessions_end(db: Option<String>) {
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(data.path(), game.path(), db.clone(), &[]);

    // Logout with no body ends the bearer token at once, on REST and on both shards' sockets;
    // another token of the same player keeps working.
    let p = s.register("out");
    let (_, other) = login(&s, &p.username, "secret123");
    let other = other["access_token"].as_str().unwrap().to_owned();
    let mut socks = sockets(&s, &p.access);
    let mut other_sock = s.ws_on(1);
    other_sock.connect(&other);
    let (status, body) = s.http("POST", "/api/v1/auth/logout", Some(&p.access), None);
    assert_eq!((status, body), (200, json!({"success": true})));
    assert!(within(REVOKED_WITHIN, || get_me(&s, &p, &p.access) == 401));
    assert_closed(&mut socks, "logged_out");
    assert_eq!(get_me(&s, &p, &other), 200);
    other_sock.send(json!({"type": "session.heartbeat", "cid": "h"}));
    other_sock.expect("session.heartbeat", WAIT, |_| true);
    // A new socket cannot sign in with the dead token.
    let mut late = s.ws_on(0);
    late.send(json!({"type": "session.connect", "cid": "c", "payload": {"token": p.access}}));
    let e = late.expect("error", WAIT, |_| true);
    assert_eq!(e["payload"]["reason"], "invalid_token");
    // Logging out twice, and with neither token nor body, is not an error.
    assert_eq!(
        s.http("POST", "/api/v1/auth/logout", Some(&p.access), None)
            .0,
        200
    );
    assert_eq!(
        s.http("POST", "/api/v1/auth/logout", None, Some("not json"))
            .0,
        200
    );

    // A password change ends every earlier token and answers a fresh pair.
    let q = s.register("pw");
    let mut socks = sockets(&s, &q.access);
    let (status, body) = s.http(
        "PUT",
        "/api/v1/players/me/password",
        Some(&q.access),
        Some(&json!({"password": "secret123", "new_password": "another-secret"}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    assert!(within(REVOKED_WITHIN, || get_me(&s, &q, &q.access) == 401));
    assert_closed(&mut socks, "password_changed");
    assert_eq!(get_me(&s, &q, &fresh), 200);
    assert_eq!(login(&s, &q.username, "secret123").0, 401);
    assert_eq!(login(&s, &q.username, "another-secret").0, 200);
    let (status, body) = s.http(
        "PUT",
        "/api/v1/players/me/password",
        Some(&fresh),
        Some(&json!({"password": "wrong-one", "new_password": "third-secret"}).to_string()),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("player.confirmation_failed"))
    );

    // A ban ends every session, refuses login and refresh until the unban.
    let b = s.register("ban");
    let mut socks = sockets(&s, &b.access);
    let ban = format!("/api/v1/ops/players/{}/ban", b.id);
    assert_eq!(
        s.http("POST", &ban, Some(&b.access), None).0,
        403,
        "a player token is not the ops credential"
    );
    let (status, body) = s.http("POST", &ban, Some(OPS_SECRET), None);
    assert_eq!(
        (status, body["data"]["banned"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert!(within(REVOKED_WITHIN, || get_me(&s, &b, &b.access) == 401));
    assert_closed(&mut socks, "banned");
    let (status, body) = login(&s, &b.username, "secret123");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("auth.banned"))
    );
    let (status, _) = s.post("/api/v1/auth/refresh", json!({"refresh_token": b.refresh}));
    assert_eq!(status, 401);
    assert_eq!(s.http("DELETE", &ban, Some(OPS_SECRET), None).0, 200);
    let (status, body) = login(&s, &b.username, "secret123");
    assert_eq!(status, 200);
    assert_eq!(get_me(&s, &b, body["access_token"].as_str().unwrap()), 200);
    assert_eq!(
        s.http(
            "POST",
            "/api/v1/ops/players/01a21a36-0000-7000-8000-000000000000/ban",
            Some(OPS_SECRET),
            None
        )
        .0,
        404
    );

    // Erase needs the password, deletes the player, and a retry gets 401.
    let e = s.register("erase");
    let mut socks = sockets(&s, &e.access);
    let erase = |token: &str, body: Value| {
        s.http(
            "POST",
            "/api/v1/players/me/erase",
            Some(token),
            Some(&body.to_string()),
        )
    };
    let (status, body) = erase(&e.access, json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_field"))
    );
    let (status, body) = erase(&e.access, json!({"password": "not-it-at-all"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("player.confirmation_failed"))
    );
    assert_eq!(
        get_me(&s, &e, &e.access),
        200,
        "a refused erase keeps the session"
    );
    assert_eq!(
        erase(&e.access, json!({"password": "secret123"})),
        (200, json!({"deleted": true}))
    );
    assert_closed(&mut socks, "erased");
    assert_eq!(erase(&e.access, json!({"password": "secret123"})).0, 401);
    assert_eq!(get_me(&s, &e, &e.access), 401);
    assert_eq!(login(&s, &e.username, "secret123").0, 401);

    // A restart forgets none of it.
    drop(s);
    let s = start(data.path(), game.path(), db, &[]);
    assert_eq!(
        get_me(&s, &p, &p.access),
        401,
        "logged-out token after a restart"
    );
    assert_eq!(
        get_me(&s, &q, &q.access),
        401,
        "pre-change token after a restart"
    );
    assert_eq!(get_me(&s, &p, &other), 200);
}

#[test]
fn sessions_end_at_once_on_sqlite() {
    sessions_end(None);
}

#[test]
fn sessions_end_at_once_on_postgres() {
    let Some(db) = pg_db() else { return };
    sessions_end(Some(db.url.clone()));
}

/// A tiny HTTP server answering each request with `answer(path_and_query)`.
fn serve(
    answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let (status, body) = answer(&target);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, hits)
}

/// An OIDC provider of our own: a P-256 key, its JWKS, and ID tokens signed with it.
struct Provider {
    issuer: String,
    jwks: String,
    key: jsonwebtoken::EncodingKey,
}

fn p256_key() -> (jsonwebtoken::EncodingKey, Value) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;
    use rand::RngCore;
    let secret = loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    let der = secret.to_pkcs8_der().unwrap();
    let point = secret.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    (jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()), jwk)
}

fn provider() -> Provider {
    let (key, jwk) = p256_key();
    let keys = json!({ "keys": [jwk] }).to_string();
    let served = keys.clone();
    let (addr, _) = serve(move |path| {
        if path == "/jwks" {
            (200, served.clone())
        } else {
            (404, "{}".into())
        }
    });
    Provider {
        issuer: addr.clone(),
        jwks: format!("{addr}/jwks"),
        key,
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Provider {
    fn token(&self, claims: Value) -> String {
        self.token_with(&self.key, claims)
    }

    fn token_with(&self, key: &jsonwebtoken::EncodingKey, claims: Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &claims, key).unwrap()
    }

    fn claims(&self, sub: &str) -> Value {
        json!({"iss": self.issuer, "aud": "game-client", "sub": sub, "exp": now_s() + 600, "iat": now_s()})
    }
}

fn oauth(s: &Server, provider: &str, token: &str) -> (u16, Value) {
    s.post(
        "/api/v1/auth/oauth",
        json!({"provider": provider, "token": token}),
    )
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn oidc_providers_steam_and_linking_on_sqlite() {
    providers_steam_and_linking(None);
}

#[test]
fn oidc_providers_steam_and_linking_on_postgres() {
    let Some(db) = pg_db() else { return };
    providers_steam_and_linking(Some(db.url.clone()));
}

fn providers_steam_and_linking(db: Option<String>) {
    // Four providers, each its own local issuer and keys.
    let providers: Vec<(&str, Provider)> = ["google", "apple", "microsoft", "discord"]
        .into_iter()
        .map(|name| (name, provider()))
        .collect();
    let config: serde_json::Map<String, Value> = providers
        .iter()
        .map(|(name, p)| {
            (
                (*name).to_owned(),
                json!({"issuer": p.issuer, "client_id": "game-client", "jwks_uri": p.jwks}),
            )
        })
        .collect();
    // A fake Steam Web API: tickets starting "aa" are good for the steam id after them.
    let (steam, steam_hits) = serve(|path| {
        let ticket = path
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("ticket="))
            .unwrap_or("");
        let key_ok = path.contains("key=steam-key") && path.contains("appid=480");
        if key_ok && ticket.starts_with("aa") {
            let id = format!("7656119{}", ticket.len());
            (200, json!({"response": {"params": {"result": "OK", "steamid": id, "ownersteamid": id, "vacbanned": false, "publisherbanned": false}}}).to_string())
        } else {
            (
                200,
                json!({"response": {"error": {"errorcode": 101, "errordesc": "Invalid ticket"}}})
                    .to_string(),
            )
        }
    });
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(
        data.path(),
        game.path(),
        db,
        &[
            ("ASOBI_OIDC_PROVIDERS", Value::Object(config).to_string()),
            ("ASOBI_STEAM_API_KEY", "steam-key".into()),
            ("ASOBI_STEAM_APP_ID", "480".into()),
            ("ASOBI_STEAM_API_URL", steam),
        ],
    );

    for (name, p) in &providers {
        let sub = unique(&format!("{name}-sub-"));
        // First sign-in creates the player; the next one finds it.
        let (status, first) = oauth(&s, name, &p.token(p.claims(&sub)));
        assert_eq!(status, 200, "{name}: {first}");
        assert_eq!(first["created"], true);
        assert!(first["username"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{name}_")));
        let (status, again) = oauth(&s, name, &p.token(p.claims(&sub)));
        assert_eq!(status, 200);
        assert_eq!(again["player_id"], first["player_id"]);
        assert!(again.get("created").is_none());
        // The tokens it answers are ordinary session tokens.
        let mut ws = s.ws_on(0);
        ws.connect(again["access_token"].as_str().unwrap());

        let rejected = |token: String, reason: &str| {
            let (status, body) = oauth(&s, name, &token);
            assert_eq!(
                (status, code(&body)),
                (401, "auth.provider_rejected"),
                "{name} {reason}: {body}"
            );
            assert_eq!(body["error"]["details"]["reason"], reason, "{name}");
        };
        let (forger, _) = p256_key();
        rejected(p.token_with(&forger, p.claims(&sub)), "invalid_signature");
        let mut c = p.claims(&sub);
        c["aud"] = json!("someone-else");
        rejected(p.token(c), "wrong_audience");
        let mut c = p.claims(&sub);
        c["exp"] = json!(now_s() - 3600);
        rejected(p.token(c), "token_expired");
        let mut c = p.claims(&sub);
        c["iss"] = json!("https://evil.example");
        rejected(p.token(c), "wrong_issuer");
        rejected("not-a-jwt".into(), "invalid_token");
    }
    let (status, body) = oauth(&s, "myspace", "x");
    assert_eq!((status, code(&body)), (401, "auth.unsupported_provider"));
    let (status, body) = s.post("/api/v1/auth/oauth", json!({"provider": "google"}));
    assert_eq!((status, code(&body)), (400, "missing_field"));

    // Steam: a ticket signs in once; the same ticket again is refused, without another
    // account.
    let ticket = "aa0123456789abcdef";
    let (status, first) = oauth(&s, "steam", ticket);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    let (status, body) = oauth(&s, "steam", ticket);
    assert_eq!((status, code(&body)), (401, "auth.provider_rejected"));
    assert_eq!(body["error"]["details"]["reason"], "ticket_reused");
    let (status, body) = oauth(&s, "steam", "bb00");
    assert_eq!(
        body["error"]["details"]["reason"], "ticket_invalid",
        "{status}"
    );
    let hits = steam_hits.load(Ordering::SeqCst);
    let (status, body) = oauth(&s, "steam", "zz&appid=1");
    assert_eq!(
        (status, body["error"]["details"]["reason"].as_str()),
        (401, Some("invalid_ticket"))
    );
    assert_eq!(
        steam_hits.load(Ordering::SeqCst),
        hits,
        "a malformed ticket never reaches Steam"
    );

    // Link and unlink: a provider-only player cannot drop its last method.
    let (google, discord) = (&providers[0].1, &providers[3].1);
    let gsub = unique("g-link-");
    let (_, g) = oauth(&s, "google", &google.token(google.claims(&gsub)));
    let gtoken = g["access_token"].as_str().unwrap();
    let unlink = |token: &str, provider: &str| {
        s.http(
            "DELETE",
            &format!("/api/v1/auth/unlink?provider={provider}"),
            Some(token),
            None,
        )
    };
    let (status, body) = unlink(gtoken, "google");
    assert_eq!((status, code(&body)), (422, "auth.last_auth_method"));
    let (status, body) = unlink(gtoken, "discord");
    assert_eq!((status, code(&body)), (404, "auth.identity_not_found"));
    let (status, body) = s.http("DELETE", "/api/v1/auth/unlink", Some(gtoken), None);
    assert_eq!((status, code(&body)), (400, "missing_field"));
    let dsub = unique("d-link-");
    let link_body =
        json!({"provider": "discord", "token": discord.token(discord.claims(&dsub))}).to_string();
    let (status, body) = s.http("POST", "/api/v1/auth/link", Some(gtoken), Some(&link_body));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"provider": "discord", "provider_uid": dsub, "linked": true})
    );
    // That discord account now signs in to the same player.
    let (_, via_discord) = oauth(&s, "discord", &discord.token(discord.claims(&dsub)));
    assert_eq!(via_discord["player_id"], g["player_id"]);
    // Someone else cannot link it.
    let other = s.register("linker");
    let (status, body) = s.http(
        "POST",
        "/api/v1/auth/link",
        Some(&other.access),
        Some(&link_body),
    );
    assert_eq!((status, code(&body)), (409, "auth.provider_already_linked"));
    assert_eq!(unlink(gtoken, "google"), (200, json!({"success": true})));
    let (status, body) = unlink(gtoken, "discord");
    assert_eq!((status, code(&body)), (422, "auth.last_auth_method"));
}

#[test]
fn the_registration_posture_holds_everywhere() {
    let p = provider();
    let config =
        json!({"google": {"issuer": p.issuer, "client_id": "game-client", "jwks_uri": p.jwks}})
            .to_string();
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(
        data.path(),
        game.path(),
        None,
        &[
            ("ASOBI_OIDC_PROVIDERS", config.clone()),
            ("ASOBI_REGISTRATION", "oauth_only".into()),
        ],
    );
    let (status, body) = s.post(
        "/api/v1/auth/register",
        json!({"username": unique("reg"), "password": "secret123"}),
    );
    assert_eq!(
        (status, code(&body)),
        (403, "auth.password_registration_disabled")
    );
    let sub = unique("posture-");
    assert_eq!(oauth(&s, "google", &p.token(p.claims(&sub))).0, 200);
    drop(s);

    let s = start(
        data.path(),
        game.path(),
        None,
        &[
            ("ASOBI_OIDC_PROVIDERS", config),
            ("ASOBI_REGISTRATION", "closed".into()),
        ],
    );
    let (status, body) = s.post(
        "/api/v1/auth/register",
        json!({"username": unique("reg"), "password": "secret123"}),
    );
    assert_eq!((status, code(&body)), (403, "auth.registration_closed"));
    let (status, body) = oauth(&s, "google", &p.token(p.claims(&unique("new-"))));
    assert_eq!((status, code(&body)), (403, "auth.registration_closed"));
    // Existing players still sign in.
    let (status, body) = oauth(&s, "google", &p.token(p.claims(&sub)));
    assert_eq!(status, 200, "{body}");
}

fn assert_429(status: u16, headers: &[(String, String)], body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(code(body), "rate_limited");
    let retry = body["retry_after"].as_u64().unwrap();
    assert!(retry >= 1);
    assert_eq!(
        body["error"]["details"]["retry_after"].as_u64(),
        Some(retry)
    );
    assert_eq!(
        header(headers, "retry-after"),
        Some(retry.to_string().as_str())
    );
    assert_eq!(header(headers, "x-ratelimit-remaining"), Some("0"));
}

#[test]
fn every_limiter_answers_asobis_429() {
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A game that offers guests, for the node-wide guest limiter.
    common::copy_example_game(game.path());
    let config = std::fs::read_to_string(game.path().join("config.lua")).unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        format!("guest_auth = true\n{config}"),
    )
    .unwrap();
    // asobi's defaults, except `api`, `join` and `guest_global`, given long windows and small
    // limits so the test neither races the clock nor sends thousands of requests.
    let s = start(
        data.path(),
        game.path(),
        None,
        &[
            (
                "ASOBI_RATE_LIMITS",
                "register=3/1000,auth=5/1000,erase=3/60000,iap=10/1000,api=20/60000,join=2/60000,guest_global=2/60000"
                    .into(),
            ),
            ("ASOBI_GUEST_VERIFIER_PEPPER", "a-pepper-of-at-least-32-bytes-for-tests".into()),
        ],
    );
    let burst = |n: usize, method: &str, path: &str, token: Option<&str>, body: Option<&str>| {
        (0..n)
            .map(|_| request(&s, method, path, token, body))
            .collect::<Vec<_>>()
    };
    // register: 3 per second per address.
    let mut rs = Vec::new();
    for i in 0..4 {
        let b =
            json!({"username": unique(&format!("rl{i}_")), "password": "secret123"}).to_string();
        rs.push(request(&s, "POST", "/api/v1/auth/register", None, Some(&b)));
    }
    let registered = rs[0].2.clone();
    assert!(
        rs.iter().take(3).all(|r| r.0 == 200),
        "{:?}",
        rs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let allowed = &rs[0].1;
    assert!(header(allowed, "x-ratelimit-remaining").is_some());
    assert!(header(allowed, "x-ratelimit-reset").is_some());
    let (st, h, b) = &rs[3];
    assert_429(*st, h, b);

    // auth: 5 per second per address, whatever the route under /auth.
    let login = json!({"username": "nobody", "password": "whatever1"}).to_string();
    let rs = burst(6, "POST", "/api/v1/auth/login", None, Some(&login));
    assert!(rs.iter().take(5).all(|r| r.0 == 401));
    assert_429(rs[5].0, &rs[5].1, &rs[5].2);

    // iap: 10 per second (unauthenticated here; the limiter counts before auth).
    let rs = burst(11, "POST", "/api/v1/iap/apple", None, Some("{}"));
    assert!(
        rs.iter().take(10).all(|r| r.0 == 401),
        "{:?}",
        rs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_429(rs[10].0, &rs[10].1, &rs[10].2);

    // api, keyed on the player for a bearer request: another player is not affected.
    let token = registered["access_token"].as_str().unwrap();
    let me = format!(
        "/api/v1/players/{}",
        registered["player_id"].as_str().unwrap()
    );
    let rs = burst(21, "GET", &me, Some(token), None);
    assert!(rs.iter().take(20).all(|r| r.0 == 200));
    assert_429(rs[20].0, &rs[20].1, &rs[20].2);
    assert!(rs[20].2["retry_after"].as_u64().unwrap() > 1);
    // erase: 3 per minute, its own bucket.
    let wrong = json!({"password": "not-the-password"}).to_string();
    let rs = burst(
        4,
        "POST",
        "/api/v1/players/me/erase",
        Some(token),
        Some(&wrong),
    );
    assert!(
        rs.iter().take(3).all(|r| r.0 == 403),
        "{:?}",
        rs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_429(rs[3].0, &rs[3].1, &rs[3].2);
    // join: per player, on the socket (asobi's `join_rate_limited`).
    let mut ws = s.ws_on(0);
    ws.connect(token);
    for i in 0..3 {
        ws.send(json!({"type": "match.join", "cid": format!("j{i}"), "payload": {"match_id": "no-such-match"}}));
        let e = ws.expect("error", WAIT, |_| true);
        let want = if i < 2 {
            "match.not_found"
        } else {
            "join_rate_limited"
        };
        assert_eq!(e["payload"]["error"]["code"], want, "{e}");
    }
    // guest_global: one bucket for every address. (/auth/guest also counts against this
    // address's `auth` bucket, spent above: let two windows pass.)
    std::thread::sleep(Duration::from_millis(2100));
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let guests: Vec<_> = (0..3)
        .map(|i| {
            let b = json!({"device_id": unique(&format!("dev{i}-")), "device_secret": secret})
                .to_string();
            request(&s, "POST", "/api/v1/auth/guest", None, Some(&b))
        })
        .collect();
    assert!(
        guests.iter().take(2).all(|g| g.0 == 200),
        "{:?}",
        guests.iter().map(|g| &g.2).collect::<Vec<_>>()
    );
    assert_eq!(
        (guests[2].0, code(&guests[2].2)),
        (429, "guest.rate_limited")
    );
    assert!(
        guests[2].2["error"]["details"]["retry_after"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Probes are never limited.
    assert!(burst(30, "GET", "/health", None, None)
        .iter()
        .all(|r| r.0 == 200));
}

fn guest_game(game: &Path) {
    common::copy_example_game(game);
    let config = std::fs::read_to_string(game.join("config.lua")).unwrap();
    std::fs::write(
        game.join("config.lua"),
        format!("guest_auth = true\n{config}"),
    )
    .unwrap();
}

fn new_guest(s: &Server) -> (u16, Value) {
    let secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    s.post(
        "/api/v1/auth/guest",
        json!({"device_id": unique("device-"), "device_secret": secret}),
    )
}

#[test]
fn guests_are_capped_and_follow_the_posture() {
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    guest_game(game.path());
    let pepper = (
        "ASOBI_GUEST_VERIFIER_PEPPER",
        "a-pepper-of-at-least-32-bytes-for-tests".to_owned(),
    );
    let s = start(
        data.path(),
        game.path(),
        None,
        &[pepper.clone(), ("ASOBI_GUEST_UNLINKED_CAP", "2".into())],
    );
    assert_eq!(new_guest(&s).0, 200);
    assert_eq!(new_guest(&s).0, 200);
    let (status, body) = new_guest(&s);
    assert_eq!((status, code(&body)), (503, "guest.capacity_reached"));
    drop(s);
    let s = start(
        data.path(),
        game.path(),
        None,
        &[pepper, ("ASOBI_REGISTRATION", "closed".into())],
    );
    let (status, body) = new_guest(&s);
    assert_eq!((status, code(&body)), (403, "auth.registration_closed"));
}

#[test]
fn idle_guests_are_reaped() {
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    guest_game(game.path());
    let s = start(
        data.path(),
        game.path(),
        None,
        &[
            (
                "ASOBI_GUEST_VERIFIER_PEPPER",
                "a-pepper-of-at-least-32-bytes-for-tests".into(),
            ),
            ("ASOBI_GUEST_REAP_AFTER", "1".into()),
        ],
    );
    let secret = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let device = unique("reap-");
    let guest = || {
        s.post(
            "/api/v1/auth/guest",
            json!({"device_id": device, "device_secret": secret}),
        )
    };
    let (status, first) = guest();
    assert_eq!((status, first["created"].as_bool()), (200, Some(true)));
    let token = first["access_token"].as_str().unwrap().to_owned();
    let id = first["player_id"].as_str().unwrap().to_owned();
    let me = format!("/api/v1/players/{id}");
    let mut ws = s.ws_on(0);
    ws.connect(&token);
    // Idle past the limit: the guest is deleted, its token and socket end.
    assert_eq!(
        ws.close_frame(Duration::from_secs(5)),
        Some((1008, "erased".to_owned()))
    );
    // The socket's shard heard first; every shard refuses the token within a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut status = s.http("GET", &me, Some(&token), None).0;
    while status != 401 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        status = s.http("GET", &me, Some(&token), None).0;
    }
    assert_eq!(status, 401);
    assert!(s.wait_log("guest reaper deleted", WAIT));
    // The same device now makes a new guest.
    let (status, again) = guest();
    assert_eq!((status, again["created"].as_bool()), (200, Some(true)));
    assert_ne!(again["player_id"], first["player_id"]);
}
