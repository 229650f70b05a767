//! The services: one folder per feature, each owning its partition of state on this shard and
//! one function per operation, called alike from REST, WebSocket and Lua (STYLE.md 14).
//!
//! This module is the only place that lists the features. It holds the per-shard aggregate
//! ([`Shard`]), the mesh command, session-event and timer enums with one dispatch each, and the
//! REST and WebSocket tables built from each feature's own list. It grows by one line per
//! feature in each of those, never by feature logic.
//!
//! A new feature `foo` adds `services/foo/` with `mod.rs` (its state and operations), and as it
//! needs `cmd.rs` (its mesh commands), `rest.rs` (`pub(super) const ROUTES`), `ws.rs`
//! (`pub(super) const HANDLERS`) and `script.rs` (its `game.foo.*` answers); then here: a field
//! on [`Shard`], a variant in [`Cmd`] (and [`Timer`] if it keeps time), and its `ROUTES` /
//! `HANDLERS` in [`rest::table`] / [`session::table`].

pub(crate) mod accounts;
pub(crate) mod bots;
mod context;
pub(crate) mod cors;
pub(crate) mod economy;
pub(crate) mod error;
pub(crate) mod ext;
pub(crate) mod health;
pub(crate) mod iap;
pub(crate) mod leaderboards;
pub(crate) mod matches;
pub(crate) mod matchmaker;
pub(crate) mod ops;
pub(crate) mod parties;
pub(crate) mod rest;
pub(crate) mod rpc;
pub(crate) mod script;
#[cfg(test)]
mod seam_tests;
pub(crate) mod session;
#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod sim_tests;
pub(crate) mod social;
pub(crate) mod storage;
pub(crate) mod tournaments;
pub(crate) mod votes;
pub(crate) mod worlds;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use asobi_script::Game;

use crate::shard::{Runtime, Service};

pub(crate) use context::{Context, Settings};

/// Everything one shard runs: the runtime and each feature's state on this shard.
pub(crate) struct Shard {
    pub(crate) rt: Runtime<Shard>,
    pub(crate) ctx: Arc<Context>,
    /// The game as this shard last saw it (hot reload swaps it between callbacks).
    pub(crate) game: RefCell<Arc<Game>>,
    pub(crate) matchmaker: matchmaker::Queues,
    pub(crate) matches: matches::Matches,
    pub(crate) economy: economy::Economy,
    pub(crate) leaderboards: leaderboards::Boards,
    pub(crate) social: social::Social,
    pub(crate) rpc: rpc::Rpcs,
    pub(crate) ext: ext::Exts,
    pub(crate) accounts: accounts::Revocations,
    pub(crate) tournaments: tournaments::Tournaments,
    pub(crate) iap: iap::Iap,
    pub(crate) ops: ops::Ops,
    pub(crate) bot_fill: bots::fill::Fill,
    pub(crate) parties: parties::Parties,
    pub(crate) worlds: worlds::Worlds,
}

/// Mesh commands, one variant per feature that has any.
#[derive(Debug)]
pub(crate) enum Cmd {
    Matchmaker(matchmaker::cmd::Cmd),
    Matches(matches::cmd::Cmd),
    Leaderboards(leaderboards::cmd::Cmd),
    Social(social::cmd::Cmd),
    Accounts(accounts::cmd::Cmd),
    Ops(ops::cmd::Cmd),
    Votes(votes::cmd::Cmd),
    Tournaments(tournaments::Cmd),
    Parties(parties::cmd::Cmd),
    Worlds(worlds::cmd::Cmd),
}

/// Changes to a session's own state that services push through its outbox.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Matches(matches::SessionEvent),
    Accounts(accounts::cmd::Revoke),
    Worlds(worlds::SessionEvent),
}

/// Timers, one variant per feature that keeps time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    Matchmaker(matchmaker::Timer),
    Matches(matches::Timer),
    Leaderboards(leaderboards::Timer),
    Social(social::Timer),
    Tournaments(tournaments::Timer),
    Parties(parties::Timer),
    Worlds(worlds::Timer),
}

impl Service for Shard {
    type Cmd = Cmd;
    type Event = Event;
    type Timer = Timer;

    fn runtime(&self) -> &Runtime<Shard> {
        &self.rt
    }

    fn on_command(self: &Rc<Self>, cmd: Cmd) {
        match cmd {
            Cmd::Matchmaker(c) => matchmaker::cmd::handle(self, c),
            Cmd::Matches(c) => matches::cmd::handle(self, c),
            Cmd::Leaderboards(c) => leaderboards::cmd::handle(self, c),
            Cmd::Social(c) => social::cmd::handle(self, c),
            Cmd::Accounts(c) => accounts::cmd::handle(self, c),
            Cmd::Ops(c) => ops::cmd::handle(self, c),
            Cmd::Votes(c) => votes::cmd::handle(self, c),
            Cmd::Tournaments(c) => tournaments::handle(self, c),
            Cmd::Parties(c) => parties::cmd::handle(self, c),
            Cmd::Worlds(c) => worlds::cmd::handle(self, c),
        }
    }

    fn on_timer(self: &Rc<Self>, key: Timer) {
        match key {
            Timer::Matchmaker(t) => matchmaker::on_timer(self, t),
            Timer::Matches(t) => matches::on_timer(self, t),
            Timer::Leaderboards(t) => leaderboards::on_timer(self, t),
            Timer::Social(t) => social::on_timer(self, t),
            Timer::Tournaments(t) => tournaments::on_timer(self, t),
            Timer::Parties(t) => parties::on_timer(self, t),
            Timer::Worlds(t) => worlds::on_timer(self, t),
        }
    }
}

impl Shard {
    pub(crate) fn new(rt: Runtime<Shard>, ctx: Arc<Context>) -> Result<Rc<Shard>, String> {
        let game = ctx.game.borrow().clone();
        let shard = Rc::new(Shard {
            matches: matches::Matches::new(&ctx.budgets)?,
            economy: economy::Economy::load(&game)?,
            matchmaker: matchmaker::Queues::default(),
            leaderboards: leaderboards::Boards::default(),
            social: social::Social::default(),
            rpc: rpc::Rpcs::default(),
            ext: ext::Exts::default(),
            accounts: accounts::Revocations::seeded(&ctx.accounts.start_snapshot),
            tournaments: tournaments::Tournaments::load(&game.dir)?,
            iap: iap::Iap::load(&game.dir)?,
            ops: ops::Ops::default(),
            bot_fill: bots::fill::Fill::default(),
            parties: parties::Parties::default(),
            worlds: worlds::Worlds::default(),
            game: RefCell::new(game),
            rt,
            ctx,
        });
        matchmaker::start(&shard);
        accounts::start(&shard);
        tournaments::start(&shard);
        parties::start(&shard);
        worlds::snapshot::start(&shard);
        Ok(shard)
    }

    pub(crate) fn id(&self) -> usize {
        self.rt.id
    }

    /// Applies a newly compiled game: live matches reload in place between callbacks, queues
    /// pick up new mode settings, new matches use the new code.
    pub(crate) fn reload(self: &Rc<Self>, game: Arc<Game>) {
        *self.game.borrow_mut() = game.clone();
        matches::reload_all(self, &game);
        worlds::reload_all(self, &game);
        matchmaker::reconfigure(self, &game);
        ops::on_reload(self, &game);
    }

    /// Shutdown: tell every session, then end every match.
    pub(crate) fn close_sessions(&self) {
        self.rt
            .push_all_local(&crate::shard::mesh::Outbound::Close {
                code: 1001,
                reason: "server_shutting_down".into(),
            });
    }

    pub(crate) fn finish_all(self: &Rc<Self>) {
        matches::finish_all_for_shutdown(self);
        worlds::finish_all_for_shutdown(self);
    }
}
