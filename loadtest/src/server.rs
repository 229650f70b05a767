//! Servers the tool starts itself: the bare baseline (this binary's `baseline-server`) and
//! the asobi-rs binary. Each is pinned to its own cores so the client, pinned elsewhere,
//! does not compete with it, and is stopped when the handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::sys::CpuMask;

/// A server process started by the tool.
pub struct ServerProc {
    child: Child,
    /// Process id.
    pub pid: u32,
    /// `baseline` or `asobi`.
    pub kind: String,
    /// Command line used.
    pub command: String,
    /// Cores it is pinned to.
    pub cores: Vec<usize>,
    /// WebSocket URL.
    pub url: String,
    /// Where its stdout/stderr go.
    pub log: PathBuf,
}

fn log_path(kind: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("asobi-loadtest-{kind}-{port}.log"))
}

fn spawn(
    mut cmd: Command,
    kind: &str,
    port: u16,
    cores: &[usize],
    nice: Option<i32>,
) -> anyhow::Result<ServerProc> {
    let log = log_path(kind, port);
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mask = (!cores.is_empty()).then(|| CpuMask::new(cores));
    // SAFETY: the closure performs only async-signal-safe syscalls (sched_setaffinity,
    // setpriority) on data built before fork; it allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(move || {
            if let Some(m) = &mask {
                m.apply_to_current_thread()?;
            }
            if let Some(n) = nice {
                // Best effort: without CAP_SYS_NICE the server runs at normal priority.
                let _ = crate::sys::set_nice(n);
            }
            Ok(())
        });
    }
    let command = format!("{cmd:?}");
    let child = cmd.spawn().with_context(|| format!("starting {command}"))?;
    Ok(ServerProc {
        pid: child.id(),
        child,
        kind: kind.to_string(),
        command,
        cores: cores.to_vec(),
        url: format!("ws://127.0.0.1:{port}/ws"),
        log,
    })
}

/// Starts this binary's `baseline-server` on `port`, one executor per core in `cores`, at
/// nice value `nice` when given, with tungstenite's read buffer set to `read_buffer` bytes
/// when given.
pub fn spawn_baseline(
    port: u16,
    cores: &[usize],
    nice: Option<i32>,
    read_buffer: Option<usize>,
) -> anyhow::Result<ServerProc> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("baseline-server")
        .arg("--port")
        .arg(port.to_string());
    if !cores.is_empty() {
        let list: Vec<String> = cores.iter().map(ToString::to_string).collect();
        cmd.arg("--cores").arg(list.join(","));
    }
    if let Some(n) = read_buffer {
        cmd.arg("--read-buffer").arg(n.to_string());
    }
    spawn(cmd, "baseline", port, cores, nice)
}

/// Starts the asobi-rs binary: `asobi serve --port P --game-dir DIR` with `ASOBI_SHARDS` =
/// number of cores, `ASOBI_DATA_DIR` = `data_dir`, plus `env`.
pub fn spawn_asobi(
    bin: &Path,
    port: u16,
    game_dir: &Path,
    data_dir: &Path,
    cores: &[usize],
    env: &[(String, String)],
    nice: Option<i32>,
) -> anyhow::Result<ServerProc> {
    std::fs::create_dir_all(data_dir)?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--port")
        .arg(port.to_string())
        .arg("--game-dir")
        .arg(game_dir)
        .env("ASOBI_SHARDS", cores.len().max(1).to_string())
        .env("ASOBI_DATA_DIR", data_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn(cmd, "asobi", port, cores, nice)
}

impl ServerProc {
    /// Waits until the server answers: `GET /api/v1/health` → 200 for asobi, a completed
    /// TCP connect for the baseline. Fails early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let port = self
            .url
            .trim_start_matches("ws://127.0.0.1:")
            .trim_end_matches("/ws")
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                bail!(
                    "{} exited with {status} before becoming ready; log tail:\n{tail}",
                    self.kind
                );
            }
            let ready = if self.kind == "baseline" {
                std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
            } else {
                agent
                    .get(&format!("http://127.0.0.1:{port}/api/v1/health"))
                    .call()
                    .is_ok_and(|r| r.status().as_u16() == 200)
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready after {timeout:?} (log: {})",
                    self.kind,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the process is running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // SIGTERM first so the server can shut down cleanly, then SIGKILL.
        // SAFETY: kill has no memory-safety preconditions; pid is our own child.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
