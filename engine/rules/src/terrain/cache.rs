//! A world's terrain: its provider and a bounded cache of compressed chunks.
//!
//! Method kinds, in the order the runtime uses them:
//! - [`Terrain::chunk`] when a player subscribes to a zone (the answer goes out as
//!   `world.terrain`) and for `game.terrain.get_chunk(cx, cy)` (`{ ok = data }`). A built-in
//!   provider answers at once; the Lua provider answers [`Chunk::NeedsScript`], the runtime calls
//!   the script's `generate_chunk` and hands the result to [`Terrain::insert_script_result`].
//! - [`Terrain::preload`] for `game.terrain.preload(coords_list)` and for the ring of zones
//!   around a player (asobi warms neighbours so a border crossing does not wait): built-in chunks
//!   are made now, and the coordinates the script must still generate are returned.
//! - [`Terrain::evict`] when a zone unloads, if the game wants its chunk regenerated.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::provider::{parse_preload, Provider, ProviderError};
use super::ChunkFormat;

/// Chunks one world keeps. A 64 × 64 chunk compresses to a few KiB, so this is tens of MiB at
/// most; past it the least recently used chunk goes (a built-in one is regenerated on demand).
pub const MAX_CACHED_CHUNKS: usize = 4096;
/// Coordinates one `game.terrain.preload` call may name: generation is CPU work done inside a
/// script's call, so one call cannot ask for an unbounded amount of it.
pub const MAX_PRELOAD: usize = 64;

/// A chunk, or what the runtime must do to get one.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// The chunk's bytes (compressed, ready for base64).
    Ready(Arc<[u8]>),
    /// The Lua provider: call `generate_chunk(cx, cy, seed)` and pass the result to
    /// [`Terrain::insert_script_result`].
    NeedsScript {
        /// The seed to pass.
        seed: i64,
    },
    /// The script's provider has no chunk there (`generate_chunk` returned `nil`).
    Missing,
}

/// Cache counters, for `/metrics` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerrainStats {
    /// Answers from the cache.
    pub hits: u64,
    /// Chunks generated or asked of the script.
    pub misses: u64,
    /// Chunks dropped to stay under [`MAX_CACHED_CHUNKS`].
    pub evictions: u64,
}

/// A cached chunk (`None`: the script has none there) and its last use.
type Cached = (Option<Arc<[u8]>>, u64);

/// One world's terrain.
#[derive(Debug)]
pub struct Terrain {
    provider: Provider,
    format: ChunkFormat,
    capacity: usize,
    /// coords → (chunk or "script has none", last use).
    chunks: HashMap<(i32, i32), Cached>,
    /// last use → coords, oldest first.
    order: BTreeMap<u64, (i32, i32)>,
    clock: u64,
    stats: TerrainStats,
}

impl Terrain {
    /// A world's terrain in the default 64 × 64 format.
    pub fn new(provider: Provider) -> Terrain {
        Terrain::with_format(provider, ChunkFormat::default(), MAX_CACHED_CHUNKS)
    }

    /// With another chunk format and cache size (at least one chunk).
    pub fn with_format(provider: Provider, format: ChunkFormat, capacity: usize) -> Terrain {
        Terrain {
            provider,
            format,
            capacity: capacity.max(1),
            chunks: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            stats: TerrainStats::default(),
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The chunk format.
    pub fn format(&self) -> ChunkFormat {
        self.format
    }

    /// Cache counters.
    pub fn stats(&self) -> TerrainStats {
        self.stats
    }

    /// Chunks cached now.
    pub fn cached(&self) -> usize {
        self.chunks.len()
    }

    /// The chunk at `coords` (see the module doc).
    pub fn chunk(&mut self, coords: (i32, i32)) -> Chunk {
        if let Some(c) = self.touch(coords) {
            self.stats.hits += 1;
            return c.map_or(Chunk::Missing, Chunk::Ready);
        }
        self.stats.misses += 1;
        match self.provider.generate(coords, self.format) {
            Some(bytes) => {
                let bytes: Arc<[u8]> = bytes.into();
                self.put(coords, Some(bytes.clone()));
                Chunk::Ready(bytes)
            }
            None => match self.provider {
                Provider::Lua { seed } => Chunk::NeedsScript { seed },
                _ => Chunk::Missing,
            },
        }
    }

    /// Caches what the script's `generate_chunk(cx, cy, seed)` returned for `coords` (the Lua
    /// value as JSON; `raw` for a Lua string that is not UTF-8), and answers the chunk.
    pub fn insert_script_result(
        &mut self,
        coords: (i32, i32),
        result: &Value,
        raw: Option<&[u8]>,
    ) -> Result<Chunk, ProviderError> {
        let chunk = Provider::chunk_from_script(result, raw, self.format)?.map(Arc::<[u8]>::from);
        self.put(coords, chunk.clone());
        Ok(chunk.map_or(Chunk::Missing, Chunk::Ready))
    }

    /// `game.terrain.preload(coords_list)`: makes the built-in chunks named (at most
    /// [`MAX_PRELOAD`], unreadable entries skipped) and returns the coordinates the script
    /// must still generate (empty unless the provider is Lua).
    pub fn preload(&mut self, list: &Value) -> Vec<(i32, i32)> {
        let coords = parse_preload(list, MAX_PRELOAD);
        self.preload_coords(&coords)
    }

    /// Preloads the given coordinates (for a zone's neighbours, say; the caller bounds the
    /// list).
    pub fn preload_coords(&mut self, coords: &[(i32, i32)]) -> Vec<(i32, i32)> {
        let mut for_script = Vec::new();
        for &c in coords {
            if self.chunks.contains_key(&c) {
                continue;
            }
            if let Chunk::NeedsScript { .. } = self.chunk(c) {
                for_script.push(c);
            }
        }
        for_script
    }

    /// Forgets the chunk at `coords`.
    pub fn evict(&mut self, coords: (i32, i32)) {
        if let Some((_, used)) = self.chunks.remove(&coords) {
            self.order.remove(&used);
        }
    }

    fn touch(&mut self, coords: (i32, i32)) -> Option<Option<Arc<[u8]>>> {
        self.clock += 1;
        let now = self.clock;
        let (chunk, used) = self.chunks.get_mut(&coords)?;
        self.order.remove(used);
        *used = now;
        self.order.insert(now, coords);
        Some(chunk.clone())
    }

    fn put(&mut self, coords: (i32, i32), chunk: Option<Arc<[u8]>>) {
        self.evict(coords);
        while self.chunks.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.chunks.remove(&oldest);
            self.stats.evictions += 1;
        }
        self.clock += 1;
        self.chunks.insert(coords, (chunk, self.clock));
        self.order.insert(self.clock, coords);
    }
}
