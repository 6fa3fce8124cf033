//! The one runner of the tools' binaries: finds a tool next to the test
//! executable (`target/<profile>/`, where cargo put it; no test ever runs
//! cargo), runs it as a separate process with a time limit, a bounded
//! address space and its peak memory measured, and holds the checks every
//! run must pass (ended by itself, memory bounded, output escaped).
//! `QTESTS_TIMES=1` prints each run's wall time and peak memory.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::ids::IDS_ARG;

/// Every command gets at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Peak resident memory allowed to any run.
pub const MAX_RSS_KB: u64 = 200 * 1024;

/// The first directory of PATH (or of the sbin directories, which are not
/// on every PATH) holding `name`; `name` itself when absolute.
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // sbin is not on every PATH; mkfs and friends live there.
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|f| f.is_file())
}

/// The workspace's target profile directory (`target/debug`): a test
/// binary is `target/<profile>/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// The path of a tool's binary (`qfixq`, `qstat`, `qkillns`), as cargo
/// built it beside this test binary. Panics when it is missing: a
/// package's own tests have their binary built by cargo, and
/// `cargo test --workspace` builds every tool before any test runs.
pub fn tool(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.is_file(),
        "the {name} binary is missing at {}: build the tools first (`cargo test --workspace` builds them all, \
         `cargo build -p {name} --features qcommon/fault-injection` builds this one)",
        p.display()
    );
    p
}

/// One finished run of a tool.
#[derive(Debug)]
pub struct Run {
    /// `tool arg...`, for messages.
    pub what: String,
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Peak resident memory (kB), from wait4's rusage.
    pub max_rss_kb: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Killed for running past the timeout.
    pub timed_out: bool,
}

impl Run {
    /// Standard output, lossy.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error, lossy.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything, for a failure message (long outputs cut in the middle).
    pub fn show(&self) -> String {
        let cut = |s: String| {
            if s.len() <= 16_000 {
                return s;
            }
            let mut a = 8_000;
            while !s.is_char_boundary(a) {
                a -= 1;
            }
            let mut b = s.len() - 8_000;
            while !s.is_char_boundary(b) {
                b += 1;
            }
            format!("{}\n[... {} bytes ...]\n{}", &s[..a], b - a, &s[b..])
        };
        format!(
            "{}: code {:?} signal {:?} timed out {} rss {} kB in {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            self.signal,
            self.timed_out,
            self.max_rss_kb,
            self.elapsed,
            cut(self.out()),
            cut(self.err())
        )
    }

    /// Panics unless it exited with `code`.
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "expected exit {code}\n{}", self.show());
        self
    }

    /// Panics unless it exited with one of `codes`.
    pub fn expect_any(&self, codes: &[i32]) -> &Run {
        assert!(self.code.is_some_and(|c| codes.contains(&c)), "expected exit in {codes:?}\n{}", self.show());
        self
    }

    /// The ground rules of every run: ended by itself within the timeout,
    /// not killed by a signal, memory bounded, output escaped.
    pub fn assert_sane(&self) -> &Run {
        assert!(!self.timed_out, "hung (killed after {TIMEOUT:?})\n{}", self.show());
        assert!(self.signal.is_none(), "killed by signal\n{}", self.show());
        assert!(self.max_rss_kb < MAX_RSS_KB, "peak memory {} kB\n{}", self.max_rss_kb, self.show());
        assert_escaped(&self.stdout, "stdout", self);
        assert_escaped(&self.stderr, "stderr", self);
        self
    }
}

/// Output must be valid UTF-8 without any control character but newline
/// and tab (no escape sequence, no carriage return, no C1 control).
pub fn assert_escaped(bytes: &[u8], which: &str, run: &Run) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => panic!("{which} is not valid UTF-8 ({e})\n{}", run.show()),
    };
    for (i, c) in text.char_indices() {
        if c.is_control() && c != '\n' && c != '\t' {
            let start = text[..i].rfind('\n').map_or(0, |k| k + 1);
            panic!(
                "{which} holds the raw control character {c:?} at byte {i}, in the line {:?}\n{}",
                &text[start..(i + 40).min(text.len())],
                run.show()
            );
        }
    }
}

/// How to run a tool.
#[derive(Debug, Clone)]
pub struct Invocation {
    name: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    /// The descriptor limit to set (None: the inherited one).
    max_files: Option<u64>,
}

/// `name args...`, to be run.
pub fn cmd(name: &str) -> Invocation {
    Invocation { name: name.to_string(), args: Vec::new(), env: Vec::new(), timeout: TIMEOUT, max_files: Some(1024) }
}

impl Invocation {
    /// One argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Several arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, it: I) -> Self {
        for a in it {
            self.args.push(a.as_ref().to_os_string());
        }
        self
    }

    /// `--queue Q --split S --ids IDS`.
    pub fn queue(self, q: &Path, split: u32) -> Self {
        self.arg("--queue").arg(q).arg("--split").arg(split.to_string()).arg("--ids").arg(IDS_ARG)
    }

    /// One environment variable (`QTOOLS_ABORT_AFTER_STEP` is removed
    /// from the inherited environment unless given here).
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env.push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Keeps the inherited limit on open descriptors instead of 1024.
    pub fn inherit_max_files(mut self) -> Self {
        self.max_files = None;
        self
    }

    /// Another timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs it; stdin is /dev/null; at most 4 GB of address space and 1024
    /// descriptors (unless inherited), as on a typical server. The peak memory comes from
    /// GNU time's `%M` when /usr/bin/time is there (this test process may
    /// be big when it forks, and a fork's peak counts what it inherited),
    /// else from wait4.
    // The child is reaped by wait4 below, which also gives its rusage.
    #[allow(clippy::zombie_processes)]
    pub fn run(&self) -> Run {
        let what = std::iter::once(self.name.clone())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let time = Path::new("/usr/bin/time");
        let rss_file = tempfile::NamedTempFile::new().expect("temp file").into_temp_path();
        let mut c = if time.is_file() {
            let mut c = Command::new(time);
            c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg("--").arg(tool(&self.name));
            c
        } else {
            Command::new(tool(&self.name))
        };
        c.args(&self.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.env_remove("QTOOLS_ABORT_AFTER_STEP");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        // A process group of its own, so a timeout kills it all.
        c.process_group(0);
        let max_files = self.max_files;
        let limits = move || {
            use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
            let _ = setrlimit(Resource::RLIMIT_AS, 4 << 30, RLIM_INFINITY);
            if let Some(max) = max_files {
                if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
                    if hard >= max {
                        let _ = setrlimit(Resource::RLIMIT_NOFILE, max, hard);
                    }
                }
            }
            Ok(())
        };
        // SAFETY: `limits` only calls getrlimit and setrlimit (async-signal-
        // safe, no allocation, no lock), as code between fork and exec must.
        // No safe wrapper exists: std's `pre_exec` is the only way to run
        // code in the child before exec, and neither std nor nix sets
        // another process's limits before it runs.
        unsafe { c.pre_exec(limits) };
        let start = Instant::now();
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let mut so = child.stdout.take().expect("stdout");
        let mut se = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let pid = child.id() as libc::pid_t;
        let mut timed_out = false;
        let (status, rusage) = loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value of this plain C
            // struct (it has no Default, and nix no wait4 filling one).
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: pid is our own unreaped child; status and ru are valid
            // out-pointers for the call. Neither std nor nix wraps wait4, the
            // one call that gives the child's own resource usage.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if r == pid {
                break (status, ru);
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                panic!("wait4 {what}: {}", std::io::Error::last_os_error());
            }
            if !timed_out && start.elapsed() > self.timeout {
                timed_out = true;
                // Our own child's process group.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(3));
        };
        if timed_out {
            // Whatever is left of the group.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let elapsed = start.elapsed();
        let stdout = t_out.join().unwrap_or_default();
        let stderr = t_err.join().unwrap_or_default();
        let (mut code, mut signal) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None)
        } else {
            (None, Some(libc::WTERMSIG(status)))
        };
        let mut max_rss_kb = rusage.ru_maxrss as u64;
        if time.is_file() {
            let report = fs::read_to_string(&rss_file).unwrap_or_default();
            for line in report.lines() {
                if let Some(n) = line.strip_prefix("Command terminated by signal ") {
                    signal = n.trim().parse().ok();
                    code = None;
                } else if let Ok(kb) = line.trim().parse::<u64>() {
                    max_rss_kb = kb;
                }
            }
        }
        if std::env::var_os("QTESTS_TIMES").is_some() {
            eprintln!("[{:>8.3}s {:>7} kB] {what}", elapsed.as_secs_f64(), max_rss_kb);
        }
        Run { what, code, signal, stdout, stderr, max_rss_kb, elapsed, timed_out }
    }
}

/// Panics listing `diff` when it is not empty.
pub fn assert_no_diff(diff: &[String], what: &str, run: Option<&Run>) {
    if !diff.is_empty() {
        let shown: Vec<&str> = diff.iter().take(40).map(String::as_str).collect();
        panic!(
            "{what}: {} differences:\n  {}\n{}",
            diff.len(),
            shown.join("\n  "),
            run.map(Run::show).unwrap_or_default()
        );
    }
}
