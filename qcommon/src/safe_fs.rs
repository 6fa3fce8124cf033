//! The symlink-safe file layer: every access to the queue goes through a
//! [`Dir`], a directory file descriptor opened with
//! `O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`, and every operation is relative to
//! it with no-follow flags, so neither a symbolic link nor a rename race can
//! redirect a read or a change outside the queue.
//!
//! The raw mutations here are used by [`crate::mutator`], which is the only
//! place the tools change the queue.

use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, Result};

/// Whether the last component of a path may be a symbolic link that is
/// followed. Only the queue root itself is ever opened with `Follow`
/// (`/var/qmail/queue` may be a link to another disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymlinkBehavior {
    /// Follow a link in the last component.
    Follow,
    /// Refuse a link (`ELOOP`).
    NoFollow,
}

/// The type of a file, from `d_type` or from a stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl FileKind {
    /// A word for reports.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symbolic link",
            FileKind::Fifo => "named pipe",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
        }
    }

    fn from_mode(mode: u32) -> FileKind {
        match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => FileKind::Directory,
            SFlag::S_IFLNK => FileKind::Symlink,
            SFlag::S_IFIFO => FileKind::Fifo,
            SFlag::S_IFSOCK => FileKind::Socket,
            SFlag::S_IFCHR => FileKind::CharDevice,
            SFlag::S_IFBLK => FileKind::BlockDevice,
            _ => FileKind::Regular,
        }
    }

    /// The kind a listing gives (`d_type`); `None` when it does not tell.
    fn from_file_type(t: rustix::fs::FileType) -> Option<FileKind> {
        use rustix::fs::FileType;
        Some(match t {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Unknown => return None,
        })
    }
}

/// What a no-follow stat saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// File type.
    pub kind: FileKind,
    /// Permission bits (`mode & 07777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard-link count.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nsec: i64,
    /// Access time, seconds since the epoch.
    pub atime: i64,
    /// Status-change time in nanoseconds since the epoch: a rename, chown
    /// or chmod sets it, so it orders a file's last move against another's.
    pub ctime_ns: i64,
}

impl Stat {
    fn from_raw(s: &libc::stat) -> Stat {
        Stat {
            dev: s.st_dev,
            ino: s.st_ino,
            kind: FileKind::from_mode(s.st_mode),
            perm: s.st_mode & 0o7777,
            uid: s.st_uid,
            gid: s.st_gid,
            nlink: s.st_nlink,
            size: s.st_size as u64,
            mtime: s.st_mtime,
            mtime_nsec: s.st_mtime_nsec,
            atime: s.st_atime,
            ctime_ns: s.st_ctime.saturating_mul(1_000_000_000).saturating_add(s.st_ctime_nsec),
        }
    }
}

/// One directory entry, as `getdents` gives it, without a stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (any bytes but `/` and NUL).
    pub name: OsString,
    /// The type from `d_type`, `None` where the filesystem does not say.
    pub kind: Option<FileKind>,
    /// `d_ino`.
    pub ino: u64,
}

/// What [`Dir::read_file`] read.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The bytes read, at most the cap.
    pub data: Vec<u8>,
    /// The file's stat, taken on the open descriptor.
    pub stat: Stat,
    /// True when the file held more than the cap.
    pub truncated: bool,
}

/// What a change expects to find at a name: the inode the scan saw and its
/// type. A change made through [`Dir::chown_verified`] and friends is
/// refused when the name now holds something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Inode number seen by the scan.
    pub ino: u64,
    /// Type seen by the scan.
    pub kind: FileKind,
    /// Highest acceptable link count (1 for message files, 2 for a
    /// todo/intd pair, any for directories).
    pub max_nlink: u64,
}

/// A file checked by [`Dir::open_verified`]: an `O_PATH` descriptor on
/// the inode the scan saw. Its changes are made on the descriptor (one
/// system call each, no name looked up again); dropping it closes it.
#[derive(Debug)]
pub struct Verified {
    fd: OwnedFd,
    path: PathBuf,
    stat: Stat,
}

impl Verified {
    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the checking `fstat` saw (before any change made here).
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    /// Changes owner and group: `fchownat` with `AT_EMPTY_PATH` on the
    /// descriptor (the inode held open, no name).
    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)));
        nix::unistd::fchownat(&self.fd, "", uid, gid, AtFlags::AT_EMPTY_PATH)
            .map_err(|e| Error::sys("chown", &self.path, e))
    }

    /// Changes the permission bits of the inode held open (an `O_PATH`
    /// descriptor refuses `fchmod`): `fchmodat2` with `AT_EMPTY_PATH` on
    /// the descriptor (Linux 6.6), else through its `/proc/self/fd` link,
    /// which names the same inode but costs a walk of /proc (about a tenth
    /// of a live run that changes every file; docs/repair.md, "Owners and
    /// modes"). The system call is made by hand: neither nix nor rustix
    /// wraps fchmodat2 (rustix lists it as not implemented yet).
    pub fn chmod(&self, perm: u32) -> Result<()> {
        if FCHMODAT2_OK.load(Ordering::Relaxed) {
            // SAFETY: fchmodat2(2) with a descriptor this value owns, a
            // NUL-terminated empty path that outlives the call, a mode and
            // flags; it reads no other memory and writes none.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_fchmodat2,
                    self.fd.as_raw_fd(),
                    c"".as_ptr(),
                    perm as libc::c_uint,
                    libc::AT_EMPTY_PATH,
                )
            };
            match Errno::result(r) {
                Ok(_) => return Ok(()),
                // A kernel without fchmodat2 (or without AT_EMPTY_PATH
                // for it): the /proc link from now on.
                Err(Errno::ENOSYS) | Err(Errno::EINVAL) => FCHMODAT2_OK.store(false, Ordering::Relaxed),
                Err(e) => return Err(Error::sys("chmod", &self.path, e)),
            }
        }
        self.chmod_by_proc(perm)
    }

    /// The chmod of an older kernel: through the descriptor's `/proc/self/fd` link.
    fn chmod_by_proc(&self, perm: u32) -> Result<()> {
        let p = self.proc_path();
        let mode = Mode::from_bits_truncate(perm as libc::mode_t);
        nix::sys::stat::fchmodat(AT_FDCWD, p.as_str(), mode, nix::sys::stat::FchmodatFlags::FollowSymlink)
            .map_err(|e| Error::sys("chmod", &self.path, e))
    }

    /// Sets the modification time and the access time to `mtime`.
    pub fn set_mtime(&self, mtime: i64) -> Result<()> {
        let p = self.proc_path();
        let t = nix::sys::time::TimeSpec::new(mtime as libc::time_t, 0);
        nix::sys::stat::utimensat(AT_FDCWD, p.as_str(), &t, &t, nix::sys::stat::UtimensatFlags::FollowSymlink)
            .map_err(|e| Error::sys("set time of", &self.path, e))
    }

    fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

static NOATIME_OK: AtomicBool = AtomicBool::new(true);

/// Whether `fchmodat2` with `AT_EMPTY_PATH` works here (until a kernel
/// says it does not).
static FCHMODAT2_OK: AtomicBool = AtomicBool::new(true);

/// `openat` with `O_NOATIME` where permitted (the owner, or root): a
/// read-only run must not change access times. Falls back without it, once
/// and for all, where it is refused.
fn openat_noatime<P: ?Sized + nix::NixPath>(dirfd: BorrowedFd<'_>, path: &P, flags: OFlag) -> nix::Result<OwnedFd> {
    loop {
        let noatime = NOATIME_OK.load(Ordering::Relaxed);
        let f = if noatime { flags | OFlag::O_NOATIME } else { flags };
        match nix::fcntl::openat(dirfd, path, f, Mode::empty()) {
            Err(Errno::EPERM) if noatime => NOATIME_OK.store(false, Ordering::Relaxed),
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// An open directory. All paths given to its methods are single names
/// (no `/`), relative to it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Whether a listing has read (or is reading) `fd` itself: its
    /// position is then no longer at the start.
    read: AtomicBool,
}

impl Dir {
    /// Opens a directory by path. Use `Follow` only for the queue root.
    pub fn open(path: &Path, follow: SymlinkBehavior) -> Result<Dir> {
        let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        if follow == SymlinkBehavior::NoFollow {
            flags |= OFlag::O_NOFOLLOW;
        }
        // AT_FDCWD: a relative path is taken from the working directory, as `open` does.
        let fd = openat_noatime(AT_FDCWD, path, flags).map_err(|e| Error::sys("open directory", path, e))?;
        Ok(Dir { fd, path: path.to_path_buf(), read: AtomicBool::new(false) })
    }

    /// The path this directory was reached by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a child, for messages.
    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The raw descriptor (valid while `self` lives).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The descriptor, borrowed for as long as `self` lives.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens a sub-directory, never following a link.
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        let path = self.child_path(name);
        let fd = openat_noatime(
            self.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
        .map_err(|e| Error::sys("open directory", &path, e))?;
        Ok(Dir { fd, path, read: AtomicBool::new(false) })
    }

    /// Calls `f` for each entry (without `.` and `..`) with its name,
    /// `d_type` and `d_ino`; no stat per entry. Streams: memory does not
    /// grow with the directory.
    pub fn for_each_entry(&self, mut f: impl FnMut(&CStr, Option<FileKind>, u64)) -> Result<()> {
        self.for_each_entry_while(|n, k, i| {
            f(n, k, i);
            true
        })
    }

    /// Like [`Dir::for_each_entry`], stopping as soon as `f` returns false
    /// (a sample of a huge directory costs only what it reads).
    ///
    /// The first listing of a `Dir` reads its own descriptor, which no one
    /// has read yet (so it is at the start): `getdents64` until it gives
    /// nothing, and no other call. A later listing, or one made while
    /// another thread lists the same `Dir`, opens the directory again
    /// through the descriptor (`.`, no path lookup from outside).
    pub fn for_each_entry_while(&self, mut f: impl FnMut(&CStr, Option<FileKind>, u64) -> bool) -> Result<()> {
        let again;
        let fd = if self.read.swap(true, Ordering::AcqRel) {
            again = openat_noatime(self.as_fd(), ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .map_err(|e| Error::sys("open directory", &self.path, e))?;
            again.as_fd()
        } else {
            self.as_fd()
        };
        // As large as the buffer of glibc's readdir: a bucket of a few
        // hundred messages is one call, and the empty one that ends it.
        let mut buf = [MaybeUninit::<u8>::uninit(); LISTING_BUFFER];
        let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
        while let Some(ent) = dir.next() {
            let ent = ent.map_err(|e| Error::sys("read directory", &self.path, Errno::from_raw(e.raw_os_error())))?;
            let name = ent.file_name();
            let b = name.to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            if !f(name, FileKind::from_file_type(ent.file_type()), ent.ino()) {
                break;
            }
        }
        Ok(())
    }

    /// All entries (without `.` and `..`).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut v = Vec::new();
        self.for_each_entry(|name, kind, ino| {
            v.push(Entry { name: OsString::from_vec(name.to_bytes().to_vec()), kind, ino })
        })?;
        Ok(v)
    }

    /// `fstatat` without following a link.
    pub fn stat(&self, name: &OsStr) -> Result<Stat> {
        let st = nix::sys::stat::fstatat(self.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| Error::sys("stat", self.child_path(name), e))?;
        Ok(Stat::from_raw(&st))
    }

    /// Stat of this directory itself.
    pub fn stat_self(&self) -> Result<Stat> {
        let st = nix::sys::stat::fstat(self.as_fd()).map_err(|e| Error::sys("stat", &self.path, e))?;
        Ok(Stat::from_raw(&st))
    }

    /// Opens a regular file for reading: never follows a link, never blocks
    /// on a FIFO, never becomes a controlling terminal, never changes the
    /// access time where `O_NOATIME` is permitted. Anything but a regular
    /// file is refused with [`Error::WrongKind`].
    pub fn open_regular(&self, name: &OsStr) -> Result<(File, Stat)> {
        // The path is built only for an error: this runs for every envelope.
        let base = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = loop {
            let noatime = NOATIME_OK.load(Ordering::Relaxed);
            let flags = if noatime { base | OFlag::O_NOATIME } else { base };
            match nix::fcntl::openat(self.as_fd(), name, flags, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::EPERM) if noatime => NOATIME_OK.store(false, Ordering::Relaxed),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("open", self.child_path(name), e)),
            }
        };
        let file = File::from(fd);
        let st = nix::sys::stat::fstat(&file).map_err(|e| Error::sys("stat", self.child_path(name), e))?;
        let st = Stat::from_raw(&st);
        if st.kind != FileKind::Regular {
            return Err(Error::WrongKind {
                op: "open",
                path: self.child_path(name),
                expected: "regular file",
                found: st.kind.name(),
            });
        }
        Ok((file, st))
    }

    /// Opens the regular file at `rel` (a relative path such as
    /// `remote/3/1234`) beneath this directory: every directory on the way
    /// is opened without following links, then the file as
    /// [`Dir::open_regular`] does.
    pub fn open_regular_beneath(&self, rel: &Path) -> Result<(File, Stat)> {
        use std::path::Component;
        let mut parts: Vec<&OsStr> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(x) => parts.push(x),
                _ => return Err(Error::Other(format!("bad relative path {}", crate::error::escape_path(rel)))),
            }
        }
        let Some((last, dirs)) = parts.split_last() else {
            return Err(Error::Other("empty relative path".into()));
        };
        let mut held: Option<Dir> = None;
        for d in dirs {
            let next = held.as_ref().unwrap_or(self).open_dir(d)?;
            held = Some(next);
        }
        held.as_ref().unwrap_or(self).open_regular(last)
    }

    /// Reads at most `cap` bytes of a regular file (see [`Dir::open_regular`]).
    /// A 10 GB junk file costs `cap` bytes, not 10 GB.
    pub fn read_file(&self, name: &OsStr, cap: usize) -> Result<Contents> {
        let mut data = Vec::new();
        let (stat, truncated) = self.read_file_into(name, cap, &mut data)?;
        Ok(Contents { data, stat, truncated })
    }

    /// Like [`Dir::read_file`], into `buf` (cleared first), so that a
    /// scan reading millions of small files reuses one buffer. Returns the
    /// stat taken on the open descriptor and whether the file held more
    /// than `cap` bytes.
    pub fn read_file_into(&self, name: &OsStr, cap: usize, buf: &mut Vec<u8>) -> Result<(Stat, bool)> {
        buf.clear();
        let (mut file, stat) = self.open_regular(name)?;
        let read_err = |e: &std::io::Error| Error::sys("read", self.child_path(name), io_errno(e));
        if stat.size as usize > cap {
            // Larger than the cap: read the cap's worth, no more.
            buf.reserve(cap);
            (&mut file).take(cap as u64).read_to_end(buf).map_err(|e| read_err(&e))?;
            return Ok((stat, true));
        }
        // The size is known: one read usually does, without a read at EOF.
        let size = stat.size as usize;
        buf.resize(size, 0);
        let mut got = 0;
        while got < size {
            match file.read(&mut buf[got..]) {
                Ok(0) => break, // shrank since the stat: what is there is all
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(&e)),
            }
        }
        buf.truncate(got);
        Ok((stat, false))
    }

    /// Opens `name` as an `O_PATH` descriptor (nothing is read, nothing can
    /// block; a link is not followed) and checks with one `fstat` that it
    /// still is what the scan saw. The changes of the [`Verified`] it
    /// returns are made on that descriptor, so they reach exactly the
    /// inode checked, whatever is renamed over the name meanwhile: one
    /// open, one stat and one close, however many changes are made.
    pub fn open_verified(&self, op: &'static str, name: &OsStr, expect: &Expect) -> Result<Verified> {
        let path = self.child_path(name);
        let fd =
            nix::fcntl::openat(self.as_fd(), name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| Error::sys(op, &path, e))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys(op, &path, e))?;
        let st = Stat::from_raw(&st);
        let mut detail = Vec::new();
        if st.ino != expect.ino {
            detail.push(format!("inode {} now, {} scanned", st.ino, expect.ino));
        }
        if st.kind != expect.kind {
            detail.push(format!("{} now, {} scanned", st.kind.name(), expect.kind.name()));
        }
        if st.nlink > expect.max_nlink {
            detail.push(format!("{} links, at most {} expected", st.nlink, expect.max_nlink));
        }
        if !detail.is_empty() {
            return Err(Error::Changed { op, path, detail: detail.join(", ") });
        }
        Ok(Verified { fd, path, stat: st })
    }

    /// Changes owner and group of `name`, verified against the scan.
    pub fn chown_verified(&self, name: &OsStr, expect: &Expect, uid: u32, gid: u32) -> Result<()> {
        self.open_verified("chown", name, expect)?.chown(uid, gid)
    }

    /// Changes the permission bits of `name`, verified against the scan.
    pub fn chmod_verified(&self, name: &OsStr, expect: &Expect, perm: u32) -> Result<()> {
        self.open_verified("chmod", name, expect)?.chmod(perm)
    }

    /// Sets the modification time (and access time to the same) of `name`,
    /// verified against the scan.
    pub fn set_mtime_verified(&self, name: &OsStr, expect: &Expect, mtime: i64) -> Result<()> {
        self.open_verified("set time of", name, expect)?.set_mtime(mtime)
    }

    /// Renames `from` (in `self`) to `to` (in `to_dir`), failing with
    /// `EEXIST` when `to` exists. Uses `RENAME_NOREPLACE`; where the
    /// filesystem lacks it, a link and an unlink for files, or a checked
    /// rename for directories.
    pub fn rename_noreplace(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> Result<()> {
        let path = self.child_path(from);
        let r =
            nix::fcntl::renameat2(self.as_fd(), from, to_dir.as_fd(), to, nix::fcntl::RenameFlags::RENAME_NOREPLACE);
        match r {
            Ok(()) => Ok(()),
            Err(Errno::EINVAL) | Err(Errno::ENOSYS) | Err(Errno::EOPNOTSUPP) => {
                let st = self.stat(from)?;
                if st.kind == FileKind::Directory {
                    match to_dir.stat(to) {
                        Ok(_) => return Err(Error::sys("rename", &path, Errno::EEXIST)),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                    nix::fcntl::renameat(self.as_fd(), from, to_dir.as_fd(), to)
                        .map_err(|e| Error::sys("rename", &path, e))
                } else {
                    self.link(from, to_dir, to)?;
                    self.unlink(from)
                }
            }
            Err(e) => Err(Error::sys("rename", &path, e)),
        }
    }

    /// Renames `from` to `to`, replacing `to` (used to commit a rewritten file).
    pub fn rename_replace(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> Result<()> {
        nix::fcntl::renameat(self.as_fd(), from, to_dir.as_fd(), to)
            .map_err(|e| Error::sys("rename", self.child_path(from), e))
    }

    /// Makes a hard link `to` (in `to_dir`) of `from`, never following a link.
    pub fn link(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> Result<()> {
        // No flag: a symbolic link `from` is linked itself, never followed.
        let no_follow = nix::fcntl::AtFlags::empty();
        nix::unistd::linkat(self.as_fd(), from, to_dir.as_fd(), to, no_follow)
            .map_err(|e| Error::sys("link", to_dir.child_path(to), e))
    }

    /// Removes a non-directory name.
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        nix::unistd::unlinkat(self.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|e| Error::sys("unlink", self.child_path(name), e))
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, name: &OsStr) -> Result<()> {
        nix::unistd::unlinkat(self.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
            .map_err(|e| Error::sys("remove directory", self.child_path(name), e))
    }

    /// Makes a directory with exactly `perm` (the umask is undone by a
    /// chmod when it interfered).
    pub fn mkdir(&self, name: &OsStr, perm: u32) -> Result<()> {
        nix::sys::stat::mkdirat(self.as_fd(), name, Mode::from_bits_truncate(perm))
            .map_err(|e| Error::sys("make directory", self.child_path(name), e))
    }

    /// Makes a named pipe.
    pub fn mkfifo(&self, name: &OsStr, perm: u32) -> Result<()> {
        nix::unistd::mkfifoat(self.as_fd(), name, Mode::from_bits_truncate(perm))
            .map_err(|e| Error::sys("make named pipe", self.child_path(name), e))
    }

    /// Creates a new file `tmp` (which must not exist), writes `data`, sets
    /// owner (when given), mode and mtime (when given), fsyncs it, renames it
    /// over `name` (replacing it when `replace`, else failing when `name`
    /// exists), then fsyncs the directory.
    pub fn write_file_atomic(&self, name: &OsStr, tmp: &OsStr, data: &[u8], spec: &NewFile) -> Result<()> {
        self.create_atomic(name, tmp, spec, &mut |file, tmp_path| {
            use std::io::Write;
            file.write_all(data).map_err(|e| Error::sys("write", tmp_path, io_errno(&e)))
        })
    }

    /// Like [`Dir::write_file_atomic`], with the first `len` bytes of
    /// `src` (read from where it stands, through a fixed buffer: memory
    /// does not grow with `len`). Fails, leaving nothing behind, when
    /// `src` (named `src_path` in errors) holds fewer than `len` bytes.
    pub fn copy_prefix_atomic(
        &self,
        name: &OsStr,
        tmp: &OsStr,
        src: &mut File,
        src_path: &Path,
        len: u64,
        spec: &NewFile,
    ) -> Result<()> {
        self.create_atomic(name, tmp, spec, &mut |file, tmp_path| {
            use std::io::Write;
            let mut buf = vec![0u8; 64 << 10];
            let mut left = len;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let got = match src.read(&mut buf[..want]) {
                    Ok(0) => {
                        return Err(Error::Other(format!(
                            "copy {}: {} bytes short of the {len} to copy",
                            crate::error::escape_path(src_path),
                            left
                        )))
                    }
                    Ok(k) => k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::sys("read", src_path, io_errno(&e))),
                };
                file.write_all(&buf[..got]).map_err(|e| Error::sys("write", tmp_path, io_errno(&e)))?;
                left -= got as u64;
            }
            Ok(())
        })
    }

    /// Creates `tmp`, lets `fill` write it, sets owner, mode and mtime,
    /// fsyncs, renames it to `name`, fsyncs the directory; removes `tmp`
    /// on failure.
    fn create_atomic(
        &self,
        name: &OsStr,
        tmp: &OsStr,
        spec: &NewFile,
        fill: &mut dyn FnMut(&mut File, &Path) -> Result<()>,
    ) -> Result<()> {
        let tmp_path = self.child_path(tmp);
        let fd = nix::fcntl::openat(
            self.as_fd(),
            tmp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::sys("create", &tmp_path, e))?;
        let mut file = File::from(fd);
        let res = (|| -> Result<()> {
            fill(&mut file, &tmp_path)?;
            if let Some((uid, gid)) = spec.owner {
                nix::unistd::fchown(&file, Some(uid.into()), Some(gid.into()))
                    .map_err(|e| Error::sys("chown", &tmp_path, e))?;
            }
            nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(spec.perm))
                .map_err(|e| Error::sys("chmod", &tmp_path, e))?;
            if let Some(m) = spec.mtime {
                let t = nix::sys::time::TimeSpec::new(m, 0);
                nix::sys::stat::futimens(&file, &t, &t).map_err(|e| Error::sys("set time of", &tmp_path, e))?;
            }
            file.sync_all().map_err(|e| Error::sys("fsync", &tmp_path, io_errno(&e)))?;
            drop(file);
            if spec.replace {
                self.rename_replace(tmp, self, name)?;
            } else {
                self.rename_noreplace(tmp, self, name)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = self.unlink(tmp);
            return Err(e);
        }
        self.fsync()
    }

    /// Flushes the directory itself (names made or removed in it).
    pub fn fsync(&self) -> Result<()> {
        nix::unistd::fsync(self.as_fd()).map_err(|e| Error::sys("fsync", &self.path, e))
    }

    /// Reads the target of a symbolic link (for reports only; never followed).
    pub fn read_link(&self, name: &OsStr) -> Result<OsString> {
        nix::fcntl::readlinkat(self.as_fd(), name).map_err(|e| Error::sys("read link", self.child_path(name), e))
    }
}

/// How [`Dir::write_file_atomic`] makes its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewFile {
    /// Permission bits.
    pub perm: u32,
    /// Owner and group, when they must be set.
    pub owner: Option<(u32, u32)>,
    /// Modification (and access) time, when it must be set.
    pub mtime: Option<i64>,
    /// Replace an existing file of that name.
    pub replace: bool,
}

/// Bytes read by one `getdents64` of a listing.
const LISTING_BUFFER: usize = 32 << 10;

/// The errno inside an `io::Error` (EIO when it has none).
pub fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Parses an all-digits name as a message number: no sign, no leading
/// zero (qmail never makes one), fits in u64. Anything else is `None`.
pub fn parse_number(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 20 || (name[0] == b'0' && name.len() > 1) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in name {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// An `OsString` holding the decimal form of `n`.
pub fn number_name(n: u64) -> OsString {
    OsString::from(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tmp() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        (t, d)
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b"123"), Some(123));
        assert_eq!(parse_number(b"0123"), None);
        assert_eq!(parse_number(b"-1"), None);
        assert_eq!(parse_number(b"12a"), None);
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number(b"18446744073709551616"), None);
    }

    #[test]
    fn listing_gives_types_and_inodes() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        symlink("/etc/passwd", t.path().join("l")).unwrap();
        let mut e = d.entries().unwrap();
        e.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<_> = e.iter().map(|e| e.name.to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["f", "l", "sub"]);
        assert_eq!(e[0].kind, Some(FileKind::Regular));
        assert_eq!(e[1].kind, Some(FileKind::Symlink));
        assert_eq!(e[2].kind, Some(FileKind::Directory));
        assert_eq!(e[0].ino, d.stat(OsStr::new("f")).unwrap().ino);
    }

    #[test]
    fn every_listing_of_a_dir_is_whole_the_first_on_its_own_descriptor() {
        let (t, d) = tmp();
        // More names than one read of the listing buffer holds.
        let mut want: Vec<String> = (0..2000).map(|i| format!("{i:0>200}")).collect();
        for n in &want {
            std::fs::write(t.path().join(n), b"").unwrap();
        }
        want.sort();
        let names = |d: &Dir| {
            let mut v: Vec<String> = d.entries().unwrap().into_iter().map(|e| e.name.into_string().unwrap()).collect();
            v.sort();
            v
        };
        // A first listing stopped early, then whole ones: each starts at
        // the beginning.
        let mut seen = 0;
        d.for_each_entry_while(|_, _, _| {
            seen += 1;
            seen < 3
        })
        .unwrap();
        assert_eq!(seen, 3);
        assert_eq!(names(&d), want);
        assert_eq!(names(&d), want);
        // Listings made at once from two threads are both whole.
        let fresh = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| names(&fresh));
            let b = s.spawn(|| names(&fresh));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a, b), (want.clone(), want));
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (t, d) = tmp();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("canary"), b"secret").unwrap();
        symlink(outside.path().join("canary"), t.path().join("l")).unwrap();
        symlink(outside.path(), t.path().join("ld")).unwrap();
        let e = d.read_file(OsStr::new("l"), 100).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::ELOOP), "{e}");
        assert!(d.open_dir(OsStr::new("ld")).is_err());
        assert_eq!(d.stat(OsStr::new("l")).unwrap().kind, FileKind::Symlink);
        let canary = outside.path().join("canary");
        let before = std::fs::metadata(&canary).unwrap();
        let ex = Expect { ino: before.ino_(), kind: FileKind::Regular, max_nlink: 1 };
        assert!(d.chmod_verified(OsStr::new("l"), &ex, 0o777).is_err());
        assert!(d.chown_verified(OsStr::new("l"), &ex, 1, 1).is_err());
        let after = std::fs::metadata(&canary).unwrap();
        assert_eq!(before.permissions().mode(), after.permissions().mode());
        assert_eq!(std::fs::read(&canary).unwrap(), b"secret");
    }

    trait Ino {
        fn ino_(&self) -> u64;
    }
    impl Ino for std::fs::Metadata {
        fn ino_(&self) -> u64 {
            std::os::unix::fs::MetadataExt::ino(self)
        }
    }

    #[test]
    fn read_is_capped_and_fifo_does_not_block() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("big"), vec![b'a'; 10_000]).unwrap();
        let c = d.read_file(OsStr::new("big"), 100).unwrap();
        assert_eq!(c.data.len(), 100);
        assert!(c.truncated);
        let c = d.read_file(OsStr::new("big"), 10_000).unwrap();
        assert!(!c.truncated);
        d.mkfifo(OsStr::new("fifo"), 0o600).unwrap();
        let e = d.read_file(OsStr::new("fifo"), 100).unwrap_err();
        assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    }

    #[test]
    fn verified_changes_refuse_a_swapped_file() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("a"), b"1").unwrap();
        let st = d.stat(OsStr::new("a")).unwrap();
        let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink: 1 };
        d.chmod_verified(OsStr::new("a"), &ex, 0o640).unwrap();
        assert_eq!(d.stat(OsStr::new("a")).unwrap().perm, 0o640);
        // Swap in another file under the same name.
        std::fs::write(t.path().join("b"), b"2").unwrap();
        std::fs::rename(t.path().join("b"), t.path().join("a")).unwrap();
        let e = d.chmod_verified(OsStr::new("a"), &ex, 0o600).unwrap_err();
        assert!(matches!(e, Error::Changed { .. }), "{e}");
        // An extra hard link is refused too.
        let st = d.stat(OsStr::new("a")).unwrap();
        std::fs::hard_link(t.path().join("a"), t.path().join("c")).unwrap();
        let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink: 1 };
        assert!(d.chmod_verified(OsStr::new("a"), &ex, 0o600).is_err());
    }

    #[test]
    fn a_verified_file_changes_the_inode_checked_not_what_took_its_name() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("a"), b"1").unwrap();
        let st = d.stat(OsStr::new("a")).unwrap();
        let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink: 1 };
        let file = d.open_verified("chmod", OsStr::new("a"), &ex).unwrap();
        assert_eq!((file.stat().ino, file.path()), (st.ino, t.path().join("a").as_path()));
        // Another file is renamed over the name after the check.
        std::fs::write(t.path().join("b"), b"2").unwrap();
        std::fs::set_permissions(t.path().join("b"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(t.path().join("b"), t.path().join("a")).unwrap();
        file.chmod(0o600).unwrap();
        file.set_mtime(1_000_000).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let my_group = nix::unistd::getegid().as_raw();
        file.chown(me, my_group).unwrap();
        let held = nix::sys::stat::fstat(&file.fd).unwrap();
        assert_eq!((held.st_mode & 0o7777, held.st_mtime), (0o600, 1_000_000));
        // The newcomer is untouched.
        let now = d.stat(OsStr::new("a")).unwrap();
        assert_ne!(now.ino, st.ino);
        assert_eq!(now.perm, 0o644);
        assert_ne!(now.mtime, 1_000_000);
    }

    #[test]
    fn the_chmod_of_an_older_kernel_changes_the_inode_checked_too() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("a"), b"1").unwrap();
        let st = d.stat(OsStr::new("a")).unwrap();
        let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink: 1 };
        let file = d.open_verified("chmod", OsStr::new("a"), &ex).unwrap();
        std::fs::write(t.path().join("b"), b"2").unwrap();
        std::fs::set_permissions(t.path().join("b"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(t.path().join("b"), t.path().join("a")).unwrap();
        file.chmod_by_proc(0o640).unwrap();
        assert_eq!(nix::sys::stat::fstat(&file.fd).unwrap().st_mode & 0o7777, 0o640);
        assert_eq!(d.stat(OsStr::new("a")).unwrap().perm, 0o644);
    }

    #[test]
    fn rename_noreplace_refuses_to_overwrite() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("a"), b"1").unwrap();
        std::fs::write(t.path().join("b"), b"2").unwrap();
        let e = d.rename_noreplace(OsStr::new("a"), &d, OsStr::new("b")).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EEXIST));
        d.rename_noreplace(OsStr::new("a"), &d, OsStr::new("c")).unwrap();
        assert_eq!(std::fs::read(t.path().join("c")).unwrap(), b"1");
        assert_eq!(std::fs::read(t.path().join("b")).unwrap(), b"2");
    }

    #[test]
    fn atomic_write_sets_mode_and_time() {
        let (t, d) = tmp();
        let spec = NewFile { perm: 0o600, owner: None, mtime: Some(1_000_000), replace: false };
        d.write_file_atomic(OsStr::new("info"), OsStr::new(".tmp-info"), b"F\0", &spec).unwrap();
        let st = d.stat(OsStr::new("info")).unwrap();
        assert_eq!((st.perm, st.mtime, st.size), (0o600, 1_000_000, 2));
        assert!(!t.path().join(".tmp-info").exists());
        let e = d.write_file_atomic(OsStr::new("info"), OsStr::new(".tmp-info"), b"X", &spec).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EEXIST));
        assert!(!t.path().join(".tmp-info").exists());
        assert_eq!(std::fs::read(t.path().join("info")).unwrap(), b"F\0");
    }
}
