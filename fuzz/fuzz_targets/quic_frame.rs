//! The QUIC stream reader: arbitrary bytes, pushed in arbitrary pieces, must yield frames or a
//! clean error, never a panic, and never a frame larger than the limit.
#![no_main]

use asobi_net::quic_frame::FrameReader;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks how the input is split into reads.
    let step = usize::from(data[0]).max(1);
    let mut reader = FrameReader::new(LIMIT);
    for piece in data[1..].chunks(step) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => assert!(frame.body.len() <= LIMIT),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
