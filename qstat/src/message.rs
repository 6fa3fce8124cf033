//! One message, read by its number: this module owns reading the files of
//! message N where the queue's shape puts them ([`QueueShape::path`]:
//! `mess/B/N`, `todo/N`, ...), for `--list` (after the index put the
//! messages in order) and `--show`. What the message is (stage, sender,
//! recipients, birth time, size, salvaged, damage) is read from those
//! files by [`qcommon::message`], as every tool reads it.
//!
//! Every file is opened from the queue's own directory handles without
//! following a link and without changing an access time; an entry that is
//! not a regular file is named, never opened for reading. The envelopes
//! are read up to [`HOLD_CAP`]; a larger one is checked by one streaming
//! pass and not held: its recipients are streamed again from its file
//! when they are printed, so memory stays bounded whatever its size.
//!
//! The damage reasons are those of `--detail` ([`crate::detail::reason`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use qcommon::envelope::{
    EnvelopeError, Info, ListCheck, ListEnvelope, Recipients as List, Todo, TodoCheck, TodoEnvelope,
};
use qcommon::message::{self as model, Damage};
use qcommon::queue::{Part, QueueShape};
use qcommon::safe_fs::{io_errno, number_name, Dir, FileKind, Stat};
use qcommon::salvaged::Record;
use qcommon::scan::{Found, Parsed, ReadProblem, ScannedMessage, INFO_CAP};
use qcommon::Error;

use crate::detail::reason;

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
#[derive(Debug)]
pub struct Message {
    /// Its number.
    pub number: u64,
    /// The bucket of its split files.
    pub bucket: u32,
    /// Its files, by [`Part::index`], regular files only: the one in its
    /// right place, else a copy found elsewhere.
    pub files: [Option<FileAt>; 7],
    /// Other files with its name: misplaced copies (`--show` looks for
    /// them; `--list` knows them from the scan), and entries that are not
    /// regular files (with what they are), never opened.
    pub others: Vec<(PathBuf, Option<Stat>, String)>,
    /// What was read, as the scan would have given it: the model reads it.
    pub scanned: ScannedMessage,
    /// qfixq's salvage record of the message number, if any.
    pub record: Option<Record>,
    /// Damage reasons (sorted, each once).
    pub damage: Vec<&'static str>,
    /// Why an envelope could not be used (unescaped: escape before
    /// printing).
    pub notes: Vec<String>,
    /// Files that could not be read (unescaped: escape before printing).
    pub errors: Vec<String>,
}

impl Message {
    /// The message as every tool reads it.
    pub fn model(&self) -> model::Message<'_> {
        model::Message::of(&self.scanned, self.record.as_ref())
    }

    /// The file of `part`, where it was read.
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
    /// The queue's shape.
    pub shape: QueueShape,
    /// Look for copies of the name in every other bucket too (`--show`;
    /// costs a stat per bucket and part).
    pub search_buckets: bool,
    /// The scan saw files of the message in a wrong place (`--list`).
    pub misplaced: bool,
    /// qfixq's salvage record of the number (lost+found/salvaged), if any.
    pub record: Option<Record>,
    /// The files the scan saw, by bit [`Part::index`]: only those are
    /// looked at, unless one of them is gone (then every file is, as
    /// qmail-send may have moved the message on meanwhile). `None`: all.
    pub parts: Option<u8>,
}

/// The largest recipient list held in memory between reading and
/// printing; a larger one is read again from its file as it is printed.
pub const HOLD_CAP: usize = 8 << 10;

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

/// Reads the envelope `name` in `dir`, too large to hold, to its end
/// through a fixed buffer, for a streaming check (`feed` returns false
/// when it needs no more).
fn stream(dir: &Dir, name: &OsStr, feed: &mut dyn FnMut(&[u8]) -> bool) -> Parsed<()> {
    let (mut file, _) = dir.open_regular(name).map_err(ReadProblem::Io)?;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(k) => {
                if !feed(&chunk[..k]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadProblem::Io(Error::sys("read", dir.child_path(name), io_errno(&e)))),
        }
    }
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
    let shape = opts.shape;
    let mut m = Message {
        number: n,
        bucket: shape.bucket(n),
        files: Default::default(),
        others: Vec::new(),
        scanned: ScannedMessage { number: n, ..ScannedMessage::default() },
        record: opts.record,
        damage: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
    };
    let name = number_name(n);
    let mut not_regular = false;
    // Copies elsewhere: read when the right place has none.
    let elsewhere = if opts.search_buckets { search(root, cache, &mut m, shape) } else { Vec::new() };
    let mut errors: Vec<Error> = std::mem::take(&mut m.scanned.io_errors);
    for part in Part::ALL {
        if mask & (1 << part.index()) == 0 {
            continue;
        }
        let mut places = vec![(shape.bucket_for(part, n), false)];
        places.extend(elsewhere.iter().filter(|(p, _)| *p == part).map(|(_, b)| (*b, true)));
        let mut used = false;
        for (bucket, wrong) in places {
            let rel_dir = qcommon::queue::part_dir_at(part, bucket);
            let rel = rel_dir.join(&name);
            if used {
                let st = cache.get(root, &rel_dir).ok().and_then(|d| d.stat(&name).ok());
                if let Some(st) = st {
                    m.scanned.extra.push(Found { part, bucket, ino: st.ino, stat: Some(st) });
                }
                m.others.push((rel, st, "another copy, in a wrong place (qfixq live sets it aside)".to_string()));
                continue;
            }
            let dir = match cache.get(root, &rel_dir) {
                Ok(d) => d,
                Err(e) if e.is_not_found() || e.errno() == Some(Errno::ENOTDIR) || e.errno() == Some(Errno::ELOOP) => {
                    continue
                }
                Err(e) => {
                    errors.push(e);
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
                    m.scanned.files[part.index()] = Some(Found { part, bucket, ino: stat.ino, stat: Some(stat) });
                }
                Got::Other(stat, note) => {
                    m.others.push((rel, stat, note));
                    not_regular = true;
                    continue;
                }
                Got::Error(e) => {
                    errors.push(e);
                    continue;
                }
            }
            let sc = &mut m.scanned;
            match part {
                Part::Todo | Part::Intd => {
                    let parsed = if large {
                        let mut c = TodoCheck::new();
                        stream(dir, &name, &mut |p| {
                            c.feed(p);
                            !c.failed()
                        })
                        .and_then(|()| c.finish().map(TodoEnvelope::Large).map_err(ReadProblem::Bad))
                    } else {
                        Todo::parse(buf).map(TodoEnvelope::Whole).map_err(ReadProblem::Bad)
                    };
                    if part == Part::Todo {
                        sc.todo = Some(parsed);
                    } else {
                        sc.intd = Some(parsed);
                    }
                }
                Part::Info => {
                    sc.info = Some(if large {
                        Err(ReadProblem::Bad(EnvelopeError::TooLarge { cap: INFO_CAP }))
                    } else {
                        Info::parse(buf).map_err(ReadProblem::Bad)
                    })
                }
                Part::Local | Part::Remote => {
                    let parsed = if large {
                        let mut c = ListCheck::new();
                        stream(dir, &name, &mut |p| {
                            c.feed(p);
                            !c.failed()
                        })
                        .and_then(|()| c.finish().map(ListEnvelope::Large).map_err(ReadProblem::Bad))
                    } else {
                        List::parse_salvaging(buf).map(ListEnvelope::Whole).map_err(ReadProblem::Bad)
                    };
                    if part == Part::Local {
                        sc.local = Some(parsed);
                    } else {
                        sc.remote = Some(parsed);
                    }
                }
                _ => {}
            }
        }
    }
    m.errors = errors.iter().map(ToString::to_string).collect();
    m.scanned.io_errors = errors;

    // What the model makes of it.
    let model = m.model();
    let mut damage: Vec<&'static str> = model
        .damage(shape)
        .into_iter()
        // Entries that are not regular files only: no message files, so no
        // mess is missing.
        .filter(|d| *d != Damage::NoMess || m.files.iter().any(Option::is_some))
        .map(Damage::words)
        .collect();
    let notes: Vec<String> = model.problems.iter().filter(|p| !p.is_io()).map(ToString::to_string).collect();
    drop(model);
    if opts.misplaced {
        damage.push(reason::MISPLACED);
    }
    if not_regular {
        damage.push(NOT_REGULAR);
    }
    damage.sort_unstable();
    damage.dedup();
    m.damage = damage;
    m.notes = notes;
    (m, vanished)
}

/// Damage reason: an entry with the message's name that is not a regular
/// file (a link, a FIFO, a directory).
pub const NOT_REGULAR: &str = "not a regular file";

/// Looks for the message's name in every bucket of every split directory
/// (and directly in a split directory, or in buckets of an unsplit one):
/// the regular files found in a wrong place, by part (the directory,
/// relative to the root). Other entries go to `m.others`.
fn search(root: &Dir, cache: &mut Dirs, m: &mut Message, shape: QueueShape) -> Vec<(Part, Option<u32>)> {
    let name = number_name(m.number);
    let split = shape.split.max(1);
    let mut found = Vec::new();
    for part in Part::ALL {
        let mut places: Vec<Option<u32>> = Vec::new();
        if shape.is_split(part) {
            places.push(None);
            places.extend((0..split).filter(|&b| b != m.bucket).map(Some));
        } else {
            places.extend((0..split).map(Some));
        }
        for bucket in places {
            let rel_dir = qcommon::queue::part_dir_at(part, bucket);
            let Ok(dir) = cache.get(root, &rel_dir) else { continue };
            match dir.stat(&name) {
                // Directly in a split directory, a directory is a bucket.
                Ok(st) if bucket.is_none() && st.kind == FileKind::Directory => {}
                Ok(st) if st.kind == FileKind::Regular => found.push((part, bucket)),
                Ok(st) => {
                    m.others.push((rel_dir.join(&name), Some(st), format!("{}, in a wrong place", kind_note(st.kind))))
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => m.scanned.io_errors.push(e),
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
