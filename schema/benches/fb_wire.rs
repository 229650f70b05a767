//! Measures the binary wire against the JSON wire, and the candidate encodings of game payloads.
//!
//! Run with `cargo bench -p asobi-schema --bench fb_wire`. Plain `Instant` timing (best of several
//! runs of many iterations) keeps this free of a benchmark framework; the numbers are for
//! choosing between designs, not for publishing.
//!
//! Part 1 answers "how should game-defined values (match.state, match.input, ...) be carried":
//! as the JSON text the server already holds, as FlexBuffers, or as MessagePack. Part 2 measures
//! whole frames through the codec the crate ships, next to the JSON frames the server sends today.

use std::hint::black_box;
use std::time::Instant;

use asobi_schema::fb;
use serde_json::{json, Value};

/// A match.state as an action game sends it every tick: a tick counter, a little world state and
/// one entry per player keyed by a UUID v7 player id.
fn match_state(players: usize) -> Value {
    let mut map = serde_json::Map::new();
    for i in 0..players {
        let id = format!(
            "0192f0a4-7c3e-7d10-8a2b-{:012x}",
            0x5ca1ab1e0000u64 + i as u64
        );
        map.insert(
            id,
            json!({
                "x": 120.5 + i as f64 * 13.25,
                "y": 80.25 - i as f64 * 3.5,
                "vx": 1.5,
                "vy": -0.75,
                "hp": 100 - (i as i64 * 7) % 100,
                "score": i * 3,
                "seq": 4810 + i,
                "alive": i % 5 != 4,
            }),
        );
    }
    json!({
        "tick": 18_231,
        "rules": "arena-2",
        "coin": {"x": 3, "y": 17},
        "players": Value::Object(map),
    })
}

fn match_input() -> Value {
    json!({"action": "move", "x": 10, "y": -5, "seq": 4811})
}

/// Best-of-runs mean time per call, in nanoseconds.
fn time<R>(mut f: impl FnMut() -> R) -> f64 {
    // Size the run to roughly 20 ms so that short and long operations are timed equally well.
    let start = Instant::now();
    let mut probe = 0u32;
    while start.elapsed().as_millis() < 5 {
        black_box(f());
        probe += 1;
    }
    let iters = (probe.max(1) * 4).max(50);
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    best
}

/// Sums every number and counts every string and key: what a client does when it reads a state.
fn walk_json(v: &Value, acc: &mut f64) {
    match v {
        Value::Number(n) => *acc += n.as_f64().unwrap_or(0.0),
        Value::String(s) => *acc += s.len() as f64,
        Value::Bool(b) => *acc += f64::from(u8::from(*b)),
        Value::Array(a) => a.iter().for_each(|x| walk_json(x, acc)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            *acc += k.len() as f64;
            walk_json(x, acc)
        }),
        Value::Null => {}
    }
}

fn walk_flex(r: &flexbuffers::Reader<&[u8]>, acc: &mut f64) {
    use flexbuffers::FlexBufferType as T;
    match r.flexbuffer_type() {
        T::Int | T::IndirectInt => *acc += r.as_i64() as f64,
        T::UInt | T::IndirectUInt => *acc += r.as_u64() as f64,
        T::Float | T::IndirectFloat => *acc += r.as_f64(),
        T::Bool => *acc += f64::from(u8::from(r.as_bool())),
        T::String => *acc += r.as_str().len() as f64,
        T::Map => {
            let m = r.as_map();
            for (k, x) in m.iter_keys().zip(m.iter_values()) {
                *acc += k.len() as f64;
                walk_flex(&x, acc);
            }
        }
        t if t.is_vector() => r.as_vector().iter().for_each(|x| walk_flex(&x, acc)),
        _ => {}
    }
}

fn part1(name: &str, value: &Value) {
    let json_text = serde_json::to_vec(value).expect("json");
    let flex = flexbuffers::to_vec(value).expect("flex");
    let msgpack = rmp_serde::to_vec(value).expect("msgpack");

    // Server side: it holds JSON text (the script's encoded value) and must produce the wire form.
    let json_enc = time(|| bytes::Bytes::copy_from_slice(black_box(&json_text)));
    let flex_enc = time(|| {
        let mut de = serde_json::Deserializer::from_slice(black_box(&json_text));
        let mut ser = flexbuffers::FlexbufferSerializer::new();
        serde_transcode::transcode(&mut de, &mut ser).expect("transcode");
        ser.take_buffer()
    });
    let msgpack_enc = time(|| {
        let mut de = serde_json::Deserializer::from_slice(black_box(&json_text));
        let mut out = Vec::with_capacity(json_text.len());
        let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
        serde_transcode::transcode(&mut de, &mut ser).expect("transcode");
        out
    });
    // Client side: read every field of the value once.
    let json_read = time(|| {
        let v: Value = serde_json::from_slice(black_box(&json_text)).expect("json");
        let mut acc = 0.0;
        walk_json(&v, &mut acc);
        acc
    });
    let flex_read = time(|| {
        let r = flexbuffers::Reader::get_root(black_box(&flex[..])).expect("flex");
        let mut acc = 0.0;
        walk_flex(&r, &mut acc);
        acc
    });
    let msgpack_read = time(|| {
        let v: Value = rmp_serde::from_slice(black_box(&msgpack)).expect("msgpack");
        let mut acc = 0.0;
        walk_json(&v, &mut acc);
        acc
    });
    // Server side, inbound: the engine wants JSON text back.
    let json_back = time(|| {
        serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&json_text)).expect("json")
    });
    let flex_back = time(|| {
        let r = flexbuffers::Reader::get_root(black_box(&flex[..])).expect("flex");
        let mut out = Vec::with_capacity(flex.len());
        let mut ser = serde_json::Serializer::new(&mut out);
        serde_transcode::transcode(r, &mut ser).expect("transcode");
        out
    });
    let msgpack_back = time(|| {
        let mut de = rmp_serde::Deserializer::from_read_ref(black_box(&msgpack[..]));
        let mut out = Vec::with_capacity(msgpack.len());
        let mut ser = serde_json::Serializer::new(&mut out);
        serde_transcode::transcode(&mut de, &mut ser).expect("transcode");
        out
    });
    println!(
        "{name:<22} {:<12} {:>6} B {:>9.0} ns {:>9.0} ns {:>9.0} ns",
        "json",
        json_text.len(),
        json_enc,
        json_read,
        json_back
    );
    println!(
        "{name:<22} {:<12} {:>6} B {:>9.0} ns {:>9.0} ns {:>9.0} ns",
        "flexbuffers",
        flex.len(),
        flex_enc,
        flex_read,
        flex_back
    );
    println!(
        "{name:<22} {:<12} {:>6} B {:>9.0} ns {:>9.0} ns {:>9.0} ns",
        "msgpack",
        msgpack.len(),
        msgpack_enc,
        msgpack_read,
        msgpack_back
    );
}

fn part2(name: &str, kind: &str, cid: Option<&str>, payload: &Value) {
    let payload_text = serde_json::to_string(payload).expect("json");
    let raw_cid = cid.map(|c| serde_json::value::RawValue::from_string(c.to_owned()).expect("cid"));
    let json_frame =
        asobi_schema::encode_frame_raw(kind, raw_cid.as_deref(), payload_text.as_bytes());
    let fb_frame = fb::encode_frame(kind, cid, payload_text.as_bytes());
    let fb_inbound = fb::encode_inbound(kind, cid, &payload_text);

    let json_enc = time(|| {
        asobi_schema::encode_frame_raw(
            black_box(kind),
            raw_cid.as_deref(),
            black_box(payload_text.as_bytes()),
        )
    });
    let fb_enc =
        time(|| fb::encode_frame(black_box(kind), cid, black_box(payload_text.as_bytes())));
    // Inbound as the server reads it: envelope plus a payload it can hand to serde.
    let json_dec = time(|| {
        let text = std::str::from_utf8(black_box(&json_frame)).expect("utf8");
        let f = asobi_schema::Inbound::parse(text).expect("parse");
        f.payload_str().len()
    });
    let fb_dec = time(|| fb::decode_inbound(black_box(&fb_inbound)).expect("decode"));
    let fb_client = time(|| fb::decode_frame(black_box(&fb_frame)).expect("decode"));
    println!(
        "{name:<22} json {:>5} B  fb {:>5} B | encode json {:>7.0} ns fb {:>7.0} ns | server decode json {:>7.0} ns fb {:>7.0} ns | client decode fb {:>7.0} ns",
        json_frame.len(),
        fb_frame.len(),
        json_enc,
        fb_enc,
        json_dec,
        fb_dec,
        fb_client
    );
}

/// The heartbeat reply, through the dedicated encoders both wires have for it.
fn heartbeat() {
    let cid = serde_json::value::RawValue::from_string("\"c-41\"".to_owned()).expect("cid");
    let ts = 1_730_000_000_000i64;
    let json_frame = asobi_schema::envelope::encode_heartbeat(Some(&cid), ts);
    let fb_frame = fb::encode_heartbeat(Some("\"c-41\""), ts);
    let json_enc = time(|| asobi_schema::envelope::encode_heartbeat(Some(&cid), black_box(ts)));
    let fb_enc = time(|| fb::encode_heartbeat(Some("\"c-41\""), black_box(ts)));
    let json_dec = time(|| {
        let text = std::str::from_utf8(black_box(&json_frame)).expect("utf8");
        serde_json::from_str::<Value>(text).expect("parse")
    });
    let fb_dec = time(|| fb::decode_frame(black_box(&fb_frame)).expect("decode"));
    println!(
        "{:<22} json {:>5} B  fb {:>5} B | encode json {:>7.0} ns fb {:>7.0} ns | client decode json {:>7.0} ns fb {:>7.0} ns",
        "heartbeat reply",
        json_frame.len(),
        fb_frame.len(),
        json_enc,
        fb_enc,
        json_dec,
        fb_dec
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |part: &str| filter.is_empty() || filter.iter().any(|f| part.contains(f.as_str()));
    if run("values") {
        println!("# Part 1: game values (bytes, server encode from JSON text, client read-all, server back to JSON text)");
        part1("match.input", &match_input());
        part1("match.state 2p", &match_state(2));
        part1("match.state 16p", &match_state(16));
    }
    if run("frames") {
        println!("# Part 2: whole frames, JSON wire vs FlatBuffers wire");
        heartbeat();
        part2(
            "session.heartbeat",
            "session.heartbeat",
            Some("\"c-41\""),
            &json!({"ts": 1_730_000_000_000i64}),
        );
        part2("match.input", "match.input", None, &match_input());
        part2("match.state 2p", "match.state", None, &match_state(2));
        part2("match.state 16p", "match.state", None, &match_state(16));
    }
}
