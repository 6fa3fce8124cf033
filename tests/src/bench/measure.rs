//! Measuring one child process: wall time from spawn to reaping, and what
//! the kernel accounts to it when `wait4` reaps it (user and system time,
//! peak RSS), plus the I/O it did, read from this process's own
//! `/proc/self/io` before and after: Linux adds a reaped child's I/O
//! counters (and those of the descendants it reaped) to its parent's, so
//! the difference is the child's `rchar` (bytes through read calls),
//! `syscr` (read calls) and `read_bytes` (bytes fetched from storage).
//!
//! Also owns the machine-level helpers: dropping the page cache, reading
//! the load average, waiting for a quiet machine, and free disk space.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What one run of a command cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Wall time, seconds.
    pub wall: f64,
    /// User CPU time, seconds (the child and the descendants it reaped).
    pub user: f64,
    /// System CPU time, seconds (likewise).
    pub sys: f64,
    /// Peak resident set size, KB: the largest of the child and its reaped
    /// descendants (not their sum).
    pub maxrss_kb: u64,
    /// Bytes returned by read-type system calls (`rchar`).
    pub rchar: u64,
    /// Read-type system calls (`syscr`).
    pub syscr: u64,
    /// Bytes the block layer fetched from storage (`read_bytes`): zero on
    /// a fully warm cache.
    pub read_bytes: u64,
    /// Exit status (128 + signal for a killed child).
    pub status: i32,
}

/// The I/O counters of `/proc/self/io` this module uses.
#[derive(Debug, Clone, Copy, Default)]
struct IoCounters {
    rchar: u64,
    syscr: u64,
    read_bytes: u64,
}

fn self_io() -> IoCounters {
    let mut c = IoCounters::default();
    let Ok(text) = std::fs::read_to_string("/proc/self/io") else {
        return c;
    };
    for line in text.lines() {
        let mut it = line.split(':');
        let (Some(k), Some(v)) = (it.next(), it.next()) else { continue };
        let v = v.trim().parse().unwrap_or(0);
        match k {
            "rchar" => c.rchar = v,
            "syscr" => c.syscr = v,
            "read_bytes" => c.read_bytes = v,
            _ => {}
        }
    }
    c
}

fn timeval(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Runs `argv` with stdin and stdout on /dev/null and stderr to
/// `stderr_file`, reaps it with `wait4` and returns what it cost.
pub fn run(argv: &[String], stderr_file: &Path) -> Result<Sample> {
    let Some((prog, args)) = argv.split_first() else { bail!("empty command") };
    let err = File::create(stderr_file).with_context(|| format!("create {}", stderr_file.display()))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    let io0 = self_io();
    let t0 = Instant::now();
    let child = cmd.spawn().with_context(|| format!("run {prog}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct
    // (it has no Default, and nix no wait4 filling one).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child; status and ru are valid
        // out-pointers for the duration of the call. Neither std nor nix
        // wraps wait4, the one call that gives the child's own usage.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let io1 = self_io();
    // The child is reaped: std's handle must not wait for it again.
    drop(child);
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    Ok(Sample {
        wall,
        user: timeval(ru.ru_utime),
        sys: timeval(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss.max(0) as u64,
        rchar: io1.rchar.saturating_sub(io0.rchar),
        syscr: io1.syscr.saturating_sub(io0.syscr),
        read_bytes: io1.read_bytes.saturating_sub(io0.read_bytes),
        status,
    })
}

/// Runs `f` in a forked child and waits for it. Work that needs memory
/// (building a queue, a damage that scans 1M messages) runs this way so
/// that it does not raise this process's peak RSS: Linux reports as the
/// peak RSS of a spawned child at least the peak of the process that
/// spawned it (std spawns with vfork, and exec folds the old address
/// space's high-water mark into the child's figure), so every later
/// measurement would be floored at it.
pub fn in_child(what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    // SAFETY: qbench has one thread whenever it calls this (the builder's
    // threads are scoped and joined before it returns), so the child may
    // run any code. A fork that does not exec has no safe wrapper (nix
    // marks `fork` unsafe; std only forks to exec at once).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    let _ = io::Write::write_all(&mut io::stderr(), format!("qbench: {what}: {e:#}\n").as_bytes());
                    1
                }
            };
            // SAFETY: ends the child without running the parent's exit
            // handlers or flushing its buffers a second time; `_exit` has
            // no safe wrapper in std or nix (`std::process::exit` runs them).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).context("waitpid")? {
            WaitStatus::Exited(_, 0) => Ok(()),
            other => bail!("{what}: failed ({other:?})"),
        },
    }
}

/// Writes back dirty pages and drops the page cache, dentries and inodes
/// (`sync; echo 3 > /proc/sys/vm/drop_caches`): root only.
pub fn drop_caches() -> Result<()> {
    sync();
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").context("echo 3 > /proc/sys/vm/drop_caches (root only)")
}

/// `sync(2)`: so that a freshly built queue's dirty pages are not written
/// back during a measurement.
pub fn sync() {
    nix::unistd::sync();
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = [0.0; 3];
    for (i, f) in text.split_whitespace().take(3).enumerate() {
        v[i] = f.parse().unwrap_or(0.0);
    }
    v
}

/// Polls the load average every 30 s until the 1-minute figure is below
/// `threshold` or `max` has passed; `log` is told about each poll.
/// Returns whether the machine got quiet.
pub fn wait_quiet(threshold: f64, max: Duration, mut log: impl FnMut(&str)) -> bool {
    let t0 = Instant::now();
    loop {
        let l = loadavg();
        if l[0] < threshold {
            log(&format!("load {:.2} {:.2} {:.2}: quiet enough", l[0], l[1], l[2]));
            return true;
        }
        if t0.elapsed() >= max {
            log(&format!(
                "load {:.2} {:.2} {:.2}: still busy after {} s; measuring anyway",
                l[0],
                l[1],
                l[2],
                max.as_secs()
            ));
            return false;
        }
        log(&format!("load {:.2} {:.2} {:.2}: waiting for < {threshold}", l[0], l[1], l[2]));
        std::thread::sleep(Duration::from_secs(30));
    }
}

/// Bytes available to the caller on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        let dir = tempfile::tempdir().unwrap();
        let err = dir.path().join("err");
        let argv: Vec<String> =
            ["sh", "-c", "head -c 1000000 /dev/zero | cat > /dev/null; exit 3"].iter().map(|s| s.to_string()).collect();
        let s = run(&argv, &err).unwrap();
        assert_eq!(s.status, 3);
        assert!(s.wall > 0.0);
        assert!(s.maxrss_kb > 0);
        assert!(s.rchar >= 1_000_000, "rchar {}", s.rchar);
    }

    #[test]
    fn work_in_a_child_reports_failure() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("made");
        in_child("touch", || std::fs::write(&f, b"x").map_err(Into::into)).unwrap();
        assert!(f.exists(), "the child's work is visible to the parent");
        assert!(in_child("fail", || bail!("no")).is_err());
    }
}
