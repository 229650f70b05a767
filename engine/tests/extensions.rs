//! Lua extensions over real sockets (`extensions/*.lua`): a declared route answering (player
//! and webhook security, path bindings, a declared code), an undeclared path 404 and a wrong
//! method 405, a `module.event` pushed by `game.emit` from an extension RPC and from a binding,
//! `game.quests.progress(...)` from a match script, a binding and a route that loop forever
//! (aborted; the match and the shard keep serving), an extension edited while the server runs
//! (hot reload), and a malformed manifest (refused at start with a clear error; at runtime the
//! server keeps the old extension). Extension data lives in storage, so both backends run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

const MATCH: &str = r#"
match_size = 1
quick_play = true
function init(config) return {} end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local r
  if input.spin then r = game.quests.spin(p) else r = game.quests.progress(p, input.n) end
  game.send(p, { reply = r, seq = input.seq })
  return state
end
function tick(state) return state end
function get_state(p, state) return {} end
"#;

fn quests(greeting: &str) -> String {
    format!(
        r#"
extension = {{
  name = "quests",
  version = 2,
  codes = {{ ["quests.not_found"] = {{ status = 404, message = "No such quest." }} }},
  routes = {{
    {{ method = "get", path = "/api/v1/quests/board", handler = "board" }},
    {{ method = "get", path = "/api/v1/quests/by-id/:id", handler = "one", security = "player" }},
    {{ method = "post", path = "/api/v1/quests/webhook", handler = "hook", security = "webhook" }},
    {{ method = "get", path = "/api/v1/quests/spin", handler = "spin" }},
  }},
  rpc = {{ ["quests.claim"] = "claim" }},
  lua = {{ progress = "progress", spin = "spin_lua" }},
  events = {{ "quests.completed" }},
}}
local GREETING = "{greeting}"
function board(req, ctx)
  return {{ greeting = GREETING, player = ctx.player_id, q = req.query.q, method = req.method }}
end
function one(req, ctx)
  if req.params.id == "missing" then return nil, "quests.not_found", {{ id = req.params.id }} end
  local r = game.storage.player_get(ctx.player_id, "quests", req.params.id)
  return {{ id = req.params.id, stored = r.ok }}
end
function hook(req, ctx)
  return {{ got = req.body.n, sig = req.headers["x-sig"], anonymous = ctx.player_id == nil }}, 202
end
function spin(req, ctx) while true do end end
function spin_lua(p) while true do end end
function claim(params, ctx)
  local s = game.storage.player_set(ctx.player_id, "quests", params.quest, {{ claimed = true }})
  local e = game.emit(ctx.player_id, "quests.completed", {{ quest = params.quest, reward = 250 }})
  local foreign = game.emit(ctx.player_id, "other.thing", {{}})
  local bad = game.emit(ctx.player_id, "no dot", {{}})
  return {{ version = s.ok.version, emitted = e.ok, foreign = foreign.error, bad = bad.error }}
end
function progress(player_id, n)
  if n < 0 then return nil, "negative" end
  game.emit(player_id, "quests.completed", {{ quest = "kills", count = n }})
  return {{ player = player_id, count = n, greeting = GREETING }}
end
"#
    )
}

fn write_game(game: &Path, ext: &str) {
    std::fs::write(
        game.join("config.lua"),
        "return { arena = \"arena.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("arena.lua"), MATCH).unwrap();
    std::fs::create_dir_all(game.join("extensions")).unwrap();
    std::fs::write(game.join("extensions/quests.lua"), ext).unwrap();
}

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    write_game(game, &quests("v1"));
    // A calling callback's wall-clock budget counts its extension call; 2 s keeps a loaded
    // test machine from turning a slow first VM into an overrun (the economy tests do the
    // same). A spinning extension is still aborted by its instruction budget.
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        env: vec![("ASOBI_LUA_MAX_CALL_MS".into(), "2000".into())],
    };
    Server::start(data, game, &opts)
}

fn expect_any(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = ws.recv(left).expect("a frame before the deadline");
        if pred(&frame) {
            return frame;
        }
    }
}

/// Polls `GET /api/v1/quests/board` until its greeting is `want`.
fn wait_greeting(s: &Server, token: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = s.http("GET", "/api/v1/quests/board", Some(token), None);
        if status == 200 && body["greeting"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never answered {want}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn extensions_end_to_end(s: &Server, game: &Path) {
    let a = s.register("ext_a");

    // A declared player route, with its query; no token is 401 like a core route.
    let (status, body) = s.http(
        "GET",
        "/api/v1/quests/board?q=top%20ten",
        Some(&a.access),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"greeting": "v1", "player": a.id, "q": "top ten", "method": "GET"})
    );
    let (status, body) = s.http("GET", "/api/v1/quests/board", None, None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthenticated"))
    );
    // A declared code with its status and details.
    let (status, body) = s.http("GET", "/api/v1/quests/by-id/missing", Some(&a.access), None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "quests.not_found");
    assert_eq!(body["error"]["details"], json!({"id": "missing"}));
    // A webhook route takes no token and sees headers and the body; it picks its 2xx.
    let payload = json!({"n": 7}).to_string();
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    std::io::Write::write_all(
        &mut conn,
        format!(
            "POST /api/v1/quests/webhook HTTP/1.1\r\nHost: test\r\nX-Sig: abc\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{payload}",
            payload.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let (status, body) = common::read_response(&mut conn);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"got": 7, "sig": "abc", "anonymous": true}));
    // Undeclared paths are core's 404; a declared path with another method is 405.
    let (status, body) = s.http("GET", "/api/v1/quests/nope", Some(&a.access), None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = s.http("GET", "/api/v1/nosuchext/board", Some(&a.access), None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = s.http("DELETE", "/api/v1/quests/board", Some(&a.access), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed"))
    );

    // An extension RPC writes storage and pushes a module.event to the caller.
    let (mut ws, _) = s.ws();
    ws.connect(&a.access);
    ws.send(json!({"type": "rpc.call", "cid": "c1",
        "payload": {"protocol": 1, "method": "quests.claim", "params": {"quest": "daily"}}}));
    // The push and the reply travel different paths; take them in either order.
    let (mut event, mut ok) = (None, None);
    while event.is_none() || ok.is_none() {
        let f = expect_any(&mut ws, |v| v["type"] == "module.event" || v["cid"] == "c1");
        if f["type"] == "module.event" {
            event = Some(f);
        } else {
            ok = Some(f);
        }
    }
    let (event, ok) = (event.unwrap(), ok.unwrap());
    assert_eq!(
        event["payload"],
        json!({"module": "quests", "event": "quests.completed",
               "data": {"quest": "daily", "reward": 250}})
    );
    assert!(event.get("cid").is_none());
    assert_eq!(ok["type"], "rpc.ok", "{ok}");
    assert_eq!(
        ok["payload"]["result"],
        json!({"version": 1, "emitted": true,
               "foreign": "event.unowned_domain", "bad": "event.invalid_name"})
    );
    // What the RPC stored, read back through a route with a path binding.
    let (status, body) = s.http("GET", "/api/v1/quests/by-id/daily", Some(&a.access), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"id": "daily", "stored": {"claimed": true}}));

    // game.quests.progress from a match script: the binding's envelope comes back, and the
    // event it emits reaches the player.
    ws.send(json!({"type": "match.find_or_create", "cid": "j", "payload": {"mode": "arena"}}));
    ws.expect("match.joined", WAIT, |_| true);
    ws.send(json!({"type": "match.input", "payload": {"n": 3, "seq": 1}}));
    let (mut event, mut msg) = (None, None);
    while event.is_none() || msg.is_none() {
        let f = expect_any(&mut ws, |v| {
            (v["type"] == "module.event" && v["payload"]["data"]["quest"] == "kills")
                || (v["type"] == "module.message" && v["payload"]["message"]["seq"] == 1)
        });
        if f["type"] == "module.event" {
            event = Some(f);
        } else {
            msg = Some(f);
        }
    }
    let (event, msg) = (event.unwrap(), msg.unwrap());
    assert_eq!(
        msg["payload"]["message"]["reply"],
        json!({"ok": {"player": a.id, "count": 3, "greeting": "v1"}})
    );
    assert_eq!(event["payload"]["data"]["count"], 3);
    ws.send(json!({"type": "match.input", "payload": {"n": -1, "seq": 2}}));
    let msg = ws.expect("module.message", WAIT, |v| {
        v["payload"]["message"]["seq"] == 2
    });
    assert_eq!(
        msg["payload"]["message"]["reply"],
        json!({"error": "negative"})
    );

    // A binding that loops forever is aborted: the match gets an error and keeps running.
    let started = Instant::now();
    ws.send(json!({"type": "match.input", "payload": {"spin": true, "seq": 3}}));
    let msg = ws.expect("module.message", WAIT, |v| {
        v["payload"]["message"]["seq"] == 3
    });
    let err = msg["payload"]["message"]["reply"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(err.starts_with("game.quests.spin failed"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    ws.send(json!({"type": "match.input", "payload": {"n": 4, "seq": 4}}));
    let msg = ws.expect("module.message", WAIT, |v| {
        v["payload"]["message"]["seq"] == 4
    });
    assert_eq!(msg["payload"]["message"]["reply"]["ok"]["count"], 4);
    // A route that loops forever answers 500; the shard keeps serving.
    let (status, body) = s.http("GET", "/api/v1/quests/spin", Some(&a.access), None);
    assert_eq!((status, &body["error"]["code"]), (500, &json!("internal")));
    wait_greeting(s, &a.access, "v1");

    // Hot reload: the edited extension answers with its new code, over REST and in the match.
    std::fs::write(game.join("extensions/quests.lua"), quests("v2")).unwrap();
    wait_greeting(s, &a.access, "v2");
    ws.send(json!({"type": "match.input", "payload": {"n": 5, "seq": 5}}));
    let msg = ws.expect("module.message", WAIT, |v| {
        v["payload"]["message"]["seq"] == 5
    });
    assert_eq!(msg["payload"]["message"]["reply"]["ok"]["greeting"], "v2");

    // A malformed manifest is refused with a clear error; the server keeps the old one.
    let broken = quests("v3").replace(
        "path = \"/api/v1/quests/board\"",
        "path = \"/api/v1/leaderboards/board\"",
    );
    std::fs::write(game.join("extensions/quests.lua"), broken).unwrap();
    assert!(
        s.wait_log(
            "must be /api/v1/quests or below it (an extension's routes live under its name); \
             keeping the previous code",
            WAIT
        ),
        "the refusal is logged"
    );
    let (status, body) = s.http("GET", "/api/v1/quests/board", Some(&a.access), None);
    assert_eq!((status, &body["greeting"]), (200, &json!("v2")));
}

#[test]
fn extensions_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    extensions_end_to_end(&s, game.path());
    assert!(s.stop().success());
}

#[test]
fn extensions_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    extensions_end_to_end(&s, game.path());
    assert!(s.stop().success());
}

/// `asobi check` and start-up refuse a game whose manifest is malformed, naming the file and
/// the problem.
#[test]
fn a_malformed_manifest_is_refused_at_load() {
    let game = tempfile::tempdir().unwrap();
    let cases = [
        (
            quests("v1").replace("name = \"quests\"", "name = \"storage\""),
            "reserved by core",
        ),
        (
            quests("v1").replace("handler = \"board\"", "handler = \"nope\""),
            "is not a global function",
        ),
        (
            quests("v1").replace("\"quests.not_found\"", "\"other.not_found\""),
            "an extension owns only its own domain",
        ),
        (
            quests("v1").replace("/api/v1/quests/by-id/:id", "/api/v1/quests/:id"),
            "collides with /api/v1/quests/board",
        ),
        ("rpc = {}".to_owned(), "must set a global table `extension`"),
    ];
    for (source, needle) in cases {
        write_game(game.path(), &source);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
            .arg("check")
            .arg(game.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{needle}: {text}");
        assert!(text.contains("extensions/quests.lua"), "{needle}: {text}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
