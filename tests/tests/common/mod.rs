//! Support for the cross-tool hardening tests: the three tools run as
//! separate processes (from the workspace's target directory) with a
//! timeout, a bounded address space and their peak memory measured; the
//! checks every run must pass (output escaped, canaries untouched); a
//! light tree snapshot that does not read whole multi-gigabyte sparse
//! files; mounts that are undone on drop; and a stand-in for qmail-send.
//! `QTESTS_TIMES=1` prints each run's wall time and peak memory.
//!
//! Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use qcommon::queue::Ids;
use qtests::{build_queue, BuildSpec, BuiltQueue};

/// qmail's ids for the practice queues (no such users exist here).
pub const IDS: Ids = Ids { qmailq: 7001, qmails: 7002, qmailr: 7003, qmail_gid: 7004 };
/// The same ids as the tools' `--ids` wants them.
pub const IDS_ARG: &str = "7001:7002:7003:7004";
/// Every command gets at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Peak resident memory allowed to any run.
pub const MAX_RSS_KB: u64 = 200 * 1024;

/// Whether we run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints the skip line CI greps for.
pub fn skipped(test: &str, reason: &str) {
    println!("skipped: {test}: {reason}");
}

/// True when root; prints a skip line otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        true
    } else {
        skipped(test, "needs root (queues owned by qmail's ids, mounts, device nodes)");
        false
    }
}

/// The first of `names` that is an executable on PATH (or an absolute path).
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

// ---------------------------------------------------------------------
// The tools.

/// The workspace's target profile directory (`target/debug`): this test
/// binary is `target/debug/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn newest_source(dirs: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") || p.file_name().is_some_and(|n| n == "Cargo.toml") {
                let t = m.modified().ok();
                if t > newest {
                    newest = t;
                }
            }
        }
    }
    newest
}

const TOOLS: [&str; 3] = ["qfixq", "qstat", "qkillns"];

/// Builds the three tools when a binary is missing or older than its
/// sources (`cargo test --workspace` has built them already: then this
/// costs a few stats).
fn ensure_built() {
    let root = workspace_root();
    let stale = TOOLS.iter().any(|t| {
        let bin = target_dir().join(t);
        let Ok(m) = fs::metadata(&bin) else { return true };
        let srcs = [root.join("qcommon"), root.join(t)];
        newest_source(&srcs) > m.modified().ok()
    });
    if !stale {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    // The same feature set the tools' own tests build them with, so that
    // their crash tests find the crash switch in the binary.
    cmd.current_dir(&root).args(["build", "-p", "qfixq", "-p", "qstat", "-p", "qkillns"]);
    cmd.args(["--features", "qcommon/fault-injection"]);
    if target_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "cargo build of the tools failed");
}

/// The path of a tool's binary, built first when needed.
pub fn tool(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(ensure_built);
    target_dir().join(name)
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
    timeout: Duration,
}

/// `name args...`, to be run.
pub fn cmd(name: &str) -> Invocation {
    Invocation { name: name.to_string(), args: Vec::new(), timeout: TIMEOUT }
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

    /// Another timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs it; stdin is /dev/null; at most 4 GB of address space and 1024
    /// descriptors, as on a typical server. The peak memory comes from
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
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                // A process group of its own, so a timeout kills it all.
                libc::setpgid(0, 0);
                let r = libc::rlimit { rlim_cur: 4 << 30, rlim_max: libc::RLIM_INFINITY };
                libc::setrlimit(libc::RLIMIT_AS, &r);
                let mut nofile = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0 && nofile.rlim_max >= 1024 {
                    nofile.rlim_cur = 1024;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &nofile);
                }
                Ok(())
            });
        }
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
            // SAFETY: zeroed rusage is a valid out-parameter.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: our own child; valid pointers.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if r == pid {
                break (status, ru);
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                panic!("wait4 {what}: {}", std::io::Error::last_os_error());
            }
            if !timed_out && start.elapsed() > self.timeout {
                timed_out = true;
                // SAFETY: signalling our own child's process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(3));
        };
        if timed_out {
            // SAFETY: as above; whatever is left of the group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
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

// ---------------------------------------------------------------------
// Queues.

/// A scratch directory on disk (renumbering needs inode reuse, which
/// tmpfs never does) or on /dev/shm (fast).
pub fn scratch(tmpfs: bool) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if tmpfs && shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("qtests-hard.").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::Builder::new().prefix("qtests-hard.").tempdir().expect("tempdir")
}

/// Builds a practice queue with qmail's ids (when root) at `dir`.
pub fn build(dir: &Path, messages: usize, split: u32, seed: u64, null_sender: f64) -> BuiltQueue {
    let spec = BuildSpec {
        messages,
        split,
        seed,
        null_sender,
        double_bounce: 0.0,
        large: 0.0,
        ids: if is_root() { Some(IDS) } else { None },
        ..BuildSpec::default()
    };
    build_queue(dir, &spec).unwrap_or_else(|e| panic!("build queue at {}: {e:#}", dir.display()))
}

/// Unlocked canaries must keep: kind, size, content, mode, owner, mtime
/// and atime (the link count of a hard-linked canary may drop when its
/// queue name goes; nothing else may change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `b'f'` file, `b'd'` directory, `b'l'` link, `b'p'` FIFO, `b's'` socket, `b'c'`/`b'b'` devices.
    pub kind: u8,
    /// Size.
    pub size: u64,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (ns).
    pub mtime: i128,
    /// Access time (ns).
    pub atime: i128,
    /// Link count.
    pub nlink: u64,
    /// Inode.
    pub ino: u64,
    /// Content hash (first MiB and the size, for a regular file).
    pub hash: Option<u64>,
    /// Target of a link.
    pub target: Option<PathBuf>,
}

/// A light snapshot: every path under a root (the root is `.`), by lstat,
/// never following a link or opening anything but regular files (read
/// with O_NOATIME, at most their first MiB) and directories.
pub type Tree = BTreeMap<PathBuf, Node>;

fn hash_head(p: &Path) -> Option<u64> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let f = match OpenOptions::new().read(true).custom_flags(flags | libc::O_NOATIME).open(p) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new().read(true).custom_flags(flags).open(p),
        r => r,
    }
    .ok()?;
    let mut v = Vec::new();
    f.take(1 << 20).read_to_end(&mut v).ok()?;
    Some(qtests::snapshot::hash_bytes(&v))
}

/// Takes a [`Tree`] of `root`.
pub fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        let p = if rel == Path::new(".") { root.to_path_buf() } else { root.join(&rel) };
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            b'l'
        } else if ft.is_dir() {
            b'd'
        } else if ft.is_fifo() {
            b'p'
        } else if ft.is_socket() {
            b's'
        } else if ft.is_char_device() {
            b'c'
        } else if ft.is_block_device() {
            b'b'
        } else {
            b'f'
        };
        let node = Node {
            kind,
            size: if kind == b'd' { 0 } else { m.size() },
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            atime: i128::from(m.atime()) * 1_000_000_000 + i128::from(m.atime_nsec()),
            nlink: m.nlink(),
            ino: m.ino(),
            hash: if kind == b'f' { hash_head(&p) } else { None },
            target: if kind == b'l' { fs::read_link(&p).ok() } else { None },
        };
        if kind == b'd' {
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    stack.push(if rel == Path::new(".") {
                        PathBuf::from(e.file_name())
                    } else {
                        rel.join(e.file_name())
                    });
                }
            }
        }
        out.insert(rel, node);
    }
    out
}

/// Differences between two trees; `ignore_links` drops link-count changes
/// (and the directory mtime/size changes that come with nothing else).
pub fn tree_diff(a: &Tree, b: &Tree, ignore_links: bool, with_atime: bool) -> Vec<String> {
    let esc = |p: &Path| qcommon::error::escape_path(p);
    let mut d = Vec::new();
    for (p, x) in a {
        let Some(y) = b.get(p) else {
            d.push(format!("removed {}", esc(p)));
            continue;
        };
        let mut w = Vec::new();
        if x.kind != y.kind {
            w.push(format!("kind {} -> {}", x.kind as char, y.kind as char));
        }
        if x.size != y.size {
            w.push(format!("size {} -> {}", x.size, y.size));
        }
        if x.hash != y.hash {
            w.push("content".to_string());
        }
        if x.mode != y.mode {
            w.push(format!("mode {:o} -> {:o}", x.mode, y.mode));
        }
        if (x.uid, x.gid) != (y.uid, y.gid) {
            w.push(format!("owner {}:{} -> {}:{}", x.uid, x.gid, y.uid, y.gid));
        }
        if x.mtime != y.mtime && x.kind != b'd' {
            w.push(format!("mtime {} -> {}", x.mtime, y.mtime));
        }
        // Reading a link's target (as this snapshot does) sets its atime.
        if with_atime && x.atime != y.atime && !matches!(x.kind, b'd' | b'l') {
            w.push(format!("atime {} -> {}", x.atime, y.atime));
        }
        if !ignore_links && x.nlink != y.nlink {
            w.push(format!("links {} -> {}", x.nlink, y.nlink));
        }
        if x.target != y.target {
            w.push(format!("target {:?} -> {:?}", x.target, y.target));
        }
        if x.ino != y.ino {
            w.push(format!("inode {} -> {}", x.ino, y.ino));
        }
        if !w.is_empty() {
            d.push(format!("changed {}: {}", esc(p), w.join(", ")));
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            d.push(format!("added {}", esc(p)));
        }
    }
    d
}

/// Sets the access time of every regular file under `root` to well before
/// its modification time, so that any read that is not O_NOATIME shows
/// (relatime updates an access time older than the modification time).
pub fn age_atimes(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                set_atime(&p, m.mtime() - 100_000);
            }
        }
    }
}

/// Sets a file's access time (not following a link), keeping its mtime.
pub fn set_atime(p: &Path, t: i64) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL");
    let ts = [
        libc::timespec { tv_sec: t as libc::time_t, tv_nsec: 0 },
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
    ];
    // SAFETY: valid C string and array of two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(r, 0, "utimensat {}: {}", p.display(), std::io::Error::last_os_error());
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

// ---------------------------------------------------------------------
// Mounts and loop devices, undone on drop.

/// A mount made by a test; unmounted (lazily, if busy) on drop.
#[derive(Debug)]
pub struct Mount {
    /// Where.
    pub dir: PathBuf,
    /// The loop device behind it, detached after the unmount.
    pub loopdev: Option<PathBuf>,
}

impl Mount {
    /// `mount -t tmpfs -o OPTS tmpfs DIR`.
    pub fn tmpfs(dir: &Path, opts: &str) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(opts))
            .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        Ok(Mount { dir: dir.to_path_buf(), loopdev: None })
    }

    /// Unmounts now (panics on failure).
    pub fn unmount(&mut self) {
        if let Err(e) = nix::mount::umount(&self.dir) {
            panic!("umount {}: {e}", self.dir.display());
        }
        self.dir = PathBuf::new();
        self.detach();
    }

    fn detach(&mut self) {
        if let Some(l) = self.loopdev.take() {
            let _ = Command::new("losetup").arg("-d").arg(&l).status();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() && nix::mount::umount(&self.dir).is_err() {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        self.detach();
    }
}

/// Runs a program, its stdout on success, a one-line reason on failure.
pub fn sh(prog: &Path, args: &[&OsStr]) -> Result<String, String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{}: {e}", prog.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {:?}: {}: {}",
            prog.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The programs a loop-mounted ext2 image needs.
#[derive(Debug, Clone)]
pub struct E2Tools {
    /// mkfs.ext2.
    pub mkfs: PathBuf,
    /// debugfs.
    pub debugfs: PathBuf,
    /// losetup.
    pub losetup: PathBuf,
}

impl E2Tools {
    /// Finds them, or says which package is missing.
    pub fn find() -> Result<E2Tools, String> {
        match (which("mkfs.ext2"), which("debugfs"), which("losetup")) {
            (Some(mkfs), Some(debugfs), Some(losetup)) => Ok(E2Tools { mkfs, debugfs, losetup }),
            _ => Err("mkfs.ext2, debugfs and losetup are needed (packages e2fsprogs and mount)".into()),
        }
    }
}

/// Mounts `dev` (ext2, through the ext2 or the ext4 driver) on `dir`.
pub fn mount_ext2(dev: &Path, dir: &Path) -> Result<(), String> {
    let m = |t: &str| nix::mount::mount(Some(dev), dir, Some(t), nix::mount::MsFlags::empty(), None::<&str>);
    m("ext2").or_else(|_| m("ext4")).map_err(|e| format!("mount {} on {}: {e}", dev.display(), dir.display()))
}

/// Makes an ext2 image `img` of `blocks` 1 KiB blocks and `inodes`
/// inodes, attaches it to a loop device and mounts it on `dir`.
pub fn loop_ext2(t: &E2Tools, img: &Path, dir: &Path, blocks: u64, inodes: u32) -> Result<Mount, String> {
    fs::File::create(img).and_then(|f| f.set_len(blocks * 1024)).map_err(|e| format!("image: {e}"))?;
    let os = |s: &str| OsString::from(s);
    let n = inodes.to_string();
    sh(&t.mkfs, &[&os("-q"), &os("-F"), &os("-b"), &os("1024"), &os("-N"), &os(&n), img.as_os_str()])?;
    let dev = PathBuf::from(sh(&t.losetup, &[&os("-f"), &os("--show"), img.as_os_str()])?.trim());
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    if let Err(e) = mount_ext2(&dev, dir) {
        let _ = Command::new(&t.losetup).arg("-d").arg(&dev).status();
        return Err(e);
    }
    Ok(Mount { dir: dir.to_path_buf(), loopdev: Some(dev) })
}

// ---------------------------------------------------------------------
// A stand-in for qmail-send.

/// A process (python3, else perl) that holds an exclusive flock on a file
/// (when given), calls itself `name` (when given; through
/// /proc/self/comm), optionally changes its working directory, and sleeps
/// until killed; SIGALRM is ignored. Killed on drop.
#[derive(Debug)]
pub struct StandIn {
    child: std::process::Child,
}

impl StandIn {
    /// Starts one; `None` when neither python3 nor perl is there.
    pub fn start(lock: Option<&Path>, name: Option<&str>, cwd: Option<&Path>) -> Option<StandIn> {
        let ready = tempfile::NamedTempFile::new().ok()?.into_temp_path();
        let ready_path = ready.to_path_buf();
        fs::remove_file(&ready_path).ok()?;
        let lock_s = lock.map_or(String::from("-"), |p| p.display().to_string());
        let name_s = name.unwrap_or("-").to_string();
        let mut c = if which("python3").is_some() {
            let script = r#"
import fcntl, os, signal, sys, time
lock, name, ready = sys.argv[1], sys.argv[2], sys.argv[3]
signal.signal(signal.SIGALRM, signal.SIG_IGN)
if name != '-':
    with open('/proc/self/comm', 'w') as f:
        f.write(name)
fd = None
if lock != '-':
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
open(ready, 'w').close()
while True:
    time.sleep(1)
"#;
            let mut c = Command::new("python3");
            c.arg("-c").arg(script);
            c
        } else if which("perl").is_some() {
            let script = r#"
use Fcntl qw(:flock);
my ($lock, $name, $ready) = @ARGV;
$SIG{ALRM} = 'IGNORE';
$0 = $name if $name ne '-';
our $L;
if ($lock ne '-') { open($L, '<', $lock) or die "open: $!"; flock($L, LOCK_EX) or die "flock: $!"; }
open(my $r, '>', $ready) or die; close $r;
while (1) { sleep 1; }
"#;
            let mut c = Command::new("perl");
            c.arg("-e").arg(script);
            c
        } else {
            return None;
        };
        c.arg(lock_s).arg(name_s).arg(&ready_path).stdin(Stdio::null());
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let mut child = c.spawn().ok()?;
        let start = Instant::now();
        while !ready_path.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("stand-in exited early: {st}");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "stand-in did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = fs::remove_file(&ready_path);
        Some(StandIn { child })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name as the kernel has it.
    pub fn comm(&self) -> String {
        fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap_or_default().trim().to_string()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Regular files directly in the buckets of a split part directory (or
/// in the directory itself), by number, for counting what a queue holds.
pub fn numeric_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return v };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        let name = e.file_name();
        if m.is_dir() {
            for e2 in fs::read_dir(&p).into_iter().flatten().flatten() {
                if e2.file_type().is_ok_and(|t| t.is_file()) {
                    if let Some(n) = qcommon::safe_fs::parse_number(e2.file_name().as_bytes()) {
                        v.push((n, e2.path()));
                    }
                }
            }
        } else if m.is_file() {
            if let Some(n) = qcommon::safe_fs::parse_number(name.as_bytes()) {
                v.push((n, p));
            }
        }
    }
    v.sort();
    v
}

/// Reads a regular file (its first 16 MiB at most), never through a link.
pub fn read_nofollow(p: &Path) -> std::io::Result<Vec<u8>> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(p)?;
    let mut v = Vec::new();
    f.take(16 << 20).read_to_end(&mut v)?;
    Ok(v)
}

/// Opens a file and takes an exclusive flock on it, held while the
/// returned file lives.
pub fn hold_flock(p: &Path) -> File {
    let f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    // SAFETY: a valid descriptor.
    let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0, "flock {}: {}", p.display(), std::io::Error::last_os_error());
    f
}
