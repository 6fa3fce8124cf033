//! One message, read by its number: this module owns reading the files of
//! message N where the queue layout puts them (`mess/B/N`, `todo/N`, ...),
//! for `--list` (after the index put the messages in order) and `--show`.
//!
//! Every file is opened from the queue's own directory handles without
//! following a link and without changing an access time; an entry that is
//! not a regular file is named, never opened for reading. The envelopes
//! are read up to [`HOLD_CAP`]; a larger recipient list is not held: it
//! is named in [`Recipients::Large`] and streamed again from its file when
//! it is printed, so memory stays bounded whatever its size.
//!
//! The state words, the sender and the damage reasons are those of
//! `--detail` ([`crate::detail::reason`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use qcommon::envelope::{read_records, Info, Recipients as List, Todo};
use qcommon::queue::{bucket_of, Part};
use qcommon::safe_fs::{number_name, Dir, FileKind, Stat};
use qcommon::scan::{ScanLayout, INFO_CAP};
use qcommon::Error;

use crate::detail::{reason, Basis};

/// Where a message is in qmail's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// todo exists: qmail-send has not preprocessed it yet.
    Unpreprocessed,
    /// info exists and no todo.
    Preprocessed,
    /// mess and intd, no todo and no info: qmail-queue is writing it (or
    /// was stopped doing so); qmail has not accepted it.
    BeingQueued,
    /// Neither todo, info nor intd: no envelope at all (a lone mess, or
    /// leftovers).
    NoEnvelope,
}

impl Stage {
    /// The word of listings and JSON.
    pub fn word(self) -> &'static str {
        match self {
            Stage::Unpreprocessed => "unpreprocessed",
            Stage::Preprocessed => "preprocessed",
            Stage::BeingQueued => "being-queued",
            Stage::NoEnvelope => "no-envelope",
        }
    }
}

/// The envelope sender, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An address (empty: the null sender, a bounce).
    Known(Vec<u8>),
    /// qfixq salvaged the message: its sender was lost (the envelope says
    /// null, but it is not a bounce).
    Lost,
    /// No envelope, or one that cannot be read.
    Unknown,
}

/// Which list a recipient is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A `T` record of todo or intd: not yet sorted into local and remote.
    Todo,
    /// `local/B/N`.
    Local,
    /// `remote/B/N`.
    Remote,
}

impl Channel {
    /// The word of listings and JSON.
    pub fn word(self) -> &'static str {
        match self {
            Channel::Todo => "todo",
            Channel::Local => "local",
            Channel::Remote => "remote",
        }
    }
}

/// The recipients of one list.
#[derive(Debug, Clone)]
pub enum Recipients {
    /// Held: each address and whether it was delivered (`D`).
    Held(Vec<(Vec<u8>, bool)>),
    /// Too large to hold: the file (relative to the queue root), read
    /// again record by record when printed.
    Large(PathBuf),
}

/// One recipient list.
#[derive(Debug, Clone)]
pub struct RecipientList {
    /// Which.
    pub channel: Channel,
    /// Its recipients.
    pub recipients: Recipients,
}

impl RecipientList {
    /// Calls `f` with each recipient (address, delivered) in file order;
    /// a large list is streamed from its file under `root`.
    pub fn for_each(&self, root: &Dir, mut f: impl FnMut(&[u8], bool)) -> qcommon::Result<()> {
        match &self.recipients {
            Recipients::Held(v) => {
                v.iter().for_each(|(a, d)| f(a, *d));
                Ok(())
            }
            Recipients::Large(rel) => {
                let todo = self.channel == Channel::Todo;
                read_records(root, rel, |kind, addr| {
                    match kind {
                        b'T' => f(addr, false),
                        b'D' if !todo => f(addr, true),
                        _ => {}
                    }
                    true
                })
            }
        }
    }
}

/// A file of the message that is there.
#[derive(Debug, Clone)]
pub struct FileAt {
    /// Which file.
    pub part: Part,
    /// Its path relative to the queue root.
    pub rel: PathBuf,
    /// Its no-follow stat.
    pub stat: Stat,
    /// Not where the layout puts it (another bucket, or a bucket where
    /// there should be none).
    pub misplaced: bool,
}

/// A message read by its number.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its number.
    pub number: u64,
    /// The bucket of its split files.
    pub bucket: u32,
    /// Its files in their right places, by [`Part::index`], regular files
    /// only.
    pub files: [Option<FileAt>; 7],
    /// Other files with its name: misplaced copies (`--show` looks for
    /// them; `--list` knows them from the scan), and entries that are not
    /// regular files (with what they are), never opened.
    pub others: Vec<(PathBuf, Option<Stat>, String)>,
    /// Its stage.
    pub stage: Stage,
    /// Its sender.
    pub sender: Sender,
    /// Its recipient lists: todo's (or intd's), or local's and remote's.
    pub lists: Vec<RecipientList>,
    /// Birth time and which time stamp it is.
    pub birth: Option<(i64, Basis)>,
    /// Damage reasons (sorted, each once).
    pub damage: Vec<&'static str>,
    /// Why an envelope could not be used (unescaped: escape before
    /// printing).
    pub notes: Vec<String>,
    /// Files that could not be read (unescaped: escape before printing).
    pub errors: Vec<String>,
}

impl Message {
    /// The file of `part`, in its right place.
    pub fn file(&self, part: Part) -> Option<&FileAt> {
        self.files[part.index()].as_ref()
    }

    /// Whether nothing of it was found.
    pub fn is_absent(&self) -> bool {
        self.files.iter().all(Option::is_none) && self.others.is_empty()
    }

    /// The size of its mess file.
    pub fn size(&self) -> Option<u64> {
        self.file(Part::Mess).map(|f| f.stat.size)
    }

    /// The birth time in seconds (0 when no file has a time stamp).
    pub fn birth_secs(&self) -> i64 {
        self.birth.map_or(0, |b| b.0)
    }
}

/// Directory handles of the queue (a part's directory, or one of its
/// buckets), opened from the queue root without following links and kept
/// for the next message: at most one per bucket of each part.
#[derive(Debug, Default)]
pub struct Dirs {
    dirs: HashMap<PathBuf, Dir>,
}

impl Dirs {
    /// The directory `rel` (a part, or a part and a bucket) of `root`.
    pub fn get(&mut self, root: &Dir, rel: &Path) -> qcommon::Result<&Dir> {
        if !self.dirs.contains_key(rel) {
            let mut d: Option<Dir> = None;
            for c in rel.iter() {
                d = Some(d.as_ref().unwrap_or(root).open_dir(c)?);
            }
            let d = d.ok_or_else(|| Error::Other("empty path".into()))?;
            self.dirs.insert(rel.to_path_buf(), d);
        }
        Ok(&self.dirs[rel])
    }
}

/// How to read.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// The layout.
    pub layout: ScanLayout,
    /// Look for copies of the name in every other bucket too (`--show`;
    /// costs a stat per bucket and part).
    pub search_buckets: bool,
    /// The scan saw files of the message in a wrong place (`--list`).
    pub misplaced: bool,
    /// qfixq salvaged it (lost+found/salvaged).
    pub salvaged: bool,
    /// The files the scan saw, by bit [`Part::index`]: only those are
    /// looked at, unless one of them is gone (then every file is, as
    /// qmail-send may have moved the message on meanwhile). `None`: all.
    pub parts: Option<u8>,
}

/// The largest recipient list held in memory between reading and
/// printing; a larger one is read again from its file as it is printed.
pub const HOLD_CAP: usize = 8 << 10;

/// The directory holding `part`'s file of message `n`, relative to the
/// queue root.
pub fn part_dir(part: Part, n: u64, layout: ScanLayout) -> PathBuf {
    let mut p = PathBuf::from(part.dir());
    if part.is_split(layout.big_todo) {
        p.push(bucket_of(n, layout.split.max(1)).to_string());
    }
    p
}

/// What is at one path.
enum Got {
    Absent,
    Regular(Stat),
    /// Not a regular file (a link, a FIFO, a directory, ...): not opened.
    Other(Option<Stat>, String),
    Error(Error),
}

fn kind_note(kind: FileKind) -> String {
    match kind {
        FileKind::Symlink => "a symbolic link, not followed".to_string(),
        k => format!("a {}, not a regular file", k.name()),
    }
}

/// Reads `name` in `dir` into `buf` (at most `cap`), telling what is there.
fn read_at(dir: &Dir, name: &OsStr, cap: usize, buf: &mut Vec<u8>) -> (Got, bool) {
    match dir.read_file_into(name, cap, buf) {
        Ok((st, truncated)) => (Got::Regular(st), truncated),
        Err(e) => (judge(dir, name, e), false),
    }
}

fn stat_at(dir: &Dir, name: &OsStr) -> Got {
    match dir.stat(name) {
        Ok(st) if st.kind == FileKind::Regular => Got::Regular(st),
        Ok(st) => Got::Other(Some(st), kind_note(st.kind)),
        Err(e) => judge(dir, name, e),
    }
}

/// An error opening or stating `name`: vanished, not a regular file, or
/// a real error.
fn judge(dir: &Dir, name: &OsStr, e: Error) -> Got {
    if e.is_not_found() {
        return Got::Absent;
    }
    if matches!(e, Error::WrongKind { .. }) || e.errno() == Some(Errno::ELOOP) {
        return match dir.stat(name) {
            Ok(st) => Got::Other(Some(st), kind_note(st.kind)),
            Err(e2) if e2.is_not_found() => Got::Absent,
            Err(_) => Got::Other(None, "not a regular file".to_string()),
        };
    }
    Got::Error(e)
}

/// Reads message `n` from the queue `root`. `cache` holds directory
/// handles between calls; `buf` is a reusable read buffer.
pub fn read(root: &Dir, cache: &mut Dirs, n: u64, opts: &ReadOptions, buf: &mut Vec<u8>) -> Message {
    if let Some(mask) = opts.parts {
        let (m, vanished) = read_parts(root, cache, n, opts, buf, mask);
        if !vanished {
            return m;
        }
    }
    read_parts(root, cache, n, opts, buf, u8::MAX).0
}

/// [`read`] of the files in `mask`; true when one of them was gone.
fn read_parts(
    root: &Dir,
    cache: &mut Dirs,
    n: u64,
    opts: &ReadOptions,
    buf: &mut Vec<u8>,
    mask: u8,
) -> (Message, bool) {
    let mut vanished = false;
    let layout = opts.layout;
    let split = layout.split.max(1);
    let mut m = Message {
        number: n,
        bucket: bucket_of(n, split),
        files: Default::default(),
        others: Vec::new(),
        stage: Stage::NoEnvelope,
        sender: Sender::Unknown,
        lists: Vec::new(),
        birth: None,
        damage: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
    };
    let name = number_name(n);
    let mut damage: Vec<&'static str> = Vec::new();
    let mut todo: Option<Result<(Todo, bool), String>> = None;
    let mut intd: Option<Result<(Todo, bool), String>> = None;
    let mut info: Option<Result<Info, String>> = None;
    let mut local: Option<Result<(List, bool), String>> = None;
    let mut remote: Option<Result<(List, bool), String>> = None;
    // Copies elsewhere: read when the right place has none.
    let elsewhere = if opts.search_buckets { search(root, cache, &mut m, layout) } else { Vec::new() };
    for part in Part::ALL {
        if mask & (1 << part.index()) == 0 {
            continue;
        }
        let mut places = vec![(part_dir(part, n, layout), false)];
        places.extend(elsewhere.iter().filter(|(p, _)| *p == part).map(|(_, d)| (d.clone(), true)));
        let mut used = false;
        for (rel_dir, wrong) in places {
            let rel = rel_dir.join(&name);
            if used {
                let st = cache.get(root, &rel_dir).ok().and_then(|d| d.stat(&name).ok());
                m.others.push((rel, st, "another copy, in a wrong place (qfixq live sets it aside)".to_string()));
                continue;
            }
            let dir = match cache.get(root, &rel_dir) {
                Ok(d) => d,
                Err(e) if e.is_not_found() || e.errno() == Some(Errno::ENOTDIR) || e.errno() == Some(Errno::ELOOP) => {
                    continue
                }
                Err(e) => {
                    m.errors.push(e.to_string());
                    continue;
                }
            };
            let reads = matches!(part, Part::Todo | Part::Intd | Part::Info | Part::Local | Part::Remote);
            let cap = if part == Part::Info { INFO_CAP } else { HOLD_CAP };
            let (got, large) = if reads { read_at(dir, &name, cap, buf) } else { (stat_at(dir, &name), false) };
            match got {
                Got::Absent => {
                    vanished |= !wrong;
                    continue;
                }
                Got::Regular(stat) => {
                    used = true;
                    m.files[part.index()] = Some(FileAt { part, rel: rel.clone(), stat, misplaced: wrong });
                }
                Got::Other(stat, note) => {
                    m.others.push((rel, stat, note));
                    damage.push(NOT_REGULAR);
                    continue;
                }
                Got::Error(e) => {
                    m.errors.push(e.to_string());
                    continue;
                }
            }
            let bad = |e: qcommon::envelope::EnvelopeError| format!("{}: {e}", qcommon::error::escape_path(&rel));
            match part {
                Part::Todo | Part::Intd => {
                    let parsed = if large {
                        large_sender(root, &rel)
                            .map(|s| (Todo { uid: None, pid: None, sender: s, recipients: vec![] }, true))
                    } else {
                        Todo::parse(buf).map(|t| (t, false)).map_err(bad)
                    };
                    if part == Part::Todo {
                        todo = Some(parsed);
                    } else {
                        intd = Some(parsed);
                    }
                }
                Part::Info => {
                    info = Some(if large {
                        Err(format!("{}: larger than {INFO_CAP} bytes", qcommon::error::escape_path(&rel)))
                    } else {
                        Info::parse(buf).map_err(bad)
                    })
                }
                Part::Local | Part::Remote => {
                    let parsed = if large {
                        Ok((List::default(), true))
                    } else {
                        List::parse_salvaging(buf).map(|l| (l, false)).map_err(bad)
                    };
                    if part == Part::Local {
                        local = Some(parsed);
                    } else {
                        remote = Some(parsed);
                    }
                }
                _ => {}
            }
        }
    }
    let moved = m.files.iter().flatten().any(|f| f.misplaced);
    if opts.misplaced || moved || m.others.iter().any(|(_, st, _)| st.is_some_and(|s| s.kind == FileKind::Regular)) {
        damage.push(reason::MISPLACED);
    }

    // The mess file.
    match m.file(Part::Mess) {
        None if m.files.iter().any(Option::is_some) => damage.push(reason::NO_MESS),
        None => {}
        Some(f) => {
            if f.stat.size == 0 {
                damage.push(reason::EMPTY_MESS);
            }
            if f.stat.ino != n {
                damage.push(reason::INODE);
            }
        }
    }
    let mtime = |m: &Message, p: Part| m.file(p).map(|f| f.stat.mtime);
    let rel_of = |m: &Message, p: Part| m.file(p).map(|f| f.rel.clone()).unwrap_or_default();
    let todo_list = |t: &(Todo, bool), rel: PathBuf| RecipientList {
        channel: Channel::Todo,
        recipients: if t.1 {
            Recipients::Large(rel)
        } else {
            Recipients::Held(t.0.recipients.iter().map(|a| (a.clone(), false)).collect())
        },
    };
    if m.file(Part::Todo).is_some() {
        m.stage = Stage::Unpreprocessed;
        if m.file(Part::Bounce).is_some() {
            damage.push(reason::BOUNCE_BEFORE);
        }
        match &todo {
            Some(Ok(t)) => {
                m.sender = Sender::Known(t.0.sender.clone());
                m.lists.push(todo_list(t, rel_of(&m, Part::Todo)));
            }
            Some(Err(e)) => {
                damage.push(reason::BAD_TODO);
                m.notes.push(e.clone());
            }
            None => {}
        }
        m.birth = mtime(&m, Part::Mess).map(|t| (t, Basis::MessMtime));
    } else if m.file(Part::Info).is_some() {
        m.stage = Stage::Preprocessed;
        match &info {
            Some(Ok(i)) if i.sender.is_empty() && opts.salvaged => m.sender = Sender::Lost,
            Some(Ok(i)) => m.sender = Sender::Known(i.sender.clone()),
            Some(Err(e)) => {
                damage.push(reason::BAD_INFO);
                m.notes.push(e.clone());
            }
            None => {}
        }
        for (part, parsed, channel) in [(Part::Local, &local, Channel::Local), (Part::Remote, &remote, Channel::Remote)]
        {
            match parsed {
                Some(Ok((_, true))) => {
                    m.lists.push(RecipientList { channel, recipients: Recipients::Large(rel_of(&m, part)) })
                }
                Some(Ok((l, false))) => {
                    if l.dropped > 0 {
                        damage.push(reason::TRUNCATED);
                    }
                    let held = l.list.iter().map(|r| (r.address.clone(), r.done)).collect();
                    m.lists.push(RecipientList { channel, recipients: Recipients::Held(held) });
                }
                Some(Err(e)) => {
                    damage.push(reason::BAD_RECIPIENTS);
                    m.notes.push(e.clone());
                }
                None => {}
            }
        }
        m.birth = mtime(&m, Part::Info).map(|t| (t, Basis::InfoMtime));
    } else if m.file(Part::Intd).is_some() {
        m.stage = Stage::BeingQueued;
        if let Some(Ok(t)) = &intd {
            m.sender = Sender::Known(t.0.sender.clone());
            m.lists.push(todo_list(t, rel_of(&m, Part::Intd)));
        }
        m.birth = mtime(&m, Part::Mess).map(|t| (t, Basis::MessMtime));
    } else {
        m.birth = mtime(&m, Part::Mess).map(|t| (t, Basis::MessMtime));
    }
    if m.birth.is_none() {
        m.birth =
            [Part::Todo, Part::Intd, Part::Info].iter().find_map(|&p| mtime(&m, p)).map(|t| (t, Basis::MessMtime));
    }
    if !m.errors.is_empty() {
        damage.push(reason::UNREADABLE);
    }
    damage.sort_unstable();
    damage.dedup();
    m.damage = damage;
    (m, vanished)
}

/// Damage reason: an entry with the message's name that is not a regular
/// file (a link, a FIFO, a directory).
pub const NOT_REGULAR: &str = "not a regular file";

/// The sender of a todo/intd too large to hold: its first `F` record.
fn large_sender(root: &Dir, rel: &Path) -> Result<Vec<u8>, String> {
    let mut sender = None;
    read_records(root, rel, |kind, body| {
        if kind == b'F' {
            sender = Some(body.to_vec());
            return false;
        }
        true
    })
    .map_err(|e| e.to_string())?;
    sender.ok_or_else(|| format!("{}: no F record", qcommon::error::escape_path(rel)))
}

/// Looks for the message's name in every bucket of every split directory
/// (and directly in a split directory, or in buckets of an unsplit one):
/// the regular files found in a wrong place, by part (the directory,
/// relative to the root). Other entries go to `m.others`.
fn search(root: &Dir, cache: &mut Dirs, m: &mut Message, layout: ScanLayout) -> Vec<(Part, PathBuf)> {
    let name = number_name(m.number);
    let split = layout.split.max(1);
    let mut found = Vec::new();
    for part in Part::ALL {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if part.is_split(layout.big_todo) {
            dirs.push(PathBuf::from(part.dir()));
            dirs.extend((0..split).filter(|&b| b != m.bucket).map(|b| Path::new(part.dir()).join(b.to_string())));
        } else {
            dirs.extend((0..split).map(|b| Path::new(part.dir()).join(b.to_string())));
        }
        for rel_dir in dirs {
            let Ok(dir) = cache.get(root, &rel_dir) else { continue };
            let top = rel_dir.components().count() == 1;
            match dir.stat(&name) {
                // Directly in a split directory, a directory is a bucket.
                Ok(st) if top && st.kind == FileKind::Directory => {}
                Ok(st) if st.kind == FileKind::Regular => found.push((part, rel_dir)),
                Ok(st) => {
                    m.others.push((rel_dir.join(&name), Some(st), format!("{}, in a wrong place", kind_note(st.kind))))
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => m.errors.push(e.to_string()),
            }
        }
    }
    found
}

/// Opens the mess file at `rel` (relative to the queue root) for reading,
/// without following a link.
pub fn open_mess(root: &Dir, rel: &Path) -> Result<std::fs::File, String> {
    root.open_regular_beneath(rel).map(|(f, _)| f).map_err(|e| e.to_string())
}
