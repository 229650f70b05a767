//! The seam between a suspended Lua callback and a service, on the simulation harness: replies
//! that come later, several calls in one callback, a reply that never comes, a hot reload while
//! a callback waits, and a neighbour match on the same shard that keeps ticking meanwhile.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use asobi_script::{Budgets, Game};

use super::script::test_service;
use super::sim::{Client, Sim};
use super::Settings;

const SERVICE_GAME: &str = r#"
match_size = 1
max_players = 4
tick_rate = 50
RULES = 1
function init(config) return { ticks = 0, log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  if input.op == "one" then
    local r = game.economy.balance(p, "gold")
    state.log[#state.log + 1] = "one:" .. tostring(r.ok or r.error) .. ":r" .. RULES
  elseif input.op == "two" then
    local a = game.economy.balance(p, "gold")
    local b = game.economy.balance(p, "gems")
    state.log[#state.log + 1] = "two:" .. tostring(a.ok) .. "+" .. tostring(b.ok)
  elseif input.op == "none" then
    local r = game.storage.get("c", "k")
    state.log[#state.log + 1] = "none:" .. tostring(r.error)
  elseif input.op == "mark" then
    state.log[#state.log + 1] = "mark:" .. tostring(input.n)
  end
  return state
end
function tick(state) state.ticks = state.ticks + 1 return state end
function get_state(p, state) return { ticks = state.ticks, log = state.log, rules = RULES } end
"#;

const PLAIN_GAME: &str = r#"
match_size = 1
tick_rate = 50
function init(config) return { ticks = 0 } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) state.ticks = state.ticks + 1 return state end
function get_state(p, state) return { ticks = state.ticks } end
"#;

fn game(dir: &Path, svc: &str) {
    std::fs::write(
        dir.join("config.lua"),
        "return { svc = \"svc.lua\", plain = \"plain.lua\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("svc.lua"), svc).unwrap();
    std::fs::write(dir.join("plain.lua"), PLAIN_GAME).unwrap();
}

/// The stand-in economy: gold 100 and gems 7, each after `delay`; `never` never answers.
/// Installs a stand-in economy; the count is the calls it received so far.
fn economy(delay: Duration, never: bool) -> Rc<Cell<usize>> {
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    test_service::install(Box::new(move |call| {
        if call.service != "economy" {
            return None;
        }
        seen.set(seen.get() + 1);
        if never {
            return Some((delay, None));
        }
        let amount = match call.args[1].as_str() {
            Some("gems") => 7,
            _ => 100,
        };
        Some((delay, Some(json!({ "ok": amount }))))
    }));
    calls
}

/// Runs the clock until the economy has received `n` calls: input waits for its match's tick.
fn until_called(sim: &mut Sim, calls: &Cell<usize>, n: usize) {
    for _ in 0..1000 {
        if calls.get() >= n {
            return;
        }
        sim.advance(Duration::from_millis(1));
    }
    panic!("no call within a second");
}

fn sim(dir: &Path) -> Sim {
    sim_with(
        dir,
        Budgets {
            wall: Duration::from_millis(200),
            service_wait: Duration::from_millis(200),
            ..Budgets::default()
        },
    )
}

fn sim_with(dir: &Path, budgets: Budgets) -> Sim {
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    Sim::with_budgets(1, dir, settings, budgets)
}

/// A player alone in a `mode` match.
fn alone(sim: &mut Sim, player: &str, mode: &str) -> Client {
    let mut c = sim.signed_in(0, player);
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": mode}}),
    );
    sim.advance(Duration::from_millis(1010));
    sim.collect(&mut c);
    assert!(c.take("match.matched").is_some(), "{:?}", c.received);
    c
}

fn log_of(c: &Client) -> Vec<String> {
    c.last("match.state").unwrap()["payload"]["log"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn ticks_of(c: &Client) -> i64 {
    c.last("match.state").unwrap()["payload"]["ticks"]
        .as_i64()
        .unwrap()
}

fn input(sim: &mut Sim, c: &mut Client, payload: Value) {
    sim.send(c, json!({"type": "match.input", "payload": payload}));
}

#[test]
fn a_reply_that_comes_later_resumes_the_callback_and_the_neighbour_keeps_ticking() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    economy(Duration::from_millis(120), false);
    let mut sim = sim(dir.path());
    let mut svc = alone(&mut sim, "svc-player", "svc");
    let mut plain = alone(&mut sim, "plain-player", "plain");
    sim.advance(Duration::from_millis(100));
    sim.collect(&mut plain);
    sim.collect(&mut svc);
    let (plain_before, svc_before) = (ticks_of(&plain), ticks_of(&svc));

    input(&mut sim, &mut svc, json!({"op": "one"}));
    // Inputs that arrive while the callback waits run after it, in order.
    input(&mut sim, &mut svc, json!({"op": "mark", "n": 1}));
    input(&mut sim, &mut svc, json!({"op": "mark", "n": 2}));
    sim.advance(Duration::from_millis(100));
    sim.collect(&mut plain);
    sim.collect(&mut svc);
    assert!(
        ticks_of(&plain) >= plain_before + 2,
        "the neighbour ticks while svc waits"
    );
    assert_eq!(
        ticks_of(&svc),
        svc_before,
        "the waiting match ticks no more"
    );
    assert!(log_of(&svc).is_empty());

    sim.advance(Duration::from_millis(100));
    sim.collect(&mut svc);
    assert_eq!(log_of(&svc), vec!["one:100:r1", "mark:1", "mark:2"]);
    assert!(ticks_of(&svc) > svc_before, "ticking again");
}

#[test]
fn several_calls_in_one_callback() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    economy(Duration::from_millis(20), false);
    let mut sim = sim(dir.path());
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "two"}));
    sim.advance(Duration::from_millis(150));
    sim.collect(&mut c);
    assert_eq!(log_of(&c), vec!["two:100+7"]);
}

#[test]
fn a_reply_that_never_comes_is_abandoned_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    economy(Duration::ZERO, true);
    let mut sim = sim(dir.path());
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "one"}));
    input(&mut sim, &mut c, json!({"op": "mark", "n": 1}));
    // A service call may wait 200 ms here.
    sim.advance(Duration::from_millis(400));
    sim.collect(&mut c);
    assert_eq!(
        log_of(&c),
        vec!["mark:1"],
        "the abandoned callback left no trace; the next input ran"
    );
    assert!(
        c.take("match.finished").is_none(),
        "one overrun does not end a match"
    );
    let before = ticks_of(&c);
    sim.advance(Duration::from_millis(200));
    sim.collect(&mut c);
    assert!(ticks_of(&c) > before);
}

#[test]
fn a_wait_longer_than_the_running_budget_is_not_an_overrun() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    // The answer takes 300 ms; the callback may run 20 ms and wait 1 s. Only running time
    // counts against the 20 ms, so the slow answer still reaches the script.
    economy(Duration::from_millis(300), false);
    let mut sim = sim_with(
        dir.path(),
        Budgets {
            wall: Duration::from_millis(20),
            service_wait: Duration::from_secs(1),
            ..Budgets::default()
        },
    );
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "one"}));
    sim.advance(Duration::from_millis(400));
    sim.collect(&mut c);
    assert_eq!(log_of(&c), vec!["one:100:r1"]);
}

#[test]
fn a_hot_reload_while_a_callback_waits_applies_after_it() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    let calls = economy(Duration::from_millis(50), false);
    let mut sim = sim(dir.path());
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "one"}));
    until_called(&mut sim, &calls, 1); // at the match's next tick
                                       // The new code arrives while the callback waits.
    std::fs::write(
        dir.path().join("svc.lua"),
        SERVICE_GAME.replace("RULES = 1", "RULES = 2"),
    )
    .unwrap();
    let shard = sim.shards[0].clone();
    shard.reload(Arc::new(Game::load(dir.path()).unwrap()));
    sim.advance(Duration::from_millis(150));
    input(&mut sim, &mut c, json!({"op": "one"}));
    sim.advance(Duration::from_millis(150));
    sim.collect(&mut c);
    // The waiting callback finished on the code it started with; the next one ran the new code.
    assert_eq!(log_of(&c), vec!["one:100:r1", "one:100:r2"]);
    assert_eq!(c.last("match.state").unwrap()["payload"]["rules"], 2);
}

#[test]
fn without_a_service_scripts_get_asobis_error_shape_at_once() {
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    // Every declared service is served now; the stand-in gives `game.storage` the answer of
    // the router's fallback arm, as for a service no feature provides.
    test_service::install(Box::new(|call| {
        (call.service == "storage").then(|| {
            (
                Duration::ZERO,
                Some(crate::services::script::unavailable(call)),
            )
        })
    }));
    let mut sim = sim(dir.path());
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "none"}));
    sim.advance(Duration::from_millis(160));
    sim.collect(&mut c);
    assert_eq!(
        log_of(&c),
        vec!["none:game.storage.get is not available in this runtime"]
    );
}

#[test]
fn a_reply_to_an_abandoned_wait_does_not_resume_the_next_call() {
    use std::cell::Cell;
    use std::rc::Rc;
    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    // The first call is answered after 300 ms, past the 200 ms wait; the second after 150 ms.
    // The first reply lands while the second call waits: it must be dropped.
    let n = Rc::new(Cell::new(0));
    test_service::install(Box::new(move |call| {
        if call.service != "economy" {
            return None;
        }
        n.set(n.get() + 1);
        let (delay, value) = match n.get() {
            1 => (300, "first"),
            _ => (150, "second"),
        };
        Some((Duration::from_millis(delay), Some(json!({ "ok": value }))))
    }));
    let mut sim = sim(dir.path());
    let mut c = alone(&mut sim, "p", "svc");
    input(&mut sim, &mut c, json!({"op": "one"}));
    input(&mut sim, &mut c, json!({"op": "one"}));
    sim.advance(Duration::from_millis(600));
    sim.collect(&mut c);
    assert_eq!(
        log_of(&c),
        vec!["one:second:r1"],
        "the first call was abandoned; the second got its own answer"
    );
}

#[test]
fn a_join_held_behind_a_wait_is_answered_when_the_match_ends() {
    use std::future::Future;
    use std::task::{Context, Poll};

    let dir = tempfile::tempdir().unwrap();
    game(dir.path(), SERVICE_GAME);
    let calls = economy(Duration::ZERO, true);
    let mut sim = sim(dir.path());
    let mut c = sim.signed_in(0, "first");
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": "svc"}}),
    );
    sim.advance(Duration::from_millis(1010));
    sim.collect(&mut c);
    let matched = c.take("match.matched").expect("matched");
    let match_id = matched["payload"]["match_id"].as_str().unwrap().to_owned();
    input(&mut sim, &mut c, json!({"op": "one"}));
    until_called(&mut sim, &calls, 1); // at the match's next tick; never answered

    // A second player's join arrives while the callback waits: it is held back.
    let shard = sim.shards[0].clone();
    let mut joiner = sim.signed_in(0, "second");
    let me = joiner.session.me;
    let mut join = Box::pin(crate::shard::request(&shard, 0, |reply| {
        super::Cmd::Matches(super::matches::cmd::Cmd::Join {
            match_id: match_id.clone(),
            player_id: "second".into(),
            session: me,
            ctx: None,
            reply,
        })
    }));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(
        join.as_mut().poll(&mut cx).is_pending(),
        "held behind the wait"
    );

    // The only seated player leaves: the match is abandoned with the join still held.
    sim.send(&mut c, json!({"type": "match.leave"}));
    assert!(sim.ctx.matches.get(&match_id).is_none(), "the match ended");
    match join.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.code, "match.not_found"),
        other => panic!("the held join must be answered: {other:?}"),
    }
    sim.collect(&mut joiner);
}
