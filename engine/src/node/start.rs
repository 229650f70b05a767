//! One shard's life on its glommio executor: join the mesh, build the runtime and the services,
//! bind the listener, serve until shutdown, then drain.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::FullMesh;
use glommio::net::TcpListener;
use tokio::sync::watch;

use crate::edge::Edge;
use crate::services::{Context, Shard};
use crate::shard::{Msg, Runtime};

/// How long shutdown waits for in-flight requests and closing sockets.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Clears the shard's alive flag however the shard ends, so `/ready` and `/health` tell the truth.
struct Alive(Arc<Context>, usize);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.registry.shards()[self.1]
            .alive
            .store(false, Ordering::Relaxed);
    }
}

/// Joins the shard mesh. glommio's join waits on cross-executor notifications, and test
/// servers were seen (rarely, on a loaded machine) with every shard asleep in the reactor
/// while the main thread waited for them to start; so the join is polled again every 20 ms
/// instead of relying on one wake-up.
async fn join_mesh(
    mesh: FullMesh<Msg<Shard>>,
) -> Result<
    (
        glommio::channels::channel_mesh::Senders<Msg<Shard>>,
        glommio::channels::channel_mesh::Receivers<Msg<Shard>>,
    ),
    (),
> {
    let join = mesh.join();
    futures::pin_mut!(join);
    loop {
        let tick = glommio::timer::sleep(Duration::from_millis(20));
        futures::pin_mut!(tick);
        if let futures::future::Either::Left((r, _)) =
            futures::future::select(join.as_mut(), tick).await
        {
            return r.map_err(drop);
        }
    }
}

/// Runs one shard until shutdown. `ready` reports the bind result to the main thread.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    id: usize,
    ctx: Arc<Context>,
    mesh: FullMesh<Msg<Shard>>,
    listen: SocketAddr,
    edge: Edge,
    mut shutdown: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
    quic: Option<futures::channel::mpsc::Receiver<crate::edge::quic::QuicConn>>,
) {
    let (senders, receivers) = match join_mesh(mesh).await {
        Ok(pair) => pair,
        Err(_) => {
            let _ = ready.send(Err(format!("shard {id} could not join the mesh")));
            return;
        }
    };
    let senders = Rc::new(senders);
    let links = crate::shard::glommio_links(id, senders.clone());
    let rt = Runtime::on_glommio(id, links);
    let shard = match Shard::new(rt, ctx.clone()) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: {e}")));
            return;
        }
    };
    crate::shard::glommio_drivers(&shard, receivers);

    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: binding {listen}: {e}")));
            return;
        }
    };
    ctx.registry.shards()[id]
        .alive
        .store(true, Ordering::Relaxed);
    let _alive = Alive(ctx.clone(), id);
    let _ = ready.send(Ok(listener.local_addr().unwrap_or(listen)));

    if let Some(mut quic) = quic {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            use futures::StreamExt;
            while let Some(conn) = quic.next().await {
                if shard.rt.shutting_down.get() {
                    continue;
                }
                let peer = conn.peer;
                let write_timeout = Duration::from_millis(shard.ctx.settings.write_timeout_ms);
                let transport = crate::edge::quic::QuicTransport::new(conn, write_timeout);
                shard
                    .rt
                    .spawn(crate::shard::panic::contained(crate::edge::ws::run(
                        shard.clone(),
                        transport,
                        peer,
                    )));
            }
        })
        .detach();
    }
    glommio::spawn_local(watch_game(shard.clone())).detach();

    let accept = crate::edge::accept_loop(shard.clone(), listener, edge);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    futures::pin_mut!(accept, stop);
    let accept = match futures::future::select(accept, stop).await {
        futures::future::Either::Left(_) => return,
        futures::future::Either::Right((_, accept)) => accept,
    };

    // Drain: `/ready` turns 503 so the balancer stops sending work, no new match is placed,
    // and running matches get until the drain deadline to end on their own. The listener keeps
    // answering meanwhile (probes, reconnects to running matches).
    shard.ops.draining.set(true);
    let drain_deadline = Instant::now() + ctx.ops.config.drain_timeout;
    let drained = {
        let shard = shard.clone();
        async move {
            while shard.matches.len() > 0 && Instant::now() < drain_deadline {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    futures::pin_mut!(drained);
    futures::future::select(accept, drained).await;
    tracing::info!(
        event = "drain_matches_done",
        shard = id,
        left = shard.matches.len(),
        "drain: matches done or deadline reached"
    );

    // Stop accepting (the listener is dropped with the accept loop), let in-flight requests
    // finish, tell every client, and give sockets a moment to flush their close frames.
    shard.rt.shutting_down.set(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shard.rt.inflight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    shard.close_sessions();
    while shard.rt.session_count() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    shard.finish_all();
    // Every finished match's record reaches storage before the shard stops.
    crate::services::ops::flush_records(&shard, SHUTDOWN_GRACE).await;
    crate::services::leaderboards::flush_for_shutdown(&shard).await;
    crate::services::social::chat::flush_for_shutdown(&shard).await;
    crate::services::worlds::snapshot::flush_for_shutdown(&shard).await;
    senders.close();
    tracing::debug!(shard = id, "shard stopped");
}

/// Applies each newly compiled game to this shard.
async fn watch_game(shard: Rc<Shard>) {
    let mut rx = shard.ctx.game.clone();
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        let game = rx.borrow_and_update().clone();
        crate::shard::panic::shared(|| shard.reload(game));
    }
}
