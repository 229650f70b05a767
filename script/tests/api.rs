//! The `game.*` API: broadcast validation, send, joinability, bots, logging, spatial helpers,
//! and JSON conversion in both directions.

mod common;

use asobi_script::{Budgets, Call, JoinOutcome, MatchVm, Resumed};
use common::{shared_state, start, start_with, Recorder};
use serde_json::{json, Value};

const CALLS: &str = r##"
function init() return { results = {} } end
function handle_input(p, input, s)
  local f = assert(load(input.code, "=call"))
  s.results[#s.results + 1] = f()
  return s
end
function get_state(s) return s.results end
"##;

fn run(vm: &mut MatchVm, host: &mut Recorder, code: &str) -> Value {
    vm.handle_input("p", &json!({ "code": code }), host)
        .unwrap()
        .done()
        .unwrap();
    let results = shared_state(vm);
    results
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn broadcast_validates_names_and_payloads() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    let cases: &[(&str, Value)] = &[
        (
            "return game.broadcast('score_update', { a = 1 })",
            json!(true),
        ),
        ("return game.broadcast('A-z_09', nil)", json!(true)),
        (
            "return game.broadcast('', {})",
            json!({"error": "invalid_event_name"}),
        ),
        (
            "return game.broadcast(string.rep('x', 65), {})",
            json!({"error": "invalid_event_name"}),
        ),
        (
            "return game.broadcast(string.rep('x', 64), {})",
            json!(true),
        ),
        (
            "return game.broadcast('a.b', {})",
            json!({"error": "invalid_event_name"}),
        ),
        (
            "return game.broadcast('sp ace', {})",
            json!({"error": "invalid_event_name"}),
        ),
        (
            "return game.broadcast(42, {})",
            json!({"error": "invalid_event_name"}),
        ),
        (
            "return game.broadcast('finished', { winner = 'me' })",
            json!({"error": "reserved_event_name"}),
        ),
        (
            "return game.broadcast('state', {})",
            json!({"error": "reserved_event_name"}),
        ),
        (
            "return game.broadcast('vote_vetoed', {})",
            json!({"error": "reserved_event_name"}),
        ),
        (
            "return game.broadcast('big', { s = string.rep('x', 65536) })",
            json!({"error": "payload_too_large"}),
        ),
        (
            "local t = {} t.t = t return game.broadcast('loop', t)",
            json!({"error": "unencodable_payload"}),
        ),
    ];
    for (code, expected) in cases {
        assert_eq!(&run(&mut vm, &mut host, code), expected, "{code}");
    }
    // Only the accepted ones reached the host, encoded once, in order.
    let events: Vec<&str> = host.broadcasts.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(events, vec!["score_update", "A-z_09", &"x".repeat(64)]);
    assert_eq!(host.broadcasts[0].1, json!({"a": 1}));
    assert_eq!(host.broadcasts[1].1, json!({}));
}

#[test]
fn send_joinable_and_bots_reach_the_host() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    assert_eq!(
        run(&mut vm, &mut host, "return game.send('p2', { hp = 3 })"),
        json!(true)
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.send('p2', 'plain text')"),
        json!(true)
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.send(nil, {})"),
        json!({"error": "send requires (player_id, message)"})
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.match.set_joinable(false)"),
        json!(true)
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.match.set_joinable('no')"),
        json!({"error": "set_joinable requires (open: boolean)"})
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.bots.add('Spark')"),
        json!(true)
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.bots.add('bad name!')"),
        json!({"error": "invalid_bot_name"})
    );
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            "return game.bots.remove('bot_Spark_a3f91c')"
        ),
        json!(true)
    );
    assert_eq!(
        host.sends,
        vec![
            ("p2".to_owned(), json!({"hp": 3})),
            ("p2".to_owned(), json!("plain text"))
        ]
    );
    assert_eq!(host.joinable, vec![false]);
    assert_eq!(host.bots_added, vec!["Spark"]);
    assert_eq!(host.bots_removed, vec!["bot_Spark_a3f91c"]);
}

#[test]
fn effects_are_delivered_in_order_even_when_the_callback_fails() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    let err = vm.handle_input(
        "p",
        &json!({"code": "game.broadcast('one', {}) game.send('p', 1) error('late')"}),
        &mut host,
    );
    assert!(err.is_err());
    assert_eq!(host.broadcasts.len(), 1);
    assert_eq!(host.sends, vec![("p".to_owned(), json!(1))]);
}

#[test]
fn the_outbox_is_bounded_per_callback() {
    let budgets = Budgets {
        outbox_bytes: 10_000,
        ..Budgets::default()
    };
    let (_d, _p, mut vm) = start_with(budgets, CALLS);
    let mut host = Recorder::default();
    let out = run(
        &mut vm,
        &mut host,
        "local last for i = 1, 100 do last = game.broadcast('e', { s = string.rep('x', 1000) }) end return last",
    );
    assert_eq!(out, json!({"error": "outbox_full"}));
    assert_eq!(host.broadcasts.len(), 9);
    // The next callback starts with an empty outbox.
    assert_eq!(
        run(&mut vm, &mut host, "return game.broadcast('e', {})"),
        json!(true)
    );
}

#[test]
fn log_levels_caps_and_rate_limit() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            "return game.log('info', 'hello', { k = 1 })"
        ),
        json!(true)
    );
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            "return game.log('warning', { table = true })"
        ),
        json!(true)
    );
    assert_eq!(
        run(&mut vm, &mut host, "return game.log('loud', 'x')"),
        json!({"error": "log level must be debug, info, warn, warning or error"})
    );
    let out = run(
        &mut vm,
        &mut host,
        "local r = {} for i = 1, 40 do r[#r + 1] = game.log('debug', string.rep('m', 1000), { big = string.rep('x', 5000) }) end return r",
    );
    let results = out.as_array().unwrap();
    let accepted = results.iter().filter(|v| **v == json!(true)).count();
    let dropped = results.iter().filter(|v| **v == json!(false)).count();
    // 30 lines per second per match, two of which were used above.
    assert_eq!((accepted, dropped), (28, 12));
}

#[test]
fn spatial_helpers_on_entity_tables() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    let setup = "local e = { a = { x = 0, y = 0, type = 'orc' }, b = { x = 3, y = 4, type = 'elf' }, c = { x = 10, y = 0, type = 'orc' } }";
    let q = |body: &str| format!("{setup} {body}");
    let hits = run(&mut vm, &mut host, &q("local r = {} for _, h in ipairs(game.spatial.query_radius(e, 0, 0, 5)) do r[#r+1] = h.id .. ':' .. h.distance end return r"));
    assert_eq!(hits, json!(["a:0.0", "b:5.0"]));
    let hits = run(&mut vm, &mut host, &q("local r = {} for _, h in ipairs(game.spatial.query_radius(e, 0, 0, 50, { type = 'orc', sort = 'farthest' })) do r[#r+1] = h.id end return r"));
    assert_eq!(hits, json!(["c", "a"]));
    let hits = run(&mut vm, &mut host, &q("local r = {} for _, h in ipairs(game.spatial.nearest(e, 9, 0, 2, { exclude = 'c' })) do r[#r+1] = h.id end return r"));
    assert_eq!(hits, json!(["b", "a"]));
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            &q("return game.spatial.distance(e.a, e.b)")
        ),
        json!(5.0)
    );
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            &q("return game.spatial.in_range(e.a, e.b, 4)")
        ),
        json!(false)
    );
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            &q("return game.spatial.query_radius(e, 0, 0, 5, { colour = 'red' })")
        ),
        json!({"error": "unknown option opts.colour"})
    );
    assert_eq!(
        run(
            &mut vm,
            &mut host,
            "return game.spatial.query_radius(1, 2, 3)"
        ),
        json!({"error": "query_radius(x, y, radius) requires zone context"})
    );
}

/// Until a feature lands, the engine answers its service calls with asobi's error shape;
/// scripts then see exactly what they saw before calls could wait.
#[test]
fn service_calls_wait_for_the_engine_and_return_its_reply() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    for (call, service, op, args) in [
        (
            "game.economy.balance('p')",
            "economy",
            "balance",
            json!(["p"]),
        ),
        (
            "game.storage.get('c', 'k')",
            "storage",
            "get",
            json!(["c", "k"]),
        ),
        (
            "game.leaderboard.submit('b', 'p', 1)",
            "leaderboard",
            "submit",
            json!(["b", "p", 1]),
        ),
        (
            "game.leaderboard.top('b', 10)",
            "leaderboard",
            "top",
            json!(["b", 10]),
        ),
        (
            "game.notify('p', 't', 's')",
            "notify",
            "notify",
            json!(["p", "t", "s"]),
        ),
        (
            "game.notify_many({'a'}, 't', nil, 1)",
            "notify",
            "notify_many",
            json!([["a"], "t", null, 1]),
        ),
        (
            "game.chat.send('c', 'p', 'hi')",
            "chat",
            "send",
            json!(["c", "p", "hi"]),
        ),
    ] {
        let code = format!("return {call}");
        let waiting = vm
            .handle_input("p", &json!({ "code": code }), &mut host)
            .unwrap();
        let Call::Waiting(request) = waiting else {
            panic!("{call} did not wait: {waiting:?}");
        };
        assert_eq!(
            (request.service.as_str(), request.op.as_str()),
            (service, op)
        );
        assert_eq!(request.args, args, "{call}");
        let reply = json!({ "error": format!("{service} is not available in this runtime") });
        let done = vm.resume(reply.clone(), &mut host).unwrap();
        assert_eq!(done, Call::Done(Resumed::HandleInput));
        let results = shared_state(&mut vm);
        assert_eq!(
            results.as_array().unwrap().last().unwrap(),
            &reply,
            "{call}"
        );
    }
    // Zone calls outside a world's zone still answer at once.
    let out = run(&mut vm, &mut host, "return game.zone.spawn('t', 1, 2)");
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("requires zone context"),
        "{out}"
    );
}

const ECHO: &str = r##"
function init() return {} end
function handle_input(p, input, s) s.input = input return s end
function get_state(s) return s.input end
"##;

#[test]
fn json_round_trips_through_lua() {
    let (_d, _p, mut vm) = start(ECHO);
    let cases = [
        json!({"a": [1, 2, 3], "b": {"c": "d"}}),
        json!({"empty_array": [], "empty_object": {}, "nested": [[], {}, [[]]]}),
        json!({"int": 3, "float": 3.0, "neg": -7, "big": 9_007_199_254_740_993_i64, "frac": 0.25}),
        json!({"arr": [1, null, 3], "keep": true}),
        json!({"unicode": "héllo ✓", "escapes": "a\"b\\c\n"}),
        json!({"deep": {"a": {"b": {"c": {"d": [1, {"e": false}]}}}}}),
        json!([]),
        json!({}),
    ];
    for case in cases {
        vm.handle_input("p", &case, &mut Recorder::default())
            .unwrap()
            .done()
            .unwrap();
        assert_eq!(shared_state(&mut vm), case);
    }
    // Object nulls leave the key absent: `if input.x then` is false for them.
    vm.handle_input("p", &json!({"x": null, "y": 1}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(shared_state(&mut vm), json!({"y": 1}));
    // Integer-ness is visible to scripts.
    let (_d2, _p2, mut vm2) = start(CALLS);
    let out = run(
        &mut vm2,
        &mut Recorder::default(),
        "return { math.type(3), math.type(3.0), 7 // 2, 7 / 2 }",
    );
    assert_eq!(out, json!(["integer", "float", 3, 3.5]));
}

#[test]
fn lua_tables_encode_with_asobi_shapes() {
    let (_d, _p, mut vm) = start(CALLS);
    let mut host = Recorder::default();
    let out = run(
        &mut vm,
        &mut host,
        "return { list = {'a', 'b'}, map = { x = 1 }, empty = {}, sparse = { [1] = 'a', [3] = 'c' },
                  mixed = { 1, x = 2 }, fn = function() end, float = 1.5, whole = 2.0 }",
    );
    assert_eq!(out["list"], json!(["a", "b"]));
    assert_eq!(out["map"], json!({"x": 1}));
    assert_eq!(out["empty"], json!([]), "asobi sends an empty table as []");
    assert_eq!(out["sparse"], json!({"1": "a", "3": "c"}));
    assert_eq!(out["mixed"], json!({"1": 1, "x": 2}));
    assert!(out.get("fn").is_none());
    assert_eq!(out["float"], json!(1.5));
    assert_eq!(out["whole"], json!(2.0));
}

const LOBBY: &str = r##"
function init() return { players = {}, code = "OPEN" } end
function join(p, s, ctx)
  if ctx.code == "LOCKED" then return nil, "match_locked" end
  if ctx.code == "BAD" then return nil, "bad reason with\nnewline" end
  if ctx.code == "NOTHING" then return end
  if ctx.code ~= s.code then return nil end
  s.players[p] = ctx.name or true
  return s
end
function get_state(s) return s.players end
"##;

#[test]
fn join_accepts_and_refuses() {
    let (_d, _p, mut vm) = start(LOBBY);
    let mut h = Recorder::default();
    let join = |vm: &mut MatchVm, ctx: Option<Value>, h: &mut Recorder| {
        vm.join("p1", ctx.as_ref(), h).unwrap()
    };
    assert_eq!(
        join(&mut vm, Some(json!({"code": "LOCKED"})), &mut h),
        Call::Done(JoinOutcome::Refused(Some("match_locked".into())))
    );
    assert_eq!(
        join(&mut vm, Some(json!({"code": "BAD"})), &mut h),
        Call::Done(JoinOutcome::Refused(None))
    );
    assert_eq!(
        join(&mut vm, Some(json!({"code": "NOTHING"})), &mut h),
        Call::Done(JoinOutcome::Refused(None))
    );
    assert_eq!(
        join(&mut vm, None, &mut h),
        Call::Done(JoinOutcome::Refused(None)),
        "no ctx is an empty table"
    );
    assert_eq!(shared_state(&mut vm), json!([]));
    assert_eq!(
        join(
            &mut vm,
            Some(json!({"code": "OPEN", "name": "Ann"})),
            &mut h
        ),
        Call::Done(JoinOutcome::Accepted)
    );
    assert_eq!(shared_state(&mut vm), json!({"p1": "Ann"}));
}
