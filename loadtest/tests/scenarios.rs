//! End-to-end runs of the real binary: every scenario against the built-in baseline server or
//! the hidden fake game server, over real loopback sockets, checking the written results.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_asobi-loadtest");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(args: &[&str], out: &Path) -> Output {
    let o = Command::new(BIN)
        .args(args)
        .arg("--out-dir")
        .arg(out)
        .args(["--quiet", "--wait-idle", "0", "--nice", "0"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The only result file in `dir` whose name starts with `prefix-`.
fn result(dir: &Path, prefix: &str) -> Value {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{prefix}-2"))
        })
        .collect();
    assert_eq!(
        files.len(),
        1,
        "expected one {prefix} result in {}",
        dir.display()
    );
    assert!(files[0].with_extension("svg").exists(), "plot missing");
    serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap()
}

struct FakeGame {
    child: Child,
    port: u16,
}

impl FakeGame {
    fn start(game_dir: &Path) -> FakeGame {
        let port = free_port();
        let child = Command::new(BIN)
            .args([
                "fake-game-server",
                "--port",
                &port.to_string(),
                "--game-dir",
            ])
            .arg(game_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "fake game server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        FakeGame { child, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for FakeGame {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn f64_at(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{ptr} missing in {v:#}"))
}

#[test]
fn blast_burst_against_baseline_delivers_every_reply() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    run(
        &[
            "blast",
            "--baseline",
            "--baseline-port",
            &port,
            "--connections",
            "60",
            "--messages",
            "300",
            "--wave",
            "30",
            "--wave-ms",
            "10",
            "--source-ips",
            "4",
        ],
        out.path(),
    );
    let r = result(out.path(), "blast");
    assert_eq!(r["schema"], "asobi-loadtest/1");
    assert_eq!(r["runs"].as_array().unwrap().len(), 1);
    assert_eq!(r["runs"][0]["auth"], "placeholder");
    assert_eq!(f64_at(&r, "/runs/0/figures/connections_opened"), 60.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/replies"), 18_000.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/lost"), 0.0);
    assert!(f64_at(&r, "/runs/0/figures/throughput_msg_s") > 0.0);
    assert!(
        f64_at(&r, "/runs/0/figures/steady_throughput_msg_s")
            >= f64_at(&r, "/runs/0/figures/throughput_msg_s")
    );
    assert!(f64_at(&r, "/runs/0/figures/conn_rtt_p50_ms") > 0.0);
    assert!(r["runs"][0]["figures"]
        .get("server_mem_per_conn_bytes")
        .is_some());
    assert!(f64_at(&r, "/runs/0/cpu/server_cpu_s") > 0.0);
    assert!(!r["runs"][0]["timeline"].as_array().unwrap().is_empty());
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(r["command"].as_str().unwrap().contains("blast --baseline"));
    let readme = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(readme.contains("| blast |"), "{readme}");
}

#[test]
fn paced_blast_without_auth_hits_the_offered_rate() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    run(
        &[
            "blast",
            "--baseline",
            "--no-auth",
            "--baseline-port",
            &port,
            "--connections",
            "20",
            "--rate",
            "50",
            "--duration",
            "2",
        ],
        out.path(),
    );
    let r = result(out.path(), "blast-rate-50");
    assert_eq!(r["runs"][0]["auth"], "none");
    let achieved = f64_at(&r, "/runs/0/figures/achieved_msg_s");
    assert!(
        (800.0..=1200.0).contains(&achieved),
        "achieved {achieved} msg/s of 1000 offered"
    );
    assert_eq!(f64_at(&r, "/runs/0/figures/lost"), 0.0);
    assert!(f64_at(&r, "/runs/0/latency/rtt/count") > 1500.0);
    assert!(f64_at(&r, "/runs/0/figures/rtt_p99_ms") > 0.0);
}

#[test]
fn compare_runs_baseline_then_target_with_registered_players() {
    let game = tempfile::tempdir().unwrap();
    std::fs::write(game.path().join("arena.lua"), "RULES_VERSION = 1\n").unwrap();
    let fake = FakeGame::start(game.path());
    let out = tempfile::tempdir().unwrap();
    let players = out.path().join("players.json");
    let port = free_port().to_string();
    let args = [
        "blast",
        "--compare",
        "--baseline-port",
        &port,
        "--url",
        &fake.url(),
        "--server-pid",
        &fake.pid(),
        "--connections",
        "20",
        "--messages",
        "100",
        "--players-file",
        players.to_str().unwrap(),
    ];
    let o = run(&args, out.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("20 to register"));
    let r = result(out.path(), "blast");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["role"], "baseline");
    assert_eq!(runs[1]["role"], "target");
    assert_eq!(runs[1]["auth"], "players");
    for i in 0..2 {
        assert_eq!(f64_at(&r, &format!("/runs/{i}/figures/replies")), 2000.0);
        assert_eq!(f64_at(&r, &format!("/runs/{i}/figures/lost")), 0.0);
    }
    assert!(f64_at(&r, "/ratio/throughput_msg_s") > 0.0);
    let cache: Value = serde_json::from_slice(&std::fs::read(&players).unwrap()).unwrap();
    assert_eq!(cache["players"].as_array().unwrap().len(), 20);

    // Second run: every player comes from the cache.
    let out2 = tempfile::tempdir().unwrap();
    let o = run(&args, out2.path());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("to register"),
        "cache not used"
    );
}

#[test]
fn play_and_reload_against_a_ticking_game() {
    let game = tempfile::tempdir().unwrap();
    let lua = game.path().join("arena.lua");
    std::fs::write(&lua, "-- test\nRULES_VERSION = 5\nreturn {}\n").unwrap();
    let fake = FakeGame::start(game.path());
    let out = tempfile::tempdir().unwrap();
    let players = out.path().join("players.json");
    let p = players.to_str().unwrap();
    run(
        &[
            "play",
            "--url",
            &fake.url(),
            "--server-pid",
            &fake.pid(),
            "--players",
            "20",
            "--duration",
            "2",
            "--players-file",
            p,
        ],
        out.path(),
    );
    let r = result(out.path(), "play-duel");
    assert_eq!(f64_at(&r, "/runs/0/figures/ccu"), 20.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/matched"), 20.0);
    assert!(f64_at(&r, "/runs/0/figures/input_to_state_p50_ms") > 0.0);
    assert!(f64_at(&r, "/runs/0/figures/input_to_state_p99_ms") < 1000.0);
    assert!(f64_at(&r, "/runs/0/figures/states_per_s") > 100.0);
    assert!(f64_at(&r, "/runs/0/figures/matchmaking_p50_ms") >= 0.0);

    run(
        &[
            "reload",
            "--url",
            &fake.url(),
            "--game-dir",
            game.path().to_str().unwrap(),
            "--players",
            "10",
            "--reloads",
            "2",
            "--warmup",
            "1",
            "--gap",
            "0.5",
            "--players-file",
            p,
        ],
        out.path(),
    );
    let r = result(out.path(), "reload");
    assert_eq!(f64_at(&r, "/runs/0/figures/clients_missing_new_rules"), 0.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/sockets_dropped"), 0.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/observations"), 20.0);
    assert!(f64_at(&r, "/runs/0/figures/reload_p99_ms") > 0.0);
    assert_eq!(
        std::fs::read_to_string(&lua).unwrap(),
        "-- test\nRULES_VERSION = 5\nreturn {}\n",
        "the game file is restored"
    );
}

#[test]
fn idle_sockets_stay_open_and_cost_is_reported() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    run(
        &[
            "idle",
            "--baseline",
            "--baseline-port",
            &port,
            "--connections",
            "300",
            "--hold",
            "0.5",
        ],
        out.path(),
    );
    let r = result(out.path(), "idle");
    assert_eq!(f64_at(&r, "/runs/0/figures/connections_opened"), 300.0);
    assert_eq!(f64_at(&r, "/runs/0/figures/still_open_after_hold"), 300.0);
    assert!(f64_at(&r, "/runs/0/figures/server_mem_per_conn_bytes") > 0.0);
    assert!(f64_at(&r, "/runs/0/figures/open_rate_per_s") > 0.0);
}

#[test]
fn play_refuses_the_baseline() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["play", "--baseline", "--quiet", "--out-dir"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs game logic"));
}

#[test]
fn repeated_runs_report_medians() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    run(
        &[
            "blast",
            "--baseline",
            "--baseline-port",
            &port,
            "--connections",
            "20",
            "--messages",
            "50",
            "--repeat",
            "3",
        ],
        out.path(),
    );
    let r = result(out.path(), "blast");
    assert_eq!(r["runs"].as_array().unwrap().len(), 3);
    assert_eq!(f64_at(&r, "/medians/target/replies"), 1000.0);
    assert!(r["headline"].as_str().unwrap().contains("median run of 3"));
    assert!(r["headlines"]["target"].is_string());
}

/// The real asobi server: `ASOBI_BIN`, else the workspace's release build, else its debug build
/// (which `cargo test --workspace` builds for the engine's own integration tests).
fn asobi_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ASOBI_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    // The newest build: a release binary left from an older checkout must not stand in for the
    // debug one `cargo test --workspace` just built (nor the reverse).
    let candidates = [target.join("release/asobi"), target.join("debug/asobi")];
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| {
            panic!(
                "no asobi binary in {}: run `cargo test --workspace`, `cargo build -p asobi-engine`, or set ASOBI_BIN",
                target.display()
            )
        })
}

/// A short blast against a spawned asobi over `extra` (wire/transport flags); returns the result.
fn blast_real(extra: &[&str], prefix: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    let players = dir.path().join("players.json");
    let game = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena");
    let bin = asobi_bin();
    let (port, quic) = (free_port().to_string(), free_port().to_string());
    let mut args = vec![
        "blast",
        "--connections",
        "20",
        "--messages",
        "50",
        "--spawn-server",
        bin.to_str().unwrap(),
        "--game-dir",
        game.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--players-file",
        players.to_str().unwrap(),
        "--server-port",
        &port,
        "--quic-port",
        &quic,
    ];
    args.extend_from_slice(extra);
    run(&args, &out);
    result(&out, prefix)
}

fn assert_every_reply(run: &Value, bytes_floor: f64) {
    assert_eq!(f64_at(run, "/figures/connections_opened"), 20.0, "{run:#}");
    assert_eq!(f64_at(run, "/figures/replies"), 1000.0, "{run:#}");
    assert_eq!(f64_at(run, "/figures/lost"), 0.0, "{run:#}");
    assert_eq!(f64_at(run, "/figures/error_frames"), 0.0, "{run:#}");
    // A heartbeat frame is tens of bytes on any wire; zero would mean nothing was counted.
    assert!(f64_at(run, "/figures/bytes_per_msg_out") > bytes_floor);
    assert!(f64_at(run, "/figures/bytes_per_msg_in") > bytes_floor);
}

#[test]
fn blast_over_flatbuffers_websocket_against_asobi_loses_nothing() {
    let v = blast_real(&["--wire", "fb"], "blast-ws-fb");
    let run = &v["runs"][0];
    assert_eq!(run["figures"]["wire"], "fb");
    assert_eq!(run["figures"]["transport"], "ws");
    assert_every_reply(run, 20.0);
}

#[test]
fn blast_over_quic_and_all_four_wires_against_asobi_loses_nothing() {
    let v = blast_real(&["--transport", "quic"], "blast-quic-json");
    let run = &v["runs"][0];
    assert_eq!(run["figures"]["transport"], "quic");
    assert_every_reply(run, 20.0);

    let v = blast_real(&["--compare-wires"], "blast-wires");
    let roles: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["ws+json", "ws+fb", "quic+json", "quic+fb"]);
    for r in v["runs"].as_array().unwrap() {
        assert_every_reply(r, 20.0);
    }
    for k in [
        "fb_vs_json_ws",
        "fb_vs_json_quic",
        "quic_vs_ws_json",
        "quic_vs_ws_fb",
    ] {
        assert!(
            f64_at(&v, &format!("/wire_ratios/{k}/bytes_per_msg_in")) > 0.0,
            "{k}"
        );
    }
}

#[test]
fn chat_steps_against_asobi_reach_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    let players = dir.path().join("players.json");
    let game = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena");
    let bin = asobi_bin();
    let port = free_port().to_string();
    run(
        &[
            "chat",
            "--members",
            "40",
            "--senders",
            "4",
            "--rates",
            "5,20",
            "--duration",
            "1",
            "--spawn-server",
            bin.to_str().unwrap(),
            "--game-dir",
            game.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--players-file",
            players.to_str().unwrap(),
            "--server-port",
            &port,
        ],
        &out,
    );
    let v = result(&out, "chat");
    let run = &v["runs"][0];
    assert_eq!(f64_at(run, "/figures/members_joined"), 40.0, "{run:#}");
    let steps = run["figures"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{run:#}");
    for (s, rate) in steps.iter().zip([5.0, 20.0]) {
        assert_eq!(s["rate_per_sender"], rate);
        let sent = f64_at(s, "/messages_sent");
        // 4 senders for one second at `rate` each (a sender's first send waits for its slot).
        assert!(sent >= 4.0 * rate * 0.7, "{s:#}");
        assert_eq!(f64_at(s, "/messages_complete"), sent, "{s:#}");
        assert_eq!(f64_at(s, "/deliveries"), sent * 40.0, "{s:#}");
        assert_eq!(f64_at(s, "/expected_deliveries"), sent * 40.0, "{s:#}");
        assert!(f64_at(s, "/fanout_last_member_p99_ms") > 0.0, "{s:#}");
        assert!(f64_at(s, "/server_cpu_ns_per_delivery") > 0.0, "{s:#}");
    }
    assert!(f64_at(run, "/figures/deliveries_per_s") > 0.0);
}

/// `party` against the real server: parties form over invite/accept, queue the example
/// game's 4v4, and come out whole, on one team, each player in one match. Equal ratings make
/// every match formable at once; the packing leftovers (say a trio with no solo left) may
/// still be waiting when the run ends, so the counts are lower bounds.
#[test]
fn party_against_asobi_keeps_every_party_on_one_team() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    let players = dir.path().join("players.json");
    let game = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena");
    let bin = asobi_bin();
    let port = free_port().to_string();
    run(
        &[
            "party",
            "--players",
            "48",
            "--arrival-rate",
            "400",
            "--rating-sd",
            "0",
            "--settle",
            "6",
            "--spawn-server",
            bin.to_str().unwrap(),
            "--game-dir",
            game.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--players-file",
            players.to_str().unwrap(),
            "--server-port",
            &port,
        ],
        &out,
    );
    let v = result(&out, "party");
    let f = &v["runs"][0]["figures"];
    assert_eq!(f["players_in_formed_parties"], 48, "{f:#}");
    assert_eq!(f["parties_failed_to_form"], 0, "{f:#}");
    assert_eq!(f["parties_split"], 0, "{f:#}");
    assert_eq!(f["players_matched_twice"], 0, "{f:#}");
    assert_eq!(f["matches_without_two_teams"], 0, "{f:#}");
    assert!(f64_at(&v, "/runs/0/figures/matches") >= 3.0, "{f:#}");
    assert!(
        f64_at(&v, "/runs/0/figures/matched_players") >= 24.0,
        "{f:#}"
    );
    // Everyone rated alike: the teams are level.
    assert_eq!(f64_at(&v, "/runs/0/figures/team_gap_p99"), 0.0, "{f:#}");
    assert!(f64_at(&v, "/runs/0/figures/wait_p99_ms") > 0.0, "{f:#}");
    assert_eq!(f["mix"], "50/25/15/10");
}
