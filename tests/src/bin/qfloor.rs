//! `qfloor`: the floors of qbench's destructive cases. Each subcommand
//! does one repair job on a practice queue with only the system calls that
//! job cannot avoid, written plainly (no qcommon, no crash safety, no
//! checks beyond what finds the work): the yardstick a repair tool is
//! measured against (docs/performance.md, "Floors"). `shape` prints a
//! one-line summary of a queue, so that qbench can verify that a floor
//! left the same queue as the tool it stands beside.
//!
//! ```text
//! qfloor renumber --queue Q [--split 23]      list, then one rename per file
//! qfloor owners --queue Q --ids Q:S:R:G       one fchownat/fchmodat per wrong entry
//! qfloor killns --queue Q [--split 23]        read each envelope, unlink the bounces
//! qfloor shape --queue Q --ids Q:S:R:G        files per part, numbering, owners
//! ```
//!
//! The queue layout (docs/queue-format.md): `mess`, `info`, `local` and
//! `remote` split into buckets `0..split`, message N in bucket N mod split;
//! `todo` and `intd` split the same way with the big-todo patch (told by
//! `todo/0`), flat otherwise; `bounce` flat.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstat, fstatat, FchmodatFlags, Mode};
use nix::unistd::{fchownat, Gid, Uid};

/// The floors of qbench's destructive cases.
#[derive(Debug, Parser)]
#[command(name = "qfloor", version)]
struct Args {
    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, clap::Args)]
struct QueueArgs {
    /// The queue directory.
    #[arg(long, value_name = "DIR")]
    queue: PathBuf,
    /// conf-split: buckets 0..split in the split directories.
    #[arg(long, value_name = "N", default_value_t = 23)]
    split: u32,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Renumber every message to its mess file's inode: list every
    /// directory, then one rename per file (the inode from the listing).
    Renumber(QueueArgs),
    /// Give every directory and file qmail's owner and mode: stat each,
    /// then one fchownat and one fchmodat per wrong one.
    Owners {
        #[command(flatten)]
        q: QueueArgs,
        /// qmail's ids as QMAILQ:QMAILS:QMAILR:QMAILGID.
        #[arg(long, value_name = "Q:S:R:G")]
        ids: String,
    },
    /// Remove the null-sender messages: read each envelope, unlink the
    /// selected messages' files.
    Killns {
        #[command(flatten)]
        q: QueueArgs,
        /// Threads that unlink (qkillns removes with four): on a disk where
        /// each unlink waits for a discard, concurrency decides the time.
        #[arg(long, value_name = "N", default_value_t = 4)]
        threads: usize,
    },
    /// Read what a check reads, judging nothing: list every directory of
    /// the queue's parts, a no-follow stat of every file, and open, read
    /// and close every envelope (info, local, remote, todo), with N reader
    /// threads sharing the directories and their files. Prints what it
    /// read.
    Walk {
        /// The queue directory.
        #[arg(long, value_name = "DIR")]
        queue: PathBuf,
        /// Reader threads.
        #[arg(long, value_name = "N", default_value_t = 1)]
        threads: usize,
    },
    /// Print a one-line summary of the queue: files per part, mess files
    /// named by their inode in the right bucket, files without a mess,
    /// entries with a wrong owner or mode, files in lost+found.
    Shape {
        #[command(flatten)]
        q: QueueArgs,
        /// qmail's ids as QMAILQ:QMAILS:QMAILR:QMAILGID.
        #[arg(long, value_name = "Q:S:R:G")]
        ids: String,
    },
}

/// The parts of a message, in the order qkillns removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Todo,
    Intd,
    Bounce,
    Local,
    Remote,
    Info,
    Mess,
}

const PARTS: [Part; 7] = [Part::Todo, Part::Intd, Part::Bounce, Part::Local, Part::Remote, Part::Info, Part::Mess];

impl Part {
    fn dir(self) -> &'static str {
        match self {
            Part::Todo => "todo",
            Part::Intd => "intd",
            Part::Bounce => "bounce",
            Part::Local => "local",
            Part::Remote => "remote",
            Part::Info => "info",
            Part::Mess => "mess",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_split(self, big_todo: bool) -> bool {
        match self {
            Part::Mess | Part::Info | Part::Local | Part::Remote => true,
            Part::Todo | Part::Intd => big_todo,
            Part::Bounce => false,
        }
    }

    /// Whether this part belongs to qmail-queue (qmailq, mode 0644, any
    /// group) rather than qmail-send (qmails, 0600, group qmail).
    fn queued(self) -> bool {
        matches!(self, Part::Mess | Part::Intd | Part::Todo)
    }
}

/// One part's directories, opened: one per bucket, or the one directory.
struct PartDirs {
    split: Option<u32>,
    dirs: Vec<Dir>,
}

impl PartDirs {
    fn open(queue: &Path, part: Part, split: u32, big_todo: bool) -> Result<PartDirs> {
        let top = queue.join(part.dir());
        let open = |p: &Path| {
            Dir::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .with_context(|| format!("opendir {}", p.display()))
        };
        if part.is_split(big_todo) {
            let dirs = (0..split).map(|b| open(&top.join(b.to_string()))).collect::<Result<_>>()?;
            Ok(PartDirs { split: Some(split), dirs })
        } else {
            Ok(PartDirs { split: None, dirs: vec![open(&top)?] })
        }
    }

    fn index(&self, n: u64) -> usize {
        self.split.map_or(0, |s| (n % u64::from(s)) as usize)
    }

    /// The descriptor of the directory that holds number `n`.
    fn fd(&self, n: u64) -> BorrowedFd<'_> {
        self.dirs[self.index(n)].as_fd()
    }

    /// Every all-digit name of every directory: (directory index, number,
    /// inode from the listing).
    fn list(&mut self) -> Result<Vec<(usize, u64, u64)>> {
        let mut out = Vec::new();
        for (i, d) in self.dirs.iter_mut().enumerate() {
            for e in d.iter() {
                let e = e.context("readdir")?;
                if let Some(n) = number(e.file_name().to_bytes()) {
                    out.push((i, n, e.ino()));
                }
            }
        }
        Ok(out)
    }
}

/// A message number: all digits, no leading zero.
fn number(name: &[u8]) -> Option<u64> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

fn big_todo(queue: &Path) -> bool {
    queue.join("todo/0").is_dir()
}

/// Every part's directories, opened, in [`PARTS`] order.
fn open_all(queue: &Path, split: u32) -> Result<Vec<PartDirs>> {
    let big = big_todo(queue);
    PARTS.iter().map(|&p| PartDirs::open(queue, p, split, big)).collect()
}

/// The numbers present in each part, in [`PARTS`] order.
fn present(parts: &mut [PartDirs]) -> Result<Vec<HashSet<u64>>> {
    parts.iter_mut().map(|d| Ok(d.list()?.into_iter().map(|(_, n, _)| n).collect())).collect()
}

/// Renumbering: every message whose mess name is not its inode moves, all
/// its files at once, one rename each. A new number may be the old number
/// of another message still to move: that one moves first (a chain), and
/// a cycle goes through one temporary name (the only extra renames).
fn renumber(a: &QueueArgs) -> Result<()> {
    let mut parts = open_all(&a.queue, a.split)?;
    let mut moves: HashMap<u64, u64> = HashMap::new();
    for (_, n, ino) in parts[Part::Mess.index()].list()? {
        if n != ino {
            moves.insert(n, ino);
        }
    }
    let have = present(&mut parts)?;
    for step in plan(moves) {
        for p in PARTS {
            if have[p.index()].contains(&step.message) {
                let d = &parts[p.index()];
                let (from, to) = (step.from.name(), step.to.name());
                nix::fcntl::renameat(d.fd(step.from.dir()), from.as_str(), d.fd(step.to.dir()), to.as_str())
                    .with_context(|| format!("rename {}/{from} to {to}", p.dir()))?;
            }
        }
    }
    Ok(())
}

/// A name a message's files have during renumbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Name {
    /// The number itself, in the directory of that number.
    Number(u64),
    /// `N.floor`, in the directory of number N: where the first message
    /// of a cycle waits.
    Parked(u64),
}

impl Name {
    fn name(self) -> String {
        match self {
            Name::Number(n) => n.to_string(),
            Name::Parked(n) => format!("{n}.floor"),
        }
    }

    /// The number whose directory holds the name.
    fn dir(self) -> u64 {
        match self {
            Name::Number(n) | Name::Parked(n) => n,
        }
    }
}

/// One rename of every file of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    /// The message's old number (which of its parts exist).
    message: u64,
    from: Name,
    to: Name,
}

/// The renames of a renumbering, old number to new, in an order where no
/// rename lands on a name still in use: a new number may be the old number
/// of another message to move, which then moves first (a chain); a cycle
/// parks its first message under a temporary name, the only renames
/// beyond one per file. The numbers map one to one (old numbers are names,
/// new ones inodes), so every chain ends at a free name or closes a cycle.
fn plan(mut moves: HashMap<u64, u64>) -> Vec<Step> {
    let mut steps = Vec::with_capacity(moves.len() + 1);
    let mut starts: Vec<u64> = moves.keys().copied().collect();
    starts.sort_unstable();
    let step = |old: u64, new: u64| Step { message: old, from: Name::Number(old), to: Name::Number(new) };
    for start in starts {
        if !moves.contains_key(&start) {
            continue;
        }
        let mut chain = vec![start];
        let mut next = moves[&start];
        while next != start && moves.contains_key(&next) {
            chain.push(next);
            next = moves[&next];
        }
        if next == start {
            steps.push(Step { message: start, from: Name::Number(start), to: Name::Parked(start) });
            steps.extend(chain[1..].iter().rev().map(|&old| step(old, moves[&old])));
            steps.push(Step { message: start, from: Name::Parked(start), to: Name::Number(moves[&start]) });
        } else {
            steps.extend(chain.iter().rev().map(|&old| step(old, moves[&old])));
        }
        for old in chain {
            moves.remove(&old);
        }
    }
    steps
}

/// qmail's ids.
#[derive(Debug, Clone, Copy)]
struct Ids {
    qmailq: u32,
    qmails: u32,
    qmailr: u32,
    qmail: u32,
}

impl Ids {
    fn parse(s: &str) -> Result<Ids> {
        let v: Vec<u32> = s.split(':').map(str::parse).collect::<Result<_, _>>().context("--ids Q:S:R:G")?;
        let [qmailq, qmails, qmailr, qmail] = v[..] else { bail!("--ids takes four numbers, Q:S:R:G") };
        Ok(Ids { qmailq, qmails, qmailr, qmail })
    }
}

/// What an entry should be: owner, group (None: any), mode.
type Want = (u32, Option<u32>, u32);

/// The table of docs/queue-format.md: a top-level directory's owner and
/// mode (its buckets are the same).
fn dir_want(name: &str, ids: Ids) -> Option<Want> {
    let (owner, mode) = match name {
        "pid" => (ids.qmailq, 0o700),
        "mess" | "todo" | "lock" => (ids.qmailq, 0o750),
        "intd" => (ids.qmailq, 0o700),
        "info" | "local" | "remote" | "bounce" => (ids.qmails, 0o700),
        _ => return None,
    };
    Some((owner, Some(ids.qmail), mode))
}

/// A file's owner and mode in top-level directory `top`.
fn file_want(top: &str, name: &[u8], ids: Ids) -> Option<Want> {
    if top == "lock" {
        return match name {
            b"sendmutex" => Some((ids.qmails, Some(ids.qmail), 0o600)),
            b"tcpto" => Some((ids.qmailr, Some(ids.qmail), 0o644)),
            b"trigger" => Some((ids.qmails, Some(ids.qmail), 0o622)),
            _ => None,
        };
    }
    let part = PARTS.into_iter().find(|p| p.dir() == top)?;
    number(name)?;
    Some(if part.queued() { (ids.qmailq, None, 0o644) } else { (ids.qmails, Some(ids.qmail), 0o600) })
}

/// Walks the queue, statting every directory and file the table covers,
/// and calls `wrong` with (directory fd, name, stat, want) for each one
/// whose owner, group or mode differs. `.` names the directory itself
/// (its fd is then the directory's own).
fn audit(
    queue: &Path,
    ids: Ids,
    wrong: &mut dyn FnMut(BorrowedFd<'_>, &std::ffi::CStr, &nix::sys::stat::FileStat, Want) -> Result<()>,
) -> Result<()> {
    let bad = |st: &nix::sys::stat::FileStat, w: Want| {
        st.st_uid != w.0 || w.1.is_some_and(|g| g != st.st_gid) || st.st_mode & 0o7777 != w.2
    };
    let open = |p: &Path| {
        Dir::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
            .with_context(|| format!("opendir {}", p.display()))
    };
    let dot = c".";
    let root = open(queue)?;
    let st = fstat(root.as_fd())?;
    let w = (ids.qmailq, Some(ids.qmail), 0o750);
    if bad(&st, w) {
        wrong(root.as_fd(), dot, &st, w)?;
    }
    for top in ["pid", "mess", "todo", "intd", "info", "local", "remote", "bounce", "lock"] {
        let Some(dw) = dir_want(top, ids) else { continue };
        let p = queue.join(top);
        if !p.is_dir() {
            continue;
        }
        // The directory, then its entries: buckets (same as it) and files.
        let mut stack = vec![(p, true)];
        while let Some((p, is_top)) = stack.pop() {
            let mut d = open(&p)?;
            let names: Vec<std::ffi::CString> = d
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_owned())
                .filter(|n| n.to_bytes() != b"." && n.to_bytes() != b"..")
                .collect();
            let fd = d.as_fd();
            let st = fstat(fd)?;
            if bad(&st, dw) {
                wrong(fd, dot, &st, dw)?;
            }
            for name in names {
                let st = fstatat(fd, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .with_context(|| format!("stat {}/{name:?}", p.display()))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    if is_top && top != "lock" && top != "pid" {
                        stack.push((p.join(std::ffi::OsStr::from_bytes(name.to_bytes())), false));
                    }
                    continue;
                }
                if let Some(w) = file_want(top, name.to_bytes(), ids) {
                    if bad(&st, w) {
                        wrong(fd, name.as_c_str(), &st, w)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Owners and modes: one fchownat where the owner or group is wrong, one
/// fchmodat where the mode is (after the chown, which may clear set-id
/// bits).
fn owners(a: &QueueArgs, ids: Ids) -> Result<()> {
    audit(&a.queue, ids, &mut |fd, name, st, (uid, gid, mode)| {
        if st.st_uid != uid || gid.is_some_and(|g| g != st.st_gid) {
            fchownat(fd, name, Some(Uid::from_raw(uid)), gid.map(Gid::from_raw), AtFlags::AT_SYMLINK_NOFOLLOW)
                .with_context(|| format!("chown {name:?}"))?;
        }
        if st.st_mode & 0o7777 != mode {
            fchmodat(fd, name, Mode::from_bits_truncate(mode), FchmodatFlags::FollowSymlink)
                .with_context(|| format!("chmod {name:?}"))?;
        }
        Ok(())
    })
}

/// Reads the file `name` in directory `fd` into `buf` (cleared first).
fn read_at(fd: BorrowedFd<'_>, name: &str, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    let f = nix::fcntl::openat(fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .with_context(|| format!("open {name}"))?;
    let mut chunk = [0u8; 4096];
    let r = loop {
        match nix::unistd::read(&f, &mut chunk) {
            Ok(0) => break Ok(()),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => break Err(e).with_context(|| format!("read {name}")),
        }
    };
    drop(f);
    r
}

/// The sender record (`F...`) of an envelope: todo (`u`, `p`, `F`, `T`
/// records) or info (one `F` record), each record ended by a NUL.
fn sender(envelope: &[u8]) -> Option<&[u8]> {
    envelope.split(|&b| b == 0).find(|r| r.first() == Some(&b'F')).map(|r| &r[1..])
}

/// qkillns's default: every message whose sender is null (in the todo of
/// a message not yet preprocessed, else in its info), except those with a
/// record in lost+found/salvaged; their files unlinked in qkillns's order,
/// the selected messages shared out over `threads` threads.
fn killns(a: &QueueArgs, threads: usize) -> Result<()> {
    let mut parts = open_all(&a.queue, a.split)?;
    let have = present(&mut parts)?;
    let salvaged: HashSet<u64> = match std::fs::read_dir(a.queue.join("lost+found/salvaged")) {
        Ok(rd) => rd.filter_map(|e| e.ok()).filter_map(|e| number(e.file_name().as_encoded_bytes())).collect(),
        Err(_) => HashSet::new(),
    };
    let (todo, info) = (Part::Todo.index(), Part::Info.index());
    let mut buf = Vec::with_capacity(4096);
    let mut numbers: Vec<u64> = have[Part::Mess.index()].iter().copied().collect();
    numbers.sort_unstable();
    let mut selected = Vec::new();
    for n in numbers {
        if salvaged.contains(&n) {
            continue;
        }
        let from = if have[todo].contains(&n) {
            todo
        } else if have[info].contains(&n) {
            info
        } else {
            continue;
        };
        read_at(parts[from].fd(n), &n.to_string(), &mut buf)?;
        if sender(&buf) == Some(b"") {
            selected.push(n);
        }
    }
    // The directories' descriptors, shared by the unlinking threads.
    let fds: Vec<Vec<BorrowedFd<'_>>> = parts.iter().map(|d| d.dirs.iter().map(AsFd::as_fd).collect()).collect();
    let splits: Vec<Option<u32>> = parts.iter().map(|d| d.split).collect();
    let threads = threads.max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (have, fds, selected, splits) = (&have, &fds, &selected, &splits);
                s.spawn(move || -> Result<()> {
                    for &n in selected.iter().skip(t).step_by(threads) {
                        let name = n.to_string();
                        for p in PARTS {
                            if have[p.index()].contains(&n) {
                                let i = p.index();
                                let fd = fds[i][splits[i].map_or(0, |b| (n % u64::from(b)) as usize)];
                                nix::unistd::unlinkat(fd, name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)
                                    .with_context(|| format!("unlink {}/{name}", p.dir()))?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|_| bail!("an unlinking thread panicked")))
    })
}

/// The one-line summary `shape` prints.
fn shape(a: &QueueArgs, ids: Ids) -> Result<String> {
    let mut parts = open_all(&a.queue, a.split)?;
    let mut out = String::new();
    let mut numbers: Vec<HashSet<u64>> = Vec::new();
    for (p, d) in PARTS.iter().zip(parts.iter_mut()) {
        let listed = d.list()?;
        out.push_str(&format!("{}={} ", p.dir(), listed.len()));
        numbers.push(listed.into_iter().map(|(_, n, _)| n).collect());
    }
    // Mess files named by their inode (from a stat), in bucket N mod split.
    let mess = &parts[Part::Mess.index()];
    let mut by_inode = 0u64;
    for &n in &numbers[Part::Mess.index()] {
        let st = fstatat(mess.fd(n), n.to_string().as_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        if st.is_ok_and(|st| st.st_ino == n) {
            by_inode += 1;
        }
    }
    let without_mess: usize = PARTS
        .iter()
        .filter(|&&p| p != Part::Mess)
        .map(|p| numbers[p.index()].iter().filter(|n| !numbers[Part::Mess.index()].contains(n)).count())
        .sum();
    let mut wrong = 0u64;
    audit(&a.queue, ids, &mut |_, _, _, _| {
        wrong += 1;
        Ok(())
    })?;
    let lost = walkdir_files(&a.queue.join("lost+found"));
    out.push_str(&format!(
        "named-by-inode={by_inode} without-mess={without_mess} wrong-owner-or-mode={wrong} lost+found={lost}"
    ));
    Ok(out)
}

/// Regular files below `dir` (0 if it is missing).
fn walkdir_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += walkdir_files(&e.path()),
            Ok(t) if t.is_file() => n += 1,
            _ => {}
        }
    }
    n
}

/// What `walk` went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Walked {
    /// Directories listed (the part directories and their buckets).
    dirs: u64,
    /// Files stated.
    files: u64,
    /// Envelope files read.
    envelopes: u64,
    /// Bytes read from them.
    bytes: u64,
}

impl std::fmt::Display for Walked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dirs={} files={} envelopes={} bytes={}", self.dirs, self.files, self.envelopes, self.bytes)
    }
}

/// Files of one directory handed to a reader at a time.
const WALK_CHUNK: usize = 128;

/// A directory's files, waiting for a reader: the directory, whether its
/// files are envelopes, and their names.
type WalkChunk = (std::sync::Arc<OwnedFd>, bool, Vec<std::ffi::CString>);

/// The readers' shared work: directories still to list, and the files of
/// those listed, in chunks.
struct WalkWork {
    dirs: Vec<(PathBuf, bool)>,
    next_dir: usize,
    listing: usize,
    chunks: Vec<WalkChunk>,
}

/// The cold check's floor: every part directory and every bucket listed,
/// every file given a no-follow stat, every envelope (info, local, remote,
/// todo) opened, read to its end and closed; `threads` readers take the
/// directories to list and the listed files, in chunks, from one shared
/// list. It judges nothing.
fn walk(queue: &Path, threads: usize) -> Result<Walked> {
    let envelope = |p: Part| matches!(p, Part::Info | Part::Local | Part::Remote | Part::Todo);
    let dirs: Vec<(PathBuf, bool)> =
        PARTS.iter().map(|&p| (queue.join(p.dir()), envelope(p))).filter(|(d, _)| d.is_dir()).collect();
    let work = std::sync::Mutex::new(WalkWork { dirs, next_dir: 0, listing: 0, chunks: Vec::new() });
    let more = std::sync::Condvar::new();
    let reader = || -> Result<Walked> {
        let mut got = Walked::default();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let mut w = work.lock().expect("walk");
            let job = loop {
                if let Some(c) = w.chunks.pop() {
                    break Ok(c);
                }
                if w.next_dir < w.dirs.len() {
                    w.next_dir += 1;
                    w.listing += 1;
                    break Err(w.dirs[w.next_dir - 1].clone());
                }
                if w.listing == 0 {
                    return Ok(got);
                }
                w = more.wait(w).expect("walk");
            };
            drop(w);
            match job {
                Ok((dir, envelopes, names)) => {
                    for name in names {
                        read_one(&dir, &name, envelopes, &mut buf, &mut got)?;
                    }
                }
                Err((path, envelopes)) => {
                    let listed = list_walk_dir(&path);
                    let mut w = work.lock().expect("walk");
                    w.listing -= 1;
                    let (subdirs, files, dir) = listed.inspect_err(|_| more.notify_all())?;
                    got.dirs += 1;
                    w.dirs.extend(subdirs.into_iter().map(|d| (d, envelopes)));
                    let dir = std::sync::Arc::new(dir);
                    w.chunks.extend(files.chunks(WALK_CHUNK).map(|c| (dir.clone(), envelopes, c.to_vec())));
                    more.notify_all();
                }
            }
        }
    };
    let threads = threads.max(1);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..threads).map(|_| s.spawn(reader)).collect();
        let mut total = Walked::default();
        for r in readers {
            let w = r.join().unwrap_or_else(|_| bail!("a reader panicked"))?;
            total.dirs += w.dirs;
            total.files += w.files;
            total.envelopes += w.envelopes;
            total.bytes += w.bytes;
        }
        Ok(total)
    })
}

/// Lists one directory: its subdirectories (by path) and its other
/// entries (by name), with the directory kept open for them.
fn list_walk_dir(path: &Path) -> Result<(Vec<PathBuf>, Vec<std::ffi::CString>, OwnedFd)> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::open(path, flags, Mode::empty()).with_context(|| format!("opendir {}", path.display()))?;
    let mut d = Dir::from_fd(nix::unistd::dup(&fd).context("dup")?).context("fdopendir")?;
    let (mut subdirs, mut files) = (Vec::new(), Vec::new());
    for e in d.iter() {
        let e = e.with_context(|| format!("readdir {}", path.display()))?;
        let name = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        match e.file_type() {
            Some(nix::dir::Type::Directory) => subdirs.push(path.join(std::ffi::OsStr::from_bytes(name.to_bytes()))),
            _ => files.push(name.to_owned()),
        }
    }
    Ok((subdirs, files, fd))
}

/// The no-follow stat of one file; an envelope then opened, read to its
/// end into `buf` and closed.
fn read_one(dir: &OwnedFd, name: &std::ffi::CStr, envelope: bool, buf: &mut [u8], got: &mut Walked) -> Result<()> {
    let fd = dir.as_fd();
    fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).with_context(|| format!("stat {name:?}"))?;
    got.files += 1;
    if !envelope {
        return Ok(());
    }
    let f = nix::fcntl::openat(fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .with_context(|| format!("open {name:?}"))?;
    loop {
        match nix::unistd::read(&f, buf) {
            Ok(0) => break,
            Ok(k) => got.bytes += k as u64,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).with_context(|| format!("read {name:?}")),
        }
    }
    got.envelopes += 1;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match &args.job {
        Job::Renumber(q) => renumber(q),
        Job::Owners { q, ids } => Ids::parse(ids).and_then(|ids| owners(q, ids)),
        Job::Killns { q, threads } => killns(q, *threads),
        Job::Shape { q, ids } => Ids::parse(ids).and_then(|ids| shape(q, ids)).map(|s| println!("{s}")),
        Job::Walk { queue, threads } => walk(queue, *threads).map(|w| println!("{w}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qfloor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Carries out `steps` on a set of names, failing on any rename onto a
    /// name in use or from a name not there.
    fn apply(names: &mut HashSet<Name>, steps: &[Step]) {
        for s in steps {
            assert!(names.remove(&s.from), "{s:?}: nothing at {:?}", s.from);
            assert!(names.insert(s.to), "{s:?}: {:?} in use", s.to);
        }
    }

    #[test]
    fn plans_chains_and_cycles_without_overwriting() {
        // 1 -> 2 -> 3 (free), a cycle 10 -> 11 -> 12 -> 10, a swap 20 <-> 21,
        // and 30 -> 40 alone.
        let moves: HashMap<u64, u64> =
            [(1, 2), (2, 3), (10, 11), (11, 12), (12, 10), (20, 21), (21, 20), (30, 40)].into_iter().collect();
        let steps = plan(moves.clone());
        // One rename per message, plus one per cycle (two cycles).
        assert_eq!(steps.len(), moves.len() + 2, "{steps:?}");
        let mut names: HashSet<Name> = moves.keys().map(|&n| Name::Number(n)).collect();
        apply(&mut names, &steps);
        let want: HashSet<Name> = moves.values().map(|&n| Name::Number(n)).collect();
        assert_eq!(names, want);
        // Each message ends at its own new number.
        for (&old, &new) in &moves {
            let last = steps.iter().rev().find(|s| s.message == old).unwrap();
            assert_eq!(last.to, Name::Number(new), "{old}");
        }
    }

    /// A practice queue of `n` messages with `damage` applied.
    fn damaged(dir: &Path, n: usize, null_sender: f64, damage: Option<qtests::Damage>) -> PathBuf {
        let queue = dir.join("queue");
        let spec = qtests::BuildSpec { messages: n, null_sender, ..qtests::BuildSpec::default() };
        let built = qtests::build_queue(&queue, &spec).unwrap();
        if let Some(d) = damage {
            qtests::apply_damage(&built, d, 1, &dir.join("outside")).unwrap();
        }
        queue
    }

    fn caller_ids() -> String {
        format!("{0}:{0}:{0}:{1}", nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
    }

    fn field(shape: &str, key: &str) -> u64 {
        let v = shape.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("{key}"));
        v.parse().unwrap()
    }

    #[test]
    fn renumbering_names_every_message_by_its_inode() {
        let dir = tempfile::tempdir().unwrap();
        let queue = damaged(dir.path(), 300, 0.05, Some(qtests::Damage::CopiedToOtherFs));
        let a = QueueArgs { queue, split: 23 };
        let ids = Ids::parse(&caller_ids()).unwrap();
        let before = shape(&a, ids).unwrap();
        assert!(field(&before, "named-by-inode") < 300, "{before}");
        renumber(&a).unwrap();
        let after = shape(&a, ids).unwrap();
        assert_eq!(field(&after, "mess"), 300, "{after}");
        assert_eq!(field(&after, "named-by-inode"), 300, "{after}");
        assert_eq!(field(&after, "without-mess"), 0, "{after}");
        for p in ["info", "local", "remote", "todo", "intd", "bounce"] {
            assert_eq!(field(&after, p), field(&before, p), "{p}: {before} / {after}");
        }
    }

    #[test]
    fn owners_and_modes_put_right() {
        let dir = tempfile::tempdir().unwrap();
        let queue = damaged(dir.path(), 200, 0.05, Some(qtests::Damage::BadOwnersModes));
        let a = QueueArgs { queue, split: 23 };
        let ids = Ids::parse(&caller_ids()).unwrap();
        assert!(field(&shape(&a, ids).unwrap(), "wrong-owner-or-mode") > 0);
        owners(&a, ids).unwrap();
        assert_eq!(field(&shape(&a, ids).unwrap(), "wrong-owner-or-mode"), 0);
    }

    #[test]
    fn killns_removes_exactly_the_null_sender_messages() {
        let dir = tempfile::tempdir().unwrap();
        let queue = damaged(dir.path(), 400, 0.3, None);
        let a = QueueArgs { queue: queue.clone(), split: 23 };
        let ids = Ids::parse(&caller_ids()).unwrap();
        // The envelope that decides each message's sender, as qkillns reads it.
        let null_senders = |q: &Path| -> (u64, u64) {
            let (mut null, mut all) = (0, 0);
            for b in 0..23 {
                for e in std::fs::read_dir(q.join(format!("mess/{b}"))).unwrap() {
                    let n = e.unwrap().file_name().into_string().unwrap();
                    let todo = q.join("todo").join(&n);
                    let env = std::fs::read(&todo).or_else(|_| std::fs::read(q.join(format!("info/{b}/{n}")))).unwrap();
                    all += 1;
                    null += u64::from(sender(&env) == Some(b""));
                }
            }
            (null, all)
        };
        let (null, all) = null_senders(&queue);
        assert!(null > 50, "{null} of {all}");
        killns(&a, 3).unwrap();
        assert_eq!(null_senders(&queue), (0, all - null));
        let after = shape(&a, ids).unwrap();
        assert_eq!(field(&after, "without-mess"), 0, "{after}");
    }

    #[test]
    fn walk_reads_every_envelope_byte_and_stats_every_file() {
        let dir = tempfile::tempdir().unwrap();
        // The default mix has messages not yet preprocessed: todo
        // envelopes too.
        let queue = dir.path().join("queue");
        let spec = qtests::BuildSpec { messages: 300, ..qtests::BuildSpec::default() };
        qtests::build_queue(&queue, &spec).unwrap();
        // Counted plainly: the files below the part directories, and the
        // bytes of those below info, local, remote and todo.
        fn count(d: &Path, envelope: bool, files: &mut u64, bytes: &mut u64, dirs: &mut u64) {
            *dirs += 1;
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let md = std::fs::symlink_metadata(e.path()).unwrap();
                if md.is_dir() {
                    count(&e.path(), envelope, files, bytes, dirs);
                } else {
                    *files += 1;
                    if envelope {
                        *bytes += md.len();
                    }
                }
            }
        }
        let (mut files, mut bytes, mut dirs, mut envelopes) = (0, 0, 0, 0);
        for p in PARTS {
            let envelope = matches!(p, Part::Info | Part::Local | Part::Remote | Part::Todo);
            let before = files;
            count(&queue.join(p.dir()), envelope, &mut files, &mut bytes, &mut dirs);
            if envelope {
                envelopes += files - before;
            }
        }
        assert!(envelopes > 300 && bytes > 0, "{envelopes} envelopes, {bytes} bytes");
        assert!(std::fs::read_dir(queue.join("todo")).unwrap().count() > 0, "no todo envelope");
        let want = Walked { dirs, files, envelopes, bytes };
        for threads in [1, 3] {
            assert_eq!(walk(&queue, threads).unwrap(), want, "{threads} threads");
        }
    }

    #[test]
    fn numbers_and_senders() {
        assert_eq!(number(b"123"), Some(123));
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"0123"), None);
        assert_eq!(number(b"12.floor"), None);
        assert_eq!(number(b""), None);
        assert_eq!(sender(b"u0\0p12\0F\0Tx@y\0"), Some(&b""[..]));
        assert_eq!(sender(b"Fa@b\0"), Some(&b"a@b"[..]));
        assert_eq!(sender(b"F\0"), Some(&b""[..]));
        assert_eq!(sender(b""), None);
    }
}
