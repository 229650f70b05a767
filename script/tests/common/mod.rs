//! Shared test harness: a recording host and helpers to build game directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use asobi_script::{Budgets, CompiledMode, Game, Host, MatchVm, VmPool};
use bytes::Bytes;
use serde_json::Value;

/// Everything a script did through the host, in order.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) broadcasts: Vec<(String, Value)>,
    pub(crate) sends: Vec<(String, Value)>,
    pub(crate) joinable: Vec<bool>,
    pub(crate) bots_added: Vec<String>,
    pub(crate) bots_removed: Vec<String>,
}

impl Host for Recorder {
    fn broadcast(&mut self, event: &str, payload: Bytes) {
        self.broadcasts
            .push((event.to_owned(), serde_json::from_slice(&payload).unwrap()));
    }
    fn send(&mut self, player_id: &str, message: Bytes) {
        self.sends.push((
            player_id.to_owned(),
            serde_json::from_slice(&message).unwrap(),
        ));
    }
    fn set_joinable(&mut self, open: bool) {
        self.joinable.push(open);
    }
    fn add_bot(&mut self, name: &str) {
        self.bots_added.push(name.to_owned());
    }
    fn remove_bot(&mut self, bot: &str) {
        self.bots_removed.push(bot.to_owned());
    }
}

/// Writes `files` (relative path, contents) into a fresh temporary directory.
pub(crate) fn game_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, contents) in files {
        write(dir.path(), rel, contents);
    }
    dir
}

pub(crate) fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A single-mode game from one `match.lua` source; returns the dir (keep it alive) and the
/// default mode.
pub(crate) fn single(source: &str) -> (tempfile::TempDir, Arc<CompiledMode>) {
    let dir = game_dir(&[("match.lua", source)]);
    let game = Game::load(dir.path()).unwrap_or_else(|e| panic!("load failed: {e}"));
    let mode = game.mode("default").unwrap().clone();
    (dir, mode)
}

/// The minimal globals every test script needs.
pub(crate) const HEADER: &str = "match_size = 1\n";

/// A pool with default budgets and a VM running `source` (prefixed with [`HEADER`]), after
/// `init({})`.
pub(crate) fn start(source: &str) -> (tempfile::TempDir, VmPool, MatchVm) {
    // These tests drive each call to its end; time slicing has its own test (budgets.rs).
    start_with(
        Budgets {
            slice: std::time::Duration::ZERO,
            ..Budgets::default()
        },
        source,
    )
}

pub(crate) fn start_with(budgets: Budgets, source: &str) -> (tempfile::TempDir, VmPool, MatchVm) {
    let (dir, mode) = single(&format!("{HEADER}{source}"));
    let mut pool = VmPool::new(budgets, 1).unwrap();
    let mut vm = pool.acquire(&mode, "m-1").unwrap();
    vm.init(&serde_json::json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    (dir, pool, vm)
}

/// The JSON of `get_state(state)` (shared form).
pub(crate) fn shared_state(vm: &mut MatchVm) -> Value {
    let bytes = vm.state_for(None, &mut Recorder::default()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub(crate) fn arena_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/games/arena")
}
