//! Operating-system facts and knobs the load tool needs: file-descriptor and locked-memory
//! limits, CPU pinning, CPU time and resident memory of a process, and a description of the
//! machine and checkout a result was measured on. Linux only, by design: every figure here
//! comes from `/proc` or a Linux syscall.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Raises `RLIMIT_NOFILE` as far as the kernel lets this process: first to `fs.nr_open`
/// (possible with `CAP_SYS_RESOURCE`), otherwise the soft limit up to the hard limit.
/// Returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    if set_limit(libc::RLIMIT_NOFILE, nr_open, nr_open).is_err() {
        if let Some((_, hard)) = get_limit(libc::RLIMIT_NOFILE) {
            let _ = set_limit(libc::RLIMIT_NOFILE, hard, hard);
        }
    }
    get_limit(libc::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

/// Raises `RLIMIT_MEMLOCK` to unlimited when allowed; glommio registers its io_uring
/// buffers as locked memory, and a spawned server inherits the limit.
pub fn raise_memlock() {
    if set_limit(
        libc::RLIMIT_MEMLOCK,
        libc::RLIM_INFINITY,
        libc::RLIM_INFINITY,
    )
    .is_err()
    {
        if let Some((_, hard)) = get_limit(libc::RLIMIT_MEMLOCK) {
            let _ = set_limit(libc::RLIMIT_MEMLOCK, hard, hard);
        }
    }
}

fn get_limit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(resource, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A CPU mask built ahead of time so it can be applied after `fork` without allocating.
#[derive(Clone, Copy)]
pub struct CpuMask(libc::cpu_set_t);

impl CpuMask {
    /// Mask containing exactly `cores`.
    pub fn new(cores: &[usize]) -> Self {
        // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cores {
            if c < libc::CPU_SETSIZE as usize {
                // SAFETY: `c` is within the set's capacity, checked above.
                unsafe { libc::CPU_SET(c, &mut set) };
            }
        }
        CpuMask(set)
    }

    /// Pins the calling thread (pid 0 = self) to this mask. Async-signal-safe: one syscall.
    pub fn apply_to_current_thread(&self) -> io::Result<()> {
        // SAFETY: the set is a valid cpu_set_t of the size we pass.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Sets the calling thread's nice value (threads it creates afterwards inherit it). A
/// negative value needs `CAP_SYS_NICE`. Async-signal-safe: one syscall.
pub fn set_nice(value: i32) -> io::Result<()> {
    // SAFETY: setpriority has no memory-safety preconditions; who = 0 means this thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pins the calling thread to `cores`; an empty list leaves it unpinned.
pub fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    if cores.is_empty() {
        return Ok(());
    }
    CpuMask::new(cores).apply_to_current_thread()
}

/// Number of online CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds consumed so far by process `pid` (all its threads),
/// from `/proc/<pid>/stat` fields 14 and 15.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// User + system CPU seconds consumed so far by this process, all threads (getrusage).
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid and writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds all processes on the machine have spent busy so far (user, nice, system,
/// irq, softirq, steal from the `cpu` line of /proc/stat). Subtracting the server's and the
/// client's share shows how much other load competed with the measurement.
pub fn system_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy =
        v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0.0);
    Some(busy / clock_ticks())
}

/// The 1-minute load average.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

fn status_field_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Where and on what a result was measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// Total memory in MiB.
    pub mem_total_mib: u64,
}

/// Describes this machine.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    Machine {
        cores: cpu_count(),
        cpu_model,
        kernel: read("/proc/sys/kernel/osrelease"),
        hostname: read("/proc/sys/kernel/hostname"),
        mem_total_mib,
    }
}

/// `git rev-parse HEAD` of the checkout the tool runs in, if any.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `path (N bytes, modified <UTC>)` for an executable, for result provenance.
pub fn describe_file(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(format!(
        "{} ({} bytes, modified {})",
        path.display(),
        meta.len(),
        utc_format(modified).0
    ))
}

/// The repository root (`git rev-parse --show-toplevel`), if the tool runs inside one.
pub fn git_toplevel() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().into())
}

/// The exact command line, shell-quoted where needed, so it can be pasted back.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Current UTC time as (`2025-01-31T12:34:56Z`, `20250131-123456`).
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_format(secs)
}

fn utc_format(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (h, m, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    // Civil-from-days (proleptic Gregorian), valid for the whole u64-seconds range we meet.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_format(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(utc_format(951_782_400).0, "2000-02-29T00:00:00Z");
        assert_eq!(utc_format(1_730_000_000).1, "20241027-033320");
    }

    #[test]
    fn reads_own_process_figures() {
        let pid = std::process::id();
        assert!(proc_rss_kib(pid).unwrap() > 0);
        assert!(proc_cpu_seconds(pid).is_some());
        assert!(self_cpu_seconds() >= 0.0);
        assert!(system_busy_seconds().unwrap() > 0.0);
        assert!(loadavg_1m().is_some());
        assert!(machine().cores >= 1);
    }
}
