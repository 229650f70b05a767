//! The client machinery every scenario shares: worker threads (one tokio current-thread
//! runtime each, pinned to the client's cores) that own the sockets, per-thread histograms and
//! counters that the coordinator collects once a second, and opening an authenticated
//! connection.
//!
//! Sockets never move between threads and the hot path touches no lock: a worker records into
//! its own histograms and folds them into the shared interval histograms every
//! [`FOLD_EVERY`]. Counters are per-worker atomics on their own cache lines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::auth::{Accounts, Player};
use crate::conn::{Conn, QuicPlan, Wire};
use crate::proto;
use crate::ws::{Endpoint, WsError};

/// How often a worker folds its histograms into the shared interval set; well under the
/// one-second progress period so the live p99 is current.
const FOLD_EVERY: Duration = Duration::from_millis(200);
/// Period of the client lag probe.
const LAG_PROBE_EVERY: Duration = Duration::from_millis(10);

/// Latency distributions the scenarios record, all in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Reply time of one message, measured from when it was written.
    Rtt = 0,
    /// Reply time measured from when the message was scheduled (open-loop, no
    /// coordinated omission).
    RttScheduled,
    /// asobi's per-connection figure: a connection's blast elapsed ÷ its messages.
    ConnRtt,
    /// TCP connect + WebSocket handshake + `session.connect` round trip.
    Connect,
    /// `match.input` sent → first `match.state` showing it processed.
    InputToState,
    /// |inter-arrival of `match.state` − tick period|.
    TickJitter,
    /// `matchmaker.add` → `match.matched`.
    Matchmaking,
    /// File saved → first `match.state` carrying the new rules version.
    Reload,
    /// How late a client worker's 10 ms probe timer fires: the client's own scheduling delay.
    /// Small values while latencies are large show the delay is not in the client.
    ClientLag,
}

/// Number of [`Metric`] variants.
pub const METRICS: usize = 9;

/// Counted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Connections opened and authenticated.
    Opened = 0,
    /// Connections that failed to open or authenticate.
    Failed,
    /// Open connections that later broke (closed by the server, reset, protocol error).
    Dropped,
    /// Connections that finished their scenario work.
    Finished,
    /// Frames sent.
    Out,
    /// Frames received.
    In,
    /// Replies that never came.
    Lost,
    /// `error` frames received.
    Errors,
    /// Tokens renewed because the server rejected a cached one.
    Reauth,
    /// Wire bytes written (see [`crate::conn`] for what is counted).
    BytesOut,
    /// Wire bytes read.
    BytesIn,
}

const COUNTERS: usize = 11;

/// A set of latency histograms, one per [`Metric`].
#[derive(Clone)]
pub struct Hists(pub [Histogram<u64>; METRICS]);

impl Hists {
    /// Empty, auto-resizing histograms with 3 significant figures.
    pub fn new() -> Hists {
        Hists(std::array::from_fn(|_| {
            let mut h = Histogram::new(3).expect("3 significant figures is valid");
            h.auto(true);
            h
        }))
    }

    /// Adds every histogram of `other` into this set.
    pub fn add(&mut self, other: &Hists) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            let _ = a.add(b);
        }
    }

    /// Histogram of one metric.
    pub fn get(&self, m: Metric) -> &Histogram<u64> {
        &self.0[m as usize]
    }

    fn reset(&mut self) {
        for h in &mut self.0 {
            h.reset();
        }
    }
}

impl Default for Hists {
    fn default() -> Self {
        Hists::new()
    }
}

/// One worker's counters, padded to a cache line pair so workers never share a line.
#[repr(align(128))]
pub struct CounterBlock([AtomicU64; COUNTERS]);

/// How sockets authenticate.
#[derive(Clone)]
pub enum AuthMode {
    /// No `session.connect` at all (`--no-auth`).
    None,
    /// `session.connect` with a placeholder token, for the baseline, which accepts anything.
    Placeholder,
    /// Real players; socket `i` uses player `i % players`.
    Players(Arc<PlayerSet>),
}

/// Players shared by all workers, with renewed tokens replacing rejected ones.
pub struct PlayerSet {
    /// Current players (index = player number).
    pub players: Mutex<Vec<Player>>,
    /// REST client used to renew tokens.
    pub accounts: Arc<Accounts>,
    /// Registrations in flight when the set grows.
    pub concurrency: usize,
}

impl PlayerSet {
    /// Makes sure at least `n` players are ready (blocking: registers over REST).
    pub fn grow(&self, n: usize) -> anyhow::Result<()> {
        let have = self.players.lock().unwrap_or_else(|e| e.into_inner()).len();
        if have >= n {
            return Ok(());
        }
        let all = self.accounts.ensure(n, self.concurrency)?;
        *self.players.lock().unwrap_or_else(|e| e.into_inner()) = all;
        Ok(())
    }
}

/// Grows the player set (if players are used) to `n` without blocking the coordinator.
pub async fn ensure_players(auth: &AuthMode, n: usize) -> anyhow::Result<()> {
    if let AuthMode::Players(set) = auth {
        let set = set.clone();
        tokio::task::spawn_blocking(move || set.grow(n)).await??;
    }
    Ok(())
}

/// Everything a worker needs to open connections; immutable once the run starts.
pub struct Plan {
    /// Server endpoint.
    pub ep: Endpoint,
    /// Source addresses to spread sockets over (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// Authentication.
    pub auth: AuthMode,
    /// Time allowed for connect + handshake + session.connect.
    pub connect_timeout: Duration,
    /// Wire encoding.
    pub wire: Wire,
    /// QUIC instead of WebSocket when set.
    pub quic: Option<QuicPlan>,
}

/// State shared between the coordinator and the workers.
pub struct Shared {
    /// Connection plan.
    pub plan: Plan,
    counters: Vec<CounterBlock>,
    interval: Mutex<Hists>,
    errors: Mutex<HashMap<String, u64>>,
    /// Scenario phase, advanced by the coordinator (scenario-defined values).
    pub phase: watch::Sender<u32>,
}

impl Shared {
    /// Shared state for `workers` worker threads.
    pub fn new(plan: Plan, workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            plan,
            counters: (0..workers)
                .map(|_| CounterBlock(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            interval: Mutex::new(Hists::new()),
            errors: Mutex::new(HashMap::new()),
            phase: watch::channel(0).0,
        })
    }

    /// Sum of a counter over all workers.
    pub fn count(&self, c: Counter) -> u64 {
        self.counters
            .iter()
            .map(|b| b.0[c as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Takes the histograms recorded since the last call.
    pub fn take_interval(&self) -> Hists {
        let mut g = self.interval.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *g)
    }

    /// Records one occurrence of an error kind (kept as a count per distinct text).
    pub fn note_error(&self, kind: String) {
        let mut g = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() < 64 || g.contains_key(&kind) {
            *g.entry(kind).or_insert(0) += 1;
        }
    }

    /// Error kinds seen, most frequent first.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let g = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = g.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// Sets the scenario phase.
    pub fn set_phase(&self, p: u32) {
        self.phase.send_replace(p);
    }
}

/// The per-thread side of a worker, handed to every job.
pub struct Worker {
    /// Worker number.
    pub id: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    hists: RefCell<Hists>,
}

impl Worker {
    /// Records a latency in microseconds.
    pub fn record(&self, m: Metric, us: u64) {
        let _ = self.hists.borrow_mut().0[m as usize].record(us.max(1));
    }

    /// Records a duration.
    pub fn record_dur(&self, m: Metric, d: Duration) {
        self.record(m, d.as_micros() as u64);
    }

    /// Adds to a counter.
    pub fn add(&self, c: Counter, n: u64) {
        if n > 0 {
            self.shared.counters[self.id].0[c as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn fold(&self) {
        let (out, inn) = crate::conn::take_wire_bytes();
        self.add(Counter::BytesOut, out);
        self.add(Counter::BytesIn, inn);
        let mut local = self.hists.borrow_mut();
        let mut g = self
            .shared
            .interval
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        g.add(&local);
        drop(g);
        local.reset();
    }

    /// Waits until the phase reaches at least `p`.
    pub async fn wait_phase(&self, p: u32) {
        let mut rx = self.shared.phase.subscribe();
        let _ = rx.wait_for(|v| *v >= p).await;
    }

    /// True once the phase reached at least `p`.
    pub fn phase_at_least(&self, p: u32) -> bool {
        *self.shared.phase.borrow() >= p
    }
}

/// Work sent to a worker thread; it runs on that thread and usually spawns a local task.
pub type Job = Box<dyn FnOnce(Rc<Worker>) + Send>;

/// The client's worker threads.
pub struct Pool {
    txs: Vec<mpsc::UnboundedSender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts one worker per entry of `cores` (each pinned to that core; `None` = unpinned).
    pub fn start(shared: &Arc<Shared>, cores: &[Option<usize>]) -> anyhow::Result<Pool> {
        let mut txs = Vec::new();
        let mut threads = Vec::new();
        for (id, core) in cores.iter().copied().enumerate() {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let shared = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("client-{id}"))
                .spawn(move || {
                    if let Some(c) = core {
                        if let Err(e) = crate::sys::pin_current_thread(&[c]) {
                            eprintln!("warning: cannot pin client worker to core {c}: {e}");
                        }
                    }
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            eprintln!("client worker {id}: {e}");
                            return;
                        }
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let w = Rc::new(Worker {
                            id,
                            shared,
                            hists: RefCell::new(Hists::new()),
                        });
                        let folder = w.clone();
                        tokio::task::spawn_local(async move {
                            let mut t = tokio::time::interval(FOLD_EVERY);
                            loop {
                                t.tick().await;
                                folder.fold();
                            }
                        });
                        let prober = w.clone();
                        tokio::task::spawn_local(async move {
                            // tokio's timer has 1 ms resolution; lateness beyond that is time
                            // this thread was busy with other sockets (or not scheduled).
                            loop {
                                let due = Instant::now() + LAG_PROBE_EVERY;
                                tokio::time::sleep_until(due).await;
                                prober.record_dur(
                                    Metric::ClientLag,
                                    Instant::now().saturating_duration_since(due),
                                );
                            }
                        });
                        while let Some(job) = rx.recv().await {
                            job(w.clone());
                        }
                        w.fold();
                    });
                })?;
            txs.push(tx);
            threads.push(t);
        }
        Ok(Pool { txs, threads })
    }

    /// Runs `job` on the worker that owns connection `idx` (round robin).
    pub fn submit(&self, idx: usize, job: Job) {
        let _ = self.txs[idx % self.txs.len()].send(job);
    }

    /// Makes every worker fold its histograms into the shared interval now.
    pub async fn fold(&self) {
        let mut waits = Vec::new();
        for tx in &self.txs {
            let (done_tx, done_rx) = oneshot::channel();
            let _ = tx.send(Box::new(move |w: Rc<Worker>| {
                w.fold();
                let _ = done_tx.send(());
            }));
            waits.push(done_rx);
        }
        for w in waits {
            let _ = w.await;
        }
    }

    /// Stops the workers, dropping (and so closing) every socket they own.
    pub fn stop(self) {
        drop(self.txs);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// An open, authenticated connection.
pub struct Session {
    /// The connection.
    pub conn: Conn,
    /// Player id the server reported in `session.connected` (empty without auth).
    pub player_id: String,
}

/// Source addresses for `n` loopback sockets: 127.0.0.1 … 127.0.0.n, or nothing when the
/// server is not on loopback (the kernel then chooses).
pub fn loopback_sources(ep: &Endpoint, n: usize) -> Vec<IpAddr> {
    if !ep.addr.ip().is_loopback() || !ep.addr.is_ipv4() || n == 0 {
        return Vec::new();
    }
    (1..=n.min(254))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
        .collect()
}

/// Opens connection `idx`: TCP from its source address, WebSocket handshake and
/// `session.connect`. Counts it as opened or failed and records the connect time.
pub async fn open(w: &Worker, idx: usize) -> Option<Session> {
    let started = Instant::now();
    let plan = &w.shared.plan;
    match tokio::time::timeout(plan.connect_timeout, open_inner(w, idx)).await {
        Ok(Ok(s)) => {
            w.record_dur(Metric::Connect, started.elapsed());
            w.add(Counter::Opened, 1);
            Some(s)
        }
        Ok(Err(e)) => {
            w.shared.note_error(format!("open: {e}"));
            w.add(Counter::Failed, 1);
            None
        }
        Err(_) => {
            w.shared.note_error("open: timed out".into());
            w.add(Counter::Failed, 1);
            None
        }
    }
}

async fn open_inner(w: &Worker, idx: usize) -> anyhow::Result<Session> {
    let plan = &w.shared.plan;
    let src = (!plan.sources.is_empty()).then(|| plan.sources[idx % plan.sources.len()]);
    let seed = (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut conn = Conn::connect(&plan.ep, plan.quic.as_ref(), plan.wire, src, seed).await?;
    let token = match &plan.auth {
        AuthMode::None => {
            return Ok(Session {
                conn,
                player_id: String::new(),
            })
        }
        AuthMode::Placeholder => "loadtest-placeholder".to_string(),
        AuthMode::Players(set) => {
            let g = set.players.lock().unwrap_or_else(|e| e.into_inner());
            g[idx % g.len()].access_token.clone()
        }
    };
    match session_connect(&mut conn, &token).await? {
        Ok(pid) => Ok(Session {
            conn,
            player_id: pid,
        }),
        Err(code) => {
            let AuthMode::Players(set) = &plan.auth else {
                anyhow::bail!("session.connect refused: {code}");
            };
            // The server no longer accepts the cached token (restart with a new key, expiry):
            // renew it once and retry on a fresh socket.
            let n = set.players.lock().unwrap_or_else(|e| e.into_inner()).len();
            let pidx = idx % n;
            let accounts = set.accounts.clone();
            let fresh =
                tokio::task::spawn_blocking(move || accounts.reauthenticate(pidx)).await??;
            w.add(Counter::Reauth, 1);
            let token = fresh.access_token.clone();
            set.players.lock().unwrap_or_else(|e| e.into_inner())[pidx] = fresh;
            drop(conn);
            let mut conn =
                Conn::connect(&plan.ep, plan.quic.as_ref(), plan.wire, src, seed ^ 1).await?;
            match session_connect(&mut conn, &token).await? {
                Ok(pid) => Ok(Session {
                    conn,
                    player_id: pid,
                }),
                Err(code) => anyhow::bail!("session.connect refused after re-login: {code}"),
            }
        }
    }
}

/// Sends `session.connect` and waits for its reply: `Ok(player_id)` or `Err(error code)`.
async fn session_connect(conn: &mut Conn, token: &str) -> Result<Result<String, String>, WsError> {
    let mut buf = Vec::with_capacity(token.len() + 80);
    let wire = (conn.wire() == Wire::Binary).then_some("binary");
    proto::session_connect_wire(&mut buf, 1, token, wire);
    conn.queue_text(&buf);
    let mut outcome: Option<Result<String, String>> = None;
    while outcome.is_none() {
        conn.pump(None, |msg| {
            let Some(env) = proto::scan(msg) else { return };
            if env.cid_u64() != Some(1) || outcome.is_some() {
                return;
            }
            if env.is("session.connected") {
                let pid = env
                    .payload
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|v| {
                        v.get("player_id")
                            .and_then(|x| x.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                outcome = Some(Ok(pid));
            } else {
                outcome = Some(Err(proto::error_code(env.payload)));
            }
        })
        .await?;
    }
    Ok(outcome.unwrap_or_else(|| Err("no reply".into())))
}

/// Records why an open connection broke.
pub fn note_drop(w: &Worker, e: &WsError) {
    w.add(Counter::Dropped, 1);
    w.shared.note_error(format!("dropped: {e}"));
}
