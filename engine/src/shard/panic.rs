//! What a panic costs. A panic in code that serves one connection (its HTTP requests, its
//! session's own handling) is caught at that connection's task boundary, logged and counted; the
//! connection closes and nothing else notices. A panic anywhere else — a match, a queue, the
//! timer or mesh handlers, start-up — could leave shared shard state half-updated, so the process
//! exits at once with status 70 (EX_SOFTWARE) for its supervisor to restart it. There is never a
//! shard that is gone while the process keeps accepting work it cannot do.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::FutureExt;

/// Exit status of a process that stopped on an uncontained panic.
pub(crate) const EXIT_PANIC: i32 = 70;

thread_local! {
    /// > 0 while polling a contained (per-connection) task, reset to 0 inside shared handlers.
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Connection tasks that panicked and were closed.
pub(crate) static CONTAINED_PANICS: AtomicU64 = AtomicU64::new(0);

/// Installs the hook: uncontained panics end the process.
pub(crate) fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.with(Cell::get) > 0 {
            tracing::error!("a connection task panicked; closing that connection: {info}");
            return;
        }
        default(info);
        tracing::error!(
            "uncontained panic on {:?}; exiting with status {EXIT_PANIC}",
            std::thread::current().name()
        );
        std::process::exit(EXIT_PANIC);
    }));
}

/// Runs `f` as shared-state code: a panic inside it is not contained, even when called from a
/// connection task (a command handled in place, a match callback).
pub(crate) fn shared<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONTAINED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CONTAINED.with(|c| c.replace(0)));
    f()
}

/// A connection task whose panic is caught at its boundary.
///
/// A plain function, not an `async fn`: an `async fn` would keep its argument (the whole
/// connection future) in its own state beside the boxed copy, doubling what every idle
/// connection costs.
pub(crate) fn contained(fut: impl Future<Output = ()>) -> impl Future<Output = ()> {
    AssertUnwindSafe(Contained(Box::pin(fut)))
        .catch_unwind()
        .map(|caught| {
            if caught.is_err() {
                CONTAINED_PANICS.fetch_add(1, Ordering::Relaxed);
            }
        })
}

struct Contained<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for Contained<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        struct Depth;
        impl Drop for Depth {
            fn drop(&mut self) {
                CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
            }
        }
        CONTAINED.with(|c| c.set(c.get() + 1));
        let _depth = Depth;
        self.0.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_task_panic_is_caught_and_counted() {
        install();
        let before = CONTAINED_PANICS.load(Ordering::Relaxed);
        futures::executor::block_on(contained(async {
            panic!("bad request handling");
        }));
        assert_eq!(CONTAINED_PANICS.load(Ordering::Relaxed), before + 1);
        // The depth is back to zero: the next panic outside a connection is not contained.
        assert_eq!(CONTAINED.with(Cell::get), 0);
        // Other tests in this binary report their failures the usual way.
        let _ = std::panic::take_hook();
    }

    /// Runs itself in a child process: a panic in shared state, even when reached from inside a
    /// connection task, ends the process with [`EXIT_PANIC`] instead of unwinding into it.
    #[test]
    fn a_panic_in_shared_state_exits_the_process() {
        const CHILD: &str = "ASOBI_PANIC_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            install();
            futures::executor::block_on(contained(async {
                shared(|| panic!("a match callback broke its invariants"));
            }));
            // Not reached: the hook exits.
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "shard::panic::tests::a_panic_in_shared_state_exits_the_process",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(EXIT_PANIC), "{out:?}");
    }
}
