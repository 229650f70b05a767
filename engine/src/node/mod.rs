//! Start-up and shutdown: storage bridge, game load and watcher, the shards and the mesh between
//! them, signals. Everything shards share lives in [`Global`], which is immutable after start-up
//! except for counters and the low-traffic directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use tokio::sync::watch;

use asobi_script::{Budgets, Game, Watcher};
use asobi_storage::StoreHandle;

use crate::auth::Tokens;
use crate::config::{ServeArgs, Toggle};
use crate::directory::Directory;
use crate::mesh::MeshMsg;

pub(crate) struct Global {
    pub(crate) cfg: ServeArgs,
    /// The port every shard listens on (resolved when `--port 0` asked for any free one).
    pub(crate) port: u16,
    pub(crate) store: StoreHandle,
    pub(crate) tokens: Tokens,
    pub(crate) directory: Directory,
    pub(crate) game: watch::Receiver<Arc<Game>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) budgets: Budgets,
    pub(crate) started: Instant,
    /// Set when a certificate is configured: the main port then speaks HTTPS and WSS.
    pub(crate) tls: Option<futures_rustls::TlsAcceptor>,
}

/// Debounce for the game directory watcher: editors write a file in several steps.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);
/// glommio's DMA buffer pool; the server does no file I/O on shards, so keep it small and well
/// under the default locked-memory limit.
const IO_MEMORY: usize = 1 << 20;

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
            let config = crate::tls::server_config(cert, key)?;
            tracing::info!(cert = %cert.display(), "TLS on: the main port serves HTTPS and WSS");
            Some(futures_rustls::TlsAcceptor::from(config))
        }
        _ => None,
    };
    let quic_cert = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ if args.dev_cert => {
            let (c, k, fingerprint) = crate::tls::dev_cert(&args.db.data_dir)?;
            tracing::warn!(cert = %c.display(), sha256 = %fingerprint, "QUIC uses a generated self-signed development certificate");
            Some((c, k))
        }
        _ => None,
    };
    let (quic_senders, mut quic_receivers): (crate::quic::ShardInboxes, Vec<_>) = (0..nshards)
        .map(|_| futures::channel::mpsc::unbounded())
        .unzip();
    if let Some((cert, key)) = &quic_cert {
        let at = crate::quic::start(
            SocketAddr::new(args.bind, args.quic_port),
            cert,
            key,
            args.ws_max_frame,
            quic_senders,
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

    let global = Arc::new(Global {
        budgets: args.budgets(),
        cfg: args,
        port,
        store: store.clone(),
        tokens,
        directory: Directory::new(nshards),
        game: game_rx,
        shutdown: shutdown_rx,
        started: Instant::now(),
        tls,
    });

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh = MeshBuilder::<MeshMsg, _>::full(nshards, crate::shard::MESH_CHANNEL);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(nshards);
    for id in 0..nshards {
        let (global, mesh, ready) = (global.clone(), mesh.clone(), ready_tx.clone());
        let quic = (!quic_receivers.is_empty()).then(|| quic_receivers.remove(0));
        let handle = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("asobi-shard-{id}"))
            .io_memory(IO_MEMORY)
            .spawn(move || crate::shard::run(id, global, mesh, ready, quic))
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
    let shown = SocketAddr::new(global.cfg.bind, port);
    tracing::info!("listening on {shown} (HTTP /api/v1, WebSocket /ws)");

    for h in handles {
        let _ = h.join();
    }
    tracing::info!("shards stopped; flushing storage");
    store.shutdown();
    tracing::info!("bye");
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
                        signal = sig,
                        "shutting down: no new connections, finishing in-flight requests"
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
