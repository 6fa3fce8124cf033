//! Examining one message: the no-follow stat of each of its files and the
//! reading and parsing of its envelopes (todo, intd, info, local, remote).
//! A file whose contents are read gets its stat from the open descriptor:
//! one path lookup per file. A sifted scan reads the envelope that gives
//! the sender first and goes on only for the messages its sift takes; a
//! verifying pass may stat a message's mess file alone.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::bucket::{in_ctx, BucketCtx};
use super::{Found, Parsed, ReadProblem, ScanOptions, ScannedMessage, Sift, ENVELOPE_CAP, INFO_CAP};
use crate::envelope::{
    EnvelopeError, Info, ListCheck, ListEnvelope, Recipients, Todo, TodoCheck, TodoEnvelope, STREAM_BUFFER,
};
use crate::error::Error;
use crate::queue::Part;
use crate::safe_fs::Dir;

/// Largest read buffer a worker keeps between messages.
const KEPT_BUFFER: usize = 64 << 10;

/// Directories a worker keeps open at most, outside the bucket in hand
/// (fewer under a low descriptor limit: [`crate::descriptors`]).
const KEPT_DIRS: usize = 64;

/// A worker's own state: directories of other buckets it opened (for
/// misplaced files) and its read buffer.
pub(super) struct Worker {
    cache: HashMap<PathBuf, Option<Dir>>,
    /// How many entries `cache` may hold.
    kept_dirs: usize,
    buf: Vec<u8>,
}

impl Worker {
    /// A worker's state, for a scan of at most `threads` workers: their
    /// caches share a quarter of the descriptor limit.
    pub fn new(threads: usize) -> Worker {
        Worker {
            cache: HashMap::new(),
            kept_dirs: crate::descriptors::share(threads, 4, KEPT_DIRS),
            buf: Vec::with_capacity(4096),
        }
    }
}

/// One message under examination, with what it needs to reach its files.
struct Examining<'a> {
    root: &'a Dir,
    ctx: &'a BucketCtx,
    cache: &'a mut HashMap<PathBuf, Option<Dir>>,
    kept_dirs: usize,
    name: &'a OsStr,
    keep_stat: bool,
}

/// A read envelope: in the worker's buffer, or (a todo, intd, local or
/// remote over the cap) left open for one streaming pass.
enum Got {
    InBuf,
    Large(std::fs::File, PathBuf),
}

/// Stats and reads the files of `msg` as `opts` asks; with a `sift`, the
/// envelope that gives the sender first, and the rest only when the sift
/// takes the message.
pub(super) fn examine(
    root: &Dir,
    ctx: &BucketCtx,
    worker: &mut Worker,
    msg: &mut ScannedMessage,
    opts: &ScanOptions,
    sift: Option<&Sift<'_>>,
) {
    let mut digits = NumberName::default();
    let name = digits.of(msg.number);
    let mut at =
        Examining { root, ctx, cache: &mut worker.cache, kept_dirs: worker.kept_dirs, name, keep_stat: opts.stat };
    let whole = match sift {
        Some(sift) if opts.read_envelopes => {
            read_sender(&mut at, msg, &mut worker.buf);
            sift(msg)
        }
        _ => true,
    };
    if whole {
        if opts.stat {
            stat_files(&mut at, msg, opts.read_envelopes);
        }
        if opts.read_envelopes {
            read_envelopes(&mut at, msg, &mut worker.buf);
        }
    }
    // A flood's huge recipient list must not stay resident in every worker.
    if worker.buf.capacity() > KEPT_BUFFER {
        worker.buf = Vec::with_capacity(KEPT_BUFFER);
    }
}

/// Stats the mess file of `msg` alone (a vanished one empties its slot);
/// its other files stay as the listing found them.
pub(super) fn stat_mess(root: &Dir, ctx: &BucketCtx, worker: &mut Worker, msg: &mut ScannedMessage) {
    let mut digits = NumberName::default();
    let name = digits.of(msg.number);
    let mut at = Examining { root, ctx, cache: &mut worker.cache, kept_dirs: worker.kept_dirs, name, keep_stat: true };
    at.stat_into(&mut msg.files[Part::Mess.index()], &mut msg.io_errors);
}

/// Reads the envelope that gives the sender, in qmail-send's order
/// ([`crate::message::Source`]): todo, else info, else intd. A file that
/// vanished since the listing empties its slot and the next one is read,
/// as the whole examination would find it.
fn read_sender(at: &mut Examining<'_>, msg: &mut ScannedMessage, buf: &mut Vec<u8>) {
    if msg.has(Part::Todo) {
        msg.todo = at.read(Part::Todo, ENVELOPE_CAP, msg, buf).map(|r| parse_todo(r, buf));
        if msg.has(Part::Todo) {
            return;
        }
    }
    if msg.has(Part::Info) {
        msg.info = read_info(at, msg, buf);
        if msg.has(Part::Info) {
            return;
        }
    }
    msg.intd = at.read(Part::Intd, ENVELOPE_CAP, msg, buf).map(|r| parse_todo(r, buf));
}

/// Stats the files that are not read (those read get their stat then),
/// and every extra copy; a vanished copy is dropped.
fn stat_files(at: &mut Examining<'_>, msg: &mut ScannedMessage, reads: bool) {
    for i in 0..msg.files.len() {
        let Some(f) = msg.files[i].as_ref() else { continue };
        if reads && matches!(f.part, Part::Todo | Part::Intd | Part::Info | Part::Local | Part::Remote) {
            continue;
        }
        at.stat_into(&mut msg.files[i], &mut msg.io_errors);
    }
    let mut extra = std::mem::take(&mut msg.extra);
    let name = at.name;
    extra.retain_mut(|f| {
        let Some(d) = at.dir_for(f) else { return false };
        match d.stat(name) {
            Ok(st) => {
                f.stat = Some(st);
                true
            }
            Err(e) if e.is_not_found() => false,
            Err(e) => {
                msg.io_errors.push(e);
                true
            }
        }
    });
    msg.extra = extra;
}

/// Reads and parses todo, intd (when it is not todo's inode), info, local
/// and remote: those not read already (a sifted scan's sender envelope).
fn read_envelopes(at: &mut Examining<'_>, msg: &mut ScannedMessage, buf: &mut Vec<u8>) {
    if msg.todo.is_none() {
        msg.todo = at.read(Part::Todo, ENVELOPE_CAP, msg, buf).map(|r| parse_todo(r, buf));
    }
    if msg.intd.is_none() {
        read_intd(at, msg, buf);
    }
    if msg.info.is_none() {
        msg.info = read_info(at, msg, buf);
    }
    msg.local = at.read(Part::Local, ENVELOPE_CAP, msg, buf).map(|r| parse_recipients(r, buf));
    msg.remote = at.read(Part::Remote, ENVELOPE_CAP, msg, buf).map(|r| parse_recipients(r, buf));
}

fn read_info(at: &mut Examining<'_>, msg: &mut ScannedMessage, buf: &mut Vec<u8>) -> Option<Parsed<Info>> {
    at.read(Part::Info, INFO_CAP, msg, buf).map(|r| r.and_then(|_| Info::parse(buf).map_err(ReadProblem::Bad)))
}

/// intd is usually the same inode as todo: then it is stated, not read.
fn read_intd(at: &mut Examining<'_>, msg: &mut ScannedMessage, buf: &mut Vec<u8>) {
    let todo_ino = msg.file(Part::Todo).map(|t| t.stat.map_or(t.ino, |s| s.ino));
    let Some(intd) = msg.file(Part::Intd) else { return };
    if todo_ino == Some(intd.ino) {
        if at.keep_stat {
            at.stat_into(&mut msg.files[Part::Intd.index()], &mut msg.io_errors);
        }
        let still_same = match (msg.file(Part::Todo), msg.file(Part::Intd)) {
            (Some(t), Some(i)) => t.inode() == i.inode(),
            _ => false,
        };
        if still_same || !msg.has(Part::Intd) {
            return;
        }
    }
    msg.intd = at.read(Part::Intd, ENVELOPE_CAP, msg, buf).map(|r| parse_todo(r, buf));
}

fn parse_todo(r: Parsed<Got>, buf: &[u8]) -> Parsed<TodoEnvelope> {
    match r? {
        Got::InBuf => Todo::parse(buf).map(TodoEnvelope::Whole).map_err(ReadProblem::Bad),
        Got::Large(file, path) => {
            let mut c = TodoCheck::new();
            stream(file, &path, &mut |p| {
                c.feed(p);
                !c.failed()
            })?;
            c.finish().map(TodoEnvelope::Large).map_err(ReadProblem::Bad)
        }
    }
}

fn parse_recipients(r: Parsed<Got>, buf: &[u8]) -> Parsed<ListEnvelope> {
    match r? {
        Got::InBuf => Recipients::parse_salvaging(buf).map(ListEnvelope::Whole).map_err(ReadProblem::Bad),
        Got::Large(file, path) => {
            let mut c = ListCheck::new();
            stream(file, &path, &mut |p| {
                c.feed(p);
                !c.failed()
            })?;
            c.finish().map(ListEnvelope::Large).map_err(ReadProblem::Bad)
        }
    }
}

impl Examining<'_> {
    /// Reads `part` into `buf` (the parsers copy out what they keep); one
    /// over `cap` is left open as `Large`, except info, which is then bad.
    /// `None`: no such file (or it vanished, which empties its slot).
    fn read(&mut self, part: Part, cap: usize, msg: &mut ScannedMessage, buf: &mut Vec<u8>) -> Option<Parsed<Got>> {
        let (name, keep_stat) = (self.name, self.keep_stat);
        let f = msg.files[part.index()].as_ref()?;
        let Some(d) = self.dir_for(f) else {
            msg.files[part.index()] = None;
            return None;
        };
        let mut got = d.read_file_into(name, cap, buf).map(|(stat, truncated)| (stat, truncated, None));
        if matches!(got, Ok((_, true, _))) && part != Part::Info {
            buf.clear();
            got = d.open_regular(name).map(|(file, stat)| (stat, true, Some(file)));
        }
        match got {
            Ok((stat, truncated, file)) => {
                let path = file.as_ref().map(|_| d.child_path(name));
                if keep_stat {
                    if let Some(slot) = msg.files[part.index()].as_mut() {
                        slot.stat = Some(stat);
                    }
                }
                match (truncated, file, path) {
                    (_, Some(file), Some(path)) => Some(Ok(Got::Large(file, path))),
                    (true, _, _) => Some(Err(ReadProblem::Bad(EnvelopeError::TooLarge { cap }))),
                    (false, _, _) => Some(Ok(Got::InBuf)),
                }
            }
            Err(e) if e.is_not_found() => {
                msg.files[part.index()] = None;
                None
            }
            // Reported once, as the envelope's problem.
            Err(e) => Some(Err(ReadProblem::Io(e))),
        }
    }

    /// A no-follow stat of one file into its slot; a vanished file empties
    /// the slot.
    fn stat_into(&mut self, slot: &mut Option<Found>, errors: &mut Vec<Error>) {
        let name = self.name;
        let Some(f) = slot.as_mut() else { return };
        let Some(d) = self.dir_for(f) else {
            *slot = None;
            return;
        };
        match d.stat(name) {
            Ok(st) => f.stat = Some(st),
            Err(e) if e.is_not_found() => *slot = None,
            Err(e) => errors.push(e),
        }
    }

    /// The directory `f` sits in: the bucket's, or one opened (and kept)
    /// for a file in another bucket. `None` when it cannot be opened.
    fn dir_for(&mut self, f: &Found) -> Option<&Dir> {
        if let Some(d) = in_ctx(self.ctx, f) {
            return Some(d);
        }
        let mut rel = PathBuf::from(f.part.dir());
        if let Some(b) = f.bucket {
            rel.push(b.to_string());
        }
        if self.cache.len() > self.kept_dirs {
            self.cache.clear();
        }
        let root = self.root;
        let entry = self.cache.entry(rel).or_insert_with(|| {
            let mut d = root.open_dir(OsStr::new(f.part.dir())).ok()?;
            if let Some(b) = f.bucket {
                d = d.open_dir(OsStr::new(&b.to_string())).ok()?;
            }
            Some(d)
        });
        entry.as_ref()
    }
}

/// Reads an open envelope to its end through a fixed buffer.
/// `feed` returns false when it needs no more.
fn stream(mut file: std::fs::File, path: &Path, feed: &mut dyn FnMut(&[u8]) -> bool) -> Parsed<()> {
    use std::io::Read;
    let mut chunk = vec![0u8; STREAM_BUFFER];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !feed(&chunk[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadProblem::Io(Error::sys("read", path, crate::safe_fs::io_errno(&e)))),
        }
    }
}

/// A message number as a file name, formatted on the stack.
#[derive(Default)]
pub(super) struct NumberName {
    digits: [u8; 20],
}

impl NumberName {
    pub fn of(&mut self, mut n: u64) -> &OsStr {
        let mut i = self.digits.len();
        loop {
            i -= 1;
            self.digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        OsStr::from_bytes(&self.digits[i..])
    }
}
