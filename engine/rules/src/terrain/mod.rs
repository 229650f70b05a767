//! Chunked terrain, as asobi serves it: one chunk per zone, the bytes a provider produced, sent
//! once per zone subscription as `world.terrain` (`{"coords":[x,y],"data":"<base64>"}`).
//!
//! This module owns the chunk format and the pure parts of terrain: the built-in providers
//! (`flat`, `noise`; deterministic by seed), reading the world script's `terrain_provider`
//! answer, turning a Lua provider's result into chunk bytes, and the chunk cache with its
//! preload list. It reads no clock and does no I/O; the world runtime owns the Lua VM and the
//! sockets, calls [`Terrain::chunk`] when a player subscribes to a zone, and binds
//! `game.terrain.get_chunk` / `game.terrain.preload` to [`Terrain::chunk`] and
//! [`Terrain::preload`].
//!
//! # Chunk format (asobi's `asobi_terrain` default)
//!
//! A chunk is `width × height` tiles, row-major (y outer, x inner), four bytes a tile: tile id
//! (`u16`, **big-endian**), flags (`u8`), elevation (`u8`); 64 × 64 tiles is 16 KiB raw, then
//! zlib-compressed (RFC 1950, as Erlang's `zlib:compress`). Tile id 0 means "no tile". A client
//! inflates, then reads tiles. A provider may also return any bytes its client understands;
//! those are shipped verbatim.

mod cache;
mod provider;

pub use cache::{Chunk, Terrain, TerrainStats, MAX_CACHED_CHUNKS, MAX_PRELOAD};
pub use provider::{parse_preload, parse_provider, tiles, NoiseArgs, Provider, ProviderError};

use std::io::{Read, Write};

/// One tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tile {
    /// What the tile is (game-defined; 0 is "no tile").
    pub id: u16,
    /// Game-defined bits.
    pub flags: u8,
    /// Height, 0–255.
    pub elevation: u8,
}

/// Bytes per tile in the default format.
pub const TILE_BYTES: usize = 4;
/// Tiles per chunk side in the default format.
pub const CHUNK_SIDE: usize = 64;

/// A chunk's dimensions in tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkFormat {
    /// Tiles per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Default for ChunkFormat {
    fn default() -> Self {
        ChunkFormat {
            width: CHUNK_SIDE,
            height: CHUNK_SIDE,
        }
    }
}

impl ChunkFormat {
    /// Tiles in one chunk.
    pub fn tiles(&self) -> usize {
        self.width * self.height
    }

    /// Raw (uncompressed) bytes of one chunk.
    pub fn raw_bytes(&self) -> usize {
        self.tiles() * TILE_BYTES
    }
}

/// Why bytes are not a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The raw bytes are not `width × height × 4` long.
    #[error("a chunk of this format is {expected} bytes, got {got}")]
    Size {
        /// The format's size.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The compressed bytes are not zlib, or inflate past the format's size.
    #[error("not a zlib-compressed chunk of this format")]
    Compressed,
}

/// Raw chunk bytes from `tiles` (row-major, `fmt.tiles()` long; a short slice is padded with
/// tile 0, a long one cut).
pub fn encode_chunk(tiles: &[Tile], fmt: ChunkFormat) -> Vec<u8> {
    let mut out = Vec::with_capacity(fmt.raw_bytes());
    for i in 0..fmt.tiles() {
        let t = tiles.get(i).copied().unwrap_or_default();
        out.extend_from_slice(&t.id.to_be_bytes());
        out.push(t.flags);
        out.push(t.elevation);
    }
    out
}

/// Tiles from raw chunk bytes.
pub fn decode_chunk(raw: &[u8], fmt: ChunkFormat) -> Result<Vec<Tile>, ChunkError> {
    if raw.len() != fmt.raw_bytes() {
        return Err(ChunkError::Size {
            expected: fmt.raw_bytes(),
            got: raw.len(),
        });
    }
    Ok(raw
        .chunks_exact(TILE_BYTES)
        .map(|b| Tile {
            id: u16::from_be_bytes([b[0], b[1]]),
            flags: b[2],
            elevation: b[3],
        })
        .collect())
}

/// zlib (RFC 1950) compression, as asobi's `compress_chunk`.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = z.write_all(raw);
    z.finish().unwrap_or_default()
}

/// Inflates at most `max` bytes: a chunk that would inflate further is refused (a small
/// compressed blob must not become a large allocation).
pub fn decompress(data: &[u8], max: usize) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    let mut z = flate2::read::ZlibDecoder::new(data).take(max as u64 + 1);
    z.read_to_end(&mut out)
        .map_err(|_| ChunkError::Compressed)?;
    if out.len() > max {
        return Err(ChunkError::Compressed);
    }
    Ok(out)
}

/// The chunk coordinates within `radius` (Chebyshev) of `center`, nearest first: what to
/// preload around a player so that crossing into a neighbouring zone finds its chunk cached.
/// `radius` is capped at 8 (289 chunks).
pub fn ring(center: (i32, i32), radius: u32) -> Vec<(i32, i32)> {
    let r = radius.min(8) as i32;
    let mut out: Vec<(i32, i32)> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
        .filter_map(|(dx, dy)| Some((center.0.checked_add(dx)?, center.1.checked_add(dy)?)))
        .collect();
    out.sort_by_key(|&(x, y)| {
        (i64::from(x) - i64::from(center.0))
            .abs()
            .max((i64::from(y) - i64::from(center.1)).abs())
    });
    out
}

#[cfg(test)]
mod tests;
