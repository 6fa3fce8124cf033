//! Verification helpers: a snapshot of a directory tree taken with `lstat`
//! only (no link is ever followed, no FIFO ever opened), to prove that a
//! run changed nothing or to list what it changed; a map of a queue's
//! messages by content, independent of message numbers, to prove that a
//! renumbering kept every message with its envelope; and a count of a
//! queue from its files, to check qstat-like figures.
//!
//! This is the one tree snapshot of the tests: [`snapshot`] hashes whole
//! files, [`snapshot_light`] only their first MiB (for trees that hold
//! multi-gigabyte sparse files); [`Snapshot::diff`] compares what a run
//! must keep, [`Snapshot::compare`] chooses what else to compare (link
//! counts, directory times, inode numbers, access times).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use qcommon::envelope::{is_double_bounce, Info, Recipients, Todo};
use qcommon::queue::Part;

use crate::builder::Counts;
use crate::rng::mix64;

/// The kind of a file system object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed).
    Symlink,
    /// Named pipe.
    Fifo,
    /// Socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
}

/// What is recorded of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// Permission bits including set-id and sticky bits (`st_mode & 07777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count (shows a hard link made from anywhere).
    pub nlink: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Hash of the content of a regular file (None when unreadable).
    pub hash: Option<u64>,
    /// Target of a symbolic link.
    pub target: Option<PathBuf>,
}

/// A snapshot of a tree: every path relative to the root (the root itself
/// is `.`), recorded without following any link. Equality and [`diff`]
/// compare everything recorded except inode numbers, which are kept apart
/// (see [`Snapshot::inode_changes`]) so that two copies of a tree can be
/// compared too.
///
/// [`diff`]: Snapshot::diff
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every path and what was recorded of it.
    pub entries: BTreeMap<PathBuf, Entry>,
    /// Inode number of every path.
    pub inodes: BTreeMap<PathBuf, u64>,
    /// Access time (ns since the epoch) of every path that is neither a
    /// directory nor a link (listing a directory or reading a link's
    /// target sets its access time).
    pub atimes: BTreeMap<PathBuf, i128>,
    /// Paths that could not be read (directory listings, file contents).
    pub errors: Vec<String>,
}

/// What [`Snapshot::compare`] compares beyond kind, size, mode, owner,
/// modification time, content and link target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compare {
    /// Link counts (a hard-linked file's count drops when its other name
    /// goes).
    pub links: bool,
    /// The size and modification time of directories (they change with
    /// any entry added or removed).
    pub dirs: bool,
    /// Inode numbers (a file replaced by an identical one).
    pub inodes: bool,
    /// Access times (a read without O_NOATIME).
    pub atimes: bool,
}

impl Compare {
    /// What [`Snapshot::diff`] compares: links and directories, not inode
    /// numbers nor access times.
    pub const DIFF: Compare = Compare { links: true, dirs: true, inodes: false, atimes: false };
    /// What a read-only run must keep: everything but directory times
    /// (and the access times of directories and links, never recorded).
    pub const READ_ONLY: Compare = Compare { links: true, dirs: false, inodes: true, atimes: true };
    /// What a canary outside the queue must keep: as [`Compare::READ_ONLY`],
    /// but a hard-linked canary's link count may drop when its queue name
    /// goes.
    pub const CANARY: Compare = Compare { links: false, dirs: false, inodes: true, atimes: true };
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.errors == other.errors
    }
}

impl Eq for Snapshot {}

/// A path printed with control characters and invalid UTF-8 escaped.
struct Shown<'a>(&'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.as_os_str().as_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// Number of paths recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded (the root did not exist).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What was recorded of `rel` (relative to the root).
    pub fn get(&self, rel: impl AsRef<Path>) -> Option<&Entry> {
        self.entries.get(rel.as_ref())
    }

    /// Describes every difference from `self` to `other`, one line each:
    /// `added P`, `removed P`, `changed P: field a -> b, ...`.
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        self.compare(other, Compare::DIFF)
    }

    /// Describes the differences from `self` to `other` that `what`
    /// selects, as [`Snapshot::diff`] does.
    pub fn compare(&self, other: &Snapshot, what: Compare) -> Vec<String> {
        let mut out = Vec::new();
        for (p, a) in &self.entries {
            let Some(b) = other.entries.get(p) else {
                out.push(format!("removed {} ({:?})", Shown(p), a.kind));
                continue;
            };
            let dir = a.kind == Kind::Dir && b.kind == Kind::Dir;
            let mut w = Vec::new();
            if a.kind != b.kind {
                w.push(format!("kind {:?} -> {:?}", a.kind, b.kind));
            }
            if a.size != b.size && (what.dirs || !dir) {
                w.push(format!("size {} -> {}", a.size, b.size));
            }
            if a.mode != b.mode {
                w.push(format!("mode {:04o} -> {:04o}", a.mode, b.mode));
            }
            if (a.uid, a.gid) != (b.uid, b.gid) {
                w.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
            }
            if a.nlink != b.nlink && what.links {
                w.push(format!("links {} -> {}", a.nlink, b.nlink));
            }
            if a.mtime_ns != b.mtime_ns && (what.dirs || !dir) {
                w.push(format!("mtime {} -> {}", a.mtime_ns, b.mtime_ns));
            }
            if a.hash != b.hash {
                w.push("content".to_string());
            }
            if a.target != b.target {
                w.push(format!("target {:?} -> {:?}", a.target, b.target));
            }
            if what.inodes {
                if let (Some(i), Some(j)) = (self.inodes.get(p), other.inodes.get(p)) {
                    if i != j {
                        w.push(format!("inode {i} -> {j}"));
                    }
                }
            }
            if what.atimes {
                if let (Some(s), Some(t)) = (self.atimes.get(p), other.atimes.get(p)) {
                    if s != t {
                        w.push(format!("atime {s} -> {t}"));
                    }
                }
            }
            if !w.is_empty() {
                out.push(format!("changed {}: {}", Shown(p), w.join(", ")));
            }
        }
        for (p, b) in &other.entries {
            if !self.entries.contains_key(p) {
                out.push(format!("added {} ({:?})", Shown(p), b.kind));
            }
        }
        if self.errors != other.errors {
            out.push(format!("errors {:?} -> {:?}", self.errors, other.errors));
        }
        out
    }

    /// The snapshot without `paths` (relative to the root), for comparing
    /// what a run must have left alone after it removed them.
    pub fn without(mut self, paths: &[PathBuf]) -> Snapshot {
        for p in paths {
            self.entries.remove(p);
            self.inodes.remove(p);
            self.atimes.remove(p);
        }
        self
    }

    /// Paths present in both snapshots whose inode number differs (a file
    /// replaced by another, even with identical content and attributes).
    pub fn inode_changes(&self, other: &Snapshot) -> Vec<String> {
        self.inodes
            .iter()
            .filter_map(|(p, i)| match other.inodes.get(p) {
                Some(j) if i != j => Some(format!("inode of {} {i} -> {j}", Shown(p))),
                _ => None,
            })
            .collect()
    }
}

/// A fast 64-bit content hash (not cryptographic): the length, then every
/// 8-byte little-endian word, each folded in with SplitMix64's mixer.
pub fn hash_bytes(data: &[u8]) -> u64 {
    let mut h = mix64(data.len() as u64 ^ 0x51_7a_7e);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = mix64(h ^ w).rotate_left(17);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix64(h ^ u64::from_le_bytes(tail))
}

/// Opens a regular file for reading without following a link, without
/// blocking on a FIFO swapped in, and without touching its access time when
/// the kernel allows that.
fn open_nofollow(path: &Path) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match OpenOptions::new().read(true).custom_flags(flags | libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new().read(true).custom_flags(flags).open(path),
        r => r,
    }
}

/// Reads a regular file whole (never through a link).
fn read_regular(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    read_regular_head(path, buf, u64::MAX)
}

/// Reads at most the first `limit` bytes of a regular file (never through
/// a link).
fn read_regular_head(path: &Path, buf: &mut Vec<u8>, limit: u64) -> io::Result<()> {
    let f = open_nofollow(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    buf.clear();
    f.take(limit).read_to_end(buf)?;
    Ok(())
}

fn kind_of(ft: fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::File
    }
}

/// Records every path under `root` (and `root` itself, as `.`). A missing
/// root gives an empty snapshot; unreadable paths are listed in `errors`.
pub fn snapshot(root: &Path) -> Snapshot {
    snapshot_hashing(root, u64::MAX)
}

/// Records as [`snapshot`] does, hashing only the first MiB of each
/// regular file (the size is still recorded whole): for trees that hold
/// huge sparse files.
pub fn snapshot_light(root: &Path) -> Snapshot {
    snapshot_hashing(root, 1 << 20)
}

fn snapshot_hashing(root: &Path, limit: u64) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut buf = Vec::new();
    let mut stack = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        let path = if rel.as_os_str() == "." { root.to_path_buf() } else { root.join(&rel) };
        let md = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                if rel.as_os_str() != "." || e.kind() != io::ErrorKind::NotFound {
                    snap.errors.push(format!("lstat {}: {e}", Shown(&rel)));
                }
                continue;
            }
        };
        let kind = kind_of(md.file_type());
        let mut entry = Entry {
            kind,
            size: md.size(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            nlink: md.nlink(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            hash: None,
            target: None,
        };
        match kind {
            Kind::File => match read_regular_head(&path, &mut buf, limit) {
                Ok(()) => entry.hash = Some(hash_bytes(&buf)),
                Err(e) => snap.errors.push(format!("read {}: {e}", Shown(&rel))),
            },
            Kind::Symlink => match fs::read_link(&path) {
                Ok(t) => entry.target = Some(t),
                Err(e) => snap.errors.push(format!("readlink {}: {e}", Shown(&rel))),
            },
            Kind::Dir => match fs::read_dir(&path) {
                Ok(rd) => {
                    for de in rd {
                        match de {
                            Ok(de) => stack.push(if rel.as_os_str() == "." {
                                PathBuf::from(de.file_name())
                            } else {
                                rel.join(de.file_name())
                            }),
                            Err(e) => snap.errors.push(format!("readdir {}: {e}", Shown(&rel))),
                        }
                    }
                }
                Err(e) => snap.errors.push(format!("opendir {}: {e}", Shown(&rel))),
            },
            _ => {}
        }
        snap.inodes.insert(rel.clone(), md.ino());
        if !matches!(kind, Kind::Dir | Kind::Symlink) {
            snap.atimes.insert(rel.clone(), i128::from(md.atime()) * 1_000_000_000 + i128::from(md.atime_nsec()));
        }
        snap.entries.insert(rel, entry);
    }
    snap.errors.sort();
    snap
}

/// Access times (ns since the epoch) of the paths under `root` (`root`
/// included, keyed by their full path): of regular files only, or of
/// every path when `all`. Links are never followed, and directories are
/// listed with O_NOATIME, so that looking changes nothing.
pub fn atimes(root: &Path, all: bool) -> BTreeMap<PathBuf, i128> {
    use nix::fcntl::OFlag;
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else { continue };
        if all || md.is_file() {
            m.insert(p.clone(), i128::from(md.atime()) * 1_000_000_000 + i128::from(md.atime_nsec()));
        }
        if md.is_dir() {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NOATIME | OFlag::O_CLOEXEC;
            let Ok(mut d) = nix::dir::Dir::open(&p, flags, nix::sys::stat::Mode::empty()) else { continue };
            for e in d.iter().flatten() {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    stack.push(p.join(std::ffi::OsStr::from_bytes(n)));
                }
            }
        }
    }
    m
}

/// Sets the access time of every regular file and directory under `root`
/// to well before its modification time, so that any read or listing
/// without O_NOATIME shows (relatime updates an access time older than
/// the modification time).
pub fn age_atimes(root: &Path) {
    for p in atimes(root, true).keys() {
        let Ok(md) = fs::symlink_metadata(p) else { continue };
        if md.is_file() || md.is_dir() {
            set_atime(p, md.mtime() - 100_000);
        }
    }
}

/// Sets a path's access time (not following a link), keeping its mtime.
pub fn set_atime(p: &Path, t: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let omit = TimeSpec::new(0, libc::UTIME_OMIT);
    utimensat(nix::fcntl::AT_FDCWD, p, &TimeSpec::new(t, 0), &omit, UtimensatFlags::NoFollowSymlink)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// The envelope state of a message, independent of its number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvelopeState {
    /// A valid todo (S4): its sender and its recipients, sorted.
    Todo {
        /// Envelope sender.
        sender: Vec<u8>,
        /// Recipients, sorted.
        recipients: Vec<Vec<u8>>,
    },
    /// No valid todo, but info, local or remote files (S5).
    Preprocessed {
        /// The info's sender; None when info is missing or does not parse.
        sender: Option<Vec<u8>>,
        /// Complete records of the local file, sorted (address, done).
        local: Vec<(Vec<u8>, bool)>,
        /// Complete records of the remote file, sorted (address, done).
        remote: Vec<(Vec<u8>, bool)>,
        /// Content hash of `bounce/N` when it exists.
        bounce: Option<u64>,
    },
    /// Anything else: which files exist beside the mess, e.g. `mess`,
    /// `mess+intd`, `mess+todo(broken)`.
    Other(String),
}

/// Whether a name is a message number as qmail writes it (digits, no
/// leading zero).
fn number_of(name: &[u8]) -> Option<u64> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Numeric regular files of a part directory, directly in it or in a
/// numeric sub-directory (any bucket, right or wrong): N -> path.
fn index_part(dir: &Path) -> Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("opendir {}", dir.display())),
    };
    for de in rd {
        let de = de?;
        let ft = de.file_type()?;
        let name = de.file_name();
        if ft.is_file() {
            if let Some(n) = number_of(name.as_bytes()) {
                out.entry(n).or_insert_with(|| de.path());
            }
        } else if ft.is_dir() && number_of(name.as_bytes()).is_some() {
            for de2 in fs::read_dir(de.path()).with_context(|| format!("opendir {}", de.path().display()))? {
                let de2 = de2?;
                if de2.file_type()?.is_file() {
                    if let Some(n) = number_of(de2.file_name().as_bytes()) {
                        out.entry(n).or_insert_with(|| de2.path());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Every message file of a queue, by part and number.
fn index_queue(queue: &Path) -> Result<[BTreeMap<u64, PathBuf>; 7]> {
    let mut idx: [BTreeMap<u64, PathBuf>; 7] = Default::default();
    for p in Part::ALL {
        idx[p.index()] = index_part(&queue.join(p.dir()))?;
    }
    Ok(idx)
}

fn sorted_records(data: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut v: Vec<(Vec<u8>, bool)> = Recipients::parse_salvaging(data)
        .map(|r| r.list.into_iter().map(|x| (x.address, x.done)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Maps each message's content (hash of its mess file) to its envelope
/// state, whatever its number and bucket, so that a test can check that
/// after a renumbering every message is still there with the same content
/// and envelope. Messages with identical content share a key (the vector
/// is sorted). Looks at numeric names only, in any numeric bucket.
pub fn messages_by_content(queue: &Path) -> Result<BTreeMap<u64, Vec<EnvelopeState>>> {
    let idx = index_queue(queue)?;
    let mut out: BTreeMap<u64, Vec<EnvelopeState>> = BTreeMap::new();
    let mut buf = Vec::new();
    let get = |part: Part, n: u64, buf: &mut Vec<u8>| -> Result<bool> {
        match idx[part.index()].get(&n) {
            Some(p) => {
                read_regular(p, buf).with_context(|| format!("read {}", p.display()))?;
                Ok(true)
            }
            None => Ok(false),
        }
    };
    for (&n, path) in &idx[Part::Mess.index()] {
        read_regular(path, &mut buf).with_context(|| format!("read {}", path.display()))?;
        let key = hash_bytes(&buf);
        let has = |p: Part| idx[p.index()].contains_key(&n);
        let mut state = None;
        if get(Part::Todo, n, &mut buf)? {
            if let Ok(t) = Todo::parse(&buf) {
                let mut recipients = t.recipients;
                recipients.sort();
                state = Some(EnvelopeState::Todo { sender: t.sender, recipients });
            }
        }
        if state.is_none() && (has(Part::Info) || has(Part::Local) || has(Part::Remote)) {
            let sender = if get(Part::Info, n, &mut buf)? { Info::parse(&buf).ok().map(|i| i.sender) } else { None };
            let local = if get(Part::Local, n, &mut buf)? { sorted_records(&buf) } else { Vec::new() };
            let remote = if get(Part::Remote, n, &mut buf)? { sorted_records(&buf) } else { Vec::new() };
            let bounce = if get(Part::Bounce, n, &mut buf)? { Some(hash_bytes(&buf)) } else { None };
            state = Some(EnvelopeState::Preprocessed { sender, local, remote, bounce });
        }
        let state = state.unwrap_or_else(|| {
            let mut s = String::from("mess");
            for p in [Part::Intd, Part::Todo, Part::Bounce] {
                if has(p) {
                    s.push('+');
                    s.push_str(p.dir());
                    if p == Part::Todo {
                        s.push_str("(broken)");
                    }
                }
            }
            EnvelopeState::Other(s)
        });
        let v = out.entry(key).or_default();
        v.push(state);
        v.sort();
    }
    Ok(out)
}

/// Counts regular files anywhere under `dir` (as `find dir -type f`).
fn count_files(dir: &Path) -> Result<u64> {
    let mut n = 0;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("opendir {}", dir.display())),
    };
    for de in rd {
        let de = de?;
        let ft = de.file_type()?;
        if ft.is_file() {
            n += 1;
        } else if ft.is_dir() {
            n += count_files(&de.path())?;
        }
    }
    Ok(n)
}

/// Counts a queue from its files, the way the builder's [`Counts`] are
/// meant: regular files under mess/ and todo/ and bounce/ (as qmail-qstat
/// counts), senders from the todo of each message when it parses, else
/// from its info, and the `T` records of local and remote files.
pub fn count_queue(queue: &Path) -> Result<Counts> {
    let idx = index_queue(queue)?;
    let mut c = Counts {
        messages: count_files(&queue.join("mess"))?,
        todo: count_files(&queue.join("todo"))?,
        bounce_files: count_files(&queue.join("bounce"))?,
        ..Counts::default()
    };
    let mut buf = Vec::new();
    for &n in idx[Part::Mess.index()].keys() {
        let mut sender = None;
        if let Some(p) = idx[Part::Todo.index()].get(&n) {
            read_regular(p, &mut buf)?;
            sender = Todo::parse(&buf).ok().map(|t| t.sender);
        }
        if sender.is_none() {
            if let Some(p) = idx[Part::Info.index()].get(&n) {
                read_regular(p, &mut buf)?;
                sender = Info::parse(&buf).ok().map(|i| i.sender);
            }
        }
        match sender {
            Some(s) if s.is_empty() => c.null_sender += 1,
            Some(s) if is_double_bounce(&s) => c.double_bounce += 1,
            _ => {}
        }
    }
    for (part, slot) in [(Part::Local, &mut c.local_pending), (Part::Remote, &mut c.remote_pending)] {
        for p in idx[part.index()].values() {
            read_regular(p, &mut buf)?;
            if let Ok(r) = Recipients::parse_salvaging(&buf) {
                *slot += r.pending() as u64;
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_numbers() {
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        assert_ne!(hash_bytes(b"12345678a"), hash_bytes(b"12345678b"));
        assert_eq!(number_of(b"123"), Some(123));
        assert_eq!(number_of(b"0"), Some(0));
        assert_eq!(number_of(b"0123"), None);
        assert_eq!(number_of(b"12a"), None);
        assert_eq!(number_of(b""), None);
        assert_eq!(format!("{}", Shown(Path::new(std::ffi::OsStr::from_bytes(b"a\n\x1b\xff")))), "a\\n\\u{1b}\\xff");
    }
}
