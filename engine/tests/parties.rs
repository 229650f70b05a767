//! Parties over real sockets against the real binary, two shards, members placed on different
//! ones: every `party.*` message and `/api/v1/parties` route with its failure codes, the party
//! chat channel, a party of four matched onto one team of a 4v4, a member leaving cancelling
//! the party's ticket, and a dropped member keeping the seat within the grace window (and
//! losing it after). Nothing is persisted, so there is no storage backend to vary.

mod common;

use std::time::{Duration, Instant};

use common::{Opts, Player, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(400);
/// The server's reconnect grace in these tests (parties use it for dropped members).
const GRACE_MS: u64 = 1500;

/// A 4v4: two teams of four.
const SQUAD: &str = r#"
match_size = 8
max_players = 8
teams = 2
strategy = "fill"
function init(config) return {} end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
"#;

/// The same 4v4 with bots filling the queue up to eight players.
const SQUAD_BOTS: &str = r#"
match_size = 8
max_players = 8
teams = 2
strategy = "fill"
bots = { min_players = 8 }
function init(config) return {} end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
"#;

/// A 2v2 whose script keeps the teams and parties `init(config)` received, notes the team
/// `join` finds for each player, and shows all three in its state.
const DUO: &str = r#"
match_size = 4
max_players = 4
teams = 2
strategy = "fill"
function init(config)
    local team_of = {}
    for i, team in ipairs(config.teams) do
        for _, p in ipairs(team) do team_of[p] = i end
    end
    return { teams = config.teams, parties = config.parties, team_of = team_of, joined = {} }
end
function join(p, state)
    state.joined[p] = state.team_of[p]
    return state
end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
function get_state(p, state)
    return { teams = state.teams, parties = state.parties, joined = state.joined }
end
"#;

fn start() -> (Server, tempfile::TempDir, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { squad = \"squad.lua\", squad_bots = \"squad_bots.lua\", duo = \"duo.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("duo.lua"), DUO).unwrap();
    std::fs::write(game.path().join("squad.lua"), SQUAD).unwrap();
    std::fs::write(game.path().join("squad_bots.lua"), SQUAD_BOTS).unwrap();
    let opts = Opts {
        shards: Some(2),
        database_url: None,
        env: vec![
            ("ASOBI_WS_MSG_RATE".into(), "0".into()),
            ("ASOBI_RECONNECT_GRACE_MS".into(), GRACE_MS.to_string()),
        ],
    };
    let s = Server::start(data.path(), game.path(), &opts);
    (s, data, game)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn online(s: &Server, who: &Player, shard: usize) -> Ws {
    let mut ws = s.ws_on(shard);
    ws.connect(&who.access);
    ws
}

/// Sends `kind` with `payload` and returns the reply (same type, same cid) or the error frame.
fn call(ws: &mut Ws, kind: &str, payload: Value) -> Value {
    let cid = format!("{kind}-{}", common::unique("c"));
    ws.send(json!({"type": kind, "cid": cid, "payload": payload}));
    let deadline = Instant::now() + WAIT;
    while let Some(v) = ws.recv(deadline.saturating_duration_since(Instant::now())) {
        if v["cid"] == cid.as_str() {
            return v;
        }
    }
    panic!("no reply to {kind}");
}

fn ok(ws: &mut Ws, kind: &str, payload: Value) -> Value {
    let v = call(ws, kind, payload);
    assert_eq!(v["type"], kind, "{v}");
    v["payload"].clone()
}

fn err(ws: &mut Ws, kind: &str, payload: Value) -> String {
    let v = call(ws, kind, payload);
    assert_eq!(v["type"], "error", "{kind} should fail: {v}");
    v["payload"]["error"]["code"].as_str().unwrap().to_owned()
}

fn members(view: &Value) -> Vec<String> {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["player_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The next `party.updated` satisfying `pred`.
fn updated(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    ws.expect("party.updated", WAIT, |v| pred(&v["payload"]))["payload"].clone()
}

fn silent(ws: &mut Ws, kind: &str) {
    let deadline = Instant::now() + QUIET;
    while let Some(v) = ws.recv(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(v["type"], kind, "unexpected {v}");
    }
}

/// Reads until one frame of each kind arrived (in any order; for `party.updated` the one
/// whose queue is empty) and returns their payloads in the order of `kinds`.
fn collect(ws: &mut Ws, kinds: &[&str]) -> Vec<Value> {
    let mut got: Vec<Option<Value>> = vec![None; kinds.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.iter().any(Option::is_none) {
        let Some(v) = ws.recv(deadline.saturating_duration_since(Instant::now())) else {
            panic!("missing some of {kinds:?}: got {got:?}");
        };
        for (i, k) in kinds.iter().enumerate() {
            let wanted = v["type"] == *k && (*k != "party.updated" || got[0].is_some());
            if wanted && got[i].is_none() {
                got[i] = Some(v["payload"].clone());
            }
        }
    }
    got.into_iter().flatten().collect()
}

struct Api<'a>(&'a Server);

impl Api<'_> {
    fn call(&self, method: &str, path: &str, who: &Player, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.0
            .http(method, path, Some(&who.access), body.as_deref())
    }
}

#[test]
fn parties_over_ws_rest_and_chat_across_shards() {
    let (s, _d, _g) = start();
    let (a, b, c, d) = (
        s.register("pa"),
        s.register("pb"),
        s.register("pc"),
        s.register("pd"),
    );
    let mut wa = online(&s, &a, 0);
    let mut wb = online(&s, &b, 1);
    let mut wc = online(&s, &c, 0);
    let mut wd = online(&s, &d, 1);

    // Bad input first.
    assert_eq!(
        err(&mut wa, "party.create", json!({"privacy": "secret"})),
        "invalid_payload"
    );
    assert_eq!(
        err(&mut wa, "party.create", json!({"max_size": 99})),
        "invalid_payload"
    );
    assert_eq!(err(&mut wa, "party.join", json!({})), "missing_field");
    assert_eq!(
        err(&mut wa, "party.join", json!({"party_id": "nope"})),
        "party.not_found"
    );

    // Create an invite-only party of three; a second party for the same leader is refused.
    let v = ok(
        &mut wa,
        "party.create",
        json!({"privacy": "invite_only", "max_size": 3}),
    );
    let pid = v["party_id"].as_str().unwrap().to_owned();
    assert_eq!(v["leader"], a.id.as_str());
    assert_eq!(v["privacy"], "invite_only");
    assert_eq!(v["max_size"], 3);
    assert_eq!(members(&v), [a.id.as_str()]);
    assert_eq!(v["members"][0]["online"], true);
    assert_eq!(v["queue"], Value::Null);
    assert_eq!(
        err(&mut wa, "party.create", json!({})),
        "party.already_member"
    );
    let p = json!({"party_id": pid});

    // b (other shard) cannot join uninvited, nor invite; a invites b, b hears of it and accepts.
    assert_eq!(err(&mut wb, "party.join", p.clone()), "party.invite_only");
    assert_eq!(err(&mut wb, "party.get", p.clone()), "party.not_member");
    assert_eq!(
        err(
            &mut wb,
            "party.invite",
            json!({"party_id": pid, "player_id": c.id})
        ),
        "party.not_member"
    );
    assert_eq!(
        err(
            &mut wa,
            "party.invite",
            json!({"party_id": pid, "player_id": a.id})
        ),
        "party.self_target"
    );
    let v = ok(
        &mut wa,
        "party.invite",
        json!({"party_id": pid, "player_id": b.id}),
    );
    assert_eq!(v["invites"], json!([b.id]));
    let inv = wb.expect("party.invited", WAIT, |_| true)["payload"].clone();
    assert_eq!(inv["party_id"], pid.as_str());
    assert_eq!(inv["from"], a.id.as_str());
    assert_eq!(
        ok(&mut wb, "party.get", p.clone())["party_id"],
        pid.as_str()
    );
    let v = ok(&mut wb, "party.accept", p.clone());
    assert_eq!(members(&v), [a.id.as_str(), b.id.as_str()]);
    let v = updated(&mut wa, |v| v["members"].as_array().unwrap().len() == 2);
    assert_eq!(v["invites"], json!([]));
    assert_eq!(
        err(&mut wb, "party.accept", p.clone()),
        "party.already_member"
    );

    // c declines without an invite, then with one; the leader sees the invite go.
    assert_eq!(
        err(&mut wc, "party.decline", p.clone()),
        "party.invite_not_found"
    );
    assert_eq!(
        err(&mut wc, "party.accept", p.clone()),
        "party.invite_not_found"
    );
    ok(
        &mut wa,
        "party.invite",
        json!({"party_id": pid, "player_id": c.id}),
    );
    wc.expect("party.invited", WAIT, |_| true);
    assert_eq!(ok(&mut wc, "party.decline", p.clone())["success"], true);
    updated(&mut wa, |v| v["invites"] == json!([]));

    // c and d are invited; c joins (an invite makes `party.join` work too), d finds it full.
    ok(
        &mut wa,
        "party.invite",
        json!({"party_id": pid, "player_id": c.id}),
    );
    ok(
        &mut wa,
        "party.invite",
        json!({"party_id": pid, "player_id": d.id}),
    );
    assert_eq!(members(&ok(&mut wc, "party.join", p.clone())).len(), 3);
    assert_eq!(err(&mut wd, "party.accept", p.clone()), "party.full");

    // Party chat: members only, members on both shards hear it.
    let chan = format!("party:{pid}");
    for ws in [&mut wa, &mut wb] {
        ws.send(json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": chan}}));
        ws.expect("chat.joined", WAIT, |v| v["cid"] == "j");
    }
    wd.send(json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": chan}}));
    let e = wd.expect("error", WAIT, |v| v["cid"] == "j");
    assert_eq!(e["payload"]["error"]["code"], "forbidden");
    wa.send(json!({"type": "chat.send", "payload": {"channel_id": chan, "content": "gg"}}));
    let m = wb.expect("chat.message", WAIT, |_| true);
    assert_eq!(m["payload"]["content"], "gg");
    assert_eq!(m["payload"]["channel_id"], chan.as_str());

    // Kick and promote are the leader's; the kicked member is told.
    assert_eq!(
        err(
            &mut wb,
            "party.kick",
            json!({"party_id": pid, "player_id": c.id})
        ),
        "party.not_leader"
    );
    assert_eq!(
        err(
            &mut wa,
            "party.kick",
            json!({"party_id": pid, "player_id": d.id})
        ),
        "party.not_member"
    );
    let v = ok(
        &mut wa,
        "party.kick",
        json!({"party_id": pid, "player_id": c.id}),
    );
    assert_eq!(members(&v), [a.id.as_str(), b.id.as_str()]);
    let r = wc.expect("party.removed", WAIT, |_| true)["payload"].clone();
    assert_eq!(r, json!({"party_id": pid, "reason": "kicked"}));
    assert_eq!(err(&mut wc, "party.get", p.clone()), "party.not_member");
    let v = ok(
        &mut wa,
        "party.promote",
        json!({"party_id": pid, "player_id": b.id}),
    );
    assert_eq!(v["leader"], b.id.as_str());
    updated(&mut wb, |v| v["leader"] == b.id.as_str());
    assert_eq!(
        err(
            &mut wa,
            "party.promote",
            json!({"party_id": pid, "player_id": a.id})
        ),
        "party.not_leader"
    );
    assert_eq!(err(&mut wa, "party.close", p.clone()), "party.not_leader");
    assert_eq!(err(&mut wa, "party.cancel", p.clone()), "party.not_leader");
    assert_eq!(err(&mut wb, "party.cancel", p.clone()), "party.not_queued");

    // The leader leaves: the longest-standing member leads. Then a closes it.
    assert_eq!(ok(&mut wb, "party.leave", p.clone())["success"], true);
    let v = updated(&mut wa, |v| v["leader"] == a.id.as_str());
    assert_eq!(members(&v), [a.id.as_str()]);
    assert_eq!(err(&mut wb, "party.leave", p.clone()), "party.not_member");
    assert_eq!(ok(&mut wa, "party.close", p.clone())["success"], true);
    wa.expect("party.closed", WAIT, |v| {
        v["payload"]["party_id"] == pid.as_str()
    });
    assert_eq!(err(&mut wa, "party.get", p.clone()), "party.not_found");
    // Party chat is closed to the former members.
    wb.send(json!({"type": "chat.join", "cid": "j2", "payload": {"channel_id": chan}}));
    let e = wb.expect("error", WAIT, |v| v["cid"] == "j2");
    assert_eq!(e["payload"]["error"]["code"], "forbidden");

    // The same over REST: an open party created by c.
    let api = Api(&s);
    assert_eq!(s.http("POST", "/api/v1/parties", None, None).0, 401);
    let (st, v) = api.call("POST", "/api/v1/parties", &c, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["privacy"], "open");
    assert_eq!(v["max_size"], 4);
    let rid = v["party_id"].as_str().unwrap().to_owned();
    let path = |tail: &str| format!("/api/v1/parties/{rid}{tail}");
    let (st, v) = api.call("GET", &path(""), &d, None);
    assert_eq!((st, code(&v)), (403, "party.not_member"));
    let (st, v) = api.call("GET", "/api/v1/parties/unknown", &d, None);
    assert_eq!((st, code(&v)), (404, "party.not_found"));
    let (st, v) = api.call("POST", &path("/join"), &d, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(members(&v), [c.id.as_str(), d.id.as_str()]);
    updated(&mut wc, |v| v["members"].as_array().unwrap().len() == 2);
    let (st, v) = api.call("POST", &path("/join"), &a, None);
    assert_eq!(st, 200, "{v}");
    let (st, v) = api.call(
        "POST",
        &path("/invite"),
        &c,
        Some(json!({"player_id": b.id})),
    );
    assert_eq!(st, 200, "{v}");
    wb.expect("party.invited", WAIT, |v| {
        v["payload"]["party_id"] == rid.as_str()
    });
    let (st, v) = api.call("POST", &path("/decline"), &b, None);
    assert_eq!((st, v["success"].clone()), (200, json!(true)));
    let (st, v) = api.call("POST", &path("/accept"), &b, None);
    assert_eq!((st, code(&v)), (404, "party.invite_not_found"));
    let (st, _) = api.call(
        "POST",
        &path("/invite"),
        &c,
        Some(json!({"player_id": b.id})),
    );
    assert_eq!(st, 200);
    let (st, v) = api.call("POST", &path("/accept"), &b, None);
    assert_eq!(st, 200, "{v}");
    let (st, v) = api.call("POST", &path("/join"), &s.register("pe"), None);
    assert_eq!((st, code(&v)), (409, "party.full"));
    let (st, v) = api.call("POST", &path("/kick"), &d, Some(json!({"player_id": a.id})));
    assert_eq!((st, code(&v)), (403, "party.not_leader"));
    let (st, v) = api.call("POST", &path("/kick"), &c, Some(json!({})));
    assert_eq!((st, code(&v)), (400, "missing_field"));
    let (st, v) = api.call("POST", &path("/kick"), &c, Some(json!({"player_id": a.id})));
    assert_eq!(st, 200, "{v}");
    wa.expect("party.removed", WAIT, |v| {
        v["payload"]["reason"] == "kicked"
    });
    let (st, v) = api.call(
        "POST",
        &path("/promote"),
        &c,
        Some(json!({"player_id": d.id})),
    );
    assert_eq!((st, v["leader"].clone()), (200, json!(d.id)));
    // Queue and cancel over REST (the new leader d).
    let (st, v) = api.call("POST", &path("/queue"), &c, Some(json!({"mode": "squad"})));
    assert_eq!((st, code(&v)), (403, "party.not_leader"));
    let (st, v) = api.call("POST", &path("/queue"), &d, Some(json!({"mode": "nope"})));
    assert_eq!((st, code(&v)), (400, "matchmaker.unknown_mode"));
    let (st, v) = api.call("POST", &path("/queue"), &d, Some(json!({"mode": "squad"})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "pending");
    let ticket = v["ticket_id"].as_str().unwrap().to_owned();
    let (_, v) = api.call("GET", &path(""), &c, None);
    assert_eq!(v["queue"]["ticket_id"], ticket.as_str());
    let (st, v) = api.call("POST", &path("/join"), &a, None);
    assert_eq!((st, code(&v)), (409, "party.queued"));
    // Members see the party's ticket; only the leader cancels it.
    let (st, v) = api.call("GET", &format!("/api/v1/matchmaker/{ticket}"), &b, None);
    assert_eq!((st, v["status"].clone()), (200, json!("pending")));
    let (st, v) = api.call("DELETE", &path("/queue"), &c, None);
    assert_eq!((st, code(&v)), (403, "party.not_leader"));
    let (st, v) = api.call("DELETE", &path("/queue"), &d, None);
    assert_eq!((st, v["queue"].clone()), (200, Value::Null));
    let (st, v) = api.call("DELETE", &path("/queue"), &d, None);
    assert_eq!((st, code(&v)), (404, "party.not_queued"));
    let mut cancelled = false;
    for _ in 0..100 {
        let (_, v) = api.call("GET", &format!("/api/v1/matchmaker/{ticket}"), &d, None);
        if v["status"] == "cancelled" {
            cancelled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cancelled, "the ticket was cancelled");
    let (st, v) = api.call("POST", &path("/leave"), &b, None);
    assert_eq!((st, v["success"].clone()), (200, json!(true)));
    let (st, v) = api.call("DELETE", &path(""), &c, None);
    assert_eq!((st, code(&v)), (403, "party.not_leader"));
    let (st, v) = api.call("DELETE", &path(""), &d, None);
    assert_eq!((st, v["success"].clone()), (200, json!(true)));
    wc.expect("party.closed", WAIT, |v| {
        v["payload"]["party_id"] == rid.as_str()
    });
    let (st, v) = api.call("GET", &path(""), &d, None);
    assert_eq!((st, code(&v)), (404, "party.not_found"));
}

#[test]
fn a_party_is_matched_onto_one_team_and_a_leaver_cancels_its_ticket() {
    let (s, _d, _g) = start();
    let party: Vec<Player> = (0..4).map(|i| s.register(&format!("sq{i}"))).collect();
    let solos: Vec<Player> = (0..4).map(|i| s.register(&format!("so{i}"))).collect();
    // Members alternate between the two shards.
    let mut pws: Vec<Ws> = party
        .iter()
        .enumerate()
        .map(|(i, p)| online(&s, p, i % 2))
        .collect();
    let mut sws: Vec<Ws> = solos
        .iter()
        .enumerate()
        .map(|(i, p)| online(&s, p, i % 2))
        .collect();

    let v = ok(&mut pws[0], "party.create", json!({}));
    let pid = v["party_id"].as_str().unwrap().to_owned();
    let p = json!({"party_id": pid});
    for ws in pws.iter_mut().skip(1) {
        ok(ws, "party.join", p.clone());
    }
    // A member is not the leader; a too-large party for a team is refused (5 > 4) elsewhere.
    assert_eq!(
        err(
            &mut pws[1],
            "party.queue",
            json!({"party_id": pid, "mode": "squad"})
        ),
        "party.not_leader"
    );

    // First: a member leaving cancels the ticket.
    let q = ok(
        &mut pws[0],
        "party.queue",
        json!({"party_id": pid, "mode": "squad", "properties": {"skill": 1200}}),
    );
    let ticket = q["ticket_id"].as_str().unwrap().to_owned();
    assert_eq!(q["players_needed"], 8);
    updated(&mut pws[3], |v| v["queue"]["ticket_id"] == ticket.as_str());
    // Members cannot queue alone while the party's ticket stands.
    let e = call(&mut pws[2], "matchmaker.add", json!({"mode": "squad"}));
    assert_eq!(e["type"], "matchmaker.queued", "{e}");
    assert_eq!(
        e["payload"]["ticket_id"],
        ticket.as_str(),
        "the party's ticket"
    );
    assert_eq!(ok(&mut pws[3], "party.leave", p.clone())["success"], true);
    let v = updated(&mut pws[0], |v| v["members"].as_array().unwrap().len() == 3);
    assert_eq!(v["queue"], Value::Null);
    let st = ok(&mut pws[0], "party.get", p.clone());
    assert_eq!(st["queue"], Value::Null);
    let api = Api(&s);
    let mut status = Value::Null;
    for _ in 0..100 {
        status = api
            .call(
                "GET",
                &format!("/api/v1/matchmaker/{ticket}"),
                &party[0],
                None,
            )
            .1;
        if status["status"] == "cancelled" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status["status"], "cancelled", "{status}");

    // Back to four; queue again and fill with four solos.
    ok(&mut pws[3], "party.join", p.clone());
    let q = ok(
        &mut pws[0],
        "party.queue",
        json!({"party_id": pid, "mode": "squad"}),
    );
    let ticket = q["ticket_id"].as_str().unwrap().to_owned();
    for ws in sws.iter_mut() {
        let v = call(ws, "matchmaker.add", json!({"mode": "squad"}));
        assert_eq!(v["type"], "matchmaker.queued", "{v}");
    }
    let mut match_id = None;
    let mut teams = Value::Null;
    for ws in pws.iter_mut() {
        let got = collect(ws, &["party.matched", "match.matched", "party.updated"]);
        let m = &got[0];
        assert_eq!(m["party_id"], pid.as_str());
        assert_eq!(m["mode"], "squad");
        match_id.get_or_insert(m["match_id"].clone());
        assert_eq!(Some(&m["match_id"]), match_id.as_ref());
        teams = m["teams"].clone();
        assert_eq!(Some(&got[1]["match_id"]), match_id.as_ref());
        assert_eq!(
            got[1]["teams"], teams,
            "match.matched carries the same teams"
        );
        assert_eq!(
            got[2]["queue"],
            Value::Null,
            "the party is out of the queue"
        );
        assert_eq!(members(&got[2]).len(), 4);
    }
    for ws in sws.iter_mut() {
        let mm = ws.expect("match.matched", WAIT, |_| true)["payload"].clone();
        assert_eq!(Some(&mm["match_id"]), match_id.as_ref());
        assert_eq!(
            mm["teams"], teams,
            "a solo learns the teams from match.matched"
        );
        silent(ws, "party.matched");
    }
    let team = &teams[&party[0].id];
    assert!(team.is_u64(), "{teams}");
    for p in &party {
        assert_eq!(&teams[&p.id], team, "party members share a team: {teams}");
    }
    for p in &solos {
        assert_ne!(&teams[&p.id], team, "solos are the other team: {teams}");
    }
    let (_, st) = api.call(
        "GET",
        &format!("/api/v1/matchmaker/{ticket}"),
        &party[2],
        None,
    );
    assert_eq!(st["status"], "matched", "{st}");
}

#[test]
fn a_dropped_member_keeps_the_seat_within_grace_and_loses_it_after() {
    let (s, _d, _g) = start();
    let (a, b) = (s.register("ga"), s.register("gb"));
    let mut wa = online(&s, &a, 0);
    let mut wb = online(&s, &b, 1);
    let v = ok(&mut wa, "party.create", json!({}));
    let pid = v["party_id"].as_str().unwrap().to_owned();
    let p = json!({"party_id": pid});
    ok(&mut wb, "party.join", p.clone());
    let q = ok(
        &mut wa,
        "party.queue",
        json!({"party_id": pid, "mode": "squad"}),
    );
    let ticket = q["ticket_id"].as_str().unwrap().to_owned();
    // Queueing again is answered with the same ticket, which stays.
    let again = ok(
        &mut wa,
        "party.queue",
        json!({"party_id": pid, "mode": "squad"}),
    );
    assert_eq!(again["ticket_id"], ticket.as_str());
    assert_eq!(again["already_queued"], true);
    assert_eq!(
        ok(&mut wa, "party.get", p.clone())["queue"]["ticket_id"],
        ticket.as_str()
    );

    // b's socket drops: the seat and the ticket stay, b shows offline.
    drop(wb);
    let v = updated(&mut wa, |v| v["members"][1]["online"] == false);
    assert_eq!(v["queue"]["ticket_id"], ticket.as_str());
    // b is back within grace, on the other shard: online again, same ticket.
    let mut wb = online(&s, &b, 0);
    let v = updated(&mut wa, |v| v["members"][1]["online"] == true);
    assert_eq!(v["queue"]["ticket_id"], ticket.as_str());
    assert_eq!(members(&v), [a.id.as_str(), b.id.as_str()]);
    let v = updated(&mut wb, |v| v["members"][1]["online"] == true);
    assert_eq!(v["party_id"], pid.as_str());

    // The leader drops past grace: b leads, the ticket is cancelled.
    drop(wa);
    updated(&mut wb, |v| v["members"][0]["online"] == false);
    let v = updated(&mut wb, |v| v["members"].as_array().unwrap().len() == 1);
    assert_eq!(v["leader"], b.id.as_str());
    assert_eq!(v["queue"], Value::Null);
    // a, back too late, is no longer a member.
    let mut wa = online(&s, &a, 1);
    assert_eq!(err(&mut wa, "party.get", p.clone()), "party.not_member");
    silent(&mut wb, "party.removed");
}

#[test]
fn bots_fill_around_a_party() {
    let (s, _d, _g) = start();
    let party: Vec<Player> = (0..3).map(|i| s.register(&format!("bf{i}"))).collect();
    let mut ws: Vec<Ws> = party
        .iter()
        .enumerate()
        .map(|(i, p)| online(&s, p, i % 2))
        .collect();
    let v = ok(&mut ws[0], "party.create", json!({}));
    let pid = v["party_id"].as_str().unwrap().to_owned();
    for w in ws.iter_mut().skip(1) {
        ok(w, "party.join", json!({"party_id": pid}));
    }
    ok(
        &mut ws[0],
        "party.queue",
        json!({"party_id": pid, "mode": "squad_bots"}),
    );
    // Bot fill runs every 8 s: five bots join three players, the party on one team.
    let m = ws[0].expect("party.matched", Duration::from_secs(25), |_| true)["payload"].clone();
    let teams = m["teams"].as_object().unwrap().clone();
    assert_eq!(teams.len(), 8, "{teams:?}");
    let team = &teams[&party[0].id];
    for p in &party {
        assert_eq!(&teams[&p.id], team, "{teams:?}");
    }
    let bots: Vec<&String> = teams.keys().filter(|k| k.starts_with("bot_")).collect();
    assert_eq!(
        bots.len(),
        5,
        "exactly enough bots for the players: {teams:?}"
    );
}

/// The first `match.state` whose every player has joined (the script noted their team).
fn full_state(ws: &mut Ws, players: usize) -> Value {
    ws.expect("match.state", WAIT, |v| {
        v["payload"]["joined"]
            .as_object()
            .is_some_and(|j| j.len() == players)
    })["payload"]
        .clone()
}

#[test]
fn the_script_learns_the_teams_and_parties_the_matchmaker_formed() {
    let (s, _d, _g) = start();
    let (a, b, c, d) = (
        s.register("ta"),
        s.register("tb"),
        s.register("tc"),
        s.register("td"),
    );
    // The party's two members sit on different shards, as do the two solos.
    let mut wa = online(&s, &a, 0);
    let mut wb = online(&s, &b, 1);
    let mut wc = online(&s, &c, 0);
    let mut wd = online(&s, &d, 1);
    let v = ok(&mut wa, "party.create", json!({"privacy": "invite_only"}));
    let pid = v["party_id"].as_str().unwrap().to_owned();
    ok(
        &mut wa,
        "party.invite",
        json!({"party_id": pid, "player_id": b.id}),
    );
    wb.expect("party.invited", WAIT, |_| true);
    assert_eq!(
        members(&ok(&mut wb, "party.accept", json!({"party_id": pid}))),
        [a.id.as_str(), b.id.as_str()]
    );
    ok(
        &mut wa,
        "party.queue",
        json!({"party_id": pid, "mode": "duo"}),
    );
    for ws in [&mut wc, &mut wd] {
        let v = call(ws, "matchmaker.add", json!({"mode": "duo"}));
        assert_eq!(v["type"], "matchmaker.queued", "{v}");
    }
    let mut states = Vec::new();
    let mut match_id = Value::Null;
    for ws in [&mut wa, &mut wb, &mut wc, &mut wd] {
        let mm = ws.expect("match.matched", WAIT, |_| true)["payload"].clone();
        if match_id.is_null() {
            match_id = mm["match_id"].clone();
        }
        assert_eq!(mm["match_id"], match_id, "one match for all four");
        states.push((mm, full_state(ws, 4)));
    }
    let (mm, st) = &states[0];
    // init(config) got two teams of two with the party together, and the party itself.
    let teams = st["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 2, "{st}");
    let team_of = |p: &Player| {
        teams
            .iter()
            .position(|t| t.as_array().unwrap().iter().any(|x| x == p.id.as_str()))
            .unwrap_or_else(|| panic!("{} on no team: {st}", p.id))
    };
    for t in teams {
        assert_eq!(t.as_array().unwrap().len(), 2, "{st}");
    }
    assert_eq!(team_of(&a), team_of(&b), "the party shares a team: {st}");
    assert_ne!(team_of(&c), team_of(&a), "{st}");
    assert_eq!(team_of(&c), team_of(&d), "{st}");
    assert_eq!(st["parties"], json!([[a.id, b.id]]), "leader first: {st}");
    // join saw the same teams (Lua numbers them from 1; pushes from 0).
    for p in [&a, &b, &c, &d] {
        assert_eq!(st["joined"][&p.id], json!(team_of(p) + 1), "{st}");
        assert_eq!(mm["teams"][&p.id], json!(team_of(p)), "{mm}");
    }
    // Every player sees the same lineup.
    for (other_mm, other) in &states[1..] {
        assert_eq!(other["teams"], st["teams"]);
        assert_eq!(other_mm["teams"], mm["teams"]);
    }
}
