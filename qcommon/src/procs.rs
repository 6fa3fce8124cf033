//! Running processes that use a queue: this module owns reading `/proc` to
//! tell which processes use a queue and which merely look as if they might.
//!
//! A process uses the queue only when it does: it is alive (not a zombie)
//! and holds the queue's `lock/sendmutex`, or works inside the queue (its
//! working directory is the queue or below it: qmail-send itself, a
//! qmail-queue in flight), or has a file inside the queue open. A process
//! named like one of qmail's queue programs ([`QMAIL_NAMES`]) that does
//! none of these is listed as elsewhere and ignored: a qmail-send serving
//! another queue, a qmail-smtpd, a zombie that its parent has not reaped.
//! A qmail-named process whose working directory and open files cannot be
//! read at all is counted as using the queue, since nothing says it does
//! not ([`Reason::Unreadable`]).
//!
//! Everything is read from a `/proc` root given by the caller (normally
//! `/proc`; tests build a fake one). Processes that vanish while they are
//! looked at, or whose details this process may not read, are skipped
//! without an error. The calling process is never listed; it is known by
//! what `<proc_root>/self` names, so a tool running in a pid namespace
//! (where its own pid differs from the one a host `/proc` shows) still
//! knows itself.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{escape_path, Error, Escaped, Result};
use crate::lock::lock_holders_at;
use crate::safe_fs::{io_errno, parse_number};

/// Program names (as in `/proc/PID/comm`) of qmail programs that write to
/// or run on the queue.
pub const QMAIL_NAMES: [&str; 5] = ["qmail-send", "qmail-queue", "qmail-smtpd", "qmail-qmtpd", "qmail-qmqpd"];

/// Why a process was listed by [`find_queue_processes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It holds a `flock` on the queue's `lock/sendmutex`: it uses the queue.
    HoldsSendmutex,
    /// Its working directory is the queue or inside it (the path is the
    /// working directory as `/proc/PID/cwd` names it): it uses the queue.
    CwdInQueue(PathBuf),
    /// It has this file (or directory) inside the queue open: it uses the
    /// queue.
    FileOpen(PathBuf),
    /// Its name is one of [`QMAIL_NAMES`], it is alive, and neither its
    /// working directory nor its open files could be read: counted as
    /// using the queue.
    Unreadable,
    /// Its name is one of [`QMAIL_NAMES`], but it works elsewhere (the
    /// path is its working directory) and has nothing in the queue open:
    /// it does not use the queue and is ignored.
    Elsewhere(PathBuf),
    /// Its name is one of [`QMAIL_NAMES`], but it is a zombie (it has
    /// exited and its parent has not reaped it yet): it holds nothing and
    /// is ignored.
    Zombie,
}

impl Reason {
    /// True when the process uses the queue (see the module notes): every
    /// reason but [`Reason::Elsewhere`] and [`Reason::Zombie`].
    pub fn uses_queue(&self) -> bool {
        !matches!(self, Reason::Elsewhere(_) | Reason::Zombie)
    }
}

/// A process found using the queue, or named like qmail's and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProcess {
    /// Process id.
    pub pid: u32,
    /// Its name from `/proc/PID/comm`, with control and non-ASCII bytes
    /// escaped so it is safe to print; `?` when it could not be read.
    pub name: String,
    /// Why it was listed (the first that applies of: zombie, holder of
    /// `lock/sendmutex`, working directory in the queue, a file in the
    /// queue open, qmail name with nothing readable, qmail name elsewhere).
    pub reason: Reason,
}

impl QueueProcess {
    /// True when it uses the queue ([`Reason::uses_queue`]).
    pub fn uses_queue(&self) -> bool {
        self.reason.uses_queue()
    }

    /// Why it was listed, in words safe to print (paths escaped), e.g.
    /// `working in /var/qmail/queue` or `serving another queue (working in
    /// /var/qmail2/queue): ignored`.
    pub fn why(&self) -> String {
        match &self.reason {
            Reason::HoldsSendmutex => "holds lock/sendmutex".to_string(),
            Reason::CwdInQueue(d) => format!("working in {}", escape_path(d)),
            Reason::FileOpen(f) => format!("has {} open", escape_path(f)),
            Reason::Unreadable => "where it works cannot be read: counted as using this queue".to_string(),
            Reason::Elsewhere(d) if self.name == "qmail-send" => {
                format!("serving another queue (working in {}): ignored", escape_path(d))
            }
            Reason::Elsewhere(d) => format!("not using this queue (working in {}): ignored", escape_path(d)),
            Reason::Zombie => "zombie, already exited: ignored".to_string(),
        }
    }

    /// `NAME pid PID (WHY)`, safe to print.
    pub fn describe(&self) -> String {
        format!("{} pid {} ({})", self.name, self.pid, self.why())
    }
}

/// The canonical path of `p` (every link resolved), as
/// [`find_queue_processes`] wants the queue.
pub fn real_path(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::sys("resolve", p, io_errno(&e)))
}

/// Lists, sorted by pid and each once, the processes using the queue
/// whose canonical path is `queue_real_path` (working in it or with a
/// file in it open) and the processes named like a qmail queue program
/// ([`QMAIL_NAMES`]) that do not use it (with [`Reason::Elsewhere`] or
/// [`Reason::Zombie`]; see [`QueueProcess::uses_queue`]). `proc_root` is
/// normally `/proc`.
pub fn find_queue_processes(queue_real_path: &Path, proc_root: &Path) -> Result<Vec<QueueProcess>> {
    find_queue_processes_locking(queue_real_path, None, proc_root)
}

/// [`find_queue_processes`], also listing the holders of
/// `lock/sendmutex` when its device and inode are given (see
/// [`crate::lock::SendLock::inode`]); the holders are read from
/// `<proc_root>/locks`.
pub fn find_queue_processes_locking(
    queue_real_path: &Path,
    sendmutex: Option<(u64, u64)>,
    proc_root: &Path,
) -> Result<Vec<QueueProcess>> {
    let holders = match sendmutex {
        Some((dev, ino)) => lock_holders_at(proc_root, dev, ino)?,
        None => Vec::new(),
    };
    let mut found = Vec::new();
    for pid in pids(proc_root)? {
        if let Some(p) = classify(proc_root, pid, queue_real_path, holders.binary_search(&pid).is_ok()) {
            found.push(p);
        }
    }
    Ok(found)
}

/// Decides whether `pid` is listed, and why. `None`: not listed (gone, or
/// neither using the queue nor named like qmail's programs).
fn classify(proc_root: &Path, pid: u32, queue: &Path, holds: bool) -> Option<QueueProcess> {
    let dir = proc_root.join(pid.to_string());
    let comm = read_comm(&dir)?;
    let qmail_named = comm.as_deref().is_some_and(is_qmail_name);
    let name = match &comm {
        Some(c) => Escaped(c).to_string(),
        None => "?".to_string(),
    };
    let listed = |reason| Some(QueueProcess { pid, name: name.clone(), reason });
    let (state, forked_no_exec) = read_state(&dir);
    match state {
        // A zombie holds nothing and works nowhere; a lock holder's pid
        // that is now a zombie is a stale number.
        State::Zombie => return if qmail_named { listed(Reason::Zombie) } else { None },
        State::Gone => return None,
        State::Alive => {}
    }
    if holds {
        return listed(Reason::HoldsSendmutex);
    }
    let cwd = match std::fs::read_link(dir.join("cwd")) {
        Ok(p) => Some(p),
        Err(e) if vanished(&e) && !dir.exists() => return None,
        Err(_) => None,
    };
    if let Some(c) = cwd.as_deref().filter(|c| is_inside(c, queue)) {
        return listed(Reason::CwdInQueue(c.to_path_buf()));
    }
    let open = open_files(&dir, queue, forked_no_exec);
    if let Some(f) = open.inside {
        return listed(Reason::FileOpen(f));
    }
    if !qmail_named {
        return None;
    }
    match cwd {
        Some(c) if open.readable => listed(Reason::Elsewhere(c)),
        // Nothing could be read: it may have exited meanwhile.
        _ => match read_state(&dir).0 {
            State::Zombie => listed(Reason::Zombie),
            State::Gone => None,
            // Whether it works in the queue cannot be told.
            State::Alive => listed(Reason::Unreadable),
        },
    }
}

/// The pids of the qmail-send running on the queue `queue_real_path`:
/// first the holders of `lock/sendmutex` (when its device and inode are
/// given) from `<proc_root>/locks`, then the processes named `qmail-send`
/// that use the queue (see the module notes; one that works in another
/// queue, or a zombie, is left out). Each pid appears once; the calling
/// process (which may hold the lock itself) never does, nor does a holder
/// that is gone or a zombie.
pub fn find_qmail_send(queue_real_path: &Path, sendmutex: Option<(u64, u64)>, proc_root: &Path) -> Result<Vec<u32>> {
    let found = find_queue_processes_locking(queue_real_path, sendmutex, proc_root)?;
    let mut out: Vec<u32> = found.iter().filter(|p| p.reason == Reason::HoldsSendmutex).map(|p| p.pid).collect();
    out.extend(
        found
            .iter()
            .filter(|p| p.reason != Reason::HoldsSendmutex && p.uses_queue() && p.name == "qmail-send")
            .map(|p| p.pid),
    );
    Ok(out)
}

/// The pid of the calling process as `proc_root` shows it: what
/// `<proc_root>/self` names, else (a fake `/proc` without it) this
/// process's own idea of its pid.
fn own_pid(proc_root: &Path) -> u32 {
    std::fs::read_link(proc_root.join("self"))
        .ok()
        .and_then(|p| parse_number(p.as_os_str().as_bytes()))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(std::process::id)
}

/// The numeric entries of `proc_root`, sorted, without the calling process.
fn pids(proc_root: &Path) -> Result<Vec<u32>> {
    let me = own_pid(proc_root);
    let rd = std::fs::read_dir(proc_root).map_err(|e| Error::sys("read directory", proc_root, io_errno(&e)))?;
    let mut pids = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::sys("read directory", proc_root, io_errno(&e)))?;
        let Some(n) = parse_number(ent.file_name().as_bytes()) else {
            continue;
        };
        match u32::try_from(n) {
            Ok(pid) if pid != 0 && pid != me => pids.push(pid),
            _ => {}
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// True when an error means the process is gone.
fn vanished(e: &std::io::Error) -> bool {
    matches!(io_errno(e), nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH)
}

/// `comm` of the process whose `/proc` directory is `dir`, without its
/// newline: `None` when the process is gone, `Some(None)` when it could not
/// be read otherwise.
fn read_comm(dir: &Path) -> Option<Option<Vec<u8>>> {
    match read_small(&dir.join("comm")) {
        Ok(mut c) => {
            while c.last() == Some(&b'\n') {
                c.pop();
            }
            Some(Some(c))
        }
        Err(e) if vanished(&e) => None,
        Err(_) => Some(None),
    }
}

/// A small file of `/proc` whole: read until its end without asking its
/// size first (a `/proc` file has none), one `read` per 4 KB.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether a process is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Running, sleeping, stopped, ... (or its state could not be read).
    Alive,
    /// Exited, not yet reaped (`Z`), or dead (`X`).
    Zombie,
    /// Its `/proc` directory is gone.
    Gone,
}

/// `PF_FORKNOEXEC` in the flags of `/proc/PID/stat`: the process has
/// forked and not exec'd since.
const PF_FORKNOEXEC: u64 = 0x40;

/// `O_CLOEXEC` in the `flags:` of `/proc/PID/fdinfo/N` (octal there).
const O_CLOEXEC_BIT: u64 = 0o2000000;

/// The state letter and whether `PF_FORKNOEXEC` is set, from `<dir>/stat`:
/// the fields after the name, which is in parentheses and may itself hold
/// spaces and parentheses, so the last `)` ends it.
fn read_state(dir: &Path) -> (State, bool) {
    let stat = match read_small(&dir.join("stat")) {
        Ok(s) => s,
        Err(e) if vanished(&e) && !dir.exists() => return (State::Gone, false),
        Err(_) => return (State::Alive, false),
    };
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return (State::Alive, false);
    };
    let rest = String::from_utf8_lossy(&stat[close + 1..]).into_owned();
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let state = match fields.first().and_then(|f| f.bytes().next()) {
        Some(b'Z' | b'X' | b'x') => State::Zombie,
        _ => State::Alive,
    };
    // state ppid pgrp session tty_nr tpgid flags
    let forked_no_exec = fields.get(6).and_then(|f| f.parse::<u64>().ok()).is_some_and(|f| f & PF_FORKNOEXEC != 0);
    (state, forked_no_exec)
}

/// Whether descriptor `fd` of the process whose `/proc` directory is `dir`
/// is close-on-exec (false when that cannot be read).
fn close_on_exec(dir: &Path, fd: u64) -> bool {
    let Ok(info) = std::fs::read_to_string(dir.join("fdinfo").join(fd.to_string())) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|f| f & O_CLOEXEC_BIT != 0)
}

/// What [`open_files`] found.
struct OpenFiles {
    /// The first open file inside the queue.
    inside: Option<PathBuf>,
    /// Whether the descriptor directory could be read.
    readable: bool,
}

/// Looks through the open descriptors of the process whose `/proc`
/// directory is `dir` for a file inside `queue`. A descriptor that closes
/// meanwhile is skipped. In a process that has forked and not yet exec'd
/// (`forked_no_exec`), a close-on-exec descriptor is skipped too: that is
/// a program being started by a process that had the queue open (a
/// thread of a test suite, say), and the descriptor goes away at the exec.
fn open_files(dir: &Path, queue: &Path, forked_no_exec: bool) -> OpenFiles {
    let fd_dir = dir.join("fd");
    let Ok(rd) = std::fs::read_dir(&fd_dir) else {
        return OpenFiles { inside: None, readable: false };
    };
    let mut fds: Vec<u64> = rd.flatten().filter_map(|e| parse_number(e.file_name().as_bytes())).collect();
    fds.sort_unstable();
    for fd in fds {
        let target = match std::fs::read_link(fd_dir.join(fd.to_string())) {
            Ok(t) => t,
            // Refused: so is every descriptor of this process (the kernel
            // asks the same question of the process for each), as when
            // none of them could be read one by one.
            Err(e) if io_errno(&e) == nix::errno::Errno::EACCES => break,
            Err(_) => continue,
        };
        if is_inside(&target, queue) && !(forked_no_exec && close_on_exec(dir, fd)) {
            return OpenFiles { inside: Some(target), readable: true };
        }
    }
    OpenFiles { inside: None, readable: true }
}

/// True when `comm` is one of [`QMAIL_NAMES`].
fn is_qmail_name(comm: &[u8]) -> bool {
    QMAIL_NAMES.iter().any(|n| n.as_bytes() == comm)
}

/// True when `path` is `queue` or below it, compared as bytes.
fn is_inside(path: &Path, queue: &Path) -> bool {
    let p = path.as_os_str().as_bytes();
    let mut q = queue.as_os_str().as_bytes();
    while let Some(rest) = q.strip_suffix(b"/") {
        q = rest;
    }
    if p == q {
        return true;
    }
    match p.strip_prefix(q) {
        Some(rest) => rest.first() == Some(&b'/'),
        None => false,
    }
}

/// The name a process would be listed under; used by reports that show a
/// pid found elsewhere (from `/proc/locks`). `None` when it is gone.
pub fn process_name(proc_root: &Path, pid: u32) -> Option<String> {
    match read_comm(&proc_root.join(pid.to_string()))? {
        Some(c) => Some(Escaped(&c).to_string()),
        None => Some("?".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake /proc entry.
    fn proc_entry(root: &Path, pid: u32, comm: Option<&[u8]>, cwd: Option<&Path>) {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        if let Some(c) = comm {
            std::fs::write(d.join("comm"), c).unwrap();
        }
        if let Some(c) = cwd {
            symlink(c, d.join("cwd")).unwrap();
        }
    }

    /// Gives a fake /proc entry a `stat` with state `state`.
    fn proc_state(root: &Path, pid: u32, comm: &str, state: char) {
        let line = format!("{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 0 0 0 0\n");
        std::fs::write(root.join(pid.to_string()).join("stat"), line).unwrap();
    }

    /// Gives a fake /proc entry open descriptors pointing at `targets`.
    fn proc_fds(root: &Path, pid: u32, targets: &[&str]) {
        let d = root.join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&d).unwrap();
        for (i, t) in targets.iter().enumerate() {
            symlink(t, d.join(i.to_string())).unwrap();
        }
    }

    /// Gives descriptor `fd` of a fake /proc entry these (octal) flags.
    fn proc_fdinfo(root: &Path, pid: u32, fd: u32, flags: &str) {
        let d = root.join(pid.to_string()).join("fdinfo");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(fd.to_string()), format!("pos:\t0\nflags:\t{flags}\nmnt_id:\t25\n")).unwrap();
    }

    fn found(pid: u32, name: &str, reason: Reason) -> QueueProcess {
        QueueProcess { pid, name: name.into(), reason }
    }

    #[test]
    fn inside_is_a_path_prefix() {
        let q = Path::new("/var/qmail/queue");
        assert!(is_inside(Path::new("/var/qmail/queue"), q));
        assert!(is_inside(Path::new("/var/qmail/queue/mess/3"), q));
        assert!(!is_inside(Path::new("/var/qmail/queue2"), q));
        assert!(!is_inside(Path::new("/var/qmail"), q));
        assert!(is_inside(Path::new("/var/qmail/queue/x"), Path::new("/var/qmail/queue/")));
    }

    #[test]
    fn fake_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let q = Path::new("/srv/q");
        proc_entry(r, 10, Some(b"qmail-send\n"), Some(Path::new("/srv/q")));
        proc_state(r, 10, "qmail-send", 'S');
        proc_fds(r, 10, &["/srv/q/lock/sendmutex"]);
        proc_entry(r, 11, Some(b"sleep\n"), Some(Path::new("/srv/q/mess/3")));
        proc_entry(r, 12, Some(b"bash\n"), Some(Path::new("/srv/qx")));
        proc_fds(r, 12, &["/dev/null", "/srv/qx/mess/1", "socket:[77]"]);
        proc_entry(r, 13, Some(b"qmail-smtpd\n"), Some(Path::new("/")));
        proc_fds(r, 13, &["/dev/null"]);
        // cwd and descriptors unreadable (no permission).
        proc_entry(r, 14, Some(b"qmail-queue\n"), None);
        // Vanished: nothing left in the directory.
        proc_entry(r, 15, None, None);
        proc_entry(r, 16, Some(b"ev\x1b[1mil\n"), Some(Path::new("/srv/q/todo")));
        // A qmail-send serving another queue.
        proc_entry(r, 9, Some(b"qmail-send\n"), Some(Path::new("/other/queue")));
        proc_fds(r, 9, &["/other/queue/lock/sendmutex", "pipe:[5]"]);
        // A zombie qmail-send: no cwd, no descriptors.
        proc_entry(r, 17, Some(b"qmail-send\n"), None);
        proc_state(r, 17, "qmail-send", 'Z');
        // A zombie of another name is not listed at all.
        proc_entry(r, 18, Some(b"sh\n"), None);
        proc_state(r, 18, "sh", 'Z');
        // A backup program reading a message, working elsewhere.
        proc_entry(r, 19, Some(b"tar\n"), Some(Path::new("/root")));
        proc_fds(r, 19, &["/dev/null", "/srv/q/mess/4/1234 (deleted)"]);
        // Forked and not yet exec'd (PF_FORKNOEXEC): its close-on-exec
        // descriptor in the queue goes away at the exec and is ignored; one
        // that stays open across the exec counts.
        proc_entry(r, 22, Some(b"test-thread\n"), Some(Path::new("/root")));
        std::fs::write(r.join("22/stat"), "22 (test-thread) R 1 1 1 0 -1 4194368 0 0\n").unwrap();
        proc_fds(r, 22, &["/srv/q/mess"]);
        proc_fdinfo(r, 22, 0, "02100000");
        proc_entry(r, 23, Some(b"test-thread\n"), Some(Path::new("/root")));
        std::fs::write(r.join("23/stat"), "23 (test-thread) R 1 1 1 0 -1 4194368 0 0\n").unwrap();
        proc_fds(r, 23, &["/srv/q/mess"]);
        proc_fdinfo(r, 23, 0, "0100000");
        // The same close-on-exec descriptor in a process that has exec'd
        // counts.
        proc_entry(r, 24, Some(b"cat\n"), Some(Path::new("/root")));
        std::fs::write(r.join("24/stat"), "24 (cat) S 1 1 1 0 -1 4194304 0 0\n").unwrap();
        proc_fds(r, 24, &["/srv/q/info/1/5"]);
        proc_fdinfo(r, 24, 0, "02100000");
        // A name with parentheses and spaces does not confuse the state.
        proc_entry(r, 21, Some(b"a) Z (b\n"), Some(Path::new("/srv/q")));
        proc_state(r, 21, "a) Z (b", 'R');
        // This process, as /proc/self names it: never listed.
        proc_entry(r, 20, Some(b"me\n"), Some(q));
        symlink("20", r.join("self")).unwrap();
        std::fs::create_dir(r.join("sys")).unwrap();
        std::fs::write(r.join("locks"), "1: FLOCK  ADVISORY  WRITE 13 fd:01:77 0 EOF\n").unwrap();

        let got = find_queue_processes(q, r).unwrap();
        let want = vec![
            found(9, "qmail-send", Reason::Elsewhere("/other/queue".into())),
            found(10, "qmail-send", Reason::CwdInQueue("/srv/q".into())),
            found(11, "sleep", Reason::CwdInQueue("/srv/q/mess/3".into())),
            found(13, "qmail-smtpd", Reason::Elsewhere("/".into())),
            found(14, "qmail-queue", Reason::Unreadable),
            found(16, "ev\\x1b[1mil", Reason::CwdInQueue("/srv/q/todo".into())),
            found(17, "qmail-send", Reason::Zombie),
            found(19, "tar", Reason::FileOpen("/srv/q/mess/4/1234 (deleted)".into())),
            found(21, "a) Z (b", Reason::CwdInQueue("/srv/q".into())),
            found(23, "test-thread", Reason::FileOpen("/srv/q/mess".into())),
            found(24, "cat", Reason::FileOpen("/srv/q/info/1/5".into())),
        ];
        assert_eq!(got, want);
        let using: Vec<u32> = got.iter().filter(|p| p.uses_queue()).map(|p| p.pid).collect();
        assert_eq!(using, vec![10, 11, 14, 16, 19, 21, 23, 24]);
        assert_eq!(got[0].describe(), "qmail-send pid 9 (serving another queue (working in /other/queue): ignored)");
        assert_eq!(got[3].describe(), "qmail-smtpd pid 13 (not using this queue (working in /): ignored)");
        assert_eq!(got[6].describe(), "qmail-send pid 17 (zombie, already exited: ignored)");
        assert_eq!(got[7].why(), "has /srv/q/mess/4/1234 (deleted) open");

        let dev = libc::makedev(0xfd, 1);
        let got = find_queue_processes_locking(q, Some((dev, 77)), r).unwrap();
        let p13 = got.iter().find(|p| p.pid == 13).unwrap();
        assert_eq!(p13.reason, Reason::HoldsSendmutex);
        assert!(p13.uses_queue());

        // Holder first, then qmail-send processes using this queue (9
        // works in another queue, 17 is a zombie).
        assert_eq!(find_qmail_send(q, Some((dev, 77)), r).unwrap(), vec![13, 10]);
        assert_eq!(find_qmail_send(q, None, r).unwrap(), vec![10]);
        assert_eq!(find_qmail_send(Path::new("/other/queue"), None, r).unwrap(), vec![9]);
        assert_eq!(process_name(r, 16).as_deref(), Some("ev\\x1b[1mil"));
        assert_eq!(process_name(r, 15), None);
        assert_eq!(process_name(r, 99), None);

        // A lock holder that is now a zombie is a stale number: ignored.
        std::fs::write(r.join("locks"), "1: FLOCK  ADVISORY  WRITE 17 fd:01:77 0 EOF\n").unwrap();
        assert_eq!(find_qmail_send(q, Some((dev, 77)), r).unwrap(), vec![10]);
        // A holder gone from /proc is not listed.
        std::fs::write(r.join("locks"), "1: FLOCK  ADVISORY  WRITE 99 fd:01:77 0 EOF\n").unwrap();
        assert_eq!(find_qmail_send(q, Some((dev, 77)), r).unwrap(), vec![10]);
    }

    #[test]
    fn self_is_known_by_proc_self() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let q = Path::new("/srv/q");
        // As in a pid namespace whose tool is pid 1 while /proc is the
        // host's: /proc/self names 4242, and this process's own pid is not
        // that.
        proc_entry(r, 1, Some(b"init\n"), Some(q));
        proc_entry(r, 4242, Some(b"qfixq\n"), Some(q));
        proc_fds(r, 4242, &["/srv/q"]);
        symlink("4242", r.join("self")).unwrap();
        let got = find_queue_processes(q, r).unwrap();
        assert_eq!(got, vec![found(1, "init", Reason::CwdInQueue(q.into()))]);
    }

    #[test]
    fn missing_proc_root_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let e = find_queue_processes(Path::new("/q"), &root.path().join("nope")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(real_path(&root.path().join("nope")).unwrap_err().is_not_found());
    }

    /// Waits until `pid`'s name is `name`.
    fn wait_for_comm(pid: u32, name: &str) {
        let comm = Path::new("/proc").join(pid.to_string()).join("comm");
        let want = format!("{name}\n");
        for _ in 0..500 {
            if std::fs::read(&comm).is_ok_and(|c| c == want.as_bytes()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("pid {pid} never became {name}");
    }

    #[test]
    fn real_child_in_queue_is_found() {
        let proc_root = Path::new("/proc");
        if !proc_root.join("self/cwd").exists() {
            println!("skipped: real_child_in_queue_is_found: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("mess")).unwrap();
        let q = real_path(t.path()).unwrap();
        let mut child = match std::process::Command::new("sleep").arg("5").current_dir(t.path().join("mess")).spawn() {
            Ok(c) => c,
            Err(e) => {
                println!("skipped: real_child_in_queue_is_found: cannot run sleep: {e}");
                return;
            }
        };
        // Until it has exec'd, the child still bears this test's name.
        wait_for_comm(child.id(), "sleep");
        let found = find_queue_processes(&q, proc_root);
        let _ = child.kill();
        let _ = child.wait();
        let found = found.unwrap();
        let me = found.iter().find(|p| p.pid == child.id()).expect("child found");
        assert_eq!(me.reason, Reason::CwdInQueue(q.join("mess")));
        assert_eq!(me.name, "sleep");
        assert!(found.iter().all(|p| p.pid != std::process::id()));
    }

    #[test]
    fn real_zombie_named_qmail_send_is_ignored() {
        let proc_root = Path::new("/proc");
        if !proc_root.join("self/stat").exists() {
            println!("skipped: real_zombie_named_qmail_send_is_ignored: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let q = real_path(t.path()).unwrap();
        // exec takes the name from the path it is given: a link called
        // qmail-send to `true` runs as qmail-send, in the queue, and exits.
        let Some(truth) = ["/bin/true", "/usr/bin/true"].into_iter().map(Path::new).find(|p| p.exists()) else {
            println!("skipped: real_zombie_named_qmail_send_is_ignored: no true(1)");
            return;
        };
        let bin = tempfile::tempdir().unwrap();
        let link = bin.path().join("qmail-send");
        symlink(truth, &link).unwrap();
        let mut child = std::process::Command::new(&link).current_dir(&q).spawn().unwrap();
        let stat = proc_root.join(child.id().to_string()).join("stat");
        let mut zombie = false;
        for _ in 0..500 {
            if read_state(stat.parent().unwrap()).0 == State::Zombie {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let got = find_queue_processes(&q, proc_root);
        let qs = find_qmail_send(&q, None, proc_root);
        let _ = child.wait();
        assert!(zombie, "the child never became a zombie");
        let got = got.unwrap();
        let me = got.iter().find(|p| p.pid == child.id()).expect("zombie listed");
        assert_eq!(me.name, "qmail-send");
        assert_eq!(me.reason, Reason::Zombie);
        assert!(!me.uses_queue());
        assert!(!qs.unwrap().contains(&child.id()));
    }

    #[test]
    fn real_open_file_in_queue_is_found() {
        let proc_root = Path::new("/proc");
        if !proc_root.join("self/fd").exists() {
            println!("skipped: real_open_file_in_queue_is_found: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let q = real_path(t.path()).unwrap();
        std::fs::write(q.join("held"), b"x").unwrap();
        // A shell working elsewhere that holds the file open on fd 3.
        let mut child = match std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$1\"; exec sleep 5")
            .arg("sh")
            .arg(q.join("held"))
            .current_dir("/")
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                println!("skipped: real_open_file_in_queue_is_found: cannot run sh: {e}");
                return;
            }
        };
        wait_for_comm(child.id(), "sleep");
        let got = find_queue_processes(&q, proc_root);
        let _ = child.kill();
        let _ = child.wait();
        let got = got.unwrap();
        let me = got.iter().find(|p| p.pid == child.id()).expect("child found");
        assert_eq!(me.reason, Reason::FileOpen(q.join("held")));
        assert!(me.uses_queue());
    }

    /// Forks a child that only waits to be killed, holding what this
    /// process has open; returns its pid.
    fn fork_waiter() -> nix::unistd::Pid {
        // SAFETY: the child calls only async-signal-safe functions (pause)
        // before it is killed. A fork that does not exec has no safe
        // wrapper (nix marks `fork` unsafe; std forks only to exec).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => loop {
                nix::unistd::pause();
            },
            nix::unistd::ForkResult::Parent { child } => child,
        }
    }

    #[test]
    fn a_fork_not_yet_execd_counts_only_what_survives_its_exec() {
        if !Path::new("/proc/self/fdinfo").exists() {
            println!("skipped: a_fork_not_yet_execd_counts_only_what_survives_its_exec: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let q = real_path(t.path()).unwrap();
        std::fs::write(q.join("m"), b"x").unwrap();
        // Opened close-on-exec, as Rust opens everything.
        let f = std::fs::File::open(q.join("m")).unwrap();
        let child = fork_waiter();
        let got = find_queue_processes(&q, Path::new("/proc"));
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        let pid = child.as_raw() as u32;
        assert!(got.unwrap().iter().all(|p| p.pid != pid), "a descriptor that goes away at the exec counted");

        // Without close-on-exec it would stay open in the program the
        // child runs: it counts.
        // `dup` leaves the copy without close-on-exec.
        let fd = nix::unistd::dup(&f).unwrap();
        let child = fork_waiter();
        let got = find_queue_processes(&q, Path::new("/proc"));
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        drop(fd);
        let pid = child.as_raw() as u32;
        let got = got.unwrap();
        let me = got.iter().find(|p| p.pid == pid).expect("the child is listed");
        assert_eq!(me.reason, Reason::FileOpen(q.join("m")));
        drop(f);
    }

    #[test]
    fn real_lock_holder_is_qmail_send() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("lock")).unwrap();
        std::fs::write(t.path().join("lock/sendmutex"), b"").unwrap();
        let d = crate::safe_fs::Dir::open(t.path(), crate::safe_fs::SymlinkBehavior::NoFollow).unwrap();
        let lock = crate::lock::acquire_sendmutex(&d).unwrap().unwrap();
        if !Path::new("/proc/locks").exists() {
            println!("skipped: real_lock_holder_is_qmail_send: no /proc/locks");
            return;
        }
        let q = real_path(t.path()).unwrap();
        // This process holds it, and is never reported.
        let pids = find_qmail_send(&q, Some(lock.inode()), Path::new("/proc")).unwrap();
        assert!(!pids.contains(&std::process::id()));
    }
}
