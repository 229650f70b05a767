//! Moving from asobi: a PostgreSQL database shaped like asobi's (its `players` and
//! `player_identities` tables as its migrations create them), filled here with a password
//! player whose hash is asobi's PBKDF2, a provider-only player and a guest; `asobi import`
//! copies them (twice, idempotently); the password player logs in with the old password and
//! its hash is rehashed to argon2id.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{pg_db, Opts, Server};
use serde_json::json;

/// asobi's tables, written from its migrations (kura types: uuid, string → varchar, jsonb,
/// utc_datetime → timestamp).
const ASOBI_SCHEMA: &str = "
CREATE TABLE players (
    id uuid PRIMARY KEY,
    username varchar(255) NOT NULL,
    display_name varchar(255),
    avatar_url varchar(255),
    hashed_password varchar(255),
    metadata jsonb DEFAULT '{}',
    banned_at timestamp(0),
    inserted_at timestamp(0) NOT NULL,
    updated_at timestamp(0) NOT NULL
);
CREATE TABLE player_identities (
    id uuid PRIMARY KEY,
    player_id uuid NOT NULL REFERENCES players (id),
    provider varchar(255) NOT NULL,
    provider_uid varchar(255) NOT NULL,
    provider_email varchar(255),
    provider_display_name varchar(255),
    provider_metadata jsonb DEFAULT '{}',
    inserted_at timestamp(0) NOT NULL,
    updated_at timestamp(0) NOT NULL
);";

const OLD: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SOCIAL: &str = "a1b2c3d4-0000-4000-8000-000000000002";
const GUEST: &str = "a1b2c3d4-0000-4000-8000-000000000003";

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A hash exactly as nova_auth writes it: `$pbkdf2-sha256$<iter>$<b64 salt>$<b64 key>`.
fn asobi_hash(password: &str) -> String {
    let salt = *b"sixteen-byte-slt";
    let mut key = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(100_000).unwrap();
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut key,
    );
    format!(
        "$pbkdf2-sha256$100000${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(key)
    )
}

fn fill_asobi(url: &str) {
    psql(url, ASOBI_SCHEMA);
    psql(
        url,
        &format!(
            "INSERT INTO players (id, username, display_name, hashed_password, metadata, inserted_at, updated_at) VALUES
               ('{OLD}', 'OldTimer', 'Old Timer', '{}', '{{\"level\": 7}}', '2026-01-02 03:04:05', '2026-02-03 04:05:06'),
               ('{SOCIAL}', 'google_abc', NULL, NULL, '{{}}', '2026-01-02 03:04:05', '2026-01-02 03:04:05'),
               ('{GUEST}', 'guest_xyz', NULL, NULL, '{{}}', '2026-01-02 03:04:05', '2026-01-02 03:04:05');
             INSERT INTO player_identities (id, player_id, provider, provider_uid, inserted_at, updated_at) VALUES
               (gen_random_uuid(), '{SOCIAL}', 'google', 'google-sub-1', now(), now()),
               (gen_random_uuid(), '{GUEST}', 'guest', 'device-1', now(), now());",
            asobi_hash("old-password")
        ),
    );
}

fn import(from: &str, target_env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_asobi"));
    cmd.args(["import", "--from", from])
        .env_remove("ASOBI_DATABASE_URL")
        .env_remove("ASOBI_DB_HOST");
    for (k, v) in target_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("asobi import");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn login(s: &Server, password: &str) -> u16 {
    s.post(
        "/api/v1/auth/login",
        json!({"username": "oldtimer", "password": password}),
    )
    .0
}

fn imported_players_log_in_and_are_rehashed(target: Option<String>) {
    let asobi = pg_db().expect("PostgreSQL for the asobi side");
    fill_asobi(&asobi.url);
    let (data, game) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env = vec![("ASOBI_DATA_DIR", data.path().display().to_string())];
    if let Some(url) = &target {
        env.push(("ASOBI_DATABASE_URL", url.clone()));
    }
    let first = import(&asobi.url, &env);
    assert!(
        first.contains("imported 2 player(s), 0 already here, 0 failed, 1 skipped"),
        "{first}"
    );
    assert!(
        first.contains(&format!("skipped {GUEST}: guest")),
        "{first}"
    );
    let again = import(&asobi.url, &env);
    assert!(
        again.contains("imported 0 player(s), 2 already here"),
        "{again}"
    );

    common::copy_example_game(game.path());
    let opts = Opts {
        database_url: target.clone(),
        ..Opts::default()
    };
    let s = Server::start(data.path(), game.path(), &opts);
    assert_eq!(login(&s, "wrong-password"), 401);
    let (status, body) = s.post(
        "/api/v1/auth/login",
        json!({"username": "oldtimer", "password": "old-password"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["player_id"], OLD, "the asobi id is kept");
    assert!(s.wait_log(
        "imported password rehashed to argon2id",
        Duration::from_secs(10)
    ));
    let (_, profile) = s.http(
        "GET",
        &format!("/api/v1/players/{OLD}"),
        body["access_token"].as_str(),
        None,
    );
    assert_eq!(profile["display_name"], "Old Timer");
    assert_eq!(profile["metadata"]["level"], 7);
    if let Some(url) = &target {
        let hash = psql(
            url,
            &format!("SELECT password_hash FROM player_credentials WHERE player_id = '{OLD}'"),
        );
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let social = psql(
            url,
            "SELECT player_id FROM player_identities WHERE provider = 'google' AND provider_uid = 'google-sub-1'",
        );
        assert_eq!(social, SOCIAL);
    }
    // The new hash still takes the old password; a second login needs no rehash.
    drop(s);
    let s = Server::start(data.path(), game.path(), &opts);
    assert_eq!(login(&s, "old-password"), 200);
}

#[test]
fn an_asobi_player_moves_to_postgres() {
    let target = pg_db().expect("PostgreSQL for the target");
    imported_players_log_in_and_are_rehashed(Some(target.url.clone()));
}

#[test]
fn an_asobi_player_moves_to_sqlite() {
    imported_players_log_in_and_are_rehashed(None);
}
