//! Voting over real sockets, on SQLite and PostgreSQL: a match script starts votes from
//! `vote_requested`, players cast and veto over the WebSocket, every `match.vote_*` push
//! arrives, `vote_resolved` sees the result, and the history routes serve what was stored.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A council: an input `{start = <vote config>}` asks for a vote, which `vote_requested`
/// returns on the next tick; `vote_resolved` keeps what it was told.
const COUNCIL: &str = r#"
match_size = 2
max_players = 4
veto_tokens_per_player = 1
vote_templates = {
  quick = { method = "plurality", window_type = "ready_up", window_ms = 5000 },
}
function init(config) return { resolved = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  if input.start then state.want = input.start end
  return state
end
function tick(state) return state end
function vote_requested(state)
  local v = state.want
  state.want = nil
  return v
end
function vote_resolved(template, result, state)
  state.resolved[#state.resolved + 1] = { template = template, winner = result.winner or "none",
    total = result.total_votes, status = result.status or "ok" }
  return state
end
function get_state(p, state) return { resolved = state.resolved } end
"#;

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    std::fs::write(
        game.join("config.lua"),
        "return { council = \"council.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("council.lua"), COUNCIL).unwrap();
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        ..Opts::default()
    };
    Server::start(data, game, &opts)
}

fn code(v: &Value) -> &str {
    v["payload"]["error"]["code"].as_str().unwrap_or("")
}

fn reason(v: &Value) -> &str {
    v["payload"]["reason"].as_str().unwrap_or("")
}

/// Sends a frame with a cid and returns the reply to it (skipping pushes).
fn ask(ws: &mut Ws, kind: &str, cid: &str, payload: Value) -> Value {
    ws.send(json!({"type": kind, "cid": cid, "payload": payload}));
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(v) = ws.recv(deadline.saturating_duration_since(std::time::Instant::now())) {
        if v["cid"] == cid {
            return v;
        }
        if v["type"] != "match.state" && seen.len() < 10 {
            seen.push(v);
        }
    }
    panic!("no reply to {kind} {cid}; saw {seen:?}");
}

fn start_vote(a: &mut Ws, b: &mut Ws, config: Value) -> String {
    a.send(json!({"type": "match.input", "payload": {"start": config}}));
    let sa = a.expect("match.vote_start", WAIT, |_| true);
    let sb = b.expect("match.vote_start", WAIT, |_| true);
    assert_eq!(sa["payload"], sb["payload"]);
    sa["payload"]["vote_id"].as_str().unwrap().to_owned()
}

fn votes_end_to_end(s: &Server) {
    let pa = s.register("vote_a");
    let pb = s.register("vote_b");
    let pc = s.register("vote_c");
    let (mut a, _) = s.ws();
    a.connect(&pa.access);
    let (mut b, _) = s.ws();
    b.connect(&pb.access);
    let (mut c, _) = s.ws();
    c.connect(&pc.access);
    a.send(json!({"type": "matchmaker.add", "payload": {"mode": "council"}}));
    b.send(json!({"type": "matchmaker.add", "payload": {"mode": "council"}}));
    let matched = a.expect("match.matched", WAIT, |_| true);
    b.expect("match.matched", WAIT, |_| true);
    let match_id = matched["payload"]["match_id"].as_str().unwrap().to_owned();

    // Not in a match: asobi's not_in_match.
    let r = ask(
        &mut c,
        "vote.cast",
        "c1",
        json!({"vote_id": "x", "option_id": "a"}),
    );
    assert_eq!(
        (code(&r), reason(&r)),
        ("match.not_in_match", "not_in_match"),
        "{r}"
    );

    // 1. A live plurality vote from a template, closed early by ready-up.
    let id = start_vote(
        &mut a,
        &mut b,
        json!({"template": "quick", "options": [{"id": "x", "label": "X"}, {"id": "y", "label": "Y"}]}),
    );
    let r = ask(
        &mut a,
        "vote.cast",
        "v1",
        json!({"vote_id": id, "option_id": "x"}),
    );
    assert_eq!(r["type"], "vote.cast_ok", "{r}");
    assert_eq!(r["payload"], json!({"success": true}));
    let tally = b.expect("match.vote_tally", WAIT, |_| true);
    assert_eq!(tally["payload"]["tallies"], json!({"x": 1, "y": 0}));
    assert_eq!(tally["payload"]["total_votes"], 1);
    assert!(tally["payload"]["time_remaining_ms"].as_u64().unwrap() <= 5000);
    for (cid, bad, want) in [
        (
            "v2",
            json!({"vote_id": id, "option_id": "nope"}),
            "invalid_option",
        ),
        (
            "v3",
            json!({"vote_id": id, "option_id": 7}),
            "invalid_option",
        ),
        (
            "v4",
            json!({"vote_id": id, "option_id": ["x"]}),
            "invalid_option",
        ),
        (
            "v5",
            json!({"vote_id": "no-such-vote", "option_id": "x"}),
            "vote_not_found",
        ),
    ] {
        let r = ask(&mut b, "vote.cast", cid, bad);
        assert_eq!((code(&r), reason(&r)), ("ws.request_failed", want), "{r}");
    }
    let r = ask(&mut b, "vote.cast", "v6", json!({"vote_id": id}));
    assert_eq!(
        r["type"], "error",
        "a cast without option_id is refused: {r}"
    );
    let r = ask(
        &mut b,
        "vote.cast",
        "v7",
        json!({"vote_id": id, "option_id": "x"}),
    );
    assert_eq!(r["type"], "vote.cast_ok");
    // Everyone voted: the window closes now, not after 5 s.
    let result = a.expect("match.vote_result", Duration::from_secs(2), |_| true);
    b.expect("match.vote_result", WAIT, |_| true);
    let p = &result["payload"];
    assert_eq!(p["vote_id"], id.as_str());
    assert_eq!(p["winner"], "x");
    assert_eq!(p["counts"], json!({"x": 2, "y": 0}));
    assert_eq!(p["distribution"], json!({"x": 1.0, "y": 0.0}));
    assert_eq!(p["total_votes"], 2);
    assert_eq!(p["turnout"], 1.0);
    // vote_resolved ran with the template and the result.
    a.expect("match.state", WAIT, |v| {
        v["payload"]["resolved"]
            == json!([{"template": "quick", "winner": "x", "total": 2, "status": "ok"}])
    });
    let r = ask(
        &mut a,
        "vote.cast",
        "v8",
        json!({"vote_id": id, "option_id": "y"}),
    );
    assert_eq!(reason(&r), "vote_closed", "{r}");

    // 2. Veto: a's one token ends the vote; a second veto has no token left.
    let opts = json!([{"id": "p"}, {"id": "q"}, {"id": "r"}]);
    let id2 = start_vote(
        &mut a,
        &mut b,
        json!({"options": opts, "veto_enabled": true, "template": "path"}),
    );
    let r = ask(&mut a, "vote.veto", "x1", json!({"vote_id": id2}));
    assert_eq!(r["type"], "vote.veto_ok", "{r}");
    assert_eq!(r["payload"], json!({"success": true}));
    let vetoed = b.expect("match.vote_vetoed", WAIT, |_| true);
    assert_eq!(
        vetoed["payload"],
        json!({"vote_id": id2, "vetoed_by": pa.id})
    );
    let id3 = start_vote(
        &mut a,
        &mut b,
        json!({"options": opts, "veto_enabled": true}),
    );
    let r = ask(&mut a, "vote.veto", "x2", json!({"vote_id": id3}));
    assert_eq!(reason(&r), "no_veto_tokens", "{r}");
    let r = ask(&mut b, "vote.veto", "x3", json!({"vote_id": "nope"}));
    assert_eq!(reason(&r), "vote_not_found", "{r}");
    let r = ask(&mut b, "vote.veto", "x4", json!({"vote_id": id3}));
    assert_eq!(r["type"], "vote.veto_ok", "b still holds a token");

    // 3. A hidden ranked vote: no tally frames, revotes limited, the runoff decides.
    let id4 = start_vote(
        &mut a,
        &mut b,
        json!({"options": opts, "method": "ranked", "visibility": "hidden", "window_ms": 800,
               "max_revotes": 1, "template": "ranked_pick"}),
    );
    let r = ask(
        &mut a,
        "vote.cast",
        "r1",
        json!({"vote_id": id4, "option_id": ["q", "r"]}),
    );
    assert_eq!(r["type"], "vote.cast_ok");
    let r = ask(
        &mut a,
        "vote.cast",
        "r2",
        json!({"vote_id": id4, "option_id": ["r", "q"]}),
    );
    assert_eq!(r["type"], "vote.cast_ok", "one change allowed");
    let r = ask(
        &mut a,
        "vote.cast",
        "r3",
        json!({"vote_id": id4, "option_id": ["p"]}),
    );
    assert_eq!(
        (code(&r), reason(&r)),
        ("rate_limited", "rate_limited"),
        "{r}"
    );
    let r = ask(
        &mut b,
        "vote.cast",
        "r4",
        json!({"vote_id": id4, "option_id": ["r"]}),
    );
    assert_eq!(r["type"], "vote.cast_ok");
    let result = b.expect("match.vote_result", WAIT, |_| true);
    assert_eq!(result["payload"]["winner"], "r");
    assert_eq!(result["payload"]["counts"], json!({"p": 0, "q": 0, "r": 2}));
    // No tally was ever sent for the hidden vote.
    let mut saw_tally = false;
    let until = std::time::Instant::now() + Duration::from_millis(500);
    while let Some(v) = a.recv(until.saturating_duration_since(std::time::Instant::now())) {
        saw_tally |= v["type"] == "match.vote_tally" && v["payload"]["vote_id"] == id4.as_str();
    }
    assert!(!saw_tally);

    // 4. History: participants only; hidden ballots withheld; unknown ids 404.
    let get = |path: &str, token: &str| s.http("GET", path, Some(token), None);
    let path = format!("/api/v1/matches/{match_id}/votes");
    // The rows are written behind the broadcast: give the bridge a moment.
    let mut votes = Value::Null;
    for _ in 0..50 {
        let (status, body) = get(&path, &pa.access);
        assert_eq!(status, 200, "{body}");
        if body["votes"].as_array().map_or(0, Vec::len) == 2 {
            votes = body["votes"].clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = votes
        .as_array()
        .expect("two stored votes (the vetoed ones are not stored)");
    assert_eq!(list[0]["id"], id4.as_str(), "newest first");
    assert_eq!(list[0]["method"], "ranked");
    assert_eq!(list[0]["template"], "ranked_pick");
    assert!(
        list[0].get("votes_cast").is_none(),
        "hidden ballots are withheld"
    );
    assert_eq!(list[1]["id"], id.as_str());
    assert_eq!(
        list[1]["votes_cast"],
        json!({pa.id.clone(): "x", pb.id.clone(): "x"})
    );
    assert_eq!(list[1]["result"]["winner"], "x");
    assert_eq!(list[1]["eligible_count"], 2);
    assert_eq!(list[1]["window_ms"], 5000);
    assert_eq!(list[1]["turnout"], 1.0);
    let (status, body) = get(&path, &pc.access);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, one) = get(&format!("/api/v1/votes/{id}"), &pc.access);
    assert_eq!(status, 200, "any signed-in player reads one vote by id");
    assert_eq!(one["winner"], Value::Null);
    assert_eq!(one["result"]["counts"], json!({"x": 2, "y": 0}));
    let (status, body) = get("/api/v1/votes/does-not-exist", &pa.access);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("vote.not_found")),
        "{body}"
    );
    let (status, _) = s.http("GET", &format!("/api/v1/votes/{id}"), None, None);
    assert_eq!(status, 401);
}

#[test]
fn votes_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    votes_end_to_end(&s);
}

#[test]
fn votes_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    votes_end_to_end(&s);
}
