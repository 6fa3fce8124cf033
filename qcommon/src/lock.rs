//! qmail-send's lock, `lock/sendmutex`: this module owns probing it, taking
//! it for the life of a tool, and finding out from `/proc/locks` which
//! processes hold it.
//!
//! qmail-send takes an exclusive `flock` on `lock/sendmutex` for its whole
//! life and refuses to start when it cannot. Trying that same lock with
//! `flock(LOCK_EX|LOCK_NB)` therefore tells whether a qmail-send runs on
//! the queue, and keeping it keeps one from starting while a tool changes
//! the queue.
//!
//! Neither [`probe_sendmutex`] nor [`acquire_sendmutex`] ever follows a
//! symbolic link, ever blocks, or ever opens anything but a regular file:
//! a named pipe, a link or anything else found at `lock/sendmutex` is
//! reported as [`LockState::NotRegular`] without being opened. Creating a
//! missing `lock/sendmutex` is not done here.
//!
//! `flock` locks belong to an open file description, not to a process: a
//! probe made by a process that already holds a [`SendLock`] on the same
//! queue opens a second description and is told [`LockState::Held`].
//!
//! The fence (docs/repair.md, "Renumbering"): while qfixq renumbers
//! messages, some may be half moved, which a qmail-send must not see. So
//! qfixq renames `lock/sendmutex` to [`FENCE`] before its first move and
//! back after its last: qmail-send opens `lock/sendmutex` without creating
//! it and refuses to start when it cannot. A crash leaves the fence up;
//! [`LockState::Fenced`] says so, and [`acquire_fence`] takes its lock for
//! the qfixq that finishes the renumbering (held by another: another qfixq
//! is renumbering).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::safe_fs::{Dir, FileKind};

/// Name of the lock directory inside the queue.
const LOCK_DIR: &str = "lock";
/// Name of qmail-send's lock file inside the lock directory.
const SENDMUTEX: &str = "sendmutex";
/// The name `lock/sendmutex` takes while qfixq renumbers (inside the lock
/// directory): qmail-send cannot start meanwhile.
pub const FENCE: &str = "sendmutex.qfixq-renumbering";

/// What [`probe_sendmutex`] (or a failed [`acquire_sendmutex`]) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// `lock/sendmutex` is a regular file and nobody holds its lock: no
    /// qmail-send runs on this queue.
    Free,
    /// Another open file description holds the lock: a qmail-send runs on
    /// this queue (or another tool holds it; see the module notes about a
    /// probe made while this process holds a [`SendLock`]).
    Held,
    /// `lock/` or `lock/sendmutex` does not exist, so the lock cannot be
    /// taken (and no qmail-send can be running on this queue, since it
    /// could not have taken it either).
    Missing,
    /// `lock/sendmutex` exists but is not a regular file (a named pipe, a
    /// symbolic link, a directory, ...). It was not opened.
    NotRegular(FileKind),
    /// `lock/sendmutex` is missing and the fence ([`FENCE`]) is there: a
    /// qfixq renumbering was interrupted (or runs), and qmail-send cannot
    /// start until `qfixq live` finishes it.
    Fenced,
}

impl LockState {
    /// A short description for reports.
    pub fn describe(self) -> String {
        match self {
            LockState::Free => "free (qmail-send is not running)".to_string(),
            LockState::Held => "held (qmail-send is running)".to_string(),
            LockState::Missing => "missing".to_string(),
            LockState::NotRegular(k) => format!("not a regular file ({})", k.name()),
            LockState::Fenced => format!(
                "set aside as lock/{FENCE} by an interrupted qfixq renumbering (qmail-send cannot start): run `qfixq \
                 live` to finish it"
            ),
        }
    }
}

/// qmail-send's lock, held by this process. The `flock` lives on a
/// descriptor owned by the guard (opened close-on-exec, so programs this
/// process runs do not inherit it); dropping the guard releases the lock
/// (nix's [`Flock`] unlocks first, so the release does not depend on other
/// copies of the description) and closes the descriptor.
#[derive(Debug)]
pub struct SendLock {
    _lock: Flock<File>,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

impl SendLock {
    /// Device and inode number of the locked `lock/sendmutex`, as
    /// [`lock_holders`] and [`crate::procs::find_qmail_send`] want them.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The path of the locked file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every kind of file, to read a [`FileKind`] back from its name.
const KINDS: [FileKind; 7] = [
    FileKind::Regular,
    FileKind::Directory,
    FileKind::Symlink,
    FileKind::Fifo,
    FileKind::Socket,
    FileKind::CharDevice,
    FileKind::BlockDevice,
];

/// An open, not yet locked `lock/sendmutex`.
struct Opened {
    file: File,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

/// Opens `lock/sendmutex` under `queue` without following a link, without
/// blocking and without opening anything but a regular file. `Ok(Err(_))`
/// says why there is nothing to lock.
fn open_sendmutex(queue: &Dir) -> Result<std::result::Result<Opened, LockState>> {
    let lock_name = OsStr::new(LOCK_DIR);
    match queue.stat(lock_name) {
        Ok(st) if st.kind == FileKind::Directory => {}
        Ok(st) => {
            return Err(Error::WrongKind {
                op: "open directory",
                path: queue.child_path(lock_name),
                expected: "directory",
                found: st.kind.name(),
            })
        }
        Err(e) if e.is_not_found() => return Ok(Err(LockState::Missing)),
        Err(e) => return Err(e),
    }
    let lock_dir = match queue.open_dir(lock_name) {
        Ok(d) => d,
        // Removed between the stat and the open.
        Err(e) if e.is_not_found() => return Ok(Err(LockState::Missing)),
        Err(e) => return Err(e),
    };
    let name = OsStr::new(SENDMUTEX);
    let path = lock_dir.child_path(name);
    // Look before opening: a named pipe or a device is never opened.
    match lock_dir.stat(name) {
        Ok(st) if st.kind == FileKind::Regular => {}
        Ok(st) => return Ok(Err(LockState::NotRegular(st.kind))),
        Err(e) if e.is_not_found() => return Ok(Err(missing(&lock_dir))),
        Err(e) => return Err(e),
    }
    // Read-only, never following a link, never blocking on a named pipe,
    // close-on-exec; anything but a regular file is refused after the open
    // (the name may have been swapped since the stat above).
    let (file, st) = match open_regular(&lock_dir, name, || missing(&lock_dir))? {
        Ok(opened) => opened,
        Err(state) => return Ok(Err(state)),
    };
    Ok(Ok(Opened { file, dev: st.dev, ino: st.ino, path }))
}

/// What a missing `lock/sendmutex` means: [`LockState::Fenced`] when the
/// fence, a regular file, is there.
fn missing(lock_dir: &Dir) -> LockState {
    match lock_dir.stat(OsStr::new(FENCE)) {
        Ok(st) if st.kind == FileKind::Regular => LockState::Fenced,
        _ => LockState::Missing,
    }
}

/// Takes the lock of the fence (`lock/sendmutex` set aside by an
/// interrupted qfixq renumbering), as [`acquire_sendmutex`] takes
/// qmail-send's: for the qfixq that finishes the renumbering and then
/// renames the fence back. `Ok(Err(LockState::Held))` when another holds
/// it (another qfixq is renumbering); `Missing` or `NotRegular` when there
/// is no regular fence to lock.
pub fn acquire_fence(queue: &Dir) -> Result<std::result::Result<SendLock, LockState>> {
    let lock_dir = match queue.open_dir(OsStr::new(LOCK_DIR)) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(Err(LockState::Missing)),
        Err(e) => return Err(e),
    };
    let name = OsStr::new(FENCE);
    let path = lock_dir.child_path(name);
    let (file, st) = match open_regular(&lock_dir, name, || LockState::Missing)? {
        Ok(opened) => opened,
        Err(state) => return Ok(Err(state)),
    };
    match try_flock(file, &path)? {
        Some(lock) => Ok(Ok(SendLock { _lock: lock, dev: st.dev, ino: st.ino, path })),
        None => Ok(Err(LockState::Held)),
    }
}

/// Opens lock file `name` in `lock_dir` read-only, never following a
/// link, never blocking on a named pipe, close-on-exec. `Ok(Err(_))` when
/// there is no regular file to lock: not a regular file, or gone (what
/// `gone` says: the sendmutex may be fenced, see [`missing`]).
fn open_regular(
    lock_dir: &Dir,
    name: &OsStr,
    gone: impl FnOnce() -> LockState,
) -> Result<std::result::Result<(File, crate::safe_fs::Stat), LockState>> {
    match lock_dir.open_regular(name) {
        Ok(opened) => Ok(Ok(opened)),
        Err(Error::WrongKind { found, .. }) => {
            let kind = KINDS.into_iter().find(|k| k.name() == found).unwrap_or(FileKind::Regular);
            Ok(Err(LockState::NotRegular(kind)))
        }
        Err(e) => match e.errno() {
            Some(Errno::ENOENT) => Ok(Err(gone())),
            Some(Errno::ELOOP) => Ok(Err(LockState::NotRegular(FileKind::Symlink))),
            _ => Err(e),
        },
    }
}

/// `flock(LOCK_EX|LOCK_NB)`, qmail-send's own call. `Ok(None)` when
/// another open file description holds the lock.
fn try_flock(mut file: File, path: &Path) -> Result<Option<Flock<File>>> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(Error::sys("lock", path, e)),
        }
    }
}

/// Tells whether qmail-send runs on the queue open as `queue`, by trying its
/// lock without blocking: `Held` when another holds it, `Free` when it could
/// be taken (it is released at once). `Missing` when `lock/` or
/// `lock/sendmutex` is absent, `NotRegular` when `lock/sendmutex` is not a
/// regular file (never opened then, so a named pipe cannot block and a link
/// is never followed).
///
/// A `lock` that exists but is not a directory (a file, or a symbolic link,
/// which is never followed) is an [`Error::WrongKind`]: whether a qmail-send
/// runs cannot be told from the lock then.
///
/// A probe by a process that itself holds a [`SendLock`] on this queue
/// answers `Held` (flock locks belong to open file descriptions).
pub fn probe_sendmutex(queue: &Dir) -> Result<LockState> {
    let opened = match open_sendmutex(queue)? {
        Ok(o) => o,
        Err(state) => return Ok(state),
    };
    // A lock taken here is released at once (the drop unlocks, then
    // closes).
    match try_flock(opened.file, &opened.path)? {
        Some(_released) => Ok(LockState::Free),
        None => Ok(LockState::Held),
    }
}

/// Takes qmail-send's lock without blocking and keeps it in the returned
/// guard until the guard is dropped; meanwhile no qmail-send can start on
/// this queue. `Ok(Err(LockState::Held))` when another holds it (qmail-send
/// runs); `Ok(Err(LockState::Missing))` or `Ok(Err(LockState::NotRegular(_)))`
/// when there is no regular `lock/sendmutex` to lock. The same checks as
/// [`probe_sendmutex`] apply: nothing is followed, nothing blocks, and a
/// non-directory `lock` is an error.
pub fn acquire_sendmutex(queue: &Dir) -> Result<std::result::Result<SendLock, LockState>> {
    let opened = match open_sendmutex(queue)? {
        Ok(o) => o,
        Err(state) => return Ok(Err(state)),
    };
    match try_flock(opened.file, &opened.path)? {
        Some(lock) => Ok(Ok(SendLock { _lock: lock, dev: opened.dev, ino: opened.ino, path: opened.path })),
        None => Ok(Err(LockState::Held)),
    }
}

/// The pids holding a `flock` (shared or exclusive) on the file with device
/// `dev` and inode `ino`, read from `/proc/locks`. Processes waiting for the
/// lock are not holders. The pid the kernel shows is the one that took the
/// lock; a child that inherited the descriptor is not listed.
pub fn lock_holders(dev: u64, ino: u64) -> Result<Vec<u32>> {
    lock_holders_at(Path::new("/proc"), dev, ino)
}

/// [`lock_holders`] reading `<proc_root>/locks` (tests use a fake `/proc`).
pub fn lock_holders_at(proc_root: &Path, dev: u64, ino: u64) -> Result<Vec<u32>> {
    let path = proc_root.join("locks");
    let data = std::fs::read(&path).map_err(|e| Error::sys("read", &path, crate::safe_fs::io_errno(&e)))?;
    Ok(parse_proc_locks(&String::from_utf8_lossy(&data), dev, ino))
}

/// Parses `/proc/locks` text and returns, sorted and without duplicates,
/// the pids holding a `FLOCK` lock on device `dev` (as in `st_dev`) and
/// inode `ino`. Lines look like
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:131090 0 EOF`, where the device is
/// `MAJOR:MINOR` in hexadecimal; lines of waiters (`1: -> FLOCK ...`), other
/// lock types (POSIX, OFDLCK, LEASE), pids that are not positive and lines
/// that do not parse are skipped.
pub fn parse_proc_locks(text: &str, dev: u64, ino: u64) -> Vec<u32> {
    let major = u64::from(libc::major(dev as libc::dev_t));
    let minor = u64::from(libc::minor(dev as libc::dev_t));
    let mut pids: Vec<u32> = text.lines().filter_map(|line| parse_locks_line(line, major, minor, ino)).collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// One line of `/proc/locks`: the holder's pid when it is a granted FLOCK
/// on `major:minor:ino`.
fn parse_locks_line(line: &str, major: u64, minor: u64, ino: u64) -> Option<u32> {
    let mut tokens = line.split_whitespace();
    let id = tokens.next()?;
    if !id.ends_with(':') {
        return None;
    }
    let kind = tokens.next()?;
    if kind != "FLOCK" {
        // "->" marks a waiter; anything else is another lock type.
        return None;
    }
    let rest: Vec<&str> = tokens.collect();
    // The device:inode field follows the pid; the fields between the type
    // and the pid have varied between kernels, so find it by its shape.
    let pos = rest.iter().position(|t| parse_dev_ino(t).is_some())?;
    let (maj, min, i) = parse_dev_ino(rest[pos])?;
    if (maj, min, i) != (major, minor, ino) || pos == 0 {
        return None;
    }
    let pid: i64 = rest[pos - 1].parse().ok()?;
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

/// Parses `MAJOR:MINOR:INODE` (hex, hex, decimal).
fn parse_dev_ino(t: &str) -> Option<(u64, u64, u64)> {
    let mut parts = t.split(':');
    let maj = parts.next()?;
    let min = parts.next()?;
    let ino = parts.next()?;
    if parts.next().is_some() || maj.is_empty() || min.is_empty() || ino.is_empty() {
        return None;
    }
    if !ino.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((u64::from_str_radix(maj, 16).ok()?, u64::from_str_radix(min, 16).ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::SymlinkBehavior;
    use std::os::unix::fs::MetadataExt;

    /// A temporary queue with `lock/sendmutex`.
    fn queue() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("lock")).unwrap();
        std::fs::write(t.path().join("lock/sendmutex"), b"").unwrap();
        let d = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        (t, d)
    }

    /// An independent open file description holding the lock, as
    /// qmail-send would.
    fn hold(path: &Path) -> Flock<File> {
        let f = File::open(path).unwrap();
        Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e).unwrap()
    }

    #[test]
    fn a_fence_is_told_from_a_missing_lock_and_its_lock_taken_once() {
        let (t, q) = queue();
        std::fs::rename(t.path().join("lock/sendmutex"), t.path().join("lock").join(FENCE)).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Fenced);
        assert_eq!(acquire_sendmutex(&q).unwrap().unwrap_err(), LockState::Fenced);
        let first = acquire_fence(&q).unwrap().unwrap();
        assert_eq!(acquire_fence(&q).unwrap().unwrap_err(), LockState::Held, "another qfixq holds it");
        drop(first);
        assert!(acquire_fence(&q).unwrap().is_ok());
        std::fs::remove_file(t.path().join("lock").join(FENCE)).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Missing);
    }

    #[test]
    fn free_then_held_then_free() {
        let (t, q) = queue();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Free);
        // The probe released its lock.
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Free);
        let other = hold(&t.path().join("lock/sendmutex"));
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Held);
        assert_eq!(acquire_sendmutex(&q).unwrap().unwrap_err(), LockState::Held);
        drop(other);
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Free);
    }

    #[test]
    fn missing_lock_dir_or_file() {
        let t = tempfile::tempdir().unwrap();
        let q = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Missing);
        std::fs::create_dir(t.path().join("lock")).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Missing);
        assert_eq!(acquire_sendmutex(&q).unwrap().unwrap_err(), LockState::Missing);
    }

    #[test]
    fn lock_that_is_not_a_directory_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("sendmutex"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("lock")).unwrap();
        let q = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        let e = probe_sendmutex(&q).unwrap_err();
        assert!(matches!(e, Error::WrongKind { .. }), "{e}");
        assert!(e.to_string().contains("lock"), "{e}");
    }

    #[test]
    fn fifo_is_not_opened() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("lock")).unwrap();
        nix::unistd::mkfifo(&t.path().join("lock/sendmutex"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let q = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        // Would hang forever if the FIFO were opened for reading in
        // blocking mode; O_NONBLOCK and the stat first keep it from that.
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::NotRegular(FileKind::Fifo));
        assert_eq!(acquire_sendmutex(&q).unwrap().unwrap_err(), LockState::NotRegular(FileKind::Fifo));
    }

    #[test]
    fn symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let before = std::fs::metadata(&target).unwrap();
        std::fs::create_dir(t.path().join("lock")).unwrap();
        std::os::unix::fs::symlink(&target, t.path().join("lock/sendmutex")).unwrap();
        let q = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::NotRegular(FileKind::Symlink));
        assert_eq!(acquire_sendmutex(&q).unwrap().unwrap_err(), LockState::NotRegular(FileKind::Symlink));
        let after = std::fs::metadata(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(
            (before.mtime(), before.mtime_nsec(), before.atime(), before.atime_nsec(), before.mode()),
            (after.mtime(), after.mtime_nsec(), after.atime(), after.atime_nsec(), after.mode())
        );
        // The target was not locked and stays lockable.
        drop(hold(&target));
    }

    #[test]
    fn directory_in_place_of_sendmutex() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("lock/sendmutex")).unwrap();
        let q = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::NotRegular(FileKind::Directory));
    }

    #[test]
    fn acquire_holds_until_drop() {
        let (t, q) = queue();
        let path = t.path().join("lock/sendmutex");
        let lock = acquire_sendmutex(&q).unwrap().unwrap();
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(lock.inode(), (md.dev(), md.ino()));
        assert_eq!(lock.path(), path.as_path());
        // Another description (even in this process) cannot take it.
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Held);
        let f = File::open(&path).unwrap();
        let refused = Flock::lock(f, FlockArg::LockExclusiveNonblock).map(|_| ()).map_err(|(_, e)| e);
        assert_eq!(refused, Err(Errno::EWOULDBLOCK));
        drop(lock);
        assert_eq!(probe_sendmutex(&q).unwrap(), LockState::Free);
    }

    #[test]
    fn holders_are_found_in_proc_locks() {
        let (t, q) = queue();
        let lock = acquire_sendmutex(&q).unwrap().unwrap();
        let (dev, ino) = lock.inode();
        if !Path::new("/proc/locks").exists() {
            return;
        }
        let holders = lock_holders(dev, ino).unwrap();
        assert!(holders.contains(&std::process::id()), "{holders:?}");
        drop(lock);
        let holders = lock_holders(dev, ino).unwrap();
        assert!(!holders.contains(&std::process::id()), "{holders:?}");
        drop(t);
    }

    #[test]
    fn parses_proc_locks() {
        let dev = libc::makedev(0xfd, 0x01);
        let text = "\
1: FLOCK  ADVISORY  WRITE 1234 fd:01:131090 0 EOF
1: -> FLOCK  ADVISORY  WRITE 999 fd:01:131090 0 EOF
2: POSIX  ADVISORY  WRITE 567 fd:01:131090 0 EOF
3: FLOCK  ADVISORY  WRITE 42 fd:01:131091 0 EOF
4: FLOCK  ADVISORY  WRITE 43 08:01:131090 0 EOF
5: FLOCK  ADVISORY  READ  77 fd:01:131090 0 EOF
6: FLOCK  MSNFS     READ  78 fd:01:131090 0 EOF
7: OFDLCK ADVISORY  READ  -1 fd:01:131090 0 EOF
8: FLOCK  ADVISORY  WRITE -1 fd:01:131090 0 EOF
9: FLOCK  ADVISORY  WRITE 1234 fd:01:131090 0 EOF
garbage line
10: FLOCK ADVISORY WRITE 55 <none>:0 0 EOF
";
        assert_eq!(parse_proc_locks(text, dev, 131090), vec![77, 78, 1234]);
        assert_eq!(parse_proc_locks(text, dev, 131091), vec![42]);
        assert_eq!(parse_proc_locks(text, libc::makedev(8, 1), 131090), vec![43]);
        assert_eq!(parse_proc_locks("", dev, 1), Vec::<u32>::new());
        // Large minor numbers are printed in hex too.
        let big = libc::makedev(0, 0x1a2);
        assert_eq!(parse_proc_locks("1: FLOCK ADVISORY WRITE 9 00:1a2:5 0 EOF\n", big, 5), vec![9]);
    }
}
