//! `StoreHandle`, the only way shards reach the database, and the bridge thread behind it.
//!
//! Shards run on glommio executors with no tokio runtime, so a call never touches tokio's
//! reactor on the caller's thread: it pushes a boxed job into a bounded tokio mpsc channel (whose
//! sender works from any executor) and awaits a `futures` oneshot reply. The "asobi-storage"
//! thread runs a current-thread tokio runtime that owns the backend and runs each job as a task.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::{self, Backend};
use crate::model::wall_clock_ms;
use crate::{
    GuestDevice, MatchQuery, MatchRecord, NewPlayer, NewRefreshToken, Player, PlayerPatch,
    RotateOutcome, StoreConfig, StoreError,
};

/// Requests queued for the bridge before callers start waiting at `send`. Large enough to absorb
/// a login burst from every shard at once (a few hundred requests), small enough that a stalled
/// database pushes back on shards within milliseconds instead of buffering unbounded work.
pub const REQUEST_QUEUE_CAPACITY: usize = 1024;

/// Jobs the bridge runs concurrently. PostgreSQL work beyond the pool size just waits for a
/// connection and SQLite work is serialised on its own thread, so this only bounds memory held
/// by accepted-but-waiting jobs; the rest stay in the queue, where backpressure reaches callers.
const MAX_IN_FLIGHT: usize = 256;

type Job = Box<dyn FnOnce(Arc<dyn Backend>) -> BoxFuture<'static, ()> + Send>;

thread_local! {
    /// True on the bridge thread and its blocking pool, where `shutdown` must not join itself.
    static ON_BRIDGE: Cell<bool> = const { Cell::new(false) };
}

/// Handle to the storage bridge. Cheap to clone, `Send + Sync + 'static`; every async method is
/// runtime-agnostic and may be awaited from glommio, tokio or `futures::executor`.
///
/// Once the bridge is gone (after [`StoreHandle::shutdown`]) every call returns
/// [`StoreError::Unavailable`]; nothing panics.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Inner>,
}

struct Inner {
    backend_name: &'static str,
    jobs: mpsc::Sender<Job>,
    closed: AtomicBool,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain Options; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("backend", &self.inner.backend_name)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl StoreHandle {
    /// Blocking: spawns the "asobi-storage" thread, connects, applies pending migrations, and
    /// returns once the store is ready. A database that cannot be reached fails here with
    /// [`StoreError::Unavailable`] within a few seconds.
    pub fn start(config: StoreConfig) -> Result<StoreHandle, StoreError> {
        let (jobs_tx, jobs_rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let backend_name = config.backend_name();
        let description = config.describe();
        let thread = std::thread::Builder::new()
            .name("asobi-storage".to_owned())
            .spawn(move || bridge_main(config, jobs_rx, stop_rx, ready_tx))
            .map_err(|e| StoreError::Unavailable(format!("cannot spawn storage thread: {e}")))?;
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "storage thread exited during start-up".to_owned(),
            ))
        });
        let applied = match ready {
            Ok(applied) => applied,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        if applied.is_empty() {
            tracing::info!(store = %description, "storage ready");
        } else {
            tracing::info!(store = %description, migrations = ?applied, "storage ready, migrations applied");
        }
        Ok(StoreHandle {
            inner: Arc::new(Inner {
                backend_name,
                jobs: jobs_tx,
                closed: AtomicBool::new(false),
                stop: Mutex::new(Some(stop_tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// "sqlite" or "postgresql".
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name
    }

    /// Sends `f` to the bridge and awaits its reply.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<dyn Backend>) -> BoxFuture<'static, Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::bridge_gone());
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            async move {
                let _ = reply_tx.send(f(backend).await);
            }
            .boxed()
        });
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| StoreError::bridge_gone())?;
        // A dropped reply means the job never finished: the bridge stopped or the job panicked.
        reply_rx.await.map_err(|_| StoreError::bridge_gone())?
    }

    /// Round-trips to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|b| async move { b.ping().await }.boxed()).await
    }

    /// Runs `f` on the bridge runtime's blocking pool (tokio `spawn_blocking`); used for argon2
    /// hashing so shards never block. A panic in `f` becomes [`StoreError::Backend`].
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        self.call(move |_| {
            async move {
                tokio::task::spawn_blocking(f)
                    .await
                    .map_err(|e| StoreError::Backend(format!("blocking task failed: {e}")))
            }
            .boxed()
        })
        .await
    }

    /// Creates a player (with its password hash, if any). [`StoreError::Conflict`] if the
    /// username is taken ignoring case, or the id exists.
    pub async fn create_player(&self, p: NewPlayer) -> Result<Player, StoreError> {
        self.call(move |b| async move { b.create_player(p).await }.boxed())
            .await
    }

    /// The player with this id, erased players included (their `erased_at` is set).
    pub async fn player(&self, id: &str) -> Result<Option<Player>, StoreError> {
        let id = id.to_owned();
        self.call(move |b| async move { b.player(id).await }.boxed())
            .await
    }

    /// For login: the player with this username (ignoring case) and its password hash (`None`
    /// for guests). Erased players are never found.
    pub async fn player_by_username(
        &self,
        username: &str,
    ) -> Result<Option<(Player, Option<String>)>, StoreError> {
        let username = username.to_owned();
        self.call(move |b| async move { b.player_by_username(username).await }.boxed())
            .await
    }

    /// Applies `patch`; `Ok(None)` if there is no such player. [`StoreError::Precondition`] if
    /// the player is erased or `patch.metadata` is not a JSON object.
    pub async fn update_player(
        &self,
        id: &str,
        patch: PlayerPatch,
    ) -> Result<Option<Player>, StoreError> {
        let id = id.to_owned();
        self.call(move |b| async move { b.update_player(id, patch).await }.boxed())
            .await
    }

    /// Guest → password account: sets username + password hash, `is_guest = false`, deletes the
    /// guest device verifier. [`StoreError::Conflict`] if the username is taken,
    /// [`StoreError::NotFound`] if there is no player, [`StoreError::Precondition`] if the player
    /// is not a guest (or is erased).
    pub async fn upgrade_guest(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
    ) -> Result<Player, StoreError> {
        let (id, username, hash) = (id.to_owned(), username.to_owned(), password_hash.to_owned());
        let now = wall_clock_ms();
        self.call(move |b| async move { b.upgrade_guest(id, username, hash, now).await }.boxed())
            .await
    }

    /// GDPR erase: anonymises the row (username → `erased_<id>`, display name, avatar and
    /// metadata cleared, `erased_at` set), deletes the credentials and guest devices, and revokes
    /// every refresh token. Idempotent for an existing player; [`StoreError::NotFound`] if the id
    /// was never stored.
    pub async fn erase_player(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        let now = wall_clock_ms();
        self.call(move |b| async move { b.erase_player(id, now).await }.boxed())
            .await
    }

    /// The device binding for a guest login.
    pub async fn guest_device(&self, device_id: &str) -> Result<Option<GuestDevice>, StoreError> {
        let device_id = device_id.to_owned();
        self.call(move |b| async move { b.guest_device(device_id).await }.boxed())
            .await
    }

    /// Creates the player (`is_guest = true`, whatever `p.is_guest` says) and the device row in
    /// one transaction. [`StoreError::Conflict`] if the device or username exists.
    pub async fn create_guest(
        &self,
        p: NewPlayer,
        device_id: &str,
        verifier: &str,
    ) -> Result<Player, StoreError> {
        let (device_id, verifier) = (device_id.to_owned(), verifier.to_owned());
        self.call(move |b| async move { b.create_guest(p, device_id, verifier).await }.boxed())
            .await
    }

    /// Stores a refresh token hash. [`StoreError::Conflict`] on a duplicate hash,
    /// [`StoreError::NotFound`] if the player does not exist.
    pub async fn insert_refresh_token(&self, t: NewRefreshToken) -> Result<(), StoreError> {
        self.call(move |b| async move { b.insert_refresh_token(t).await }.boxed())
            .await
    }

    /// Single-use rotation in one transaction. If `old_hash` is live (not used, not revoked, not
    /// expired at `now_ms`) it is marked used and `new` is inserted in the same family and for
    /// the same player (`new.family_id` and `new.player_id` are ignored) → `Rotated`. If it was
    /// already used or revoked, the whole family is revoked → `Reused`. Unknown hash →
    /// `Unknown`; past its expiry → `Expired` (nothing changes).
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let old_hash = old_hash.to_owned();
        self.call(move |b| {
            async move { b.rotate_refresh_token(old_hash, new, now_ms).await }.boxed()
        })
        .await
    }

    /// Logout: revokes the family `token_hash` belongs to. Returns whether any token was newly
    /// revoked (false for an unknown or already revoked family).
    pub async fn revoke_refresh_family_of(&self, token_hash: &str) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        let now = wall_clock_ms();
        self.call(move |b| async move { b.revoke_refresh_family_of(token_hash, now).await }.boxed())
            .await
    }

    /// Revokes every refresh token of a player (e.g. after a password change).
    pub async fn revoke_player_tokens(&self, player_id: &str) -> Result<(), StoreError> {
        let player_id = player_id.to_owned();
        let now = wall_clock_ms();
        self.call(move |b| async move { b.revoke_player_tokens(player_id, now).await }.boxed())
            .await
    }

    /// Records a finished match. [`StoreError::Conflict`] on a duplicate id.
    pub async fn insert_match_record(&self, r: MatchRecord) -> Result<(), StoreError> {
        self.call(move |b| async move { b.insert_match_record(r).await }.boxed())
            .await
    }

    /// One match record by id.
    pub async fn match_record(&self, id: &str) -> Result<Option<MatchRecord>, StoreError> {
        let id = id.to_owned();
        self.call(move |b| async move { b.match_record(id).await }.boxed())
            .await
    }

    /// Newest first (`finished_at` desc, then `id` desc), filtered by mode / status / player,
    /// at most `q.limit` rows with the limit clamped to `1..=200`.
    pub async fn list_match_records(&self, q: MatchQuery) -> Result<Vec<MatchRecord>, StoreError> {
        self.call(move |b| async move { b.list_match_records(q).await }.boxed())
            .await
    }

    /// Blocking: stops taking new calls, finishes the jobs already accepted, checkpoints the
    /// SQLite WAL / closes the PostgreSQL pool, and joins the thread. Safe to call more than once
    /// and from any thread; afterwards every clone gets [`StoreError::Unavailable`]. Called from
    /// inside a [`StoreHandle::blocking`] closure it signals the stop but cannot wait for it.
    pub fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
        if ON_BRIDGE.with(Cell::get) {
            return;
        }
        // Holding the lock while joining makes a concurrent second caller wait for the first.
        let mut thread = lock(&self.inner.thread);
        if let Some(thread) = thread.take() {
            if thread.join().is_err() {
                tracing::error!("storage thread panicked");
            }
        }
    }
}

fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Hashing is CPU-bound: more blocking threads than cores would only queue inside the OS.
    let blocking_threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .thread_name("asobi-storage-blocking")
        .on_thread_start(|| ON_BRIDGE.with(|b| b.set(true)))
        .build()
}

fn bridge_main(
    config: StoreConfig,
    mut jobs: mpsc::Receiver<Job>,
    stop: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::SyncSender<Result<Vec<String>, StoreError>>,
) {
    ON_BRIDGE.with(|b| b.set(true));
    let runtime = match build_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Unavailable(format!(
                "cannot build runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async move {
        let backend = match backend::open(&config).await {
            Ok((backend, applied)) => {
                let _ = ready.send(Ok(applied));
                backend
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        serve(&backend, &mut jobs, stop).await;
        backend.close().await;
        tracing::info!("storage closed");
    });
}

/// Runs jobs until told to stop or every handle is gone, then drains what was accepted.
async fn serve(
    backend: &Arc<dyn Backend>,
    jobs: &mut mpsc::Receiver<Job>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // Err here means every handle was dropped without shutdown: stop all the same.
            _ = &mut stop => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_task_end(done),
            job = jobs.recv(), if tasks.len() < MAX_IN_FLIGHT => match job {
                Some(job) => {
                    tasks.spawn(job(backend.clone()));
                }
                None => break,
            },
        }
    }
    // Queued jobs were accepted before the stop; run them so no caller sees a half-done stop.
    jobs.close();
    while let Some(job) = jobs.recv().await {
        tasks.spawn(job(backend.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        log_task_end(done);
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "storage job panicked");
    }
}

/// For `asobi migrate`: connects, applies pending migrations, and returns the names applied
/// (empty if the schema is up to date). Blocking; runs on its own short-lived thread, so it
/// may be called from inside another async runtime.
pub fn migrate(config: &StoreConfig) -> Result<Vec<String>, StoreError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("asobi-migrate".to_owned())
            .spawn_scoped(scope, || {
                let runtime = build_runtime()
                    .map_err(|e| StoreError::Unavailable(format!("cannot build runtime: {e}")))?;
                runtime.block_on(async {
                    let (backend, applied) = backend::open(config).await?;
                    backend.close().await;
                    Ok(applied)
                })
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot spawn migration thread: {e}")))?;
        worker
            .join()
            .unwrap_or_else(|_| Err(StoreError::Backend("migration thread panicked".to_owned())))
    })
}
