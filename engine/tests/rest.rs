//! REST flows against the real binary over real sockets, on SQLite and on PostgreSQL.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{copy_example_game, http_on, pg_db, read_response, Opts, Server};
use serde_json::json;

fn start(db: Option<String>, data: &std::path::Path, game: &std::path::Path) -> Server {
    Server::start(
        data,
        game,
        &Opts {
            database_url: db,
            ..Opts::default()
        },
    )
}

fn auth_flows(s: &Server) {
    // Register, then the duplicate (case-insensitive) is a conflict.
    let p = s.register("alice");
    assert!(uuid_v7(&p.id), "player ids are UUIDv7: {}", p.id);
    let (status, body) = s.post(
        "/api/v1/auth/register",
        json!({"username": p.username.to_uppercase(), "password": "secret123"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "auth.username_taken");

    // Login: right and wrong password, unknown user.
    let (status, body) = s.post(
        "/api/v1/auth/login",
        json!({"username": p.username, "password": "secret123"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["player_id"], p.id.as_str());
    assert_eq!(body["username"], p.username.as_str());
    for bad in [
        json!({"username": p.username, "password": "wrong-password"}),
        json!({"username": "nobody-here", "password": "secret123"}),
    ] {
        let (status, body) = s.post("/api/v1/auth/login", bad);
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "auth.invalid_credentials");
    }

    // Refresh rotates; reusing a spent token revokes the whole family (the new one too).
    let (status, r1) = s.post("/api/v1/auth/refresh", json!({"refresh_token": p.refresh}));
    assert_eq!(status, 200, "{r1}");
    let fresh = r1["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, p.refresh);
    let (status, me) = s.http(
        "GET",
        &format!("/api/v1/players/{}", p.id),
        r1["access_token"].as_str(),
        None,
    );
    assert_eq!(status, 200, "{me}");
    let (status, body) = s.post("/api/v1/auth/refresh", json!({"refresh_token": p.refresh}));
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = s.post("/api/v1/auth/refresh", json!({"refresh_token": fresh}));
    assert_eq!(status, 401, "reuse of a spent token must revoke its family");

    // Logout revokes the refresh token.
    let (_, login) = s.post(
        "/api/v1/auth/login",
        json!({"username": p.username, "password": "secret123"}),
    );
    let rt = login["refresh_token"].as_str().unwrap();
    let (status, body) = s.post("/api/v1/auth/logout", json!({"refresh_token": rt}));
    assert_eq!((status, body["success"].clone()), (200, json!(true)));
    let (status, _) = s.post("/api/v1/auth/refresh", json!({"refresh_token": rt}));
    assert_eq!(status, 401);

    // Profiles: read anyone's, write only your own.
    let other = s.register("bob");
    let (status, body) = s.http(
        "GET",
        &format!("/api/v1/players/{}", other.id),
        Some(&p.access),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["username"], other.username.as_str());
    let patch = json!({"display_name": "Alice A", "metadata": {"level": 3}}).to_string();
    let (status, body) = s.http(
        "PUT",
        &format!("/api/v1/players/{}", p.id),
        Some(&p.access),
        Some(&patch),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["display_name"], "Alice A");
    assert_eq!(body["metadata"]["level"], 3);
    let (status, body) = s.http(
        "PUT",
        &format!("/api/v1/players/{}", other.id),
        Some(&p.access),
        Some(&patch),
    );
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = s.http(
        "GET",
        "/api/v1/players/00000000-0000-7000-8000-000000000000",
        Some(&p.access),
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "player.not_found");

    // Erase: a password account confirms with its password; afterwards the account can no
    // longer log in, its profile is gone, and its token is dead (engine/tests/accounts.rs has
    // the rest).
    let (status, body) = s.http(
        "POST",
        "/api/v1/players/me/erase",
        Some(&other.access),
        None,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_field"))
    );
    let (status, body) = s.http(
        "POST",
        "/api/v1/players/me/erase",
        Some(&other.access),
        Some(&json!({"password": "secret123"}).to_string()),
    );
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (status, _) = s.post(
        "/api/v1/auth/login",
        json!({"username": other.username, "password": "secret123"}),
    );
    assert_eq!(status, 401);
    let (status, _) = s.http(
        "GET",
        &format!("/api/v1/players/{}", other.id),
        Some(&p.access),
        None,
    );
    assert_eq!(status, 404);
    let (status, body) = s.http(
        "PUT",
        "/api/v1/players/me",
        Some(&other.access),
        Some(&json!({"display_name": "ghost"}).to_string()),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");

    // Matches: history and live listings answer with the documented shapes.
    let (status, body) = s.http("GET", "/api/v1/matches?limit=5", Some(&p.access), None);
    assert_eq!(status, 200, "{body}");
    assert!(body["matches"].is_array());
    let (status, body) = s.http("GET", "/api/v1/matches/live", Some(&p.access), None);
    assert_eq!(status, 200);
    assert!(body["matches"].is_array());
}

fn uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes()[14] == b'7'
}

fn bad_inputs(s: &Server) {
    let p = s.register("carol");
    /// method, path, bearer, body, expected status, expected code
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/nope", None, None, 404, "not_found"),
        (
            "POST",
            "/api/v1/matchmaker",
            Some(p.access.as_str()),
            Some(r#"{"mode":"no_such_mode"}"#),
            400,
            "matchmaker.unknown_mode",
        ),
        ("GET", "/elsewhere", None, None, 404, "not_found"),
        (
            "DELETE",
            "/api/v1/auth/login",
            None,
            None,
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some("{not json"),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some("[1,2]"),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some(r#"{"username":"someone"}"#),
            400,
            "missing_field",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some(r#"{"username":5,"password":"secret123"}"#),
            400,
            "invalid_payload",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some(r#"{"username":"x","password":"secret123"}"#),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            None,
            Some(r#"{"username":"long-enough","password":"short"}"#),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            None,
            Some("{}"),
            400,
            "missing_field",
        ),
        (
            "GET",
            "/api/v1/players/abc",
            None,
            None,
            401,
            "unauthenticated",
        ),
        (
            "GET",
            "/api/v1/players/abc",
            Some("not-a-token"),
            None,
            401,
            "unauthenticated",
        ),
        (
            "POST",
            "/api/v1/players/me/erase",
            None,
            None,
            401,
            "unauthenticated",
        ),
        (
            "POST",
            "/api/v1/auth/guest",
            None,
            Some(r#"{"device_id":"d","device_secret":"x"}"#),
            403,
            "guest.disabled",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got, body_json) = s.http(method, path, token, body);
        assert_eq!(got, status, "{method} {path} {body:?} → {body_json}");
        assert_eq!(
            body_json["error"]["code"], code,
            "{method} {path} → {body_json}"
        );
        assert!(body_json["error"]["message"].is_string());
        assert!(body_json["error"]["details"].is_object());
    }
    // A PUT with non-object metadata is refused, and nothing changes.
    let (status, _) = s.http(
        "PUT",
        &format!("/api/v1/players/{}", p.id),
        Some(&p.access),
        Some(r#"{"metadata":[1]}"#),
    );
    assert_eq!(status, 400);
    // Like asobi, a PUT casts the profile keys and ignores any other.
    let (status, body) = s.http(
        "PUT",
        &format!("/api/v1/players/{}", p.id),
        Some(&p.access),
        Some(r#"{"display_name":"Al","level":99}"#),
    );
    assert_eq!(status, 200, "{body}");
    // A broken rule is 422 validation_failed naming the field, at the top level too.
    let (status, body) = s.http(
        "PUT",
        &format!("/api/v1/players/{}", p.id),
        Some(&p.access),
        Some(&json!({"display_name": "x".repeat(65)}).to_string()),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["display_name"].is_array(), "{body}");
    assert!(
        body["error"]["details"]["errors"]["display_name"].is_array(),
        "{body}"
    );
    // Register: the password rule is named, with the setting that changes it.
    let (status, body) = s.post(
        "/api/v1/auth/register",
        json!({"username": "short-pw", "password": "hunter2"}),
    );
    assert_eq!(status, 422, "{body}");
    let why = body["fields"]["password"][0].as_str().unwrap_or_default();
    assert!(
        why.contains("at least 8") && why.contains("ASOBI_PASSWORD_MIN_LENGTH"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["fields"], body["fields"]);

    // Body over 1 MiB: 413 payload_too_large, without the server reading it.
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.write_all(b"POST /api/v1/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut conn);
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");

    // Garbage instead of HTTP: 400, connection closed, server fine.
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.write_all(b"\x00\x01\x02 garbage\r\n\r\n").unwrap();
    let (status, _) = read_response(&mut conn);
    assert_eq!(status, 400);

    // Keep-alive: several requests on one connection, including a chunked body.
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    for _ in 0..3 {
        let (status, _) = http_on(&mut conn, "GET", "/api/v1/health", None, None, true);
        assert_eq!(status, 200);
    }
    let body = format!(r#"{{"username":"{}","password":"secret123"}}"#, p.username);
    let chunked = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        body
    );
    conn.write_all(chunked.as_bytes()).unwrap();
    let (status, resp) = read_response(&mut conn);
    assert_eq!(status, 200, "{resp}");

    let (status, health) = s.http("GET", "/api/v1/health", None, None);
    assert_eq!(status, 200);
    assert_eq!(health["storage"]["reachable"], true);
}

#[test]
fn rest_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_game(&dir.path().join("game"));
    let s = start(None, &dir.path().join("data"), &dir.path().join("game"));
    let (_, health) = s.http("GET", "/api/v1/health", None, None);
    assert_eq!(health["storage"]["backend"], "sqlite");
    auth_flows(&s);
    bad_inputs(&s);
    assert!(s.stop().success(), "SIGTERM must exit 0");
}

#[test]
fn rest_on_postgres() {
    let Some(db) = pg_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_example_game(&dir.path().join("game"));
    let s = start(
        Some(db.url.clone()),
        &dir.path().join("data"),
        &dir.path().join("game"),
    );
    let (_, health) = s.http("GET", "/api/v1/health", None, None);
    assert_eq!(health["storage"]["backend"], "postgresql");
    auth_flows(&s);
    bad_inputs(&s);
    assert!(s.stop().success());
}

fn survives_restart(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    copy_example_game(&dir.path().join("game"));
    let data = dir.path().join("data");
    let s = start(db.clone(), &data, &dir.path().join("game"));
    let p = s.register("dave");
    assert!(s.stop().success());
    let s = start(db, &data, &dir.path().join("game"));
    let (status, body) = s.post(
        "/api/v1/auth/login",
        json!({"username": p.username, "password": "secret123"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["player_id"], p.id.as_str());
    // Tokens signed before the restart still verify (the secret persisted in the data dir).
    let (status, _) = s.http(
        "GET",
        &format!("/api/v1/players/{}", p.id),
        Some(&p.access),
        None,
    );
    assert_eq!(status, 200);
    assert!(s.stop().success());
}

#[test]
fn accounts_survive_restart_on_sqlite() {
    survives_restart(None);
}

#[test]
fn accounts_survive_restart_on_postgres() {
    let Some(db) = pg_db() else { return };
    survives_restart(Some(db.url.clone()));
}

#[test]
fn two_shards_both_accept_connections() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_game(&dir.path().join("game"));
    let s = Server::start(
        &dir.path().join("data"),
        &dir.path().join("game"),
        &Opts {
            shards: Some(2),
            ..Opts::default()
        },
    );
    // Hold keep-alive connections open; SO_REUSEPORT spreads them over both shards.
    let mut held = Vec::new();
    let mut served = [0usize; 2];
    for _ in 0..40 {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        let (_, h) = http_on(&mut c, "GET", "/api/v1/health", None, None, true);
        served[h["served_by"].as_u64().unwrap() as usize] += 1;
        held.push(c);
    }
    assert!(
        served[0] > 0 && served[1] > 0,
        "both shards must accept: {served:?}"
    );
    let (_, health) = s.http("GET", "/api/v1/health", None, None);
    let shards = health["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for sh in shards {
        assert!(sh["connections"].as_u64().unwrap() >= 1, "{health}");
    }
    // Auth works whichever shard serves it.
    let p = s.register("erin");
    let (status, _) = s.post(
        "/api/v1/auth/login",
        json!({"username": p.username, "password": "secret123"}),
    );
    assert_eq!(status, 200);
    drop(held);
    std::thread::sleep(Duration::from_millis(50));
    assert!(s.stop().success());
}

#[test]
fn migrate_and_check_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
        .args(["migrate"])
        .env("ASOBI_DATA_DIR", dir.path())
        .env_remove("ASOBI_DB_HOST")
        .env_remove("ASOBI_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
        .args(["migrate"])
        .env("ASOBI_DATA_DIR", dir.path())
        .env_remove("ASOBI_DB_HOST")
        .env_remove("ASOBI_DATABASE_URL")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
        .args([
            "check",
            common::workspace_root()
                .join("examples/arena")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("match.lua"),
        "match_size = 2\nfunction tick(state)\n  return state +\nend\n",
    )
    .unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
        .args(["check", broken.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("match.lua:"),
        "check must report file:line, got {text}"
    );
}
