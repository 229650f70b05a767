//! The simulation harness (quinn's `tests/util.rs` `Pair` is the model): N shards' services
//! and fake clients in one thread, on a virtual clock, with mesh latency and a seeded loss of
//! deliveries. [`Sim::step`] moves whatever is due now; [`Sim::advance`] jumps the clock from
//! event to event. Behaviour that takes seconds of wall time (reconnection grace, abandonment,
//! a script failing tick after tick) runs here in milliseconds and without sleeps.
//!
//! Clients are the real [`Session`] protocol state fed JSON text, exactly what the edge would
//! hand it; only sockets are missing. Storage is a real SQLite file in a temporary directory.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures::executor::LocalPool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::watch;

use asobi_script::{Budgets, Game};
use asobi_storage::{StoreConfig, StoreHandle};

use super::accounts::tokens::Tokens;
use super::session::Session;
use super::{Context, Settings, Shard};
use crate::shard::mesh::{MeshMsg, Outbound};
use crate::shard::outbox::{Next, Outbox};
use crate::shard::registry::LocalRegistry;
use crate::shard::{fire_timers, handle, Msg, Runtime, SimNet};
use crate::wire::Wire;

/// A token secret for tests only.
const SECRET: &str = "simulation-secret-simulation-secret-0123456789";

pub(crate) struct Sim {
    pub(crate) shards: Vec<Rc<Shard>>,
    pub(crate) ctx: Arc<Context>,
    net: Rc<SimNet<Msg<Shard>>>,
    clock: Rc<Cell<Instant>>,
    pool: LocalPool,
    /// Messages on the wire: when they arrive, where, what.
    in_flight: VecDeque<(Instant, usize, Msg<Shard>)>,
    latency: Duration,
    /// Probability that a delivery of frames between shards is lost.
    loss: f64,
    rng: StdRng,
    /// Deliveries the harness dropped.
    pub(crate) lost: usize,
    _dir: tempfile::TempDir,
}

/// A fake client: a session on one shard and everything it has received.
pub(crate) struct Client {
    pub(crate) session: Session,
    outbox: Rc<Outbox<super::Event>>,
    pub(crate) received: Vec<Value>,
    pub(crate) closed: Option<(u16, String)>,
}

impl Sim {
    /// `nshards` shards running the game in `game_dir` with `settings`.
    pub(crate) fn new(nshards: usize, game_dir: &Path, settings: Settings) -> Sim {
        Self::with_budgets(nshards, game_dir, settings, Budgets::default())
    }

    pub(crate) fn with_budgets(
        nshards: usize,
        game_dir: &Path,
        settings: Settings,
        budgets: Budgets,
    ) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = StoreHandle::start(StoreConfig::Sqlite {
            path: dir.path().join("sim.db"),
        })
        .expect("sqlite store");
        let game = Arc::new(Game::load(game_dir).expect("game loads"));
        let (game_tx, game_rx) = watch::channel(game);
        // The harness never reloads through the channel; keep the sender alive anyway.
        std::mem::forget(game_tx);
        let tokens = Tokens::load(
            Some(SECRET),
            dir.path(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .expect("tokens");
        let ctx = Arc::new(Context {
            ops: Default::default(),
            settings,
            store,
            tokens,
            registry: Box::new(LocalRegistry::new(nshards)),
            matches: Default::default(),
            parties: Default::default(),
            worlds: Default::default(),
            game: game_rx,
            budgets,
            accounts: crate::services::accounts::Shared::without_limits(),
        });
        let clock = Rc::new(Cell::new(Instant::now()));
        let net = Rc::new(SimNet::default());
        let pool = LocalPool::new();
        let shards = (0..nshards)
            .map(|id| {
                let rt = Runtime::simulated(id, nshards, &net, clock.clone(), pool.spawner());
                Shard::new(rt, ctx.clone()).expect("shard starts")
            })
            .collect();
        Sim {
            shards,
            ctx,
            net,
            clock,
            pool,
            in_flight: VecDeque::new(),
            latency: Duration::from_millis(1),
            loss: 0.0,
            rng: StdRng::seed_from_u64(7),
            lost: 0,
            _dir: dir,
        }
    }

    /// Mesh latency between shards.
    pub(crate) fn latency(mut self, d: Duration) -> Sim {
        self.latency = d;
        self
    }

    /// Loss of frame deliveries between shards (commands and answers are never lost: the mesh
    /// is reliable, only what clients would see as dropped datagrams is modelled).
    pub(crate) fn loss(mut self, p: f64, seed: u64) -> Sim {
        self.loss = p;
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.get()
    }

    /// Moves everything that is due at the current instant; true when anything happened.
    pub(crate) fn step(&mut self) -> bool {
        let now = self.now();
        let mut progress = false;
        // Sends made since the last step go on the wire.
        let sent = self.net.drain();
        for (_, to, msg) in sent {
            let is_delivery = matches!(msg, MeshMsg::Deliver { .. } | MeshMsg::DeliverEach(_));
            if is_delivery && self.loss > 0.0 && self.rng.random_bool(self.loss) {
                self.lost += 1;
                continue;
            }
            self.in_flight.push_back((now + self.latency, to, msg));
            progress = true;
        }
        // Arrivals, in send order.
        while self.in_flight.front().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, to, msg)) = self.in_flight.pop_front() {
                handle(&self.shards[to], msg);
                progress = true;
            }
        }
        for s in &self.shards {
            if fire_timers(s, now) > 0 {
                progress = true;
            }
            if s.rt.wake_sleepers(now) {
                progress = true;
            }
        }
        self.pool.run_until_stalled();
        progress
    }

    /// Steps until nothing more is due now.
    pub(crate) fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.step() && self.net.is_empty() {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    /// The next instant something is scheduled (a timer or an arrival).
    fn next_event(&self) -> Option<Instant> {
        let timers = self.shards.iter().filter_map(|s| s.rt.next_deadline());
        let arrivals = self.in_flight.front().map(|(at, _, _)| *at);
        timers.chain(arrivals).min()
    }

    /// Runs the virtual clock forward by `d`, event by event.
    pub(crate) fn advance(&mut self, d: Duration) {
        let until = self.now() + d;
        loop {
            self.settle();
            match self.next_event() {
                Some(at) if at <= until => self.clock.set(at.max(self.now())),
                _ => {
                    self.clock.set(until);
                    self.settle();
                    return;
                }
            }
        }
    }

    /// A registered player's access token (the account itself is not needed by the services
    /// under test; tokens are what sessions check).
    pub(crate) fn token(&self, player_id: &str) -> String {
        self.ctx.tokens.issue_access(player_id)
    }

    /// A client connected to `shard`, not yet signed in.
    pub(crate) fn client(&mut self, shard: usize) -> Client {
        let s = self.shards[shard].clone();
        let outbox = Rc::new(Outbox::new(s.ctx.settings.ws_outbox));
        let me = s.rt.add_session(outbox.clone());
        Client {
            session: Session::open(s, me, Wire::Json),
            outbox,
            received: Vec::new(),
            closed: None,
        }
    }

    /// A client on `shard` signed in as `player_id`.
    pub(crate) fn signed_in(&mut self, shard: usize, player_id: &str) -> Client {
        let mut c = self.client(shard);
        let token = self.token(player_id);
        self.send(
            &mut c,
            serde_json::json!({"type": "session.connect", "payload": {"token": token}}),
        );
        assert!(
            c.take("session.connected").is_some(),
            "connected: {:?}",
            c.received
        );
        c
    }

    /// Sends a frame from a client and runs the simulation until its handler finished.
    pub(crate) fn send(&mut self, c: &mut Client, frame: Value) {
        self.send_together(std::slice::from_mut(c), frame);
    }

    /// Sends `frame` from every client at the same instant and runs the simulation until every
    /// handler finished: their requests are in flight together.
    pub(crate) fn send_together(&mut self, clients: &mut [Client], frame: Value) {
        let text = frame.to_string();
        {
            let mut futs: Vec<_> = clients
                .iter_mut()
                .map(|c| Some(Box::pin(c.session.on_text(&text))))
                .collect();
            let waker = futures::task::noop_waker();
            let mut cx = TaskContext::from_waker(&waker);
            let mut spins = 0;
            while futs.iter().any(Option::is_some) {
                for slot in futs.iter_mut() {
                    if let Some(f) = slot {
                        if let Poll::Ready(()) = f.as_mut().poll(&mut cx) {
                            *slot = None;
                        }
                    }
                }
                if futs.iter().all(Option::is_none) {
                    // Done: the clock must not move past what the handlers needed.
                    break;
                }
                if !self.step() {
                    match self.next_event() {
                        Some(at) => self.clock.set(at.max(self.now())),
                        None => {
                            spins += 1;
                            assert!(
                                spins < 1000,
                                "a handler waits for something that never comes"
                            );
                        }
                    }
                }
            }
        }
        for c in clients.iter_mut() {
            self.collect(c);
        }
    }

    /// Moves what reached the client's outbox into `received`.
    pub(crate) fn collect(&mut self, c: &mut Client) {
        self.settle();
        while let Some(n) = c.outbox.try_pop() {
            match n {
                Next::Item(item) => {
                    if let Outbound::Close { code, reason } = &item {
                        c.closed = Some((*code, reason.clone()));
                    }
                    c.session.on_outbound(item);
                }
                Next::Overflowed => {
                    // The edge stops reading the outbox here and closes the socket.
                    c.session.on_overflow();
                    break;
                }
            }
        }
        for f in c.session.replies() {
            if let Ok(v) = serde_json::from_str::<Value>(f.json_text().as_str()) {
                c.received.push(v);
            }
        }
    }

    /// The client's socket drops.
    pub(crate) fn drop_client(&mut self, c: Client) {
        drop(c);
        self.settle();
    }
}

impl Client {
    /// Removes and returns the first received frame of `kind`.
    pub(crate) fn take(&mut self, kind: &str) -> Option<Value> {
        let i = self.received.iter().position(|v| v["type"] == kind)?;
        Some(self.received.remove(i))
    }

    /// The last received frame of `kind`.
    pub(crate) fn last(&self, kind: &str) -> Option<&Value> {
        self.received.iter().rev().find(|v| v["type"] == kind)
    }

    pub(crate) fn count(&self, kind: &str) -> usize {
        self.received.iter().filter(|v| v["type"] == kind).count()
    }
}
