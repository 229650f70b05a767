//! Social over real sockets, on SQLite and PostgreSQL, with two shards and players placed on
//! different ones: friends and groups over REST with their failure codes; chat channels
//! (join, send, leave, limits, access, history); direct messages; presence pushed to friends;
//! notifications from Lua (`game.notify`, `game.notify_many`) pushed live or on the next
//! connect, listed, read and deleted; `game.chat.send` from a match.

mod common;

use std::time::{Duration, Instant};

use common::{pg_db, Opts, Player, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(400);

/// A one-player match whose inputs drive `game.notify`, `game.notify_many`, `game.chat.send`.
const HERALD: &str = r#"
match_size = 1
max_players = 4
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local entry
  if input.notify then
    local r = game.notify(input.notify, "reward", "A gift", { gold = 5 })
    entry = r.ok and ("notified:" .. r.ok.id) or ("error:" .. r.error)
  elseif input.many then
    local r = game.notify_many(input.many, "news", "Patch notes")
    entry = r.ok and ("many:" .. #r.ok) or ("error:" .. r.error)
  elseif input.chat then
    local r = game.chat.send(input.chat, p, input.text)
    entry = (r == true) and "chat:true" or ("chat:" .. tostring(r.error))
  elseif input.bad then
    local r = game.notify(input.bad, "", "x")
    entry = r.ok and "ok" or ("error:" .. r.error)
  end
  state.log[#state.log + 1] = entry
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

fn start(db: Option<String>, data: &std::path::Path, game: &std::path::Path) -> Server {
    std::fs::write(
        game.join("config.lua"),
        "return { herald = \"herald.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("herald.lua"), HERALD).unwrap();
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        // The tests join 32 channels back to back; the default 60 messages/s would throttle it.
        // A callback's storage wait counts against its wall budget (50 ms by default); on a
        // machine shared with other builds one database round trip can take longer.
        env: vec![
            ("ASOBI_WS_MSG_RATE".into(), "0".into()),
            ("ASOBI_LUA_MAX_CALL_MS".into(), "2000".into()),
        ],
    };
    Server::start(data, game, &opts)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

struct Api<'a>(&'a Server);

impl Api<'_> {
    fn get(&self, path: &str, who: &Player) -> (u16, Value) {
        self.0.http("GET", path, Some(&who.access), None)
    }
    fn post(&self, path: &str, who: &Player, body: Value) -> (u16, Value) {
        self.0
            .http("POST", path, Some(&who.access), Some(&body.to_string()))
    }
    fn put(&self, path: &str, who: &Player, body: Value) -> (u16, Value) {
        self.0
            .http("PUT", path, Some(&who.access), Some(&body.to_string()))
    }
    fn delete(&self, path: &str, who: &Player) -> (u16, Value) {
        self.0.http("DELETE", path, Some(&who.access), None)
    }
}

/// A signed-in socket on `shard`.
fn online(s: &Server, who: &Player, shard: usize) -> Ws {
    let mut ws = s.ws_on(shard);
    ws.connect(&who.access);
    ws
}

/// Nothing of `kind` arrives within a short wait.
fn silent(ws: &mut Ws, kind: &str) {
    let deadline = Instant::now() + QUIET;
    while let Some(v) = ws.recv(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(v["type"], kind, "unexpected {v}");
    }
}

/// Polls until `f` holds (history is written behind, within a fraction of a second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within {WAIT:?}");
}

fn friends_and_groups(s: &Server) {
    let api = Api(s);
    let (a, b, c) = (
        s.register("soc_a"),
        s.register("soc_b"),
        s.register("soc_c"),
    );

    // Friends: request, repeat, accept, list both ways, failures.
    assert_eq!(s.http("GET", "/api/v1/friends", None, None).0, 401);
    let (st, body) = api.post("/api/v1/friends", &a, json!({"friend_id": a.id}));
    assert_eq!((st, code(&body)), (400, "social.cannot_friend_self"));
    let (st, body) = api.post("/api/v1/friends", &a, json!({"friend_id": "nobody"}));
    assert_eq!((st, code(&body)), (404, "social.friend_not_found"));
    let (st, body) = api.post("/api/v1/friends", &a, json!({}));
    assert_eq!((st, code(&body)), (400, "invalid_payload"));
    let (st, req) = api.post("/api/v1/friends", &a, json!({"friend_id": b.id}));
    assert_eq!(st, 200, "{req}");
    assert_eq!(
        (
            req["player_id"].as_str(),
            req["friend_id"].as_str(),
            req["status"].as_str()
        ),
        (Some(a.id.as_str()), Some(b.id.as_str()), Some("pending"))
    );
    let (_, again) = api.post("/api/v1/friends", &a, json!({"friend_id": b.id}));
    assert_eq!(again["id"], req["id"]);
    let (st, body) = api.put(
        &format!("/api/v1/friends/{}", a.id),
        &b,
        json!({"status": "maybe"}),
    );
    assert_eq!((st, code(&body)), (422, "validation_failed"));
    let (st, body) = api.put(
        &format!("/api/v1/friends/{}", c.id),
        &b,
        json!({"status": "accepted"}),
    );
    assert_eq!((st, code(&body)), (404, "social.friendship_not_found"));
    let (st, acc) = api.put(
        &format!("/api/v1/friends/{}", a.id),
        &b,
        json!({"status": "accepted"}),
    );
    assert_eq!(
        (st, acc["status"].as_str()),
        (200, Some("accepted")),
        "{acc}"
    );
    assert_eq!(acc["id"], req["id"]);
    for (me, other) in [(&a, &b), (&b, &a)] {
        let (_, list) = api.get("/api/v1/friends?status=accepted", me);
        let friends = list["friends"].as_array().unwrap();
        assert_eq!(friends.len(), 1, "{list}");
        assert_eq!(friends[0]["friend_id"], other.id.as_str());
    }
    // Reject a pending request.
    api.post("/api/v1/friends", &c, json!({"friend_id": b.id}));
    let (st, _) = api.put(
        &format!("/api/v1/friends/{}", c.id),
        &b,
        json!({"status": "rejected"}),
    );
    assert_eq!(st, 200);
    let (_, list) = api.get("/api/v1/friends", &c);
    assert_eq!(list["friends"], json!([]));
    // Remove ends the friendship for both.
    let (st, body) = api.delete(&format!("/api/v1/friends/{}", b.id), &a);
    assert_eq!((st, body), (200, json!({"success": true})));
    let (_, list) = api.get("/api/v1/friends", &b);
    assert_eq!(list["friends"], json!([]));
    let (st, body) = api.delete(&format!("/api/v1/friends/{}", b.id), &a);
    assert_eq!((st, code(&body)), (404, "social.friendship_not_found"));

    // Groups.
    let (st, body) = api.post("/api/v1/groups", &a, json!({"name": "x"}));
    assert_eq!((st, code(&body)), (422, "validation_failed"));
    let (st, g) = api.post(
        "/api/v1/groups",
        &a,
        json!({"name": "Raiders", "description": "we raid"}),
    );
    assert_eq!(st, 200, "{g}");
    assert_eq!(
        (g["open"].as_bool(), g["max_members"].as_i64()),
        (Some(false), Some(50))
    );
    let gid = g["id"].as_str().unwrap().to_owned();
    let path = |tail: &str| format!("/api/v1/groups/{gid}{tail}");
    assert_eq!(api.get(&path(""), &b), (200, g.clone()));
    let (st, body) = api.get("/api/v1/groups/0190f5a2-0000-7000-8000-00000000abcd", &b);
    assert_eq!((st, code(&body)), (404, "social.group_not_found"));
    let (st, body) = api.post(&path("/join"), &b, json!({}));
    assert_eq!((st, code(&body)), (403, "social.group_closed"));
    let (st, body) = api.put(&path(""), &b, json!({"open": true}));
    assert_eq!((st, code(&body)), (403, "forbidden"));
    let (st, up) = api.put(&path(""), &a, json!({"open": true, "name": "Raiders II"}));
    assert_eq!(
        (st, up["open"].as_bool(), up["name"].as_str()),
        (200, Some(true), Some("Raiders II"))
    );
    let (st, body) = api.post(&path("/join"), &b, json!({}));
    assert_eq!((st, body), (200, json!({"success": true, "group_id": gid})));
    let (st, body) = api.post(&path("/join"), &b, json!({}));
    assert_eq!((st, code(&body)), (409, "social.already_member"));
    let (_, members) = api.get(&path("/members"), &c);
    let roles: Vec<(&str, &str)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["player_id"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, [(a.id.as_str(), "owner"), (b.id.as_str(), "member")]);
    let role = |target: &Player| path(&format!("/members/{}/role", target.id));
    let (st, body) = api.put(&role(&b), &a, json!({"role": "king"}));
    assert_eq!((st, code(&body)), (400, "social.invalid_role"));
    let (st, body) = api.put(&role(&a), &b, json!({"role": "member"}));
    assert_eq!((st, code(&body)), (403, "forbidden"));
    let (st, body) = api.put(&role(&c), &a, json!({"role": "admin"}));
    assert_eq!((st, code(&body)), (404, "social.member_not_found"));
    let (st, m) = api.put(&role(&b), &a, json!({"role": "moderator"}));
    assert_eq!((st, m["role"].as_str()), (200, Some("moderator")));
    let (st, body) = api.delete(&path(&format!("/members/{}", a.id)), &b);
    assert_eq!((st, code(&body)), (403, "forbidden"));
    let (st, _) = api.delete(&path(&format!("/members/{}", b.id)), &a);
    assert_eq!(st, 200);
    let (_, members) = api.get(&path("/members"), &a);
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    // Leave is idempotent; a full group refuses.
    api.post(&path("/join"), &c, json!({}));
    assert_eq!(api.post(&path("/leave"), &c, json!({})).0, 200);
    assert_eq!(api.post(&path("/leave"), &c, json!({})).0, 200);
    let (_, tiny) = api.post(
        "/api/v1/groups",
        &a,
        json!({"name": "Solo", "open": true, "max_members": 1}),
    );
    let (st, body) = api.post(
        &format!("/api/v1/groups/{}/join", tiny["id"].as_str().unwrap()),
        &b,
        json!({}),
    );
    assert_eq!((st, code(&body)), (409, "social.group_full"));
}

fn chat_dm_and_presence(s: &Server) {
    let api = Api(s);
    let (a, b, c) = (
        s.register("chat_a"),
        s.register("chat_b"),
        s.register("chat_c"),
    );
    // b and c are friends (for presence).
    api.post("/api/v1/friends", &b, json!({"friend_id": c.id}));
    api.put(
        &format!("/api/v1/friends/{}", b.id),
        &c,
        json!({"status": "accepted"}),
    );

    let mut wa = online(s, &a, 0);
    let mut wb = online(s, &b, 1);

    // Presence: c signs in on shard 0; b (friend, shard 1) sees it; a (not a friend) does not.
    let mut wc = online(s, &c, 0);
    wb.expect("presence.updated", WAIT, |v| {
        v["payload"] == json!({"player_id": c.id, "status": "online"})
    });
    wc.send(json!({"type": "presence.update", "cid": "p1", "payload": {"status": "away"}}));
    let reply = wc.expect("presence.updated", WAIT, |v| v["cid"] == "p1");
    assert_eq!(reply["payload"], json!({"status": "away"}));
    wb.expect("presence.updated", WAIT, |v| {
        v["payload"] == json!({"player_id": c.id, "status": "away"})
    });
    wc.send(json!({"type": "presence.update", "cid": "p2", "payload": {"status": ""}}));
    let e = wc.expect("error", WAIT, |v| v["cid"] == "p2");
    assert_eq!(e["payload"]["error"]["code"], "invalid_payload");
    silent(&mut wa, "presence.updated");

    // Chat on one channel with members on both shards.
    for (ws, cid) in [(&mut wa, "j1"), (&mut wb, "j2"), (&mut wc, "j3")] {
        ws.send(
            json!({"type": "chat.join", "cid": cid, "payload": {"channel_id": "global:lobby"}}),
        );
        let j = ws.expect("chat.joined", WAIT, |v| v["cid"] == cid);
        assert_eq!(j["payload"], json!({"channel_id": "global:lobby"}));
    }
    wa.send(json!({"type": "chat.send", "payload": {"channel_id": "global:lobby", "content": "hello all"}}));
    for ws in [&mut wa, &mut wb, &mut wc] {
        let m = ws.expect("chat.message", WAIT, |_| true);
        assert_eq!(m["payload"]["channel_id"], "global:lobby");
        assert_eq!(m["payload"]["sender_id"], a.id.as_str());
        assert_eq!(m["payload"]["content"], "hello all");
        assert!(m["payload"]["sent_at"].as_i64().unwrap() > 1_700_000_000_000);
    }
    // Oversize content is dropped without a reply, as asobi does.
    let big = "x".repeat(2001);
    wa.send(json!({"type": "chat.send", "cid": "big", "payload": {"channel_id": "global:lobby", "content": big}}));
    silent(&mut wb, "chat.message");
    // Leave: b no longer receives.
    wb.send(json!({"type": "chat.leave", "cid": "l1", "payload": {"channel_id": "global:lobby"}}));
    let left = wb.expect("chat.left", WAIT, |v| v["cid"] == "l1");
    assert_eq!(left["payload"], json!({"channel_id": "global:lobby"}));
    wc.send(
        json!({"type": "chat.send", "payload": {"channel_id": "global:lobby", "content": "after"}}),
    );
    wa.expect("chat.message", WAIT, |v| v["payload"]["content"] == "after");
    silent(&mut wb, "chat.message");

    // Access and limits.
    let refused = |ws: &mut Ws, channel: &str, cid: &str| -> Value {
        ws.send(json!({"type": "chat.join", "cid": cid, "payload": {"channel_id": channel}}));
        ws.expect("error", WAIT, |v| v["cid"] == cid)["payload"].clone()
    };
    let e = refused(&mut wa, "lobby", "e1");
    assert_eq!(
        (e["reason"].as_str(), e["error"]["code"].as_str()),
        (Some("invalid_channel_id"), Some("chat.invalid_channel_id"))
    );
    let e = refused(&mut wa, &format!("dm:{}:{}", b.id, c.id), "e2");
    assert_eq!(
        (e["reason"].as_str(), e["error"]["code"].as_str()),
        (Some("not_authorized"), Some("forbidden"))
    );
    let (_, g) = api.post("/api/v1/groups", &b, json!({"name": "Guild", "open": true}));
    let room = format!("room:{}", g["id"].as_str().unwrap());
    let e = refused(&mut wa, &room, "e3");
    assert_eq!(e["reason"], "not_authorized");
    let e = refused(&mut wa, "world:no-such-match", "e4");
    assert_eq!(e["reason"], "not_authorized");
    // Group membership opens the room.
    api.post(
        &format!("/api/v1/groups/{}/join", g["id"].as_str().unwrap()),
        &a,
        json!({}),
    );
    wa.send(json!({"type": "chat.join", "cid": "r1", "payload": {"channel_id": room}}));
    wa.expect("chat.joined", WAIT, |v| v["cid"] == "r1");
    wb.send(json!({"type": "chat.send", "payload": {"channel_id": room, "content": "guild only"}}));
    wa.expect("chat.message", WAIT, |v| {
        v["payload"]["content"] == "guild only"
    });
    // At most 32 channels per connection (two joined so far).
    for i in 0..30 {
        let cid = format!("many{i}");
        wa.send(json!({"type": "chat.join", "cid": cid, "payload": {"channel_id": format!("global:c{i}")}}));
        wa.expect("chat.joined", WAIT, |v| v["cid"] == cid.as_str());
    }
    let e = refused(&mut wa, "global:one-too-many", "e5");
    assert_eq!(e["error"]["code"], "chat.too_many_channels");

    // History: members only, oldest first, written behind.
    eventually("lobby history", || {
        let (st, h) = api.get("/api/v1/chat/global:lobby/history", &b);
        st == 200
            && h["messages"].as_array().is_some_and(|m| {
                m.len() == 2 && m[0]["content"] == "hello all" && m[1]["content"] == "after"
            })
    });
    eventually("room history", || {
        let (_, h) = api.get(&format!("/api/v1/chat/{room}/history?limit=5"), &a);
        h["messages"]
            .as_array()
            .is_some_and(|m| m.len() == 1 && m[0]["sender_id"] == b.id.as_str())
    });
    let (st, body) = api.get(&format!("/api/v1/chat/{room}/history"), &c);
    assert_eq!((st, code(&body)), (403, "forbidden"));
    // Kicked from the group: off the room at once, and no longer allowed to write to it.
    let (st, _) = api.delete(
        &format!(
            "/api/v1/groups/{}/members/{}",
            g["id"].as_str().unwrap(),
            a.id
        ),
        &b,
    );
    assert_eq!(st, 200);
    wb.send(
        json!({"type": "chat.send", "payload": {"channel_id": room, "content": "members only"}}),
    );
    silent(&mut wa, "chat.message");
    wa.send(json!({"type": "chat.send", "cid": "k1", "payload": {"channel_id": room, "content": "let me in"}}));
    let e = wa.expect("error", WAIT, |v| v["cid"] == "k1");
    assert_eq!(e["payload"]["reason"], "not_authorized");
    let (st, _) = api.get("/api/v1/chat/lobby/history", &c);
    assert_eq!(st, 403);

    // Direct messages: b (shard 1) → c (shard 0) over WS, a → c over REST.
    wb.send(json!({"type": "dm.send", "cid": "d1", "payload": {"recipient_id": c.id, "content": "psst"}}));
    let sent = wb.expect("dm.sent", WAIT, |v| v["cid"] == "d1");
    let dm_bc = sent["payload"]["channel_id"].as_str().unwrap().to_owned();
    let mut pair = [b.id.clone(), c.id.clone()];
    pair.sort();
    assert_eq!(dm_bc, format!("dm:{}:{}", pair[0], pair[1]));
    let m = wc.expect("dm.message", WAIT, |_| true);
    assert_eq!(
        (
            m["payload"]["sender_id"].as_str(),
            m["payload"]["content"].as_str(),
            m["payload"]["channel_id"].as_str()
        ),
        (Some(b.id.as_str()), Some("psst"), Some(dm_bc.as_str()))
    );
    let (st, body) = api.post(
        "/api/v1/dm",
        &a,
        json!({"recipient_id": c.id, "content": "hi c"}),
    );
    assert_eq!((st, body["success"].as_bool()), (200, Some(true)), "{body}");
    wc.expect("dm.message", WAIT, |v| v["payload"]["content"] == "hi c");
    for (content, want) in [
        (json!(""), (400, "dm.content_empty")),
        (json!("y".repeat(2001)), (413, "dm.content_too_large")),
    ] {
        let (st, body) = api.post(
            "/api/v1/dm",
            &a,
            json!({"recipient_id": c.id, "content": content}),
        );
        assert_eq!((st, code(&body)), want);
    }
    let (st, body) = api.post(
        "/api/v1/dm",
        &a,
        json!({"recipient_id": "ghost", "content": "x"}),
    );
    assert_eq!((st, code(&body)), (404, "player.not_found"));
    eventually("dm history", || {
        let (_, h) = api.get(&format!("/api/v1/dm/{}/history", b.id), &c);
        h["channel_id"] == dm_bc.as_str()
            && h["messages"]
                .as_array()
                .is_some_and(|m| m.len() == 1 && m[0]["content"] == "psst")
    });
    // A blocked player cannot DM the blocker.
    let (st, _) = api.put(
        &format!("/api/v1/friends/{}", a.id),
        &c,
        json!({"status": "blocked"}),
    );
    assert_eq!(st, 200);
    wa.send(json!({"type": "dm.send", "cid": "d2", "payload": {"recipient_id": c.id, "content": "hey"}}));
    let e = wa.expect("error", WAIT, |v| v["cid"] == "d2");
    assert_eq!(
        (
            e["payload"]["reason"].as_str(),
            e["payload"]["error"]["code"].as_str()
        ),
        (Some("blocked"), Some("dm.blocked"))
    );
    silent(&mut wc, "dm.message");

    // DMs have a per-player budget whatever the entry point (10/s per shard).
    let limited = (0..40)
        .map(|i| {
            api.post(
                "/api/v1/dm",
                &b,
                json!({"recipient_id": a.id, "content": format!("spam {i}")}),
            )
        })
        .filter(|(st, body)| *st == 429 && code(body) == "rate_limited")
        .count();
    assert!(limited > 0, "40 DMs in a burst were never limited");

    // Dropping the socket takes c offline for friends.
    drop(wc);
    wb.expect("presence.updated", WAIT, |v| {
        v["payload"] == json!({"player_id": c.id, "status": "offline"})
    });
}

fn notifications_and_lua(s: &Server) {
    let api = Api(s);
    let (a, b, c) = (
        s.register("note_a"),
        s.register("note_b"),
        s.register("note_c"),
    );
    let mut wa = online(s, &a, 0);
    let mut wc = online(s, &c, 1);
    wc.send(json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": "global:arena"}}));
    wc.expect("chat.joined", WAIT, |_| true);

    wa.send(json!({"type": "matchmaker.add", "payload": {"mode": "herald"}}));
    wa.expect("match.matched", WAIT, |_| true);
    let mut step = 0;
    let mut input = |ws: &mut Ws, v: Value| -> String {
        step += 1;
        ws.send(json!({"type": "match.input", "payload": v}));
        let st = ws.expect("match.state", WAIT, |v| {
            v["payload"]["log"]
                .as_array()
                .is_some_and(|l| l.len() == step)
        });
        st["payload"]["log"][step - 1].as_str().unwrap().to_owned()
    };

    // c is online on the other shard: pushed live.
    let r = input(&mut wa, json!({"notify": c.id}));
    let id = r
        .strip_prefix("notified:")
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let n = wc.expect("notification.new", WAIT, |_| true);
    assert_eq!(n["payload"]["id"], id.as_str());
    assert_eq!(n["payload"]["type"], "reward");
    assert_eq!(n["payload"]["subject"], "A gift");
    assert_eq!(n["payload"]["content"], json!({"gold": 5}));
    assert_eq!(n["payload"]["read"], false);
    // b is offline: stored, then pushed when b connects, once.
    let r = input(&mut wa, json!({"notify": b.id}));
    assert!(r.starts_with("notified:"), "{r}");
    let r = input(&mut wa, json!({"many": [b.id, c.id]}));
    assert_eq!(r, "many:2");
    wc.expect("notification.new", WAIT, |v| v["payload"]["type"] == "news");
    let r = input(&mut wa, json!({"bad": b.id}));
    assert_eq!(r, "error:invalid_type");
    let mut wb = online(s, &b, 1);
    wb.expect("notification.new", WAIT, |v| {
        v["payload"]["type"] == "reward"
    });
    wb.expect("notification.new", WAIT, |v| v["payload"]["type"] == "news");
    drop(wb);
    let mut wb = online(s, &b, 0);
    silent(&mut wb, "notification.new");

    // game.chat.send reaches channel members on another shard.
    let r = input(
        &mut wa,
        json!({"chat": "global:arena", "text": "from the script"}),
    );
    assert_eq!(r, "chat:true");
    let m = wc.expect("chat.message", WAIT, |_| true);
    assert_eq!(
        (
            m["payload"]["sender_id"].as_str(),
            m["payload"]["content"].as_str()
        ),
        (Some(a.id.as_str()), Some("from the script"))
    );
    let r = input(&mut wa, json!({"chat": "nowhere", "text": "x"}));
    assert_eq!(r, "chat:invalid_channel_id");

    // REST: list (newest first, filter, limit), read, delete, other players' refused.
    let (st, list) = api.get("/api/v1/notifications", &c);
    assert_eq!(st, 200);
    let rows = list["notifications"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["type"], "news");
    assert_eq!(
        api.get("/api/v1/notifications?limit=1", &c).1["notifications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (st, body) = api.put(&format!("/api/v1/notifications/{id}/read"), &b, json!({}));
    assert_eq!((st, code(&body)), (403, "forbidden"));
    let (st, read) = api.put(&format!("/api/v1/notifications/{id}/read"), &c, json!({}));
    assert_eq!((st, read["read"].as_bool()), (200, Some(true)));
    let (_, unread) = api.get("/api/v1/notifications?read=false", &c);
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 1);
    let (st, body) = api.delete(&format!("/api/v1/notifications/{id}"), &c);
    assert_eq!((st, body), (200, json!({"success": true})));
    let (st, body) = api.delete(&format!("/api/v1/notifications/{id}"), &c);
    assert_eq!((st, code(&body)), (404, "notification.not_found"));
    assert_eq!(s.http("GET", "/api/v1/notifications", None, None).0, 401);
}

fn all(db: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(db, data.path(), game.path());
    friends_and_groups(&s);
    chat_dm_and_presence(&s);
    notifications_and_lua(&s);
    assert!(s.stop().success());
}

#[test]
fn social_on_sqlite() {
    all(None);
}

#[test]
fn social_on_postgres() {
    let Some(db) = pg_db() else { return };
    all(Some(db.url.clone()));
}

/// Signed-in sessions over every shard, from the health report.
fn sessions(s: &Server) -> u64 {
    let (status, health) = s.http("GET", "/api/v1/health", None, None);
    assert_eq!(status, 200);
    health["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sh| sh["sessions"].as_u64().unwrap())
        .sum()
}

/// A channel member that stops reading fills its socket, then its outbox (256 frames here), and is
/// dropped once a write to it has been stuck for the write timeout (1 s here), while members on
/// both shards that read get every message, in order, and keep getting messages afterwards. The
/// sender paces itself in bursts of 8, well inside the outbox: a burst larger than the outbox
/// between two runs of a session would overflow even a member that reads, which is what the
/// outbox bound means.
#[test]
fn a_member_that_stops_reading_is_dropped_and_delays_nobody() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    common::copy_example_game(game.path());
    let opts = Opts {
        shards: Some(2),
        database_url: None,
        env: vec![
            ("ASOBI_WS_MSG_RATE".into(), "0".into()),
            ("ASOBI_WS_OUTBOX".into(), "256".into()),
            ("ASOBI_WRITE_TIMEOUT_MS".into(), "1000".into()),
        ],
    };
    let s = Server::start(data.path(), game.path(), &opts);
    let channel = "global:slowpoke";
    let join = |ws: &mut Ws, cid: &str| {
        ws.send(json!({"type": "chat.join", "cid": cid, "payload": {"channel_id": channel}}));
        ws.expect("chat.joined", WAIT, |v| v["cid"] == cid);
    };
    let (sender, r0, r1, stalled) = (
        s.register("slow_sender"),
        s.register("slow_r0"),
        s.register("slow_r1"),
        s.register("slow_stalled"),
    );
    let mut ws_stalled = online(&s, &stalled, 0);
    join(&mut ws_stalled, "z");
    let mut ws_r0 = online(&s, &r0, 0);
    join(&mut ws_r0, "a");
    let mut ws_r1 = online(&s, &r1, 1);
    join(&mut ws_r1, "b");
    let mut ws_sender = online(&s, &sender, 1);
    assert_eq!(sessions(&s), 4);

    // ~2 KB per message: 5,000 of them are ~10 MB, more than the stalled socket's buffers take
    // (a receive window that does not grow while nothing is read, and a send buffer of at most
    // 4 MiB by default on Linux).
    const N: usize = 5_000;
    let body = "m".repeat(1_990);
    let readers: Vec<_> = [ws_r0, ws_r1]
        .into_iter()
        .map(|mut ws| {
            std::thread::spawn(move || {
                let mut next = 0usize;
                while next < N {
                    let Some(v) = ws.recv(WAIT) else {
                        panic!("a reading member stalled after {next} of {N} messages");
                    };
                    if v["type"] != "chat.message" {
                        continue;
                    }
                    let content = v["payload"]["content"].as_str().unwrap();
                    let (seq, _) = content.split_once(':').unwrap();
                    assert_eq!(seq.parse::<usize>().unwrap(), next, "out of order or lost");
                    next += 1;
                }
                ws
            })
        })
        .collect();
    for i in 0..N {
        ws_sender.send(json!({"type": "chat.send", "payload": {"channel_id": channel, "content": format!("{i}:{body}")}}));
        // Paced (about 2,000 messages, 4 MB, per second) so that the readers, debug builds
        // parsing every message while two other servers run beside this one, keep up.
        if i % 4 == 3 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut readers: Vec<Ws> = readers.into_iter().map(|h| h.join().unwrap()).collect();

    eventually("the stalled member is dropped", || sessions(&s) == 3);
    // Its socket still holds what was written before the drop; draining it ends well short of N.
    let mut got = 0;
    while let Some(v) = ws_stalled.recv(Duration::from_secs(2)) {
        if v["type"] == "chat.message" {
            got += 1;
        }
    }
    assert!(got < N, "the stalled member received all {got} messages");

    // The channel goes on for the others.
    ws_sender
        .send(json!({"type": "chat.send", "payload": {"channel_id": channel, "content": "after"}}));
    for ws in &mut readers {
        ws.expect("chat.message", WAIT, |v| v["payload"]["content"] == "after");
    }
    assert_eq!(sessions(&s), 3);
    assert!(s.stop().success());
}
