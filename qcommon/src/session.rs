//! One tool's session with a queue: this module owns opening a queue for a
//! tool and deciding whether the tool may change it. [`Session::open`]
//! discovers the layout ([`crate::layout`]) and opens the queue root once;
//! that [`Dir`] is handed on to every later step (scan, quarantine,
//! mutator), and a second descriptor of it, where a step must own one, is
//! checked to be the same directory ([`Session::open_again`]).
//!
//! Read-only access only lists, when asked, the processes that use the
//! queue ([`Session::processes`]). Exclusive access, for a tool that
//! changes the queue, is granted by [`Session::claim`], which refuses
//! ([`Refusal`], one wording for every tool, docs/repair-policy.md rule 2)
//! while qmail-send holds its lock (`lock/sendmutex`), while another
//! process works in the queue (unless `--force`), or while the lock is
//! damaged and a qmail-send may be running; otherwise it takes qmail-send's
//! lock for the life of the [`Claim`] and, when the tool asks, installs the
//! stop flag ([`crate::interrupt`]). A tool that restores a damaged
//! `lock/sendmutex` itself (qfixq) is let through without the lock, and
//! takes it once the file is back ([`Claim::take_restored_lock`]).
//!
//! The library never prints: the tool prints a refusal's text and exits
//! with its own status for it (8, an operational error, in every tool).

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{escape_path, Error, Result};
use crate::layout::{discover_in, open_root, Layout, LayoutOptions, OpenedQueue};
use crate::lock::{acquire_fence, acquire_sendmutex, lock_holders_at, LockState, SendLock, FENCE};
use crate::procs::{find_queue_processes_locking, process_name, real_path, QueueProcess, Reason};
use crate::safe_fs::{Dir, FileKind, SymlinkBehavior};

/// The `/proc` the session reads.
const PROC: &str = "/proc";

/// How a tool means to use the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: no lock, no refusal.
    ReadOnly,
    /// Changes the queue: see [`Session::claim`].
    Exclusive(Exclusive),
}

/// What an exclusive session allows and installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exclusive {
    /// `--force`: go ahead while other processes work in the queue (never
    /// while qmail-send holds its lock).
    pub force: bool,
    /// What a `lock/sendmutex` that is missing or not a regular file means.
    pub damaged_lock: DamagedLock,
    /// Install the stop flag ([`crate::interrupt::install`]) with this exit
    /// status for a second signal; `None` keeps the default action of the
    /// stop signals (the first one ends the process).
    pub stop_flag: Option<i32>,
    /// What the user may do instead of stopping qmail-send, added to the
    /// refusal while it runs (qkillns: `--expire`).
    pub instead: Option<&'static str>,
}

/// What to do when `lock/sendmutex` is missing or not a regular file (and
/// no qmail-send is seen using the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamagedLock {
    /// Refuse: the tool cannot restore it (run `qfixq live` first).
    Refuse,
    /// Go ahead without the lock: the tool restores the file first, then
    /// takes the lock with [`Claim::take_restored_lock`].
    Restore,
}

/// Why a tool may not change the queue. Every refusal but
/// [`Refusal::LockNotTakenAfterRestore`] comes before any change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// qmail-send holds its lock: the holders as `NAME pid PID` (empty when
    /// `/proc/locks` does not show them), and what may be done instead.
    QmailSendRunning { holders: Vec<String>, instead: Option<&'static str> },
    /// Processes work inside the queue or have a file in it open (each as
    /// [`QueueProcess::describe`] says it), and `--force` was not given.
    ProcessesInQueue(Vec<String>),
    /// The processes using the queue cannot be listed (why), and `--force`
    /// was not given.
    ProcessesUnknown(String),
    /// `lock/sendmutex` is damaged while a qmail-send works on this queue
    /// (as [`QueueProcess::describe`] says it).
    LockDamagedWhileQmailSendRuns(String),
    /// `lock/sendmutex` is damaged and the processes using the queue
    /// cannot be listed (why), so whether a qmail-send runs cannot be told.
    LockDamagedProcessesUnknown(String),
    /// `lock/sendmutex` cannot be locked (what it is) and the tool does not
    /// restore it.
    LockUnusable(String),
    /// The lock could not be taken after the tool restored the file.
    LockNotTakenAfterRestore,
    /// `lock/sendmutex` is set aside as the fence of an interrupted qfixq
    /// renumbering, and the tool does not finish renumberings.
    RenumberingInterrupted,
    /// The fence of a qfixq renumbering is locked: another qfixq is
    /// renumbering the queue.
    RenumberingUnderWay,
    /// The stop flag could not be installed (the error).
    Signals(String),
}

/// The refusal's end: nothing was changed.
const UNCHANGED: &str = "nothing was changed";

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::QmailSendRunning { holders, instead } => {
                let who = if holders.is_empty() {
                    "a process that /proc/locks does not show".to_string()
                } else {
                    holders.join(", ")
                };
                let instead = instead.map(|i| format!(", {i}")).unwrap_or_default();
                write!(f, "qmail-send is running: lock/sendmutex is held by {who}: stop it first{instead}; {UNCHANGED}")
            }
            Refusal::ProcessesInQueue(list) => {
                write!(
                    f,
                    "processes work inside the queue: {}; stop them (or use --force); {UNCHANGED}",
                    list.join(", ")
                )
            }
            Refusal::ProcessesUnknown(e) => write!(
                f,
                "the processes using the queue cannot be listed ({e}), so whether one works inside it cannot be \
                 told; use --force to go ahead anyway; {UNCHANGED}"
            ),
            Refusal::LockDamagedWhileQmailSendRuns(p) => write!(
                f,
                "lock/sendmutex is damaged while a qmail-send runs on this queue ({p}): stop it first; {UNCHANGED}"
            ),
            Refusal::LockDamagedProcessesUnknown(e) => write!(
                f,
                "lock/sendmutex is damaged and the processes using the queue cannot be listed ({e}), so whether a \
                 qmail-send runs cannot be told; {UNCHANGED}"
            ),
            Refusal::LockUnusable(what) => write!(
                f,
                "lock/sendmutex is {what}, so qmail-send's lock cannot be taken: run `qfixq live` first (it restores \
                 the lock files); {UNCHANGED}"
            ),
            Refusal::LockNotTakenAfterRestore => {
                f.write_str("could not take lock/sendmutex after restoring it; stopped")
            }
            Refusal::RenumberingInterrupted => write!(
                f,
                "a qfixq renumbering was interrupted: lock/sendmutex is set aside as lock/{FENCE}, so that qmail-send \
                 cannot start while messages are half moved; run `qfixq live` to finish it; {UNCHANGED}"
            ),
            Refusal::RenumberingUnderWay => write!(
                f,
                "another qfixq is renumbering this queue (it holds lock/{FENCE}); wait for it to finish; {UNCHANGED}"
            ),
            Refusal::Signals(e) => write!(f, "cannot install the signal handlers: {e}; {UNCHANGED}"),
        }
    }
}

/// A queue opened for a tool: its layout, its root (opened once), and what
/// the tool's access needs.
#[derive(Debug)]
pub struct Session {
    layout: Layout,
    root: Dir,
    access: Access,
    /// The processes using the queue (and qmail-named ones ignored), listed
    /// once, when first asked for.
    processes: OnceLock<std::result::Result<Vec<QueueProcess>, String>>,
    proc_root: &'static Path,
}

impl Session {
    /// Discovers the layout of the queue `opts` names and opens its root
    /// once. Fails as [`crate::layout::discover`] does. Refuses nothing:
    /// exclusive access is granted by [`Session::claim`].
    pub fn open(opts: &LayoutOptions, access: Access) -> Result<Session> {
        Session::from_opened(open_root(opts)?, opts, access)
    }

    /// [`Session::open`] on a root already open ([`open_root`] or
    /// [`crate::layout::open_queue_checked`] with the same `opts`), for a
    /// tool that read the queue before it needed the layout.
    pub fn from_opened(opened: OpenedQueue, opts: &LayoutOptions, access: Access) -> Result<Session> {
        let layout = discover_in(&opened.dir, opts)?;
        Ok(Session { layout, root: opened.dir, access, processes: OnceLock::new(), proc_root: Path::new(PROC) })
    }

    /// The layout, each decision with its source.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The queue root, opened once.
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// The access asked for.
    pub fn access(&self) -> Access {
        self.access
    }

    /// A second descriptor of the queue root, for a step that must own one
    /// (a mutator): opened by the path again and checked to be the same
    /// directory as the root (device and inode), since the path may be a
    /// symbolic link that was swapped meanwhile.
    pub fn open_again(&self) -> Result<Dir> {
        open_same(&self.root)
    }

    /// The processes that use the queue, and those named like qmail's that
    /// do not (listed, with [`Reason::Elsewhere`] or [`Reason::Zombie`]),
    /// sorted by pid; read from `/proc` once, at the first call. The error
    /// says why they cannot be listed.
    pub fn processes(&self) -> std::result::Result<&[QueueProcess], &str> {
        match self.processes.get_or_init(|| list_processes(&self.root, &self.layout, self.proc_root)) {
            Ok(p) => Ok(p),
            Err(e) => Err(e),
        }
    }

    /// The processes that work in the queue without holding its lock
    /// (empty when they cannot be listed).
    pub fn working_in_queue(&self) -> Vec<&QueueProcess> {
        self.processes()
            .map(|ps| ps.iter().filter(|p| p.uses_queue() && p.reason != Reason::HoldsSendmutex).collect())
            .unwrap_or_default()
    }

    /// The qmail-named processes that do not use the queue (serving
    /// another queue, zombies): ignored (empty when they cannot be listed).
    pub fn ignored(&self) -> Vec<&QueueProcess> {
        self.processes().map(|ps| ps.iter().filter(|p| !p.uses_queue()).collect()).unwrap_or_default()
    }

    /// Grants exclusive access, or says why not. In this order:
    ///
    /// 1. a process holding `lock/sendmutex`: qmail-send runs, refused
    ///    (`--force` never overrides it);
    /// 2. processes working in the queue, or processes that cannot be
    ///    listed: refused unless `--force`;
    /// 3. qmail-send's lock is taken; held by another: refused; missing,
    ///    not a regular file, or failing: refused while a qmail-send uses
    ///    the queue or the processes cannot be listed, else refused or let
    ///    through to be restored, as [`Exclusive::damaged_lock`] says;
    /// 4. the stop flag, when asked for.
    ///
    /// A read-only session is granted nothing: an empty claim.
    pub fn claim(&self) -> std::result::Result<Claim, Refusal> {
        let Access::Exclusive(ex) = self.access else {
            return Ok(Claim { lock: None, exclusive: false });
        };
        let listed = self.processes();
        if let Ok(ps) = listed {
            let holders: Vec<String> = ps
                .iter()
                .filter(|p| p.reason == Reason::HoldsSendmutex)
                .map(|p| format!("{} pid {}", p.name, p.pid))
                .collect();
            if !holders.is_empty() {
                return Err(Refusal::QmailSendRunning { holders, instead: ex.instead });
            }
        }
        if !ex.force {
            match listed {
                Ok(_) => {
                    let busy: Vec<String> = self.working_in_queue().iter().map(|p| p.describe()).collect();
                    if !busy.is_empty() {
                        return Err(Refusal::ProcessesInQueue(busy));
                    }
                }
                Err(e) => return Err(Refusal::ProcessesUnknown(e.to_string())),
            }
        }
        let lock = match acquire_sendmutex(&self.root) {
            Ok(Ok(lock)) => Some(lock),
            Ok(Err(LockState::Held)) => {
                return Err(Refusal::QmailSendRunning { holders: self.holders_now(), instead: ex.instead });
            }
            // An interrupted renumbering's fence: only the tool that
            // restores the lock (qfixq) finishes it, under the fence's lock.
            Ok(Err(LockState::Fenced)) => match ex.damaged_lock {
                DamagedLock::Refuse => return Err(Refusal::RenumberingInterrupted),
                DamagedLock::Restore => match acquire_fence(&self.root) {
                    Ok(Ok(lock)) => Some(lock),
                    Ok(Err(LockState::Held)) => return Err(Refusal::RenumberingUnderWay),
                    Ok(Err(_)) => return Err(Refusal::LockUnusable("missing".to_string())),
                    Err(e) => return Err(Refusal::LockUnusable(format!("unusable ({e})"))),
                },
            },
            Ok(Err(state)) => {
                self.damaged(ex, || match state {
                    LockState::NotRegular(k) => format!("a {}, not a regular file", k.name()),
                    _ => "missing".to_string(),
                })?;
                None
            }
            Err(e) => {
                self.damaged(ex, || format!("unusable ({e})"))?;
                None
            }
        };
        if let Some(code) = ex.stop_flag {
            crate::interrupt::install(code).map_err(|e| Refusal::Signals(e.to_string()))?;
        }
        Ok(Claim { lock, exclusive: true })
    }

    /// The checks for a `lock/sendmutex` that cannot be locked.
    fn damaged(&self, ex: Exclusive, what: impl FnOnce() -> String) -> std::result::Result<(), Refusal> {
        match self.processes() {
            Ok(ps) => {
                // Only a qmail-send that uses this queue counts: one serving
                // another queue, or a zombie, is listed and ignored.
                if let Some(p) = ps.iter().find(|p| p.uses_queue() && p.name == "qmail-send") {
                    return Err(Refusal::LockDamagedWhileQmailSendRuns(p.describe()));
                }
            }
            Err(e) => return Err(Refusal::LockDamagedProcessesUnknown(e.to_string())),
        }
        match ex.damaged_lock {
            DamagedLock::Refuse => Err(Refusal::LockUnusable(what())),
            DamagedLock::Restore => Ok(()),
        }
    }

    /// `NAME pid PID` of each holder of `lock/sendmutex` other than this
    /// process, read from `/proc/locks` now.
    fn holders_now(&self) -> Vec<String> {
        let me = std::process::id();
        sendmutex_inode(&self.root)
            .and_then(|(dev, ino)| lock_holders_at(self.proc_root, dev, ino).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|&p| p != me)
            .map(|p| format!("{} pid {p}", process_name(self.proc_root, p).unwrap_or_else(|| "?".into())))
            .collect()
    }
}

/// Exclusive access granted by [`Session::claim`]: qmail-send's lock, held
/// until the claim is dropped (none while a damaged lock waits to be
/// restored, and none for a read-only session).
#[derive(Debug)]
pub struct Claim {
    lock: Option<SendLock>,
    exclusive: bool,
}

impl Claim {
    /// qmail-send's lock, when held.
    pub fn lock(&self) -> Option<&SendLock> {
        self.lock.as_ref()
    }

    /// Whether the lock waits for the tool to restore `lock/sendmutex`
    /// (an exclusive claim let through with [`DamagedLock::Restore`]).
    pub fn lock_to_restore(&self) -> bool {
        self.exclusive && self.lock.is_none()
    }

    /// Takes the lock once the tool restored `lock/sendmutex` (nothing to
    /// do when it is held already, or for a read-only session).
    pub fn take_restored_lock(&mut self, session: &Session) -> std::result::Result<(), Refusal> {
        if !self.lock_to_restore() {
            return Ok(());
        }
        match acquire_sendmutex(&session.root) {
            Ok(Ok(l)) => {
                self.lock = Some(l);
                Ok(())
            }
            _ => Err(Refusal::LockNotTakenAfterRestore),
        }
    }
}

/// Device and inode of `lock/sendmutex`, when it is a regular file.
pub fn sendmutex_inode(root: &Dir) -> Option<(u64, u64)> {
    let lock = root.open_dir(OsStr::new("lock")).ok()?;
    let st = lock.stat(OsStr::new("sendmutex")).ok()?;
    (st.kind == FileKind::Regular).then_some((st.dev, st.ino))
}

/// Opens `root`'s path again, checked to be the same directory (device
/// and inode) as `root`.
pub fn open_same(root: &Dir) -> Result<Dir> {
    let again = Dir::open(root.path(), SymlinkBehavior::Follow)?;
    let a = root.stat_self()?;
    let b = again.stat_self()?;
    if (a.dev, a.ino) != (b.dev, b.ino) {
        return Err(Error::Other(format!("{} changed while it was being opened", escape_path(root.path()))));
    }
    Ok(again)
}

/// The processes using the queue of `layout` (with the holders of its
/// `lock/sendmutex`), as text when they cannot be listed.
fn list_processes(root: &Dir, layout: &Layout, proc_root: &Path) -> std::result::Result<Vec<QueueProcess>, String> {
    let real = real_path(&layout.queue).map_err(|e| e.to_string())?;
    let lock = sendmutex_inode(root);
    if lock.is_some() && nix::unistd::geteuid().is_root() {
        let listed = find_queue_processes_locking(&real, None, proc_root).map_err(|e| e.to_string())?;
        if nobody_can_hold_the_lock(&listed) {
            return Ok(listed);
        }
    }
    find_queue_processes_locking(&real, lock, proc_root).map_err(|e| e.to_string())
}

/// Whether, by a listing made without `/proc/locks`, no process can hold
/// `lock/sendmutex`: none uses the queue. A `flock` lives as long as an
/// open file description of the file does, so its holder has the file
/// open, and root (who may read every process's open files) lists such a
/// process as using the queue. Then `/proc/locks` need not be read: the
/// first read of it waits for the kernel to take its file-lock lock for
/// writing (an RCU grace period, 2 to 12 ms measured here), the largest
/// fixed cost of a check of a small queue (docs/performance.md). When a
/// process uses the queue, the listing is made again with the holders.
fn nobody_can_hold_the_lock(listed: &[QueueProcess]) -> bool {
    !listed.iter().any(QueueProcess::uses_queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::probe_sendmutex;
    use crate::queue::Ids;
    use std::fs;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::time::Duration;

    const IDS: Ids = Ids { qmailq: 7794, qmails: 7796, qmailr: 7795, qmail_gid: 2107 };

    /// A healthy empty queue with split 3 at `<dir>/queue`.
    fn make_queue(dir: &Path) -> PathBuf {
        let q = dir.join("queue");
        for d in ["mess", "info", "local", "remote"] {
            for b in 0..3 {
                fs::create_dir_all(q.join(d).join(b.to_string())).unwrap();
            }
        }
        for d in ["todo", "intd", "bounce", "pid", "lock"] {
            fs::create_dir(q.join(d)).unwrap();
        }
        fs::write(q.join("lock/sendmutex"), b"").unwrap();
        q
    }

    fn opts(q: &Path) -> LayoutOptions {
        LayoutOptions { queue: Some(q.to_path_buf()), ids: Some(IDS), ..LayoutOptions::default() }
    }

    fn exclusive(force: bool, damaged_lock: DamagedLock) -> Access {
        Access::Exclusive(Exclusive { force, damaged_lock, stop_flag: None, instead: Some("or do it another way") })
    }

    /// Kills a child, with the processes it started (it leads a process
    /// group of its own), and reaps it when dropped.
    struct Kid(Child);

    impl Kid {
        fn start(cmd: &mut Command) -> std::io::Result<Kid> {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0).spawn().map(Kid)
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }

    /// Waits until `f` holds, a while at most.
    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn read_only_open_decides_the_layout_and_opens_the_root_once() {
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        let s = Session::open(&opts(&q), Access::ReadOnly).unwrap();
        assert_eq!(s.layout().queue, q);
        assert_eq!(s.layout().split.value, 3);
        assert_eq!(s.root().path(), q.as_path());
        assert!(s.root().open_dir(OsStr::new("mess")).is_ok());
        let again = s.open_again().unwrap();
        let (a, b) = (s.root().stat_self().unwrap(), again.stat_self().unwrap());
        assert_eq!((a.dev, a.ino), (b.dev, b.ino));
        // Read-only: nothing is claimed, no lock is taken.
        let c = s.claim().unwrap();
        assert!(c.lock().is_none());
        assert!(!c.lock_to_restore());
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Free);
        // Not a queue: the layout's error.
        let e = Session::open(&opts(t.path()), Access::ReadOnly).unwrap_err();
        assert!(e.to_string().contains("is not a qmail queue"), "{e}");
    }

    #[test]
    fn exclusive_takes_the_lock_until_the_claim_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        let c = match s.claim() {
            Ok(c) => c,
            // Another test's process working here would be a bug; the
            // refusal says which.
            Err(r) => panic!("{r}"),
        };
        let md = fs::metadata(q.join("lock/sendmutex")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(c.lock().map(SendLock::inode), Some((md.dev(), md.ino())));
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Held);
        drop(c);
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Free);
    }

    #[test]
    fn proc_locks_is_read_only_when_a_process_could_hold_the_lock() {
        let p = |reason| QueueProcess { pid: 7, name: "x".into(), reason };
        // Nothing uses the queue (qmail-named processes elsewhere, a
        // zombie): no holder is possible.
        assert!(nobody_can_hold_the_lock(&[]));
        assert!(nobody_can_hold_the_lock(&[p(Reason::Elsewhere("/x".into())), p(Reason::Zombie)]));
        // Anything that uses the queue may hold it.
        for r in [
            Reason::CwdInQueue("/q".into()),
            Reason::FileOpen("/q/lock/sendmutex".into()),
            Reason::Unreadable,
            Reason::HoldsSendmutex,
        ] {
            assert!(!nobody_can_hold_the_lock(&[p(Reason::Zombie), p(r.clone())]), "{r:?}");
        }
        // A quiet queue: the same listing as with /proc/locks read.
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        let s = Session::open(&opts(&q), Access::ReadOnly).unwrap();
        let with_locks =
            find_queue_processes_locking(&real_path(&q).unwrap(), sendmutex_inode(s.root()), Path::new(PROC)).unwrap();
        assert_eq!(s.processes().unwrap(), with_locks.as_slice());
    }

    #[test]
    fn exclusive_is_refused_while_a_child_holds_the_lock_even_forced() {
        if !Path::new("/proc/locks").exists() {
            println!("skipped: exclusive_is_refused_while_a_child_holds_the_lock_even_forced: no /proc/locks");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        let lockfile = q.join("lock/sendmutex");
        // flock(1) holds an exclusive flock on the file, as qmail-send does.
        let kid =
            match Kid::start(Command::new("flock").arg("-x").arg(&lockfile).arg("sleep").arg("60").current_dir("/")) {
                Ok(k) => k,
                Err(e) => {
                    println!(
                        "skipped: exclusive_is_refused_while_a_child_holds_the_lock_even_forced: no flock(1): {e}"
                    );
                    return;
                }
            };
        let root = Dir::open(&q, SymlinkBehavior::Follow).unwrap();
        assert!(wait_for(|| probe_sendmutex(&root).unwrap() == LockState::Held), "flock(1) never took the lock");
        for force in [false, true] {
            let s = Session::open(&opts(&q), exclusive(force, DamagedLock::Restore)).unwrap();
            let r = s.claim().unwrap_err();
            let Refusal::QmailSendRunning { holders, instead } = &r else { panic!("force {force}: {r:?}") };
            assert_eq!(*instead, Some("or do it another way"));
            // flock(1) took the lock; it may have exec'd sleep since.
            assert_eq!(holders.len(), 1, "{holders:?}");
            assert!(holders[0].ends_with(&format!(" pid {}", kid.0.id())), "{holders:?}");
            let text = r.to_string();
            assert!(text.starts_with("qmail-send is running: lock/sendmutex is held by "), "{text}");
            assert!(text.ends_with(": stop it first, or do it another way; nothing was changed"), "{text}");
            // The listing says why it counts.
            let listed = s.processes().unwrap();
            let p = listed.iter().find(|p| p.pid == kid.0.id()).expect("the holder is listed");
            assert_eq!(p.reason, Reason::HoldsSendmutex);
        }
        drop(kid);
        assert!(wait_for(|| probe_sendmutex(&root).unwrap() == LockState::Free));
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        assert!(s.claim().unwrap().lock().is_some());
    }

    #[test]
    fn a_process_working_in_the_queue_refuses_unless_forced() {
        if !Path::new("/proc/self/cwd").exists() {
            println!("skipped: a_process_working_in_the_queue_refuses_unless_forced: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        let kid = Kid::start(Command::new("sleep").arg("60").current_dir(q.join("todo"))).unwrap();
        let want = real_path(&q.join("todo")).unwrap();
        let cwd = Path::new("/proc").join(kid.0.id().to_string()).join("cwd");
        assert!(wait_for(|| fs::read_link(&cwd).is_ok_and(|p| p == want)), "the sleeper never got there");

        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        let r = s.claim().unwrap_err();
        let text = r.to_string();
        assert!(matches!(r, Refusal::ProcessesInQueue(_)), "{r:?}");
        assert!(text.starts_with("processes work inside the queue: "), "{text}");
        assert!(text.contains(&format!(" pid {} (working in {})", kid.0.id(), want.display())), "{text}");
        assert!(text.ends_with("; stop them (or use --force); nothing was changed"), "{text}");
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Free, "a refusal takes no lock");
        assert_eq!(s.working_in_queue().len(), 1);

        // Forced: granted, and the lock is held.
        let s = Session::open(&opts(&q), exclusive(true, DamagedLock::Refuse)).unwrap();
        let c = s.claim().unwrap();
        assert!(c.lock().is_some());
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Held);
        assert!(s.working_in_queue().iter().any(|p| p.pid == kid.0.id()));
    }

    #[test]
    fn a_damaged_lock_is_refused_or_left_to_restore() {
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        fs::remove_file(q.join("lock/sendmutex")).unwrap();
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        let r = s.claim().unwrap_err();
        assert_eq!(r, Refusal::LockUnusable("missing".into()));
        assert!(r.to_string().contains("run `qfixq live` first"), "{r}");

        nix::unistd::mkfifo(&q.join("lock/sendmutex"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        assert_eq!(s.claim().unwrap_err(), Refusal::LockUnusable("a named pipe, not a regular file".into()));

        // Restored by the tool: let through without the lock, which is
        // taken once the file is back.
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Restore)).unwrap();
        let mut c = s.claim().unwrap();
        assert!(c.lock().is_none() && c.lock_to_restore());
        assert_eq!(c.take_restored_lock(&s).unwrap_err(), Refusal::LockNotTakenAfterRestore);
        fs::remove_file(q.join("lock/sendmutex")).unwrap();
        fs::write(q.join("lock/sendmutex"), b"").unwrap();
        c.take_restored_lock(&s).unwrap();
        assert!(c.lock().is_some() && !c.lock_to_restore());
        assert_eq!(probe_sendmutex(s.root()).unwrap(), LockState::Held);
    }

    #[test]
    fn a_renumbering_fence_is_refused_or_finished_under_its_lock() {
        let t = tempfile::tempdir().unwrap();
        let q = make_queue(t.path());
        fs::rename(q.join("lock/sendmutex"), q.join("lock").join(FENCE)).unwrap();
        // A tool that does not finish renumberings (qkillns) refuses, and
        // says why in plain words.
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Refuse)).unwrap();
        let r = s.claim().unwrap_err();
        assert_eq!(r, Refusal::RenumberingInterrupted);
        assert!(r.to_string().contains("a qfixq renumbering was interrupted"), "{r}");
        assert!(r.to_string().contains("run `qfixq live` to finish it"), "{r}");
        // qfixq takes the fence's lock and holds it; a second qfixq is
        // refused meanwhile.
        let s = Session::open(&opts(&q), exclusive(false, DamagedLock::Restore)).unwrap();
        let c = s.claim().unwrap();
        assert!(c.lock().is_some() && !c.lock_to_restore());
        let s2 = Session::open(&opts(&q), exclusive(false, DamagedLock::Restore)).unwrap();
        assert_eq!(s2.claim().unwrap_err(), Refusal::RenumberingUnderWay);
        drop(c);
        assert!(s2.claim().is_ok());
    }

    #[test]
    fn a_second_open_must_be_the_same_directory() {
        let t = tempfile::tempdir().unwrap();
        let real = make_queue(&t.path().join("disk1"));
        let other = make_queue(&t.path().join("disk2"));
        let link = t.path().join("queue");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let s = Session::open(&opts(&link), Access::ReadOnly).unwrap();
        assert!(s.layout().queue_is_symlink);
        assert!(s.open_again().is_ok());
        // The link swapped for another queue after the first open.
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let e = s.open_again().unwrap_err();
        assert!(e.to_string().contains("changed while it was being opened"), "{e}");
        // The root handed on is still the first queue.
        let st = s.root().stat_self().unwrap();
        let md = fs::metadata(&real).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((st.dev, st.ino), (md.dev(), md.ino()));
    }

    #[test]
    fn refusals_read_the_same_for_every_tool() {
        let running = Refusal::QmailSendRunning { holders: vec!["qmail-send pid 2136".into()], instead: None };
        assert_eq!(
            running.to_string(),
            "qmail-send is running: lock/sendmutex is held by qmail-send pid 2136: stop it first; nothing was changed"
        );
        let unseen = Refusal::QmailSendRunning { holders: vec![], instead: None };
        assert!(unseen.to_string().contains("held by a process that /proc/locks does not show"), "{unseen}");
        assert_eq!(
            Refusal::LockDamagedWhileQmailSendRuns("qmail-send pid 7 (working in /q)".into()).to_string(),
            "lock/sendmutex is damaged while a qmail-send runs on this queue (qmail-send pid 7 (working in /q)): \
             stop it first; nothing was changed"
        );
        assert!(Refusal::ProcessesUnknown("no /proc".into()).to_string().contains("--force"));
    }
}
