//! `game.economy.*` from a real match script against the real SQLite store, on the simulation
//! harness: each call suspends the callback, the store answers from its own thread, and the
//! reply resumes the callback in order.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use asobi_script::Budgets;

use crate::services::sim::{Client, Sim};
use crate::services::Settings;

const SHOP_GAME: &str = r#"
match_size = 1
max_players = 4
tick_rate = 50
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
local function say(state, s) state.log[#state.log + 1] = s end
local function wallet(tag, r)
  if r.ok then return tag .. ":" .. r.ok.currency .. "=" .. r.ok.balance end
  return tag .. ":" .. r.error
end
function handle_input(p, input, state)
  local who = input.player or p
  if input.op == "grant" then
    say(state, wallet("grant", game.economy.grant(who, input.currency or "gold", input.amount, input.reason, input.key)))
  elseif input.op == "debit" then
    say(state, wallet("debit", game.economy.debit(who, input.currency or "gold", input.amount, input.reason, input.key)))
  elseif input.op == "balance" then
    local r = game.economy.balance(who)
    local parts = {}
    for _, w in ipairs(r.ok) do parts[#parts + 1] = w.currency .. "=" .. w.balance end
    say(state, "balance:" .. table.concat(parts, ","))
  elseif input.op == "purchase" then
    local r = game.economy.purchase(who, input.listing, input.key)
    if r.ok then say(state, "purchase:" .. r.ok.item_def_id .. "x" .. r.ok.quantity)
    else say(state, "purchase:" .. r.error) end
  elseif input.op == "bad" then
    say(state, "bad:" .. game.economy.grant(who).error)
  elseif input.op == "mark" then
    say(state, "mark")
  end
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

const ECONOMY_FILE: &str = r#"{
  "currencies": ["gold", "gems"],
  "items": [{"id": "item-sword", "slug": "sword", "name": "Sword", "category": "weapon"}],
  "listings": [
    {"id": "list-sword", "item": "sword", "currency": "gold", "price": 300},
    {"id": "list-old", "item": "sword", "currency": "gold", "price": 1, "active": false}
  ]
}"#;

fn sim() -> (tempfile::TempDir, Sim) {
    let dir = tempfile::tempdir().unwrap();
    let d: &Path = dir.path();
    std::fs::write(d.join("config.lua"), "return { shop = \"shop.lua\" }\n").unwrap();
    std::fs::write(d.join("shop.lua"), SHOP_GAME).unwrap();
    std::fs::write(d.join("economy.json"), ECONOMY_FILE).unwrap();
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    // The store answers in real time while the clock here is virtual: give waits room.
    let budgets = Budgets {
        wall: Duration::from_secs(5),
        ..Budgets::default()
    };
    let sim = Sim::with_budgets(1, d, settings, budgets);
    (dir, sim)
}

fn log_of(c: &Client) -> Vec<String> {
    c.last("match.state").map_or_else(Vec::new, |s| {
        s["payload"]["log"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Sends one input and runs the shard until the script has logged one more line (the storage
/// thread answers in real time, so this waits for it a millisecond at a time).
fn call(sim: &mut Sim, c: &mut Client, input: Value) -> String {
    let before = log_of(c).len();
    sim.send(c, json!({"type": "match.input", "payload": input}));
    for _ in 0..5_000 {
        sim.advance(Duration::from_millis(1));
        sim.collect(c);
        let log = log_of(c);
        if log.len() > before {
            return log[before].clone();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    panic!("no answer; log {:?}", log_of(c));
}

fn alone(sim: &mut Sim, player: &str) -> Client {
    let mut c = sim.signed_in(0, player);
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": "shop"}}),
    );
    sim.advance(Duration::from_millis(1010));
    sim.collect(&mut c);
    assert!(c.take("match.matched").is_some(), "{:?}", c.received);
    c
}

#[test]
fn grant_debit_balance_and_purchase_from_lua_against_sqlite() {
    let (_dir, mut sim) = sim();
    let mut c = alone(&mut sim, "p1");
    let g = json!({"op": "grant", "amount": 1000, "reason": "match_reward", "key": "win-1"});
    assert_eq!(call(&mut sim, &mut c, g.clone()), "grant:gold=1000");
    // The same key again: the first answer comes back and nothing is applied twice.
    assert_eq!(call(&mut sim, &mut c, g), "grant:gold=1000");
    let other = json!({"op": "grant", "amount": 5, "key": "win-1"});
    assert_eq!(
        call(&mut sim, &mut c, other),
        "grant:idempotency_key_reused"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "grant", "amount": 7, "currency": "gems"})
        ),
        "grant:gems=7"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "debit", "amount": 100, "reason": "respawn_fee"})
        ),
        "debit:gold=900"
    );
    assert_eq!(
        call(&mut sim, &mut c, json!({"op": "debit", "amount": 901})),
        "debit:insufficient_funds"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "grant", "amount": 1, "currency": "silver"})
        ),
        "grant:unknown_currency"
    );
    assert_eq!(
        call(&mut sim, &mut c, json!({"op": "grant", "amount": -5})),
        "grant:invalid_amount"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-sword", "key": "buy-1"})
        ),
        "purchase:item-swordx1"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-sword", "key": "buy-1"})
        ),
        "purchase:item-swordx1"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-old"})
        ),
        "purchase:listing_inactive"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "nope"})
        ),
        "purchase:not_found"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-sword"})
        ),
        "purchase:item-swordx1"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-sword"})
        ),
        "purchase:item-swordx1",
        "300 of 300 spends the wallet to zero"
    );
    assert_eq!(
        call(
            &mut sim,
            &mut c,
            json!({"op": "purchase", "listing": "list-sword"})
        ),
        "purchase:insufficient_funds"
    );
    assert_eq!(
        call(&mut sim, &mut c, json!({"op": "balance"})),
        "balance:gems=7,gold=0"
    );
    assert_eq!(
        call(&mut sim, &mut c, json!({"op": "bad"})),
        "bad:grant requires (player_id, currency, amount[, reason])"
    );

    // What the script did is what storage holds: one ledger row per applied operation.
    let store = sim.ctx.store.clone();
    let history = futures::executor::block_on(store.wallet_history("p1", "gold", 50)).unwrap();
    let amounts: Vec<i64> = history.iter().map(|e| e.amount).collect();
    assert_eq!(amounts, [-300, -300, -300, -100, 1000]);
    let items = futures::executor::block_on(store.inventory("p1", 50)).unwrap();
    assert_eq!(items.len(), 3);
    for w in futures::executor::block_on(store.audit_wallets()).unwrap() {
        assert_eq!(w.balance, w.ledger_sum);
    }
}

#[test]
fn inputs_behind_a_waiting_economy_call_run_after_it_in_order() {
    let (_dir, mut sim) = sim();
    let mut c = alone(&mut sim, "p2");
    sim.send(
        &mut c,
        json!({"type": "match.input", "payload": {"op": "grant", "amount": 10}}),
    );
    sim.send(
        &mut c,
        json!({"type": "match.input", "payload": {"op": "mark"}}),
    );
    assert_eq!(
        call(&mut sim, &mut c, json!({"op": "balance"})),
        "grant:gold=10"
    );
    for _ in 0..5_000 {
        if log_of(&c).len() >= 3 {
            break;
        }
        sim.advance(Duration::from_millis(1));
        sim.collect(&mut c);
        std::thread::sleep(Duration::from_micros(500));
    }
    assert_eq!(log_of(&c), ["grant:gold=10", "mark", "balance:gold=10"]);
}
