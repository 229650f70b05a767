//! Player storage over real sockets, on SQLite and PostgreSQL: every `/storage` and `/saves`
//! route with its permission denials, version conflicts and oversized values; `game.storage.*`
//! from a match script (the suspend-and-resume seam in the real binary); and player stats
//! folded in from a finished match's `_result`, read over REST.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{pg_db, Opts, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A one-player match: each input runs one `game.storage` call and logs its answer; the input
/// `finish` ends the match with the sender as the winner.
const VAULT: &str = r#"
match_size = 1
max_players = 4
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local r
  if input.op == "set" then r = game.storage.set("world", "motd", input.value)
  elseif input.op == "get" then r = game.storage.get("world", "motd")
  elseif input.op == "player_set" then r = game.storage.player_set(p, "progress", "level", input.value)
  elseif input.op == "player_get" then r = game.storage.player_get(p, "progress", "level")
  elseif input.op == "missing" then r = game.storage.get("world", "nothing-here")
  elseif input.op == "bad" then r = game.storage.get(42)
  elseif input.op == "finish" then
    state._finished = true
    state._result = { winner = p }
    return state
  end
  if r.ok ~= nil then
    if type(r.ok) == "table" and r.ok.version then
      state.log[#state.log + 1] = "v" .. r.ok.version
    else
      state.log[#state.log + 1] = r.ok
    end
  else
    state.log[#state.log + 1] = "error:" .. r.error
  end
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    std::fs::write(
        game.join("config.lua"),
        "return { vault = \"vault.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("vault.lua"), VAULT).unwrap();
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        ..Opts::default()
    };
    Server::start(data, game, &opts)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn storage_end_to_end(s: &Server) {
    let a = s.register("st_a");
    let b = s.register("st_b");
    let req = |m: &str, path: &str, token: &str, body: Option<Value>| {
        s.http(m, path, Some(token), body.map(|b| b.to_string()).as_deref())
    };

    // Every route needs a token.
    for (m, path) in [
        ("GET", "/api/v1/saves"),
        ("GET", "/api/v1/saves/main"),
        ("PUT", "/api/v1/saves/main"),
        ("GET", "/api/v1/storage/prefs"),
        ("GET", "/api/v1/storage/prefs/ui"),
        ("PUT", "/api/v1/storage/prefs/ui"),
        ("DELETE", "/api/v1/storage/prefs/ui"),
        ("GET", "/api/v1/players/x/stats"),
    ] {
        assert_eq!(s.http(m, path, None, None).0, 401, "{m} {path}");
    }

    // --- storage objects ---
    let (status, o) = req(
        "PUT",
        "/api/v1/storage/prefs/ui",
        &a.access,
        Some(json!({"value": {"theme": "dark"}})),
    );
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["version"], 1);
    assert_eq!(o["player_id"], a.id.as_str());
    assert_eq!(
        (o["read_perm"].as_str(), o["write_perm"].as_str()),
        (Some("owner"), Some("owner"))
    );
    let (status, got) = req("GET", "/api/v1/storage/prefs/ui", &a.access, None);
    assert_eq!((status, &got["value"]), (200, &json!({"theme": "dark"})));
    // Another player may neither read, write nor delete an owner-only object.
    let (status, body) = req("GET", "/api/v1/storage/prefs/ui", &b.access, None);
    assert_eq!((status, code(&body)), (403, "storage.forbidden"));
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/ui",
        &b.access,
        Some(json!({"value": 1})),
    );
    assert_eq!((status, code(&body)), (403, "storage.forbidden"));
    let (status, body) = req("DELETE", "/api/v1/storage/prefs/ui", &b.access, None);
    assert_eq!((status, code(&body)), (403, "storage.forbidden"));
    // A stale version is a conflict naming the current one.
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/ui",
        &a.access,
        Some(json!({"value": 2, "version": 0})),
    );
    assert_eq!((status, code(&body)), (409, "storage.version_conflict"));
    assert_eq!(body["error"]["details"]["current_version"], 1);
    let (status, o) = req(
        "PUT",
        "/api/v1/storage/prefs/ui",
        &a.access,
        Some(json!({"value": 2, "version": 1, "read_perm": "public"})),
    );
    assert_eq!(
        (status, &o["version"], &o["read_perm"]),
        (200, &json!(2), &json!("public"))
    );
    let (status, got) = req("GET", "/api/v1/storage/prefs/ui", &b.access, None);
    assert_eq!((status, &got["value"]), (200, &json!(2)));
    // Bad input.
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/x",
        &a.access,
        Some(json!({"value": 1, "read_perm": "everyone"})),
    );
    assert_eq!((status, code(&body)), (400, "storage.invalid_perm"));
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/x",
        &a.access,
        Some(json!([1])),
    );
    assert_eq!((status, code(&body)), (400, "storage.invalid_request"));
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/x",
        &a.access,
        Some(json!({"value": 1, "version": "one"})),
    );
    assert_eq!((status, code(&body)), (400, "storage.invalid_request"));
    let big = "x".repeat(262_144);
    let (status, body) = req(
        "PUT",
        "/api/v1/storage/prefs/big",
        &a.access,
        Some(json!({ "value": big })),
    );
    assert_eq!((status, code(&body)), (413, "storage.value_too_large"));
    let long = "k".repeat(129);
    let (status, body) = req(
        "GET",
        &format!("/api/v1/storage/prefs/{long}"),
        &a.access,
        None,
    );
    assert_eq!((status, code(&body)), (400, "invalid_payload"));
    // `none`: not even the owner reads it over the API.
    let (status, _) = req(
        "PUT",
        "/api/v1/storage/prefs/sealed",
        &a.access,
        Some(json!({"value": 1, "read_perm": "none", "write_perm": "none"})),
    );
    assert_eq!(status, 200);
    let (status, body) = req("GET", "/api/v1/storage/prefs/sealed", &a.access, None);
    assert_eq!((status, code(&body)), (403, "storage.forbidden"));
    // Listing shows only what the caller may read.
    req(
        "PUT",
        "/api/v1/storage/prefs/mine",
        &a.access,
        Some(json!({"value": "a"})),
    );
    let keys = |token: &str| {
        let (status, list) = req("GET", "/api/v1/storage/prefs", token, None);
        assert_eq!(status, 200);
        list["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&a.access), ["mine", "ui"]);
    assert_eq!(keys(&b.access), ["ui"]);
    // Delete: stale version refused, then gone.
    let (status, body) = req(
        "DELETE",
        "/api/v1/storage/prefs/ui?version=1",
        &a.access,
        None,
    );
    assert_eq!((status, code(&body)), (409, "storage.version_conflict"));
    assert_eq!(
        req(
            "DELETE",
            "/api/v1/storage/prefs/ui?version=2",
            &a.access,
            None
        ),
        (200, json!({"success": true}))
    );
    let (status, body) = req("GET", "/api/v1/storage/prefs/ui", &a.access, None);
    assert_eq!((status, code(&body)), (404, "storage.not_found"));

    // --- cloud saves ---
    assert_eq!(
        req("GET", "/api/v1/saves", &a.access, None),
        (200, json!({"saves": []}))
    );
    let (status, body) = req("GET", "/api/v1/saves/main", &a.access, None);
    assert_eq!((status, code(&body)), (404, "save.not_found"));
    let (status, sv) = req(
        "PUT",
        "/api/v1/saves/main",
        &a.access,
        Some(json!({"data": {"lvl": 1}})),
    );
    assert_eq!(
        (status, &sv["version"], &sv["slot"]),
        (200, &json!(1), &json!("main"))
    );
    let (status, sv) = req(
        "PUT",
        "/api/v1/saves/main",
        &a.access,
        Some(json!({"data": {"lvl": 2}, "version": 1})),
    );
    assert_eq!((status, &sv["version"]), (200, &json!(2)));
    let (status, body) = req(
        "PUT",
        "/api/v1/saves/main",
        &a.access,
        Some(json!({"data": {"lvl": 0}, "version": 1})),
    );
    assert_eq!((status, code(&body)), (409, "save.version_conflict"));
    assert_eq!(body["error"]["details"]["current_version"], 2);
    let (status, got) = req("GET", "/api/v1/saves/main", &a.access, None);
    assert_eq!(
        (status, &got["data"], &got["version"]),
        (200, &json!({"lvl": 2}), &json!(2))
    );
    let (status, body) = req(
        "PUT",
        "/api/v1/saves/huge",
        &a.access,
        Some(json!({"data": {"blob": "y".repeat(262_144)}})),
    );
    assert_eq!((status, code(&body)), (413, "save.too_large"));
    for i in 1..10 {
        let (status, _) = req(
            "PUT",
            &format!("/api/v1/saves/s{i}"),
            &a.access,
            Some(json!({"data": i})),
        );
        assert_eq!(status, 200, "slot {i}");
    }
    let (status, body) = req(
        "PUT",
        "/api/v1/saves/eleventh",
        &a.access,
        Some(json!({"data": 1})),
    );
    assert_eq!((status, code(&body)), (409, "save.slot_limit_reached"));
    let (_, list) = req("GET", "/api/v1/saves", &a.access, None);
    assert_eq!(list["saves"].as_array().unwrap().len(), 10);
    assert_eq!(list["saves"][0]["slot"], "main");
    assert_eq!(list["saves"][0]["version"], 2);
    // Saves are per player.
    assert_eq!(
        req("GET", "/api/v1/saves", &b.access, None),
        (200, json!({"saves": []}))
    );

    // --- game.storage.* from a match, then stats from its result ---
    let (mut ws, _) = s.ws();
    ws.connect(&a.access);
    ws.send(json!({"type": "matchmaker.add", "payload": {"mode": "vault"}}));
    ws.expect("match.matched", WAIT, |_| true);
    let inputs = [
        json!({"op": "get"}),
        json!({"op": "set", "value": "hello"}),
        json!({"op": "set", "value": "again"}),
        json!({"op": "get"}),
        json!({"op": "player_set", "value": 7}),
        json!({"op": "player_get"}),
        json!({"op": "missing"}),
        json!({"op": "bad"}),
    ];
    for i in &inputs {
        ws.send(json!({"type": "match.input", "payload": i}));
    }
    let state = ws.expect("match.state", WAIT, |v| {
        v["payload"]["log"]
            .as_array()
            .is_some_and(|l| l.len() == inputs.len())
    });
    assert_eq!(
        state["payload"]["log"],
        json!([
            "error:not_found",
            "v1",
            "v2",
            "again",
            "v1",
            7,
            "error:not_found",
            "error:get requires (collection, key)"
        ])
    );
    // The script's per-player row is the player's own object over REST.
    let (status, got) = req("GET", "/api/v1/storage/progress/level", &a.access, None);
    assert_eq!((status, &got["value"]), (200, &json!(7)));
    // The global row is not a player's.
    let (status, body) = req("GET", "/api/v1/storage/world/motd", &a.access, None);
    assert_eq!((status, code(&body)), (404, "storage.not_found"));

    let path = format!("/api/v1/players/{}/stats", a.id);
    assert_eq!(req("GET", &path, &b.access, None).1["games_played"], 0);
    ws.send(json!({"type": "match.input", "payload": {"op": "finish"}}));
    ws.expect("match.finished", WAIT, |_| true);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, st) = req("GET", &path, &b.access, None);
        assert_eq!(status, 200);
        if st["games_played"] == 1 {
            assert_eq!((&st["wins"], &st["losses"]), (&json!(1), &json!(0)));
            assert_eq!(st["player_id"], a.id.as_str());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never recorded: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn storage_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    storage_end_to_end(&s);
    assert!(s.stop().success());
}

#[test]
fn storage_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    storage_end_to_end(&s);
    assert!(s.stop().success());
}
