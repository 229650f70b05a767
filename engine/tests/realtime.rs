//! The realtime loop against the real binary: register, connect, queue, match, input → state,
//! hot reload of the running match, reconnection, and bad input on the socket.

mod common;

use std::time::{Duration, Instant};

use common::{copy_example_game, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn x_of(state: &Value, player: &str) -> i64 {
    state["payload"]["players"][player]["x"]
        .as_i64()
        .unwrap_or(-1)
}

/// Rewrites a `local NAME = value` line of the example's rules.
fn set_rule(game: &std::path::Path, name: &str, value: i64) {
    let path = game.join("arena.lua");
    let text = std::fs::read_to_string(&path).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("local {name} = ")) {
                format!("local {name} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

fn full_loop(shards: usize) {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            shards: Some(shards),
            env: vec![("ASOBI_RECONNECT_GRACE_MS".into(), "20000".into())],
            ..Opts::default()
        },
    );
    let a = s.register("pa");
    let b = s.register("pb");
    // With two shards, put the players on different shards on purpose.
    let (mut wa, mut wb) = if shards > 1 {
        (s.ws_on(0), s.ws_on(1))
    } else {
        (s.ws().0, s.ws().0)
    };
    assert_eq!(wa.connect(&a.access)["payload"]["player_id"], a.id.as_str());
    wb.connect(&b.access);

    wa.send(json!({"type": "matchmaker.add", "cid": "q1", "payload": {"mode": "duel", "properties": {"skill": 1000}}}));
    let queued = wa.expect("matchmaker.queued", WAIT, |_| true);
    assert_eq!(queued["cid"], "q1");
    assert_eq!(queued["payload"]["status"], "pending");
    assert_eq!(queued["payload"]["already_queued"], false);
    // Re-adding the same mode returns the same ticket.
    wa.send(json!({"type": "matchmaker.add", "cid": "q2", "payload": {"mode": "duel"}}));
    let again = wa.expect("matchmaker.queued", WAIT, |_| true);
    assert_eq!(again["payload"]["already_queued"], true);
    assert_eq!(
        again["payload"]["ticket_id"],
        queued["payload"]["ticket_id"]
    );
    wb.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    wb.expect("matchmaker.queued", WAIT, |_| true);

    let ma = wa.expect("match.matched", WAIT, |_| true);
    let mb = wb.expect("match.matched", WAIT, |_| true);
    let match_id = ma["payload"]["match_id"].as_str().unwrap().to_owned();
    assert_eq!(mb["payload"]["match_id"], match_id.as_str());
    assert_eq!(ma["payload"]["mode"], "duel");
    let mut players: Vec<&str> = ma["payload"]["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    players.sort();
    let mut expected = vec![a.id.as_str(), b.id.as_str()];
    expected.sort();
    assert_eq!(players, expected);

    // game.send from join arrives as module.message (and the legacy game.message).
    wa.expect("module.message", WAIT, |v| v["payload"]["module"] == "lua");

    // Input from A is reflected in the state both players see.
    let start_a = x_of(&wa.expect("match.state", WAIT, |_| true), &a.id);
    wa.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 1}}),
    );
    let sa = wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 1
    });
    assert_eq!(x_of(&sa, &a.id), start_a + 1);
    assert_eq!(sa["payload"]["rules"], 1);
    let sb = wb.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 1
    });
    assert_eq!(x_of(&sb, &a.id), start_a + 1);
    // The legacy wrapper {data: {...}} is accepted too.
    wa.send(json!({"type": "match.input", "payload": {"data": {"action": "move", "dx": 1, "dy": 0, "seq": 2}}}));
    let sa = wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 2
    });
    let before_reload = x_of(&sa, &a.id);
    assert_eq!(before_reload, start_a + 2);

    // Hot reload: bigger steps and a new rules version, state kept, sockets open.
    set_rule(&game, "STEP", 3);
    set_rule(&game, "RULES_VERSION", 2);
    let reloaded = wa.expect("match.state", WAIT, |v| v["payload"]["rules"] == 2);
    assert_eq!(
        x_of(&reloaded, &a.id),
        before_reload,
        "state survives the reload"
    );
    wb.expect("match.state", WAIT, |v| v["payload"]["rules"] == 2);
    wa.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 3}}),
    );
    let after = wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 3
    });
    assert_eq!(
        x_of(&after, &a.id),
        before_reload + 3,
        "new code applies to the old state"
    );

    // A broken save is ignored: the match keeps running the last good code.
    std::fs::write(game.join("arena.lua"), "this is not lua (\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    wa.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": -1, "dy": 0, "seq": 4}}),
    );
    let st = wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 4
    });
    assert_eq!(x_of(&st, &a.id), before_reload);
    assert_eq!(st["payload"]["rules"], 2);

    // Reconnection: B drops and comes back within the grace window to the same match.
    drop(wb);
    std::thread::sleep(Duration::from_millis(300));
    let mut wb = if shards > 1 { s.ws_on(0) } else { s.ws().0 };
    wb.connect(&b.access);
    let resumed = wb.expect("match.state", WAIT, |_| true);
    assert!(
        resumed["payload"]["players"][b.id.as_str()].is_object(),
        "the script never saw B leave: {resumed}"
    );
    wb.send(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 0, "dy": 1, "seq": 7}}),
    );
    wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][b.id.as_str()]["seq"] == 7
    });

    // Leave: A gets match.left; input afterwards is "not in match".
    wa.send(json!({"type": "match.leave", "cid": "l1", "payload": {}}));
    let left = wa.expect("match.left", WAIT, |_| true);
    assert_eq!(left["payload"]["success"], true);
    wa.send(json!({"type": "match.input", "payload": {"action": "move"}}));
    let err = wa.expect("error", WAIT, |_| true);
    assert_eq!(err["payload"]["error"]["code"], "match.not_in_match");
    // B sees A gone from the state.
    wb.expect("match.state", WAIT, |v| {
        v["payload"]["players"].get(a.id.as_str()).is_none()
    });

    // The match is visible while live, and heartbeats still answer on both sockets.
    let (status, info) = s.http(
        "GET",
        &format!("/api/v1/matches/{match_id}"),
        Some(&a.access),
        None,
    );
    assert_eq!(status, 200, "{info}");
    wb.send(json!({"type": "session.heartbeat", "cid": "hb", "payload": {}}));
    let hb = wb.expect("session.heartbeat", WAIT, |_| true);
    assert_eq!(hb["cid"], "hb");
    assert!(hb["payload"]["ts"].is_i64());
    drop((wa, wb));
    assert!(s.stop().success());
}

#[test]
fn full_loop_one_shard() {
    full_loop(1);
}

#[test]
fn full_loop_players_on_two_shards() {
    full_loop(2);
}

#[test]
fn dropped_player_leaves_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    // The duel's own reconnect policy (asobi's `reconnect = { grace_period = … }`), shortened.
    let duel = game.join("duel.lua");
    let script = std::fs::read_to_string(&duel).unwrap();
    assert!(script.contains("grace_period = 30000"));
    std::fs::write(
        &duel,
        script.replace("grace_period = 30000", "grace_period = 500"),
    )
    .unwrap();
    let s = Server::start(&dir.path().join("data"), &game, &Opts::default());
    let a = s.register("ga");
    let b = s.register("gb");
    let mut wa = s.ws().0;
    let mut wb = s.ws().0;
    wa.connect(&a.access);
    wb.connect(&b.access);
    for w in [&mut wa, &mut wb] {
        w.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    }
    wa.expect("match.matched", WAIT, |_| true);
    wb.expect("match.matched", WAIT, |_| true);
    drop(wb);
    // Within the window B's seat is kept...
    wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][b.id.as_str()].is_object()
    });
    // ...after it, the script's leave runs and B disappears from the state.
    wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"].get(b.id.as_str()).is_none()
    });
    assert!(s.stop().success());
}

fn expect_error(w: &mut Ws, code: &str) -> Value {
    let v = w.expect("error", WAIT, |_| true);
    assert_eq!(v["payload"]["error"]["code"], code, "{v}");
    assert!(v["payload"]["reason"].is_string());
    assert!(v["payload"]["error"]["details"].is_object());
    v
}

#[test]
fn bad_input_on_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![
                ("ASOBI_WS_CONNECT_TIMEOUT_MS".into(), "700".into()),
                ("ASOBI_WS_MSG_RATE".into(), "20".into()),
            ],
            ..Opts::default()
        },
    );
    let p = s.register("bad");

    // Before session.connect: heartbeats are answered (as asobi does), anything else is refused
    // with `unauthenticated`; a bad token gets asobi's reason `invalid_token`.
    let mut w = s.ws().0;
    w.send(json!({"type": "session.heartbeat", "cid": "h", "payload": {}}));
    w.expect("session.heartbeat", WAIT, |v| v["cid"] == "h");
    w.send(json!({"type": "match.list", "cid": "l", "payload": {}}));
    let e = expect_error(&mut w, "unauthenticated");
    assert_eq!(e["cid"], "l");
    w.send(json!({"type": "session.connect", "payload": {"token": "nope"}}));
    let e = expect_error(&mut w, "unauthenticated");
    assert_eq!(e["payload"]["reason"], "invalid_token");
    w.send(json!({"type": "session.connect", "payload": {}}));
    expect_error(&mut w, "missing_field");
    w.connect(&p.access);

    // Malformed frames.
    w.send_raw("{not json");
    expect_error(&mut w, "invalid_json");
    w.send_raw(r#"{"cid":"x1","payload":{}}"#);
    let e = expect_error(&mut w, "invalid_message");
    assert_eq!(e["cid"], "x1");
    w.send(json!({"type": "no.such.thing", "cid": "u", "payload": {}}));
    let e = expect_error(&mut w, "unknown_type");
    assert_eq!(e["cid"], "u");
    w.send(json!({"type": "matchmaker.add", "payload": {"mode": 7}}));
    expect_error(&mut w, "invalid_payload");
    w.send(json!({"type": "matchmaker.add", "payload": {"mode": "no_such_mode"}}));
    expect_error(&mut w, "matchmaker.unknown_mode");
    w.send(json!({"type": "match.join", "payload": {"match_id": "nope"}}));
    let e = expect_error(&mut w, "match.not_found");
    assert_eq!(e["payload"]["reason"], "match_not_found");
    w.send(
        json!({"type": "match.join", "payload": {"match_id": "nope", "ctx": {"a": {"nested": 1}}}}),
    );
    // asobi reports join-context bounds under `ws.request_failed`, the bound as the reason.
    let e = expect_error(&mut w, "ws.request_failed");
    assert_eq!(e["payload"]["reason"], "invalid_join_ctx_value");
    assert_eq!(
        e["payload"]["error"]["details"]["reason"],
        "invalid_join_ctx_value"
    );
    w.send(json!({"type": "match.input", "payload": {"action": "move"}}));
    let e = expect_error(&mut w, "match.not_in_match");
    assert_eq!(e["payload"]["type"], "match.input");

    // Over the message rate: a rate_limited error, then the connection keeps working.
    for i in 0..60 {
        w.send(json!({"type": "session.heartbeat", "cid": i.to_string(), "payload": {}}));
    }
    expect_error(&mut w, "rate_limited");
    std::thread::sleep(Duration::from_millis(1200));
    w.send(json!({"type": "session.heartbeat", "cid": "after", "payload": {}}));
    w.expect("session.heartbeat", WAIT, |v| v["cid"] == "after");

    // A frame over 64 KiB: an error frame, and the socket stays open (as in asobi).
    let big =
        json!({"type": "match.input", "payload": {"blob": "x".repeat(70 * 1024)}}).to_string();
    w.send_raw(&big);
    expect_error(&mut w, "payload_too_large");
    w.send(json!({"type": "session.heartbeat", "cid": "after-big", "payload": {}}));
    w.expect("session.heartbeat", WAIT, |v| v["cid"] == "after-big");
    // Over four times the limit the stream is not read further: error, then close 1009.
    let huge =
        json!({"type": "match.input", "payload": {"blob": "x".repeat(300 * 1024)}}).to_string();
    w.send_raw(&huge);
    expect_error(&mut w, "payload_too_large");
    assert_eq!(w.close_code(WAIT), Some(1009));

    // A socket that never sends session.connect is closed with 1008 `idle_auth_timeout`.
    let mut idle = s.ws().0;
    let started = Instant::now();
    assert_eq!(
        idle.close_frame(WAIT),
        Some((1008, "idle_auth_timeout".to_owned()))
    );
    assert!(started.elapsed() >= Duration::from_millis(500));

    // The server is unharmed.
    let mut ok = s.ws().0;
    ok.connect(&p.access);
    ok.send(json!({"type": "session.heartbeat", "cid": "fine", "payload": {}}));
    ok.expect("session.heartbeat", WAIT, |v| v["cid"] == "fine");
    let (status, _) = s.http("GET", "/api/v1/health", None, None);
    assert_eq!(status, 200);
    assert!(s.stop().success());
}

#[test]
fn lobby_find_or_create_list_and_rest_matchmaker() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    // List brawl matches so match.list has something to show.
    let brawl = std::fs::read_to_string(game.join("brawl.lua")).unwrap();
    std::fs::write(game.join("brawl.lua"), format!("listed = true\n{brawl}")).unwrap();
    let s = Server::start(&dir.path().join("data"), &game, &Opts::default());
    let a = s.register("la");
    let b = s.register("lb");
    let mut wa = s.ws().0;
    wa.connect(&a.access);
    // Leaving when in no match is a successful no-op (asobi).
    wa.send(json!({"type": "match.leave", "cid": "nl", "payload": {}}));
    let left = wa.expect("match.left", WAIT, |_| true);
    assert_eq!(
        (left["cid"].as_str(), &left["payload"]),
        (Some("nl"), &json!({"success": true}))
    );
    // Quick play is off unless the mode opts in (duel does not).
    wa.send(json!({"type": "match.find_or_create", "payload": {"mode": "duel"}}));
    let e = expect_error(&mut wa, "ws.request_failed");
    assert_eq!(e["payload"]["reason"], "quick_play_disabled");
    wa.send(json!({"type": "match.find_or_create", "cid": "f", "payload": {"mode": "brawl"}}));
    let joined = wa.expect("match.joined", WAIT, |_| true);
    assert_eq!(joined["cid"], "f");
    assert_eq!(joined["payload"]["player_count"], 1);
    assert_eq!(joined["payload"]["max_players"], 8);
    let match_id = joined["payload"]["match_id"].as_str().unwrap().to_owned();

    let mut wb = s.ws().0;
    wb.connect(&b.access);
    wb.send(json!({"type": "match.list", "cid": "l", "payload": {"mode": "brawl"}}));
    let list = wb.expect("match.list", WAIT, |_| true);
    assert_eq!(list["payload"]["matches"][0]["match_id"], match_id.as_str());
    wb.send(json!({"type": "match.join", "cid": "j", "payload": {"match_id": match_id, "ctx": {"code": "AB12"}}}));
    let j = wb.expect("match.joined", WAIT, |_| true);
    assert_eq!(j["payload"]["player_count"], 2);
    // A non-object input never reaches the script.
    for bad in [
        json!(5),
        json!("up"),
        json!([1]),
        json!({"data": "not json"}),
    ] {
        wb.send(json!({"type": "match.input", "payload": bad}));
        expect_error(&mut wb, "invalid_payload");
    }
    // The joinable filter.
    for (joinable, n) in [(true, 1), (false, 0)] {
        wb.send(json!({"type": "match.list", "cid": "jl", "payload": {"mode": "brawl", "joinable": joinable}}));
        let l = wb.expect("match.list", WAIT, |v| v["cid"] == "jl");
        assert_eq!(l["payload"]["matches"].as_array().unwrap().len(), n, "{l}");
        let (_, live) = s.http(
            "GET",
            &format!("/api/v1/matches/live?mode=brawl&joinable={joinable}"),
            Some(&a.access),
            None,
        );
        assert_eq!(live["matches"].as_array().unwrap().len(), n, "{live}");
    }
    // Shared state: both see both players.
    wa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][b.id.as_str()].is_object()
    });
    let (status, live) = s.http(
        "GET",
        "/api/v1/matches/live?mode=brawl",
        Some(&a.access),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(live["matches"][0]["player_count"], 2);

    // REST matchmaker: submit, check, cancel; and another player's ticket is not yours.
    let c = s.register("lc");
    let (status, t) = s.http(
        "POST",
        "/api/v1/matchmaker",
        Some(&c.access),
        Some(r#"{"mode":"duel"}"#),
    );
    assert_eq!(status, 200, "{t}");
    let ticket = t["ticket_id"].as_str().unwrap().to_owned();
    let (status, st) = s.http(
        "GET",
        &format!("/api/v1/matchmaker/{ticket}"),
        Some(&c.access),
        None,
    );
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["status"], "pending");
    let (status, _) = s.http(
        "DELETE",
        &format!("/api/v1/matchmaker/{ticket}"),
        Some(&a.access),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = s.http(
        "DELETE",
        &format!("/api/v1/matchmaker/{ticket}"),
        Some(&c.access),
        None,
    );
    assert_eq!(status, 200);
    let (status, st) = s.http(
        "GET",
        &format!("/api/v1/matchmaker/{ticket}"),
        Some(&c.access),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(st["status"], "cancelled");
    assert!(s.stop().success());
}

#[test]
fn finished_match_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(&game).unwrap();
    // A one-player mode that finishes on the first input.
    std::fs::write(
        game.join("match.lua"),
        r#"
match_size = 1
tick_rate = 50
function init(config) return { moves = 0 } end
function join(player_id, state) state.p = player_id return state end
function leave(player_id, state) return state end
function handle_input(player_id, input, state)
    state.moves = state.moves + 1
    state._finished = true
    state._result = { winner = player_id, moves = state.moves }
    return state
end
function tick(state) return state end
function get_state(player_id, state) return { moves = state.moves } end
"#,
    )
    .unwrap();
    let s = Server::start(&dir.path().join("data"), &game, &Opts::default());
    let a = s.register("fa");
    let mut w = s.ws().0;
    w.connect(&a.access);
    w.send(json!({"type": "matchmaker.add", "payload": {"mode": "default"}}));
    let m = w.expect("match.matched", WAIT, |_| true);
    let match_id = m["payload"]["match_id"].as_str().unwrap().to_owned();
    w.send(json!({"type": "match.input", "payload": {"go": true}}));
    let fin = w.expect("match.finished", WAIT, |_| true);
    assert_eq!(fin["payload"]["match_id"], match_id.as_str());
    assert_eq!(fin["payload"]["result"]["winner"], a.id.as_str());
    // The record is persisted and readable over REST.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, rec) = s.http(
            "GET",
            &format!("/api/v1/matches/{match_id}"),
            Some(&a.access),
            None,
        );
        if status == 200 && rec["status"] == "finished" {
            assert_eq!(rec["result"]["moves"], 1);
            // asobi's public projection: no roster.
            let mut keys: Vec<&str> = rec
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "finished_at",
                    "id",
                    "inserted_at",
                    "mode",
                    "result",
                    "started_at",
                    "status"
                ],
                "{rec}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "record not stored: {status} {rec}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, list) = s.http("GET", "/api/v1/matches?mode=default", Some(&a.access), None);
    assert_eq!(list["matches"][0]["id"], match_id.as_str());
    assert!(list["matches"][0].get("players").is_none(), "{list}");
    // A player may filter by their own id only.
    let own = format!("/api/v1/matches?player_id={}", a.id);
    let (status, mine) = s.http("GET", &own, Some(&a.access), None);
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["matches"][0]["id"], match_id.as_str());
    let (status, err) = s.http(
        "GET",
        "/api/v1/matches?player_id=someone-else",
        Some(&a.access),
        None,
    );
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "forbidden");
    assert!(s.stop().success());
}

/// With the operator's stop switches on (asobi has none: by default a failing callback costs
/// only its own call), a script that keeps failing or overrunning ends its own match, and only
/// that one.
#[test]
fn failing_script_finishes_only_its_own_match() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(&game).unwrap();
    std::fs::write(
        game.join("config.lua"),
        "return { good = \"good.lua\", bad = \"bad.lua\", spin = \"spin.lua\" }\n",
    )
    .unwrap();
    let common = r#"
match_size = 1
tick_rate = 20
function init(config) return { ticks = 0 } end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function handle_input(player_id, input, state) return state end
function get_state(player_id, state) return { ticks = state.ticks } end
"#;
    std::fs::write(
        game.join("good.lua"),
        format!("{common}\nfunction tick(state) state.ticks = state.ticks + 1 return state end\n"),
    )
    .unwrap();
    std::fs::write(
        game.join("bad.lua"),
        format!("{common}\nfunction tick(state) error(\"boom every tick\") end\n"),
    )
    .unwrap();
    std::fs::write(
        game.join("spin.lua"),
        format!("{common}\nfunction tick(state) while true do pcall(function() while true do end end) end end\n"),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![
                ("ASOBI_LUA_STOP_AFTER_FAILURES".into(), "100".into()),
                ("ASOBI_LUA_STOP_AFTER_OVERRUNS".into(), "3".into()),
            ],
            ..Opts::default()
        },
    );
    let mut sockets = Vec::new();
    for mode in ["good", "bad", "spin"] {
        let p = s.register(mode);
        let mut w = s.ws().0;
        w.connect(&p.access);
        w.send(json!({"type": "matchmaker.add", "payload": {"mode": mode}}));
        w.expect("match.matched", WAIT, |_| true);
        sockets.push(w);
    }
    let mut good = sockets.remove(0);
    for w in sockets.iter_mut() {
        let fin = w.expect("match.finished", Duration::from_secs(30), |_| true);
        assert!(
            fin["payload"]["result"]["error"].is_string(),
            "an error result: {fin}"
        );
    }
    // The neighbour on the same shard kept ticking throughout and still does.
    let first = good.expect("match.state", WAIT, |_| true)["payload"]["ticks"]
        .as_i64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let later = good.expect("match.state", WAIT, |v| {
        v["payload"]["ticks"].as_i64().unwrap() > first + 10
    });
    assert!(later["payload"]["ticks"].as_i64().unwrap() > first);
    assert!(s.stop().success());
}

#[test]
fn flatbuffers_and_json_clients_share_a_match() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            shards: Some(2),
            ..Opts::default()
        },
    );
    let a = s.register("fa");
    let b = s.register("jb");
    let (mut fa, chosen) = s.ws_with_protocol("asobi.fb.1");
    assert_eq!(chosen.as_deref(), Some("asobi.fb.1"));
    let (mut jb, _) = s.ws();
    fa.send_fb(json!({"type": "session.connect", "cid": "c", "payload": {"token": a.access}}));
    let connected = fa.expect("session.connected", WAIT, |_| true);
    assert_eq!(connected["_binary"], true);
    assert_eq!(connected["cid"], "c");
    jb.connect(&b.access);
    // A text frame on a binary session is refused with a clear error.
    fa.send(json!({"type": "session.heartbeat", "payload": {}}));
    let e = fa.expect("error", WAIT, |_| true);
    assert_eq!(e["payload"]["error"]["code"], "invalid_message");
    // Garbage bytes are an invalid_message, never a crash.
    fa.ws
        .send(tungstenite::Message::Binary(vec![1u8, 2, 3, 4, 5].into()))
        .unwrap();
    let e = fa.expect("error", WAIT, |_| true);
    assert_eq!(e["payload"]["error"]["code"], "invalid_message");

    fa.send_fb(json!({"type": "matchmaker.add", "cid": 1, "payload": {"mode": "duel"}}));
    let q = fa.expect("matchmaker.queued", WAIT, |_| true);
    assert_eq!(q["cid"], 1);
    jb.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    let m1 = fa.expect("match.matched", WAIT, |_| true);
    let m2 = jb.expect("match.matched", WAIT, |_| true);
    assert_eq!(m1["payload"]["match_id"], m2["payload"]["match_id"]);
    // module.message (from game.send in join) reaches the binary client in its encoding.
    fa.expect("module.message", WAIT, |v| v["_binary"] == true);
    fa.send_fb(
        json!({"type": "match.input", "payload": {"action": "move", "dx": 1, "dy": 0, "seq": 5}}),
    );
    let st_json = jb.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 5
    });
    assert!(
        st_json.get("_binary").is_none(),
        "the JSON client gets text"
    );
    let st_fb = fa.expect("match.state", WAIT, |v| {
        v["payload"]["players"][a.id.as_str()]["seq"] == 5
    });
    assert_eq!(st_fb["_binary"], true);
    assert_eq!(st_fb["payload"]["players"], st_json["payload"]["players"]);
    // Hot reload applies to the binary client's match as well.
    let rules = std::fs::read_to_string(game.join("arena.lua")).unwrap();
    std::fs::write(
        game.join("arena.lua"),
        rules.replace("local RULES_VERSION = 1", "local RULES_VERSION = 5"),
    )
    .unwrap();
    fa.expect("match.state", WAIT, |v| v["payload"]["rules"] == 5);
    jb.expect("match.state", WAIT, |v| v["payload"]["rules"] == 5);
    assert!(s.stop().success());
}

/// What the asobi JS SDK does with a session: keep-alive from the start, `setToken` (another
/// `session.connect` on the open socket), and the expired-token path (it waits for reason
/// `invalid_token`, and the socket stays usable).
#[test]
fn session_flow_as_the_js_sdk_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let s = Server::start(&dir.path().join("data"), &game, &Opts::default());
    let p = s.register("sdk-user");
    let mut w = s.ws().0;
    w.send(json!({"type": "session.connect", "cid": "1", "payload": {"token": "expired"}}));
    let e = expect_error(&mut w, "unauthenticated");
    assert_eq!(
        (e["payload"]["reason"].as_str(), e["cid"].as_str()),
        (Some("invalid_token"), Some("1"))
    );
    let c = w.connect(&p.access);
    assert_eq!(c["payload"]["player_id"], p.id.as_str());
    assert_eq!(c["payload"]["wire"], "json");
    // setToken: a refreshed token on the live socket.
    let (status, r) = s.post("/api/v1/auth/refresh", json!({"refresh_token": p.refresh}));
    assert_eq!(status, 200, "{r}");
    w.send(json!({"type": "session.connect", "cid": "2", "payload": {"token": r["access_token"]}}));
    let again = w.expect("session.connected", WAIT, |v| v["cid"] == "2");
    assert_eq!(again["payload"]["player_id"], p.id.as_str());
    // A bad token on the open session is refused and the session keeps working.
    w.send(json!({"type": "session.connect", "cid": "3", "payload": {"token": "nope"}}));
    let e = expect_error(&mut w, "unauthenticated");
    assert_eq!(e["payload"]["reason"], "invalid_token");
    w.send(json!({"type": "match.list", "cid": "4", "payload": {}}));
    w.expect("match.list", WAIT, |v| v["cid"] == "4");
}
