//! Tournaments and seasons over real sockets, on SQLite and PostgreSQL: the file creates them,
//! players list, inspect and join them (fee, cap, refusals), scores go to the tournament's
//! board, and at the end the owning shard pays the entrants through the economy. A tournament
//! that ends while the server is down is paid at the next start, and a restart pays nobody
//! twice. A season pays its board's ranking and resets the board.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{own_pg_db, Opts, Player, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A one-player match that grants what its input asks (how players get gold for fees).
const BANK: &str = r#"
match_size = 1
max_players = 1
function init(config) return { n = 0 } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local r = game.economy.grant(p, "gold", input.amount, "test_funds", "fund-" .. p)
  state.n = state.n + 1
  return state
end
function tick(state) return state end
function get_state(p, state) return { n = state.n } end
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        env: vec![(
            "ASOBI_LEADERBOARD_CLIENT_SUBMIT".into(),
            "cup-board,late-board,ranked".into(),
        )],
    };
    Server::start(data, game, &opts)
}

fn write_game(game: &Path, t0: i64) {
    std::fs::write(game.join("config.lua"), "return { bank = \"bank.lua\" }\n").unwrap();
    std::fs::write(game.join("bank.lua"), BANK).unwrap();
    let file = json!({
        "tournaments": [
            {"id": "cup", "name": "Cup", "leaderboard_id": "cup-board", "max_entries": 3,
             "entry_fee": {"currency": "gold", "amount": 100},
             "rewards": [{"rank": 1, "currency": "gold", "amount": 500},
                         {"rank": 2, "currency": "gold", "amount": 200}],
             "start_at": t0 - 60_000, "end_at": t0 + 45_000, "metadata": {"tier": 1}},
            // Ends while the server is stopped.
            {"id": "late", "name": "Late", "leaderboard_id": "late-board",
             "rewards": [{"rank": 1, "currency": "gems", "amount": 9}],
             "start_at": t0 - 60_000, "end_at": t0 + 70_000},
            {"id": "future", "name": "Future", "leaderboard_id": "f-board",
             "start_at": "2099-01-01T00:00:00Z", "end_at": "2099-02-01T00:00:00Z"}
        ],
        "seasons": [
            {"id": "s1", "name": "Season 1", "boards": ["ranked"],
             "rewards": [{"rank": 1, "currency": "gems", "amount": 7}],
             "start_at": t0 - 60_000, "end_at": t0 + 45_000}
        ]
    });
    std::fs::write(game.join("tournaments.json"), file.to_string()).unwrap();
}

fn fund(s: &Server, p: &Player, amount: i64) {
    let (mut ws, _) = s.ws();
    ws.connect(&p.access);
    ws.send(json!({"type": "matchmaker.add", "payload": {"mode": "bank"}}));
    ws.expect("match.matched", WAIT, |_| true);
    // An input that reaches the match before the player's join is settled may be dropped;
    // resending is safe (the grant is keyed per player).
    for _ in 0..10 {
        ws.send(json!({"type": "match.input", "payload": {"amount": amount}}));
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Some(v) = ws.recv(deadline.saturating_duration_since(Instant::now())) {
            if v["type"] == "match.state" && v["payload"]["n"].as_i64().unwrap_or(0) >= 1 {
                assert_eq!(balance(s, p, "gold"), amount);
                return;
            }
        }
    }
    panic!("the bank never granted");
}

fn balance(s: &Server, p: &Player, currency: &str) -> i64 {
    let (status, body) = s.http("GET", "/api/v1/wallets", Some(&p.access), None);
    assert_eq!(status, 200, "{body}");
    body["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["currency"] == currency)
        .map_or(0, |w| w["balance"].as_i64().unwrap())
}

fn join(s: &Server, p: &Player, id: &str) -> (u16, Value) {
    s.http(
        "POST",
        &format!("/api/v1/tournaments/{id}/join"),
        Some(&p.access),
        Some("{}"),
    )
}

fn submit(s: &Server, p: &Player, board: &str, score: i64) {
    let (status, body) = s.http(
        "POST",
        &format!("/api/v1/leaderboards/{board}"),
        Some(&p.access),
        Some(&json!({ "score": score }).to_string()),
    );
    assert_eq!(status, 200, "{body}");
}

/// Polls a tournament until it shows `finished`.
fn wait_finished(s: &Server, p: &Player, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, t) = s.http(
            "GET",
            &format!("/api/v1/tournaments/{id}"),
            Some(&p.access),
            None,
        );
        if t["status"] == "finished" {
            return t;
        }
        assert!(Instant::now() < deadline, "{id} never finished: {t}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sleep_until(t_ms: i64) {
    let left = t_ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

fn tournaments_end_to_end(db: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let db2 = db.clone();
    let t0 = now_ms();
    write_game(game.path(), t0);
    let s = start(db.clone(), data.path(), game.path());
    let [a, b, c, d, e] = ["ta", "tb", "tc", "td", "te"].map(|n| s.register(n));
    for p in [&a, &b, &c, &e] {
        fund(&s, p, 150);
    }

    // Listing and details need a token; shapes are asobi's.
    assert_eq!(s.http("GET", "/api/v1/tournaments", None, None).0, 401);
    let (status, list) = s.http("GET", "/api/v1/tournaments", Some(&a.access), None);
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["tournaments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cup", "late", "future"]);
    let (_, pending) = s.http(
        "GET",
        "/api/v1/tournaments?status=pending",
        Some(&a.access),
        None,
    );
    assert_eq!(pending["tournaments"].as_array().unwrap().len(), 1);
    let (status, cup) = s.http("GET", "/api/v1/tournaments/cup", Some(&a.access), None);
    assert_eq!(status, 200);
    assert_eq!(cup["status"], "active");
    assert_eq!(cup["leaderboard_id"], "cup-board");
    assert_eq!(cup["max_entries"], 3);
    assert_eq!(cup["entry_fee"], json!({"currency": "gold", "amount": 100}));
    assert_eq!(cup["metadata"], json!({"tier": 1}));
    assert!(cup["end_at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = s.http("GET", "/api/v1/tournaments/nope", Some(&a.access), None);
    assert_eq!((status, code(&body)), (404, "tournament.not_found"));

    // Joins: the fee, once; the cap; the refusals.
    let (status, body) = join(&s, &d, "cup");
    assert_eq!((status, code(&body)), (402, "economy.insufficient_funds"));
    let (status, body) = join(&s, &a, "cup");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["tournament_id"], "cup");
    assert_eq!(body["fee"]["balance"], 50);
    let (status, body) = join(&s, &a, "cup");
    assert_eq!((status, code(&body)), (409, "tournament.already_joined"));
    assert_eq!(balance(&s, &a, "gold"), 50, "charged once");
    assert_eq!(join(&s, &b, "cup").0, 200);
    assert_eq!(join(&s, &c, "cup").0, 200);
    let (status, body) = join(&s, &e, "cup");
    assert_eq!((status, code(&body)), (409, "tournament.full"));
    assert_eq!(balance(&s, &e, "gold"), 150, "a refused join costs nothing");
    let (status, body) = join(&s, &a, "future");
    assert_eq!((status, code(&body)), (409, "tournament.not_started"));
    let (status, body) = join(&s, &a, "nope");
    assert_eq!((status, code(&body)), (404, "tournament.not_found"));
    assert_eq!(join(&s, &a, "late").0, 200);
    assert_eq!(join(&s, &b, "late").0, 200);
    let (_, cup) = s.http("GET", "/api/v1/tournaments/cup", Some(&a.access), None);
    assert_eq!(cup["entrants"], 3);

    // Scores. `e` did not enter the cup: it tops the board but is placed nowhere.
    submit(&s, &a, "cup-board", 10);
    submit(&s, &b, "cup-board", 30);
    submit(&s, &c, "cup-board", 20);
    submit(&s, &e, "cup-board", 99);
    submit(&s, &a, "late-board", 5);
    submit(&s, &b, "late-board", 6);
    submit(&s, &a, "ranked", 50);
    submit(&s, &d, "ranked", 40);

    // The end: b first (500), c second (200), a unpaid; e outside.
    let cup = wait_finished(&s, &a, "cup", Duration::from_secs(90));
    assert_eq!(cup["entrants"], 3);
    assert_eq!(balance(&s, &b, "gold"), 50 + 500);
    assert_eq!(balance(&s, &c, "gold"), 50 + 200);
    assert_eq!(balance(&s, &a, "gold"), 50);
    assert_eq!(balance(&s, &e, "gold"), 150);
    let (status, body) = join(&s, &d, "cup");
    assert_eq!((status, code(&body)), (409, "tournament.closed"));
    let (_, history) = s.http("GET", "/api/v1/wallets/gold/history", Some(&b.access), None);
    let reasons: Vec<&str> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["tournament_reward", "tournament_entry", "test_funds"]
    );

    // The season paid its board's leader and reset the board.
    let deadline = Instant::now() + Duration::from_secs(20);
    while balance(&s, &a, "gems") == 0 {
        assert!(Instant::now() < deadline, "the season never paid");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(balance(&s, &a, "gems"), 7);
    assert_eq!(balance(&s, &d, "gems"), 0);
    let (_, ranked) = s.http("GET", "/api/v1/leaderboards/ranked", Some(&a.access), None);
    assert_eq!(ranked["entries"], json!([]), "the season reset its board");

    // Stop before `late` ends; it is paid when the server comes back.
    assert!(s.stop().success());
    sleep_until(t0 + 71_000);
    let s = start(db.clone(), data.path(), game.path());
    let late = wait_finished(&s, &a, "late", Duration::from_secs(30));
    assert_eq!(late["status"], "finished");
    assert_eq!(balance(&s, &b, "gems"), 9);
    assert_eq!(balance(&s, &a, "gems"), 7);
    // Nothing was paid twice across the restart.
    assert_eq!(balance(&s, &b, "gold"), 550);
    assert_eq!(balance(&s, &c, "gold"), 250);
    // A second restart: start-up loads nothing unsettled, pays nothing again.
    assert!(s.stop().success());
    let s = start(db2, data.path(), game.path());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(balance(&s, &b, "gems"), 9);
    assert_eq!(balance(&s, &b, "gold"), 550);
    assert_eq!(balance(&s, &a, "gems"), 7);
    assert!(s.stop().success());
}

#[test]
fn tournaments_on_sqlite() {
    tournaments_end_to_end(None);
}

#[test]
fn tournaments_on_postgres() {
    let Some(db) = own_pg_db() else { return };
    tournaments_end_to_end(Some(db.url.clone()));
}

/// A tournament created at run time from the ops plane: its owner shard keeps the window from
/// then on, players join, and it pays at its end like one from the file.
#[test]
fn a_tournament_created_from_the_ops_plane_runs_and_pays() {
    const SECRET: &str = "ops-secret-for-the-tournament-test";
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    write_game(game.path(), now_ms());
    let mut opts = Opts {
        shards: Some(2),
        ..Opts::default()
    };
    opts.env
        .push(("ASOBI_LEADERBOARD_CLIENT_SUBMIT".into(), "ops-board".into()));
    opts.env.push(("ASOBI_OPS_SECRET".into(), SECRET.into()));
    let s = Server::start(data.path(), game.path(), &opts);
    let p = s.register("opsplayer");
    let t0 = now_ms();
    let body = json!({
        "id": "ops-cup", "name": "Ops Cup", "leaderboard_id": "ops-board",
        "rewards": [{"rank": 1, "currency": "gold", "amount": 50}],
        "start_at": t0 - 1_000, "end_at": t0 + 4_000
    })
    .to_string();
    let create = |token: Option<&str>, body: &str| {
        s.http("POST", "/api/v1/ops/tournaments", token, Some(body))
    };
    assert_eq!(create(None, &body).0, 403, "no credential");
    assert_eq!(create(Some(&p.access), &body).0, 403, "a player token");
    let (status, made) = create(Some(SECRET), &body);
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["data"]["id"], "ops-cup");
    let (status, again) = create(Some(SECRET), &body);
    assert_eq!(
        (status, code(&again)),
        (422, "validation_failed"),
        "{again}"
    );
    let bad = json!({"id": "x", "name": "X", "leaderboard_id": "b", "start_at": 5, "end_at": 1});
    assert_eq!(create(Some(SECRET), &bad.to_string()).0, 422);

    let (status, body) = join(&s, &p, "ops-cup");
    assert_eq!(status, 200, "{body}");
    submit(&s, &p, "ops-board", 10);
    let done = wait_finished(&s, &p, "ops-cup", Duration::from_secs(20));
    assert_eq!(done["status"], "finished");
    let deadline = Instant::now() + WAIT;
    while balance(&s, &p, "gold") != 50 {
        assert!(Instant::now() < deadline, "the winner was never paid");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.stop().success());
}

/// A season's end crashes between paying and resetting (the test hook exits the process right
/// after the payout commits): the restart resets the board, pays nobody again, and a later
/// restart leaves the new period's scores alone.
fn season_crash_between_payout_and_reset(db: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let t0 = now_ms();
    std::fs::write(game.path().join("config.lua"), "return {}\n").unwrap();
    let file = json!({"seasons": [
        {"id": "crashy", "name": "Crashy", "boards": ["ranked"],
         "rewards": [{"rank": 1, "currency": "gems", "amount": 7}],
         "start_at": t0 - 60_000, "end_at": t0 + 8_000}
    ]});
    std::fs::write(game.path().join("tournaments.json"), file.to_string()).unwrap();
    let opts = |crash: bool| {
        let mut env = vec![(
            "ASOBI_LEADERBOARD_CLIENT_SUBMIT".to_owned(),
            "ranked".to_owned(),
        )];
        if crash {
            env.push(("ASOBI_TEST_CRASH_AT".into(), "season_paid".into()));
        }
        Opts {
            shards: Some(2),
            database_url: db.clone(),
            env,
        }
    };
    let board = |s: &Server, p: &Player| {
        let (status, v) = s.http("GET", "/api/v1/leaderboards/ranked", Some(&p.access), None);
        assert_eq!(status, 200, "{v}");
        v["entries"].as_array().unwrap().clone()
    };

    let s = Server::start(data.path(), game.path(), &opts(true));
    let [a, b] = ["sa", "sb"].map(|n| s.register(n));
    submit(&s, &a, "ranked", 50);
    submit(&s, &b, "ranked", 40);
    // The scores reach storage (write-behind) well before the end; then the payout commits and
    // the process dies before any board is reset.
    let status = s.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(86), "the crash hook fired: {status:?}");

    let s = Server::start(data.path(), game.path(), &opts(false));
    // Start-up may log it before or after the "listening on" line.
    let seen = |s: &Server, needle: &str| {
        s.startup.iter().any(|l| l.contains(needle)) || s.wait_log(needle, WAIT)
    };
    assert!(
        seen(&s, "season paid but its boards not reset"),
        "the restart found the half-finished season"
    );
    assert!(seen(&s, "season ended: rewards paid, boards reset"));
    assert!(board(&s, &a).is_empty(), "the board was reset");
    assert_eq!(balance(&s, &a, "gems"), 7, "paid once, before the crash");
    assert_eq!(balance(&s, &b, "gems"), 0);
    // The new period's first score.
    submit(&s, &b, "ranked", 5);
    assert!(s.stop().success());

    // Finished for good: another start neither pays nor clears the new period.
    let s = Server::start(data.path(), game.path(), &opts(false));
    std::thread::sleep(Duration::from_secs(2));
    let entries = board(&s, &a);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["player_id"], json!(b.id));
    assert_eq!(balance(&s, &a, "gems"), 7);
    assert!(s.stop().success());
}

#[test]
fn season_crash_between_payout_and_reset_on_sqlite() {
    season_crash_between_payout_and_reset(None);
}

#[test]
fn season_crash_between_payout_and_reset_on_postgres() {
    let Some(db) = own_pg_db() else { return };
    season_crash_between_payout_and_reset(Some(db.url.clone()));
}
