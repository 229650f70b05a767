//! The match's side of the Lua host: what a script asks for during one callback
//! (`game.broadcast`, `game.send`, `game.set_joinable`) is collected here and applied by the match
//! once the callback returned, so the Lua runtime never calls back into the shard.

use bytes::Bytes;

use asobi_schema::envelope::encode_frame_raw;
use asobi_script::Host;

/// What a script asked for during one callback.
#[derive(Default)]
pub(crate) struct Effects {
    /// `None` target: every player in the match.
    pub(crate) frames: Vec<(Option<String>, Bytes)>,
    pub(crate) joinable: Option<bool>,
    /// `game.bots.add` / `game.bots.remove`, in call order.
    pub(crate) bots: Vec<crate::services::bots::BotOp>,
}

impl Host for Effects {
    fn broadcast(&mut self, event: &str, payload: Bytes) {
        let kind = format!("match.{event}");
        self.frames
            .push((None, encode_frame_raw(&kind, None, &payload)));
    }

    fn send(&mut self, player_id: &str, message: Bytes) {
        let mut body = Vec::with_capacity(message.len() + 32);
        body.extend_from_slice(b"{\"module\":\"lua\",\"message\":");
        body.extend_from_slice(&message);
        body.push(b'}');
        // asobi still emits the pre-rename `game.message` before `module.message` so SDKs built
        // before the rename keep working; clients dispatch on one of the two.
        self.frames.push((
            Some(player_id.to_owned()),
            encode_frame_raw("game.message", None, &body),
        ));
        self.frames.push((
            Some(player_id.to_owned()),
            encode_frame_raw("module.message", None, &body),
        ));
    }

    fn set_joinable(&mut self, open: bool) {
        self.joinable = Some(open);
    }

    fn add_bot(&mut self, name: &str) {
        self.bots
            .push(crate::services::bots::BotOp::Add(name.to_owned()));
    }

    fn remove_bot(&mut self, bot: &str) {
        self.bots
            .push(crate::services::bots::BotOp::Remove(bot.to_owned()));
    }
}
