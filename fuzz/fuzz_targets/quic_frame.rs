//! The QUIC stream reader: arbitrary bytes, pushed in arbitrary pieces, must yield frames or a
//! clean error, never a panic, and never a frame larger than the limit. The body lives in
//! `asobi_net::fuzzing` so the corpus replays in the workspace tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| asobi_net::fuzzing::quic_frame(data));
