//! The leaderboards' mesh commands, handled on the shard that owns the board.

use std::rc::Rc;

use crate::services::Shard;
use crate::shard::mesh::ReplyTo;

/// One request for a board, on its way to `owner(board)`.
#[derive(Debug)]
pub(crate) enum Cmd {
    Submit {
        board: String,
        player_id: String,
        score: i64,
        sub_score: i64,
        metadata: Option<String>,
        reply: ReplyTo,
    },
    Top {
        board: String,
        limit: usize,
        reply: ReplyTo,
    },
    Rank {
        board: String,
        player_id: String,
        reply: ReplyTo,
    },
    Around {
        board: String,
        player_id: String,
        range: usize,
        reply: ReplyTo,
    },
    /// End the board's period so that the next one starts at `period` (now when `None`):
    /// archive and clear it. A board whose period already starts there or later is left as it
    /// is, so a season's reset repeated after a crash clears nothing twice. Answered once every
    /// period end queued so far is written to storage.
    Reset {
        board: String,
        period: Option<i64>,
        reply: ReplyTo,
    },
}

impl Cmd {
    pub(super) fn board(&self) -> &str {
        match self {
            Cmd::Submit { board, .. }
            | Cmd::Top { board, .. }
            | Cmd::Rank { board, .. }
            | Cmd::Around { board, .. }
            | Cmd::Reset { board, .. } => board,
        }
    }

    pub(super) fn reply_to(&self) -> ReplyTo {
        match self {
            Cmd::Submit { reply, .. }
            | Cmd::Top { reply, .. }
            | Cmd::Rank { reply, .. }
            | Cmd::Around { reply, .. }
            | Cmd::Reset { reply, .. } => *reply,
        }
    }
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: Cmd) {
    super::on_command(shard, cmd);
}
