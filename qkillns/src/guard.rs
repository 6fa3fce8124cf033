//! Running beside qmail: this module owns what a dry run says a removal
//! would meet and, for `--expire`, finding the qmail-send to signal and
//! signalling it. The checks before a removal (qmail-send's lock,
//! processes working in the queue) are the session's
//! (`qcommon::session`), the same for every tool.

use std::path::{Path, PathBuf};

use qcommon::lock::{lock_holders, probe_sendmutex, LockState};
use qcommon::procs::{find_qmail_send, process_name};
use qcommon::safe_fs::Dir;
use qcommon::session::sendmutex_inode;

const PROC: &str = "/proc";

/// `pid (name)` for each holder of `lock/sendmutex` other than this
/// process.
fn holders_text(root: &Dir) -> String {
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

/// For a dry run: what a live removal would meet, in words.
pub fn lock_state_text(root: &Dir) -> String {
    lock_state(root).1
}

/// For a dry run: what a live removal would meet, as a code
/// (`not_running`, `running`, `lock_missing`, `lock_not_regular`,
/// `renumbering_interrupted`, `unknown`; docs/json.md) and in words.
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
        Ok(LockState::Fenced) => (
            "renumbering_interrupted",
            "a qfixq renumbering was interrupted (lock/sendmutex is set aside, so qmail-send cannot start): a removal \
             would refuse; run `qfixq live` to finish it"
                .into(),
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
/// the queue: that is refused (the error says why).
pub fn expire_targets(root: &Dir, queue: &Path, pid: Option<u32>) -> Result<Vec<Target>, String> {
    let proc_root = Path::new(PROC);
    if let Some(pid) = pid {
        return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
            Ok(()) => Ok(vec![Target {
                pid,
                name: process_name(proc_root, pid).unwrap_or_else(|| "?".into()),
                how: "given with --pid",
            }]),
            Err(e) => Err(format!("--pid {pid}: no such process to signal ({e})")),
        };
    }
    let real: PathBuf = qcommon::procs::real_path(queue).map_err(|e| e.to_string())?;
    let inode = sendmutex_inode(root);
    let holders: Vec<u32> = match inode {
        Some((dev, ino)) => lock_holders(dev, ino).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let pids = find_qmail_send(&real, inode, proc_root).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for pid in pids {
        let name = process_name(proc_root, pid).unwrap_or_else(|| "?".into());
        let holds = holders.contains(&pid);
        if name != "qmail-send" {
            if holds {
                return Err(format!(
                    "lock/sendmutex is held by pid {pid} ({name}), which is not qmail-send: another program is \
                     working on the queue; wait for it to finish (or give the qmail-send pid with --pid)"
                ));
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
