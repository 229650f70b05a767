//! The guest reaper (asobi's `guest_reap_after`): deletes unclaimed guests whose devices have
//! not resumed for the configured time, the way an erase deletes a player, and ends their
//! tokens on every shard. Off unless `ASOBI_GUEST_REAP_AFTER` is set; runs on shard 0 only.
//! Each deletion re-checks inside its transaction that the guest is still unclaimed and idle,
//! so an upgrade or a resume racing the reaper wins.

use std::rc::Rc;
use std::time::Duration;

use super::access::broadcast;
use super::cmd::{Revoke, Scope};
use super::tokens::now_ms;
use crate::services::Shard;

/// Guests deleted per sweep at most, so one sweep never holds the database for long.
const BATCH: i64 = 500;
/// Longest pause between sweeps.
const MAX_PERIOD: Duration = Duration::from_secs(60);

/// Starts the reaper on shard 0 when it is configured.
pub(crate) fn start(shard: &Rc<Shard>) {
    let Some(after) = shard.ctx.settings.accounts.guest_reap_after else {
        return;
    };
    if shard.id() != 0 {
        return;
    }
    let period = (after / 4).clamp(Duration::from_millis(250), MAX_PERIOD);
    let s = shard.clone();
    shard.rt.spawn(async move {
        loop {
            s.rt.sleep(period).await;
            if s.rt.shutting_down.get() {
                return;
            }
            sweep(&s, after).await;
        }
    });
}

async fn sweep(shard: &Rc<Shard>, after: Duration) {
    let now = now_ms();
    let cutoff = now - after.as_millis() as i64;
    let store = &shard.ctx.store;
    let idle = match store.idle_guests(cutoff, BATCH).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!("guest reaper: listing idle guests failed: {e}");
            return;
        }
    };
    let mut reaped = 0usize;
    for id in idle {
        match store.reap_guest(&id, cutoff, now).await {
            Ok(true) => {
                reaped += 1;
                broadcast(
                    shard,
                    Revoke {
                        player_id: id,
                        scope: Scope::Before(now),
                        reason: "erased",
                    },
                );
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(player = %id, "guest reaper: deleting failed: {e}"),
        }
    }
    if reaped > 0 {
        tracing::info!(reaped, "guest reaper deleted idle unclaimed guests");
    }
}
