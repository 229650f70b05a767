//! Budgets on every callback: runaway scripts are aborted, contained to their own match,
//! and a VM that keeps failing is stopped.

mod common;

use std::time::{Duration, Instant};

use asobi_script::{BudgetKind, Budgets, CallError, VmPool};
use common::{shared_state, single, Recorder, HEADER};
use serde_json::json;

/// A script whose `handle_input` runs whatever the input names, next to a well-behaved tick.
const HOSTILE: &str = r#"
function init() return { ticks = 0, hits = 0 } end
function join(p, s) return s end
function tick(s) s.ticks = s.ticks + 1 return s end
function get_state(s) return { ticks = s.ticks, hits = s.hits } end
local attacks = {}
function attacks.spin() while true do end end
function attacks.pcall_spin()
  while true do pcall(function() while true do end end) end
end
function attacks.xpcall_spin()
  while true do xpcall(function() while true do end end, function(e) return e end) end
end
function attacks.sort_spin()
  local t = {}
  for i = 1, 10 do t[i] = i end
  while true do
    pcall(table.sort, t, function(a, b) while true do pcall(function() end) end end)
  end
end
function attacks.gsub_spin()
  while true do
    pcall(string.gsub, "aaaa", "a", function() while true do end end)
  end
end
function attacks.tostring_spin()
  local evil = setmetatable({}, { __tostring = function() while true do end end })
  while true do pcall(tostring, evil) end
end
function attacks.handler_spin()
  while true do xpcall(error, function() while true do end end) end
end
function attacks.memory()
  local t = {}
  local i = 0
  while true do i = i + 1; t[i] = string.rep("x", 1024) .. i end
end
function attacks.memory_pcall()
  while true do
    pcall(function()
      local t = {}
      for i = 1, 1e9 do t[i] = {i} end
    end)
  end
end
function attacks.recurse()
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end
function attacks.error() error("boom") end
function attacks.error_object()
  error(setmetatable({}, { __tostring = function() while true do end end }))
end
function handle_input(p, input, s)
  s.hits = s.hits + 1
  attacks[input.kind]()
  return s
end
"#;

fn hostile_pair(
    budgets: Budgets,
) -> (
    tempfile::TempDir,
    VmPool,
    asobi_script::MatchVm,
    asobi_script::MatchVm,
) {
    let (dir, mode) = single(&format!("{HEADER}{HOSTILE}"));
    let mut pool = VmPool::new(budgets, 2).unwrap();
    let mut bad = pool.acquire(&mode, "bad").unwrap();
    let mut good = pool.acquire(&mode, "good").unwrap();
    let mut host = Recorder::default();
    bad.init(&json!({}), &mut host).unwrap().done().unwrap();
    good.init(&json!({}), &mut host).unwrap().done().unwrap();
    (dir, pool, bad, good)
}

/// Small budgets, without time slicing (these tests drive one call to its end; slicing has
/// its own test).
fn small() -> Budgets {
    Budgets {
        instructions: 2_000_000,
        wall: Duration::from_secs(5),
        memory_bytes: 8 * 1024 * 1024,
        max_consecutive_overruns: 100,
        slice: Duration::ZERO,
        ..Budgets::default()
    }
}

fn attack(vm: &mut asobi_script::MatchVm, kind: &str) -> Result<(), CallError> {
    vm.handle_input("p", &json!({ "kind": kind }), &mut Recorder::default())
        .map(|_| ())
}

#[test]
fn every_runaway_is_aborted_and_the_neighbour_keeps_working() {
    let (_dir, _pool, mut bad, mut good) = hostile_pair(small());
    let cases = [
        ("spin", BudgetKind::Instructions),
        ("pcall_spin", BudgetKind::Instructions),
        ("xpcall_spin", BudgetKind::Instructions),
        ("sort_spin", BudgetKind::Instructions),
        ("gsub_spin", BudgetKind::Instructions),
        ("tostring_spin", BudgetKind::Instructions),
        ("handler_spin", BudgetKind::Instructions),
        ("memory", BudgetKind::Memory),
    ];
    for (kind, expected) in cases {
        let started = Instant::now();
        let err = attack(&mut bad, kind).unwrap_err();
        assert_eq!(
            err,
            CallError::Budget {
                kind: expected,
                callback: "handle_input"
            },
            "attack {kind}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{kind} took {:?}",
            started.elapsed()
        );
        // The neighbour VM on the same thread is unaffected.
        good.tick(&mut Recorder::default()).unwrap().done().unwrap();
        // And the attacked VM still works between attacks.
        bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
    }
    assert_eq!(shared_state(&mut good)["ticks"], cases.len());
    assert_eq!(shared_state(&mut bad)["ticks"], cases.len());
    assert_eq!(
        shared_state(&mut bad)["hits"],
        cases.len(),
        "state kept across aborts"
    );
    assert!(!bad.failed());
}

#[test]
fn an_error_object_whose_tostring_spins_is_contained() {
    let (_dir, _pool, mut bad, mut good) = hostile_pair(small());
    let started = Instant::now();
    let err = attack(&mut bad, "error_object").unwrap_err();
    assert!(
        matches!(err, CallError::Lua { .. } | CallError::Budget { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    good.tick(&mut Recorder::default()).unwrap().done().unwrap();
    bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
}

#[test]
fn memory_errors_caught_by_pcall_end_in_the_instruction_budget() {
    let (_dir, _pool, mut bad, mut good) = hostile_pair(small());
    let err = attack(&mut bad, "memory_pcall").unwrap_err();
    assert!(matches!(err, CallError::Budget { .. }), "{err:?}");
    good.tick(&mut Recorder::default()).unwrap().done().unwrap();
    // The memory was garbage; the VM can allocate again.
    bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
}

#[test]
fn stack_overflow_is_a_lua_error() {
    let (_dir, _pool, mut bad, _good) = hostile_pair(small());
    match attack(&mut bad, "recurse").unwrap_err() {
        CallError::Lua { message, .. } => assert!(message.contains("stack overflow"), "{message}"),
        CallError::Budget {
            kind: BudgetKind::Memory,
            ..
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
}

#[test]
fn wall_clock_budget_stops_a_callback() {
    let budgets = Budgets {
        instructions: u64::MAX / 4,
        wall: Duration::from_millis(30),
        ..small()
    };
    let (_dir, _pool, mut bad, _good) = hostile_pair(budgets);
    let started = Instant::now();
    let err = attack(&mut bad, "spin").unwrap_err();
    assert_eq!(
        err,
        CallError::Budget {
            kind: BudgetKind::WallTime,
            callback: "handle_input"
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn repeated_overruns_fail_the_vm() {
    let budgets = Budgets {
        max_consecutive_overruns: 3,
        ..small()
    };
    let (_dir, _pool, mut bad, mut good) = hostile_pair(budgets);
    for _ in 0..2 {
        attack(&mut bad, "spin").unwrap_err();
        assert!(!bad.failed());
    }
    attack(&mut bad, "spin").unwrap_err();
    assert!(bad.failed());
    let result = bad.finished().unwrap();
    assert_eq!(result["error"], "script_failed");
    assert_eq!(result["callback"], "handle_input");
    assert_eq!(bad.tick(&mut Recorder::default()), Err(CallError::VmFailed));
    good.tick(&mut Recorder::default()).unwrap().done().unwrap();
}

#[test]
fn a_success_resets_the_overrun_streak() {
    let budgets = Budgets {
        max_consecutive_overruns: 2,
        ..small()
    };
    let (_dir, _pool, mut bad, _good) = hostile_pair(budgets);
    for _ in 0..5 {
        attack(&mut bad, "spin").unwrap_err();
        bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
    }
    assert!(!bad.failed());
}

/// Security review item 6: overruns interleaved with successful ticks used to reset the
/// count forever (71 overruns in 8 s). They are counted over a sliding window now.
#[test]
fn interleaved_overruns_fail_the_vm_within_the_window() {
    let budgets = Budgets {
        max_consecutive_overruns: 2,
        max_overruns_in_window: 4,
        overrun_window: Duration::from_secs(60),
        ..small()
    };
    let (_dir, _pool, mut bad, mut good) = hostile_pair(budgets);
    for i in 0..4 {
        attack(&mut bad, "spin").unwrap_err();
        bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
        assert!(!bad.failed(), "overrun {i} is within the allowance");
    }
    attack(&mut bad, "spin").unwrap_err();
    assert!(bad.failed(), "the fifth overrun within the window");
    assert_eq!(bad.finished().unwrap()["error"], "script_failed");
    assert_eq!(bad.tick(&mut Recorder::default()), Err(CallError::VmFailed));
    good.tick(&mut Recorder::default()).unwrap().done().unwrap();
}

#[test]
fn isolated_overruns_never_fail_the_vm() {
    let budgets = Budgets {
        max_consecutive_overruns: 2,
        max_overruns_in_window: 1,
        overrun_window: Duration::from_millis(100),
        ..small()
    };
    let (_dir, _pool, mut bad, _good) = hostile_pair(budgets);
    for _ in 0..4 {
        attack(&mut bad, "spin").unwrap_err();
        bad.tick(&mut Recorder::default()).unwrap().done().unwrap();
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(!bad.failed());
}

#[test]
fn input_errors_never_end_the_match_but_tick_errors_do() {
    let budgets = Budgets {
        max_consecutive_failures: 5,
        ..small()
    };
    let (_dir, _pool, mut bad, _good) = hostile_pair(budgets);
    for _ in 0..20 {
        match attack(&mut bad, "error").unwrap_err() {
            CallError::Lua {
                callback,
                file,
                line,
                message,
            } => {
                assert_eq!(callback, "handle_input");
                assert_eq!(file.as_deref(), Some("match.lua"));
                assert!(line.is_some());
                assert_eq!(message, "boom");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!bad.failed(), "one player's bad input cannot end the match");

    let source = format!(
        "{HEADER}function init() return {{ n = 0 }} end
         function tick(s) s.n = s.n + 1 error('tick broke at ' .. s.n) end
         function get_state(s) return s end"
    );
    let (_d, mode) = single(&source);
    let mut pool = VmPool::new(
        Budgets {
            max_consecutive_failures: 5,
            ..Budgets::default()
        },
        0,
    )
    .unwrap();
    let mut vm = pool.acquire(&mode, "erring").unwrap();
    let mut neighbour = pool.acquire(&mode, "neighbour").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    for i in 1..=5 {
        let err = vm.tick(&mut Recorder::default()).unwrap_err();
        assert_eq!(err.to_string(), format!("match.lua:3: tick broke at {i}"));
    }
    assert!(vm.failed());
    assert_eq!(
        vm.finished().unwrap(),
        &json!({"error": "script_failed", "callback": "tick", "message": "match.lua:3: tick broke at 5"})
    );
    // The neighbour (same thread, same pool) is untouched.
    neighbour
        .init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    assert!(!neighbour.failed());
}

#[test]
fn budgets_apply_to_every_callback() {
    let source = format!(
        "{HEADER}function init(c) if c.spin_init then while true do end end return {{}} end
         function join(p, s) while true do end end
         function leave(p, s) while true do end end
         function tick(s) while true do end end
         function get_state(p, s) while true do end end
         function handle_input(p, i, s) while true do end end"
    );
    let (_d, mode) = single(&source);
    let budgets = Budgets {
        instructions: 500_000,
        // Only the instruction budget is under test: a wall budget that a loaded machine could
        // reach first (descheduling the thread) would turn the expected error into another.
        wall: Duration::from_secs(10),
        max_consecutive_overruns: 100,
        slice: Duration::ZERO,
        ..Budgets::default()
    };
    let mut pool = VmPool::new(budgets, 0).unwrap();
    let mut vm = pool.acquire(&mode, "m").unwrap();
    let h = &mut Recorder::default();
    let spent = |r: Result<(), CallError>, cb: &str| match r {
        Err(CallError::Budget {
            kind: BudgetKind::Instructions,
            callback,
        }) => assert_eq!(callback, cb),
        other => panic!("{cb}: {other:?}"),
    };
    spent(vm.init(&json!({"spin_init": true}), h).map(|_| ()), "init");
    vm.init(&json!({}), h).unwrap().done().unwrap();
    spent(vm.join("p", None, h).map(|_| ()), "join");
    spent(vm.leave("p", h).map(|_| ()), "leave");
    spent(
        vm.handle_input("p", &json!({}), h).map(|_| ()),
        "handle_input",
    );
    spent(vm.tick(h).map(|_| ()), "tick");
    spent(vm.state_for(Some("p"), h).map(|_| ()), "get_state");
}

#[test]
fn a_runaway_chunk_fails_acquire_and_load() {
    let source = format!("{HEADER}while true do end");
    let dir = common::game_dir(&[("match.lua", &source)]);
    let err = asobi_script::Game::load(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("match.lua: load: aborted, exceeded the"),
        "{text}"
    );
}

#[test]
fn long_callbacks_are_sliced_and_continue_where_they_stopped() {
    let source = format!(
        "{HEADER}function init(c) return {{ n = 0 }} end
         function join(p, s) return s end
         function tick(s)
           local t = os.clock()
           while os.clock() - t < 0.1 do s.n = s.n + 1 end
           s.done = true
           return s
         end
         function get_state(p, s) return {{ done = s.done, n = s.n }} end
         function handle_input(p, i, s) while true do end end"
    );
    let (_d, mode) = single(&source);
    let budgets = Budgets {
        slice: Duration::from_millis(2),
        ..Budgets::default()
    };
    let mut pool = VmPool::new(budgets, 0).unwrap();
    let mut vm = pool.acquire(&mode, "m").unwrap();
    let h = &mut Recorder::default();
    vm.init(&json!({}), h).unwrap().done().unwrap();

    // A tick spinning for 100 ms of process CPU (other tests in this binary may spin at the
    // same time, so as little as ~30 ms of wall time) yields every 2 ms; each resume continues
    // the same loop.
    let mut step = vm.tick(h).unwrap().map(|()| asobi_script::Resumed::Tick);
    let mut slices = 0;
    while let asobi_script::Call::Waiting(call) = step {
        assert!(call.is_slice(), "{call:?}");
        assert!(vm.waiting());
        // Time away from the VM is not running time.
        std::thread::sleep(Duration::from_millis(5));
        slices += 1;
        step = vm.resume(json!(null), h).unwrap();
    }
    assert!(
        slices >= 3,
        "only {slices} slices in a tick of 100 ms of CPU"
    );
    assert_eq!(step, asobi_script::Call::Done(asobi_script::Resumed::Tick));
    let state: serde_json::Value =
        serde_json::from_slice(&vm.state_for(Some("p"), h).unwrap()).unwrap();
    assert_eq!(state["done"], true);
    assert!(!vm.failed());

    // A runaway is sliced too, and still ends at its budget.
    let mut step = vm
        .handle_input("p", &json!({}), h)
        .map(|c| c.map(|()| asobi_script::Resumed::HandleInput));
    let mut slices = 0;
    while let Ok(asobi_script::Call::Waiting(_)) = step {
        slices += 1;
        step = vm.resume(json!(null), h);
    }
    assert!(slices >= 1);
    match step {
        Err(CallError::Budget { callback, .. }) => assert_eq!(callback, "handle_input"),
        other => panic!("{other:?}"),
    }
}
