//! Lua calls that wait for an answer, driven by a fake engine loop: delayed replies,
//! several calls in a row, replies that never come, hot reload while suspended, error
//! replies, calls where suspending is impossible, and two matches side by side.

mod common;

use std::time::{Duration, Instant};

use asobi_script::{
    BudgetKind, Budgets, Call, CallError, Game, MatchVm, Resumed, ServiceCall, VmPool,
};
use common::{game_dir, shared_state, single, Recorder, HEADER};
use serde_json::{json, Value};

const SHOP: &str = r#"
function init() return { log = {}, ticks = 0 } end
function join(p, s)
  local wallet = game.economy.balance(p)
  if wallet.error then return nil, "no_wallet" end
  s.log[#s.log + 1] = "joined " .. p .. " with " .. wallet.gold
  return s
end
function tick(s) s.ticks = s.ticks + 1 return s end
function handle_input(p, input, s)
  if input.kind == "buy" then
    local saved = game.storage.player_get(p, "inventory")
    local paid = game.economy.debit(p, "gold", input.price)
    local top = game.leaderboard.top("spenders", 3)
    s.log[#s.log + 1] = table.concat({ saved.items or "-", tostring(paid.ok), tostring(#top) }, "|")
    return s
  elseif input.kind == "fresh" then
    -- Returns a new table: abandoning the call must leave the old one in place.
    local reply = game.storage.get("c", "k")
    return { log = { "replaced " .. tostring(reply.value) }, ticks = s.ticks }
  elseif input.kind == "error_reply" then
    local r = game.economy.grant(p, "gold", 5)
    s.log[#s.log + 1] = "error: " .. tostring(r.error)
    return s
  elseif input.kind == "raise_on_error" then
    local r = game.economy.grant(p, "gold", 5)
    if r.error then error("grant failed: " .. r.error) end
    return s
  elseif input.kind == "version" then
    local r = game.storage.get("c", "k")
    s.log[#s.log + 1] = VERSION .. " " .. tostring(r)
    return s
  elseif input.kind == "sort" then
    local r
    table.sort({ 3, 1, 2 }, function(a, b)
      r = r or game.economy.balance(p)
      return a < b
    end)
    s.log[#s.log + 1] = r.error
    return s
  end
  return s
end
function get_state(s)
  local r = game.economy.balance("x")
  return { log = s.log, ticks = s.ticks, from_get_state = r.error }
end
VERSION = "old"
"#;

fn start(budgets: Budgets) -> (tempfile::TempDir, VmPool, MatchVm) {
    let (dir, mode) = single(&format!("{HEADER}{SHOP}"));
    let mut pool = VmPool::new(budgets, 2).unwrap();
    let mut vm = pool.acquire(&mode, "m-1").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    (dir, pool, vm)
}

fn waiting<R: std::fmt::Debug>(call: Result<Call<R>, CallError>) -> ServiceCall {
    match call {
        Ok(Call::Waiting(request)) => request,
        other => panic!("expected a service call, got {other:?}"),
    }
}

fn last_log(vm: &mut MatchVm) -> Value {
    shared_state(vm)["log"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap()
}

#[test]
fn a_reply_after_a_delay_resumes_the_callback() {
    let (_d, _p, mut vm) = start(Budgets::default());
    let mut host = Recorder::default();
    let started = Instant::now();
    let request = waiting(vm.join("p1", None, &mut host));
    assert_eq!(
        request,
        ServiceCall {
            service: "economy".into(),
            op: "balance".into(),
            args: json!(["p1"]),
        }
    );
    assert!(vm.waiting());
    let deadline = vm.wait_deadline().unwrap();
    // The wait is bounded on its own (not by the callback's running time).
    assert!(deadline > started && deadline <= Instant::now() + Budgets::default().service_wait);
    // Nothing else runs on this VM meanwhile.
    assert_eq!(vm.tick(&mut host), Err(CallError::Waiting));
    assert_eq!(vm.state_for(None, &mut host), Err(CallError::Waiting));
    std::thread::sleep(Duration::from_millis(5));
    let done = vm.resume(json!({ "gold": 40 }), &mut host).unwrap();
    assert_eq!(
        done,
        Call::Done(Resumed::Join(asobi_script::JoinOutcome::Accepted))
    );
    assert!(!vm.waiting());
    assert_eq!(vm.wait_deadline(), None);
    assert_eq!(last_log(&mut vm), "joined p1 with 40");
    assert_eq!(vm.resume(json!(1), &mut host), Err(CallError::NotWaiting));
    // A join the reply refuses.
    waiting(vm.join("p2", None, &mut host));
    let refused = vm
        .resume(json!({ "error": "no such wallet" }), &mut host)
        .unwrap();
    assert_eq!(
        refused,
        Call::Done(Resumed::Join(asobi_script::JoinOutcome::Refused(Some(
            "no_wallet".into()
        ))))
    );
}

#[test]
fn several_calls_in_a_row() {
    let (_d, _p, mut vm) = start(Budgets::default());
    let mut host = Recorder::default();
    let first = waiting(vm.handle_input("p1", &json!({"kind": "buy", "price": 7}), &mut host));
    assert_eq!(
        (first.service.as_str(), first.op.as_str()),
        ("storage", "player_get")
    );
    assert_eq!(first.args, json!(["p1", "inventory"]));
    let second = waiting(vm.resume(json!({ "items": "sword" }), &mut host));
    assert_eq!(
        (second.service.as_str(), second.op.as_str()),
        ("economy", "debit")
    );
    assert_eq!(second.args, json!(["p1", "gold", 7]));
    let third = waiting(vm.resume(json!({ "ok": true }), &mut host));
    assert_eq!(
        (third.service.as_str(), third.op.as_str()),
        ("leaderboard", "top")
    );
    let done = vm.resume(json!([{"p": 1}, {"p": 2}]), &mut host).unwrap();
    assert_eq!(done, Call::Done(Resumed::HandleInput));
    assert_eq!(last_log(&mut vm), "sword|true|2");
}

#[test]
fn a_reply_that_never_comes_is_abandoned_at_the_deadline() {
    let budgets = Budgets {
        service_wait: Duration::from_millis(20),
        max_overruns_in_window: 1,
        ..Budgets::default()
    };
    let (_d, _p, mut vm) = start(budgets);
    let mut host = Recorder::default();
    vm.tick(&mut host).unwrap().done().unwrap();
    let before = shared_state(&mut vm);
    waiting(vm.handle_input("p1", &json!({"kind": "fresh"}), &mut host));
    let deadline = vm.wait_deadline().unwrap();
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let overrun = vm.abandon(&mut host);
    assert_eq!(
        overrun,
        CallError::Budget {
            kind: BudgetKind::WallTime,
            callback: "handle_input"
        }
    );
    assert!(!vm.waiting());
    assert_eq!(
        shared_state(&mut vm),
        before,
        "the state is the one before the callback"
    );
    assert!(!vm.failed());
    // A reply arriving after the deadline is too late as well: the same overrun.
    waiting(vm.handle_input("p1", &json!({"kind": "fresh"}), &mut host));
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(vm.resume(json!({ "value": 1 }), &mut host), Err(overrun));
    assert!(vm.failed(), "two abandoned waits are two overruns");
    assert_eq!(vm.abandon(&mut host), CallError::NotWaiting);
}

#[test]
fn a_hot_reload_while_suspended_is_applied_when_the_callback_completes() {
    let dir = game_dir(&[("match.lua", &format!("{HEADER}{SHOP}"))]);
    let game = Game::load(dir.path()).unwrap();
    let mode = game.mode("default").unwrap().clone();
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire(&mode, "m-1").unwrap();
    let mut host = Recorder::default();
    vm.init(&json!({}), &mut host).unwrap().done().unwrap();

    common::write(
        dir.path(),
        "match.lua",
        &format!(
            "{HEADER}{}",
            SHOP.replace(r#"VERSION = "old""#, r#"VERSION = "new""#)
        ),
    );
    let new_game = Game::load(dir.path()).unwrap();
    let new_mode = new_game.mode("default").unwrap().clone();

    waiting(vm.handle_input("p1", &json!({"kind": "version"}), &mut host));
    assert_eq!(vm.reload(&new_mode, &mut host), Ok(()));
    assert!(
        std::sync::Arc::ptr_eq(vm.mode(), &mode),
        "deferred while waiting"
    );
    let done = vm.resume(json!("reply"), &mut host).unwrap();
    assert_eq!(done, Call::Done(Resumed::HandleInput));
    // The suspended callback finished on the code it started with ...
    assert_eq!(last_log(&mut vm), "old reply");
    // ... and the reload was applied as it completed.
    assert!(std::sync::Arc::ptr_eq(vm.mode(), &new_mode));
    waiting(vm.handle_input("p1", &json!({"kind": "version"}), &mut host));
    vm.resume(json!("again"), &mut host)
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(last_log(&mut vm), "new again");

    // Abandoning applies a deferred reload too.
    waiting(vm.handle_input("p1", &json!({"kind": "version"}), &mut host));
    vm.reload(&mode, &mut host).unwrap();
    vm.abandon(&mut host);
    assert!(std::sync::Arc::ptr_eq(vm.mode(), &mode));
}

#[test]
fn error_replies_reach_the_script() {
    let (_d, _p, mut vm) = start(Budgets::default());
    let mut host = Recorder::default();
    waiting(vm.handle_input("p1", &json!({"kind": "error_reply"}), &mut host));
    vm.resume(json!({ "error": "insufficient_funds" }), &mut host)
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(last_log(&mut vm), "error: insufficient_funds");
    // A script that raises on the reply fails the callback like any Lua error.
    waiting(vm.handle_input("p1", &json!({"kind": "raise_on_error"}), &mut host));
    match vm.resume(json!({ "error": "insufficient_funds" }), &mut host) {
        Err(CallError::Lua {
            callback: "handle_input",
            message,
            ..
        }) => {
            assert!(
                message.contains("grant failed: insufficient_funds"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A reply too deep to convert becomes an error value, not a crash.
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    waiting(vm.handle_input("p1", &json!({"kind": "error_reply"}), &mut host));
    vm.resume(deep, &mut host).unwrap().done().unwrap();
    let text = last_log(&mut vm);
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("error: unconvertible reply"),
        "{text}"
    );
}

#[test]
fn calls_where_suspending_is_impossible_answer_an_error_at_once() {
    let (_d, _p, mut vm) = start(Budgets::default());
    let mut host = Recorder::default();
    // Inside a C function (a sort comparator) the coroutine cannot yield.
    let done = vm
        .handle_input("p1", &json!({"kind": "sort"}), &mut host)
        .unwrap();
    assert_eq!(done, Call::Done(()));
    let text = last_log(&mut vm);
    assert!(
        text.as_str()
            .unwrap()
            .contains("cannot wait for an answer here"),
        "{text}"
    );
    // get_state must answer at once: the call answers an error there.
    let state = shared_state(&mut vm);
    assert!(
        state["from_get_state"]
            .as_str()
            .unwrap()
            .contains("cannot wait"),
        "{state}"
    );
}

#[test]
fn one_match_waits_while_another_keeps_ticking() {
    let (_d, mode) = single(&format!("{HEADER}{SHOP}"));
    let mut pool = VmPool::new(Budgets::default(), 2).unwrap();
    let mut a = pool.acquire(&mode, "a").unwrap();
    let mut b = pool.acquire(&mode, "b").unwrap();
    let mut host = Recorder::default();
    a.init(&json!({}), &mut host).unwrap().done().unwrap();
    b.init(&json!({}), &mut host).unwrap().done().unwrap();
    waiting(a.handle_input("p1", &json!({"kind": "buy", "price": 1}), &mut host));
    for _ in 0..5 {
        b.tick(&mut host).unwrap().done().unwrap();
    }
    assert_eq!(shared_state(&mut b)["ticks"], 5);
    assert!(a.waiting() && !b.waiting());
    waiting(a.resume(json!({}), &mut host));
    b.tick(&mut host).unwrap().done().unwrap();
    waiting(a.resume(json!({ "ok": false }), &mut host));
    a.resume(json!([]), &mut host).unwrap().done().unwrap();
    assert_eq!(last_log(&mut a), "-|false|0");
    assert_eq!(shared_state(&mut a)["ticks"], 0);
    assert_eq!(shared_state(&mut b)["ticks"], 6);
}
