//! The code `flatc` generates from `asobi.fbs`, kept in a crate of its own.
//!
//! Generated FlatBuffers accessors use `unsafe` internally (they read fields at offsets that the
//! verifier has already checked), so they cannot live in `asobi-schema`, which forbids unsafe
//! code because it parses untrusted bytes. This crate holds nothing but that generated code;
//! `asobi_schema::fb` is the codec built on it and always verifies a buffer before reading it.
//! Regenerate with `generate.sh`; a test in `asobi-schema` fails when this code is stale.
#![allow(
    missing_docs,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    non_camel_case_types,
    non_snake_case
)]

#[rustfmt::skip]
mod asobi_generated;

pub use asobi_generated::asobi::fb::*;
