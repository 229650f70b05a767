//! Replays the committed fuzz corpus of the QUIC frame reader on stable Rust, so CI exercises
//! every input the fuzzer found interesting without needing nightly or libFuzzer.

use asobi_net::quic_frame::FrameReader;

#[test]
fn corpus_inputs_yield_frames_or_clean_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/quic_frame");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus is committed") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for step in [1, 3, 7, 64, 4096] {
            let mut reader = FrameReader::new(64 * 1024);
            'input: for piece in data.chunks(step) {
                reader.push(piece);
                loop {
                    match reader.next_frame() {
                        Ok(Some(frame)) => assert!(frame.body.len() <= 64 * 1024),
                        Ok(None) => break,
                        Err(_) => break 'input,
                    }
                }
            }
        }
        replayed += 1;
    }
    assert!(
        replayed > 10,
        "expected the committed corpus, found {replayed} inputs"
    );
}
