//! The binary wire carries every JSON frame unchanged: protocol fixtures, client requests,
//! unknown script events, odd cids. Typed tables are used where the JSON fits them.

use std::path::Path;

use asobi_schema::error::code;
use asobi_schema::fb::{self, tables, FbError};
use asobi_schema::ApiError;
use serde_json::{json, Value};

/// Splits a JSON frame into the pieces the codec takes: type, cid JSON text, payload JSON text.
fn pieces(frame: &str) -> (String, Option<String>, String) {
    let v: Value = serde_json::from_str(frame).expect("fixture is JSON");
    let kind = v["type"].as_str().expect("type").to_owned();
    let cid = v.get("cid").map(|c| c.to_string());
    let payload = v.get("payload").map_or("{}".to_owned(), |p| p.to_string());
    (kind, cid, payload)
}

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protocol");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("read fixture"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 40, "fixtures missing: {}", out.len());
    out
}

fn payload_type(buf: &[u8]) -> tables::Payload {
    tables::root_as_frame(buf).expect("verifies").payload_type()
}

/// The frame the client reads, as a JSON value.
fn read_back(buf: &[u8]) -> Value {
    let f = fb::decode_frame(buf).expect("decodes");
    serde_json::from_str(&f.to_json()).expect("JSON again")
}

#[test]
fn every_protocol_fixture_round_trips_as_a_server_frame() {
    for (name, text) in fixtures() {
        let original: Value = serde_json::from_str(&text).unwrap();
        let (kind, cid, payload) = pieces(&text);
        let buf = fb::encode_frame(&kind, cid.as_deref(), payload.as_bytes());
        assert_eq!(read_back(&buf), original, "{name}");
        let decoded = fb::decode_frame(&buf).unwrap();
        assert_eq!(decoded.kind, kind, "{name}");
        assert_eq!(decoded.cid, cid, "{name}: cid echoes as the same JSON text");
        // The transcoder used by call sites that only hold the JSON frame agrees.
        let via_json = fb::transcode_json_frame(text.trim().as_bytes()).unwrap();
        assert_eq!(read_back(&via_json), original, "{name}");
    }
}

#[test]
fn every_protocol_fixture_round_trips_as_a_client_frame() {
    for (name, text) in fixtures() {
        let original: Value = serde_json::from_str(&text).unwrap();
        let (kind, cid, payload) = pieces(&text);
        let buf = fb::encode_inbound(&kind, cid.as_deref(), &payload);
        let f = fb::decode_inbound(&buf).unwrap();
        let back: Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(back, original, "{name}");
    }
}

#[test]
fn server_messages_use_their_typed_tables() {
    use tables::Payload as P;
    let expected = [
        ("session.connected.json", P::SessionConnected),
        ("session.heartbeat.json", P::Heartbeat),
        ("matchmaker.queued.json", P::MatchmakerQueued),
        ("matchmaker.removed.json", P::Success),
        ("match.left.json", P::Success),
        ("match.matched.json", P::MatchMatched),
        ("match.list.json", P::MatchList),
        ("match.joined.json", P::MatchJoined),
        ("match.finished.json", P::MatchFinished),
        ("module.message.json", P::ModuleMessage),
        ("game.message.json", P::ModuleMessage),
        ("match.matchmaker_expired.json", P::MatchmakerExpired),
        ("match.matchmaker_failed.json", P::MatchmakerFailed),
        ("error.json", P::ErrorFrame),
        ("match.state.json", P::Json),
        ("match.vote_start.json", P::Json),
        ("world.tick.json", P::Json),
    ];
    let all = fixtures();
    for (name, tag) in expected {
        let text = &all.iter().find(|(n, _)| n == name).expect(name).1;
        let (kind, cid, payload) = pieces(text);
        let buf = fb::encode_frame(&kind, cid.as_deref(), payload.as_bytes());
        assert_eq!(payload_type(&buf), tag, "{name}");
    }
}

#[test]
fn typed_tables_hold_the_fields_an_sdk_reads() {
    let buf = fb::encode_frame(
        "matchmaker.queued",
        Some("\"5\""),
        br#"{"ticket_id":"t-1","status":"pending","players_needed":2,"already_queued":false}"#,
    );
    let frame = tables::root_as_frame(&buf).unwrap();
    assert_eq!(frame.type_(), Some("matchmaker.queued"));
    assert_eq!(frame.cid(), Some("5"));
    let q = frame.payload_as_matchmaker_queued().unwrap();
    assert_eq!(
        (
            q.ticket_id(),
            q.status(),
            q.players_needed(),
            q.already_queued()
        ),
        ("t-1", "pending", Some(2), false)
    );

    let buf = fb::encode_frame(
        "match.joined",
        None,
        br#"{"match_id":"m","mode":"duel","status":"running","player_count":2,"max_players":2,"players":["a","b"],"listed":true,"joinable":false}"#,
    );
    let j = tables::root_as_frame(&buf)
        .unwrap()
        .payload_as_match_joined()
        .unwrap();
    let players: Vec<&str> = j.players().iter().collect();
    assert_eq!((j.mode(), j.max_players(), j.listed()), ("duel", 2, true));
    assert_eq!(players, ["a", "b"]);

    let buf = fb::encode_heartbeat(Some("9"), 1_730_000_000_123);
    let frame = tables::root_as_frame(&buf).unwrap();
    assert_eq!(frame.cid_num(), Some(9));
    assert_eq!(
        frame.payload_as_heartbeat().unwrap().ts(),
        Some(1_730_000_000_123)
    );
    assert_eq!(
        read_back(&buf),
        json!({"type":"session.heartbeat","cid":9,"payload":{"ts":1_730_000_000_123i64}})
    );
}

#[test]
fn players_needed_null_stays_typed_and_comes_back_null() {
    let payload =
        r#"{"ticket_id":"t","status":"pending","players_needed":null,"already_queued":true}"#;
    let buf = fb::encode_frame("matchmaker.queued", None, payload.as_bytes());
    assert_eq!(payload_type(&buf), tables::Payload::MatchmakerQueued);
    let f = fb::decode_frame(&buf).unwrap();
    let back: Value = serde_json::from_str(&f.payload_json).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(payload).unwrap());
}

#[test]
fn client_requests_are_typed_and_decode_to_the_same_payload() {
    use tables::Payload as P;
    let cases = [
        (
            "session.connect",
            r#"{"token":"tok\"en\n"}"#,
            P::SessionConnect,
        ),
        ("session.heartbeat", "{}", P::Heartbeat),
        (
            "matchmaker.add",
            r#"{"mode":"arena","properties":{"skill":1200,"region":"eu"}}"#,
            P::MatchmakerAdd,
        ),
        ("matchmaker.add", r#"{"mode":"arena"}"#, P::MatchmakerAdd),
        (
            "matchmaker.add",
            r#"{"mode":"arena","properties":null}"#,
            P::MatchmakerAdd,
        ),
        (
            "matchmaker.remove",
            r#"{"ticket_id":"t-1"}"#,
            P::MatchmakerRemove,
        ),
        ("matchmaker.remove", "{}", P::MatchmakerRemove),
        (
            "match.list",
            r#"{"mode":"arena","has_capacity":true}"#,
            P::MatchListQuery,
        ),
        ("match.list", "{}", P::MatchListQuery),
        (
            "match.join",
            r#"{"match_id":"m-1","ctx":{"code":"AB12","n":3,"ok":true}}"#,
            P::MatchJoin,
        ),
        ("match.join", r#"{"match_id":"m-1"}"#, P::MatchJoin),
        (
            "match.find_or_create",
            r#"{"mode":"arena","ctx":{"code":"X"}}"#,
            P::MatchFindOrCreate,
        ),
        ("match.input", r#"{"action":"move","x":10,"y":-5}"#, P::Json),
        ("match.input", r#"{"data":"{\"x\":1}"}"#, P::Json),
        ("match.leave", "{}", P::NONE),
        ("chat.send", r#"{"channel_id":"c","content":"hi"}"#, P::Json),
    ];
    for (kind, payload, tag) in cases {
        let buf = fb::encode_inbound(kind, Some("\"c-1\""), payload);
        assert_eq!(payload_type(&buf), tag, "{kind} {payload}");
        let f = fb::decode_inbound(&buf).unwrap();
        assert_eq!(f.kind, kind);
        assert_eq!(f.cid.as_deref(), Some("\"c-1\""));
        let back: Value = serde_json::from_str(&f.payload_json).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<Value>(payload).unwrap(),
            "{kind}"
        );
        // The JSON path reads the converted frame exactly as it reads a text frame.
        let text = f.to_json();
        let inbound = asobi_schema::Inbound::parse(&text).unwrap();
        assert_eq!(inbound.kind(), kind);
        assert_eq!(inbound.cid.unwrap().get(), "\"c-1\"");
    }
    let buf = fb::encode_inbound("session.connect", None, r#"{"token":"abc"}"#);
    let frame = tables::root_as_frame(&buf).unwrap();
    assert_eq!(frame.payload_as_session_connect().unwrap().token(), "abc");
}

#[test]
fn json_that_does_not_fit_its_table_travels_verbatim() {
    let misfits = [
        // An extra key, a float where an integer goes, a missing key, a duplicate key.
        r#"{"ticket_id":"t","status":"pending","players_needed":2,"already_queued":false,"x":1}"#,
        r#"{"ticket_id":"t","status":"pending","players_needed":2.0,"already_queued":false}"#,
        r#"{"ticket_id":"t","status":"pending","already_queued":false}"#,
        r#"{"ticket_id":"t","ticket_id":"u","status":"pending","players_needed":2,"already_queued":false}"#,
        r#"{"ticket_id":"t","status":"pending","players_needed":-0,"already_queued":false}"#,
        r#"{"ticket_id":"t","status":"pending","players_needed":4294967296,"already_queued":false}"#,
        r#"{"ticket_id":7,"status":"pending","players_needed":2,"already_queued":false}"#,
        r#"["not","an","object"]"#,
        "null",
    ];
    for payload in misfits {
        let buf = fb::encode_frame("matchmaker.queued", None, payload.as_bytes());
        assert_eq!(payload_type(&buf), tables::Payload::Json, "{payload}");
        let f = fb::decode_frame(&buf).unwrap();
        assert_eq!(f.payload_json, payload, "carried byte for byte");
    }
    // An error whose body has an extra key is not an ErrorFrame either.
    let odd_error = r#"{"reason":"x","error":{"code":"c","message":"m","details":{},"hint":1}}"#;
    let buf = fb::encode_frame("error", None, odd_error.as_bytes());
    assert_eq!(payload_type(&buf), tables::Payload::Json);
}

#[test]
fn script_events_and_unknown_types_round_trip() {
    let payload = r#"{"player_id":"p-1","score":3,"nested":{"a":[1,2.5,"x",null,true]}}"#;
    for kind in ["match.coin", "world.round_start", "some.future.message", ""] {
        let buf = fb::encode_frame(kind, None, payload.as_bytes());
        let f = fb::decode_frame(&buf).unwrap();
        assert_eq!((f.kind.as_str(), f.payload_json.as_str()), (kind, payload));
    }
    // Non-ASCII and escapes in the type survive too.
    let buf = fb::encode_frame("match.\"ü\"\n", None, b"{}");
    let f = fb::decode_frame(&buf).unwrap();
    assert_eq!(f.kind, "match.\"ü\"\n");
    let v: Value = serde_json::from_str(&f.to_json()).unwrap();
    assert_eq!(v["type"], "match.\"ü\"\n");
}

#[test]
fn cids_map_to_string_or_integer_and_echo_identically() {
    let cases = [
        ("\"c-1\"", Some("c-1"), None),
        ("\"\"", Some(""), None),
        ("\"a\\\"b\\u00e9\"", Some("a\"bé"), None),
        ("7", None, Some(7)),
        ("-12", None, Some(-12)),
        ("9223372036854775807", None, Some(i64::MAX)),
    ];
    for (cid, as_str, as_num) in cases {
        let buf = fb::encode_inbound("session.heartbeat", Some(cid), "{}");
        let frame = tables::root_as_frame(&buf).unwrap();
        assert_eq!((frame.cid(), frame.cid_num()), (as_str, as_num), "{cid}");
        let f = fb::decode_inbound(&buf).unwrap();
        let (echo, sent): (Value, Value) = (
            serde_json::from_str(f.cid.as_deref().unwrap()).unwrap(),
            serde_json::from_str(cid).unwrap(),
        );
        assert_eq!(echo, sent, "{cid}");
    }
    // Cids no binary client can send are carried as their JSON text, never dropped.
    for cid in ["1.5", "-0", "18446744073709551615", "{\"a\":1}", "true"] {
        let buf = fb::encode_frame("x", Some(cid), b"{}");
        let frame = tables::root_as_frame(&buf).unwrap();
        assert_eq!(frame.cid(), Some(cid));
    }
}

#[test]
fn transcoding_an_api_error_keeps_code_and_request_type() {
    let e = ApiError::new(400, code::MATCH_NOT_IN_MATCH, "Not in a match.")
        .with_details(json!({"hint": "join first"}));
    let raw_cid = serde_json::value::RawValue::from_string("\"c-17\"".into()).unwrap();
    let json_frame = e.to_ws_frame(Some(&raw_cid), None, Some("match.input"));
    let buf = fb::transcode_json_frame(&json_frame).unwrap();
    let frame = tables::root_as_frame(&buf).unwrap();
    let ef = frame.payload_as_error_frame().unwrap();
    assert_eq!(ef.request_type(), Some("match.input"));
    assert_eq!(ef.reason(), "not_in_match");
    assert_eq!(ef.error().code(), "match.not_in_match");
    assert_eq!(
        read_back(&buf),
        serde_json::from_slice::<Value>(&json_frame).unwrap()
    );
    assert!(matches!(
        fb::transcode_json_frame(b"not json"),
        Err(FbError::InvalidJson { field: "frame", .. })
    ));
}

#[test]
fn errors_map_to_stable_codes_and_keep_the_cid() {
    let e = FbError::InvalidJson {
        field: "ctx",
        cid: Some("\"c\"".into()),
    };
    assert_eq!(e.to_api_error().code, code::INVALID_JSON);
    assert_eq!(e.cid(), Some("\"c\""));
    assert_eq!(
        FbError::NotAFrame.to_api_error().code,
        code::INVALID_MESSAGE
    );
    assert_eq!(
        FbError::MissingType { cid: None }.to_api_error().code,
        code::INVALID_MESSAGE
    );
}
