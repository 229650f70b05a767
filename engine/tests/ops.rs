//! The ops plane against the real binary: `/metrics` parses as Prometheus text and its counters
//! move under load; every ops route's auth (no secret → 403, wrong → 403, right → 200); the
//! operator actions (kick, ban, end a match, grant with an operator-named ledger reason); JSON
//! logs; and a drain under load that loses no match record — on SQLite and PostgreSQL.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{copy_example_game, own_pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "test-ops-secret-0123456789";

/// One request with arbitrary headers; returns status, response headers, body.
pub fn request(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, String) {
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn ops(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {SECRET}");
    let (status, _, text) = request(
        s,
        method,
        path,
        &[("Authorization", &auth), ("x-asobi-operator", "tester")],
        body.as_ref(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn start(dir: &Path, db: Option<String>, env: &[(&str, &str)]) -> Server {
    let game = dir.join("game");
    if !game.exists() {
        copy_example_game(&game);
        std::fs::write(
            game.join("economy.json"),
            r#"{"currencies": ["gold"], "items": [{"id": "item-sword", "slug": "sword", "name": "Sword", "category": "weapon"}],
                "listings": [{"id": "list-sword", "item": "sword", "currency": "gold", "price": 5}]}"#,
        )
        .unwrap();
        // One tournament running now, for the tournaments view.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        std::fs::write(
            game.join("tournaments.json"),
            json!({"tournaments": [
                {"id": "cup", "name": "Ops Cup", "leaderboard_id": "cup-board",
                 "rewards": [{"rank": 1, "currency": "gold", "amount": 50}],
                 "start_at": now - 60_000, "end_at": now + 3_600_000, "metadata": {"secret": 1}}
            ]})
            .to_string(),
        )
        .unwrap();
    }
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.push((
        "ASOBI_LEADERBOARD_CLIENT_SUBMIT".to_owned(),
        "cup-board".to_owned(),
    ));
    Server::start(
        &dir.join("data"),
        &game,
        &Opts {
            shards: Some(2),
            database_url: db,
            env,
        },
    )
}

/// Two connected players matched into a duel; returns their sockets and the match id.
fn duel(s: &Server) -> (Ws, Ws, String, common::Player, common::Player) {
    let a = s.register("opa");
    let b = s.register("opb");
    let (mut wa, mut wb) = (s.ws_on(0), s.ws_on(1));
    wa.connect(&a.access);
    wb.connect(&b.access);
    wa.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    wb.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    let m = wa.expect("match.matched", WAIT, |_| true);
    wb.expect("match.matched", WAIT, |_| true);
    let id = m["payload"]["match_id"].as_str().unwrap().to_owned();
    (wa, wb, id, a, b)
}

/// Every sample of a scrape, summed over shards, by metric name (with `_total` as sent).
fn scrape(s: &Server) -> std::collections::HashMap<String, f64> {
    let (status, headers, text) = request(s, "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{text}");
    let ct = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed =
        prometheus_parse::Scrape::parse(lines).expect("a Prometheus text parser reads /metrics");
    assert!(!parsed.samples.is_empty());
    let mut sums = std::collections::HashMap::new();
    for sample in &parsed.samples {
        let v = match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
        assert!(
            sample.labels.get("shard").is_some() || sample.metric == "asobi_draining",
            "{} has no shard label",
            sample.metric
        );
        *sums.entry(sample.metric.clone()).or_insert(0.0) += v;
    }
    sums
}

fn metrics_move_under_load(s: &Server) {
    let before = scrape(s);
    for name in [
        "asobi_ws_messages_in_total",
        "asobi_ws_messages_out_total",
        "asobi_matches_started_total",
        "asobi_ticks_total",
        "asobi_connections",
        "asobi_tick_lateness_seconds",
        "asobi_lua_callback_seconds",
        "asobi_storage_queue_depth",
        "asobi_mesh_backlog",
        "asobi_slow_consumer_closes_total",
        "asobi_hot_reloads_total",
    ] {
        assert!(
            before.contains_key(name),
            "{name} missing from /metrics: {before:?}"
        );
    }
    let (mut wa, _wb, _id, _, _) = duel(s);
    for i in 0..20 {
        wa.send(json!({"type": "match.input", "payload": {"dx": 1, "n": i}}));
    }
    wa.expect("match.state", WAIT, |_| true);
    std::thread::sleep(Duration::from_millis(400));
    let after = scrape(s);
    for name in [
        "asobi_ws_messages_in_total",
        "asobi_ws_messages_out_total",
        "asobi_ws_bytes_in_total",
        "asobi_http_requests_total",
        "asobi_matches_started_total",
        "asobi_ticks_total",
        "asobi_tick_lateness_seconds",
        "asobi_lua_callback_seconds",
    ] {
        assert!(
            after[name] > before[name],
            "{name} did not move: {} -> {}",
            before[name],
            after[name]
        );
    }
    assert!(after["asobi_ws_messages_in_total"] - before["asobi_ws_messages_in_total"] >= 20.0);
    assert!(after["asobi_matches"] >= 1.0);
}

/// Every ops route with a request that succeeds given the right credential.
fn routes(player: &str, match_id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", "/api/v1/ops/stats".into(), None),
        ("GET", "/api/v1/ops/features".into(), None),
        (
            "GET",
            "/api/v1/ops/players?limit=5&sort=username&order=DESC".into(),
            None,
        ),
        ("GET", format!("/api/v1/ops/players/{player}"), None),
        ("GET", format!("/api/v1/ops/players/{player}/export"), None),
        (
            "POST",
            "/api/v1/ops/players/guests/purge".into(),
            Some(json!({"inactive_for_seconds": 0, "dry_run": true})),
        ),
        (
            "POST",
            format!("/api/v1/ops/players/{player}/kick"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/ops/players/{player}/wallets/grant"),
            Some(json!({"currency": "gold", "amount": 5, "reason": "auth-test"})),
        ),
        ("GET", "/api/v1/ops/matches".into(), None),
        ("GET", "/api/v1/ops/matches/live".into(), None),
        ("GET", "/api/v1/ops/matchmaker".into(), None),
        ("GET", "/api/v1/ops/leaderboards".into(), None),
        ("GET", "/api/v1/ops/leaderboards/arena/entries".into(), None),
        ("GET", "/api/v1/ops/economy/items".into(), None),
        ("GET", "/api/v1/ops/economy/items/item-sword".into(), None),
        ("GET", "/api/v1/ops/economy/listings".into(), None),
        (
            "GET",
            "/api/v1/ops/economy/listings/list-sword".into(),
            None,
        ),
        ("GET", "/api/v1/ops/shards".into(), None),
        ("GET", "/api/v1/ops/reloads".into(), None),
        (
            "POST",
            format!("/api/v1/ops/players/{player}/ban"),
            Some(json!({"reason": "auth-test"})),
        ),
        ("DELETE", format!("/api/v1/ops/players/{player}/ban"), None),
        (
            "POST",
            format!("/api/v1/ops/matches/{match_id}/end"),
            Some(json!({})),
        ),
        ("GET", format!("/api/v1/ops/matches/{match_id}"), None),
        ("GET", "/api/v1/ops/chat/channels".into(), None),
        (
            "GET",
            "/api/v1/ops/chat/channels/global:lobby/messages".into(),
            None,
        ),
        ("GET", "/api/v1/ops/notifications".into(), None),
        (
            "POST",
            format!("/api/v1/ops/players/{player}/notifications"),
            Some(json!({"type": "ops", "subject": "auth-test"})),
        ),
        ("GET", "/api/v1/ops/tournaments".into(), None),
        ("GET", "/api/v1/ops/tournaments/cup".into(), None),
        ("GET", "/api/v1/ops/tournaments/cup/entries".into(), None),
    ]
}

fn every_route_needs_the_secret(s: &Server, configured: bool) {
    let p = s.register("authp");
    let fake_match = "00000000-0000-7000-8000-000000000000";
    for (method, path, body) in routes(&p.id, fake_match) {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong-secret".to_owned())],
            // A player's own token is not an ops credential.
            vec![("Authorization", format!("Bearer {}", p.access))],
        ] {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, text) = request(s, method, &path, &h, body.as_ref());
            assert_eq!(status, 403, "{method} {path} with {headers:?}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], "forbidden");
        }
        if !configured {
            let auth = format!("Bearer {SECRET}");
            let (status, _, _) =
                request(s, method, &path, &[("Authorization", &auth)], body.as_ref());
            assert_eq!(
                status, 403,
                "{method} {path}: no secret configured must refuse everything"
            );
        }
    }
}

#[test]
fn no_secret_means_every_ops_route_answers_403() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None, &[]);
    every_route_needs_the_secret(&s, false);
    // The console is off without a credential even when asked for.
    let (status, _, text) = request(&s, "GET", "/console", &[], None);
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("console.not_found"));
    s.stop();
}

fn ops_end_to_end(s: &Server) {
    every_route_needs_the_secret(s, true);
    ops_views(s);
    metrics_move_under_load(s);

    // With the right secret every route answers 200, on real data.
    let (mut wa, _wb, match_id, a, b) = duel(s);
    for (method, path, body) in routes(&a.id, &match_id) {
        if path.ends_with(&format!("/matches/{match_id}")) {
            // The record exists once the ended match is written.
            let deadline = Instant::now() + WAIT;
            while ops(s, "GET", &path, None).0 != 200 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let (status, v) = ops(s, method, &path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
    }
    // The kick above closed a's socket with the kick reason.
    let (code, reason) = wa.close_frame(WAIT).expect("kicked socket closes");
    assert_eq!((code, reason.as_str()), (4000, "kicked"));

    // Lists: asobi's envelope, paging and sort errors.
    let (_, list) = ops(
        s,
        "GET",
        "/api/v1/ops/players?limit=1&page=2&sort=inserted_at",
        None,
    );
    assert_eq!(list["page"]["limit"], 1);
    assert_eq!(list["page"]["offset"], 1);
    assert!(list["page"]["total"].as_u64().unwrap() >= 2);
    let (status, bad) = ops(s, "GET", "/api/v1/ops/players?sort=password", None);
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("ops.unknown_sort_field"))
    );
    let (status, bad) = ops(s, "GET", "/api/v1/ops/players?order=sideways", None);
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("ops.unknown_sort_order"))
    );
    let (status, bad) = ops(s, "GET", "/api/v1/ops/players/not-a-uuid", None);
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("ops.invalid_id"))
    );
    let (_, found) = ops(
        s,
        "GET",
        &format!("/api/v1/ops/players?q={}", &b.username[..6]),
        None,
    );
    assert!(found["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == b.id.as_str()));

    // The grant's ledger row names the operator; the grant moved the balance once.
    // The ban in the route list revoked a's tokens for good; the unban lets them sign in again.
    let (status, login) = s.post(
        "/api/v1/auth/login",
        json!({"username": a.username, "password": "secret123"}),
    );
    assert_eq!(status, 200, "{login}");
    let a = common::Player {
        access: login["access_token"].as_str().unwrap().to_owned(),
        ..a
    };
    let (_, me) = s.http("GET", "/api/v1/wallets/gold/history", Some(&a.access), None);
    let reason = me.to_string();
    assert!(reason.contains("ops:tester:auth-test"), "{me}");
    let (status, grant) = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/wallets/grant", a.id),
        Some(json!({"currency": "gold", "amount": 7, "idempotency_key": "k1"})),
    );
    assert_eq!(status, 200, "{grant}");
    let again = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/wallets/grant", a.id),
        Some(json!({"currency": "gold", "amount": 7, "idempotency_key": "k1"})),
    );
    assert_eq!(
        again.1["data"]["wallet"]["balance"], grant["data"]["wallet"]["balance"],
        "a retried grant is not doubled"
    );
    let (status, bad) = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/wallets/grant", a.id),
        Some(json!({"currency": "gold", "amount": -3})),
    );
    assert_eq!(status, 400, "{bad}");

    // Ban: the player's token stops working on REST and WebSocket until unbanned.
    let (status, _) = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/ban", b.id),
        Some(json!({"reason": "cheating"})),
    );
    assert_eq!(status, 200);
    let (status, _) = s.http("GET", "/api/v1/wallets", Some(&b.access), None);
    assert_eq!(status, 401);
    let (mut w, _) = s.ws();
    w.send(json!({"type": "session.connect", "payload": {"token": b.access}}));
    let refused = w.expect("error", WAIT, |_| true);
    assert_eq!(refused["payload"]["error"]["code"], "unauthenticated");
    let (_, row) = ops(s, "GET", &format!("/api/v1/ops/players/{}", b.id), None);
    assert_eq!(row["data"]["banned"], true);
    ops(
        s,
        "DELETE",
        &format!("/api/v1/ops/players/{}/ban", b.id),
        None,
    );
    // The ban revoked the tokens it found; after the unban the player signs in again.
    let (status, _) = s.http("GET", "/api/v1/wallets", Some(&b.access), None);
    assert_eq!(status, 401);
    let (status, login) = s.post(
        "/api/v1/auth/login",
        json!({"username": b.username, "password": "secret123"}),
    );
    assert_eq!(status, 200, "{login}");
    let fresh = login["access_token"].as_str().unwrap();
    let (status, _) = s.http("GET", "/api/v1/wallets", Some(fresh), None);
    assert_eq!(status, 200);

    // Erasure needs the username echoed.
    let path = format!("/api/v1/ops/players/{}/erase", b.id);
    let (status, e) = ops(s, "POST", &path, Some(json!({})));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("ops.confirmation_required"))
    );
    let (status, e) = ops(s, "POST", &path, Some(json!({"username": "someone-else"})));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("ops.confirmation_mismatch"))
    );
    let (status, e) = ops(s, "POST", &path, Some(json!({"username": b.username})));
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["data"]["erased"], true);
    let (status, _) = ops(s, "GET", &format!("/api/v1/ops/players/{}", b.id), None);
    assert_eq!(status, 404);

    // The audit trail holds the actions, with the operator's label.
    let (_, export) = ops(
        s,
        "GET",
        &format!("/api/v1/ops/players/{}/export", a.id),
        None,
    );
    let actions: Vec<&str> = export["data"]["ops_audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "tester")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["player.kick", "wallet.grant", "player.ban", "player.unban"] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Polls an ops list until `pred` holds on its body.
fn wait_list(s: &Server, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) = ops(s, "GET", path, None);
        assert_eq!(status, 200, "{path}: {v}");
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never showed it: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The chat, notifications and tournaments views and the operator's notification, on real data.
fn ops_views(s: &Server) {
    let c = s.register("opviews");
    let d = s.register("opviews");
    let mut ws = s.ws_on(1);
    ws.connect(&c.access);

    // Chat: the live channel with its members, then its persisted history.
    ws.send(json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": "global:ops-room"}}));
    ws.expect("chat.joined", WAIT, |v| v["cid"] == "j");
    ws.send(json!({"type": "chat.send", "payload": {"channel_id": "global:ops-room", "content": "Hello Moderators"}}));
    ws.expect("chat.message", WAIT, |_| true);
    let list = wait_list(s, "/api/v1/ops/chat/channels?q=OPS-ROOM", |v| {
        v["page"]["total"] == 1
    });
    assert_eq!(
        list["data"][0],
        json!({"channel_id": "global:ops-room", "members": 1})
    );
    let history = wait_list(
        s,
        "/api/v1/ops/chat/channels/global:ops-room/messages",
        |v| v["page"]["total"] == 1,
    );
    let m = &history["data"][0];
    assert_eq!(m["content"], "Hello Moderators");
    assert_eq!(m["sender_id"], c.id.as_str());
    assert_eq!(m["channel_type"], "global");
    assert!(m.get("metadata").is_none());
    let path = format!(
        "/api/v1/ops/chat/channels/global:ops-room/messages?sender_id={}&q=moderators",
        c.id
    );
    assert_eq!(ops(s, "GET", &path, None).1["page"]["total"], 1);
    let path = format!(
        "/api/v1/ops/chat/channels/global:ops-room/messages?sender_id={}",
        d.id
    );
    assert_eq!(ops(s, "GET", &path, None).1["page"]["total"], 0);
    let (status, v) = ops(
        s,
        "GET",
        "/api/v1/ops/chat/channels/global:ops-room/messages?sender_id=nope",
        None,
    );
    assert_eq!((status, code(&v)), (400, "ops.invalid_filter"), "{v}");
    let (status, v) = ops(s, "GET", "/api/v1/ops/chat/channels?sort=content", None);
    assert_eq!((status, code(&v)), (400, "ops.unknown_sort_field"), "{v}");

    // An operator's notification: stored, pushed live as `notification.new`, audited.
    let (status, sent) = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/notifications", c.id),
        Some(
            json!({"type": "maintenance", "subject": "Restart at noon", "content": {"at": "12:00"}}),
        ),
    );
    assert_eq!(status, 200, "{sent}");
    let pushed = ws.expect("notification.new", WAIT, |v| {
        v["payload"]["subject"] == "Restart at noon"
    });
    assert_eq!(pushed["payload"]["id"], sent["data"]["id"]);
    assert_eq!(pushed["payload"]["type"], "maintenance");
    assert_eq!(pushed["payload"]["content"], json!({"at": "12:00"}));
    // The player reads it back through the public route.
    let (status, mine) = s.http("GET", "/api/v1/notifications", Some(&c.access), None);
    assert_eq!(status, 200, "{mine}");
    assert!(mine.to_string().contains("Restart at noon"), "{mine}");
    // The send history, filtered and searched.
    let (_, list) = ops(
        s,
        "GET",
        &format!(
            "/api/v1/ops/notifications?player_id={}&type=maintenance",
            c.id
        ),
        None,
    );
    assert_eq!(list["page"]["total"], 1, "{list}");
    assert_eq!(list["data"][0]["subject"], "Restart at noon");
    assert_eq!(list["data"][0]["read"], false);
    let (_, list) = ops(
        s,
        "GET",
        "/api/v1/ops/notifications?q=RESTART%20AT&read=false&limit=1",
        None,
    );
    assert!(list["page"]["total"].as_u64().unwrap() >= 1, "{list}");
    assert_eq!(list["page"]["limit"], 1);
    let (status, v) = ops(s, "GET", "/api/v1/ops/notifications?read=maybe", None);
    assert_eq!((status, code(&v)), (400, "ops.invalid_filter"), "{v}");
    // Bad sends: no subject, not a uuid, nobody.
    let (status, v) = ops(
        s,
        "POST",
        &format!("/api/v1/ops/players/{}/notifications", c.id),
        Some(json!({"type": "x"})),
    );
    assert_eq!((status, code(&v)), (400, "invalid_payload"), "{v}");
    assert_eq!(v["error"]["details"]["field"], "subject");
    let (status, v) = ops(
        s,
        "POST",
        "/api/v1/ops/players/not-a-uuid/notifications",
        Some(json!({"subject": "x"})),
    );
    assert_eq!((status, code(&v)), (400, "ops.invalid_id"), "{v}");
    let (status, v) = ops(
        s,
        "POST",
        "/api/v1/ops/players/00000000-0000-7000-8000-000000000000/notifications",
        Some(json!({"subject": "x"})),
    );
    assert_eq!((status, code(&v)), (404, "ops.not_found"), "{v}");
    let (_, export) = ops(
        s,
        "GET",
        &format!("/api/v1/ops/players/{}/export", c.id),
        None,
    );
    let audited = export["data"]["ops_audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "notification.send" && e["actor"] == "tester");
    assert!(audited, "the send is audited: {export}");
    let refused = export["data"]["ops_audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "notification.send" && e["outcome"] == "error");
    assert!(refused, "the refused send is audited too: {export}");

    // Tournaments: the list (running, its window kept by a shard), one, and the standings.
    let list = wait_list(s, "/api/v1/ops/tournaments?status=active", |v| {
        v["data"][0]["live"] == true
    });
    let t = &list["data"][0];
    assert_eq!(t["id"], "cup");
    assert_eq!(t["name"], "Ops Cup");
    assert!(t.get("metadata").is_none(), "metadata does not leave: {t}");
    assert_eq!(t["rewards"][0]["amount"], 50);
    let (_, none) = ops(s, "GET", "/api/v1/ops/tournaments?status=finished", None);
    assert_eq!(none["page"]["total"], 0);
    let (_, found) = ops(
        s,
        "GET",
        "/api/v1/ops/tournaments?q=ops%20cup&leaderboard_id=cup-board",
        None,
    );
    assert_eq!(found["page"]["total"], 1);
    let (status, v) = ops(s, "GET", "/api/v1/ops/tournaments?sort=metadata", None);
    assert_eq!((status, code(&v)), (400, "ops.unknown_sort_field"), "{v}");
    let (status, one) = ops(s, "GET", "/api/v1/ops/tournaments/cup", None);
    assert_eq!((status, one["data"]["id"].as_str()), (200, Some("cup")));
    let (status, v) = ops(s, "GET", "/api/v1/ops/tournaments/nope", None);
    assert_eq!((status, code(&v)), (404, "ops.not_found"), "{v}");
    for p in [&c, &d] {
        let (status, body) = s.http(
            "POST",
            "/api/v1/tournaments/cup/join",
            Some(&p.access),
            Some("{}"),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = s.http(
        "POST",
        "/api/v1/leaderboards/cup-board",
        Some(&d.access),
        Some(&json!({"score": 42}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let entries = wait_list(s, "/api/v1/ops/tournaments/cup/entries", |v| {
        v["data"][0]["score"] == 42
    });
    assert_eq!(entries["page"]["total"], 2);
    assert_eq!(entries["data"][0]["player_id"], d.id.as_str());
    assert_eq!(entries["data"][0]["rank"], 1);
    assert_eq!(entries["data"][1]["player_id"], c.id.as_str());
    assert_eq!(entries["data"][1]["rank"], 2);
    assert_eq!(entries["data"][1]["score"], Value::Null);
}

#[test]
fn ops_plane_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None, &[("ASOBI_OPS_SECRET", SECRET)]);
    ops_end_to_end(&s);
    assert!(s.stop().success());
}

#[test]
fn ops_plane_on_postgres() {
    let Some(db) = own_pg_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        Some(db.url.clone()),
        &[("ASOBI_OPS_SECRET", SECRET)],
    );
    ops_end_to_end(&s);
    assert!(s.stop().success());
}

#[test]
fn the_secret_file_beats_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops_secret.txt");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let s = start(
        dir.path(),
        None,
        &[
            ("ASOBI_OPS_SECRET", "the-variable"),
            ("ASOBI_OPS_SECRET_FILE", file.to_str().unwrap()),
        ],
    );
    assert_eq!(ops(&s, "GET", "/api/v1/ops/stats", None).0, 200);
    let (status, _, _) = request(
        &s,
        "GET",
        "/api/v1/ops/stats",
        &[("Authorization", "Bearer the-variable")],
        None,
    );
    assert_eq!(status, 403);
    s.stop();
}

#[test]
fn json_logs_are_one_object_per_line_with_event_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None, &[("ASOBI_LOG_FORMAT", "json")]);
    let mut events = Vec::new();
    for line in &s.startup {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if let Some(e) = v["event"].as_str() {
            events.push(e.to_owned());
        }
    }
    assert!(events.iter().any(|e| e == "server_started"), "{events:?}");
    s.stop();
}

fn drain_under_load(dir: &Path, db: Option<String>) {
    let s = start(
        dir,
        db.clone(),
        &[
            ("ASOBI_OPS_SECRET", SECRET),
            ("ASOBI_DRAIN_TIMEOUT_SECS", "3"),
        ],
    );
    const MATCHES: usize = 6;
    let mut sockets = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..MATCHES {
        let (wa, wb, id, _, _) = duel(&s);
        sockets.push((wa, wb));
        ids.push(id);
    }
    for (wa, wb) in &mut sockets {
        for i in 0..5 {
            wa.send(json!({"type": "match.input", "payload": {"dx": 1, "n": i}}));
            wb.send(json!({"type": "match.input", "payload": {"dy": 1, "n": i}}));
        }
    }
    let pid = s.pid();
    assert_eq!(request(&s, "GET", "/ready", &[], None).0, 200);
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    // During the drain: not ready, and no new match is placed.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut saw_503 = false;
    while Instant::now() < deadline {
        let (status, _, body) = request(&s, "GET", "/ready", &[], None);
        if status == 503 {
            assert!(body.contains("not_ready"));
            saw_503 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_503, "/ready did not turn 503 on SIGTERM");
    let (status, live) = ops(&s, "GET", "/api/v1/ops/matches/live", None);
    assert_eq!(status, 200);
    assert_eq!(
        live["page"]["total"], MATCHES as u64,
        "running matches keep running during the drain"
    );
    // Sessions are closed with a reason once the deadline ends the matches.
    let (code, reason) = sockets[0]
        .0
        .close_frame(Duration::from_secs(15))
        .expect("close frame");
    assert_eq!((code, reason.as_str()), (1001, "server_shutting_down"));
    assert!(s.wait_exit(Duration::from_secs(30)).success());

    // Every match has its record after the restart.
    let s = start(dir, db, &[("ASOBI_OPS_SECRET", SECRET)]);
    for id in &ids {
        let (status, rec) = ops(&s, "GET", &format!("/api/v1/ops/matches/{id}"), None);
        assert_eq!(
            status, 200,
            "match {id} has no record after the drain: {rec}"
        );
    }
    let (_, list) = ops(&s, "GET", "/api/v1/ops/matches?limit=200", None);
    assert_eq!(list["page"]["total"], MATCHES as u64);
    s.stop();
}

#[test]
fn drain_loses_no_match_record_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    drain_under_load(dir.path(), None);
}

#[test]
fn drain_loses_no_match_record_on_postgres() {
    let Some(db) = own_pg_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    drain_under_load(dir.path(), Some(db.url.clone()));
}
