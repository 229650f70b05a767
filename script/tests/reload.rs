//! Hot reload in place: new code, same state; broken code keeps the old code running; the
//! watcher publishes good builds only; pooled VMs never leak one match into the next.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use asobi_script::{Budgets, CallError, Game, VmPool, Watcher};
use common::{game_dir, shared_state, write, Recorder};
use serde_json::json;

const V1: &str = r#"
match_size = 1
local scoring = require("scoring")
function init(c) return { total = 0, created = "by init v1" } end
function join(p, s) return s end
function handle_input(p, input, s)
  s.total = s.total + input.n * scoring.factor
  return s
end
function tick(s) return s end
function get_state(s) return { total = s.total, created = s.created, version = s.version } end
"#;

const V2: &str = r#"
match_size = 1
local scoring = require("scoring")
function init(c) return { total = 0, created = "by init v2" } end
function join(p, s) return s end
function handle_input(p, input, s)
  s.total = s.total * input.n * scoring.factor
  return s
end
function tick(s) return s end
function get_state(s) return { total = s.total, created = s.created, version = s.version } end
function on_reload(s)
  s.version = 2
  return s
end
"#;

fn input(vm: &mut asobi_script::MatchVm, n: i64) {
    vm.handle_input("p", &json!({ "n": n }), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
}

#[test]
fn reload_replaces_code_and_keeps_state() {
    let dir = game_dir(&[("match.lua", V1), ("scoring.lua", "return { factor = 1 }")]);
    let v1 = Game::load(dir.path()).unwrap();
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire(v1.mode("default").unwrap(), "m").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    input(&mut vm, 5);
    assert_eq!(shared_state(&mut vm)["total"], 5);

    // Change the match script and a required module.
    write(dir.path(), "match.lua", V2);
    write(dir.path(), "scoring.lua", "return { factor = 10 }");
    let v2 = Game::load(dir.path()).unwrap();
    vm.reload(v2.mode("default").unwrap(), &mut Recorder::default())
        .unwrap();
    assert!(Arc::ptr_eq(vm.mode(), v2.mode("default").unwrap()));

    // on_reload migrated the state; init was not re-run.
    assert_eq!(
        shared_state(&mut vm),
        json!({"total": 5, "created": "by init v1", "version": 2})
    );
    // New handle_input and the new module, applied to the old state.
    input(&mut vm, 3);
    assert_eq!(shared_state(&mut vm)["total"], 150);
}

#[test]
fn a_chunk_that_fails_at_run_time_keeps_the_old_code() {
    let source = |body: &str| {
        format!(
            "match_size = 1
function init() return {{ total = 0 }} end
function get_state(s) return {{ total = s.total, a = a, b = b, f = f() }} end
{body}"
        )
    };
    let v1 = source(
        "a = 1
v1_marker = true
function f() return 'old' end
function handle_input(p, i, s) s.total = s.total + i.n return s end",
    );
    // Loads cleanly in a fresh sandbox, but refuses to run over a VM that ran v1 — after
    // it has already replaced some globals.
    let v2 = source(
        "a = 2
b = 3
function f() return 'new' end
function handle_input(p, i, s) s.total = s.total * i.n return s end
if rawget(_G, 'v1_marker') then error('cannot upgrade from v1') end",
    );
    let dir = game_dir(&[("match.lua", &v1)]);
    let g1 = Game::load(dir.path()).unwrap();
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut vm = pool.acquire(g1.mode("default").unwrap(), "m").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    input(&mut vm, 2);

    write(dir.path(), "match.lua", &v2);
    let g2 = Game::load(dir.path()).unwrap();
    let err = vm
        .reload(g2.mode("default").unwrap(), &mut Recorder::default())
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Lua {
            callback: "reload",
            file: Some("match.lua".into()),
            line: Some(8),
            message: "cannot upgrade from v1".into(),
        }
    );
    // Every global is back: old functions, old values, no new ones.
    assert!(Arc::ptr_eq(vm.mode(), g1.mode("default").unwrap()));
    assert_eq!(
        shared_state(&mut vm),
        json!({"total": 2, "a": 1, "f": "old"})
    );
    input(&mut vm, 3);
    assert_eq!(shared_state(&mut vm)["total"], 5, "still v1's handle_input");
    assert!(!vm.failed());
}

#[test]
fn watcher_publishes_good_builds_and_skips_bad_ones() {
    let dir = game_dir(&[("match.lua", V1), ("scoring.lua", "return { factor = 1 }")]);
    let initial = Arc::new(Game::load(dir.path()).unwrap());
    let (watcher, mut rx) = Watcher::spawn(
        dir.path().to_path_buf(),
        Duration::from_millis(50),
        initial.clone(),
    )
    .unwrap();
    assert_eq!(rx.borrow().version, 1);

    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool
        .acquire(initial.mode("default").unwrap(), "live")
        .unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    input(&mut vm, 4);
    assert_eq!(vm.code_version(), 1);

    let wait_for = |rx: &mut tokio::sync::watch::Receiver<Arc<Game>>, version: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if rx.has_changed().unwrap() {
                let game = rx.borrow_and_update().clone();
                if game.version >= version {
                    return game;
                }
            }
            assert!(Instant::now() < deadline, "no version {version} published");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A good change is compiled off-thread and published as version 2.
    write(dir.path(), "match.lua", V2);
    let v2 = wait_for(&mut rx, 2);
    assert_eq!(v2.version, 2);
    vm.reload(v2.mode("default").unwrap(), &mut Recorder::default())
        .unwrap();
    assert_eq!(vm.code_version(), 2);
    input(&mut vm, 3);
    assert_eq!(
        shared_state(&mut vm),
        json!({"total": 12, "created": "by init v1", "version": 2})
    );

    // A broken file is not published; the live VM keeps running version 2.
    write(
        dir.path(),
        "match.lua",
        "match_size = 1\nfunction handle_input(p, i, s)\n  return s +\nend\n",
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !rx.has_changed().unwrap(),
        "a broken build must not be published"
    );
    assert_eq!(rx.borrow().version, 2);
    input(&mut vm, 2);
    assert_eq!(shared_state(&mut vm)["total"], 24);
    let diags = asobi_script::check(dir.path());
    assert_eq!(diags[0].file.to_str(), Some("match.lua"));
    assert_eq!(diags[0].line, Some(4));

    // Fixing it publishes version 3; new matches get the new code.
    write(dir.path(), "match.lua", V1);
    let v3 = wait_for(&mut rx, 3);
    let mut fresh = pool.acquire(v3.mode("default").unwrap(), "new").unwrap();
    fresh
        .init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(fresh.code_version(), 3);
    assert_eq!(shared_state(&mut fresh)["created"], "by init v1");

    // Rewriting identical sources publishes nothing.
    write(dir.path(), "match.lua", V1);
    std::thread::sleep(Duration::from_millis(600));
    assert!(!rx.has_changed().unwrap());

    drop(watcher);
}

#[test]
fn pooled_vms_do_not_leak_between_matches() {
    let source = r#"
match_size = 1
function init() return {} end
function handle_input(p, input, s)
  leaked = "global"
  string.leaked = "string table"
  math.pi = 3
  getmetatable("").__index.upper = function() return "pwned" end
  game.broadcast = nil
  require("mod").counter = 99
  setmetatable(_G, { __index = function() return "ghost" end })
  return s
end
function get_state(s)
  return {
    leaked = rawget(_G, "leaked"),
    string_leaked = string.leaked,
    pi = math.pi,
    upper = ("x"):upper(),
    broadcast = type(game.broadcast),
    counter = require("mod").counter,
    ghost = rawequal(getmetatable(_G), nil),
  }
end
"#;
    let dir = game_dir(&[("match.lua", source), ("mod.lua", "return { counter = 0 }")]);
    let game = Game::load(dir.path()).unwrap();
    let mode = game.mode("default").unwrap();
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();

    let mut first = pool.acquire(mode, "first").unwrap();
    assert_eq!(pool.idle(), 0);
    first
        .init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    first
        .handle_input("p", &json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    let dirty = shared_state(&mut first);
    assert_eq!(dirty["leaked"], "global");
    assert_eq!(dirty["upper"], "pwned");
    pool.release(first);
    assert_eq!(pool.idle(), 1, "the pool refilled with a fresh VM");

    let mut second = pool.acquire(mode, "second").unwrap();
    second
        .init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(
        shared_state(&mut second),
        json!({
            "pi": std::f64::consts::PI,
            "upper": "X",
            "broadcast": "function",
            "counter": 0,
            "ghost": true,
        })
    );
}
