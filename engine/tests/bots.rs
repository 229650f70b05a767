//! Bots over real sockets: `game.bots.add` seats a session-less bot that thinks every 100 ms
//! through the mode's bot script (its return fed in as input), a bot script that loops forever
//! is contained (the built-in AI takes over and the match keeps running), and
//! `game.bots.remove` takes a bot out mid-match. A finished match's record lists its bots (as
//! asobi's does) but only humans get stats, on SQLite and PostgreSQL.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Players (bots included) get a position; `handle_input` counts each one's inputs and keeps
/// the last; inputs from humans can add or remove a bot.
const ARENA: &str = r#"
match_size = 1
max_players = 6
quick_play = true
bots = { script = "bots/BOTFILE" }
function init(config) return { players = {}, inputs = {}, last = {} } end
function join(p, state)
  state.players[p] = { x = 100, y = 100, hp = 10 }
  return state
end
function leave(p, state)
  state.players[p] = nil
  return state
end
function handle_input(p, input, state)
  if input.finish then
    state._finished = true
    state._result = { winner = input.finish }
    return state
  end
  if input.add then game.bots.add(input.add) return state end
  if input.remove then game.bots.remove(input.remove) return state end
  state.inputs[p] = (state.inputs[p] or 0) + 1
  state.last[p] = input
  return state
end
function tick(state) return state end
function get_state(p, state)
  return { players = state.players, inputs = state.inputs, last = state.last }
end
"#;

const THINKER: &str = r#"
names = { "Spark", "Blitz" }
function think(bot_id, state)
  local n = 0
  for _ in pairs(state.players or {}) do n = n + 1 end
  return { bot = bot_id, seen = n }
end
"#;

const SPINNER: &str = r#"
function think(bot_id, state)
  while true do end
end
"#;

fn start(data: &Path, game: &Path, bot_file: &str, bot_src: &str) -> Server {
    start_on(None, data, game, bot_file, bot_src)
}

fn start_on(db: Option<String>, data: &Path, game: &Path, bot_file: &str, bot_src: &str) -> Server {
    start_with(db, data, game, ARENA, bot_file, bot_src)
}

fn start_with(
    db: Option<String>,
    data: &Path,
    game: &Path,
    arena: &str,
    bot_file: &str,
    bot_src: &str,
) -> Server {
    std::fs::create_dir_all(game.join("bots")).unwrap();
    std::fs::write(
        game.join("config.lua"),
        "return { arena = \"arena.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.join("arena.lua"), arena.replace("BOTFILE", bot_file)).unwrap();
    std::fs::write(game.join("bots").join(bot_file), bot_src).unwrap();
    Server::start(
        data,
        game,
        &Opts {
            shards: Some(2),
            database_url: db,
            ..Opts::default()
        },
    )
}

fn join(s: &Server) -> (Ws, String) {
    let p = s.register("botty");
    let (mut ws, _) = s.ws();
    ws.connect(&p.access);
    ws.send(json!({"type": "match.find_or_create", "cid": "j", "payload": {"mode": "arena"}}));
    ws.expect("match.joined", WAIT, |_| true);
    (ws, p.id)
}

fn bot_ids(state: &Value) -> Vec<String> {
    state["payload"]["players"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| k.starts_with("bot_"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_scripted_bot_thinks_and_is_removed_mid_match() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(data.path(), game.path(), "thinker.lua", THINKER);
    let (mut ws, me) = join(&s);
    ws.send(json!({"type": "match.input", "payload": {"add": "Spark"}}));
    // The bot is seated (no socket: it shows in the roster the script keeps) and thinks: its
    // script's return arrives as its input, many times a second.
    let st = ws.expect("match.state", WAIT, |v| {
        let bots = bot_ids(v);
        bots.len() == 1 && v["payload"]["inputs"][&bots[0]].as_u64().unwrap_or(0) >= 5
    });
    let bot = bot_ids(&st).remove(0);
    assert!(
        bot.starts_with("bot_Spark_") && bot.len() == "bot_Spark_".len() + 6,
        "{bot}"
    );
    assert_eq!(st["payload"]["last"][&bot], json!({"bot": bot, "seen": 2}));
    assert!(
        st["payload"]["inputs"].get(&me).is_none(),
        "only the bot sent game input"
    );

    // Removed by its bare name, mid-match: it leaves and stops sending input.
    ws.send(json!({"type": "match.input", "payload": {"remove": "Spark"}}));
    let gone = ws.expect("match.state", WAIT, |v| bot_ids(v).is_empty());
    let count = gone["payload"]["inputs"][&bot].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let later = ws.expect("match.state", WAIT, |_| true);
    assert_eq!(
        later["payload"]["inputs"][&bot].as_u64().unwrap(),
        count,
        "no input after removal"
    );
    assert!(bot_ids(&later).is_empty());
}

#[test]
fn a_mode_with_fill_off_still_runs_its_bot_script() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    // asobi: `enabled` governs queue fill only; placed bots still run the mode's script.
    let arena = ARENA.replace(
        "bots = { script = \"bots/BOTFILE\" }",
        "bots = { script = \"bots/BOTFILE\", enabled = false }",
    );
    assert!(arena.contains("enabled = false"));
    let s = start_with(
        None,
        data.path(),
        game.path(),
        &arena,
        "thinker.lua",
        THINKER,
    );
    let (mut ws, _) = join(&s);
    ws.send(json!({"type": "match.input", "payload": {"add": "Blitz"}}));
    let st = ws.expect("match.state", WAIT, |v| {
        let bots = bot_ids(v);
        bots.len() == 1 && v["payload"]["inputs"][&bots[0]].as_u64().unwrap_or(0) >= 2
    });
    let bot = bot_ids(&st).remove(0);
    assert_eq!(st["payload"]["last"][&bot], json!({"bot": bot, "seen": 2}));
}

#[test]
fn a_bot_script_that_loops_forever_is_contained() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(data.path(), game.path(), "spinner.lua", SPINNER);
    let (mut ws, _) = join(&s);
    ws.send(json!({"type": "match.input", "payload": {"add": "Volt"}}));
    // Every think overruns its budget and is cut off; the built-in AI decides instead, and
    // the match keeps sending state.
    let st = ws.expect("match.state", Duration::from_secs(20), |v| {
        let bots = bot_ids(v);
        bots.len() == 1 && v["payload"]["inputs"][&bots[0]].as_u64().unwrap_or(0) >= 3
    });
    let bot = bot_ids(&st).remove(0);
    let last = &st["payload"]["last"][&bot];
    for k in ["right", "left", "up", "down"] {
        assert!(last[k].is_boolean(), "built-in AI input: {last}");
    }
    // The human is chased: the AI aims at the only living player (hp 10 at 100,100).
    assert_eq!(last["shoot"], true, "{last}");
    // The match is healthy: more state keeps coming.
    for _ in 0..5 {
        ws.expect("match.state", Duration::from_secs(2), |_| true);
    }
    assert!(s.wait_log(
        "bot_think_error_falling_back_to_default_ai",
        Duration::from_secs(5)
    ));
}

const FILLED: &str = r#"
match_size = 3
max_players = 3
bots = { min_players = 3 }
function init(config) return { players = {}, inputs = {} } end
function join(p, state)
  state.players[p] = { x = 0, y = 0, hp = 1 }
  return state
end
function leave(p, state) state.players[p] = nil return state end
function handle_input(p, input, state)
  state.inputs[p] = (state.inputs[p] or 0) + 1
  return state
end
function tick(state) return state end
function get_state(p, state) return { players = state.players, inputs = state.inputs } end
"#;

#[test]
fn a_queue_is_filled_with_bots_after_the_wait() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { filled = \"filled.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("filled.lua"), FILLED).unwrap();
    let s = Server::start(
        data.path(),
        game.path(),
        &Opts {
            shards: Some(2),
            ..Opts::default()
        },
    );
    let p = s.register("lonely");
    let (mut ws, _) = s.ws();
    ws.connect(&p.access);
    ws.send(json!({"type": "matchmaker.add", "cid": "q", "payload": {"mode": "filled"}}));
    let queued = ws.expect("matchmaker.queued", WAIT, |_| true);
    assert_eq!(queued["payload"]["status"], "pending");
    // Alone in a queue of three: nothing before the spawner's check, then two bots fill it.
    let matched = ws.expect("match.matched", Duration::from_secs(25), |_| true);
    let players: Vec<String> = matched["payload"]["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(players.len(), 3, "{matched}");
    assert!(players.contains(&p.id));
    let mut bots: Vec<&String> = players.iter().filter(|id| id.starts_with("bot_")).collect();
    bots.sort();
    assert_eq!(bots.len(), 2);
    assert!(
        bots[0].starts_with("bot_Blitz_") && bots[1].starts_with("bot_Spark_"),
        "{bots:?}"
    );
    // The built-in AI runs for them (no bot script): their inputs arrive.
    ws.expect("match.state", WAIT, |v| {
        bots.iter()
            .all(|b| v["payload"]["inputs"][b.as_str()].as_u64().unwrap_or(0) >= 3)
    });
}

/// A bot wins a match against one human: the record is written (its public projection has no
/// roster); the human's stats count the loss; the bot gets no stats row (asobi bumps only rows
/// made at sign-up).
fn bots_in_a_finished_match(s: &Server) {
    let (mut ws, me) = join(s);
    let token = s.register("botwatch").access;
    ws.send(json!({"type": "match.input", "payload": {"add": "Spark"}}));
    let st = ws.expect("match.state", WAIT, |v| bot_ids(v).len() == 1);
    let bot = bot_ids(&st).remove(0);
    ws.send(json!({"type": "match.input", "payload": {"finish": bot}}));
    let fin = ws.expect("match.finished", WAIT, |_| true);
    let match_id = fin["payload"]["match_id"].as_str().unwrap().to_owned();
    assert_eq!(fin["payload"]["result"]["winner"], bot.as_str());

    let poll = |path: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (status, body) = s.http("GET", path, Some(&token), None);
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let record = poll(&format!("/api/v1/matches/{match_id}"), &|b| {
        b["status"] == "finished"
    });
    // The stored record lists the bot beside the human, as asobi's does; the public projection
    // of it (asobi's too) shows no roster.
    assert!(record.get("players").is_none(), "{record}");

    let mine = poll(&format!("/api/v1/players/{me}/stats"), &|b| {
        b["games_played"] == 1
    });
    assert_eq!((&mine["wins"], &mine["losses"]), (&json!(0), &json!(1)));
    let (status, theirs) = s.http(
        "GET",
        &format!("/api/v1/players/{bot}/stats"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        (&theirs["games_played"], &theirs["wins"]),
        (&json!(0), &json!(0)),
        "a bot has no stats: {theirs}"
    );
}

#[test]
fn bots_are_in_the_record_but_not_in_stats_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(data.path(), game.path(), "thinker.lua", THINKER);
    bots_in_a_finished_match(&s);
}

#[test]
fn bots_are_in_the_record_but_not_in_stats_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start_on(
        Some(db.url.clone()),
        data.path(),
        game.path(),
        "thinker.lua",
        THINKER,
    );
    bots_in_a_finished_match(&s);
}
