//! The node: start-up and shutdown. Storage bridge, game load and watcher, the process context
//! the services share, the shards and the mesh between them, signals, and the exit status. It
//! knows no feature's rules; it wires the layers below together.

mod compose;
pub(crate) mod config;
mod start;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use tokio::sync::watch;

use asobi_script::{Game, Watcher};
use asobi_storage::StoreHandle;

use crate::edge::limits::Limits;
use crate::edge::Edge;
use crate::services::accounts::tokens::Tokens;
use crate::services::{Context, Shard};
use crate::shard::registry::LocalRegistry;
use crate::shard::Msg;
use config::{ServeArgs, Toggle};

/// Debounce for the game directory watcher: editors write a file in several steps.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);
/// glommio's DMA buffer pool; the server does no file I/O on shards, so keep it small and well
/// under the default locked-memory limit.
const IO_MEMORY: usize = 1 << 20;
/// How long a shard's task queue runs before glommio polls the reactor (its default is
/// 100 ms). A shard that is behind — a time-sliced Lua callback, or more work than its core —
/// yields its queue after each round of timers; the reactor then delivers socket completions
/// within this bound rather than 100 ms later.
pub(crate) const PREEMPT: Duration = Duration::from_millis(5);

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::shard::panic::install();
    let asobi_env = compose::read(|k| std::env::var(k).ok())?;
    for note in &asobi_env.notes {
        tracing::info!("{note}");
    }
    for ignored in &asobi_env.ignored {
        tracing::warn!("{ignored}");
    }
    let nshards = args.shard_count();
    let store_config = args.db.store_config();
    let game = Game::load(&args.game_dir).map_err(|e| {
        for d in e.diagnostics() {
            tracing::error!("{d}");
        }
        anyhow::anyhow!("cannot load the game in {}: {e}", args.game_dir.display())
    })?;
    let game = Arc::new(game);
    let modes: Vec<&String> = game.modes.keys().collect();
    tracing::info!(game_dir = %args.game_dir.display(), ?modes, "game loaded");

    let store = StoreHandle::start(store_config.clone()).context("starting storage")?;
    tracing::info!(backend = %store_config.describe(), "storage ready");

    // Revocations still in force (tokens ended before this start and not yet expired): every
    // shard starts from them, so a restart never revives a revoked token.
    let horizon = crate::services::accounts::tokens::now_ms()
        - (args.access_ttl_secs as i64).saturating_mul(1000)
        - 60_000;
    let access_snapshot = futures::executor::block_on(store.access_snapshot(horizon))
        .context("reading access revocations")?;
    let tokens = Tokens::load(
        std::env::var("ASOBI_JWT_SECRET").ok().as_deref(),
        &args.db.data_dir,
        Duration::from_secs(args.access_ttl_secs),
        Duration::from_secs(args.refresh_ttl_secs),
    )?;

    // Kept alive for the whole run: dropping the watcher stops hot reload, dropping the sender
    // would close the channel.
    let (_watcher, _game_tx, game_rx) = if args.lua_reload == Toggle::On {
        let (w, rx) = Watcher::spawn(args.game_dir.clone(), RELOAD_DEBOUNCE, game.clone())
            .map_err(|e| anyhow::anyhow!("watching the game directory: {e}"))?;
        tracing::info!("hot reload on: saving a script reloads live matches in place");
        (Some(w), None, rx)
    } else {
        let (tx, rx) = watch::channel(game.clone());
        tracing::info!("hot reload off (ASOBI_LUA_RELOAD=off)");
        (None, Some(tx), rx)
    };

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = crate::edge::tls::server_config(cert, key)?;
            tracing::info!(cert = %cert.display(), "TLS on: the main port serves HTTPS and WSS");
            Some(futures_rustls::TlsAcceptor::from(config))
        }
        _ => None,
    };
    let quic_cert = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ if args.dev_cert => {
            let (c, k, fingerprint) = crate::edge::tls::dev_cert(&args.db.data_dir)?;
            tracing::warn!(cert = %c.display(), sha256 = %fingerprint, "QUIC uses a generated self-signed development certificate");
            Some((c, k))
        }
        _ => None,
    };
    let limits = Limits::new(args.ws_connect_rate, args.max_connections);
    let (quic_senders, mut quic_receivers): (crate::edge::quic::ShardInboxes, Vec<_>) = (0
        ..nshards)
        .map(|_| futures::channel::mpsc::channel(crate::edge::quic::SHARD_INBOX))
        .unzip();
    if let Some((cert, key)) = &quic_cert {
        let at = crate::edge::quic::start(
            SocketAddr::new(args.bind, args.quic_port),
            cert,
            key,
            args.ws_max_frame,
            quic_senders,
            limits.clone(),
        )?;
        tracing::info!("QUIC on udp {at} (ALPN asobi/1)");
    } else {
        drop(quic_senders);
        quic_receivers.clear();
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_thread(shutdown_tx)?;

    let addr = SocketAddr::new(args.bind, args.port);
    let reservation = reserve_port(addr)?;
    let port = reservation
        .local_addr()?
        .as_socket()
        .map_or(args.port, |a| a.port());

    let bans = futures::executor::block_on(store.bans())
        .context("loading player bans")?
        .into_iter()
        .map(|b| b.player_id)
        .collect();
    let ops = crate::services::ops::OpsState::new(args.ops.config(), bans);
    let ctx = Arc::new(Context {
        budgets: args.budgets(),
        settings: args.settings(),
        store: store.clone(),
        tokens,
        registry: Box::new(LocalRegistry::new(nshards)),
        matches: Default::default(),
        parties: Default::default(),
        worlds: Default::default(),
        game: game_rx,
        accounts: crate::services::accounts::Shared::new(&args.accounts.config(), access_snapshot),
        ops,
    });
    let edge = Edge { tls, limits };
    let listen = SocketAddr::new(args.bind, port);

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh = MeshBuilder::<Msg<Shard>, _>::full(nshards, crate::shard::MESH_CHANNEL);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(nshards);
    for id in 0..nshards {
        let (ctx, mesh, ready) = (ctx.clone(), mesh.clone(), ready_tx.clone());
        let quic = (!quic_receivers.is_empty()).then(|| quic_receivers.remove(0));
        let shutdown = shutdown_rx.clone();
        let edge = edge.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("asobi-shard-{id}"))
            .io_memory(IO_MEMORY)
            .preempt_timer(PREEMPT)
            .spawn(move || start::run(id, ctx, mesh, listen, edge, shutdown, ready, quic))
            .map_err(|e| anyhow::anyhow!("starting shard {id}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..nshards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a shard exited during start-up".to_owned()),
        }
    }
    drop(reservation);
    if let Some(e) = failure {
        anyhow::bail!("start-up failed: {e}");
    }
    tracing::info!(
        shards = nshards,
        cpus,
        "shards running, one glommio executor per shard pinned to its core"
    );
    tracing::info!(event = "server_started", %listen, "listening on {listen} (HTTP /api/v1, WebSocket /ws)");

    let mut failed = 0;
    for h in handles {
        if h.join().is_err() {
            failed += 1;
        }
    }
    tracing::info!("shards stopped; flushing storage");
    store.shutdown();
    if failed > 0 {
        anyhow::bail!("{failed} shard(s) ended abnormally");
    }
    tracing::info!(event = "server_stopped", "bye");
    Ok(())
}

/// Binds (without listening) the address every shard will bind with SO_REUSEPORT, so `--port 0`
/// resolves to one port that all shards share. Unlistened, it never receives a connection.
fn reserve_port(addr: SocketAddr) -> anyhow::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    Ok(socket)
}

/// SIGINT/SIGTERM start a graceful shutdown; a second one exits at once.
fn spawn_signal_thread(shutdown: watch::Sender<bool>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("asobi-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen == 1 {
                    tracing::info!(
                        event = "drain_started",
                        signal = sig,
                        "draining: /ready answers 503, no new matches; running matches get the drain deadline"
                    );
                    let _ = shutdown.send(true);
                } else {
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(1);
                }
            }
        })?;
    Ok(())
}
