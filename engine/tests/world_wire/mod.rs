//! The server's own `world.tick` model and binary codec, compiled into the test client so that
//! frames read off a real socket are decoded by exactly the code the fixtures pin down.

#![allow(dead_code, unreachable_pub)]

#[path = "../../src/wire/world/model.rs"]
mod model;
pub(crate) use model::*;

#[path = "../../src/wire/world/binary.rs"]
pub(crate) mod binary;
