//! Lua RPCs (`rpc.lua`): what a game declares, how handlers answer, a handler suspended on a
//! `game.storage` call and resumed, a handler that never ends, and a broken `rpc.lua` refused
//! at load.

mod common;

use asobi_script::{Budgets, Call, CallError, Game, RpcReply, RpcVm};
use common::{game_dir, HEADER};
use serde_json::json;

const RPC: &str = r#"
codes = { ["shop.sold_out"] = { status = 409, message = "Sold out." } }
rpc = {}
rpc["echo.say"] = function(params, ctx) return { said = params.word, by = ctx.player_id } end
rpc["shop.buy"] = function(params, ctx) return nil, "shop.sold_out", { item = params.item } end
rpc["vault.read"] = function(params, ctx)
  local r = game.storage.get("c", "k")
  return { value = r.ok, err = r.error }
end
rpc["empty.result"] = function() return {} end
rpc["bad.result"] = function() return "text" end
rpc["spin"] = function() while true do end end
"#;

fn load(rpc: &str) -> (tempfile::TempDir, Result<Game, asobi_script::LoadError>) {
    let dir = game_dir(&[
        (
            "match.lua",
            &format!("{HEADER}function init() return {{}} end"),
        ),
        ("rpc.lua", rpc),
    ]);
    let game = Game::load(dir.path());
    (dir, game)
}

#[test]
fn handlers_answer_results_codes_and_defects() {
    let (_dir, game) = load(RPC);
    let game = game.unwrap();
    let script = game.rpc.clone().expect("rpc.lua declares methods");
    assert_eq!(
        script.methods,
        [
            "bad.result",
            "echo.say",
            "empty.result",
            "shop.buy",
            "spin",
            "vault.read"
        ]
    );
    assert_eq!(script.codes["shop.sold_out"].status, 409);
    let mut vm = RpcVm::new(&script, &Budgets::default()).unwrap();
    let ctx = json!({"player_id": "p1"});
    let call = |vm: &mut RpcVm, m: &str, p| vm.call(m, &p, &ctx).unwrap();
    assert_eq!(
        call(&mut vm, "echo.say", json!({"word": "hi"})),
        Call::Done(RpcReply::Ok(json!({"said": "hi", "by": "p1"})))
    );
    assert_eq!(
        call(&mut vm, "shop.buy", json!({"item": "x"})),
        Call::Done(RpcReply::Error {
            code: "shop.sold_out".into(),
            details: json!({"item": "x"})
        })
    );
    assert_eq!(
        call(&mut vm, "empty.result", json!({})),
        Call::Done(RpcReply::Ok(json!({})))
    );
    assert!(matches!(
        call(&mut vm, "bad.result", json!({})),
        Call::Done(RpcReply::Invalid(_))
    ));
    assert_eq!(
        call(&mut vm, "nope", json!({})),
        Call::Done(RpcReply::UnknownMethod)
    );
    assert!(!vm.failed());

    // Suspended on game.storage.get, resumed with the engine's reply.
    let Call::Waiting(c) = call(&mut vm, "vault.read", json!({})) else {
        panic!("the storage call must suspend the handler");
    };
    assert_eq!((c.service.as_str(), c.op.as_str()), ("storage", "get"));
    assert_eq!(c.args, json!(["c", "k"]));
    assert_eq!(
        vm.resume(&json!({"ok": 7})).unwrap(),
        Call::Done(RpcReply::Ok(json!({"value": 7})))
    );

    // A handler that never ends is aborted by the budget; the VM is marked failed.
    // It is time-sliced on the way: each slice hands control back, and the budget counts
    // running time across slices.
    let mut spun = vm.call("spin", &json!({}), &ctx);
    let mut slices = 0;
    while let Ok(Call::Waiting(c)) = &spun {
        assert!(c.is_slice(), "{c:?}");
        slices += 1;
        spun = vm.resume(&json!(null));
    }
    assert!(slices > 0);
    assert!(matches!(spun, Err(CallError::Budget { .. })), "{spun:?}");
    assert!(vm.failed());
}

#[test]
fn a_broken_rpc_file_refuses_the_game() {
    for bad in [
        "rpc = 5",
        "rpc = { [1] = function() end }",
        "rpc = { ['a.b'] = 3 }",
        "rpc = {} codes = { ['x.y'] = { status = 200 } }",
        "error('boom')",
    ] {
        let (_dir, game) = load(bad);
        assert!(game.is_err(), "{bad} must not load");
    }
    // No rpc.lua: no RPCs, the game loads.
    let dir = game_dir(&[(
        "match.lua",
        &format!("{HEADER}function init() return {{}} end"),
    )]);
    assert!(Game::load(dir.path()).unwrap().rpc.is_none());
}
