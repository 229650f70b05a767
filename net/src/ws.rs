//! The WebSocket upgrade handshake (RFC 6455 §4.2) on a parsed HTTP head.
//!
//! The frames themselves are [`crate::ws_frame`]'s business; this module only decides whether a request
//! is a valid upgrade and writes the `101 Switching Protocols` answer, including the chosen
//! subprotocol when the client offered one the server speaks.

use crate::http::{BodyKind, Head, HttpError, Method};

/// A request that asked for a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value for the answer.
    pub accept: String,
    /// Subprotocols the client offered, in its order of preference.
    pub protocols: Vec<String>,
}

/// Whether the request asks to upgrade to WebSocket at all.
pub fn is_upgrade(head: &Head) -> bool {
    head.header_has_token("upgrade", "websocket")
}

/// Validates an upgrade request. Call only when [`is_upgrade`] is true.
pub fn accept(head: &Head) -> Result<Upgrade, HttpError> {
    if head.method != Method::Get {
        return Err(HttpError::Malformed("websocket upgrade must be GET"));
    }
    // Bytes after the head belong to the WebSocket; a body announced on the upgrade would be
    // read as frames here and as a body by anything in front of us.
    if head.body != BodyKind::Empty {
        return Err(HttpError::Malformed("websocket upgrade with a body"));
    }
    if !head.header_has_token("connection", "upgrade") {
        return Err(HttpError::Malformed("missing `Connection: upgrade`"));
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(HttpError::Malformed("unsupported websocket version"));
    }
    let key = head
        .header("sec-websocket-key")
        .filter(|k| !k.is_empty())
        .ok_or(HttpError::Malformed("missing sec-websocket-key"))?;
    let protocols = head
        .headers
        .iter()
        .filter(|(n, _)| n == "sec-websocket-protocol")
        .flat_map(|(_, v)| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Upgrade {
        accept: tungstenite::handshake::derive_accept_key(key.as_bytes()),
        protocols,
    })
}

/// The `101` answer, naming `protocol` when one was chosen.
pub fn switching_protocols(upgrade: &Upgrade, protocol: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n",
        upgrade.accept
    );
    if let Some(p) = protocol {
        out.push_str("sec-websocket-protocol: ");
        out.push_str(p);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};

    fn head(extra: &str) -> Head {
        let text = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        parse_head(text.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn rfc_example_key() {
        let h = head("Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: asobi.fb.1, chat\r\n");
        assert!(is_upgrade(&h));
        let up = accept(&h).unwrap();
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(up.protocols, vec!["asobi.fb.1", "chat"]);
        let resp = String::from_utf8(switching_protocols(&up, Some("asobi.fb.1"))).unwrap();
        assert!(resp.contains("sec-websocket-protocol: asobi.fb.1\r\n"));
    }

    #[test]
    fn rejects_incomplete_upgrades() {
        assert!(accept(&head(
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: a\r\n"
        ))
        .is_err());
        assert!(accept(&head("Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: a\r\n")).is_err());
        assert!(accept(&head(
            "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ))
        .is_err());
        assert!(!is_upgrade(&head("")));
        let full = "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        assert!(accept(&head(full)).is_ok());
        for body in ["Content-Length: 4\r\n", "Transfer-Encoding: chunked\r\n"] {
            assert!(accept(&head(&format!("{full}{body}"))).is_err(), "{body}");
        }
    }
}
