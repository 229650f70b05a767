//! Lua RPCs over real sockets: `rpc.call` on the WebSocket and `POST /api/v1/rpc/:method`,
//! asobi's validation codes, a game's declared codes, a handler that reads storage through
//! `game.storage.*`, a handler that loops forever (aborted; the shard keeps serving), and an
//! RPC edited while the server runs (answers with the new code).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

const MATCH: &str = r#"
match_size = 1
function init(config) return {} end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
function get_state(p, state) return {} end
"#;

fn rpc_lua(greeting: &str) -> String {
    format!(
        r#"
codes = {{
  ["quests.already_claimed"] = {{ status = 409, message = "This quest was already claimed." }},
}}
rpc = {{}}
rpc["echo.hello"] = function(params, ctx)
  return {{ greeting = "{greeting}", name = params.name, player = ctx.player_id, transport = ctx.transport }}
end
rpc["vault.level"] = function(params, ctx)
  local w = game.storage.player_set(ctx.player_id, "progress", "level", params.level)
  if w.error then return nil, "quests.already_claimed" end
  local r = game.storage.player_get(ctx.player_id, "progress", "level")
  return {{ level = r.ok, version = w.ok.version }}
end
rpc["quests.claim"] = function(params, ctx)
  return nil, "quests.already_claimed", {{ quest = params.quest }}
end
rpc["daily.reward"] = function(params, ctx)
  local g = game.economy.grant(ctx.player_id, "gold", 10, "daily", "daily:" .. params.day)
  if g.error then return nil, "quests.already_claimed" end
  game.leaderboard.submit("daily", ctx.player_id, params.score)
  local r = game.leaderboard.rank("daily", ctx.player_id)
  return {{ balance = g.ok.balance, rank = r.ok }}
end
rpc["inbox.ping"] = function(params, ctx)
  local r = game.notify(ctx.player_id, "system", "ping", {{ n = params.n }})
  if r.error then return nil, "quests.already_claimed" end
  return {{ sent = true }}
end
rpc["bad.code"] = function(params, ctx) return nil, "made.up" end
rpc["bad.result"] = function(params, ctx) return 42 end
rpc["loop.forever"] = function(params, ctx) while true do end end
"#
    )
}

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    std::fs::write(
        game.join("config.lua"),
        "return { plain = \"plain.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("plain.lua"), MATCH).unwrap();
    std::fs::write(game.join("rpc.lua"), rpc_lua("hi")).unwrap();
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        ..Opts::default()
    };
    Server::start(data, game, &opts)
}

/// The next frame `pred` accepts, skipping others (heartbeats, pushes).
fn expect_any(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = ws.recv(left).expect("a reply before the deadline");
        if pred(&frame) {
            return frame;
        }
    }
}

fn call(ws: &mut Ws, cid: &str, method: &str, params: Value) -> Value {
    ws.send(json!({"type": "rpc.call", "cid": cid,
        "payload": {"protocol": 1, "method": method, "params": params}}));
    expect_any(ws, |v| v["cid"] == cid)
}

fn rpc_end_to_end(s: &Server, game: &Path) {
    let a = s.register("rpc_a");
    let (mut ws, _) = s.ws();
    // Unauthenticated sockets are refused.
    ws.send(json!({"type": "rpc.call", "cid": "c0",
        "payload": {"protocol": 1, "method": "echo.hello", "params": {}}}));
    let refused = ws.expect("error", WAIT, |_| true);
    assert_eq!(refused["payload"]["error"]["code"], "unauthenticated");
    ws.connect(&a.access);

    let ok = call(&mut ws, "c1", "echo.hello", json!({"name": "ann"}));
    assert_eq!(ok["type"], "rpc.ok", "{ok}");
    assert_eq!(
        ok["payload"]["result"],
        json!({"greeting": "hi", "name": "ann", "player": a.id, "transport": "ws"})
    );
    // A handler that writes and reads storage through game.storage.*.
    let lvl = call(&mut ws, "c2", "vault.level", json!({"level": 5}));
    assert_eq!(
        lvl["payload"]["result"],
        json!({"level": 5, "version": 1}),
        "{lvl}"
    );
    // game.economy.* and game.leaderboard.* from an RPC handler: the grant is keyed per day, so
    // a retried call pays once.
    for cid in ["d1", "d2"] {
        let r = call(&mut ws, cid, "daily.reward", json!({"day": 1, "score": 30}));
        assert_eq!(r["type"], "rpc.ok", "{r}");
        assert_eq!(
            r["payload"]["result"],
            json!({"balance": 10, "rank": 1}),
            "{r}"
        );
    }
    // game.notify from an RPC handler: stored, and listed for the player.
    let r = call(&mut ws, "n1", "inbox.ping", json!({"n": 7}));
    assert_eq!(r["payload"]["result"], json!({"sent": true}), "{r}");
    let (status, inbox) = s.http("GET", "/api/v1/notifications", Some(&a.access), None);
    assert_eq!(status, 200, "{inbox}");
    assert!(inbox.to_string().contains("\"ping\""), "{inbox}");
    let (status, obj) = s.http(
        "GET",
        "/api/v1/storage/progress/level",
        Some(&a.access),
        None,
    );
    assert_eq!((status, &obj["value"]), (200, &json!(5)));
    // The game's declared code, with its details.
    let e = call(&mut ws, "c3", "quests.claim", json!({"quest": "q1"}));
    assert_eq!(e["type"], "rpc.error");
    assert_eq!(e["payload"]["error"]["code"], "quests.already_claimed");
    assert_eq!(e["payload"]["error"]["details"], json!({"quest": "q1"}));
    assert!(e["payload"].get("reason").is_none());
    // Defects answer `internal`: an undeclared code, a non-table result.
    for (cid, m) in [("c4", "bad.code"), ("c5", "bad.result")] {
        let e = call(&mut ws, cid, m, json!({}));
        assert_eq!(e["payload"]["error"]["code"], "internal", "{m}");
    }
    // The seam's own codes.
    let e = call(&mut ws, "c6", "no.such", json!({}));
    assert_eq!(e["payload"]["error"]["code"], "rpc.unknown_method");
    let e = call(&mut ws, "c7", "echo.hello", json!([1]));
    assert_eq!(e["payload"]["error"]["code"], "rpc.invalid_params");
    ws.send(json!({"type": "rpc.call", "cid": "c8",
        "payload": {"protocol": 2, "method": "echo.hello", "params": {}}}));
    let e = expect_any(&mut ws, |v| v["cid"] == "c8");
    assert_eq!(e["payload"]["error"]["code"], "rpc.unsupported_protocol");
    assert_eq!(e["payload"]["error"]["details"]["supported"], json!([1]));
    ws.send(json!({"type": "rpc.call",
        "payload": {"protocol": 1, "method": "echo.hello", "params": {}}}));
    let e = ws.expect("rpc.error", WAIT, |_| true);
    assert_eq!(e["payload"]["error"]["code"], "rpc.invalid_cid");
    assert!(e.get("cid").is_none());

    // A handler that never ends is aborted; this socket and the shard keep serving.
    let started = Instant::now();
    let e = call(&mut ws, "c9", "loop.forever", json!({}));
    assert_eq!(e["payload"]["error"]["code"], "internal");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "aborted in {:?}",
        started.elapsed()
    );
    let ok = call(&mut ws, "c10", "echo.hello", json!({"name": "again"}));
    assert_eq!(ok["payload"]["result"]["name"], "again");

    // REST: the same envelope, statuses from the code.
    let post = |method: &str, body: Value| {
        s.http(
            "POST",
            &format!("/api/v1/rpc/{method}"),
            Some(&a.access),
            Some(&body.to_string()),
        )
    };
    let (status, body) = post("echo.hello", json!({"params": {"name": "rest"}}));
    assert_eq!(status, 200);
    assert_eq!(body["type"], "rpc.ok");
    assert_eq!(body["payload"]["result"]["transport"], "http");
    let (status, body) = post("quests.claim", json!({"params": {"quest": "q2"}}));
    assert_eq!((status, &body["type"]), (409, &json!("rpc.error")));
    assert_eq!(body["payload"]["error"]["code"], "quests.already_claimed");
    let (status, body) = post("no.such", json!({}));
    assert_eq!(
        (status, &body["payload"]["error"]["code"]),
        (404, &json!("rpc.unknown_method"))
    );
    let (status, body) = post("echo.hello", json!({"params": "x"}));
    assert_eq!(
        (status, &body["payload"]["error"]["code"]),
        (400, &json!("rpc.invalid_params"))
    );
    let (status, _) = post("loop.forever", json!({}));
    assert_eq!(status, 500);
    assert_eq!(
        s.http("POST", "/api/v1/rpc/echo.hello", None, Some("{}")).0,
        401
    );

    // Hot reload: the edited handler answers with its new code, sockets stay open.
    std::fs::write(game.join("rpc.lua"), rpc_lua("hello-v2")).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let r = call(&mut ws, &format!("r{n}"), "echo.hello", json!({}));
        if r["payload"]["result"]["greeting"] == "hello-v2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited RPC never answered: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = post("echo.hello", json!({}));
    assert_eq!(body["payload"]["result"]["greeting"], "hello-v2");
}

#[test]
fn rpc_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    rpc_end_to_end(&s, game.path());
    assert!(s.stop().success());
}

#[test]
fn rpc_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    rpc_end_to_end(&s, game.path());
    assert!(s.stop().success());
}
