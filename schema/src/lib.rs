//! Wire types of the asobi 1.0 protocol, shared by the server and its tools.
//!
//! This crate owns the JSON envelope (`{"type", "cid"?, "payload"}`), the payloads the server
//! reads, the way server frames are encoded, and the stable error codes a client can branch on.
//! It does no I/O and depends on no runtime, so the engine, the load generator and the tests all
//! agree on one definition of every frame.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod economy;
pub mod envelope;
pub mod error;
pub mod fb;
pub mod payload;
pub mod social;
pub mod votes;

pub use envelope::{encode_frame, encode_frame_raw, Inbound, OutFrame};
pub use error::{ApiError, Code};
