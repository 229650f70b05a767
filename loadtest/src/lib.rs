//! `asobi-loadtest`: load generator for asobi-rs and any asobi-compatible WebSocket server.
//!
//! Scenarios (`blast`, `play`, `idle`, `reload`) run against a target server — one this tool
//! spawns (`--spawn-server`), one already running (`--url`), or the bare baseline server
//! built into this binary (`--baseline`) — or against the baseline and then the target in one
//! invocation (`--compare`), so each result carries asobi-rs as a ratio to the bare stack.
//! Results go to `bench-results/<scenario>-<timestamp>.json` + `.svg`, and the README table
//! there is regenerated.
//!
//! The library exists so the binary's parts can be tested; the binary is the product.

pub mod auth;
pub mod baseline;
pub mod cli;
pub mod conn;
pub mod fakegame;
pub mod monitor;
pub mod orchestrate;
pub mod proto;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod scrape;
pub mod server;
pub mod svg;
pub mod sys;
pub mod ws;
