//! The slice of the asobi JSON protocol the load tool speaks: builders for the frames it sends
//! and a top-level envelope scanner for the frames it receives. The scanner reads only the
//! outermost object's `type`, `cid` and the raw `payload` bytes, so a heartbeat reply costs
//! one linear pass and no allocation; payloads that matter (match state) are then decoded
//! with serde_json.

use std::io::Write as _;

/// Top-level fields of a server frame, borrowed from the frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `type` (raw string contents, escapes not decoded).
    pub ty: Option<&'a [u8]>,
    /// `cid` (raw string contents), present on replies.
    pub cid: Option<&'a [u8]>,
    /// Raw JSON text of `payload`.
    pub payload: Option<&'a [u8]>,
}

impl Envelope<'_> {
    /// True when `type` equals `t`.
    pub fn is(&self, t: &str) -> bool {
        self.ty == Some(t.as_bytes())
    }

    /// The `cid` parsed as a decimal number (the tool always sends numeric cids).
    pub fn cid_u64(&self) -> Option<u64> {
        let c = self.cid?;
        if c.is_empty() || c.len() > 19 {
            return None;
        }
        c.iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    }
}

/// Scans the outermost JSON object of `json`. Returns `None` when it is not an object or
/// is malformed at the top level.
pub fn scan(json: &[u8]) -> Option<Envelope<'_>> {
    let mut env = Envelope::default();
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b'}') {
        return Some(env);
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i + 1)?;
        let key = &json[i + 1..key_end];
        i = skip_ws(json, key_end + 1);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(json, i + 1);
        let (vstart, vend) = value_span(json, i)?;
        match key {
            b"type" | b"cid" if json[vstart] == b'"' => {
                let s = &json[vstart + 1..vend - 1];
                if key == b"type" {
                    env.ty = Some(s);
                } else {
                    env.cid = Some(s);
                }
            }
            b"payload" => env.payload = Some(&json[vstart..vend]),
            _ => {}
        }
        i = skip_ws(json, vend);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            Some(b'}') => return Some(env),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Index of the closing quote of a string whose contents start at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Byte span `[start, end)` of the JSON value starting at `i`.
fn value_span(b: &[u8], i: usize) -> Option<(usize, usize)> {
    match *b.get(i)? {
        b'"' => Some((i, string_end(b, i + 1)? + 1)),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => j = string_end(b, j + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some((i, j + 1));
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some((i, j))
        }
    }
}

/// `session.heartbeat` with a numeric cid.
pub fn heartbeat(buf: &mut Vec<u8>, cid: u64) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"session.heartbeat","cid":"{cid}","payload":{{}}}}"#
    );
}

/// `rpc.call` of `method` with empty params and a numeric cid (RPC payload protocol 1).
pub fn rpc_call(buf: &mut Vec<u8>, cid: u64, method: &str) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"rpc.call","cid":"{cid}","payload":{{"protocol":1,"method":"#
    );
    let _ = serde_json::to_writer(&mut *buf, method);
    buf.extend_from_slice(br#","params":{}}}"#);
}

/// `session.connect` carrying an access token.
pub fn session_connect(buf: &mut Vec<u8>, cid: u64, token: &str) {
    session_connect_wire(buf, cid, token, None);
}

/// `session.connect` asking for `"wire": wire` (asobi's binary `world.tick` with `"binary"`).
pub fn session_connect_wire(buf: &mut Vec<u8>, cid: u64, token: &str, wire: Option<&str>) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"session.connect","cid":"{cid}","payload":{{"token":"#
    );
    let _ = serde_json::to_writer(&mut *buf, token);
    if let Some(w) = wire {
        buf.extend_from_slice(br#","wire":"#);
        let _ = serde_json::to_writer(&mut *buf, w);
    }
    buf.extend_from_slice(b"}}");
}

/// `matchmaker.add` for a mode.
pub fn matchmaker_add(buf: &mut Vec<u8>, cid: u64, mode: &str) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"matchmaker.add","cid":"{cid}","payload":{{"mode":"#
    );
    let _ = serde_json::to_writer(&mut *buf, mode);
    buf.extend_from_slice(b"}}");
}

/// `match.input` moving the player by (dx, dy) and carrying the input sequence number the
/// game echoes back in state as `players[me].seq`.
pub fn match_input(buf: &mut Vec<u8>, seq: u64, dx: i32, dy: i32) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"match.input","payload":{{"action":"move","dx":{dx},"dy":{dy},"seq":{seq}}}}}"#
    );
}

/// Human-readable reason of an `error` frame (`payload.error.code`, else `payload.reason`).
pub fn error_code(payload: Option<&[u8]>) -> String {
    let v: serde_json::Value = payload
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(serde_json::Value::Null);
    v.pointer("/error/code")
        .or_else(|| v.get("reason"))
        .and_then(|c| c.as_str())
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_reply_envelopes() {
        let f = br#"{"type":"session.heartbeat","cid":"7","payload":{"ts":1730000000000}}"#;
        let e = scan(f).unwrap();
        assert!(e.is("session.heartbeat"));
        assert_eq!(e.cid_u64(), Some(7));
        assert_eq!(e.payload, Some(&br#"{"ts":1730000000000}"#[..]));
    }

    #[test]
    fn ignores_nested_keys_and_tolerates_whitespace_and_order() {
        let f = br#" { "payload" : {"cid":"99","type":"x","s":"a\"}"} , "cid" : "12", "type":"error" } "#;
        let e = scan(f).unwrap();
        assert!(e.is("error"));
        assert_eq!(e.cid_u64(), Some(12));
        assert_eq!(e.payload.unwrap()[0], b'{');
    }

    #[test]
    fn rejects_non_objects_and_truncation() {
        assert!(scan(b"[1,2]").is_none());
        assert!(scan(br#"{"type":"a""#).is_none());
        assert!(scan(br#"{"type":"a","payload":{"x":1}"#).is_none());
        assert_eq!(scan(b"{}").unwrap(), Envelope::default());
        assert_eq!(scan(br#"{"cid":"x1"}"#).unwrap().cid_u64(), None);
    }

    #[test]
    fn builders_produce_valid_json() {
        let mut b = Vec::new();
        heartbeat(&mut b, 42);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "session.heartbeat");
        assert_eq!(v["cid"], "42");
        session_connect_wire(&mut b, 1, "t", Some("binary"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            (
                v["payload"]["token"].as_str(),
                v["payload"]["wire"].as_str()
            ),
            (Some("t"), Some("binary"))
        );
        session_connect(&mut b, 1, "t");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(v["payload"].get("wire").is_none());
        session_connect(&mut b, 1, "a\"b");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["payload"]["token"], "a\"b");
        matchmaker_add(&mut b, 2, "duel");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["payload"]["mode"], "duel");
        match_input(&mut b, 9, -1, 0);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["payload"]["seq"], 9);
        assert_eq!(v["payload"]["dx"], -1);
    }

    #[test]
    fn error_code_prefers_the_namespaced_code() {
        let p =
            br#"{"reason":"bad","error":{"code":"auth.invalid_token","message":"m","details":{}}}"#;
        assert_eq!(error_code(Some(p)), "auth.invalid_token");
        assert_eq!(error_code(Some(br#"{"reason":"bad"}"#)), "bad");
        assert_eq!(error_code(None), "unknown");
    }
}
