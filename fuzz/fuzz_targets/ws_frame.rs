//! The WebSocket path: an optional upgrade head through `asobi_net::ws::accept`, then frames
//! through the engine's frame decoder (`asobi_net::ws_frame`), read in arbitrary pieces. No
//! panic and no message over the limit. The body lives in `asobi_net::fuzzing` so the corpus
//! replays in the workspace tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| asobi_net::fuzzing::ws_frame(data));
