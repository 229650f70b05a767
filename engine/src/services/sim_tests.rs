//! Behaviour of the services on the simulation harness: virtual time, no sockets, no sleeps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::sim::{Client, Sim};
use super::Settings;

fn arena() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena")
}

fn settings() -> Settings {
    Settings {
        reconnect_grace_ms: 5_000,
        ws_msg_rate: 0,
        ..Settings::default()
    }
}

/// Two players matched into a duel, on shards `a` and `b`.
fn duel(sim: &mut Sim, a: usize, b: usize) -> (Client, Client, String) {
    let mut ca = sim.signed_in(a, "player-a");
    let mut cb = sim.signed_in(b, "player-b");
    for c in [&mut ca, &mut cb] {
        sim.send(
            c,
            json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}),
        );
        assert!(c.take("matchmaker.queued").is_some(), "{:?}", c.received);
    }
    // The matchmaker ticks once a second.
    sim.advance(Duration::from_millis(1100));
    sim.collect(&mut ca);
    sim.collect(&mut cb);
    let matched = ca.take("match.matched").expect("a is matched");
    assert!(cb.take("match.matched").is_some(), "b is matched");
    let id = matched["payload"]["match_id"].as_str().unwrap().to_owned();
    (ca, cb, id)
}

fn players_in(state: &Value) -> Vec<String> {
    state["payload"]["players"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn a_dropped_player_keeps_the_seat_through_the_grace_window_and_comes_back() {
    let mut sim = Sim::new(2, &arena(), settings()).latency(Duration::from_millis(2));
    let (mut ca, cb, id) = duel(&mut sim, 0, 1);
    sim.drop_client(cb);
    sim.advance(Duration::from_secs(4));
    sim.collect(&mut ca);
    let state = ca.last("match.state").expect("states keep coming");
    assert!(
        players_in(state).contains(&"player-b".to_owned()),
        "{state}"
    );

    // Back on another shard within the window: put back into the same match with its state.
    let mut again = sim.signed_in(0, "player-b");
    sim.collect(&mut again);
    let state = again
        .last("match.state")
        .expect("the current state at once");
    assert!(players_in(state).contains(&"player-b".to_owned()));
    sim.send(
        &mut again,
        json!({"type": "match.input", "payload": {"dx": 1}}),
    );
    assert_eq!(again.count("error"), 0, "{:?}", again.received);
    sim.advance(Duration::from_secs(10));
    sim.collect(&mut ca);
    let state = ca.last("match.state").unwrap();
    assert!(
        players_in(state).contains(&"player-b".to_owned()),
        "still seated after the window: {state}"
    );
    assert!(sim.ctx.matches.get(&id).is_some());
}

#[test]
fn a_seat_is_given_up_when_the_grace_window_runs_out() {
    let mut sim = Sim::new(1, &arena(), settings());
    let (mut ca, cb, id) = duel(&mut sim, 0, 0);
    sim.drop_client(cb);
    // The duel's own `reconnect = { grace_period = 30000 }` wins over the server's 5 s.
    sim.advance(Duration::from_millis(29_000));
    assert!(
        sim.ctx.matches.seat_of("player-b").is_some(),
        "still in grace"
    );
    sim.advance(Duration::from_millis(1_200));
    ca.received.clear();
    sim.advance(Duration::from_millis(300));
    sim.collect(&mut ca);
    let state = ca.last("match.state").expect("the match goes on");
    assert_eq!(players_in(state), vec!["player-a".to_owned()], "{state}");
    assert_eq!(sim.ctx.matches.seat_of("player-b"), None);
    assert!(sim.ctx.matches.get(&id).is_some());
}

#[test]
fn a_match_everyone_left_is_abandoned_and_recorded() {
    let mut sim = Sim::new(2, &arena(), settings());
    let (mut ca, mut cb, id) = duel(&mut sim, 0, 1);
    sim.send(&mut ca, json!({"type": "match.leave", "cid": "1"}));
    assert!(ca.take("match.left").is_some());
    assert!(
        sim.ctx.matches.get(&id).is_some(),
        "one player is still in it"
    );
    sim.send(&mut cb, json!({"type": "match.leave", "cid": "2"}));
    assert!(cb.take("match.left").is_some());
    assert!(
        sim.ctx.matches.get(&id).is_none(),
        "nobody is left to play it"
    );
    let hosted: usize = (0..2)
        .map(|i| {
            sim.ctx
                .stats(i)
                .hosted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(hosted, 0);
    // The record reaches storage.
    let record = wait_for_record(&sim, &id);
    assert_eq!(record.status, "abandoned");
}

fn wait_for_record(sim: &Sim, id: &str) -> asobi_storage::MatchRecord {
    for _ in 0..200 {
        if let Ok(Some(r)) = futures::executor::block_on(sim.ctx.store.match_record(id)) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no record for {id}");
}

fn failing_game(dir: &Path) {
    std::fs::write(
        dir.join("config.lua"),
        "return { good = \"good.lua\", bad = \"bad.lua\" }\n",
    )
    .unwrap();
    let common = r#"
match_size = 1
tick_rate = 50
function init(config) return { ticks = 0 } end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function handle_input(player_id, input, state) return state end
function get_state(player_id, state) return { ticks = state.ticks } end
"#;
    std::fs::write(
        dir.join("good.lua"),
        format!("{common}\nfunction tick(state) state.ticks = state.ticks + 1 return state end\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.lua"),
        format!("{common}\nfunction tick(state) error(\"boom every tick\") end\n"),
    )
    .unwrap();
}

/// With the operator's stop on (`ASOBI_LUA_STOP_AFTER_FAILURES=100`), a script that fails every
/// tick ends its own match, and only that one.
#[test]
fn a_failing_script_finishes_only_its_own_match() {
    let dir = tempfile::tempdir().unwrap();
    failing_game(dir.path());
    let budgets = asobi_script::Budgets {
        max_consecutive_failures: 100,
        ..asobi_script::Budgets::default()
    };
    let mut sim = Sim::with_budgets(1, dir.path(), settings(), budgets);
    let mut good = sim.signed_in(0, "good-player");
    let mut bad = sim.signed_in(0, "bad-player");
    sim.send(
        &mut good,
        json!({"type": "matchmaker.add", "payload": {"mode": "good"}}),
    );
    sim.send(
        &mut bad,
        json!({"type": "matchmaker.add", "payload": {"mode": "bad"}}),
    );
    // 100 failing ticks in a row at 20 Hz: five seconds, plus the matchmaker's second.
    sim.advance(Duration::from_secs(7));
    sim.collect(&mut bad);
    sim.collect(&mut good);
    let fin = bad.take("match.finished").unwrap_or_else(|| {
        panic!(
            "the failing match finished: {:?}",
            bad.received
                .iter()
                .map(|v| v["type"].clone())
                .collect::<Vec<_>>()
        )
    });
    assert!(fin["payload"]["result"]["error"].is_string(), "{fin}");
    // The neighbour on the same shard ticked throughout: 20 Hz for ~6 s.
    let ticks = good.last("match.state").unwrap()["payload"]["ticks"]
        .as_i64()
        .unwrap();
    assert!(ticks >= 110, "the good match kept ticking: {ticks}");
    assert!(good.take("match.finished").is_none());
}

/// By default (asobi's semantics) a script that fails every tick costs those ticks, not the
/// match: it keeps running next to its neighbour.
#[test]
fn by_default_a_failing_script_costs_its_calls_not_the_match() {
    let dir = tempfile::tempdir().unwrap();
    failing_game(dir.path());
    let mut sim = Sim::new(1, dir.path(), settings());
    let mut good = sim.signed_in(0, "good-player");
    let mut bad = sim.signed_in(0, "bad-player");
    for (c, mode) in [(&mut good, "good"), (&mut bad, "bad")] {
        sim.send(
            c,
            json!({"type": "matchmaker.add", "payload": {"mode": mode}}),
        );
    }
    sim.advance(Duration::from_secs(7));
    sim.collect(&mut bad);
    sim.collect(&mut good);
    assert!(bad.take("match.matched").is_some());
    assert!(bad.take("match.finished").is_none(), "{:?}", bad.received);
    let ticks = good.last("match.state").unwrap()["payload"]["ticks"]
        .as_i64()
        .unwrap();
    assert!(ticks >= 110, "the good match kept ticking: {ticks}");
}

#[test]
fn a_match_that_never_seats_anyone_ends() {
    let mut sim = Sim::new(1, &arena(), settings());
    let shard = sim.shards[0].clone();
    super::matches::create(&shard, "duel", "lonely", Vec::new(), None, false).unwrap();
    sim.advance(Duration::from_secs(30));
    assert!(
        sim.ctx.matches.get("lonely").is_some(),
        "a creator may still join"
    );
    sim.advance(Duration::from_secs(31));
    assert!(
        sim.ctx.matches.get("lonely").is_none(),
        "an empty match ends"
    );
    assert_eq!(wait_for_record(&sim, "lonely").status, "abandoned");
}

#[test]
fn a_full_mesh_backlog_answers_overloaded_instead_of_losing_the_request() {
    let mut sim = Sim::new(2, &arena(), settings());
    let s0 = sim.shards[0].clone();
    // Fill the link to shard 1 with deliveries nobody drains.
    let to = crate::shard::mesh::SessionRef {
        shard: 1,
        slot: 0,
        gen: 0,
    };
    for _ in 0..crate::shard::MESH_BACKLOG {
        s0.rt.deliver(
            to,
            crate::shard::mesh::Outbound::Close {
                code: 1000,
                reason: String::new(),
            },
        );
    }
    let answer = futures::executor::block_on(crate::shard::request(&s0, 1, |reply| {
        super::Cmd::Matchmaker(super::matchmaker::cmd::Cmd::Status {
            ticket_id: "t".into(),
            player_id: "p".into(),
            reply,
        })
    }));
    let err = answer.unwrap_err();
    assert_eq!((err.status, err.code.as_ref()), (503, "overloaded"));
    assert_eq!(s0.rt.waiting(), 0, "the waiter was released");
    // Once the link drains, requests go through again.
    sim.settle();
    let mut c = sim.signed_in(0, "p");
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}),
    );
    assert!(c.take("matchmaker.queued").is_some(), "{:?}", c.received);
}

#[test]
fn lossy_frame_delivery_never_loses_commands_or_answers() {
    let mut sim = Sim::new(2, &arena(), settings()).loss(0.3, 11);
    let (mut ca, mut cb, id) = duel(&mut sim, 0, 1);
    for _ in 0..20 {
        sim.send(
            &mut ca,
            json!({"type": "match.input", "payload": {"dx": 1}}),
        );
        sim.send(
            &mut cb,
            json!({"type": "match.input", "payload": {"dy": 1}}),
        );
        sim.advance(Duration::from_millis(100));
    }
    sim.send(&mut ca, json!({"type": "match.leave", "cid": "x"}));
    assert!(ca.take("match.left").is_some(), "the answer came back");
    assert!(sim.lost > 0, "the harness did drop deliveries");
    assert!(sim.ctx.matches.get(&id).is_some());
}

#[test]
fn a_repeated_matchmaker_add_keeps_one_ticket_per_mode() {
    let mut sim = Sim::new(2, &arena(), settings());
    let mut c = sim.signed_in(0, "repeat");
    let mut tickets = Vec::new();
    for _ in 0..50 {
        sim.send(
            &mut c,
            json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}),
        );
        let queued = c.take("matchmaker.queued").expect("queued");
        tickets.push(queued["payload"]["ticket_id"].as_str().unwrap().to_owned());
    }
    tickets.dedup();
    assert_eq!(tickets.len(), 1, "the same live ticket every time");
    assert_eq!(
        c.session.matchmaker.len(),
        1,
        "the session remembers it once"
    );
}

#[test]
fn ticket_ids_name_their_queue_shard() {
    let sim = Sim::new(3, &arena(), settings());
    let s = &sim.shards[0];
    for owner in 0..3 {
        let id = super::matchmaker::new_ticket_id(owner);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "still a UUID: {id}");
        assert_eq!(super::matchmaker::ticket_owner(s, &id), Some(owner));
    }
    assert_eq!(super::matchmaker::ticket_owner(s, "not-a-ticket"), None);
    // An id naming a shard this server does not have resolves to nothing.
    let foreign = super::matchmaker::new_ticket_id(200);
    assert_eq!(super::matchmaker::ticket_owner(s, &foreign), None);
}

#[test]
fn a_slow_consumer_is_closed_with_1013_not_1008() {
    // 1008 is asobi's policy close; its JS SDK reads it as an auth failure and stops
    // reconnecting, so a client that merely fell behind must get something else.
    let settings = Settings {
        ws_outbox: 8,
        ..settings()
    };
    let mut sim = Sim::new(1, &arena(), settings);
    let (mut ca, _cb, _id) = duel(&mut sim, 0, 0);
    // `a` stops reading while the match keeps sending states.
    sim.advance(Duration::from_secs(2));
    sim.collect(&mut ca);
    let (code, reason) = ca.session.close.clone().expect("closed as too slow");
    assert_eq!((code, reason.as_str()), (1013, "slow_consumer"));
}

#[test]
fn session_connect_again_swaps_the_player_on_a_live_socket() {
    let mut sim = Sim::new(1, &arena(), settings());
    let mut c = sim.signed_in(0, "first");
    let token = sim.token("second");
    sim.send(
        &mut c,
        json!({"type": "session.connect", "cid": "s", "payload": {"token": token}}),
    );
    let connected = c.take("session.connected").expect("re-authenticated");
    assert_eq!(connected["payload"]["player_id"], "second");
    assert_eq!(connected["payload"]["wire"], "json");
    assert_eq!(connected["cid"], "s");
    assert_eq!(c.session.player_id.as_deref(), Some("second"));
    // A bad token on an open session: invalid_token, and the session is unchanged.
    sim.send(
        &mut c,
        json!({"type": "session.connect", "payload": {"token": "expired"}}),
    );
    let e = c.take("error").expect("refused");
    assert_eq!(e["payload"]["reason"], "invalid_token");
    assert_eq!(e["payload"]["error"]["code"], "unauthenticated");
    assert_eq!(c.session.player_id.as_deref(), Some("second"));
    assert!(c.session.close.is_none());
}

/// asobi's join failures: the script's refusal is `match.join_refused` (403, the script's string
/// in `details.refused_reason`, reason `join_refused`); a closed match is `match.locked`.
#[test]
fn join_failures_carry_asobis_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("match.lua"),
        r#"
match_size = 1
max_players = 4
quick_play = true
function init(c) return { n = 0 } end
function join(p, s)
  if p == "banned" then return nil, "you_are_banned" end
  s.n = s.n + 1
  if s.n >= 2 then game.match.set_joinable(false) end
  return s
end
function handle_input(p, i, s) return s end
function tick(s) return s end
"#,
    )
    .unwrap();
    let mut sim = Sim::new(1, dir.path(), settings());
    let mut first = sim.signed_in(0, "first");
    sim.send(
        &mut first,
        json!({"type": "match.find_or_create", "payload": {"mode": "default"}}),
    );
    let joined = first.take("match.joined").expect("joined");
    let id = joined["payload"]["match_id"].as_str().unwrap().to_owned();

    let mut banned = sim.signed_in(0, "banned");
    sim.send(
        &mut banned,
        json!({"type": "match.join", "payload": {"match_id": id}}),
    );
    let e = banned.take("error").expect("refused");
    assert_eq!(e["payload"]["reason"], "join_refused", "{e}");
    assert_eq!(e["payload"]["error"]["code"], "match.join_refused");
    assert_eq!(
        e["payload"]["error"]["details"]["refused_reason"],
        "you_are_banned"
    );

    let mut second = sim.signed_in(0, "second");
    sim.send(
        &mut second,
        json!({"type": "match.join", "payload": {"match_id": id}}),
    );
    assert!(
        second.take("match.joined").is_some(),
        "{:?}",
        second.received
    );
    sim.advance(Duration::from_millis(200));
    let mut third = sim.signed_in(0, "third");
    sim.send(
        &mut third,
        json!({"type": "match.join", "payload": {"match_id": id}}),
    );
    let e = third.take("error").expect("locked");
    assert_eq!(e["payload"]["error"]["code"], "match.locked", "{e}");
    assert_eq!(e["payload"]["reason"], "match_locked");
}

/// `match.find_or_create` from players on different shards at the same instant lands them all in
/// one match: the choice is made on `owner(mode)`, not by each shard from its view of the
/// directory (where both would see no match and each create one).
#[test]
fn find_or_create_converges_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("match.lua"),
        r#"
match_size = 4
max_players = 4
quick_play = true
function init(c) return { n = 0 } end
function join(p, s) s.n = s.n + 1 return s end
function handle_input(p, i, s) return s end
function tick(s) return s end
"#,
    )
    .unwrap();
    let mut sim = Sim::new(2, dir.path(), settings()).latency(Duration::from_millis(2));
    let mut players: Vec<Client> = (0..6)
        .map(|i| sim.signed_in(i % 2, &format!("p{i}")))
        .collect();
    sim.send_together(
        &mut players,
        json!({"type": "match.find_or_create", "payload": {"mode": "default"}}),
    );
    let mut ids = std::collections::HashMap::<String, usize>::new();
    for p in &mut players {
        let joined = p.take("match.joined").expect("every caller joins");
        let id = joined["payload"]["match_id"].as_str().unwrap().to_owned();
        *ids.entry(id).or_default() += 1;
    }
    let mut sizes: Vec<usize> = ids.values().copied().collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        vec![2, 4],
        "the first match fills, the rest start one more: {ids:?}"
    );
}

fn game_dir(script: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("match.lua"), script).unwrap();
    dir
}

/// A match of a mode without a `reconnect` policy, on a server without a default grace: a
/// dropped player leaves at once (asobi's behaviour), and the others see it on the next tick.
#[test]
fn without_a_reconnect_policy_a_disconnect_is_a_leave() {
    let dir = game_dir(
        r#"
match_size = 2
quick_play = true
function init(c) return { players = {}, left = {} } end
function join(p, s) s.players[p] = true return s end
function leave(p, s) s.players[p] = nil s.left[#s.left + 1] = p return s end
function handle_input(p, i, s) return s end
function tick(s) return s end
"#,
    );
    let settings = Settings {
        reconnect_grace_ms: 0,
        ws_msg_rate: 0,
        ..Settings::default()
    };
    let mut sim = Sim::new(2, dir.path(), settings);
    let mut a = sim.signed_in(0, "a");
    let mut b = sim.signed_in(1, "b");
    let fc = json!({"type": "match.find_or_create", "payload": {"mode": "default"}});
    sim.send(&mut a, fc.clone());
    sim.send(&mut b, fc);
    let id = a.take("match.joined").expect("a joined")["payload"]["match_id"].clone();
    assert_eq!(
        b.take("match.joined").expect("b joined")["payload"]["match_id"],
        id
    );
    sim.advance(Duration::from_millis(250));
    sim.drop_client(b);
    sim.advance(Duration::from_millis(5)); // the notice crosses the mesh
    assert_eq!(sim.ctx.matches.seat_of("b"), None, "no seat kept");
    a.received.clear();
    sim.advance(Duration::from_millis(250));
    sim.collect(&mut a);
    let state = a.last("match.state").expect("the match goes on");
    assert_eq!(state["payload"]["left"], json!(["b"]), "{state}");
}

/// asobi's waiting phase: a match below `min_players` runs no tick and drops input; the join
/// that reaches `min_players` starts it; a match that never gets there ends as
/// `waiting_timeout` after 60 s.
#[test]
fn a_match_waits_for_min_players_before_it_ticks() {
    let dir = game_dir(
        r#"
match_size = 3
min_players = 2
max_players = 3
quick_play = true
function init(c) return { ticks = 0, inputs = 0 } end
function join(p, s) return s end
function handle_input(p, i, s) s.inputs = s.inputs + 1 return s end
function tick(s) s.ticks = s.ticks + 1 return s end
"#,
    );
    let mut sim = Sim::new(1, dir.path(), settings());
    let fc = json!({"type": "match.find_or_create", "payload": {"mode": "default"}});
    let mut a = sim.signed_in(0, "a");
    sim.send(&mut a, fc.clone());
    let id = a.take("match.joined").expect("joined")["payload"]["match_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.send(&mut a, json!({"type": "match.input", "payload": {"go": 1}}));
    sim.advance(Duration::from_secs(2));
    sim.collect(&mut a);
    assert_eq!(
        a.count("match.state"),
        0,
        "no tick while waiting: {:?}",
        a.received
    );
    assert_eq!(sim.ctx.matches.get(&id).unwrap().info.status, "waiting");

    let mut b = sim.signed_in(0, "b");
    sim.send(&mut b, fc.clone());
    assert!(b.take("match.joined").is_some());
    assert_eq!(sim.ctx.matches.get(&id).unwrap().info.status, "running");
    sim.send(&mut b, json!({"type": "match.input", "payload": {"go": 1}}));
    sim.advance(Duration::from_millis(350));
    sim.collect(&mut a);
    let state = a.last("match.state").expect("ticking now");
    assert_eq!(
        state["payload"]["inputs"], 1,
        "the input sent while waiting was dropped"
    );
    let ticks = state["payload"]["ticks"].as_u64().unwrap();
    assert!(
        (2..=4).contains(&ticks),
        "ticks count from the start, not creation: {ticks}"
    );

    // A second match that never reaches two players ends after asobi's 60 s.
    let mut c = sim.signed_in(0, "c");
    let mut d = sim.signed_in(0, "d");
    sim.send(&mut d, fc.clone()); // fills the first match
    sim.send(&mut c, fc);
    let lonely = c.take("match.joined").expect("joined")["payload"]["match_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(lonely, id);
    sim.advance(Duration::from_secs(61));
    sim.collect(&mut c);
    assert!(sim.ctx.matches.get(&lonely).is_none(), "ended");
    let done = c.take("match.finished").expect("told it ended");
    assert_eq!(
        done["payload"]["result"]["reason"], "waiting_timeout",
        "{done}"
    );
}

/// As in asobi, input waits for the match's next tick: `handle_input` runs for each input held
/// since the last tick, in arrival order, right before `tick`, and what it sends goes out then.
/// Input past the hold's bound is dropped and counted; the match goes on.
#[test]
fn input_is_applied_at_the_next_tick_in_arrival_order() {
    let dir = game_dir(
        r#"
match_size = 2
quick_play = true
tick_rate = 100
function init(c) return { ticks = 0, order = {}, seen = {} } end
function join(p, s) return s end
function handle_input(p, i, s)
    if i.flood then s.flood = (s.flood or 0) + 1 return s end
    if i.pad then s.big = (s.big or 0) + 1 return s end
    s.order[#s.order + 1] = p .. ":" .. tostring(i.n)
    s.seen[#s.seen + 1] = s.ticks
    game.send(p, { echo = i.n })
    return s
end
function tick(s) s.ticks = s.ticks + 1 s.applied_at_tick = #s.order return s end
"#,
    );
    let mut sim = Sim::new(1, dir.path(), settings());
    let fc = json!({"type": "match.find_or_create", "payload": {"mode": "default"}});
    let mut a = sim.signed_in(0, "a");
    let mut b = sim.signed_in(0, "b");
    sim.send(&mut a, fc.clone());
    sim.send(&mut b, fc);
    assert!(a.take("match.joined").is_some() && b.take("match.joined").is_some());

    // Right after a tick, the next one is a whole period away.
    let mut waited = 0;
    while a.count("match.state") == 0 {
        sim.advance(Duration::from_millis(1));
        sim.collect(&mut a);
        waited += 1;
        assert!(waited < 500, "no state: {:?}", a.received);
    }
    a.received.clear();
    let input = |n: u32| json!({"type": "match.input", "payload": {"n": n}});
    sim.send(&mut a, input(1));
    sim.send(&mut b, input(2));
    sim.send(&mut a, input(3));
    sim.advance(Duration::from_millis(50));
    sim.collect(&mut a);
    sim.collect(&mut b);
    assert_eq!(a.count("module.message"), 0, "held: {:?}", a.received);
    assert_eq!(a.count("match.state"), 0, "{:?}", a.received);

    sim.advance(Duration::from_millis(60));
    sim.collect(&mut a);
    sim.collect(&mut b);
    let state = a.last("match.state").expect("the next tick's state")["payload"].clone();
    assert_eq!(state["order"], json!(["a:1", "b:2", "a:3"]), "{state}");
    let seen = state["seen"].as_array().unwrap();
    assert!(
        seen.iter().all(|t| t == &seen[0]),
        "all three ran between the same two ticks: {state}"
    );
    assert_eq!(state["applied_at_tick"], 3, "before the tick: {state}");
    assert_eq!(a.count("module.message"), 2, "{:?}", a.received);
    assert_eq!(b.count("module.message"), 1, "{:?}", b.received);
    let pos = |c: &Client, kind: &str| c.received.iter().position(|f| f["type"] == kind);
    assert!(
        pos(&a, "module.message") < pos(&a, "match.state"),
        "what handle_input sent goes out before the tick's state: {:?}",
        a.received
    );

    // A flood beyond the hold is dropped and counted, and the rest is applied.
    let dropped = sim.shards[0].ops.metrics.inputs_dropped.get();
    let extra = 10;
    let flood = json!({"type": "match.input", "payload": {"flood": true}});
    for _ in 0..super::matches::MAX_HELD_INPUT + extra {
        sim.send(&mut a, flood.clone());
    }
    sim.advance(Duration::from_millis(250));
    sim.collect(&mut a);
    let state = a.last("match.state").expect("still ticking")["payload"].clone();
    assert_eq!(
        state["flood"],
        super::matches::MAX_HELD_INPUT,
        "the bound's worth applied: {state}"
    );
    assert_eq!(
        sim.shards[0].ops.metrics.inputs_dropped.get() - dropped,
        extra as u64
    );

    // So is a burst of large inputs past the hold's bytes.
    let payload = json!({"pad": "x".repeat(60_000)});
    let fits = super::matches::MAX_HELD_INPUT_BYTES / payload.to_string().len();
    let big = json!({"type": "match.input", "payload": payload});
    for _ in 0..fits + extra {
        sim.send(&mut a, big.clone());
    }
    sim.advance(Duration::from_millis(250));
    sim.collect(&mut a);
    let state = a.last("match.state").expect("still ticking")["payload"].clone();
    assert_eq!(state["big"], fits, "{}", state["big"]);
    assert_eq!(
        sim.shards[0].ops.metrics.inputs_dropped.get() - dropped,
        2 * extra as u64
    );
}
