use serde_json::json;

use super::provider::{elevation, tiles};
use super::*;

fn inflate(data: &[u8]) -> Vec<Tile> {
    let fmt = ChunkFormat::default();
    decode_chunk(&decompress(data, fmt.raw_bytes()).unwrap(), fmt).unwrap()
}

#[test]
fn chunk_bytes_are_asobis_layout() {
    let fmt = ChunkFormat {
        width: 2,
        height: 2,
    };
    let tiles = [
        Tile {
            id: 1,
            flags: 0,
            elevation: 10,
        },
        Tile {
            id: 0x1234,
            flags: 15,
            elevation: 255,
        },
    ];
    let raw = encode_chunk(&tiles, fmt);
    // Tile id big-endian, flags, elevation; missing tiles are zero.
    assert_eq!(
        raw,
        [0, 1, 0, 10, 0x12, 0x34, 15, 255, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(decode_chunk(&raw, fmt).unwrap()[..2], tiles);
    assert_eq!(
        decode_chunk(&raw[1..], fmt),
        Err(ChunkError::Size {
            expected: 16,
            got: 15
        })
    );
    // zlib with its RFC 1950 header (0x78), as Erlang's zlib:compress.
    let z = compress(&raw);
    assert_eq!(z[0], 0x78);
    assert_eq!(decompress(&z, 16).unwrap(), raw);
    // A chunk that inflates past its format is refused, and garbage is not zlib.
    assert_eq!(decompress(&z, 15), Err(ChunkError::Compressed));
    assert_eq!(decompress(b"not zlib", 16), Err(ChunkError::Compressed));
    assert_eq!(ChunkFormat::default().raw_bytes(), 16 * 1024);
}

#[test]
fn provider_answers_are_read_as_asobi_reads_them() {
    assert_eq!(parse_provider(&json!(null)), Ok(None));
    assert_eq!(parse_provider(&json!(false)), Ok(None));
    assert_eq!(
        parse_provider(&json!({"module": "asobi_terrain_perlin", "args": {"seed": 7}})),
        Ok(Some(Provider::Noise(NoiseArgs {
            seed: 7,
            ..NoiseArgs::default()
        })))
    );
    assert_eq!(
        parse_provider(&json!({"module": "flat", "args": {"tile": 9, "elevation": 3}})),
        Ok(Some(Provider::Flat {
            tile: Tile {
                id: 9,
                flags: 0,
                elevation: 3
            }
        }))
    );
    // No args is fine; out-of-range args are clamped, not trusted.
    assert_eq!(
        parse_provider(&json!({"module": "noise", "args": {"octaves": 99, "scale": -1}})),
        Ok(Some(Provider::Noise(NoiseArgs {
            octaves: 8,
            ..NoiseArgs::default()
        })))
    );
    assert_eq!(
        parse_provider(&json!({"module": "lua", "args": {"seed": 5}})),
        Ok(Some(Provider::Lua { seed: 5 }))
    );
    assert_eq!(
        parse_provider(&json!({"module": "gen_server"})),
        Err(ProviderError::NotAllowed("gen_server".into()))
    );
    assert_eq!(
        parse_provider(&json!({"args": {}})),
        Err(ProviderError::Shape)
    );
    assert_eq!(parse_provider(&json!(3)), Err(ProviderError::Shape));
}

#[test]
fn flat_is_one_tile_everywhere() {
    let p = Provider::Flat {
        tile: Tile {
            id: 4,
            flags: 1,
            elevation: 2,
        },
    };
    let fmt = ChunkFormat::default();
    let a = p.generate((0, 0), fmt).unwrap();
    assert_eq!(a, p.generate((-300, 12), fmt).unwrap());
    let tiles = inflate(&a);
    assert_eq!(tiles.len(), 64 * 64);
    assert!(tiles.iter().all(|t| *t
        == Tile {
            id: 4,
            flags: 1,
            elevation: 2
        }));
    // A uniform chunk compresses to almost nothing.
    assert!(a.len() < 200, "{}", a.len());
}

#[test]
fn noise_is_deterministic_by_seed_and_seamless() {
    let fmt = ChunkFormat::default();
    let p = |seed| {
        Provider::Noise(NoiseArgs {
            seed,
            ..NoiseArgs::default()
        })
    };
    let a = p(42).generate((3, -2), fmt).unwrap();
    assert_eq!(a, p(42).generate((3, -2), fmt).unwrap());
    assert_ne!(a, p(43).generate((3, -2), fmt).unwrap());
    assert_ne!(a, p(42).generate((4, -2), fmt).unwrap());
    let tiles = inflate(&a);
    // Elevation is a function of the world tile, so chunks meet without a seam: tile (0, y) of
    // chunk (4, -2) is the world tile just right of tile (63, y) of chunk (3, -2).
    let right = inflate(&p(42).generate((4, -2), fmt).unwrap());
    let args = NoiseArgs::default();
    for y in 0..64 {
        let wy = -2 * 64 + y as i64;
        assert_eq!(
            tiles[y * 64 + 63].elevation,
            elevation(&args, 3 * 64 + 63, wy)
        );
        assert_eq!(right[y * 64].elevation, elevation(&args, 4 * 64, wy));
        // Neighbouring tiles differ by little (smooth terrain).
        let step = i16::from(tiles[y * 64 + 63].elevation) - i16::from(right[y * 64].elevation);
        assert!(step.abs() < 40, "seam step {step}");
    }
    // Bands follow elevation, and water is flagged.
    for t in &tiles {
        if t.id == tiles::WATER {
            assert!(t.elevation < args.sea_level && t.flags == 1);
        } else {
            assert!(t.elevation >= args.sea_level && t.flags == 0);
        }
    }
    // Over a larger area the terrain is varied: several bands appear.
    let mut ids = std::collections::BTreeSet::new();
    for c in 0..16 {
        for t in inflate(&p(42).generate((c, c), fmt).unwrap()) {
            ids.insert(t.id);
        }
    }
    assert!(ids.len() >= 3, "{ids:?}");
}

#[test]
fn script_results_encode_or_are_refused() {
    let fmt = ChunkFormat::default();
    // A string is the chunk, verbatim.
    assert_eq!(
        Provider::chunk_from_script(&json!("abc"), None, fmt),
        Ok(Some(b"abc".to_vec()))
    );
    assert_eq!(
        Provider::chunk_from_script(&json!(null), Some(&[0xff, 0]), fmt),
        Ok(Some(vec![0xff, 0]))
    );
    assert_eq!(
        Provider::chunk_from_script(&json!(null), None, fmt),
        Ok(None)
    );
    // A tile list is encoded and compressed.
    let data = Provider::chunk_from_script(
        &json!([{"x": 0, "y": 0, "id": 1, "elevation": 10}, {"x": 3, "y": 5, "id": 200, "flags": 15, "elevation": 255}]),
        None,
        fmt,
    )
    .unwrap()
    .unwrap();
    let tiles = inflate(&data);
    assert_eq!(
        tiles[0],
        Tile {
            id: 1,
            flags: 0,
            elevation: 10
        }
    );
    assert_eq!(
        tiles[5 * 64 + 3],
        Tile {
            id: 200,
            flags: 15,
            elevation: 255
        }
    );
    assert_eq!(tiles.iter().filter(|t| t.id != 0).count(), 2);
    for bad in [
        json!([{"x": 64, "y": 0, "id": 1}]),
        json!([{"x": 0, "y": -1, "id": 1}]),
        json!([{"x": 0, "y": 0, "id": 70000}]),
        json!([{"x": 0, "y": 0, "id": 1, "elevation": 256}]),
        json!(12),
    ] {
        assert!(
            matches!(
                Provider::chunk_from_script(&bad, None, fmt),
                Err(ProviderError::BadChunk(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_cache_serves_hits_and_stays_bounded() {
    let fmt = ChunkFormat {
        width: 8,
        height: 8,
    };
    let mut t = Terrain::with_format(Provider::Noise(NoiseArgs::default()), fmt, 3);
    let Chunk::Ready(a) = t.chunk((0, 0)) else {
        panic!("a built-in provider answers at once")
    };
    let Chunk::Ready(b) = t.chunk((0, 0)) else {
        panic!()
    };
    // The second answer is the cached bytes, not a new generation.
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(
        t.stats(),
        TerrainStats {
            hits: 1,
            misses: 1,
            evictions: 0
        }
    );
    t.chunk((1, 0));
    t.chunk((2, 0));
    t.chunk((0, 0)); // (0, 0) is now the most recent
    t.chunk((3, 0)); // evicts (1, 0), the least recently used
    assert_eq!(t.cached(), 3);
    assert_eq!(t.stats().evictions, 1);
    let misses = t.stats().misses;
    t.chunk((0, 0));
    assert_eq!(t.stats().misses, misses);
    t.chunk((1, 0));
    assert_eq!(t.stats().misses, misses + 1);
    t.evict((1, 0));
    assert_eq!(t.cached(), 2);
}

#[test]
fn preload_reads_asobis_coordinate_lists() {
    let mut t = Terrain::new(Provider::Flat {
        tile: Tile::default(),
    });
    let todo =
        t.preload(&json!([{"cx": 1, "cy": 2}, {"x": -3, "y": 4.7}, {"cx": "no"}, 5, {"cy": 1}]));
    assert!(todo.is_empty(), "a built-in provider needs no script");
    assert_eq!(t.cached(), 2);
    assert_eq!(t.stats().misses, 2);
    assert!(matches!(t.chunk((-3, 4)), Chunk::Ready(_)));
    assert_eq!(t.stats().hits, 1);
    // Not a list: nothing; a long list: at most MAX_PRELOAD.
    assert!(t.preload(&json!({"cx": 1})).is_empty());
    let long: Vec<_> = (0..500).map(|i| json!({"cx": i, "cy": 100})).collect();
    t.preload(&json!(long));
    assert_eq!(t.cached(), 2 + MAX_PRELOAD);
}

#[test]
fn the_lua_provider_asks_the_script_once_per_chunk() {
    let mut t = Terrain::new(Provider::Lua { seed: 9 });
    assert_eq!(t.chunk((0, 0)), Chunk::NeedsScript { seed: 9 });
    assert_eq!(
        t.preload(&json!([{"cx": 0, "cy": 0}, {"cx": 1, "cy": 0}])),
        vec![(0, 0), (1, 0)]
    );
    let got = t
        .insert_script_result((0, 0), &json!([{"x": 1, "y": 1, "id": 7}]), None)
        .unwrap();
    let Chunk::Ready(bytes) = got else { panic!() };
    assert_eq!(t.chunk((0, 0)), Chunk::Ready(bytes));
    // `nil` is remembered as "no chunk here" rather than asked again.
    assert_eq!(
        t.insert_script_result((1, 0), &json!(null), None),
        Ok(Chunk::Missing)
    );
    assert_eq!(t.chunk((1, 0)), Chunk::Missing);
    assert!(t.insert_script_result((2, 0), &json!(true), None).is_err());
}

#[test]
fn ring_is_nearest_first_and_bounded() {
    let r = ring((10, -10), 1);
    assert_eq!(r.len(), 9);
    assert_eq!(r[0], (10, -10));
    assert!(r.contains(&(11, -9)) && r.contains(&(9, -11)));
    assert_eq!(ring((0, 0), 100).len(), 17 * 17);
    // At the edge of i32 the ring is cut, not wrapped.
    assert_eq!(ring((i32::MAX, 0), 1).len(), 6);
}
