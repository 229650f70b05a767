//! asobi's deployment variables that describe its Erlang node and its separate datagram
//! gateway. asobi's compose files set them, so a compose file moved over unchanged sets them
//! here too: each is read and either honoured, explained in the log, or (a role this binary
//! cannot play) refused at start with the reason.

use anyhow::bail;

/// What the variables ask of this process.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    /// Lines for the start-up log: what each variable set means here.
    pub(crate) notes: Vec<String>,
    /// Variables that describe something asobi-rs does differently (logged as warnings).
    pub(crate) ignored: Vec<String>,
}

const DGRAM_VARS: &[&str] = &[
    "ASOBI_DGRAM_PORT",
    "ASOBI_DGRAM_LINK_PORT",
    "ASOBI_DGRAM_SHARDS",
    "ASOBI_DGRAM_GATEWAY",
    "ASOBI_DGRAM_ENDPOINT",
    "ASOBI_DGRAM_LINK_SECRET",
    "ASOBI_DGRAM_LINK_SECRET_FILE",
    "ASOBI_DGRAM_POSE_PERIOD",
    "ASOBI_DGRAM_POSE_FIELDS",
];

/// Reads asobi's node and gateway variables through `get`; an error for a role this binary
/// cannot take.
pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Findings> {
    let mut f = Findings::default();
    match get("ASOBI_ROLE").as_deref().map(str::trim) {
        None | Some("") | Some("engine") => {}
        Some("dgram_gw") => bail!(
            "ASOBI_ROLE=dgram_gw: asobi-rs has no separate datagram gateway; the engine's QUIC \
             endpoint (ASOBI_QUIC_PORT) carries datagrams itself. Run this binary as the engine \
             (ASOBI_ROLE unset or \"engine\") and drop the gateway service"
        ),
        Some(other) => {
            bail!("ASOBI_ROLE={other:?}: the roles asobi defines are \"engine\" and \"dgram_gw\"")
        }
    }
    let name = get("ASOBI_NODE_NAME");
    let host = get("ASOBI_NODE_HOST");
    if name.is_some() || host.is_some() {
        let node = format!(
            "{}@{}",
            name.as_deref().unwrap_or("asobi"),
            host.as_deref().unwrap_or("127.0.0.1")
        );
        f.notes.push(format!(
            "node {node} (ASOBI_NODE_NAME/ASOBI_NODE_HOST name this process in the log; there is \
             no Erlang distribution to join)"
        ));
    }
    if let Some(opts) = get("ASOBI_DB_SOCKET_OPTS") {
        for opt in split_opts(&opts) {
            match opt.as_str() {
                "inet" | "inet6" => f.notes.push(format!(
                    "ASOBI_DB_SOCKET_OPTS {opt}: the PostgreSQL host is resolved and every \
                     address family it has is tried"
                )),
                "{nodelay,true}" => f.notes.push(
                    "ASOBI_DB_SOCKET_OPTS {nodelay, true}: database sockets always set TCP_NODELAY"
                        .to_owned(),
                ),
                _ => f.ignored.push(format!(
                    "ASOBI_DB_SOCKET_OPTS option {opt:?} has no equivalent"
                )),
            }
        }
    }
    let dgram: Vec<&str> = DGRAM_VARS
        .iter()
        .copied()
        .filter(|v| get(v).is_some())
        .collect();
    if !dgram.is_empty() {
        f.ignored.push(format!(
            "{} configure asobi's separate datagram plane; here the QUIC endpoint \
             (ASOBI_QUIC_PORT) carries datagrams for the sessions that opt in",
            dgram.join(", ")
        ));
    }
    Ok(f)
}

/// `inet, {nodelay, true}` → `["inet", "{nodelay,true}"]`: commas inside braces stay.
fn split_opts(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c if c.is_whitespace() => {}
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|o| !o.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn asobis_compose_variables_are_read() {
        let f = read(env(&[
            ("ASOBI_ROLE", "engine"),
            ("ASOBI_NODE_NAME", "asobi"),
            ("ASOBI_NODE_HOST", "engine.internal"),
            ("ASOBI_DB_SOCKET_OPTS", "inet6, {nodelay, true}"),
            ("ASOBI_DGRAM_PORT", "7777"),
            ("ASOBI_DGRAM_GATEWAY", "127.0.0.1:7778"),
        ]))
        .unwrap();
        assert!(f.notes[0].contains("asobi@engine.internal"));
        assert!(f.notes[1].contains("inet6"));
        assert!(f.notes[2].contains("TCP_NODELAY"));
        assert_eq!(f.ignored.len(), 1);
        assert!(f.ignored[0].starts_with("ASOBI_DGRAM_PORT, ASOBI_DGRAM_GATEWAY"));
        assert_eq!(read(env(&[])).unwrap(), Findings::default());
    }

    #[test]
    fn a_role_this_binary_cannot_take_is_refused_with_the_reason() {
        let e = read(env(&[("ASOBI_ROLE", "dgram_gw")])).unwrap_err();
        assert!(e.to_string().contains("QUIC"), "{e}");
        assert!(read(env(&[("ASOBI_ROLE", "web")])).is_err());
        let f = read(env(&[("ASOBI_DB_SOCKET_OPTS", "inet, {keepalive, true}")])).unwrap();
        assert_eq!(f.ignored.len(), 1, "{f:?}");
    }
}
