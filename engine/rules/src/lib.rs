//! The rules of asobi-rs as sans-IO state machines.
//!
//! Every type here is a plain struct that takes the current time (`now: Instant`) and its inputs
//! and returns what the runtime must do, plus when it next needs to be called. Nothing here
//! reads a clock, sleeps, spawns, touches a socket or the database, or draws randomness of its
//! own: the engine owns all of that and drives these types from its timer wheel and its message
//! handlers. That is what lets every rule be tested tick by tick on a simulated clock.
//!
//! This crate must not depend on glommio, `asobi-storage`, `asobi-script` or any socket type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
pub mod bots;
pub mod leaderboards;
pub mod limits;
pub mod matches;
pub mod matchmaker;
pub mod parties;
pub mod phases;
pub mod placement;
pub mod session;
pub mod social;
pub mod terrain;
pub mod tournaments;
pub mod votes;
pub mod worlds;
