//! `world.terrain`: a zone's terrain chunk, base64 in JSON, sent on zone subscription. Text on
//! every wire (asobi sends it as text to binary-wire clients too). The chunk bytes come from
//! `asobi_rules::terrain::Terrain::chunk`.

use base64::Engine as _;

use super::super::Frame;

#[derive(serde::Serialize)]
struct Payload<'a> {
    coords: [i32; 2],
    data: &'a str,
}

/// The `world.terrain` frame for the chunk at `coords`, shareable by every subscriber.
pub(crate) fn terrain_frame(coords: (i32, i32), chunk: &[u8]) -> Option<Frame> {
    let data = base64::engine::general_purpose::STANDARD.encode(chunk);
    Frame::json(asobi_schema::envelope::encode_frame(
        "world.terrain",
        None,
        &Payload {
            coords: [coords.0, coords.1],
            data: &data,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use asobi_rules::terrain::{decode_chunk, decompress, Chunk, ChunkFormat, Provider, Terrain};

    #[test]
    fn a_chunk_travels_as_base64_and_decodes_back_to_its_tiles() {
        let mut t = Terrain::new(Provider::Noise(Default::default()));
        let Chunk::Ready(bytes) = t.chunk((2, -1)) else {
            panic!("built-in providers answer at once")
        };
        let f = terrain_frame((2, -1), &bytes).unwrap();
        let v: serde_json::Value = serde_json::from_str(f.json_text().as_str()).unwrap();
        assert_eq!(v["type"], "world.terrain");
        assert_eq!(v["payload"]["coords"], serde_json::json!([2, -1]));
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["payload"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(&data[..], &bytes[..]);
        let fmt = ChunkFormat::default();
        let tiles = decode_chunk(&decompress(&data, fmt.raw_bytes()).unwrap(), fmt).unwrap();
        assert_eq!(tiles.len(), 64 * 64);
        // An empty chunk is asobi's `"data": ""`.
        let empty = terrain_frame((0, 0), &[]).unwrap();
        assert!(empty.json_text().as_str().contains(r#""data":"""#));
    }
}
