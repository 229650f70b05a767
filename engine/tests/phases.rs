//! Phases over real sockets: a lobby that waits for two players, then timed phases whose
//! callbacks broadcast, the `phase` block on listings and `match.joined`, and the match
//! finishing with `phases_complete` once the list is walked; and the phase clock standing still
//! while a match waits for `min_players`, as asobi's does.

mod common;

use std::time::Duration;

use common::{Opts, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

const ARENA: &str = r#"
match_size = 1
max_players = 4
quick_play = true
listed = true
function init(config) return { seen = {} } end
function phases(config)
  return {
    { name = "lobby", start = { players = 2 }, duration = 300, config = { banner = "wait" } },
    { name = "combat", duration = 400 },
    { name = "results", duration = 200 },
  }
end
function on_phase_started(name, state)
  game.broadcast("phase_began", { name = name })
  return state
end
function on_phase_ended(name, state)
  game.broadcast("phase_over", { name = name })
  return state
end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
function get_state(p, state) return {} end
"#;

#[test]
fn a_phase_list_with_a_start_condition_runs_to_completion() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { arena = \"arena.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("arena.lua"), ARENA).unwrap();
    let s = Server::start(
        data.path(),
        game.path(),
        &Opts {
            shards: Some(2),
            ..Opts::default()
        },
    );
    let pa = s.register("ph_a");
    let pb = s.register("ph_b");
    let (mut a, _) = s.ws();
    a.connect(&pa.access);
    a.send(json!({"type": "match.find_or_create", "cid": "j1", "payload": {"mode": "arena"}}));
    let joined = a.expect("match.joined", WAIT, |_| true);
    let match_id = joined["payload"]["match_id"].as_str().unwrap().to_owned();
    assert_eq!(
        joined["payload"]["phase"],
        json!({"status": "waiting", "phase": "lobby", "start_condition": {"type": "players", "value": 2}}),
        "{joined}"
    );
    // The listing carries the block too.
    let (status, live) = s.http(
        "GET",
        "/api/v1/matches/live?mode=arena",
        Some(&pa.access),
        None,
    );
    assert_eq!(status, 200);
    let listed: &Value = live["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["match_id"] == match_id.as_str())
        .expect("listed");
    assert_eq!(listed["phase"]["status"], "waiting");
    // Nothing starts while one player waits.
    let mut early = false;
    let until = std::time::Instant::now() + Duration::from_millis(500);
    while let Some(v) = a.recv(until.saturating_duration_since(std::time::Instant::now())) {
        early |= v["type"] == "match.phase_began";
    }
    assert!(!early, "the lobby waits for its second player");

    let (mut b, _) = s.ws();
    b.connect(&pb.access);
    b.send(json!({"type": "match.join", "cid": "j2", "payload": {"match_id": match_id}}));
    let joined_b = b.expect("match.joined", WAIT, |_| true);
    assert_eq!(
        joined_b["payload"]["phase"]["status"], "active",
        "{joined_b}"
    );
    assert_eq!(joined_b["payload"]["phase"]["phase"], "lobby");
    assert_eq!(
        joined_b["payload"]["phase"]["config"],
        json!({"banner": "wait"})
    );
    assert_eq!(joined_b["payload"]["phase"]["timers"], json!({}));
    // The listing shows asobi's projection of the block: no config, no timers.
    let (_, live) = s.http(
        "GET",
        "/api/v1/matches/live?mode=arena",
        Some(&pa.access),
        None,
    );
    if let Some(m) = live["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["match_id"] == match_id.as_str() && m["phase"]["phase"] == "lobby")
    {
        let keys: Vec<&String> = m["phase"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["phase", "remaining_ms", "status"], "{m}");
    }
    let mut order = Vec::new();
    let finished = loop {
        let v = a.recv(WAIT).expect("phase frames then match.finished");
        match v["type"].as_str().unwrap() {
            "match.phase_began" => {
                order.push(format!("+{}", v["payload"]["name"].as_str().unwrap()))
            }
            "match.phase_over" => {
                order.push(format!("-{}", v["payload"]["name"].as_str().unwrap()))
            }
            "match.finished" => break v,
            _ => {}
        }
    };
    assert_eq!(
        order,
        ["+lobby", "-lobby", "+combat", "-combat", "+results", "-results"]
    );
    assert_eq!(
        finished["payload"]["result"],
        json!({"status": "phases_complete"})
    );
}

const WAITER: &str = r#"
match_size = 2
max_players = 4
quick_play = true
listed = true
function init(config) return {} end
function phases(config)
  return { { name = "warmup", duration = 300 }, { name = "play" } }
end
function on_phase_started(name, state)
  game.broadcast("phase_began", { name = name })
  return state
end
function on_phase_ended(name, state)
  game.broadcast("phase_over", { name = name })
  return state
end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state) return state end
function tick(state) return state end
function get_state(p, state) return {} end
"#;

#[test]
fn the_phase_clock_stands_still_until_the_match_runs() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { waiter = \"waiter.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("waiter.lua"), WAITER).unwrap();
    let s = Server::start(data.path(), game.path(), &Opts::default());
    let pa = s.register("pw_a");
    let pb = s.register("pw_b");
    let (mut a, _) = s.ws();
    a.connect(&pa.access);
    a.send(json!({"type": "match.find_or_create", "cid": "j1", "payload": {"mode": "waiter"}}));
    let joined = a.expect("match.joined", WAIT, |_| true);
    let match_id = joined["payload"]["match_id"].as_str().unwrap().to_owned();
    assert_eq!(joined["payload"]["status"], "waiting", "{joined}");
    assert_eq!(joined["payload"]["phase"]["phase"], "warmup");
    // One player of two: the match waits, and warmup's 300 ms do not run meanwhile.
    let until = std::time::Instant::now() + Duration::from_millis(900);
    while let Some(v) = a.recv(until.saturating_duration_since(std::time::Instant::now())) {
        assert_ne!(
            v["type"], "match.phase_over",
            "warmup ended while waiting: {v}"
        );
    }
    let (mut b, _) = s.ws();
    b.connect(&pb.access);
    b.send(json!({"type": "match.join", "cid": "j2", "payload": {"match_id": match_id}}));
    let joined_b = b.expect("match.joined", WAIT, |_| true);
    let left = joined_b["payload"]["phase"]["remaining_ms"]
        .as_u64()
        .unwrap();
    assert!(
        left > 200,
        "the clock stood still while waiting: {joined_b}"
    );
    // Running now: warmup ends within its duration, and play has no end.
    let over = a.expect("match.phase_over", Duration::from_secs(2), |_| true);
    assert_eq!(over["payload"]["name"], "warmup");
    a.expect("match.phase_began", WAIT, |v| {
        v["payload"]["name"] == "play"
    });
    let (_, live) = s.http(
        "GET",
        "/api/v1/matches/live?mode=waiter",
        Some(&pa.access),
        None,
    );
    let m = live["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["match_id"] == match_id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(
        m["phase"],
        json!({"status": "active", "phase": "play", "remaining_ms": "infinity"}),
        "{m}"
    );
}
