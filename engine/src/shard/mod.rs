//! The shard runtime: what one core owns that is not a feature. A [`Runtime`] holds the mesh
//! links to the other shards, the session slots and their outboxes, the waiters for answers to
//! requests, the timer queue and the clock. It names no feature: the service layer plugs in
//! through [`Service`], which supplies the command, session-event and timer types and handles
//! what arrives.
//!
//! Routing is apart from per-item logic (STYLE.md): [`route`] decides *where* a command goes —
//! handled in place when it is for this shard, onto the mesh otherwise — and the service decides
//! what it means. A send that finds the peer's backlog full hands the command back to the caller,
//! which answers with a typed `overloaded` error instead of losing it silently.
//!
//! The same runtime runs under glommio ([`glommio_drivers`]) and under the simulation harness,
//! which swaps the clock, the executor and the links for virtual ones.

pub(crate) mod mesh;
pub(crate) mod outbox;
pub(crate) mod panic;
pub(crate) mod registry;
pub(crate) mod timers;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use slab::Slab;

use asobi_schema::error::code;
use asobi_schema::ApiError;

use mesh::{Answer, MeshMsg, Outbound, ReplyTo, SessionRef};
use outbox::Outbox;
use timers::{Poke, Timers};

/// Messages one shard may have queued for one peer before sends to it are refused. The mesh
/// channel itself holds [`MESH_CHANNEL`]; this backlog absorbs bursts (a big match finishing, a
/// matchmaker tick forming hundreds of matches) without blocking the sender. Past it the peer is
/// not keeping up, and piling more on only grows memory: the sender gets its message back.
pub(crate) const MESH_BACKLOG: usize = 1 << 16;
/// Capacity of each mesh channel between two shards.
pub(crate) const MESH_CHANNEL: usize = 4096;

/// The service layer, as the runtime sees it.
pub(crate) trait Service: Sized + 'static {
    /// Commands for services, carried on the mesh.
    type Cmd: Send + 'static;
    /// Per-session state changes carried in outboxes ([`Outbound::Event`]).
    type Event: Clone + Send + std::fmt::Debug + 'static;
    /// What a timer names when it fires.
    type Timer: 'static;

    fn runtime(&self) -> &Runtime<Self>;
    /// A command addressed to this shard.
    fn on_command(self: &Rc<Self>, cmd: Self::Cmd);
    /// A timer armed with [`Runtime::arm`] is due.
    fn on_timer(self: &Rc<Self>, key: Self::Timer);
}

/// A mesh message of service `S`.
pub(crate) type Msg<S> = MeshMsg<<S as Service>::Cmd, <S as Service>::Event>;

/// One connected session, as the rest of the shard sees it.
struct SessionSlot<E> {
    outbox: Rc<Outbox<E>>,
    gen: u64,
}

/// Who waits for an answer: a task awaiting [`request`]. (A suspended Lua callback waits through
/// such a task too; its reply re-enters the match through the timer queue, never in place.)
enum Waiter {
    Task(oneshot::Sender<Answer>),
}

/// The local end of a glommio mesh pump: the channel into it and its backlog counter.
pub(crate) type Pump<M> = (LocalSender<M>, Rc<Cell<usize>>);

/// The way to one peer shard.
enum Link<M> {
    /// A glommio mesh channel, fed through a local pump task so a send never blocks.
    Mesh {
        tx: LocalSender<M>,
        backlog: Rc<Cell<usize>>,
    },
    /// The simulation harness's network.
    #[cfg_attr(not(test), allow(dead_code))]
    Sim(Rc<SimNet<M>>),
}

/// Messages in flight between simulated shards: the harness moves them with latency and loss.
pub(crate) struct SimNet<M> {
    queue: RefCell<VecDeque<(usize, usize, M)>>,
    /// Messages queued per (from, to) link, the simulated backlog.
    queued: RefCell<std::collections::HashMap<(usize, usize), usize>>,
}

impl<M> Default for SimNet<M> {
    fn default() -> Self {
        SimNet {
            queue: RefCell::new(VecDeque::new()),
            queued: RefCell::default(),
        }
    }
}

#[cfg_attr(not(test), allow(dead_code))]
impl<M> SimNet<M> {
    /// Takes everything sent since the last call, as (from, to, message).
    pub(crate) fn drain(&self) -> Vec<(usize, usize, M)> {
        self.queued.borrow_mut().clear();
        self.queue.borrow_mut().drain(..).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }
}

/// Where time comes from.
#[derive(Clone)]
pub(crate) enum Clock {
    Real,
    /// A clock only the simulation harness moves.
    #[cfg_attr(not(test), allow(dead_code))]
    Virtual(Rc<Cell<Instant>>),
}

/// Where spawned tasks run.
pub(crate) enum Exec {
    Glommio,
    /// A single-threaded futures pool the simulation harness drives.
    #[cfg_attr(not(test), allow(dead_code))]
    Pool(futures::executor::LocalSpawner),
}

/// Counters the runtime keeps for `/health` and the logs.
#[derive(Default)]
pub(crate) struct RuntimeCounters {
    /// Mesh sends refused because the peer's backlog was full.
    pub(crate) bounced: Cell<u64>,
    /// Frames a full outbox refused (the session is then closed as a slow consumer).
    pub(crate) outbox_refused: Cell<u64>,
    /// Answers that found no waiter (it gave up or its slot was reused).
    pub(crate) stale_answers: Cell<u64>,
}

pub(crate) struct Runtime<S: Service> {
    pub(crate) id: usize,
    links: Vec<Option<Link<Msg<S>>>>,
    sessions: RefCell<Slab<SessionSlot<S::Event>>>,
    next_gen: Cell<u64>,
    waiters: RefCell<Slab<(u64, Waiter)>>,
    timers: RefCell<Timers<S::Timer>>,
    poke: Poke,
    clock: Clock,
    exec: Exec,
    pub(crate) shutting_down: Cell<bool>,
    /// REST requests being handled; shutdown waits for them.
    pub(crate) inflight: Cell<usize>,
    pub(crate) counters: RuntimeCounters,
    /// Tasks sleeping on the virtual clock, woken by the harness when it reaches their time.
    sleepers: RefCell<Vec<(Instant, std::task::Waker)>>,
}

impl<S: Service> Runtime<S> {
    fn new(id: usize, links: Vec<Option<Link<Msg<S>>>>, clock: Clock, exec: Exec) -> Self {
        Runtime {
            id,
            links,
            sessions: RefCell::new(Slab::new()),
            next_gen: Cell::new(0),
            waiters: RefCell::new(Slab::new()),
            timers: RefCell::new(Timers::default()),
            poke: Poke::default(),
            clock,
            exec,
            shutting_down: Cell::new(false),
            inflight: Cell::new(0),
            counters: RuntimeCounters::default(),
            sleepers: RefCell::new(Vec::new()),
        }
    }

    /// A runtime whose peers are reached through glommio mesh pumps (see [`glommio_links`]).
    pub(crate) fn on_glommio(id: usize, pumps: Vec<Option<Pump<Msg<S>>>>) -> Self {
        let links = pumps
            .into_iter()
            .map(|p| p.map(|(tx, backlog)| Link::Mesh { tx, backlog }))
            .collect();
        Self::new(id, links, Clock::Real, Exec::Glommio)
    }

    /// A runtime for the simulation harness: virtual clock, a futures pool, a shared network.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn simulated(
        id: usize,
        nshards: usize,
        net: &Rc<SimNet<Msg<S>>>,
        clock: Rc<Cell<Instant>>,
        spawner: futures::executor::LocalSpawner,
    ) -> Self {
        let links = (0..nshards)
            .map(|peer| (peer != id).then(|| Link::Sim(net.clone())))
            .collect();
        Self::new(id, links, Clock::Virtual(clock), Exec::Pool(spawner))
    }

    pub(crate) fn nshards(&self) -> usize {
        self.links.len()
    }

    pub(crate) fn now(&self) -> Instant {
        match &self.clock {
            Clock::Real => Instant::now(),
            Clock::Virtual(t) => t.get(),
        }
    }

    /// Runs a task on this shard.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        match &self.exec {
            Exec::Glommio => {
                glommio::spawn_local(fut).detach();
            }
            Exec::Pool(spawner) => {
                use futures::task::LocalSpawnExt;
                if spawner.spawn_local(fut).is_err() {
                    tracing::debug!(shard = self.id, "simulated executor gone");
                }
            }
        }
    }

    /// Waits on this shard's clock (virtual under the harness).
    pub(crate) async fn sleep(&self, d: Duration) {
        match &self.clock {
            Clock::Real => glommio::timer::sleep(d).await,
            Clock::Virtual(t) => {
                let until = t.get() + d;
                let clock = t.clone();
                std::future::poll_fn(move |cx| {
                    if clock.get() >= until {
                        std::task::Poll::Ready(())
                    } else {
                        // The harness wakes it when its clock reaches `until` (a task that
                        // woke itself at once would keep the harness's executor busy forever).
                        self.sleepers.borrow_mut().push((until, cx.waker().clone()));
                        std::task::Poll::Pending
                    }
                })
                .await
            }
        }
    }

    /// Arms a timer; [`Service::on_timer`] gets `key` at or after `at`.
    pub(crate) fn arm(&self, at: Instant, key: S::Timer) {
        if self.timers.borrow_mut().arm(at, key) {
            self.poke.poke();
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let sleeper = self.sleepers.borrow().iter().map(|(at, _)| *at).min();
        match (self.timers.borrow().next_deadline(), sleeper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Wakes the tasks sleeping on the virtual clock whose time has come; whether any was.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn wake_sleepers(&self, now: Instant) -> bool {
        let due: Vec<std::task::Waker> = {
            let mut sleepers = self.sleepers.borrow_mut();
            let (due, rest): (Vec<_>, Vec<_>) = sleepers.drain(..).partition(|(at, _)| *at <= now);
            *sleepers = rest;
            due.into_iter().map(|(_, w)| w).collect()
        };
        let woke = !due.is_empty();
        for w in due {
            w.wake();
        }
        woke
    }

    /// Timers armed (stale ones included until they fire).
    pub(crate) fn timer_count(&self) -> usize {
        self.timers.borrow().len()
    }

    /// Registers a new session; returns its address.
    pub(crate) fn add_session(&self, outbox: Rc<Outbox<S::Event>>) -> SessionRef {
        let gen = self.next_gen.get() + 1;
        self.next_gen.set(gen);
        let slot = self
            .sessions
            .borrow_mut()
            .insert(SessionSlot { outbox, gen });
        SessionRef {
            shard: self.id,
            slot,
            gen,
        }
    }

    /// Forgets a session; true when it was still registered.
    pub(crate) fn remove_session(&self, at: SessionRef) -> bool {
        let mut sessions = self.sessions.borrow_mut();
        if sessions.get(at.slot).is_some_and(|s| s.gen == at.gen) {
            sessions.remove(at.slot);
            true
        } else {
            false
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.borrow().len()
    }

    /// Pushes the same item into every session of this shard (shutdown notices).
    pub(crate) fn push_all_local(&self, out: &Outbound<S::Event>) {
        for (_, s) in self.sessions.borrow().iter() {
            s.outbox.push(out.clone());
        }
    }

    fn deliver_local(&self, to: SessionRef, out: Outbound<S::Event>) {
        let sessions = self.sessions.borrow();
        if let Some(slot) = sessions.get(to.slot) {
            if slot.gen == to.gen && !slot.outbox.push(out) {
                self.counters
                    .outbox_refused
                    .set(self.counters.outbox_refused.get() + 1);
            }
        }
    }

    /// Delivers to one session wherever it lives.
    pub(crate) fn deliver(&self, to: SessionRef, out: Outbound<S::Event>) {
        if to.shard == self.id {
            self.deliver_local(to, out);
        } else {
            self.send_or_count(
                to.shard,
                MeshMsg::Deliver {
                    targets: vec![to],
                    out,
                },
            );
        }
    }

    /// Delivers the same item to many sessions: one mesh message per remote shard, and the frame
    /// itself shared by reference between every recipient. Callers that keep their targets
    /// grouped by shard (chat channels do) hit the fast paths: a local group is one pass over
    /// the session slots, a remote group one copy of the list into one mesh message.
    pub(crate) fn deliver_all(&self, targets: &[SessionRef], out: &Outbound<S::Event>) {
        let Some(first) = targets.first().map(|t| t.shard) else {
            return;
        };
        if targets.iter().all(|t| t.shard == first) {
            if first == self.id {
                self.deliver_local_all(targets, out);
            } else {
                self.send_or_count(
                    first,
                    MeshMsg::Deliver {
                        targets: targets.to_vec(),
                        out: out.clone(),
                    },
                );
            }
            return;
        }
        let mut local: Vec<SessionRef> = Vec::new();
        let mut remote: Vec<Vec<SessionRef>> = Vec::new();
        for &t in targets {
            if t.shard == self.id {
                local.push(t);
            } else {
                if remote.len() <= t.shard {
                    remote.resize_with(t.shard + 1, Vec::new);
                }
                remote[t.shard].push(t);
            }
        }
        self.deliver_local_all(&local, out);
        for (shard, targets) in remote.into_iter().enumerate() {
            if !targets.is_empty() {
                self.send_or_count(
                    shard,
                    MeshMsg::Deliver {
                        targets,
                        out: out.clone(),
                    },
                );
            }
        }
    }

    /// The same item into the outboxes of many sessions of this shard: the slots are borrowed
    /// once, and each push is a queue append plus a wake-up (the task runs later; no socket is
    /// touched here). A full outbox refuses the frame and marks its session as a slow consumer.
    fn deliver_local_all(&self, targets: &[SessionRef], out: &Outbound<S::Event>) {
        let sessions = self.sessions.borrow();
        let mut refused = 0;
        for t in targets {
            if let Some(slot) = sessions.get(t.slot) {
                if slot.gen == t.gen && !slot.outbox.push(out.clone()) {
                    refused += 1;
                }
            }
        }
        if refused > 0 {
            let c = &self.counters.outbox_refused;
            c.set(c.get() + refused);
        }
    }

    /// Delivers a different item to each session, grouped into one mesh message per shard.
    pub(crate) fn deliver_each(&self, items: Vec<(SessionRef, Outbound<S::Event>)>) {
        let mut remote: Vec<Vec<(SessionRef, Outbound<S::Event>)>> = Vec::new();
        for (t, out) in items {
            if t.shard == self.id {
                self.deliver_local(t, out);
            } else {
                if remote.len() <= t.shard {
                    remote.resize_with(t.shard + 1, Vec::new);
                }
                remote[t.shard].push((t, out));
            }
        }
        for (shard, items) in remote.into_iter().enumerate() {
            if !items.is_empty() {
                self.send_or_count(shard, MeshMsg::DeliverEach(items));
            }
        }
    }

    /// A delivery nobody can be told about when it bounces: the frames are lost for those
    /// sessions, exactly as if their own outboxes had been full; it is counted and logged.
    fn send_or_count(&self, to: usize, msg: Msg<S>) {
        if self.send_remote(to, msg).is_err() {
            self.count_bounce(to);
        }
    }

    fn count_bounce(&self, to: usize) {
        let n = self.counters.bounced.get() + 1;
        self.counters.bounced.set(n);
        if n.is_power_of_two() {
            tracing::warn!(
                from = self.id,
                to,
                bounced = n,
                "mesh backlog full; peer is not keeping up"
            );
        }
    }

    /// Queues a message for a peer. Refused (and handed back) when the peer's backlog is full —
    /// except answers, which are never refused: there is at most one per outstanding request, and
    /// losing one would leave its requester waiting forever.
    fn send_remote(&self, to: usize, msg: Msg<S>) -> Result<(), Option<Msg<S>>> {
        let Some(Some(link)) = self.links.get(to) else {
            tracing::error!(
                shard = self.id,
                to,
                "message for a shard that does not exist"
            );
            return Err(Some(msg));
        };
        let is_answer = matches!(msg, MeshMsg::Reply { .. });
        match link {
            Link::Mesh { tx, backlog } => {
                if backlog.get() >= MESH_BACKLOG && !is_answer {
                    return Err(Some(msg));
                }
                backlog.set(backlog.get() + 1);
                tx.try_send(msg).map_err(|e| {
                    backlog.set(backlog.get() - 1);
                    // The pump channel is unbounded and closes only at shutdown; glommio hands
                    // the message back inside the error.
                    match e {
                        glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(m))
                        | glommio::GlommioError::Closed(glommio::ResourceType::Channel(m)) => {
                            Some(m)
                        }
                        _ => None,
                    }
                })
            }
            Link::Sim(net) => {
                let mut queued = net.queued.borrow_mut();
                let n = queued.entry((self.id, to)).or_insert(0);
                if *n >= MESH_BACKLOG && !is_answer {
                    return Err(Some(msg));
                }
                *n += 1;
                net.queue.borrow_mut().push_back((self.id, to, msg));
                Ok(())
            }
        }
    }

    fn take_waiter(&self, to: ReplyTo) -> Option<Waiter> {
        let mut waiters = self.waiters.borrow_mut();
        if waiters.get(to.slot).is_some_and(|(gen, _)| *gen == to.gen) {
            Some(waiters.remove(to.slot).1)
        } else {
            None
        }
    }

    fn add_waiter(&self, w: Waiter) -> ReplyTo {
        let gen = self.next_gen.get() + 1;
        self.next_gen.set(gen);
        let slot = self.waiters.borrow_mut().insert((gen, w));
        ReplyTo {
            shard: self.id,
            slot,
            gen,
        }
    }

    /// Messages queued for peer shards and not yet taken by their mesh channels.
    pub(crate) fn backlog(&self) -> usize {
        self.links
            .iter()
            .map(|l| match l {
                Some(Link::Mesh { backlog, .. }) => backlog.get(),
                _ => 0,
            })
            .sum()
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// The error a requester sees when the owner of its request is overloaded.
pub(crate) fn overloaded() -> ApiError {
    ApiError::new(
        503,
        code::OVERLOADED,
        "The server is overloaded; try again shortly.",
    )
}

/// Sends a command to another shard (never handled in place, so it may be called while the
/// sender's own state is borrowed). A command the peer cannot take, or one addressed to this
/// shard, is handed back.
pub(crate) fn route_remote<S: Service>(s: &S, to: usize, cmd: S::Cmd) -> Result<(), S::Cmd> {
    let rt = s.runtime();
    if to == rt.id {
        return Err(cmd);
    }
    match rt.send_remote(to, MeshMsg::Cmd(cmd)) {
        Ok(()) => Ok(()),
        Err(back) => {
            rt.count_bounce(to);
            match back {
                Some(MeshMsg::Cmd(cmd)) => Err(cmd),
                // Gone with a closing channel (shutdown): nothing left to hand back.
                _ => Ok(()),
            }
        }
    }
}

/// Sends a command to the shard that owns its subject; a command for this shard is handled in
/// place. A command the peer cannot take is handed back.
pub(crate) fn route<S: Service>(s: &Rc<S>, to: usize, cmd: S::Cmd) -> Result<(), S::Cmd> {
    if to == s.runtime().id {
        panic::shared(|| s.on_command(cmd));
        return Ok(());
    }
    route_remote(&**s, to, cmd)
}

/// Sends a command that carries a [`ReplyTo`] and waits for its answer. A bounced command
/// answers `overloaded` at once.
pub(crate) async fn request<S: Service>(
    s: &Rc<S>,
    to: usize,
    make: impl FnOnce(ReplyTo) -> S::Cmd,
) -> Answer {
    let (tx, rx) = oneshot::channel();
    let rt = s.runtime();
    let at = rt.add_waiter(Waiter::Task(tx));
    if route(s, to, make(at)).is_err() {
        drop(rt.take_waiter(at));
        return Err(overloaded());
    }
    rx.await.unwrap_or_else(|_| {
        Err(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "The owner of this request went away.",
        ))
    })
}

/// Answers a request, wherever its waiter is.
pub(crate) fn answer<S: Service>(s: &Rc<S>, to: ReplyTo, answer: Answer) {
    let rt = s.runtime();
    if to.is_nobody() {
        return;
    }
    if to.shard == rt.id {
        fire(rt, to, answer);
    } else if rt
        .send_remote(to.shard, MeshMsg::Reply { to, answer })
        .is_err()
    {
        tracing::error!(shard = rt.id, to = to.shard, "an answer could not be sent");
    }
}

fn fire<S: Service>(rt: &Runtime<S>, to: ReplyTo, answer: Answer) {
    match rt.take_waiter(to) {
        Some(Waiter::Task(tx)) => {
            let _ = tx.send(answer);
        }
        None => rt
            .counters
            .stale_answers
            .set(rt.counters.stale_answers.get() + 1),
    }
}

/// Handles one message that arrived over the mesh.
pub(crate) fn handle<S: Service>(s: &Rc<S>, msg: Msg<S>) {
    let rt = s.runtime();
    match msg {
        MeshMsg::Deliver { targets, out } => rt.deliver_local_all(&targets, &out),
        MeshMsg::DeliverEach(items) => {
            for (t, out) in items {
                rt.deliver_local(t, out);
            }
        }
        MeshMsg::Cmd(cmd) => panic::shared(|| s.on_command(cmd)),
        MeshMsg::Reply { to, answer } => fire(rt, to, answer),
    }
}

/// Fires every timer due at `now`. Timers armed while firing that are already due fire too.
pub(crate) fn fire_timers<S: Service>(s: &Rc<S>, now: Instant) -> usize {
    let mut fired = 0;
    loop {
        let due = s.runtime().timers.borrow_mut().pop_due(now);
        match due {
            Some(key) => {
                fired += 1;
                panic::shared(|| s.on_timer(key));
            }
            None => return fired,
        }
    }
}

/// glommio plumbing: a pump task per peer, so a send from a handler never awaits. Returns the
/// local ends the runtime sends into.
pub(crate) fn glommio_links<M: Send + 'static>(
    id: usize,
    senders: Rc<Senders<M>>,
) -> Vec<Option<Pump<M>>> {
    let mut links = Vec::new();
    for peer in 0..senders.nr_consumers() {
        if peer == id {
            links.push(None);
            continue;
        }
        // Unbounded as a channel; bounded by the backlog counter the runtime checks before
        // every send (MESH_BACKLOG).
        let (tx, rx) = local_channel::new_unbounded::<M>();
        let backlog = Rc::new(Cell::new(0usize));
        links.push(Some((tx, backlog.clone())));
        glommio::spawn_local(pump(senders.clone(), peer, rx, backlog)).detach();
    }
    links
}

async fn pump<M: Send + 'static>(
    senders: Rc<Senders<M>>,
    peer: usize,
    rx: LocalReceiver<M>,
    backlog: Rc<Cell<usize>>,
) {
    while let Some(msg) = rx.recv().await {
        backlog.set(backlog.get().saturating_sub(1));
        if senders.send_to(peer, msg).await.is_err() {
            tracing::debug!(peer, "mesh peer gone");
            break;
        }
    }
}

/// glommio drivers: one task per incoming mesh stream and the timer task.
pub(crate) fn glommio_drivers<S: Service>(s: &Rc<S>, mut receivers: Receivers<Msg<S>>)
where
    Msg<S>: Send,
{
    for (_, rx) in receivers.streams() {
        let s = s.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                handle(&s, msg);
            }
        })
        .detach();
    }
    glommio::spawn_local(drive_timers(s.clone())).detach();
}

/// Sleeps until the earliest deadline (or until an earlier one is armed), then fires what is due.
async fn drive_timers<S: Service>(s: Rc<S>) {
    use futures::FutureExt;
    loop {
        let next = s.runtime().next_deadline();
        {
            let poked = s.runtime().poke.wait().fuse();
            futures::pin_mut!(poked);
            match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        // Behind: work came due while the last pass ran (a time-sliced
                        // callback's next slice, or more work than the core can do). The
                        // shard's sockets and mesh go first: the task queue yields, and the
                        // executor polls the reactor (at least every preemption period, see
                        // `node::PREEMPT`). Without this a shard that cannot keep up loops
                        // here and its sockets starve.
                        glommio::executor().yield_task_queue_now().await;
                    } else {
                        let timer = glommio::timer::sleep(wait).fuse();
                        futures::pin_mut!(timer);
                        futures::select_biased! {
                            () = timer => {},
                            () = poked => {},
                        }
                    }
                }
                None => poked.await,
            }
        }
        fire_timers(&s, Instant::now());
    }
}
