//! The operator console in a real browser: headless Chromium driven by Playwright
//! (`tests/console/console_test.mjs`) against the real binary. The browser signs in, sees a
//! live match appear, kicks a player, grants currency, sends a notification and sees the running
//! tournament; this side makes the match and checks what the actions did (the kicked socket's
//! close frame, the wallet and its ledger reason, the player's notification).
//!
//! Needs `node`, Chromium (`ASOBI_CHROMIUM`, default `/usr/bin/chromium`) and `playwright-core`
//! (`ASOBI_PLAYWRIGHT_DIR`, default `target/console-test/node_modules`; `.ci/run` installs all
//! three). Missing any of them fails the test unless `ASOBI_TEST_ALLOW_NO_BROWSER=1` says
//! skipping is intended.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{copy_example_game, workspace_root, Opts, Server};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "console-test-secret-0123456789";

fn browser_kit() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(
        std::env::var("ASOBI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    let modules = std::env::var("ASOBI_PLAYWRIGHT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target/console-test/node_modules"));
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<String> = [
        (!node).then(|| "node".to_owned()),
        (!chromium.exists()).then(|| format!("chromium at {}", chromium.display())),
        (!modules.join("playwright-core").exists())
            .then(|| format!("playwright-core in {}", modules.display())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some((chromium, modules));
    }
    if std::env::var("ASOBI_TEST_ALLOW_NO_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "NOTE: browser test skipped (ASOBI_TEST_ALLOW_NO_BROWSER=1); missing: {missing:?}"
        );
        return None;
    }
    panic!(
        "the console browser test needs {missing:?}; run .ci/run's install step \
         (npm install --prefix target/console-test playwright-core; apt-get install chromium) \
         or set ASOBI_TEST_ALLOW_NO_BROWSER=1 to skip on purpose"
    );
}

#[test]
fn console_in_a_real_browser() {
    let Some((chromium, modules)) = browser_kit() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    std::fs::write(game.join("economy.json"), r#"{"currencies": ["gold"]}"#).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::fs::write(
        game.join("tournaments.json"),
        json!({"tournaments": [{"id": "cup", "name": "Console Cup", "leaderboard_id": "cup-board",
            "start_at": now - 60_000, "end_at": now + 3_600_000}]})
        .to_string(),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            shards: Some(2),
            env: vec![
                ("ASOBI_OPS_SECRET".into(), SECRET.into()),
                ("ASOBI_CONSOLE".into(), "true".into()),
                ("ASOBI_CONSOLE_LABEL".into(), "ci".into()),
            ],
            ..Opts::default()
        },
    );
    let a = s.register("cona");
    let b = s.register("conb");
    let (mut wa, mut wb) = (s.ws().0, s.ws().0);
    wa.connect(&a.access);
    wb.connect(&b.access);

    // The script copies its module resolution from the installed playwright-core.
    let script = workspace_root().join("engine/tests/console/console_test.mjs");
    let run_dir = modules.parent().unwrap().to_path_buf();
    let local = run_dir.join("console_test.mjs");
    std::fs::copy(&script, &local).unwrap();
    let mut node = Command::new("node")
        .arg(&local)
        .env("ASOBI_URL", format!("http://{}", s.addr()))
        .env("ASOBI_SECRET", SECRET)
        .env("ASOBI_PLAYER_ID", &a.id)
        .env("ASOBI_PLAYER_NAME", &a.username)
        .env("ASOBI_CHROMIUM", &chromium)
        .current_dir(&run_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node");
    let mut stdin = node.stdin.take().unwrap();
    let stdout = node.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[browser] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let expect = |what: &str| loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.starts_with(what) => return line,
            Ok(line) if line.starts_with("FAIL") => panic!("browser: {line}"),
            Ok(_) => continue,
            Err(_) => panic!("browser never printed {what}"),
        }
    };
    expect("READY");
    wa.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    wb.send(json!({"type": "matchmaker.add", "payload": {"mode": "duel"}}));
    let m = wa.expect("match.matched", WAIT, |_| true);
    let match_id = m["payload"]["match_id"].as_str().unwrap().to_owned();
    writeln!(stdin, "{match_id}").unwrap();
    assert_eq!(expect("SAW"), format!("SAW {match_id}"));
    expect("KICKED");
    let (code, reason) = wa.close_frame(WAIT).expect("the kicked socket closes");
    assert_eq!((code, reason.as_str()), (4000, "kicked"));
    expect("GRANTED");
    expect("NOTIFIED");
    expect("TOURNAMENTS");
    expect("DONE");
    assert!(node.wait().unwrap().success());

    let (status, wallets) = s.http("GET", "/api/v1/wallets", Some(&a.access), None);
    assert_eq!(status, 200);
    assert!(wallets.to_string().contains("\"balance\":25"), "{wallets}");
    // The console's notification reached the player, stored and audited under the console's
    // operator.
    let (status, notes) = s.http("GET", "/api/v1/notifications", Some(&a.access), None);
    assert_eq!(status, 200, "{notes}");
    assert!(notes.to_string().contains("Console says hi"), "{notes}");
    let (_, history) = s.http("GET", "/api/v1/wallets/gold/history", Some(&a.access), None);
    assert!(
        history.to_string().contains("ops:browser-op:browser-test"),
        "{history}"
    );
    assert!(s.stop().success());
}
