//! A world's terrain in the runtime: the provider its script names (`terrain_provider`), the
//! chunk cache (`asobi_rules::terrain`), the `world.terrain` frame a player gets when they
//! subscribe to a zone (one chunk per zone, at the zone's coordinates, base64 as asobi sends
//! it), and `game.terrain.get_chunk` / `game.terrain.preload` for the script.
//!
//! A built-in provider (`asobi_terrain_flat`, `asobi_terrain_perlin`) answers at once; the Lua
//! provider (`module = "lua"`) is the script's `generate_chunk(cx, cy, seed)`, called here on a
//! cache miss inside the world's VM budget. A script asking `game.terrain.get_chunk` for a Lua
//! chunk not made yet gets `{ error = "not_loaded" }` and the chunk is made after its callback
//! (the VM cannot be re-entered from inside a call); `preload` is asynchronous, as in asobi. A
//! name off the list logs `terrain_provider_not_allowed` and the world runs with no terrain at
//! all: no `world.terrain` is sent.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use asobi_rules::terrain::{parse_provider, ring, Chunk, ProviderError, Terrain, MAX_PRELOAD};
use asobi_script::{TerrainAccess, WorldVm};

use super::script::Effects;
use crate::wire::world::terrain_frame;
use crate::wire::Frame;

/// Chunks the script may have asked for and the runtime still has to make: a few preload
/// calls' worth. Past it further requests are dropped (a later `get_chunk` asks again).
const MAX_PENDING: usize = 4 * MAX_PRELOAD;

/// The cache and what the script asked for, shared with the VM's `game.terrain.*`.
struct Store {
    cache: Terrain,
    pending: Vec<(i32, i32)>,
}

impl Store {
    fn queue(&mut self, coords: (i32, i32)) {
        if self.pending.len() < MAX_PENDING && !self.pending.contains(&coords) {
            self.pending.push(coords);
        }
    }
}

impl TerrainAccess for Store {
    fn get_chunk(&mut self, cx: i32, cy: i32) -> Result<Vec<u8>, String> {
        match self.cache.chunk((cx, cy)) {
            Chunk::Ready(bytes) => Ok(bytes.to_vec()),
            Chunk::Missing => Err("not_found".into()),
            Chunk::NeedsScript { .. } => {
                self.queue((cx, cy));
                Err("not_loaded".into())
            }
        }
    }

    fn preload(&mut self, coords: Vec<(i32, i32)>) {
        for c in self.cache.preload_coords(&coords) {
            self.queue(c);
        }
    }
}

/// A world's terrain.
pub(super) struct WorldTerrain {
    store: Rc<RefCell<Store>>,
}

/// Asks the script for its provider and binds `game.terrain.*`; `None`: the world has no
/// terrain (and `game.terrain.*` answers asobi's "no terrain store").
pub(super) fn start(vm: &mut WorldVm, config: &Value, world_id: &str) -> Option<WorldTerrain> {
    let terrain = provider(vm, config, world_id).map(|p| WorldTerrain {
        store: Rc::new(RefCell::new(Store {
            cache: Terrain::new(p),
            pending: Vec::new(),
        })),
    });
    let access = terrain
        .as_ref()
        .map(|t| t.store.clone() as Rc<RefCell<dyn TerrainAccess>>);
    if let Err(e) = vm.set_terrain(access) {
        tracing::warn!(%world_id, "game.terrain: {e}");
    }
    terrain
}

fn provider(
    vm: &mut WorldVm,
    config: &Value,
    world_id: &str,
) -> Option<asobi_rules::terrain::Provider> {
    let mut fx = Effects::default();
    let answer = match vm.terrain_provider(config, &mut fx) {
        Ok(Some(a)) => a,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(%world_id, "terrain_provider failed: {e}");
            return None;
        }
    };
    match parse_provider(&answer) {
        Ok(p) => p,
        Err(ProviderError::NotAllowed(name)) => {
            tracing::warn!(%world_id, provider = %name, "terrain_provider_not_allowed");
            None
        }
        Err(e) => {
            tracing::warn!(%world_id, "terrain_provider: {e}");
            None
        }
    }
}

impl WorldTerrain {
    /// The chunk at `coords`, from the cache, the built-in provider or the script.
    pub(super) fn chunk(&self, vm: &mut WorldVm, coords: (i32, i32)) -> Option<Vec<u8>> {
        // The borrow ends before the script runs: `generate_chunk` may call game.terrain.*.
        let answer = self.store.borrow_mut().cache.chunk(coords);
        let seed = match answer {
            Chunk::Ready(bytes) => return Some(bytes.to_vec()),
            Chunk::Missing => return None,
            Chunk::NeedsScript { seed } => seed,
        };
        // `generate_chunk` sends nothing to players: its effects are dropped.
        let mut fx = Effects::default();
        let (result, raw) = match vm.generate_chunk(coords.0, coords.1, seed, &mut fx) {
            Ok(Some(r)) => r,
            Ok(None) => (Value::Null, None),
            Err(e) => {
                tracing::debug!(?coords, "generate_chunk failed: {e}");
                return None;
            }
        };
        let stored =
            self.store
                .borrow_mut()
                .cache
                .insert_script_result(coords, &result, raw.as_deref());
        match stored {
            Ok(Chunk::Ready(bytes)) => Some(bytes.to_vec()),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(?coords, "generate_chunk: {e}");
                None
            }
        }
    }

    /// The `world.terrain` frame of the chunk at `coords` (none where the provider has no
    /// chunk).
    pub(super) fn frame(&self, vm: &mut WorldVm, coords: (i32, i32)) -> Option<Frame> {
        let bytes = self.chunk(vm, coords)?;
        terrain_frame(coords, &bytes)
    }

    /// Warms the chunks around `center` (the view ring plus one) inside a `grid × grid`
    /// world, so a player crossing a border finds the next chunks made. Bounded by
    /// [`MAX_PRELOAD`], nearest first.
    pub(super) fn preload_around(
        &self,
        vm: &mut WorldVm,
        center: (i32, i32),
        radius: u32,
        grid: u32,
    ) {
        let inside = |v: i32| u32::try_from(v).is_ok_and(|v| v < grid);
        let coords: Vec<(i32, i32)> = ring(center, radius + 1)
            .into_iter()
            .filter(|&(x, y)| inside(x) && inside(y))
            .take(MAX_PRELOAD)
            .collect();
        let for_script = self.store.borrow_mut().cache.preload_coords(&coords);
        for c in for_script {
            self.chunk(vm, c);
        }
    }

    /// Makes the chunks the script asked for during its callbacks (`preload`, a `get_chunk`
    /// of a Lua chunk not made yet).
    pub(super) fn make_pending(&self, vm: &mut WorldVm) {
        let pending = std::mem::take(&mut self.store.borrow_mut().pending);
        for c in pending {
            self.chunk(vm, c);
        }
    }
}
