//! Terrain providers: which one a world uses (the world script's `terrain_provider(config)`
//! answer), the two built in, and the encoding of a Lua provider's result.
//!
//! A world script selects its provider as in asobi:
//!
//! ```lua
//! function terrain_provider(config)
//!     return { module = "asobi_terrain_perlin", args = { seed = 42 } }
//! end
//! ```
//!
//! `module` is checked against a list, never resolved: `asobi_terrain_flat` (alias `flat`),
//! `asobi_terrain_perlin` (aliases `perlin`, `noise`), and `lua`, which is asobi-rs's Lua
//! provider: the runtime calls the script's `generate_chunk(cx, cy, seed)` for each chunk not
//! cached, and [`Provider::chunk_from_script`] encodes what it returns — a string is the chunk's
//! bytes, shipped verbatim; an array of `{x=, y=, id=, flags=, elevation=}` tables is a tile
//! map, encoded and compressed in the default format. `nil` (or `false`, or no
//! `terrain_provider`) means no terrain: no `world.terrain` is sent at all.

use serde_json::{Map, Value};

use super::{compress, encode_chunk, ChunkFormat, Tile};

/// The world's terrain source.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// Every tile the same.
    Flat {
        /// The tile.
        tile: Tile,
    },
    /// Fractal value noise: elevation, and a tile id from elevation bands.
    Noise(NoiseArgs),
    /// The world script's `generate_chunk(cx, cy, seed)`.
    Lua {
        /// Passed to `generate_chunk`.
        seed: i64,
    },
}

/// Why a `terrain_provider` answer names no usable provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A module not on the list (asobi logs `terrain_provider_not_allowed`; the world runs with
    /// no terrain).
    #[error("terrain provider `{0}` is not allowed")]
    NotAllowed(String),
    /// An answer that is not `nil` or a table with a string `module`.
    #[error("terrain_provider must return nil or {{ module = \"…\", args = {{…}} }}")]
    Shape,
    /// A Lua provider's chunk that cannot be encoded (the reason is in the text).
    #[error("generate_chunk returned an unusable chunk: {0}")]
    BadChunk(String),
}

/// Parameters of the `noise` provider. Every field may be given in `args`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseArgs {
    /// Same seed, same world.
    pub seed: i64,
    /// Tiles per noise cell of the first octave (larger is smoother). Default 32.
    pub scale: f64,
    /// Octaves summed, each twice the frequency and half the amplitude. Default 4, 1–8.
    pub octaves: u32,
    /// Elevation below which tiles are water. Default 96.
    pub sea_level: u8,
}

impl Default for NoiseArgs {
    fn default() -> Self {
        NoiseArgs {
            seed: 42,
            scale: 32.0,
            octaves: 4,
            sea_level: 96,
        }
    }
}

/// Tile ids the `noise` provider writes, by elevation band.
pub mod tiles {
    /// Below `sea_level`; flags bit 0 set.
    pub const WATER: u16 = 1;
    /// Up to 8 above `sea_level`.
    pub const SAND: u16 = 2;
    /// Up to elevation 170.
    pub const GRASS: u16 = 3;
    /// Up to elevation 215.
    pub const ROCK: u16 = 4;
    /// Above.
    pub const SNOW: u16 = 5;
}

/// The names a script may give `module`.
const FLAT: &[&str] = &["asobi_terrain_flat", "flat"];
const NOISE: &[&str] = &["asobi_terrain_perlin", "perlin", "noise"];
const LUA: &[&str] = &["lua"];

/// Reads a `terrain_provider(config)` answer (the Lua value as JSON). `Ok(None)`: no terrain.
pub fn parse_provider(answer: &Value) -> Result<Option<Provider>, ProviderError> {
    let t = match answer {
        Value::Null | Value::Bool(false) => return Ok(None),
        Value::Object(t) => t,
        _ => return Err(ProviderError::Shape),
    };
    let Some(Value::String(module)) = t.get("module") else {
        return Err(ProviderError::Shape);
    };
    let empty = Map::new();
    let args = t.get("args").and_then(Value::as_object).unwrap_or(&empty);
    let int = |k: &str, default: i64| args.get(k).and_then(Value::as_i64).unwrap_or(default);
    let byte = |k: &str, default: u8| {
        args.get(k)
            .and_then(Value::as_i64)
            .map_or(default, |v| v.clamp(0, 255) as u8)
    };
    let m = module.as_str();
    if FLAT.contains(&m) {
        Ok(Some(Provider::Flat {
            tile: Tile {
                id: int("tile", 1).clamp(0, i64::from(u16::MAX)) as u16,
                flags: byte("flags", 0),
                elevation: byte("elevation", 0),
            },
        }))
    } else if NOISE.contains(&m) {
        let d = NoiseArgs::default();
        let scale = args
            .get("scale")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 1.0)
            .unwrap_or(d.scale);
        Ok(Some(Provider::Noise(NoiseArgs {
            seed: int("seed", d.seed),
            scale: scale.min(1e6),
            octaves: int("octaves", i64::from(d.octaves)).clamp(1, 8) as u32,
            sea_level: byte("sea_level", d.sea_level),
        })))
    } else if LUA.contains(&m) {
        Ok(Some(Provider::Lua {
            seed: int("seed", 42),
        }))
    } else {
        Err(ProviderError::NotAllowed(m.chars().take(64).collect()))
    }
}

/// Reads `game.terrain.preload(coords_list)`'s argument: a list of `{cx=, cy=}` or `{x=, y=}`
/// tables. Entries it cannot read are skipped, as in asobi; at most `max` are taken.
pub fn parse_preload(list: &Value, max: usize) -> Vec<(i32, i32)> {
    let Some(items) = list.as_array() else {
        return Vec::new();
    };
    let coord = |t: &Map<String, Value>, a: &str, b: &str| {
        t.get(a)
            .or_else(|| t.get(b))
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= f64::from(i32::MIN) && *v <= f64::from(i32::MAX))
            .map(|v| v.trunc() as i32)
    };
    items
        .iter()
        .filter_map(|i| {
            let t = i.as_object()?;
            Some((coord(t, "cx", "x")?, coord(t, "cy", "y")?))
        })
        .take(max)
        .collect()
}

impl Provider {
    /// The compressed chunk at `coords`, for a built-in provider (`None` for [`Provider::Lua`],
    /// whose chunks the runtime gets from the script).
    pub fn generate(&self, coords: (i32, i32), fmt: ChunkFormat) -> Option<Vec<u8>> {
        let tiles = match self {
            Provider::Flat { tile } => vec![*tile; fmt.tiles()],
            Provider::Noise(a) => noise_tiles(a, coords, fmt),
            Provider::Lua { .. } => return None,
        };
        Some(compress(&encode_chunk(&tiles, fmt)))
    }

    /// Encodes what the script's `generate_chunk` returned (the Lua value as JSON; a Lua string
    /// that is not UTF-8 reaches here as `raw`). `Ok(None)`: the script has no chunk there.
    pub fn chunk_from_script(
        result: &Value,
        raw: Option<&[u8]>,
        fmt: ChunkFormat,
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        if let Some(bytes) = raw {
            return Ok(Some(bytes.to_vec()));
        }
        let items = match result {
            Value::Null | Value::Bool(false) => return Ok(None),
            Value::String(s) => return Ok(Some(s.as_bytes().to_vec())),
            Value::Array(items) => items,
            // An empty Lua table converts to an empty object.
            Value::Object(o) if o.is_empty() => return Ok(Some(compress(&encode_chunk(&[], fmt)))),
            _ => {
                return Err(ProviderError::BadChunk(
                    "not a string or a list of tiles".into(),
                ))
            }
        };
        let mut tiles = vec![Tile::default(); fmt.tiles()];
        for (n, item) in items.iter().enumerate() {
            let field = |k: &str, max: i64| -> Result<i64, ProviderError> {
                let v = item.get(k).and_then(Value::as_i64).unwrap_or(0);
                if (0..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(ProviderError::BadChunk(format!(
                        "tile {}: {k} = {v} is outside 0..={max}",
                        n + 1
                    )))
                }
            };
            let (x, y) = (
                field("x", fmt.width as i64 - 1)?,
                field("y", fmt.height as i64 - 1)?,
            );
            let tile = Tile {
                id: field("id", i64::from(u16::MAX))? as u16,
                flags: field("flags", 255)? as u8,
                elevation: field("elevation", 255)? as u8,
            };
            if let Some(slot) = tiles.get_mut(y as usize * fmt.width + x as usize) {
                *slot = tile;
            }
        }
        Ok(Some(compress(&encode_chunk(&tiles, fmt))))
    }
}

/// A well-mixed 64-bit hash of a lattice point (splitmix64 finaliser over the packed inputs).
fn lattice(seed: i64, x: i64, y: i64) -> f64 {
    let mut z = (seed as u64)
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Smoothed value noise in [0, 1) at world tile coordinates.
fn value_noise(seed: i64, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let a = lattice(seed, ix, iy);
    let b = lattice(seed, ix + 1, iy);
    let c = lattice(seed, ix, iy + 1);
    let d = lattice(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Elevation 0–255 at a world tile: the sum of octaves, normalised.
pub(super) fn elevation(a: &NoiseArgs, wx: i64, wy: i64) -> u8 {
    let (mut sum, mut amp, mut norm, mut freq) = (0.0, 1.0, 0.0, 1.0 / a.scale);
    for octave in 0..a.octaves {
        let seed = a
            .seed
            .wrapping_add(i64::from(octave).wrapping_mul(0x1F3D_5B79));
        sum += amp * value_noise(seed, wx as f64 * freq, wy as f64 * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    ((sum / norm) * 256.0).clamp(0.0, 255.0) as u8
}

fn noise_tiles(a: &NoiseArgs, (cx, cy): (i32, i32), fmt: ChunkFormat) -> Vec<Tile> {
    // World tile coordinates, so neighbouring chunks meet without a seam.
    let (ox, oy) = (
        i64::from(cx) * fmt.width as i64,
        i64::from(cy) * fmt.height as i64,
    );
    let mut out = Vec::with_capacity(fmt.tiles());
    for y in 0..fmt.height as i64 {
        for x in 0..fmt.width as i64 {
            let e = elevation(a, ox + x, oy + y);
            let id = if e < a.sea_level {
                tiles::WATER
            } else if e < a.sea_level.saturating_add(8) {
                tiles::SAND
            } else if e < 170 {
                tiles::GRASS
            } else if e < 215 {
                tiles::ROCK
            } else {
                tiles::SNOW
            };
            out.push(Tile {
                id,
                flags: u8::from(id == tiles::WATER),
                elevation: e,
            });
        }
    }
    out
}
