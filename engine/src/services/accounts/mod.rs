//! Accounts: password and guest sign-in, rotating refresh tokens, profiles, erasure, and the
//! access-token keys every other service verifies with.

pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod tokens;
