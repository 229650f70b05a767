//! Accounts: password, guest and provider sign-in, rotating refresh tokens, revocable access
//! tokens, bans, rate limits, profiles, erasure, and the access-token keys every other service
//! verifies with.

pub(crate) mod access;
pub(crate) mod cmd;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod import;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod oidc;
pub(crate) mod reaper;
pub(crate) mod rest;
pub(crate) mod shared;
pub(crate) mod signin;
pub(crate) mod tokens;
pub(crate) mod ws;

pub(crate) use access::Revocations;
pub(crate) use reaper::start;
pub(crate) use shared::Shared;
