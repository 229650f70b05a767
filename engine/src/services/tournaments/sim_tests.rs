//! A tournament's week on the simulation harness, with real SQLite: the owning shard's
//! calendar opens and closes the window on the virtual clock, settlement reads the board from
//! its owner across the mesh and pays the winner once; seven days pass in milliseconds.

use std::time::Duration;

use futures::executor::block_on;
use serde_json::json;

use asobi_rules::leaderboards::Civil;
use asobi_storage::{BoardEntry, WalletChange};

use super::error::Error;
use super::{join, set_wall_clock};
use crate::services::sim::Sim;
use crate::services::Settings;

const DAY: i64 = 86_400_000;

/// Runs the simulation until `done` holds (storage answers on its own thread).
fn until(sim: &mut Sim, what: &str, done: impl Fn(&Sim) -> bool) {
    for _ in 0..5_000 {
        if done(sim) {
            return;
        }
        sim.advance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("{what} never happened");
}

#[test]
fn a_week_long_tournament_opens_closes_and_pays_once_on_the_virtual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Civil::from_ms(0).to_ms() + 21_915 * DAY; // 2030-01-01T00:00:00Z
    std::fs::write(dir.path().join("config.lua"), "return {}\n").unwrap();
    std::fs::write(
        dir.path().join("tournaments.json"),
        json!({"tournaments": [{
            "id": "wk", "name": "Week", "leaderboard_id": "wk-board", "max_entries": 2,
            "entry_fee": {"currency": "gold", "amount": 10},
            "rewards": [{"rank": 1, "currency": "gold", "amount": 100}],
            "start_at": "2030-01-01T00:00:00Z", "end_at": t0 + 7 * DAY}]})
        .to_string(),
    )
    .unwrap();
    let mut sim = Sim::new(3, dir.path(), Settings::default());
    for s in &sim.shards {
        set_wall_clock(s, t0 - 3_600_000);
    }
    let store = sim.ctx.store.clone();
    until(&mut sim, "creation", |_| {
        block_on(store.tournament("wk")).unwrap().is_some()
    });
    for p in ["ann", "bob", "cat"] {
        block_on(store.change_wallet(WalletChange {
            player_id: p.into(),
            currency: "gold".into(),
            amount: 25,
            reason: "seed".into(),
            reference_type: None,
            reference_id: None,
            metadata: json!({}),
            idempotency_key: format!("seed-{p}"),
            now_ms: t0,
        }))
        .unwrap()
        .unwrap();
    }
    let shard = sim.shards[1].clone();
    assert!(matches!(
        block_on(join(&shard, "wk", "ann")),
        Err(Error::NotStarted)
    ));

    // The start, an hour later on the virtual clock: the owner stores `active`.
    sim.advance(Duration::from_secs(3_600));
    until(&mut sim, "the start", |_| {
        block_on(store.tournament("wk")).unwrap().unwrap().status == "active"
    });
    for p in ["ann", "bob"] {
        block_on(join(&shard, "wk", p)).unwrap();
    }
    assert!(matches!(
        block_on(join(&shard, "wk", "cat")),
        Err(Error::Full)
    ));
    let entry = |p: &str, score: i64, seq: i64| BoardEntry {
        player_id: p.into(),
        score,
        sub_score: 0,
        seq,
        metadata: None,
        updated_at: t0,
    };
    // The board as its owner will read it back: cat tops it but did not enter.
    block_on(store.save_leaderboard_entries(
        "wk-board",
        vec![
            entry("cat", 90, 1),
            entry("bob", 70, 2),
            entry("ann", 40, 3),
        ],
    ))
    .unwrap();

    // A week later (virtual): settled, bob paid once.
    let real = std::time::Instant::now();
    sim.advance(Duration::from_millis(7 * DAY as u64));
    until(&mut sim, "settlement", |_| {
        block_on(store.tournament("wk"))
            .unwrap()
            .unwrap()
            .settled_at
            .is_some()
    });
    assert!(real.elapsed() < Duration::from_secs(30));
    let gold = |p: &str| {
        block_on(store.wallets(p))
            .unwrap()
            .iter()
            .find(|w| w.currency == "gold")
            .map_or(0, |w| w.balance)
    };
    assert_eq!(gold("bob"), 25 - 10 + 100);
    assert_eq!(gold("ann"), 15);
    assert_eq!(gold("cat"), 25);
    assert!(matches!(
        block_on(join(&shard, "wk", "cat")),
        Err(Error::Closed)
    ));
    // More virtual days: nothing is paid again.
    sim.advance(Duration::from_millis(3 * DAY as u64));
    assert_eq!(gold("bob"), 115);
    let t = block_on(store.tournament("wk")).unwrap().unwrap();
    assert_eq!(t.status, "finished");
}

/// A match script that creates tournaments through `game.tournament.create`.
const CREATOR: &str = r#"
match_size = 1
max_players = 1
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local r
  if input.op == "create" then
    r = game.tournament.create(input.spec)
  else
    r = game.tournament.create("not a table")
  end
  local line = r.ok and ("ok:" .. r.ok.id .. ":" .. r.ok.status .. ":" .. r.ok.leaderboard_id)
    or ("error:" .. r.error)
  state.log[#state.log + 1] = line
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

/// Sends one input to the client's match and runs the simulation (and a little real time, for
/// storage) until the script logged its answer.
fn ask(sim: &mut Sim, c: &mut crate::services::sim::Client, payload: serde_json::Value) -> String {
    let log = |c: &crate::services::sim::Client| -> Vec<String> {
        c.last("match.state")
            .and_then(|s| s["payload"]["log"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect()
    };
    let before = log(c).len();
    sim.send(c, json!({"type": "match.input", "payload": payload}));
    for _ in 0..5_000 {
        sim.advance(Duration::from_millis(1));
        sim.collect(c);
        if let Some(line) = log(c).get(before) {
            return line.clone();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("no answer to {payload}: {:?}", c.received);
}

#[test]
fn lua_creates_a_tournament_that_its_owner_runs_and_pays() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Civil::from_ms(0).to_ms() + 21_915 * DAY; // 2030-01-01T00:00:00Z
    std::fs::write(
        dir.path().join("config.lua"),
        "return { maker = \"maker.lua\" }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("maker.lua"), CREATOR).unwrap();
    let budgets = asobi_script::Budgets {
        // The create waits for a storage write on its owner; a loaded machine can outlast the
        // default wall budget, which is not what this test is about.
        wall: Duration::from_secs(10),
        ..asobi_script::Budgets::default()
    };
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    let mut sim = Sim::with_budgets(3, dir.path(), settings, budgets);
    for s in &sim.shards {
        set_wall_clock(s, t0);
        crate::services::leaderboards::set_wall_clock(s, t0);
    }
    let mut c = sim.signed_in(0, "host");
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": "maker"}}),
    );
    sim.advance(Duration::from_millis(1010));
    sim.collect(&mut c);
    assert!(c.take("match.matched").is_some(), "{:?}", c.received);

    let spec = json!({
        "id": "lua-cup", "name": "Lua Cup", "leaderboard_id": "lua-board",
        "rewards": [{"rank": 1, "currency": "gold", "amount": 30}],
        "start_at": t0 - 1_000, "end_at": t0 + DAY
    });
    assert_eq!(
        ask(&mut sim, &mut c, json!({"op": "create", "spec": spec})),
        "ok:lua-cup:active:lua-board"
    );
    assert_eq!(
        ask(&mut sim, &mut c, json!({"op": "create", "spec": spec})),
        "error:validation_failed",
        "the id is taken"
    );
    let backwards = json!({"id": "b", "name": "B", "leaderboard_id": "x",
                           "start_at": t0, "end_at": t0 - 1});
    assert_eq!(
        ask(&mut sim, &mut c, json!({"op": "create", "spec": backwards})),
        "error:validation_failed"
    );
    assert_eq!(
        ask(&mut sim, &mut c, json!({"op": "bad"})),
        "error:create requires (spec_table)"
    );

    let store = sim.ctx.store.clone();
    let stored = block_on(store.tournament("lua-cup")).unwrap().unwrap();
    assert_eq!(stored.end_at, t0 + DAY);
    assert!(block_on(store.tournament("b")).unwrap().is_none());

    // Its owner keeps the window: entrants, a ranking, and a day later the payout.
    let shard = sim.shards[2].clone();
    for p in ["ann", "bob"] {
        block_on(join(&shard, "lua-cup", p)).unwrap();
    }
    block_on(store.save_leaderboard_entries(
        "lua-board",
        vec![
            BoardEntry {
                player_id: "bob".into(),
                score: 9,
                sub_score: 0,
                seq: 1,
                metadata: None,
                updated_at: t0,
            },
            BoardEntry {
                player_id: "ann".into(),
                score: 3,
                sub_score: 0,
                seq: 2,
                metadata: None,
                updated_at: t0,
            },
        ],
    ))
    .unwrap();
    sim.advance(Duration::from_millis(DAY as u64));
    until(&mut sim, "settlement", |_| {
        block_on(store.tournament("lua-cup"))
            .unwrap()
            .unwrap()
            .settled_at
            .is_some()
    });
    let gold = |p: &str| {
        block_on(store.wallets(p))
            .unwrap()
            .iter()
            .find(|w| w.currency == "gold")
            .map_or(0, |w| w.balance)
    };
    assert_eq!(gold("bob"), 30);
    assert_eq!(gold("ann"), 0);
}
