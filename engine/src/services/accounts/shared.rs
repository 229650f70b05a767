//! What the account services share across shards: the rate limiter, the revocations storage
//! held when the server started, the bounded password-hashing pool and the providers' signing
//! keys. Built once by `node`; everything in it is process-wide by nature (one budget per
//! caller, one hashing pool per machine, one key set per provider).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::{AccessSnapshot, StoreHandle};

use super::config::Config;
use super::limits::Limiter;
use crate::services::error::store_error;

pub(crate) struct Shared {
    pub(crate) limiter: Limiter,
    /// Revocations in storage at start-up; each shard seeds its copy from it.
    pub(crate) start_snapshot: AccessSnapshot,
    pub(crate) hashing: HashPool,
    pub(crate) keys: super::oidc::KeyCache,
}

impl Shared {
    pub(crate) fn new(config: &Config, start_snapshot: AccessSnapshot) -> Shared {
        Shared {
            limiter: Limiter::new(&config.rate_limits),
            start_snapshot,
            hashing: HashPool::new(config.hash_concurrency),
            keys: Default::default(),
        }
    }
}

impl Shared {
    /// With every rate limit off: the simulation harness drives many joins per player in a
    /// moment of real time (its clock is virtual, the limiter's is not). The `world.resync`
    /// limits stay on: they are counted on the shard's clock, virtual in the harness.
    #[cfg(test)]
    pub(crate) fn without_limits() -> Shared {
        use super::config::Group;
        let mut config = Config::default();
        for g in Group::ALL {
            if g != Group::ResyncGlobal && g != Group::Resync {
                config.rate_limits.0[g as usize].limit = 0;
            }
        }
        Shared::new(&config, AccessSnapshot::default())
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new(&Config::default(), AccessSnapshot::default())
    }
}

/// Password hashing off the shards and bounded: at most `slots` hashes run at once on the
/// storage bridge's blocking pool, as many again may wait, and past that a request is refused
/// with 503 `overloaded` at once. A register or login flood then costs a bounded share of the
/// machine, and a shard never blocks on a hash: the match ticks and heartbeats it serves keep
/// their timing.
pub(crate) struct HashPool {
    slots: Arc<tokio::sync::Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Decrements a counter when dropped (a cancelled request included).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    pub(crate) fn new(slots: usize) -> HashPool {
        HashPool {
            slots: Arc::new(tokio::sync::Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: slots.max(1) * 2,
        }
    }

    /// Runs a CPU-heavy password job (hash or verify) when a slot is free.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        store: &StoreHandle,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::new(
                503,
                code::OVERLOADED,
                "Too many sign-ins at once; retry shortly.",
            ));
        }
        let waiting = Waiting(&self.waiting);
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal())?;
        let result = store.blocking(f).await.map_err(store_error);
        drop(permit);
        drop(waiting);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_refuses_at_once() {
        let pool = HashPool::new(1);
        // Hold the only slot and fill the waiting room by hand.
        pool.waiting.store(pool.max_waiting, Ordering::Release);
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::start(asobi_storage::StoreConfig::Sqlite {
            path: dir.path().join("t.db"),
        })
        .unwrap();
        let r = futures::executor::block_on(pool.run(&store, || 1));
        assert_eq!(r.unwrap_err().status, 503);
        pool.waiting.store(0, Ordering::Release);
        assert_eq!(
            futures::executor::block_on(pool.run(&store, || 2)).unwrap(),
            2
        );
        store.shutdown();
    }
}
