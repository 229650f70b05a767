//! No library call runs unbounded: backtracking patterns, huge repetitions and C loops over
//! script-chosen counts are charged to the budget and aborted like any runaway script.

mod common;

use std::time::{Duration, Instant};

use asobi_script::{BudgetKind, Budgets, Call, CallError};
use common::{start_with, Recorder};
use serde_json::json;

const SCRIPT: &str = r#"
function init() return { done = 0 } end
function join(p, s) return s end
function tick(s) return s end
function get_state(s) return s end
local attacks = {}
-- security review item 4: ~2 s inside one C call with stock Lua
function attacks.find() return string.find(("a"):rep(294), ".-.-.-b") end
function attacks.match_pcall()
  while true do pcall(string.match, ("a"):rep(294), ".-.-.-b") end
end
function attacks.gmatch() for _ in (("a"):rep(294)):gmatch(".-.-.-b") do end end
function attacks.gsub() return (("a"):rep(294)):gsub(".-.-.-b", "x") end
function attacks.rep_empty() return ("").rep("", 2^50) end
function attacks.rep_huge() return ("x"):rep(2^40) end
function attacks.move() return table.move({}, 1, 2^40, 2) end
function attacks.upper_loop()
  local s = ("x"):rep(4 * 1024 * 1024)
  while true do local _ = s:upper() end
end
function attacks.concat_index()
  local t = setmetatable({}, { __index = function() return "x" end })
  return table.concat(t, "", 1, 2^40)
end
function handle_input(p, input, s)
  attacks[input.kind]()
  s.done = s.done + 1
  return s
end
"#;

fn budgets() -> Budgets {
    Budgets {
        max_consecutive_overruns: 1000,
        max_overruns_in_window: 1000,
        // Each attack is driven to its end in one call; slicing has its own test.
        slice: Duration::ZERO,
        ..Budgets::default()
    }
}

fn attack(vm: &mut asobi_script::MatchVm, kind: &str) -> (Result<Call<()>, CallError>, Duration) {
    let started = Instant::now();
    let result = vm.handle_input("p", &json!({ "kind": kind }), &mut Recorder::default());
    (result, started.elapsed())
}

#[test]
fn every_unbounded_library_call_is_aborted_within_the_budget() {
    let (_dir, _pool, mut vm) = start_with(budgets(), SCRIPT);
    let wall = Budgets::default().wall;
    for kind in [
        "find",
        "match_pcall",
        "gmatch",
        "gsub",
        "move",
        "upper_loop",
        "concat_index",
    ] {
        let (result, took) = attack(&mut vm, kind);
        match result {
            Err(CallError::Budget {
                kind: BudgetKind::Instructions | BudgetKind::WallTime,
                callback: "handle_input",
            }) => {}
            other => panic!("{kind}: {other:?}"),
        }
        // The wall budget plus the time between two checks of the clock.
        assert!(
            took < wall + Duration::from_millis(40),
            "{kind} took {took:?}"
        );
        eprintln!("{kind}: aborted after {took:?}");
    }
    // A result that can never fit is refused up front.
    let (result, took) = attack(&mut vm, "rep_huge");
    assert!(result.is_err(), "{result:?}");
    assert!(took < Duration::from_millis(10), "rep_huge took {took:?}");
    // Stock Lua loops 2^50 times here; nothing to copy is nothing to do.
    let (result, took) = attack(&mut vm, "rep_empty");
    assert_eq!(result, Ok(Call::Done(())));
    assert!(took < Duration::from_millis(10), "rep_empty took {took:?}");
    assert!(!vm.failed());
}

#[test]
fn a_callback_that_returns_after_its_deadline_counts_as_an_overrun() {
    let budgets = Budgets {
        wall: Duration::from_millis(1),
        max_consecutive_overruns: 2,
        ..Budgets::default()
    };
    let (_dir, _pool, mut vm) = start_with(
        budgets,
        r#"
function init() return {} end
function join(p, s) return s end
function tick(s) return s end
function get_state(s) return s end
-- One C call that copies 48 MB: charged, but the hook never runs during it.
function handle_input(p, input, s) local big = ("x"):rep(48 * 1024 * 1024) s.n = #big return s end
"#,
    );
    let mut host = Recorder::default();
    let first = vm.handle_input("p", &json!({}), &mut host);
    assert_eq!(first, Ok(Call::Done(())), "the callback itself completed");
    assert!(!vm.failed());
    vm.handle_input("p", &json!({}), &mut host)
        .unwrap()
        .done()
        .unwrap();
    assert!(vm.failed(), "two late callbacks in a row are two overruns");
}
