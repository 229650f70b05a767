//! Replays the committed fuzz corpora through the fuzz target bodies, so every input the fuzzer
//! kept is a regression test on stable. A missing or empty corpus fails: a renamed directory
//! must not turn this into a silent pass.

use std::path::PathBuf;

use asobi_net::fuzzing;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        count += 1;
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
}

#[test]
fn http_request_corpus() {
    replay("http_request", fuzzing::http_request);
}

#[test]
fn ws_frame_corpus() {
    replay("ws_frame", fuzzing::ws_frame);
}

#[test]
fn quic_frame_corpus() {
    replay("quic_frame", fuzzing::quic_frame);
}
