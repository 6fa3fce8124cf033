//! Running processes that use a queue: this module owns reading `/proc` to
//! find processes whose working directory is inside the queue (a
//! qmail-queue in flight, or qmail-send itself), processes named like
//! qmail's queue programs, and the qmail-send that holds `lock/sendmutex`.
//!
//! Everything is read from a `/proc` root given by the caller (normally
//! `/proc`; tests build a fake one). Processes that vanish while they are
//! looked at, or whose details this process may not read, are skipped
//! without an error. The calling process is never listed.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Escaped, Result};
use crate::lock::lock_holders_at;
use crate::safe_fs::{io_errno, parse_number};

/// Program names (as in `/proc/PID/comm`) of qmail programs that write to
/// or run on the queue.
pub const QMAIL_NAMES: [&str; 5] = ["qmail-send", "qmail-queue", "qmail-smtpd", "qmail-qmtpd", "qmail-qmqpd"];

/// Why a process was listed by [`find_queue_processes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Its working directory is the queue or inside it (the path is the
    /// working directory as `/proc/PID/cwd` names it).
    CwdInQueue(PathBuf),
    /// Its name is one of [`QMAIL_NAMES`].
    QmailName,
    /// It holds a `flock` on the queue's `lock/sendmutex`.
    HoldsSendmutex,
}

/// A process found using the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProcess {
    /// Process id.
    pub pid: u32,
    /// Its name from `/proc/PID/comm`, with control and non-ASCII bytes
    /// escaped so it is safe to print; `?` when it could not be read.
    pub name: String,
    /// Why it was listed (the first that applies of: working directory in
    /// the queue, holder of `lock/sendmutex`, qmail name).
    pub reason: Reason,
}

/// The canonical path of `p` (every link resolved), as
/// [`find_queue_processes`] wants the queue.
pub fn real_path(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::sys("resolve", p, io_errno(&e)))
}

/// Lists the processes using the queue whose canonical path is
/// `queue_real_path`: those whose working directory is the queue or inside
/// it, and those named like a qmail queue program ([`QMAIL_NAMES`]), each
/// once, sorted by pid. `proc_root` is normally `/proc`.
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
        let Some(info) = look_at(proc_root, pid) else {
            continue;
        };
        // Holding the lock says most: that is qmail-send (which also works
        // in the queue).
        let reason = if holders.binary_search(&pid).is_ok() {
            Reason::HoldsSendmutex
        } else if let Some(cwd) = info.cwd.as_deref().filter(|c| is_inside(c, queue_real_path)) {
            Reason::CwdInQueue(cwd.to_path_buf())
        } else if info.comm.as_deref().is_some_and(is_qmail_name) {
            Reason::QmailName
        } else {
            continue;
        };
        found.push(QueueProcess { pid, name: info.display_name(), reason });
    }
    Ok(found)
}

/// The pids of the qmail-send running on the queue `queue_real_path`:
/// first the holders of `lock/sendmutex` (when its device and inode are
/// given) from `<proc_root>/locks`, then the processes named `qmail-send`
/// whose working directory is inside the queue or cannot be read (a
/// qmail-send working in another queue is left out). Each pid appears
/// once; the calling process (which may hold the lock itself) never does.
pub fn find_qmail_send(queue_real_path: &Path, sendmutex: Option<(u64, u64)>, proc_root: &Path) -> Result<Vec<u32>> {
    let me = std::process::id();
    let mut out: Vec<u32> = match sendmutex {
        Some((dev, ino)) => lock_holders_at(proc_root, dev, ino)?,
        None => Vec::new(),
    };
    out.retain(|&p| p != me);
    for pid in pids(proc_root)? {
        if out.contains(&pid) {
            continue;
        }
        let Some(info) = look_at(proc_root, pid) else {
            continue;
        };
        if info.comm.as_deref() != Some(b"qmail-send".as_slice()) {
            continue;
        }
        let here = match info.cwd.as_deref() {
            Some(c) => is_inside(c, queue_real_path),
            None => true,
        };
        if here {
            out.push(pid);
        }
    }
    Ok(out)
}

/// The numeric entries of `proc_root`, sorted, without the calling process.
fn pids(proc_root: &Path) -> Result<Vec<u32>> {
    let me = std::process::id();
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

/// What could be read of one process.
struct ProcInfo {
    /// `comm` without its newline, when readable.
    comm: Option<Vec<u8>>,
    /// The target of `cwd`, when readable.
    cwd: Option<PathBuf>,
}

impl ProcInfo {
    fn display_name(&self) -> String {
        match &self.comm {
            Some(c) => Escaped(c).to_string(),
            None => "?".to_string(),
        }
    }
}

/// True when an error means the process is gone.
fn vanished(e: &std::io::Error) -> bool {
    matches!(io_errno(e), nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH)
}

/// Reads `comm` and `cwd` of `pid`; `None` when the process is gone.
/// Unreadable details (permissions) are left as `None`.
fn look_at(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let comm = match std::fs::read(dir.join("comm")) {
        Ok(mut c) => {
            while c.last() == Some(&b'\n') {
                c.pop();
            }
            Some(c)
        }
        Err(e) if vanished(&e) => return None,
        Err(_) => None,
    };
    let cwd = match std::fs::read_link(dir.join("cwd")) {
        Ok(p) => Some(p),
        // A zombie has no cwd; a gone process has no directory either.
        Err(e) if vanished(&e) && !dir.exists() => return None,
        Err(_) => None,
    };
    Some(ProcInfo { comm, cwd })
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
    let info = look_at(proc_root, pid)?;
    Some(info.display_name())
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
        proc_entry(r, 11, Some(b"sleep\n"), Some(Path::new("/srv/q/mess/3")));
        proc_entry(r, 12, Some(b"bash\n"), Some(Path::new("/srv/qx")));
        proc_entry(r, 13, Some(b"qmail-smtpd\n"), Some(Path::new("/")));
        // cwd unreadable (a kernel thread, or no permission).
        proc_entry(r, 14, Some(b"qmail-queue\n"), None);
        // Vanished: nothing left in the directory.
        proc_entry(r, 15, None, None);
        proc_entry(r, 16, Some(b"ev\x1b[1mil\n"), Some(Path::new("/srv/q/todo")));
        proc_entry(r, 9, Some(b"qmail-send\n"), Some(Path::new("/other/queue")));
        proc_entry(r, std::process::id(), Some(b"me\n"), Some(q));
        symlink("10", r.join("self")).unwrap();
        std::fs::create_dir(r.join("sys")).unwrap();
        std::fs::write(r.join("locks"), "1: FLOCK  ADVISORY  WRITE 13 fd:01:77 0 EOF\n").unwrap();

        let found = find_queue_processes(q, r).unwrap();
        let want = vec![
            QueueProcess { pid: 9, name: "qmail-send".into(), reason: Reason::QmailName },
            QueueProcess { pid: 10, name: "qmail-send".into(), reason: Reason::CwdInQueue("/srv/q".into()) },
            QueueProcess { pid: 11, name: "sleep".into(), reason: Reason::CwdInQueue("/srv/q/mess/3".into()) },
            QueueProcess { pid: 13, name: "qmail-smtpd".into(), reason: Reason::QmailName },
            QueueProcess { pid: 14, name: "qmail-queue".into(), reason: Reason::QmailName },
            QueueProcess { pid: 16, name: "ev\\x1b[1mil".into(), reason: Reason::CwdInQueue("/srv/q/todo".into()) },
        ];
        assert_eq!(found, want);

        let dev = libc::makedev(0xfd, 1);
        let found = find_queue_processes_locking(q, Some((dev, 77)), r).unwrap();
        let p13 = found.iter().find(|p| p.pid == 13).unwrap();
        assert_eq!(p13.reason, Reason::HoldsSendmutex);

        // Holder first, then qmail-send processes working in this queue
        // (9 works in another queue).
        assert_eq!(find_qmail_send(q, Some((dev, 77)), r).unwrap(), vec![13, 10]);
        assert_eq!(find_qmail_send(q, None, r).unwrap(), vec![10]);
        assert_eq!(find_qmail_send(Path::new("/other/queue"), None, r).unwrap(), vec![9]);
        assert_eq!(process_name(r, 16).as_deref(), Some("ev\\x1b[1mil"));
        assert_eq!(process_name(r, 15), None);
    }

    #[test]
    fn missing_proc_root_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let e = find_queue_processes(Path::new("/q"), &root.path().join("nope")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(real_path(&root.path().join("nope")).unwrap_err().is_not_found());
    }

    #[test]
    fn real_child_in_queue_is_found() {
        let proc_root = Path::new("/proc");
        if !proc_root.join("self/cwd").exists() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("mess")).unwrap();
        let q = real_path(t.path()).unwrap();
        let mut child = match std::process::Command::new("sleep").arg("5").current_dir(t.path().join("mess")).spawn() {
            Ok(c) => c,
            Err(_) => return,
        };
        // Until it has exec'd, the child still bears this test's name.
        let comm = proc_root.join(child.id().to_string()).join("comm");
        for _ in 0..200 {
            if std::fs::read(&comm).is_ok_and(|c| c == b"sleep\n") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
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
    fn real_lock_holder_is_qmail_send() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("lock")).unwrap();
        std::fs::write(t.path().join("lock/sendmutex"), b"").unwrap();
        let d = crate::safe_fs::Dir::open(t.path(), crate::safe_fs::SymlinkBehavior::NoFollow).unwrap();
        let lock = crate::lock::acquire_sendmutex(&d).unwrap().unwrap();
        if !Path::new("/proc/locks").exists() {
            return;
        }
        let q = real_path(t.path()).unwrap();
        // This process holds it, and is never reported.
        let pids = find_qmail_send(&q, Some(lock.inode()), Path::new("/proc")).unwrap();
        assert!(!pids.contains(&std::process::id()));
    }
}
