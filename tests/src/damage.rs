//! The damage catalogue: ways real qmail queues break, each applied to a
//! built queue on purpose so that the tools can be tested against it.
//!
//! Every damage works on the queue as it is on disk (it scans it first, so
//! damages can be stacked, and queues built without a manifest work too),
//! picks its victims with a seeded generator, and reports the message
//! numbers it touched (their numbers before the damage). A damage that
//! needs a kind of message the queue lacks (say, a todo-stage message in a
//! tiny queue) first makes one the way qmail would. Only the trap damages
//! write outside the queue, and only into a fresh sub-directory of
//! `outside_dir`; the canaries they leave there are listed in
//! [`DamageReport::outside`] so that tests can check that no tool ever
//! reads through, writes, chmods or deletes them.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use qcommon::envelope::{Info, Recipients, Todo};
use qcommon::queue::{bucket_of, LockFile, Part};

use crate::builder::{system_time, BuiltQueue, Maker};

mod buckets;
mod copy;
mod envelopes;
mod locks;
mod orphans;
mod restore;
mod strays;
mod traps;

/// Seconds and nanoseconds since the epoch as a `SystemTime`.
fn system_time_ns(secs: i64, nsec: i64) -> SystemTime {
    system_time(secs) + std::time::Duration::from_nanos(nsec.clamp(0, 999_999_999) as u64)
}
use crate::content::{self, Kind, MessageText};
use crate::rng::{mix64, Rng};

/// One way of breaking a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Damage {
    /// `cp -a` to another filesystem and back: every file is a new inode
    /// under its old name (hard links between todo and intd kept), so no
    /// name matches its inode any more, and freed inodes get reused.
    CopiedToOtherFs,
    /// The same copy without keeping hard links (rsync without -H): todo
    /// and intd become two separate files.
    CopiedToOtherFsBrokenLinks,
    /// One `info` bucket directory lost with its files.
    MissingBucket,
    /// A few message files (of different parts) moved into a wrong bucket.
    WrongBucket,
    /// Numeric buckets `>= split` in every split directory, with a few
    /// messages' files in them (as after lowering conf-split).
    ExtraBuckets,
    /// A few mess files truncated to 0 bytes.
    ZeroByteMess,
    /// Preprocessed messages whose mess is gone (info, local, remote stay).
    OrphanInfo,
    /// A local file left alone (no mess, info, remote or bounce).
    OrphanLocal,
    /// A remote file left alone.
    OrphanRemote,
    /// Todo-stage messages whose mess is gone (one also loses its intd).
    OrphanTodo,
    /// A bounce file left alone.
    OrphanBounce,
    /// Fresh messages made the qmail way, left as a lone mess (S2), one of
    /// them older than 36 hours.
    S2Leftover,
    /// Fresh messages left as mess + intd without todo (S3).
    S3Leftover,
    /// info files truncated to 0 bytes (mtime kept).
    EmptyInfo,
    /// info files overwritten with random bytes (mtime kept).
    GarbledInfo,
    /// local files whose last record is cut in the middle.
    TruncatedLocal,
    /// remote files whose last record is cut in the middle.
    TruncatedRemote,
    /// A bounce/N beside a todo-stage message (impossible before
    /// preprocessing).
    StaleBounceBesideTodo,
    /// Wrong modes (0777, group-writable, set-id bits) on directories,
    /// buckets, files and lock files; when root, wrong owners too.
    BadOwnersModes,
    /// Non-numeric names everywhere: `core`, `123.tmp`, names with a
    /// newline, escape sequences, invalid UTF-8, a leading-zero `0123`.
    StrayNames,
    /// Directories inside buckets and non-numeric directories in split
    /// directories.
    StraySubdirs,
    /// Symbolic links in buckets pointing at outside canaries, a bucket
    /// replaced by a link to an outside directory with numeric files, and
    /// lock/tcpto as a link to an outside canary.
    SymlinkTrap,
    /// FIFOs where message files belong: an existing message's info, and a
    /// numeric name in a mess bucket.
    FifoTrap,
    /// Files left in pid/, one of them a hard link to a live mess file (a
    /// qmail-queue that died between its link and its unlink).
    PidLeftovers,
    /// lock/sendmutex, lock/tcpto and lock/trigger removed.
    MissingLockFiles,
    /// tcpto of a wrong size, trigger a regular file, sendmutex a directory.
    WrongLockFiles,
    /// Todo-stage messages whose todo is garbled while their intd is valid
    /// (a separate file now).
    BrokenTodoWithIntd,
    /// Preprocessed messages (complete info + local/remote) that also have
    /// a garbled todo (one with an intd linked to it).
    BrokenTodoPreprocessed,
    /// Message files hard-linked from names outside the queue.
    ExtraHardLink,
    /// Every directory and file under another owner (when root) and mode
    /// 0777 or 0666: the queue restored from a backup without `-p`.
    AllOwnersWrong,
}

impl Damage {
    /// Every damage, in catalogue order.
    pub const ALL: &'static [Damage] = &[
        Damage::CopiedToOtherFs,
        Damage::CopiedToOtherFsBrokenLinks,
        Damage::MissingBucket,
        Damage::WrongBucket,
        Damage::ExtraBuckets,
        Damage::ZeroByteMess,
        Damage::OrphanInfo,
        Damage::OrphanLocal,
        Damage::OrphanRemote,
        Damage::OrphanTodo,
        Damage::OrphanBounce,
        Damage::S2Leftover,
        Damage::S3Leftover,
        Damage::EmptyInfo,
        Damage::GarbledInfo,
        Damage::TruncatedLocal,
        Damage::TruncatedRemote,
        Damage::StaleBounceBesideTodo,
        Damage::BadOwnersModes,
        Damage::StrayNames,
        Damage::StraySubdirs,
        Damage::SymlinkTrap,
        Damage::FifoTrap,
        Damage::PidLeftovers,
        Damage::MissingLockFiles,
        Damage::WrongLockFiles,
        Damage::BrokenTodoWithIntd,
        Damage::BrokenTodoPreprocessed,
        Damage::ExtraHardLink,
        Damage::AllOwnersWrong,
    ];

    /// The kebab-case name the CLI uses.
    pub fn name(&self) -> &'static str {
        match self {
            Damage::CopiedToOtherFs => "copied-to-other-fs",
            Damage::CopiedToOtherFsBrokenLinks => "copied-to-other-fs-broken-links",
            Damage::MissingBucket => "missing-bucket",
            Damage::WrongBucket => "wrong-bucket",
            Damage::ExtraBuckets => "extra-buckets",
            Damage::ZeroByteMess => "zero-byte-mess",
            Damage::OrphanInfo => "orphan-info",
            Damage::OrphanLocal => "orphan-local",
            Damage::OrphanRemote => "orphan-remote",
            Damage::OrphanTodo => "orphan-todo",
            Damage::OrphanBounce => "orphan-bounce",
            Damage::S2Leftover => "s2-leftover",
            Damage::S3Leftover => "s3-leftover",
            Damage::EmptyInfo => "empty-info",
            Damage::GarbledInfo => "garbled-info",
            Damage::TruncatedLocal => "truncated-local",
            Damage::TruncatedRemote => "truncated-remote",
            Damage::StaleBounceBesideTodo => "stale-bounce-beside-todo",
            Damage::BadOwnersModes => "bad-owners-modes",
            Damage::StrayNames => "stray-names",
            Damage::StraySubdirs => "stray-subdirs",
            Damage::SymlinkTrap => "symlink-trap",
            Damage::FifoTrap => "fifo-trap",
            Damage::PidLeftovers => "pid-leftovers",
            Damage::MissingLockFiles => "missing-lock-files",
            Damage::WrongLockFiles => "wrong-lock-files",
            Damage::BrokenTodoWithIntd => "broken-todo-with-intd",
            Damage::BrokenTodoPreprocessed => "broken-todo-preprocessed",
            Damage::ExtraHardLink => "extra-hard-link",
            Damage::AllOwnersWrong => "all-owners-wrong",
        }
    }

    /// The damage called `name` (as [`Damage::name`] gives it).
    pub fn from_name(name: &str) -> Option<Damage> {
        Damage::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// A one-line description (for `qbuild --list-damages`).
    pub fn description(&self) -> &'static str {
        match self {
            Damage::CopiedToOtherFs => "every file copied to a new inode under its old name (cp -a), hard links kept",
            Damage::CopiedToOtherFsBrokenLinks => "the same copy with hard links broken: todo and intd separate files",
            Damage::MissingBucket => "one info bucket directory removed with its files",
            Damage::WrongBucket => "a few message files moved to a wrong bucket",
            Damage::ExtraBuckets => "numeric buckets >= split in every split directory, some messages in them",
            Damage::ZeroByteMess => "a few mess files truncated to 0 bytes",
            Damage::OrphanInfo => "preprocessed messages without their mess",
            Damage::OrphanLocal => "a local file alone",
            Damage::OrphanRemote => "a remote file alone",
            Damage::OrphanTodo => "todo-stage messages without their mess",
            Damage::OrphanBounce => "a bounce file alone",
            Damage::S2Leftover => "fresh lone mess files (one older than 36 hours)",
            Damage::S3Leftover => "fresh mess + intd without todo",
            Damage::EmptyInfo => "info files of 0 bytes",
            Damage::GarbledInfo => "info files of random bytes",
            Damage::TruncatedLocal => "local files cut in the middle of their last record",
            Damage::TruncatedRemote => "remote files cut in the middle of their last record",
            Damage::StaleBounceBesideTodo => "bounce/N beside a todo-stage message",
            Damage::BadOwnersModes => "wrong modes (and owners when root) on directories, buckets, files, locks",
            Damage::StrayNames => "non-numeric file names (newline, escapes, invalid UTF-8, 0123) everywhere",
            Damage::StraySubdirs => "directories inside buckets and non-numeric directories in split dirs",
            Damage::SymlinkTrap => "symbolic links to outside canaries: message names, a bucket, lock/tcpto",
            Damage::FifoTrap => "FIFOs where message files belong",
            Damage::PidLeftovers => "files in pid/, one hard-linked to a live mess",
            Damage::MissingLockFiles => "lock/sendmutex, tcpto and trigger removed",
            Damage::WrongLockFiles => "tcpto of a wrong size, trigger a regular file, sendmutex a directory",
            Damage::BrokenTodoWithIntd => "garbled todo beside a valid separate intd",
            Damage::BrokenTodoPreprocessed => "garbled todo beside complete info + local/remote",
            Damage::ExtraHardLink => "message files hard-linked from outside the queue",
            Damage::AllOwnersWrong => {
                "every directory and file: another owner (when root), mode 0777/0666 (a restore without -p)"
            }
        }
    }

    /// Whether the damage affects the whole queue rather than a few
    /// messages.
    pub fn is_global(&self) -> bool {
        matches!(
            self,
            Damage::CopiedToOtherFs
                | Damage::CopiedToOtherFsBrokenLinks
                | Damage::BadOwnersModes
                | Damage::AllOwnersWrong
        )
    }
}

/// What a damage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageReport {
    /// Which damage.
    pub damage: Damage,
    /// Numbers (before the damage) of the messages affected, sorted.
    pub touched: Vec<u64>,
    /// Canary paths created outside the queue (trap damages): they must
    /// never change.
    pub outside: Vec<PathBuf>,
    /// What was done, one line per step, paths relative to the queue.
    pub notes: Vec<String>,
}

/// Which files each message has (regular files with a numeric name in its
/// right bucket), by part.
#[derive(Debug, Default)]
struct Scan {
    msgs: BTreeMap<u64, [bool; 7]>,
}

impl Scan {
    fn has(&self, n: u64, p: Part) -> bool {
        self.msgs.get(&n).is_some_and(|h| h[p.index()])
    }

    /// Numbers of messages matching `f`.
    fn select(&self, f: impl Fn(&[bool; 7]) -> bool) -> Vec<u64> {
        self.msgs.iter().filter(|(_, h)| f(h)).map(|(n, _)| *n).collect()
    }
}

fn is_number(name: &[u8]) -> Option<u64> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// The directories holding message files of `part`: the buckets `0..split`
/// of a split directory, or the directory itself.
fn part_dirs(m: &Maker, part: Part) -> Vec<PathBuf> {
    let dir = m.queue.join(part.dir());
    if part.is_split(m.big_todo) {
        (0..m.split).map(|b| dir.join(b.to_string())).collect()
    } else {
        vec![dir]
    }
}

/// Numeric regular files directly in `dir`.
fn numeric_files(dir: &Path) -> Result<Vec<u64>> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("opendir {}", dir.display())),
    };
    for de in rd {
        let de = de?;
        if de.file_type()?.is_file() {
            if let Some(n) = is_number(de.file_name().as_bytes()) {
                v.push(n);
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn scan(m: &Maker) -> Result<Scan> {
    let mut s = Scan::default();
    for part in Part::ALL {
        for dir in part_dirs(m, part) {
            for n in numeric_files(&dir)? {
                if !part.is_split(m.big_todo) || dir.ends_with(bucket_of(n, m.split).to_string()) {
                    s.msgs.entry(n).or_default()[part.index()] = true;
                }
            }
        }
    }
    Ok(s)
}

/// Kinds of fresh messages a damage can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// S2: mess alone.
    MessOnly,
    /// S3: mess + intd.
    MessIntd,
    /// S4: mess + intd + todo (one inode).
    TodoStage,
    /// S5: mess + info + local + remote.
    Preprocessed,
}

static FRESH_SEQ: AtomicU64 = AtomicU64::new(1);

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The state of one damage run.
struct Ctx<'a> {
    m: Maker,
    rng: Rng,
    scan: Scan,
    outside_dir: &'a Path,
    report: DamageReport,
}

impl Ctx<'_> {
    fn rel(&self, p: &Path) -> String {
        match p.strip_prefix(&self.m.queue) {
            Ok(r) if r.as_os_str().is_empty() => "\".\"".to_string(),
            Ok(r) => format!("{:?}", r.as_os_str()),
            Err(_) => format!("{:?}", p.as_os_str()),
        }
    }

    fn note(&mut self, s: String) {
        self.report.notes.push(s);
    }

    fn touch(&mut self, n: u64) {
        self.report.touched.push(n);
    }

    fn path(&self, p: Part, n: u64) -> PathBuf {
        self.m.path(p, n)
    }

    /// Makes a fresh message of the given kind the qmail way; returns N.
    fn fresh(&mut self, kind: Fresh, birth: i64) -> Result<u64> {
        let rng = &mut self.rng;
        let mut sender = Vec::new();
        let invoker = content::normal_sender(&mut sender, rng);
        let mut local = Vec::new();
        content::local_address(&mut local, rng);
        let mut remote = Vec::new();
        content::remote_address(&mut remote, rng);
        let rcpts = vec![local, remote];
        let pid = rng.range(300, 99_999) as u32;
        let mut text = Vec::new();
        content::write_message(
            &mut text,
            rng,
            &MessageText {
                kind: Kind::Normal,
                qmail_pid: pid,
                invoker,
                sender: &sender,
                recipients: &rcpts,
                birth,
                large: false,
            },
        );
        let pid_name = format!("{}.{}.{}", std::process::id(), now_secs(), FRESH_SEQ.fetch_add(1, Ordering::Relaxed));
        let n = self.m.new_mess(&pid_name, &text, Some(birth), true)?;
        let qmails = self.m.ids.map_or(7796, |i| i.qmails);
        let todo = Todo {
            uid: Some(invoker.uid(qmails).to_string().into_bytes()),
            pid: Some(pid.to_string().into_bytes()),
            sender: sender.clone(),
            recipients: rcpts.clone(),
        };
        match kind {
            Fresh::MessOnly => {}
            Fresh::MessIntd => self.m.write_part(Part::Intd, n, &todo.to_bytes(), Some(birth))?,
            Fresh::TodoStage => {
                self.m.write_part(Part::Intd, n, &todo.to_bytes(), Some(birth))?;
                fs::hard_link(self.path(Part::Intd, n), self.path(Part::Todo, n))?;
            }
            Fresh::Preprocessed => {
                self.m.write_part(Part::Info, n, &Info { sender }.to_bytes(), Some(birth))?;
                for (part, a) in [(Part::Local, &rcpts[0]), (Part::Remote, &rcpts[1])] {
                    let mut rec = vec![b'T'];
                    rec.extend_from_slice(a);
                    rec.push(0);
                    self.m.write_part(part, n, &rec, None)?;
                }
            }
        }
        let mut h = [false; 7];
        h[Part::Mess.index()] = true;
        match kind {
            Fresh::MessOnly => {}
            Fresh::MessIntd => h[Part::Intd.index()] = true,
            Fresh::TodoStage => {
                h[Part::Intd.index()] = true;
                h[Part::Todo.index()] = true;
            }
            Fresh::Preprocessed => {
                h[Part::Info.index()] = true;
                h[Part::Local.index()] = true;
                h[Part::Remote.index()] = true;
            }
        }
        self.scan.msgs.insert(n, h);
        self.note(format!("made fresh message {n} ({kind:?})"));
        Ok(n)
    }

    /// Up to `k` messages matching `f`, seeded choice; when there are none,
    /// `k` fresh ones of kind `fresh` are made.
    fn victims(&mut self, k: usize, fresh: Fresh, f: impl Fn(&[bool; 7]) -> bool) -> Result<Vec<u64>> {
        let all = self.scan.select(f);
        if all.is_empty() {
            let birth = now_secs() - 3600;
            return (0..k).map(|_| self.fresh(fresh, birth)).collect();
        }
        Ok(self.rng.choose(&all, k))
    }

    fn remove_part(&mut self, p: Part, n: u64) -> Result<()> {
        let path = self.path(p, n);
        match fs::remove_file(&path) {
            Ok(()) => {
                let r = self.rel(&path);
                self.note(format!("removed {r}"));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("unlink {}", path.display())),
        }
    }

    /// A fresh sub-directory of the outside directory for this damage's
    /// canaries.
    fn outside_subdir(&mut self) -> Result<PathBuf> {
        fs::create_dir_all(self.outside_dir).with_context(|| format!("mkdir -p {}", self.outside_dir.display()))?;
        for k in 0u32.. {
            let d = self.outside_dir.join(format!("{}-{k}", self.report.damage.name()));
            match fs::create_dir(&d) {
                Ok(()) => {
                    self.report.outside.push(d.clone());
                    return Ok(d);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("mkdir {}", d.display())),
            }
        }
        unreachable!("u32 exhausted")
    }

    /// A number not used by any file, in bucket `b`.
    fn unused_number(&mut self, b: u32) -> u64 {
        let split = u64::from(self.m.split);
        loop {
            let base = 3_000_000_000 + self.rng.below(1_000_000_000);
            let n = base - base % split + u64::from(b);
            if !Part::ALL.iter().any(|&p| fs::symlink_metadata(self.path(p, n)).is_ok()) {
                return n;
            }
        }
    }
}

/// Reads a file without following a link.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Replaces the content of an existing file in place (same inode, owner and
/// mode), keeping its access and modification times.
fn rewrite_keep_times(path: &Path, data: &[u8]) -> Result<()> {
    let md = fs::symlink_metadata(path).with_context(|| format!("lstat {}", path.display()))?;
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(data)?;
    f.set_times(
        fs::FileTimes::new()
            .set_accessed(system_time_ns(md.atime(), md.atime_nsec()))
            .set_modified(system_time_ns(md.mtime(), md.mtime_nsec())),
    )?;
    Ok(())
}

/// Creates a plain file (the caller's owner) with a mode.
fn plain_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(data)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Copies `path` to a temporary name in its directory and renames it over
/// the original, keeping content, mode, owner (when allowed) and times: the
/// file gets a new inode under its old name.
fn copy_over(path: &Path, md: &fs::Metadata, seq: u64) -> Result<()> {
    let tmp = path.with_file_name(format!(".qbuild-copy.{}.{seq}", std::process::id()));
    let data = read_file(path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(&data)?;
    if nix::unistd::geteuid().is_root() || md.uid() == nix::unistd::geteuid().as_raw() {
        // Not root: only our own files, and the group may not be ours.
        let _ = std::os::unix::fs::fchown(&f, Some(md.uid()), Some(md.gid()));
    }
    f.set_permissions(fs::Permissions::from_mode(md.mode() & 0o7777))?;
    f.set_times(
        fs::FileTimes::new()
            .set_accessed(system_time_ns(md.atime(), md.atime_nsec()))
            .set_modified(system_time_ns(md.mtime(), md.mtime_nsec())),
    )?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("rename over {}", path.display()))?;
    Ok(())
}

/// The copy-to-another-filesystem walk: every regular file in the queue.
fn copy_tree(dir: &Path, keep_links: bool, links: &mut HashMap<(u64, u64), PathBuf>, seq: &mut u64) -> Result<u64> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("opendir {}", dir.display()))?
        .map(|d| d.map(|d| d.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let mut copied = 0;
    for name in names {
        let path = dir.join(&name);
        let md = fs::symlink_metadata(&path)?;
        if md.is_dir() {
            copied += copy_tree(&path, keep_links, links, seq)?;
        } else if md.is_file() {
            *seq += 1;
            let key = (md.dev(), md.ino());
            // A later name of a hard-linked inode already copied: link it
            // to the copy. (Its link count has dropped by then, so look it
            // up whatever the count; an inode number in the map cannot have
            // been reused while a name not yet visited still holds it.)
            if keep_links {
                if let Some(first) = links.get(&key) {
                    let tmp = path.with_file_name(format!(".qbuild-copy.{}.{seq}", std::process::id()));
                    fs::hard_link(first, &tmp)?;
                    fs::rename(&tmp, &path)?;
                    copied += 1;
                    continue;
                }
                if md.nlink() > 1 {
                    links.insert(key, path.clone());
                }
            }
            copy_over(&path, &md, *seq)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Cuts a `T`/`D` file in the middle of its last record.
fn cut_last_record(data: &[u8]) -> Option<usize> {
    if data.len() < 2 || *data.last()? != 0 {
        return None;
    }
    let body = &data[..data.len() - 1];
    let start = body.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
    let addr_len = body.len() - start - 1;
    Some(start + 1 + addr_len / 2)
}

/// Applies `damage` to the queue of `built`, choosing victims with `seed`.
/// Trap damages create their canaries in a fresh sub-directory of
/// `outside_dir` (created if needed); no other damage touches it.
pub fn apply_damage(built: &BuiltQueue, damage: Damage, seed: u64, outside_dir: &Path) -> Result<DamageReport> {
    let m = Maker::new(&built.queue, built.spec_split, built.big_todo, built.ids);
    let scan = scan(&m)?;
    let mut c = Ctx {
        m,
        rng: Rng::new(seed ^ mix64(damage as u64 + 1)),
        scan,
        outside_dir,
        report: DamageReport { damage, touched: Vec::new(), outside: Vec::new(), notes: Vec::new() },
    };
    apply(&mut c, damage).with_context(|| format!("damage {}", damage.name()))?;
    c.report.touched.sort_unstable();
    c.report.touched.dedup();
    Ok(c.report)
}

/// Whether a message has its mess file.
fn mess(h: &[bool; 7]) -> bool {
    h[Part::Mess.index()]
}

/// Whether a message is in the todo stage (mess and todo).
fn todo_stage(h: &[bool; 7]) -> bool {
    h[Part::Mess.index()] && h[Part::Todo.index()]
}

/// Whether a message is preprocessed (mess and info, no todo).
fn preprocessed(h: &[bool; 7]) -> bool {
    h[Part::Mess.index()] && h[Part::Info.index()] && !h[Part::Todo.index()]
}

/// Applies one damage: each has its function, in the module of its family.
fn apply(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    match damage {
        Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks => copy::copied_to_other_fs(c, damage),
        Damage::MissingBucket => buckets::missing_bucket(c),
        Damage::WrongBucket => buckets::wrong_bucket(c),
        Damage::ExtraBuckets => buckets::extra_buckets(c),
        Damage::ZeroByteMess => envelopes::zero_byte_mess(c),
        Damage::OrphanInfo => orphans::orphan_info(c),
        Damage::OrphanLocal | Damage::OrphanRemote => orphans::orphan_list(c, damage),
        Damage::OrphanTodo => orphans::orphan_todo(c),
        Damage::OrphanBounce => orphans::orphan_bounce(c),
        Damage::S2Leftover | Damage::S3Leftover => orphans::leftover(c, damage),
        Damage::EmptyInfo | Damage::GarbledInfo => envelopes::broken_info(c, damage),
        Damage::TruncatedLocal | Damage::TruncatedRemote => envelopes::truncated_list(c, damage),
        Damage::StaleBounceBesideTodo => envelopes::stale_bounce_beside_todo(c),
        Damage::BadOwnersModes => strays::bad_owners_modes(c),
        Damage::StrayNames => strays::stray_names(c),
        Damage::StraySubdirs => strays::stray_subdirs(c),
        Damage::SymlinkTrap => traps::symlink_trap(c),
        Damage::FifoTrap => traps::fifo_trap(c),
        Damage::PidLeftovers => strays::pid_leftovers(c),
        Damage::MissingLockFiles => locks::missing_lock_files(c),
        Damage::WrongLockFiles => locks::wrong_lock_files(c),
        Damage::BrokenTodoWithIntd => envelopes::broken_todo_with_intd(c),
        Damage::BrokenTodoPreprocessed => envelopes::broken_todo_preprocessed(c),
        Damage::ExtraHardLink => envelopes::extra_hard_link(c),
        Damage::AllOwnersWrong => restore::all_owners_wrong(c),
    }
}

/// Garbles envelope bytes: variant 0 cuts the last record in the middle,
/// variant 1 inserts an unknown record type.
fn garble_todo(data: &[u8], variant: usize) -> Vec<u8> {
    if variant & 1 == 0 {
        let len = cut_last_record(data).unwrap_or(data.len() / 2);
        data[..len].to_vec()
    } else {
        let mut v = data.to_vec();
        v.extend_from_slice(b"Xgarbage\0");
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Damage::ALL {
            assert_eq!(Damage::from_name(d.name()), Some(*d));
            assert!(d.name().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
        assert_eq!(Damage::from_name("nope"), None);
        assert_eq!(Damage::ALL.len(), 30);
    }

    #[test]
    fn cutting() {
        assert_eq!(cut_last_record(b"Ta@b\0Tcc@dd\0"), Some(5 + 1 + 2));
        assert_eq!(cut_last_record(b"Tabcd\0"), Some(3));
        assert_eq!(cut_last_record(b"T"), None);
        let g = garble_todo(b"u0\0p1\0Fa\0Tb@c\0", 0);
        assert!(Todo::parse(&g).is_err());
        let g = garble_todo(b"u0\0p1\0Fa\0Tb@c\0", 1);
        assert!(Todo::parse(&g).is_err());
    }
}
