//! `game.leaderboard.*` from real Lua scripts on the simulation harness, with real SQLite:
//! boards owned by other shards, asobi's result shapes, rebuild from storage, and a daily reset
//! on the virtual clock that archives the old period.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use asobi_rules::leaderboards::{Civil, Schedule};

use super::{owner, parse_boards, set_wall_clock, Config};
use crate::services::sim::{Client, Sim};
use crate::services::Settings;

const GAME: &str = r#"
match_size = 1
max_players = 4
tick_rate = 50
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
local function say(state, s) state.log[#state.log + 1] = s end
local function list(r)
  if r.error then return "error:" .. r.error end
  local parts = {}
  for _, e in ipairs(r.ok) do parts[#parts + 1] = e.rank .. ":" .. e.player_id .. ":" .. e.score end
  return table.concat(parts, ",")
end
function handle_input(p, input, state)
  local lb = game.leaderboard
  if input.op == "submit" then
    say(state, tostring(lb.submit(input.board, input.player, input.score, input.sub)))
  elseif input.op == "top" then
    say(state, list(lb.top(input.board, input.n)))
  elseif input.op == "around" then
    say(state, list(lb.around(input.board, input.player, input.n)))
  elseif input.op == "rank" then
    local r = lb.rank(input.board, input.player)
    say(state, r.ok and ("rank:" .. r.ok) or ("error:" .. r.error))
  elseif input.op == "bad" then
    say(state, lb.top(42).error)
    say(state, lb.submit("b").error)
  end
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

fn sim(dir: &Path, nshards: usize, boards: Option<&str>) -> Sim {
    std::fs::write(dir.join("config.lua"), "return { lb = \"lb.lua\" }\n").unwrap();
    std::fs::write(dir.join("lb.lua"), GAME).unwrap();
    let settings = Settings {
        ws_msg_rate: 0,
        leaderboards: Config {
            boards: boards.map(|b| parse_boards(b).unwrap()).unwrap_or_default(),
            ..Config::default()
        },
        ..Settings::default()
    };
    // A board's first use loads it from the real SQLite store on its thread; on a loaded
    // machine that can outlast the 50 ms wall budget, which is not what these tests are about.
    let budgets = asobi_script::Budgets {
        wall: Duration::from_secs(10),
        ..asobi_script::Budgets::default()
    };
    Sim::with_budgets(nshards, dir, settings, budgets)
}

fn alone(sim: &mut Sim, player: &str) -> Client {
    let mut c = sim.signed_in(0, player);
    sim.send(
        &mut c,
        json!({"type": "matchmaker.add", "payload": {"mode": "lb"}}),
    );
    sim.advance(Duration::from_millis(1010));
    sim.collect(&mut c);
    assert!(c.take("match.matched").is_some(), "{:?}", c.received);
    c
}

fn log_of(c: &Client) -> Vec<String> {
    c.last("match.state")
        .map(|s| {
            s["payload"]["log"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Sends one input and runs the simulation (and, for storage, a little real time) until the
/// script logged its answer; returns that line.
fn ask(sim: &mut Sim, c: &mut Client, payload: Value) -> String {
    let before = log_of(c).len();
    sim.send(c, json!({"type": "match.input", "payload": payload}));
    for _ in 0..2_000 {
        sim.advance(Duration::from_millis(1));
        sim.collect(c);
        let log = log_of(c);
        if log.len() > before {
            return log[before].clone();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("no answer to {payload}: {:?}", c.received);
}

/// Runs the simulation until every shard's writes reached storage.
fn flushed(sim: &mut Sim) {
    sim.advance(Duration::from_millis(1100));
    for _ in 0..2_000 {
        let idle = sim.shards.iter().all(|s| {
            !s.leaderboards.flushing.get()
                && !s.leaderboards.flush_armed.get()
                && s.leaderboards.ended.borrow().is_empty()
        });
        if idle {
            return;
        }
        sim.advance(Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("leaderboard writes never finished");
}

#[test]
fn lua_submit_top_rank_around_on_boards_owned_by_other_shards() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim(
        dir.path(),
        3,
        Some(r#"{"race": {"order": "asc", "operator": "best"}}"#),
    );
    let mut c = alone(&mut sim, "host");
    // Boards on every shard, so most calls cross the mesh.
    let boards: Vec<String> = (0..12).map(|i| format!("board-{i}")).collect();
    let owners: std::collections::HashSet<usize> =
        boards.iter().map(|b| owner(&sim.shards[0], b)).collect();
    assert!(owners.len() > 1, "the boards spread over shards");
    for b in &boards {
        for (p, score) in [("ann", 30), ("bob", 50), ("cat", 40), ("dan", 10)] {
            let r = ask(
                &mut sim,
                &mut c,
                json!({"op": "submit", "board": b, "player": p, "score": score}),
            );
            assert_eq!(r, "true");
        }
        assert_eq!(
            ask(&mut sim, &mut c, json!({"op": "top", "board": b, "n": 3})),
            "1:bob:50,2:cat:40,3:ann:30"
        );
        assert_eq!(
            ask(
                &mut sim,
                &mut c,
                json!({"op": "rank", "board": b, "player": "ann"})
            ),
            "rank:3"
        );
        assert_eq!(
            ask(
                &mut sim,
                &mut c,
                json!({"op": "around", "board": b, "player": "cat", "n": 1})
            ),
            "1:bob:50,2:cat:40,3:ann:30"
        );
    }
    // asobi's shapes for a player or board without entries.
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "rank", "board": "board-0", "player": "zed"})
        ),
        "error:not_found"
    );
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "nothing", "n": 5})
        ),
        ""
    );
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "around", "board": "board-1", "player": "zed", "n": 5})
        ),
        ""
    );
    // Sub-scores break ties; an ascending `best` board keeps the best time.
    ask(
        &mut sim,
        &mut c,
        json!({"op": "submit", "board": "race", "player": "ann", "score": 61, "sub": 2}),
    );
    ask(
        &mut sim,
        &mut c,
        json!({"op": "submit", "board": "race", "player": "bob", "score": 61, "sub": 1}),
    );
    ask(
        &mut sim,
        &mut c,
        json!({"op": "submit", "board": "race", "player": "ann", "score": 70}),
    );
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "race", "n": 10})
        ),
        "1:bob:61,2:ann:61"
    );
    // Wrong arguments answer asobi's shape errors at once.
    assert_eq!(
        ask(&mut sim, &mut c, json!({"op": "bad"})),
        "top requires (board_id, count)"
    );
    assert_eq!(
        log_of(&c).last().unwrap(),
        "submit requires (board_id, player_id, score)"
    );

    // Everything reached SQLite, and a new server on the same database ranks the same.
    flushed(&mut sim);
    let saved = futures::executor::block_on(sim.ctx.store.saved_leaderboard("board-5")).unwrap();
    assert_eq!(saved.entries.len(), 4);
    for s in &sim.shards {
        s.leaderboards.slots.borrow_mut().clear();
    }
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "board-5", "n": 10})
        ),
        "1:bob:50,2:cat:40,3:ann:30,4:dan:10"
    );
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "race", "n": 10})
        ),
        "1:bob:61,2:ann:61",
        "tie order survives the rebuild"
    );
}

#[test]
fn a_daily_board_resets_at_midnight_and_archives_the_old_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim(dir.path(), 2, Some(r#"{"daily": {"reset": "daily"}}"#));
    let day = Civil::from_ms(0).to_ms() + 20_000 * 86_400_000; // 2024-10-04T00:00:00Z
    let before_midnight = day + 86_400_000 - 90_000; // 23:58:30
    for s in &sim.shards {
        set_wall_clock(s, before_midnight);
    }
    let mut c = alone(&mut sim, "host");
    for (p, score) in [("ann", 5), ("bob", 9)] {
        ask(
            &mut sim,
            &mut c,
            json!({"op": "submit", "board": "daily", "player": p, "score": score}),
        );
    }
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "daily", "n": 5})
        ),
        "1:bob:9,2:ann:5"
    );
    // Past midnight (the match keeps running on the same virtual clock).
    for _ in 0..120 {
        sim.advance(Duration::from_secs(1));
        sim.collect(&mut c);
    }
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": "daily", "n": 5})
        ),
        ""
    );
    ask(
        &mut sim,
        &mut c,
        json!({"op": "submit", "board": "daily", "player": "cat", "score": 1}),
    );
    flushed(&mut sim);
    let store = &sim.ctx.store;
    let period = Schedule::parse("daily")
        .unwrap()
        .period_start(day + 1)
        .unwrap();
    assert_eq!(period, day);
    let archive = futures::executor::block_on(store.leaderboard_archive("daily", day, 10)).unwrap();
    let got: Vec<(i64, &str, i64)> = archive
        .iter()
        .map(|a| (a.rank, a.entry.player_id.as_str(), a.entry.score))
        .collect();
    assert_eq!(got, [(1, "bob", 9), (2, "ann", 5)]);
    let saved = futures::executor::block_on(store.saved_leaderboard("daily")).unwrap();
    assert_eq!(saved.period_start, Some(day + 86_400_000));
    assert_eq!(saved.entries.len(), 1, "only the new period's entry");
    assert_eq!(saved.entries[0].player_id, "cat");
}

/// Runs `reset(board, period)` from shard 0 and the simulation until it answers.
fn reset_from_shard0(sim: &mut Sim, board: &str, period: i64) -> Value {
    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
    let (s, b, o) = (sim.shards[0].clone(), board.to_owned(), out.clone());
    sim.shards[0].rt.spawn(async move {
        *o.borrow_mut() = Some(super::reset(&s, &b, Some(period)).await);
    });
    for _ in 0..5_000 {
        sim.advance(Duration::from_millis(1));
        if let Some(r) = out.borrow_mut().take() {
            return r.unwrap();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("the reset of {board} never answered");
}

/// A season's reset: answered only once the archive is in storage, and repeating it (as a
/// restart after a crash does) clears nothing of the new period.
#[test]
fn a_reset_to_a_period_is_durable_when_answered_and_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim(dir.path(), 2, None);
    let t0 = Civil::from_ms(0).to_ms() + 20_000 * 86_400_000;
    for s in &sim.shards {
        set_wall_clock(s, t0);
    }
    let mut c = alone(&mut sim, "host");
    // A board owned by the other shard, so the reset crosses the mesh.
    let board = (0..)
        .map(|i| format!("season-{i}"))
        .find(|b| owner(&sim.shards[0], b) == 1)
        .unwrap();
    for (p, score) in [("ann", 5), ("bob", 9)] {
        ask(
            &mut sim,
            &mut c,
            json!({"op": "submit", "board": board, "player": p, "score": score}),
        );
    }
    let season_end = t0 - 1_000;
    assert_eq!(
        reset_from_shard0(&mut sim, &board, season_end),
        json!({"reset": true})
    );
    // Already in storage when answered: no flush tick has run since.
    let store = sim.ctx.store.clone();
    let saved = futures::executor::block_on(store.saved_leaderboard(&board)).unwrap();
    assert_eq!(saved.period_start, Some(season_end));
    assert!(saved.entries.is_empty(), "{:?}", saved.entries);
    let archive =
        futures::executor::block_on(store.leaderboard_archive(&board, i64::MIN, 10)).unwrap();
    assert_eq!(archive.len(), 2, "{archive:?}");

    // The new period's score survives the same reset repeated.
    ask(
        &mut sim,
        &mut c,
        json!({"op": "submit", "board": board, "player": "cat", "score": 1}),
    );
    assert_eq!(
        reset_from_shard0(&mut sim, &board, season_end),
        json!({"reset": false})
    );
    assert_eq!(
        ask(
            &mut sim,
            &mut c,
            json!({"op": "top", "board": board, "n": 5})
        ),
        "1:cat:1"
    );
    // A board nobody has is not created by a reset.
    assert_eq!(
        reset_from_shard0(&mut sim, "never-used", season_end),
        json!({"reset": false})
    );
}

/// A Lua submit to an owner whose mesh queue is full waits for room instead of losing the score
/// (asobi's cast never refuses; ours applies backpressure), then lands once the queue drains.
#[test]
fn a_submit_to_a_full_owner_waits_for_room_and_lands() {
    use std::cell::RefCell;
    use std::future::Future;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    use crate::shard::mesh::{Outbound, SessionRef};

    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim(dir.path(), 2, None);
    let s0 = sim.shards[0].clone();
    let board = (0..)
        .map(|i| format!("full-{i}"))
        .find(|b| owner(&s0, b) == 1)
        .unwrap();
    // Fill the link to shard 1 with deliveries for a session that does not exist.
    let nobody = SessionRef {
        shard: 1,
        slot: 0,
        gen: 0,
    };
    for _ in 0..crate::shard::MESH_BACKLOG {
        s0.rt.deliver(
            nobody,
            Outbound::Close {
                code: 1000,
                reason: String::new(),
            },
        );
    }
    assert_eq!(
        super::cast_submit(&s0, &board, "ann", 5, 0, None).unwrap(),
        super::Cast::Full
    );
    let (s, b) = (s0.clone(), board.clone());
    let mut submit = Box::pin(async move { super::script::cast(&s, &b, "ann", 5, 0, None).await });
    let waker = futures::task::noop_waker();
    assert!(
        matches!(
            submit.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        ),
        "a full queue makes the submit wait, not fail"
    );
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    s0.rt.spawn(async move {
        let v = submit.await;
        *g.borrow_mut() = Some(v);
    });
    let rank = Rc::new(RefCell::new(None));
    for _ in 0..2_000 {
        sim.advance(Duration::from_millis(1));
        if got.borrow().is_some() && rank.borrow().is_none() {
            // Ask the owner after the submit went out: commands to one owner stay in order.
            let (s, b, r) = (s0.clone(), board.clone(), rank.clone());
            s0.rt.spawn(async move {
                let v = super::rank(&s, &b, "ann").await;
                *r.borrow_mut() = Some(v);
            });
        }
        if rank.borrow().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(*got.borrow(), Some(Value::Bool(true)));
    let r = rank
        .borrow_mut()
        .take()
        .expect("the owner answered")
        .unwrap();
    assert_eq!(
        (r["rank"].as_u64(), r["score"].as_i64()),
        (Some(1), Some(5)),
        "{r}"
    );
}
