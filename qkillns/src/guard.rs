//! Running beside qmail: this module owns the checks before a removal
//! (qmail-send's lock, processes working in the queue) and, for
//! `--expire`, finding the qmail-send to signal and signalling it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use qcommon::lock::{acquire_sendmutex, lock_holders, probe_sendmutex, LockState, SendLock};
use qcommon::procs::{find_qmail_send, find_queue_processes_locking, process_name, Reason};
use qcommon::safe_fs::{Dir, FileKind};

const PROC: &str = "/proc";

/// Device and inode of `lock/sendmutex`, when it is a regular file.
pub fn sendmutex_inode(root: &Dir) -> Option<(u64, u64)> {
    let lock = root.open_dir(OsStr::new("lock")).ok()?;
    let st = lock.stat(OsStr::new("sendmutex")).ok()?;
    (st.kind == FileKind::Regular).then_some((st.dev, st.ino))
}

/// `pid (name)` for each holder of `lock/sendmutex` other than this
/// process.
pub fn holders_text(root: &Dir) -> String {
    let me = std::process::id();
    let pids: Vec<u32> = sendmutex_inode(root)
        .and_then(|(dev, ino)| lock_holders(dev, ino).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| p != me)
        .collect();
    if pids.is_empty() {
        return "a process that /proc/locks does not show".into();
    }
    pids.iter()
        .map(|&p| format!("pid {p} ({})", process_name(Path::new(PROC), p).unwrap_or_else(|| "?".into())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a removal may not go ahead.
#[derive(Debug)]
pub struct Refusal(pub String);

/// Takes qmail-send's lock for a removal, or says why not.
pub fn lock_for_removal(root: &Dir) -> Result<SendLock, Refusal> {
    match acquire_sendmutex(root) {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(LockState::Held)) => Err(Refusal(format!(
            "qmail-send is running: lock/sendmutex is held by {}. Stop qmail-send first, or use --expire to let \
             qmail-send give up on the messages itself",
            holders_text(root)
        ))),
        Ok(Err(LockState::Missing)) => Err(Refusal(
            "lock/sendmutex is missing, so qmail-send's lock cannot be taken; run `qfixq live` first (it restores \
             the lock files)"
                .into(),
        )),
        Ok(Err(LockState::NotRegular(k))) => Err(Refusal(format!(
            "lock/sendmutex is a {}, not a regular file, so qmail-send's lock cannot be taken; run `qfixq live` \
             first (it restores the lock files)",
            k.name()
        ))),
        Ok(Err(LockState::Free)) => Err(Refusal("lock/sendmutex: unexpected state".into())),
        Err(e) => Err(Refusal(format!("cannot take qmail-send's lock: {e}"))),
    }
}

/// What the process check found.
#[derive(Debug, Default)]
pub struct Processes {
    /// Processes that use the queue: working in it, or with a file in it
    /// open (refuse unless `--force`), as text.
    pub in_queue: Vec<String>,
    /// Processes named like qmail's that do not use this queue (another
    /// queue's qmail-send, a qmail-smtpd, a zombie): not a reason to
    /// refuse, as text.
    pub others: Vec<String>,
}

/// Lists the processes using the queue (while this process holds `lock`).
pub fn processes(queue: &Path, lock: &SendLock) -> Result<Processes, String> {
    let real = qcommon::procs::real_path(queue).map_err(|e| e.to_string())?;
    let found = find_queue_processes_locking(&real, Some(lock.inode()), Path::new(PROC)).map_err(|e| e.to_string())?;
    let mut p = Processes::default();
    for q in found {
        let text = match &q.reason {
            Reason::CwdInQueue(cwd) => format!(
                "pid {} ({}) works in the queue (its directory is {})",
                q.pid,
                q.name,
                qcommon::error::escape_path(cwd)
            ),
            _ => format!("pid {} ({}) {}", q.pid, q.name, q.why()),
        };
        if q.uses_queue() {
            p.in_queue.push(text);
        } else {
            p.others.push(text);
        }
    }
    Ok(p)
}

/// For a dry run: what a live removal would meet, in words.
pub fn lock_state_text(root: &Dir) -> String {
    lock_state(root).1
}

/// For a dry run: what a live removal would meet, as a code
/// (`not_running`, `running`, `lock_missing`, `lock_not_regular`,
/// `unknown`; docs/json.md) and in words.
pub fn lock_state(root: &Dir) -> (&'static str, String) {
    match probe_sendmutex(root) {
        Ok(LockState::Free) => ("not_running", "not running (lock/sendmutex free)".into()),
        Ok(LockState::Held) => (
            "running",
            format!("running (lock/sendmutex held by {}): a removal would refuse; --expire works", holders_text(root)),
        ),
        Ok(LockState::Missing) => {
            ("lock_missing", "lock/sendmutex missing: a removal would refuse; run `qfixq live` first".into())
        }
        Ok(LockState::NotRegular(k)) => (
            "lock_not_regular",
            format!("lock/sendmutex is a {}: a removal would refuse; run `qfixq live` first", k.name()),
        ),
        Err(e) => ("unknown", format!("unknown ({e})")),
    }
}

/// The qmail-send processes `--expire` signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// How it was found.
    pub how: &'static str,
}

/// Finds the qmail-send to signal: `--pid`, else the holders of
/// `lock/sendmutex` and processes named qmail-send that use the queue (one
/// serving another queue, or a zombie, is never signalled).
/// A lock holder that is not named qmail-send is another tool changing
/// the queue: that is refused.
pub fn expire_targets(root: &Dir, queue: &Path, pid: Option<u32>) -> Result<Vec<Target>, Refusal> {
    let proc_root = Path::new(PROC);
    if let Some(pid) = pid {
        return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
            Ok(()) => Ok(vec![Target {
                pid,
                name: process_name(proc_root, pid).unwrap_or_else(|| "?".into()),
                how: "given with --pid",
            }]),
            Err(e) => Err(Refusal(format!("--pid {pid}: no such process to signal ({e})"))),
        };
    }
    let real: PathBuf = qcommon::procs::real_path(queue).map_err(|e| Refusal(e.to_string()))?;
    let inode = sendmutex_inode(root);
    let holders: Vec<u32> = match inode {
        Some((dev, ino)) => lock_holders(dev, ino).map_err(|e| Refusal(e.to_string()))?,
        None => Vec::new(),
    };
    let pids = find_qmail_send(&real, inode, proc_root).map_err(|e| Refusal(e.to_string()))?;
    let mut out = Vec::new();
    for pid in pids {
        let name = process_name(proc_root, pid).unwrap_or_else(|| "?".into());
        let holds = holders.contains(&pid);
        if name != "qmail-send" {
            if holds {
                return Err(Refusal(format!(
                    "lock/sendmutex is held by pid {pid} ({name}), which is not qmail-send: another program is \
                     working on the queue; wait for it to finish (or give the qmail-send pid with --pid)"
                )));
            }
            continue;
        }
        out.push(Target {
            pid,
            name,
            how: if holds { "holds lock/sendmutex" } else { "named qmail-send, using the queue" },
        });
    }
    Ok(out)
}

/// Sends SIGALRM to `t`.
pub fn alarm(t: &Target) -> Result<(), String> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(t.pid as i32), nix::sys::signal::Signal::SIGALRM)
        .map_err(|e| format!("cannot send SIGALRM to pid {} ({}): {e}", t.pid, t.name))
}
