//! Every escape attempt out of the sandbox fails with a Lua error, never a crash; the
//! library functions asobi scripts rely on are present.

mod common;

use asobi_script::{CallError, MatchVm};
use common::{shared_state, start, Recorder};
use serde_json::{json, Value};

const EVAL: &str = r##"
function init() return {} end
function handle_input(p, input, s)
  local f = assert(load(input.code, "=probe"))
  s.out = f()
  return s
end
function get_state(s) return { out = s.out } end
"##;

/// Runs `code` (a chunk body) inside `handle_input`; returns what it returned, as JSON.
fn eval(vm: &mut MatchVm, code: &str) -> Result<Value, CallError> {
    let _ = vm.handle_input("p", &json!({ "code": code }), &mut Recorder::default())?;
    Ok(shared_state(vm)["out"].clone())
}

fn lua_error(vm: &mut MatchVm, code: &str) -> String {
    match eval(vm, code) {
        Err(CallError::Lua { message, .. }) => message,
        other => panic!("{code}: expected a Lua error, got {other:?}"),
    }
}

#[test]
fn escape_hatches_are_gone() {
    let (_d, _p, mut vm) = start(EVAL);
    let cases = [
        ("return io.open('/etc/passwd')", "global 'io'"),
        ("return os.execute('id')", "field 'execute'"),
        ("return os.getenv('HOME')", "field 'getenv'"),
        ("return os.exit(1)", "field 'exit'"),
        ("return os.remove('/tmp/x')", "field 'remove'"),
        ("return os.rename('/tmp/x', '/tmp/y')", "field 'rename'"),
        ("return os.tmpname()", "field 'tmpname'"),
        ("return debug.getinfo(1)", "global 'debug'"),
        (
            "return package.loadlib('libc.so.6', 'system')",
            "global 'package'",
        ),
        ("return dofile('/etc/passwd')", "global 'dofile'"),
        ("return loadfile('/etc/passwd')", "global 'loadfile'"),
        ("return coroutine.create(print)", "global 'coroutine'"),
        ("print('hello')", "global 'print'"),
        ("return string.dump(function() end)", "field 'dump'"),
        ("return ('').dump(function() end)", "field 'dump'"),
        (
            "return require('../etc/passwd')",
            "invalid module name '../etc/passwd'",
        ),
        ("return require('/etc/passwd')", "invalid module name"),
        ("return require('foo\\n')", "invalid module name"),
        ("return require('nope')", "module 'nope' not found"),
        ("return require(42)", "string expected"),
        (
            "collectgarbage('stop')",
            "collectgarbage('stop') is not allowed",
        ),
        ("collectgarbage('generational')", "is not allowed"),
        ("collectgarbage('incremental', 1000)", "is not allowed"),
        (
            "setmetatable({}, { __gc = function() end })",
            "__gc metamethods are not supported",
        ),
    ];
    for (code, expected) in cases {
        let message = lua_error(&mut vm, code);
        assert!(
            message.contains(expected),
            "{code}: {message:?} lacks {expected:?}"
        );
    }
}

#[test]
fn binary_chunks_cannot_be_loaded() {
    let (_d, _p, mut vm) = start(EVAL);
    // A Lua 5.4 binary chunk header: signature, version, format.
    let out = eval(
        &mut vm,
        r##"local f, err = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86", "x", "b")
           return { f = f == nil, err = err }"##,
    )
    .unwrap();
    assert_eq!(out["f"], true);
    assert!(
        out["err"].as_str().unwrap().contains("binary chunk"),
        "{out}"
    );
    // `assert(load(...))` therefore raises a Lua error.
    let message = lua_error(&mut vm, r##"return assert(load("\27Lua\84\0"))()"##);
    assert!(message.contains("binary chunk"), "{message}");
}

#[test]
fn text_load_runs_in_the_sandbox_with_an_explicit_env() {
    let (_d, _p, mut vm) = start(EVAL);
    let out = eval(&mut vm, "return load('return io', 'x', 't', {})() == nil").unwrap();
    assert_eq!(out, true);
    let out = eval(&mut vm, "return load('return x', 'x', 't', { x = 5 })()").unwrap();
    assert_eq!(out, 5);
}

#[test]
fn globals_asobi_scripts_use_are_present() {
    let (_d, _p, mut vm) = start(EVAL);
    let out = eval(
        &mut vm,
        r##"return {
            time = type(os.time()), clock = type(os.clock()), date = type(os.date("%Y")),
            diff = os.difftime(10, 4),
            utf8 = utf8.char(72, 105),
            upper = ("abc"):upper(),
            concat = table.concat({1, 2, 3}, ","),
            unpack = select("#", table.unpack({1, 2, 3})),
            count = type(collectgarbage("count")),
            band = bit32.band(0xFF, 0x0F), bor = bit32.bor(1, 2, 4), bxor = bit32.bxor(3, 1),
            bnot = bit32.bnot(0), lshift = bit32.lshift(1, 31), rshift = bit32.rshift(0x80000000, 31),
            arshift = bit32.arshift(0x80000000, 4), lrotate = bit32.lrotate(0x80000001, 1),
            extract = bit32.extract(0xF0, 4, 4), replace = bit32.replace(0, 0xF, 8, 4),
            btest = bit32.btest(2, 3),
            sqrt_neg = math.sqrt(-4), sqrt = math.sqrt(16),
            id = game.id(),
            tointeger = math.tointeger(3.0),
        }"##,
    )
    .unwrap();
    assert_eq!(out["time"], "number");
    assert_eq!(out["clock"], "number");
    assert_eq!(out["date"], "string");
    assert_eq!(out["diff"], 6.0);
    assert_eq!(out["utf8"], "Hi");
    assert_eq!(out["upper"], "ABC");
    assert_eq!(out["concat"], "1,2,3");
    assert_eq!(out["unpack"], 3);
    assert_eq!(out["count"], "number");
    assert_eq!(out["band"], 0x0F);
    assert_eq!(out["bor"], 7);
    assert_eq!(out["bxor"], 2);
    assert_eq!(out["bnot"], 0xFFFF_FFFFu32);
    assert_eq!(out["lshift"], 0x8000_0000u32);
    assert_eq!(out["rshift"], 1);
    assert_eq!(out["arshift"], 0xF800_0000u32);
    assert_eq!(out["lrotate"], 3);
    assert_eq!(out["extract"], 0xF);
    assert_eq!(out["replace"], 0xF00);
    assert_eq!(out["btest"], true);
    assert_eq!(out["sqrt_neg"], 0.0);
    assert_eq!(out["sqrt"], 4.0);
    assert_eq!(out["tointeger"], 3);
    let id = out["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
}

#[test]
fn math_random_follows_asobi() {
    let (_d, _p, mut vm) = start(EVAL);
    let out = eval(
        &mut vm,
        r##"local ok = true
           for _ = 1, 200 do
             local a = math.random(1.9, 3.7)      -- truncated to [1, 3]
             local b = math.random(5)
             local c = math.random()
             ok = ok and a >= 1 and a <= 3 and math.type(a) == "integer"
                     and b >= 1 and b <= 5 and c >= 0 and c < 1
           end
           local empty_ok = pcall(math.random, 3, 1)
           return { ok = ok, empty_raises = not empty_ok }"##,
    )
    .unwrap();
    assert_eq!(out, json!({"ok": true, "empty_raises": true}));
}

#[test]
fn pcall_and_xpcall_still_work_for_ordinary_errors() {
    let (_d, _p, mut vm) = start(EVAL);
    let out = eval(
        &mut vm,
        r##"local ok, err = pcall(error, "e1")
           local ok2, v = pcall(function(a, b) return a + b end, 2, 3)
           local ok3, handled = xpcall(function() error({ code = 7 }) end, function(e) return e.code end)
           local ok4, many = xpcall(function(...) return select("#", ...) end, print, 1, 2, 3)
           return { ok = ok, err = err, ok2 = ok2, v = v, ok3 = ok3, handled = handled, ok4 = ok4, many = many }"##,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"ok": false, "err": "e1", "ok2": true, "v": 5, "ok3": false, "handled": 7, "ok4": true, "many": 3})
    );
}

#[test]
fn a_sandbox_error_is_recoverable_and_the_match_goes_on() {
    let (_d, _p, mut vm) = start(EVAL);
    lua_error(&mut vm, "return io.read()");
    assert_eq!(eval(&mut vm, "return 1 + 1").unwrap(), 2);
    assert!(!vm.failed());
}
