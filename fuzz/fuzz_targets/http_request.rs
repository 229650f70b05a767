//! HTTP/1.1 request heads and bodies (length and chunked), pipelined, read in arbitrary pieces:
//! no panic, limits hold, and the split points never change how the bytes are framed. The body
//! lives in `asobi_net::fuzzing` so the corpus replays in the workspace tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| asobi_net::fuzzing::http_request(data));
