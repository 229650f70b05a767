//! The world's side of the Lua host: `game.broadcast` becomes `world.<event>` to every player
//! in the world, `game.send` a `module.message` (and the legacy `game.message`) to one.

use bytes::Bytes;

use asobi_schema::envelope::encode_frame_raw;
use asobi_script::Host;

/// What a world script asked for during one callback; `None` target: every player.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) frames: Vec<(Option<String>, Bytes)>,
}

impl Host for Effects {
    fn broadcast(&mut self, event: &str, payload: Bytes) {
        let kind = format!("world.{event}");
        self.frames
            .push((None, encode_frame_raw(&kind, None, &payload)));
    }

    fn send(&mut self, player_id: &str, message: Bytes) {
        let mut body = Vec::with_capacity(message.len() + 32);
        body.extend_from_slice(b"{\"module\":\"lua\",\"message\":");
        body.extend_from_slice(&message);
        body.push(b'}');
        for kind in ["game.message", "module.message"] {
            self.frames.push((
                Some(player_id.to_owned()),
                encode_frame_raw(kind, None, &body),
            ));
        }
    }

    /// Worlds have no joinable flag (`game.match.set_joinable` is a match call).
    fn set_joinable(&mut self, _open: bool) {}
}
