//! Hostile and broken binary frames: every one is an error or a sane frame, never a panic, and
//! nothing a peer writes into a JSON field can change the shape of the payload around it.

use std::path::Path;

use asobi_schema::fb::{self, tables, FbError};
use flatbuffers::FlatBufferBuilder;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Decodes with both entry points; a success must be well-formed JSON all the way down.
fn decode_both(buf: &[u8]) -> Result<(), ()> {
    let inbound = fb::decode_inbound(buf);
    let outbound = fb::decode_frame(buf);
    assert_eq!(inbound.is_ok(), outbound.is_ok());
    match inbound {
        Ok(f) => {
            // JSON grammar, not a JSON tree: `1e400` or a lone surrogate escape are valid text
            // that the handler's own parse rejects later, exactly as on the JSON wire.
            serde_json::from_str::<IgnoredAny>(&f.payload_json).expect("payload is JSON");
            if let Some(cid) = &f.cid {
                serde_json::from_str::<IgnoredAny>(cid).expect("cid is JSON");
            }
            serde_json::from_str::<IgnoredAny>(&f.to_json()).expect("envelope is JSON");
            Ok(())
        }
        Err(e) => {
            // Every failure has a code a client can branch on.
            assert!(!e.to_api_error().code.is_empty());
            Err(())
        }
    }
}

fn samples() -> Vec<bytes::Bytes> {
    vec![
        fb::encode_inbound("session.connect", Some("\"c-1\""), r#"{"token":"abc"}"#),
        fb::encode_inbound("match.input", Some("3"), r#"{"action":"move","x":1.5}"#),
        fb::encode_inbound("match.join", None, r#"{"match_id":"m","ctx":{"code":"A"}}"#),
        fb::encode_frame(
            "match.list",
            Some("\"21\""),
            br#"{"matches":[{"match_id":"m","mode":"demo","status":"waiting","player_count":1,"max_players":4,"joinable":true}]}"#,
        ),
        fb::encode_frame(
            "error",
            None,
            br#"{"type":"match.input","reason":"r","error":{"code":"c","message":"m","details":{}}}"#,
        ),
        fb::encode_heartbeat(Some("\"h\""), 42),
    ]
}

#[test]
fn short_empty_and_foreign_buffers_are_not_frames() {
    for buf in [
        &b""[..],
        b"\x00",
        b"ASB1",
        b"\x08\x00\x00\x00ASB",
        br#"{"type":"session.heartbeat","payload":{}}"#,
        &[0xff; 64],
    ] {
        assert!(matches!(fb::decode_inbound(buf), Err(FbError::NotAFrame)));
        assert!(matches!(fb::decode_frame(buf), Err(FbError::NotAFrame)));
    }
}

#[test]
fn every_truncation_of_a_valid_frame_is_rejected_or_loses_only_padding() {
    for sample in samples() {
        let whole = fb::decode_inbound(&sample).expect("the sample itself decodes");
        let mut rejected = 0;
        for len in 0..sample.len() {
            // Cutting trailing alignment padding leaves every referenced byte in place, so such a
            // prefix may decode, but only to the very same frame.
            match fb::decode_inbound(&sample[..len]) {
                Ok(f) => assert_eq!(f, whole, "prefix {len} decoded differently"),
                Err(_) => rejected += 1,
            }
        }
        assert!(
            rejected + 8 > sample.len(),
            "only {rejected} prefixes rejected"
        );
    }
}

#[test]
fn huge_and_wild_offsets_are_rejected() {
    for sample in samples() {
        for at in [0usize, 8, 12, 16, 20] {
            for value in [u32::MAX, 0x8000_0000, 0x7fff_fff0, sample.len() as u32, 1] {
                let mut buf = sample.to_vec();
                if at + 4 > buf.len() {
                    continue;
                }
                buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
                let _ = decode_both(&buf);
            }
        }
        let mut root_out_of_range = sample.to_vec();
        root_out_of_range[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(decode_both(&root_out_of_range).is_err());
    }
}

#[test]
fn a_table_of_another_type_as_root_is_not_a_frame() {
    // A SessionConnect finished as a root of its own, without the frame's identifier.
    let mut fbb = FlatBufferBuilder::new();
    let token = fbb.create_string("abc");
    let t = tables::SessionConnect::create(
        &mut fbb,
        &tables::SessionConnectArgs { token: Some(token) },
    );
    fbb.finish(t, None);
    assert!(matches!(
        fb::decode_inbound(fbb.finished_data()),
        Err(FbError::NotAFrame)
    ));
    // The same with the frame's identifier forged: it reads as a frame whose type is the token
    // (the layouts line up) or fails verification, but nothing else.
    let mut fbb = FlatBufferBuilder::new();
    let ticket_id = Some(fbb.create_string("t"));
    let status = Some(fbb.create_string("pending"));
    let q = tables::MatchmakerQueued::create(
        &mut fbb,
        &tables::MatchmakerQueuedArgs {
            ticket_id,
            status,
            players_needed: Some(3),
            already_queued: true,
        },
    );
    fbb.finish(q, Some(fb::FILE_IDENTIFIER));
    let _ = decode_both(fbb.finished_data());
}

#[test]
fn embedded_json_cannot_inject_keys_or_nest_without_bound() {
    let frame_with_ctx = |ctx: &[u8]| {
        let mut fbb = FlatBufferBuilder::new();
        let match_id = Some(fbb.create_string("m"));
        let ctx = Some(fbb.create_vector(ctx));
        let p = tables::MatchJoin::create(&mut fbb, &tables::MatchJoinArgs { match_id, ctx });
        let type_ = Some(fbb.create_string("match.join"));
        let f = tables::Frame::create(
            &mut fbb,
            &tables::FrameArgs {
                type_,
                payload_type: tables::Payload::MatchJoin,
                payload: Some(p.as_union_value()),
                ..Default::default()
            },
        );
        tables::finish_frame_buffer(&mut fbb, f);
        fbb.finished_data().to_vec()
    };
    for bad in [
        &br#"{},"match_id":"other""#[..],
        b"",
        b"{",
        b"\xff\xfe",
        b"1 2",
        b"NaN",
    ] {
        match fb::decode_inbound(&frame_with_ctx(bad)) {
            Err(FbError::InvalidJson { field: "ctx", .. }) => {}
            other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    let ok = fb::decode_inbound(&frame_with_ctx(b" {\"code\":\"A\"} ")).unwrap();
    let v: Value = serde_json::from_str(&ok.payload_json).unwrap();
    assert_eq!(v["ctx"]["code"], "A");

    // Deep nesting is checked without recursion (no stack to exhaust) and passed on verbatim,
    // as the JSON wire does; the handler's tree parse then stops at serde_json's depth limit.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let buf = fb::encode_inbound("match.input", None, &deep);
    let f = fb::decode_inbound(&buf).unwrap();
    assert_eq!(f.payload_json, deep);
    assert!(serde_json::from_str::<Value>(&f.payload_json).is_err());
    let unbalanced = format!("{}{}", "[".repeat(100_000), "]".repeat(99_999));
    let buf = fb::encode_inbound("match.input", None, &unbalanced);
    assert!(matches!(
        fb::decode_inbound(&buf),
        Err(FbError::InvalidJson { field: "value", .. })
    ));
    let deep_ctx = frame_with_ctx(
        format!("{{\"a\":{}1{}}}", "[".repeat(50_000), "]".repeat(50_000)).as_bytes(),
    );
    assert!(fb::decode_inbound(&deep_ctx).is_ok());
}

#[test]
fn frames_missing_parts_or_with_unknown_variants_are_errors_with_their_cid() {
    let build = |type_: Option<&str>, cid: Option<&str>, cid_num: Option<i64>, tag: u8| {
        let mut fbb = FlatBufferBuilder::new();
        let value = Some(fbb.create_vector(b"{}"));
        let json = tables::Json::create(&mut fbb, &tables::JsonArgs { value });
        let type_ = type_.map(|t| fbb.create_string(t));
        let cid = cid.map(|c| fbb.create_string(c));
        let f = tables::Frame::create(
            &mut fbb,
            &tables::FrameArgs {
                type_,
                cid,
                cid_num,
                payload_type: tables::Payload(tag),
                payload: Some(json.as_union_value()),
            },
        );
        tables::finish_frame_buffer(&mut fbb, f);
        fbb.finished_data().to_vec()
    };
    match fb::decode_inbound(&build(None, Some("c-9"), None, 1)) {
        Err(e @ FbError::MissingType { .. }) => assert_eq!(e.cid(), Some("\"c-9\"")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fb::decode_inbound(&build(Some("x"), Some("a"), Some(1), 1)),
        Err(FbError::ConflictingCid)
    ));
    match fb::decode_inbound(&build(Some("x"), None, Some(4), 200)) {
        Err(e @ FbError::UnknownPayload { tag: 200, .. }) => assert_eq!(e.cid(), Some("4")),
        other => panic!("{other:?}"),
    }
    // A tag naming one table while the offset points at another is caught by the verifier or
    // read as that table; either way, no panic and well-formed output.
    for tag in 0..=25u8 {
        let _ = decode_both(&build(Some("x"), None, None, tag));
    }
}

#[test]
fn one_string_referenced_many_times_hits_the_apparent_size_bound() {
    // 50 000 offsets to one 4 KiB string: a 200 KB frame that expands to 200 MB if followed.
    let mut fbb = FlatBufferBuilder::new();
    let big = fbb.create_string(&"x".repeat(4096));
    let players = fbb.create_vector(&vec![big; 50_000]);
    let match_id = Some(fbb.create_string("m"));
    let mode = Some(fbb.create_string("d"));
    let p = tables::MatchMatched::create(
        &mut fbb,
        &tables::MatchMatchedArgs {
            match_id,
            mode,
            players: Some(players),
        },
    );
    let type_ = Some(fbb.create_string("match.matched"));
    let f = tables::Frame::create(
        &mut fbb,
        &tables::FrameArgs {
            type_,
            payload_type: tables::Payload::MatchMatched,
            payload: Some(p.as_union_value()),
            ..Default::default()
        },
    );
    tables::finish_frame_buffer(&mut fbb, f);
    match fb::decode_frame(fbb.finished_data()) {
        Err(FbError::Malformed(flatbuffers::InvalidFlatbuffer::ApparentSizeTooLarge)) => {}
        other => panic!("{:?}", other.map(|f| f.payload_json.len())),
    }
}

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn thousands_of_random_and_mutated_buffers_never_panic() {
    let samples = samples();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..6000 {
        let mut buf = samples[round % samples.len()].to_vec();
        match rng.below(4) {
            // Flip a few bits.
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                }
            }
            // Overwrite a few bytes with interesting values.
            1 => {
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(buf.len());
                    buf[i] = [0, 1, 0x7f, 0x80, 0xff, 4, 8][rng.below(7)];
                }
            }
            // Random bytes behind a valid identifier.
            2 => {
                let len = 8 + rng.below(200);
                buf = (0..len).map(|_| rng.next() as u8).collect();
                buf[4..8].copy_from_slice(b"ASB1");
            }
            // Cut or extend.
            _ => {
                let len = rng.below(buf.len() + 16);
                buf.resize(len, rng.next() as u8);
            }
        }
        if decode_both(&buf).is_ok() {
            accepted += 1;
        }
    }
    // Some mutations only touch string bytes or padding and still decode: the loop exercised
    // both outcomes.
    assert!(accepted > 0 && accepted < 6000, "accepted {accepted}");
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    // The corpus `cargo fuzz run fb_envelope` grew (fuzz/ at the repository root); replaying it
    // keeps every input the fuzzer found interesting in the stable test suite.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fb_envelope");
    let entries = std::fs::read_dir(&dir).expect("fuzz corpus present");
    let mut n = 0;
    for entry in entries {
        let buf = std::fs::read(entry.expect("entry").path()).expect("read");
        let _ = decode_both(&buf);
        n += 1;
    }
    assert!(n > 10, "corpus has only {n} files");
}
