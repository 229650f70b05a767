//! The rules of a world (asobi's `game_type = "world"`): a grid of zones, what each player
//! sees of it, and the per-zone delta stream that carries entities to clients.
//!
//! Sans-IO like the rest of this crate: nothing here runs Lua, reads a clock or touches a
//! socket. The engine's world service (`services/worlds`) owns the Lua VM and the timers and
//! drives these types:
//!
//! * [`WorldConfig`]: a world script's shape, read from its globals with asobi's defaults;
//! * [`Grid`]: which zone owns a position, the interest ring around a zone, and when an
//!   entity has cleared its zone's edge far enough to re-home (asobi's rehome margin);
//! * [`Interest`]: the zones one player sees, and which zones a move enters and leaves;
//! * [`ZoneStream`]: one zone's `world.tick` stream — deltas against the last broadcast
//!   baseline, a dense `frame_seq`, keyframes and the leave frame, as asobi's ADR 0011 lays
//!   them out;
//! * [`Lifecycle`]: which zones exist (lazy creation, the idle reaper, the active-zone
//!   ceiling) and how often each ticks (the cold-tick divisor);
//! * [`SlicePlan`]: how one tick's zones are spread over the tick period;
//! * [`Stripes`]: which shard owns each zone of a world split over several shards;
//! * [`Spawner`]: a zone's spawn bookkeeping and the respawn timers of spawn templates;
//! * [`BorderMirror`]: the edge bands zones publish for their neighbours to read, and the
//!   effects addressed across a seam (`border_band`, `game.zone.apply`);
//! * [`ClientView`]: the client half of that contract (per-zone tables, union by id), used by
//!   tests to check that interest changes and border handoffs never duplicate or lose an
//!   entity.

mod border;
mod client;
mod config;
mod delta;
mod grid;
mod interest;
mod lifecycle;
mod respawn;
mod slices;
mod stripes;

pub use border::{
    band_fraction, BorderMirror, Effect, MAX_BORDER_BAND, MAX_EFFECT_BYTES_QUEUED, MAX_EFFECT_QUEUE,
};
pub use client::{ClientView, Received};
pub use config::{WorldConfig, MAX_GRID_SIZE, MAX_VIEW_RADIUS};
pub use delta::{diff, Entities, Fields, Op, ZoneStream};
pub use grid::{Grid, ZoneId, REHOME_MARGIN};
pub use interest::{Interest, InterestChange};
pub use lifecycle::{
    Admit, Lifecycle, LifecycleStats, ZonePolicy, COLD_TICK_DIVISOR, LAZY_GRID_THRESHOLD,
    MAX_ACTIVE_ZONES, REAP_INTERVAL, ZONE_IDLE_TIMEOUT,
};
pub use respawn::{Respawn, RespawnRule, Spawner, MAX_TRACKED};
pub use slices::{SlicePlan, MIN_SLICE_GAP, SLICE_ZONES};
pub use stripes::{Stripes, MAX_WORLD_SHARDS};

#[cfg(test)]
mod walk_tests;
