//! Any bytes through both binary-wire decoders: no panic, and whatever decodes is well-formed
//! JSON that survives another encode/decode round unchanged.
#![no_main]

use asobi_schema::fb;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let inbound = fb::decode_inbound(data);
    let outbound = fb::decode_frame(data);
    assert_eq!(inbound.is_ok(), outbound.is_ok());
    let Ok(frame) = inbound else {
        return;
    };
    serde_json::from_str::<IgnoredAny>(&frame.payload_json).expect("payload is JSON");
    serde_json::from_str::<IgnoredAny>(&frame.to_json()).expect("envelope is JSON");
    let again = fb::encode_inbound(&frame.kind, frame.cid.as_deref(), &frame.payload_json);
    let back = fb::decode_inbound(&again).expect("a re-encoded frame decodes");
    assert_eq!(back.kind, frame.kind);
    assert_eq!(back.cid, frame.cid);
    // JSON grammar allows numbers and escapes that a JSON tree rejects (1e400, lone surrogates);
    // those are carried verbatim, so compare as trees only when both sides are trees.
    if let Ok(v) = serde_json::from_str::<Value>(&frame.payload_json) {
        let w: Value = serde_json::from_str(&back.payload_json).expect("payload still a tree");
        assert_eq!(v, w);
    }
});
