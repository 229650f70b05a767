//! The per-shard pool of sandboxed VMs.
//!
//! A VM is never handed to a second match: [`VmPool::release`] drops the used state and puts
//! a brand-new sandbox in its place. Reusing a state would require proving that nothing a
//! match did survives into the next one — globals are easy, but the string metatable, the
//! PRNG state, pending finalizers and memory fragmentation are not — while creating a fresh
//! sandbox costs tens of microseconds, paid when a match ends rather than on the path that
//! starts one. A VM that failed (memory exhausted, budget overruns) is therefore replaced,
//! never reused, by construction.

use std::sync::Arc;

use crate::api::NullHost;
use crate::bot::BotVm;
use crate::budget::Budgets;
use crate::error::ScriptError;
use crate::game::CompiledMode;
use crate::sandbox::Sandbox;
use crate::vm::MatchVm;
use crate::world::WorldVm;

/// Pre-created sandboxes for one shard thread.
pub struct VmPool {
    budgets: Budgets,
    idle: Vec<Sandbox>,
    prewarm: usize,
}

impl std::fmt::Debug for VmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmPool")
            .field("idle", &self.idle.len())
            .field("prewarm", &self.prewarm)
            .finish_non_exhaustive()
    }
}

impl VmPool {
    /// Creates a pool holding `prewarm` ready sandboxes, each with `budgets`.
    pub fn new(budgets: Budgets, prewarm: usize) -> Result<VmPool, ScriptError> {
        let idle = (0..prewarm)
            .map(|_| Sandbox::new(&budgets))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VmPool {
            budgets,
            idle,
            prewarm,
        })
    }

    /// The budgets every VM of this pool runs under.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Sandboxes ready to be acquired.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Takes a clean sandbox and loads `mode`'s chunk into it for match `match_id`. Fails if
    /// the chunk fails to run. Messages sent from the chunk's top level are dropped: the match
    /// has no players yet.
    pub fn acquire(
        &mut self,
        mode: &Arc<CompiledMode>,
        match_id: &str,
    ) -> Result<MatchVm, ScriptError> {
        let sandbox = match self.idle.pop() {
            Some(sandbox) => sandbox,
            None => Sandbox::new(&self.budgets)?,
        };
        MatchVm::start(sandbox, mode, match_id, &mut NullHost).map_err(ScriptError::Chunk)
    }

    /// Takes a clean sandbox and loads world `mode`'s chunk into it for world `world_id`.
    /// Release it with [`VmPool::release_world`] (or drop it) when the world ends.
    pub fn acquire_world(
        &mut self,
        mode: &Arc<CompiledMode>,
        world_id: &str,
    ) -> Result<WorldVm, ScriptError> {
        let sandbox = match self.idle.pop() {
            Some(sandbox) => sandbox,
            None => Sandbox::new(&self.budgets)?,
        };
        WorldVm::start(sandbox, mode, world_id, &mut NullHost).map_err(ScriptError::Chunk)
    }

    /// Ends a world's use of `vm`, refilling the pool as [`VmPool::release`] does.
    pub fn release_world(&mut self, vm: WorldVm) {
        drop(vm);
        if self.idle.len() < self.prewarm {
            match Sandbox::new(&self.budgets) {
                Ok(sandbox) => self.idle.push(sandbox),
                Err(e) => tracing::warn!(error = %e, "could not refill the VM pool"),
            }
        }
    }

    /// A VM running `mode`'s bot script for one bot, or `None` when the mode has none (the
    /// engine then uses its default AI). Bot VMs are never pooled: drop them when the bot
    /// leaves.
    pub fn acquire_bot(&mut self, mode: &Arc<CompiledMode>) -> Result<Option<BotVm>, ScriptError> {
        match &mode.bot {
            None => Ok(None),
            Some(script) => BotVm::start(script, &self.budgets)
                .map(Some)
                .map_err(ScriptError::Chunk),
        }
    }

    /// Ends a match's use of `vm`: the state is dropped and, while the pool is below its
    /// prewarm size, replaced by a fresh sandbox.
    pub fn release(&mut self, vm: MatchVm) {
        drop(vm);
        if self.idle.len() < self.prewarm {
            match Sandbox::new(&self.budgets) {
                Ok(sandbox) => self.idle.push(sandbox),
                Err(e) => tracing::warn!(error = %e, "could not refill the VM pool"),
            }
        }
    }
}
