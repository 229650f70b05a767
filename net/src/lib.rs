//! Transports of asobi-rs, without a runtime: HTTP/1.1 request framing and responses, and the
//! WebSocket upgrade handshake and frames.
//!
//! Everything here is sans-IO: functions take the bytes read so far and say what they hold, or
//! produce the bytes to write. The shard runtime in `engine` owns sockets and timers and drives
//! these; it never has to know how HTTP is framed, and this crate never knows what a match is.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod quic_frame;
pub mod ws;
pub mod ws_frame;

pub use http::{ChunkedBody, Head, HttpError, Limits, Method, Response};
