//! Hot reload: a thread that watches the game directory and publishes recompiled games.
//!
//! File events are debounced (an editor's save is several events), then the whole game is
//! recompiled off the shards with [`crate::Game`]'s loader. A good build whose sources differ
//! from the published one is sent on a `tokio::sync::watch` channel with its version bumped;
//! shards `await changed()` (runtime-agnostic) and call [`crate::MatchVm::reload`] on their
//! live VMs. A bad build is logged with file and line and the previous game stays published.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::watch;

use crate::error::{LoadError, ScriptError};
use crate::game::Game;

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// The running watcher. Dropping it stops the thread (and waits for it).
pub struct Watcher {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    _fs: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watches `dir` recursively. `initial` is published first; every later good build is
    /// published with `version = previous + 1`. `debounce` is the quiet time required after
    /// the last file event before rebuilding (100 ms is a good default).
    pub fn spawn(
        dir: PathBuf,
        debounce: Duration,
        initial: Arc<Game>,
    ) -> Result<(Watcher, watch::Receiver<Arc<Game>>), ScriptError> {
        let (tx, rx) = mpsc::channel();
        let fs_tx = tx.clone();
        let mut fs = notify::recommended_watcher(move |event| {
            let _ = fs_tx.send(Msg::Fs(event));
        })?;
        fs.watch(&dir, RecursiveMode::Recursive)?;
        let (publish, receiver) = watch::channel(initial);
        let thread = std::thread::Builder::new()
            .name("asobi-script-watch".to_owned())
            .spawn(move || run(dir, debounce, rx, publish))
            .map_err(ScriptError::Thread)?;
        Ok((
            Watcher {
                tx,
                thread: Some(thread),
                _fs: fs,
            },
            receiver,
        ))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn relevant(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        Err(e) => {
            tracing::warn!(error = %e, "game directory watch error");
            false
        }
    }
}

fn run(
    dir: PathBuf,
    debounce: Duration,
    rx: mpsc::Receiver<Msg>,
    publish: watch::Sender<Arc<Game>>,
) {
    loop {
        match rx.recv() {
            Ok(Msg::Fs(event)) if relevant(&event) => {}
            Ok(Msg::Fs(_)) => continue,
            Ok(Msg::Stop) | Err(_) => return,
        }
        // Wait until the directory has been quiet for `debounce`.
        loop {
            match rx.recv_timeout(debounce) {
                Ok(Msg::Fs(_)) => continue,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let current = publish.borrow().clone();
        match Game::load_versioned(&dir, current.version + 1) {
            Ok(game) if game.fingerprint == current.fingerprint => {
                tracing::debug!(dir = %dir.display(), "game directory changed but scripts are identical");
            }
            Ok(game) => {
                tracing::info!(dir = %dir.display(), version = game.version, modes = ?game.modes.keys().collect::<Vec<_>>(), "game reloaded");
                publish.send_replace(Arc::new(game));
            }
            Err(LoadError::Invalid { diagnostics }) => {
                for d in diagnostics
                    .iter()
                    .filter(|d| d.severity == crate::Severity::Error)
                {
                    tracing::error!(file = %d.file.display(), line = d.line, "{}; keeping the previous code", d.message);
                }
            }
            Err(e) => tracing::error!(error = %e, "game reload failed; keeping the previous code"),
        }
    }
}
