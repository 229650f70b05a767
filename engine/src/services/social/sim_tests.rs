//! Channel membership and presence across shards on the simulation harness.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::services::sim::{Client, Sim};
use crate::services::Settings;

fn arena() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena")
}

fn sim(shards: usize) -> Sim {
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    Sim::new(shards, &arena(), settings).latency(Duration::from_millis(2))
}

fn owner(sim: &Sim, key: &str) -> usize {
    asobi_rules::placement::owner(key, sim.shards.len())
}

fn join(sim: &mut Sim, c: &mut Client, channel: &str) {
    sim.send(
        c,
        json!({"type": "chat.join", "cid": 1, "payload": {"channel_id": channel}}),
    );
    assert!(c.take("chat.joined").is_some(), "{:?}", c.received);
}

#[test]
fn a_channel_spans_shards_and_forgets_members_that_leave_or_drop() {
    let mut sim = sim(3);
    let channel = "global:hall";
    let host = owner(&sim, channel);
    let mut clients: Vec<Client> = (0..6)
        .map(|i| sim.signed_in(i % 3, &format!("p{i}")))
        .collect();
    for c in &mut clients {
        join(&mut sim, c, channel);
    }
    assert_eq!(sim.shards[host].social.channels.members(channel), 6);
    // Joining twice does not add a member.
    join(&mut sim, &mut clients[0], channel);
    assert_eq!(sim.shards[host].social.channels.members(channel), 6);

    let mut first = clients.remove(0);
    sim.send(
        &mut first,
        json!({"type": "chat.send", "payload": {"channel_id": channel, "content": "hi"}}),
    );
    sim.advance(Duration::from_millis(10));
    sim.collect(&mut first);
    assert_eq!(first.count("chat.message"), 1);
    for c in &mut clients {
        sim.collect(c);
        assert_eq!(c.count("chat.message"), 1, "{:?}", c.received);
        let m = c.take("chat.message").unwrap();
        assert_eq!(m["payload"]["sender_id"], "p0");
        assert_eq!(m["payload"]["content"], "hi");
    }

    // A leave and a dropped socket both take the member off the owner's list.
    let mut leaver = clients.remove(0);
    sim.send(
        &mut leaver,
        json!({"type": "chat.leave", "payload": {"channel_id": channel}}),
    );
    assert!(leaver.take("chat.left").is_some());
    let dropped = clients.remove(0);
    sim.drop_client(dropped);
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.shards[host].social.channels.members(channel), 4);
    sim.send(
        &mut first,
        json!({"type": "chat.send", "payload": {"channel_id": channel, "content": "again"}}),
    );
    sim.advance(Duration::from_millis(10));
    sim.collect(&mut leaver);
    assert_eq!(leaver.count("chat.message"), 0);
    for c in &mut clients {
        sim.collect(c);
        assert_eq!(c.count("chat.message"), 1);
    }
    // Everyone gone: the channel is not kept.
    sim.drop_client(first);
    sim.drop_client(leaver);
    for c in clients {
        sim.drop_client(c);
    }
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.shards[host].social.channels.members(channel), 0);
    assert_eq!(sim.shards[host].social.channels.live_count(), 0);
}

#[test]
fn presence_lives_on_the_players_owner_across_sessions_on_other_shards() {
    let mut sim = sim(3);
    let player = "wanderer";
    let home = owner(&sim, player);
    let status = |sim: &Sim| sim.shards[home].social.presence.status(player);
    assert_eq!(status(&sim), None);
    let mut a = sim.signed_in((home + 1) % 3, player);
    let b = sim.signed_in((home + 2) % 3, player);
    sim.advance(Duration::from_millis(10));
    assert_eq!(status(&sim).as_deref(), Some("online"));
    assert_eq!(sim.shards[home].social.presence.online(), 1);
    sim.send(
        &mut a,
        json!({"type": "presence.update", "payload": {"status": "in_match"}}),
    );
    let reply = a.take("presence.updated").expect("reply");
    assert_eq!(reply["payload"], json!({"status": "in_match"}));
    sim.advance(Duration::from_millis(10));
    assert_eq!(status(&sim).as_deref(), Some("in_match"));
    // One of two sessions closes: still online; the last one: offline (forgotten).
    sim.drop_client(b);
    sim.advance(Duration::from_millis(10));
    assert_eq!(status(&sim).as_deref(), Some("in_match"));
    sim.drop_client(a);
    sim.advance(Duration::from_millis(10));
    assert_eq!(status(&sim), None);
    assert_eq!(sim.shards[home].social.presence.online(), 0);
}

#[test]
fn a_connection_joins_at_most_32_channels() {
    let mut sim = sim(2);
    let mut c = sim.signed_in(0, "collector");
    for i in 0..32 {
        join(&mut sim, &mut c, &format!("global:c{i}"));
    }
    assert_eq!(c.session.social.len(), 32);
    sim.send(
        &mut c,
        json!({"type": "chat.join", "cid": 2, "payload": {"channel_id": "global:more"}}),
    );
    let e = c.take("error").expect("refused");
    assert_eq!(e["payload"]["error"]["code"], "chat.too_many_channels");
    assert_eq!(e["payload"]["reason"], "too_many_channels");
}
