//! Security review item 4 against the real binary: a player whose input drives a
//! backtracking pattern in `handle_input` must not stall the other sessions of its shard.
//! Before the bounded pattern matcher, one such input ran for seconds inside a single C call
//! while every heartbeat on the shard waited.

mod common;

use std::time::{Duration, Instant};

use common::{Opts, Server};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
/// The evil inputs sent, one every [`EVIL_PACE`].
const EVIL_INPUTS: usize = 12;
const EVIL_PACE: Duration = Duration::from_millis(150);
/// What a bystander's heartbeat round trip may take while the attack runs.
const MAX_RTT: Duration = Duration::from_millis(100);
/// A heartbeat unanswered this long ends the measurement (the shard is stalled).
const GIVE_UP: Duration = Duration::from_secs(5);

const MATCH_LUA: &str = r#"
match_size = 1
function init() return { inputs = 0, found = 0 } end
function join(p, s) return s end
function leave(p, s) return s end
function handle_input(p, input, s)
  s.inputs = s.inputs + 1
  if type(input.text) == "string" then
    -- A chat filter, say: harmless patterns, unless the text is made to backtrack.
    if string.find(input.text, ".-.-.-b") then s.found = s.found + 1 end
    local word = string.match(input.text, "(%a+).-.-.-%d")
    if word then s.found = s.found + 1 end
  end
  return s
end
function tick(s) return s end
function get_state(p, s) return { inputs = s.inputs, found = s.found } end
"#;

#[test]
fn a_backtracking_pattern_does_not_stall_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(&game).unwrap();
    std::fs::write(game.join("match.lua"), MATCH_LUA).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            shards: Some(1),
            ..Opts::default()
        },
    );
    let evil = server.register("evil");
    let bystander = server.register("by");
    let (mut we, _) = server.ws();
    let (mut wb, _) = server.ws();
    we.connect(&evil.access);
    wb.connect(&bystander.access);

    we.send(json!({"type": "matchmaker.add", "payload": {"mode": "default"}}));
    we.expect("match.matched", WAIT, |_| true);
    we.expect("match.state", WAIT, |_| true);

    // The attacker: backtracking text, at a steady pace, draining its own socket.
    let attacker = std::thread::spawn(move || {
        let text = "a".repeat(294);
        for _ in 0..EVIL_INPUTS {
            we.send(json!({"type": "match.input", "payload": {"text": text}}));
            let until = Instant::now() + EVIL_PACE;
            while Instant::now() < until {
                we.recv(Duration::from_millis(10));
            }
        }
        we
    });

    // The bystander on the same shard: heartbeats for as long as the attack lasts.
    let mut rtts = Vec::new();
    let attack_ends = Instant::now() + EVIL_PACE * EVIL_INPUTS as u32 + Duration::from_millis(300);
    let mut n = 0;
    while Instant::now() < attack_ends {
        n += 1;
        let cid = format!("hb{n}");
        let sent = Instant::now();
        wb.send(json!({"type": "session.heartbeat", "cid": cid, "payload": {}}));
        let answered = loop {
            let left = GIVE_UP.saturating_sub(sent.elapsed());
            match wb.recv(left) {
                Some(v) if v["type"] == "session.heartbeat" && v["cid"] == cid.as_str() => {
                    break true
                }
                Some(_) => {}
                None => break false,
            }
        };
        rtts.push(sent.elapsed());
        if !answered {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let we = attacker.join().unwrap();
    let worst = rtts.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} heartbeats during the attack; worst round trip {worst:?}",
        rtts.len()
    );
    assert!(
        worst < MAX_RTT,
        "a bystander heartbeat took {worst:?} (limit {MAX_RTT:?}); all: {rtts:?}"
    );
    assert!(rtts.len() >= 10, "too few heartbeats: {}", rtts.len());
    drop((we, wb));
    assert!(server.stop().success());
}
