//! `StoreHandle`, the only way shards reach the database, and the bridge thread behind it.
//!
//! Shards run on glommio executors with no tokio runtime, so a call never touches tokio's
//! reactor on the caller's thread: it pushes a boxed job into a bounded tokio mpsc channel (whose
//! sender works from any executor) and awaits a `futures` oneshot reply. The "asobi-storage"
//! thread runs a current-thread tokio runtime that owns the backend and runs each job as a task.
//!
//! Every feature's facade method is one [`StoreHandle::call`]: a closure naming the backend
//! operation, shipped to the bridge and run there under the call deadline.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::{self, Backend, Reply};
use crate::{StoreConfig, StoreError, StoreOptions};

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
    options: StoreOptions,
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
    /// [`StoreError::Unavailable`] within a few seconds. Uses [`StoreOptions::from_env`].
    pub fn start(config: StoreConfig) -> Result<StoreHandle, StoreError> {
        StoreHandle::start_with(config, StoreOptions::from_env()?)
    }

    /// [`StoreHandle::start`] with explicit options instead of the environment's.
    pub fn start_with(
        config: StoreConfig,
        options: StoreOptions,
    ) -> Result<StoreHandle, StoreError> {
        let (jobs_tx, jobs_rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let backend_name = config.backend_name();
        let description = config.describe();
        let bridge_options = options.clone();
        let thread = std::thread::Builder::new()
            .name("asobi-storage".to_owned())
            .spawn(move || bridge_main(config, bridge_options, jobs_rx, stop_rx, ready_tx))
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
                options,
                jobs: jobs_tx,
                closed: AtomicBool::new(false),
                stop: Mutex::new(Some(stop_tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Calls queued for the bridge and not yet taken (a gauge for `/metrics`).
    pub fn queue_depth(&self) -> usize {
        self.inner.jobs.max_capacity() - self.inner.jobs.capacity()
    }

    /// "sqlite" or "postgresql".
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name
    }

    /// Runs one backend operation on the bridge: `op` names it (`|db| db.player(id)`), and the
    /// reply comes back within [`StoreOptions::call_timeout`] of this call, queueing included,
    /// or the call fails with [`StoreError::Unavailable`].
    pub(crate) async fn call<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'db> FnOnce(&'db dyn Backend) -> Reply<'db, T> + Send + 'static,
    {
        let limit = self.inner.options.call_timeout;
        let deadline = tokio::time::Instant::from_std(Instant::now() + limit);
        self.submit(move |backend| {
            async move {
                tokio::time::timeout_at(deadline, op(&*backend))
                    .await
                    .unwrap_or_else(|_| Err(StoreError::deadline(limit)))
            }
            .boxed()
        })
        .await
    }

    /// Sends `f` to the bridge and awaits its reply.
    async fn submit<T: Send + 'static>(
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
        self.call(|db| db.ping()).await
    }

    /// Runs `f` on the bridge runtime's blocking pool (tokio `spawn_blocking`); used for argon2
    /// hashing so shards never block. A panic in `f` becomes [`StoreError::Backend`].
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        // No deadline: hashing is CPU work that cannot be cancelled, not a database wait.
        self.submit(move |_| {
            async move {
                tokio::task::spawn_blocking(f)
                    .await
                    .map_err(|e| StoreError::Backend(format!("blocking task failed: {e}")))
            }
            .boxed()
        })
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
    options: StoreOptions,
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
        let backend = match backend::open(&config, &options).await {
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
/// may be called from inside another async runtime. Uses [`StoreOptions::from_env`].
pub fn migrate(config: &StoreConfig) -> Result<Vec<String>, StoreError> {
    migrate_with(config, &StoreOptions::from_env()?)
}

/// [`migrate`] with explicit options instead of the environment's.
pub fn migrate_with(
    config: &StoreConfig,
    options: &StoreOptions,
) -> Result<Vec<String>, StoreError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("asobi-migrate".to_owned())
            .spawn_scoped(scope, || {
                let runtime = build_runtime()
                    .map_err(|e| StoreError::Unavailable(format!("cannot build runtime: {e}")))?;
                runtime.block_on(async {
                    let (backend, applied) = backend::open(config, options).await?;
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

/// Wall-clock milliseconds, for the few calls whose signature carries no `now_ms`.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
