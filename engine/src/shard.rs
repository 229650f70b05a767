//! One shard: a glommio executor pinned to a core, owning its listener, its sessions, the
//! matches placed on it and the matchmaker queues of the modes that hash to it.
//!
//! The shard is the router (STYLE.md: routing apart from per-item logic): [`Shard::route`] decides
//! where a message goes — handled in place when it is for this shard, pushed onto the mesh
//! otherwise — and the match, queue and session modules decide what it means. All handlers are
//! synchronous, so a local message is a plain call and no `RefCell` borrow ever spans an await.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpListener;
use slab::Slab;

use asobi_script::{Game, VmPool};

use crate::live::{self, LiveMatch};
use crate::matchmaker::ModeQueue;
use crate::mesh::{MeshMsg, Outbound, SessionRef};
use crate::outbox::Outbox;
use crate::server::Global;

/// Messages one shard may have in flight to one peer before mesh sends start failing. The mesh
/// channel itself holds [`MESH_CHANNEL`]; this backlog absorbs bursts (a big match finishing, a
/// matchmaker tick forming hundreds of matches) without blocking the sender.
const MESH_BACKLOG: usize = 1 << 16;
/// Capacity of each mesh channel between two shards.
pub(crate) const MESH_CHANNEL: usize = 4096;

/// One connected WebSocket session, as the rest of the shard sees it.
pub(crate) struct SessionSlot {
    pub(crate) outbox: Rc<Outbox>,
    pub(crate) gen: u64,
    pub(crate) player_id: Option<String>,
}

struct MeshPump {
    tx: LocalSender<MeshMsg>,
    backlog: Rc<Cell<usize>>,
}

pub(crate) struct Shard {
    pub(crate) id: usize,
    pub(crate) global: Arc<Global>,
    pumps: Vec<Option<MeshPump>>,
    pub(crate) sessions: RefCell<Slab<SessionSlot>>,
    next_gen: Cell<u64>,
    pub(crate) matches: RefCell<HashMap<String, Rc<RefCell<LiveMatch>>>>,
    pub(crate) queues: RefCell<HashMap<String, ModeQueue>>,
    pub(crate) pool: RefCell<VmPool>,
    pub(crate) game: RefCell<Arc<Game>>,
    pub(crate) shutting_down: Cell<bool>,
    pub(crate) inflight: Cell<usize>,
    connect_rate: RefCell<(u64, HashMap<IpAddr, u32>)>,
}

impl Shard {
    pub(crate) fn nshards(&self) -> usize {
        self.pumps.len()
    }

    /// Sends a message to a shard; a message for this shard is handled in place.
    pub(crate) fn route(self: &Rc<Self>, shard: usize, msg: MeshMsg) {
        if shard == self.id {
            self.handle(msg);
            return;
        }
        let Some(Some(pump)) = self.pumps.get(shard) else {
            tracing::error!(shard, "message for a shard that does not exist");
            return;
        };
        if pump.backlog.get() >= MESH_BACKLOG {
            tracing::warn!(
                from = self.id,
                to = shard,
                "mesh backlog full; message dropped"
            );
            return;
        }
        pump.backlog.set(pump.backlog.get() + 1);
        if pump.tx.try_send(msg).is_err() {
            pump.backlog.set(pump.backlog.get() - 1);
            tracing::warn!(
                from = self.id,
                to = shard,
                "mesh pump closed; message dropped"
            );
        }
    }

    /// Handles one message addressed to this shard.
    pub(crate) fn handle(self: &Rc<Self>, msg: MeshMsg) {
        match msg {
            MeshMsg::Deliver { targets, out } => {
                for t in targets {
                    self.deliver_local(t, out.clone());
                }
            }
            MeshMsg::DeliverEach(items) => {
                for (t, out) in items {
                    self.deliver_local(t, out);
                }
            }
            MeshMsg::Queue(cmd) => crate::queues::handle(self, cmd),
            MeshMsg::Match(cmd) => live::handle(self, cmd),
        }
    }

    /// Delivers to one session wherever it lives.
    pub(crate) fn deliver(self: &Rc<Self>, to: SessionRef, out: Outbound) {
        if to.shard == self.id {
            self.deliver_local(to, out);
        } else {
            self.route(
                to.shard,
                MeshMsg::Deliver {
                    targets: vec![to],
                    out,
                },
            );
        }
    }

    /// Delivers the same item to many sessions: one mesh message per remote shard, and the frame
    /// itself shared by reference between every recipient.
    pub(crate) fn deliver_all(self: &Rc<Self>, targets: &[SessionRef], out: &Outbound) {
        let mut remote: Vec<Vec<SessionRef>> = Vec::new();
        for &t in targets {
            if t.shard == self.id {
                self.deliver_local(t, out.clone());
            } else {
                if remote.len() <= t.shard {
                    remote.resize_with(t.shard + 1, Vec::new);
                }
                remote[t.shard].push(t);
            }
        }
        for (shard, targets) in remote.into_iter().enumerate() {
            if !targets.is_empty() {
                self.route(
                    shard,
                    MeshMsg::Deliver {
                        targets,
                        out: out.clone(),
                    },
                );
            }
        }
    }

    /// Delivers a different item to each session, grouped into one mesh message per shard.
    pub(crate) fn deliver_each(self: &Rc<Self>, items: Vec<(SessionRef, Outbound)>) {
        let mut remote: Vec<Vec<(SessionRef, Outbound)>> = Vec::new();
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
                self.route(shard, MeshMsg::DeliverEach(items));
            }
        }
    }

    fn deliver_local(&self, to: SessionRef, out: Outbound) {
        let sessions = self.sessions.borrow();
        if let Some(slot) = sessions.get(to.slot) {
            if slot.gen == to.gen {
                slot.outbox.push(out);
            }
        }
    }

    /// Registers a new session; returns its address.
    pub(crate) fn add_session(&self, outbox: Rc<Outbox>) -> SessionRef {
        let gen = self.next_gen.get() + 1;
        self.next_gen.set(gen);
        let slot = self.sessions.borrow_mut().insert(SessionSlot {
            outbox,
            gen,
            player_id: None,
        });
        self.global.directory.add_session(self.id, 1);
        SessionRef {
            shard: self.id,
            slot,
            gen,
        }
    }

    pub(crate) fn remove_session(&self, at: SessionRef) {
        let mut sessions = self.sessions.borrow_mut();
        if sessions.get(at.slot).is_some_and(|s| s.gen == at.gen) {
            sessions.remove(at.slot);
            self.global.directory.add_session(self.id, -1);
        }
    }

    /// The shard that owns the matchmaker queue of a mode.
    pub(crate) fn queue_shard(&self, mode: &str) -> usize {
        // FNV-1a: stable across runs and shards, which is all placement needs.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in mode.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        (h % self.nshards() as u64) as usize
    }

    /// Per-IP WebSocket connect rate, counted per second on this shard.
    pub(crate) fn allow_connect(&self, ip: IpAddr) -> bool {
        let limit = self.global.cfg.ws_connect_rate;
        if limit == 0 {
            return true;
        }
        let second = self.global.started.elapsed().as_secs();
        let mut rate = self.connect_rate.borrow_mut();
        if rate.0 != second {
            rate.0 = second;
            rate.1.clear();
        }
        let n = rate.1.entry(ip).or_insert(0);
        *n += 1;
        *n <= limit
    }

    /// Sends every session a close frame (server going away).
    fn close_all_sessions(&self) {
        for (_, s) in self.sessions.borrow().iter() {
            s.outbox.push(Outbound::Close {
                code: 1001,
                reason: "server_shutting_down".into(),
            });
        }
    }
}

/// Runs one shard until shutdown. `ready` reports the bind result to the main thread.
pub(crate) async fn run(
    id: usize,
    global: Arc<Global>,
    mesh: glommio::channels::channel_mesh::FullMesh<MeshMsg>,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
    quic: Option<futures::channel::mpsc::UnboundedReceiver<crate::quic::QuicConn>>,
) {
    let (senders, mut receivers) = match mesh.join().await {
        Ok(pair) => pair,
        Err(_) => {
            let _ = ready.send(Err(format!("shard {id} could not join the mesh")));
            return;
        }
    };
    let senders = Rc::new(senders);
    let mut pumps = Vec::new();
    for peer in 0..senders.nr_consumers() {
        if peer == id {
            pumps.push(None);
            continue;
        }
        let (tx, rx) = local_channel::new_unbounded::<MeshMsg>();
        let backlog = Rc::new(Cell::new(0usize));
        pumps.push(Some(MeshPump {
            tx,
            backlog: backlog.clone(),
        }));
        glommio::spawn_local(pump(senders.clone(), peer, rx, backlog)).detach();
    }

    let game = global.game.borrow().clone();
    let pool = match VmPool::new(global.budgets.clone(), POOL_PREWARM) {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: Lua VM pool: {e}")));
            return;
        }
    };
    let shard = Rc::new(Shard {
        id,
        global: global.clone(),
        pumps,
        sessions: RefCell::new(Slab::new()),
        next_gen: Cell::new(0),
        matches: RefCell::new(HashMap::new()),
        queues: RefCell::new(HashMap::new()),
        pool: RefCell::new(pool),
        game: RefCell::new(game),
        shutting_down: Cell::new(false),
        inflight: Cell::new(0),
        connect_rate: RefCell::new((0, HashMap::new())),
    });

    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                shard.handle(msg);
            }
        })
        .detach();
    }

    let addr = SocketAddr::new(global.cfg.bind, global.port);
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: binding {addr}: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(listener.local_addr().unwrap_or(addr)));

    if let Some(mut quic) = quic {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            use futures::StreamExt;
            while let Some(conn) = quic.next().await {
                if shard.shutting_down.get() {
                    continue;
                }
                let peer = conn.peer;
                let transport = crate::quic::QuicTransport::new(conn);
                glommio::spawn_local(crate::session::run(shard.clone(), transport, peer)).detach();
            }
        })
        .detach();
    }
    glommio::spawn_local(crate::queues::ticker(shard.clone())).detach();
    glommio::spawn_local(watch_game(shard.clone())).detach();

    let mut shutdown = global.shutdown.clone();
    let accept_loop = {
        let shard = shard.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let peer = stream
                            .peer_addr()
                            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                        let _ = stream.set_nodelay(true);
                        let shard = shard.clone();
                        match shard.global.tls.clone() {
                            None => {
                                glommio::spawn_local(crate::conn::serve(shard, stream, peer))
                                    .detach();
                            }
                            Some(acceptor) => {
                                glommio::spawn_local(async move {
                                    if let Some(tls) = crate::tls::accept(&acceptor, stream).await {
                                        crate::conn::serve(shard, tls, peer).await;
                                    }
                                })
                                .detach();
                            }
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(shard = shard.id, "accept failed: {e}");
                        glommio::timer::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    };
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    futures::pin_mut!(accept_loop, stop);
    futures::future::select(accept_loop, stop).await;

    // Stop accepting (the listener is dropped with the accept loop), let in-flight requests
    // finish, tell every client, and give sockets a moment to flush their close frames.
    shard.shutting_down.set(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shard.inflight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    shard.close_all_sessions();
    while !shard.sessions.borrow().is_empty() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    live::finish_all_for_shutdown(&shard);
    senders.close();
    tracing::debug!(shard = id, "shard stopped");
}

/// VMs created before the first match, so the first matches do not pay for the sandbox setup.
const POOL_PREWARM: usize = 4;
/// How long shutdown waits for in-flight requests and closing sockets.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn pump(
    senders: Rc<Senders<MeshMsg>>,
    peer: usize,
    rx: glommio::channels::local_channel::LocalReceiver<MeshMsg>,
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

/// Applies each newly compiled game: live matches reload in place between callbacks, queues
/// pick up new mode settings, new matches use the new code.
async fn watch_game(shard: Rc<Shard>) {
    let mut rx = shard.global.game.clone();
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        let game = rx.borrow_and_update().clone();
        *shard.game.borrow_mut() = game.clone();
        live::reload_all(&shard, &game);
        crate::queues::reconfigure(&shard, &game);
    }
}
