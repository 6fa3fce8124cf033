//! `--list`: one entry per message, oldest first. This module owns the
//! selection of `--list` (the options qkillns has, and message numbers),
//! the order, and the two passes that keep memory bounded.
//!
//! The scan delivers messages by bucket, then number, not by age. So:
//! 1. a first pass scans the queue ([`qcommon::scan`]: stats only, and the
//!    envelopes when `--sender` or `--recipient` need them) and keeps, per
//!    selected message, its birth time and number (16 bytes; the vector
//!    may hold up to twice that while it grows), plus the number of each
//!    message with a file in a wrong place (8 bytes each, none in a
//!    healthy queue); the index is then sorted by (birth, number);
//! 2. a second pass reads each message again by its number, in that order
//!    ([`crate::message::read`], a rayon pool, a bounded window of
//!    messages ahead of the one printed), applies `--header`, and prints
//!    it. A message delivered between the passes is left out.
//!
//! Nothing else is held: a recipient list too large to hold is streamed
//! from its file as it is printed, and `--json` writes one object per
//! line as it goes.

use std::io::{self, Write};

use serde::Serialize;

use qcommon::envelope::is_double_bounce;
use qcommon::error::{escape_text, Escaped};
use qcommon::json::Bytes;
use qcommon::layout::LayoutOptions;
use qcommon::message::{self as model, birth_of};
use qcommon::queue::{Part, QueueShape};
use qcommon::safe_fs::{parse_number, Dir};
use qcommon::salvaged::Salvaged;
use qcommon::scan::{scan, ScanEvent, ScanOptions, ScannedMessage};
use qcommon::session::{Access, Session};
use qkillns::args::HeaderFilter;
use qkillns::select::{classify, Classified, Criteria, SenderRule};
use rayon::prelude::*;

use crate::clock::iso_utc;
use crate::exit::ExitCode;
use crate::message::{read, Dirs, Message, ReadOptions};

/// Which messages `--list` shows (all must match).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these numbers (sorted, each once); empty: every message.
    pub numbers: Vec<u64>,
    /// The sender matches (a message whose sender is lost or unknown does
    /// not).
    pub sender: Option<regex::bytes::Regex>,
    /// Some recipient matches (delivered or not).
    pub recipient: Option<regex::bytes::Regex>,
    /// Header filters.
    pub headers: Vec<HeaderFilter>,
    /// At least this old (seconds).
    pub older_than: Option<u64>,
    /// Younger than this (seconds).
    pub younger_than: Option<u64>,
}

impl Selection {
    fn age_ok(&self, birth: i64, now: i64) -> bool {
        let age = now.saturating_sub(birth);
        self.older_than.is_none_or(|min| age >= min as i64) && self.younger_than.is_none_or(|max| age < max as i64)
    }

    fn needs_envelope(&self) -> bool {
        self.sender.is_some() || self.recipient.is_some()
    }
}

/// How to list.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Which queue.
    pub layout: LayoutOptions,
    /// Which messages.
    pub selection: Selection,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Threads of the scan, and of the second pass (at most 16).
    pub threads: usize,
    /// Now, for ages.
    pub now: i64,
}

/// The birth time the first pass orders by: the model's rule
/// ([`qcommon::message::birth_order`]), 0 when no file has a time stamp.
fn scanned_birth(m: &ScannedMessage) -> i64 {
    birth_of(|p| m.has(p), |p| m.file(p).and_then(|f| f.stat).map(|s| s.mtime)).map_or(0, |b| b.time)
}

/// Whether a file of `m` sits in a wrong place (as `--detail` counts it).
fn misplaced(m: &ScannedMessage, shape: QueueShape) -> bool {
    !m.extra.is_empty() || m.all_files().any(|f| !shape.is_in_place(f.part, f.bucket, m.number))
}

/// Runs `--list`, printing to `out` and errors to `err`.
pub fn run(req: &ListRequest, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<ExitCode> {
    let fatal = |err: &mut dyn Write, e: &dyn std::fmt::Display| {
        let _ = writeln!(err, "qstat: {}", escape_text(&e.to_string()));
        Ok(ExitCode::Operational)
    };
    // Read only; the queue root is opened once.
    let session = match Session::open(&req.layout, Access::ReadOnly) {
        Ok(s) => s,
        Err(e) => return fatal(err, &e),
    };
    let (layout, root) = (session.layout(), session.root());
    let sl = layout.shape();
    let mut incomplete = false;
    let salvaged = match qcommon::salvaged::read_all(root) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                err,
                "qstat: warning: salvaged messages cannot be told from bounces: {}",
                escape_text(&e.to_string())
            );
            Salvaged::default()
        }
    };
    let sel = &req.selection;

    // First pass: the index.
    let mut index: Vec<Entry> = Vec::new();
    let mut wrong_place: Vec<u64> = Vec::new();
    let mut seen = vec![false; sel.numbers.len()];
    let mut stray_notes: Vec<(u64, String)> = Vec::new();
    let crit = Criteria {
        sender: SenderRule::Null { double: false },
        recipient: sel.recipient.clone(),
        older_than: None,
        younger_than: None,
        now: req.now,
    };
    // Without --sender or --recipient nothing is read and nothing stated by
    // the scan: the births are stated afterwards, one file per message.
    let envelopes = sel.needs_envelope();
    let opts =
        ScanOptions { threads: req.threads, stat: envelopes, read_envelopes: envelopes, ..ScanOptions::default() };
    let mut sink_dirs = Dirs::default();
    let scanned = scan(root, sl, &opts, &mut |ev| match ev {
        ScanEvent::Message(m) => {
            if !sel.numbers.is_empty() {
                match sel.numbers.binary_search(&m.number) {
                    Ok(i) => seen[i] = true,
                    Err(_) => return,
                }
            }
            let wrong = misplaced(&m, sl);
            if !envelopes {
                // A file in a wrong place is stated here (rare); the others
                // after the scan.
                if wrong {
                    wrong_place.push(m.number);
                    index.push(Entry::new(birth_in_place(root, &mut sink_dirs, &m), parts_of(&m), m.number));
                } else {
                    index.push(Entry::new(0, parts_of(&m) | PENDING, m.number));
                }
                return;
            }
            let birth = scanned_birth(&m);
            if !sel.age_ok(birth, req.now) {
                return;
            }
            // A message whose envelope cannot be read matches neither.
            let Classified::Message(mut v) = classify(&m) else { return };
            if let Some(re) = &sel.sender {
                let lost = model::Message::of(&m, salvaged.get(m.number)).sender_lost();
                if lost || !re.is_match(v.sender) {
                    return;
                }
            }
            if sel.recipient.is_some() && !crit.rest_matches_in(root, &mut v) {
                return;
            }
            if wrong {
                wrong_place.push(m.number);
            }
            index.push(Entry::new(birth, parts_of(&m), m.number));
        }
        ScanEvent::Stray(s) => {
            if sel.numbers.is_empty() {
                return;
            }
            let name = s.path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
            if let Some(n) = parse_number(&name) {
                if sel.numbers.binary_search(&n).is_ok() {
                    let what = format!("{}: {}", qcommon::error::escape_path(&s.path), s.why.describe());
                    stray_notes.push((n, what));
                }
            }
        }
        ScanEvent::Error(e) => {
            incomplete = true;
            let _ = writeln!(err, "qstat: {}", escape_text(&e.to_string()));
        }
    });
    if let Err(e) = scanned {
        return fatal(err, &e);
    }
    if !envelopes {
        state_births(root, &mut index, sl, req.threads.clamp(1, 16));
        index.retain(|e| e.parts() & GONE == 0 && sel.age_ok(e.birth(), req.now));
    }
    index.sort_unstable_by_key(|e| (e.birth(), e.number));
    wrong_place.sort_unstable();
    wrong_place.dedup();
    for (i, n) in sel.numbers.iter().enumerate() {
        if seen[i] {
            continue;
        }
        incomplete = true;
        let notes: Vec<&str> = stray_notes.iter().filter(|(k, _)| k == n).map(|(_, t)| t.as_str()).collect();
        if notes.is_empty() {
            let _ = writeln!(err, "qstat: no message {n} in the queue");
        } else {
            let _ = writeln!(
                err,
                "qstat: no message {n} in the queue, only entries that are not message files: {}",
                notes.join("; ")
            );
        }
    }

    // Second pass: read in order, print.
    let mut out = io::BufWriter::with_capacity(64 << 10, out);
    let ctx = Ctx { root, sl, salvaged: &salvaged, wrong_place: &wrong_place, headers: &sel.headers };
    let printed = second_pass(&ctx, &index, req.threads.clamp(1, 16), &mut |m| {
        for e in &m.errors {
            incomplete = true;
            let _ = writeln!(err, "qstat: {}", escape_text(e));
        }
        if req.json {
            write_json(&mut out, root, m)
        } else {
            write_text(&mut out, root, m)
        }
    });
    printed?;
    out.flush()?;
    Ok(if incomplete { ExitCode::Incomplete } else { ExitCode::Ok })
}

/// What the second pass's readers share.
struct Ctx<'a> {
    root: &'a Dir,
    sl: QueueShape,
    salvaged: &'a Salvaged,
    wrong_place: &'a [u64],
    headers: &'a [HeaderFilter],
}

impl Ctx<'_> {
    /// Reads message `n`; `None` when it is gone, or `--header` leaves it out.
    fn look(
        &self,
        n: u64,
        mask: u8,
        dirs: &mut Dirs,
        hdirs: &mut qkillns::headers::DirCache,
        buf: &mut Vec<u8>,
    ) -> Option<Message> {
        let misplaced = self.wrong_place.binary_search(&n).is_ok();
        let opts = ReadOptions {
            shape: self.sl,
            search_buckets: misplaced,
            misplaced,
            record: self.salvaged.get(n).copied(),
            parts: (!misplaced).then_some(mask),
        };
        let m = read(self.root, dirs, n, &opts, buf);
        if m.is_absent() {
            return None;
        }
        if !self.headers.is_empty() {
            let rel = m.file(Part::Mess)?.rel.clone();
            let raw = qkillns::headers::read_header(self.root, hdirs, &rel).ok()?;
            if !qkillns::headers::matches_all(&qkillns::headers::parse(&raw), self.headers) {
                return None;
            }
        }
        Some(m)
    }
}

/// Messages a reader takes at once.
const CHUNK: usize = 16;

/// Chunks read ahead of the one being printed, at most: with
/// [`HOLD_CAP`](crate::message::HOLD_CAP) per recipient list, a bound on
/// what the second pass holds.
const WINDOW_CHUNKS: usize = 32;

/// Reads the messages of `index` with `threads` readers (a rayon pool),
/// a chunk at a time, and calls `print` for each in order. The index is
/// read in batches of half the window: the readers read the next batch
/// while this thread prints the one before, so at most [`WINDOW_CHUNKS`]
/// chunks are held.
fn second_pass(
    ctx: &Ctx<'_>,
    index: &[Entry],
    threads: usize,
    print: &mut dyn FnMut(&Message) -> io::Result<()>,
) -> io::Result<()> {
    let pool = readers(threads);
    let batch = CHUNK * (WINDOW_CHUNKS / 2).max(1);
    let mut batches = index.chunks(batch);
    let read_batch = |entries: &[Entry]| pool.install(|| read_chunks(ctx, entries));
    let mut current = batches.next().map(read_batch);
    while let Some(msgs) = current.take() {
        let mut next = None;
        let following = batches.next();
        let printed = pool.in_place_scope(|s| {
            if let Some(entries) = following {
                s.spawn(|_| next = Some(read_chunks(ctx, entries)));
            }
            msgs.iter().flatten().try_for_each(&mut *print)
        });
        printed?;
        current = next;
    }
    Ok(())
}

/// A rayon pool of `threads` readers (the calling thread alone when it
/// cannot be built).
fn readers(threads: usize) -> rayon::ThreadPool {
    let build = |n: usize| rayon::ThreadPoolBuilder::new().num_threads(n).build();
    build(threads.max(1)).or_else(|_| build(1)).expect("a rayon pool of one thread")
}

/// Reads `entries` in chunks of [`CHUNK`] on the current rayon pool, in
/// order; `None` for a message gone or left out by `--header`.
fn read_chunks(ctx: &Ctx<'_>, entries: &[Entry]) -> Vec<Option<Message>> {
    let per_reader = || (Dirs::default(), qkillns::headers::DirCache::default(), Vec::new());
    let chunks: Vec<Vec<Option<Message>>> = entries
        .par_chunks(CHUNK)
        .map_init(per_reader, |(dirs, hdirs, buf), part| {
            let msgs = part.iter().map(|e| ctx.look(e.number, e.parts(), dirs, hdirs, buf)).collect();
            if buf.capacity() > 64 << 10 {
                *buf = Vec::new();
            }
            msgs
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// One message of the index: its birth time and the files the scan saw
/// packed in one word (the birth in the upper 56 bits, the files in the
/// lower 8), and its number: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    packed: i64,
    number: u64,
}

/// Births are kept within 56 bits (about a billion years either way).
const BIRTH_LIMIT: i64 = 1 << 55;

impl Entry {
    fn new(birth: i64, parts: u8, number: u64) -> Entry {
        let birth = birth.clamp(-BIRTH_LIMIT, BIRTH_LIMIT - 1);
        Entry { packed: (birth << 8) | i64::from(parts), number }
    }

    fn birth(&self) -> i64 {
        self.packed >> 8
    }

    fn parts(&self) -> u8 {
        (self.packed & 0xff) as u8
    }
}

/// The top bit of an entry's files byte (the seven files use the others):
/// before the births are stated, the birth is still to be stated
/// ([`PENDING`]); after, every file of the message was gone ([`GONE`]).
const PENDING: u8 = 0x80;
/// See [`PENDING`].
const GONE: u8 = PENDING;

/// The birth of a message the scan did not state, by the model's rule
/// ([`qcommon::message::birth_order`]), from its files where they
/// belong. `None` when all are gone.
fn stat_birth(root: &Dir, dirs: &mut Dirs, sl: QueueShape, n: u64, parts: u8) -> Option<i64> {
    let has = |p: Part| parts & (1 << p.index()) != 0;
    let name = qcommon::safe_fs::number_name(n);
    let mut gone = true;
    let birth = birth_of(has, |p| {
        let d = dirs.get(root, &sl.dir(p, n)).ok()?;
        match d.stat(&name) {
            Ok(st) => Some(st.mtime),
            Err(e) if e.is_not_found() => None,
            // Read again (and reported) by the second pass.
            Err(_) => {
                gone = false;
                None
            }
        }
    });
    match birth {
        Some(b) => Some(b.time),
        None if gone => None,
        None => Some(0),
    }
}

/// [`stat_birth`] for every pending entry, with `threads` threads (a
/// rayon pool) over runs of consecutive entries (so each keeps to a few
/// buckets).
fn state_births(root: &Dir, index: &mut [Entry], sl: QueueShape, threads: usize) {
    readers(threads).install(|| {
        index.par_chunks_mut(BIRTH_RUN).for_each_init(Dirs::default, |dirs, run| {
            for e in run.iter_mut().filter(|e| e.parts() & PENDING != 0) {
                let parts = e.parts() & !PENDING;
                *e = match stat_birth(root, dirs, sl, e.number, parts) {
                    Some(birth) => Entry::new(birth, parts, e.number),
                    None => Entry::new(0, parts | GONE, e.number),
                };
            }
        });
    });
}

/// Entries a birth-stating thread takes at once.
const BIRTH_RUN: usize = 256;

/// The birth of a message with a file in a wrong place, stated where the
/// scan found its files (see [`scanned_birth`]).
fn birth_in_place(root: &Dir, dirs: &mut Dirs, m: &ScannedMessage) -> i64 {
    let mtime = |p: Part| {
        let f = m.file(p)?;
        let rel = f.rel_path(m.number);
        let d = dirs.get(root, rel.parent()?).ok()?;
        d.stat(rel.file_name()?).ok().map(|s| s.mtime)
    };
    birth_of(|p| m.has(p), mtime).map_or(0, |b| b.time)
}

/// The files the scan saw of `m`, by bit [`Part::index`].
fn parts_of(m: &ScannedMessage) -> u8 {
    Part::ALL.iter().filter(|p| m.has(**p)).fold(0, |acc, p| acc | (1 << p.index()))
}

/// Writes `bytes` escaped as [`Escaped`] does; most addresses need no
/// escaping and are written as they are, without formatting.
fn write_escaped(w: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    if bytes.iter().all(|&b| (0x20..=0x7e).contains(&b) && b != b'\\') {
        w.write_all(bytes)
    } else {
        write!(w, "{}", Escaped(bytes))
    }
}

/// One recipient line: `INDENT CHANNEL STATE <ADDRESS>`.
fn write_recipient(w: &mut dyn Write, indent: &str, channel: &str, state: &str, a: &[u8]) -> io::Result<()> {
    w.write_all(indent.as_bytes())?;
    w.write_all(channel.as_bytes())?;
    w.write_all(b" ")?;
    w.write_all(state.as_bytes())?;
    w.write_all(b" <")?;
    write_escaped(w, a)?;
    w.write_all(b">\n")
}

/// How a sender is written in text: `<address>`, `<>` for the null
/// sender, `(lost)` for a message qfixq salvaged, `?` when unknown.
pub fn sender_text(m: &model::Message<'_>) -> String {
    match m.sender {
        _ if m.sender_lost() => "(lost)".to_string(),
        Some(a) => format!("<{}>", Escaped(a)),
        None => "?".to_string(),
    }
}

/// The kind of sender, a word for JSON.
pub fn sender_kind(m: &model::Message<'_>) -> &'static str {
    match m.sender {
        _ if m.sender_lost() => "lost",
        Some([]) => "null",
        Some(a) if is_double_bounce(a) => "double-bounce",
        Some(_) => "address",
        None => "unknown",
    }
}

/// Writes the recipient lines of `m` (`  CHANNEL STATE <address>`).
pub fn write_recipients(w: &mut dyn Write, root: &Dir, m: &model::Message<'_>, indent: &str) -> io::Result<()> {
    let mut res = Ok(());
    for l in &m.lists {
        let r = l.for_each(root, |a, done| {
            let state = if done { "done" } else { "pending" };
            res = write_recipient(w, indent, l.channel.name(), state, a);
            res.is_ok()
        });
        res.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        if let Err(e) = r {
            writeln!(w, "{indent}error: {}", escape_text(&e.to_string()))?;
        }
    }
    res
}

/// One entry of the text listing:
///
/// ```text
/// BIRTH NUMBER SIZE STAGE SENDER
///   CHANNEL STATE <RECIPIENT>        (each recipient)
///   damaged: REASON, REASON          (when damaged)
///   note: TEXT                       (why an envelope is unusable)
/// ```
pub fn write_text(w: &mut dyn Write, root: &Dir, m: &Message) -> io::Result<()> {
    let model = m.model();
    let size = m.size().map_or("-".to_string(), |s| s.to_string());
    let birth = model.birth.map_or(0, |b| b.time);
    writeln!(w, "{} {} {size} {} {}", iso_utc(birth), m.number, model.stage.name(), sender_text(&model))?;
    write_recipients(w, root, &model, "  ")?;
    if !m.damage.is_empty() {
        writeln!(w, "  damaged: {}", m.damage.join(", "))?;
    }
    for n in &m.notes {
        writeln!(w, "  note: {}", escape_text(n))?;
    }
    for (p, _, what) in &m.others {
        writeln!(w, "  note: {}: {what}", qcommon::error::escape_path(p))?;
    }
    for e in &m.errors {
        writeln!(w, "  error: {}", escape_text(e))?;
    }
    Ok(())
}

/// The members of a message before its recipients (docs/json.md), in
/// the order the document gives them.
#[derive(Serialize)]
struct HeadJson<'a> {
    number: u64,
    birth: String,
    birth_unix: i64,
    birth_basis: &'static str,
    bucket: u32,
    size: Option<u64>,
    stage: &'static str,
    sender: Option<Bytes<'a>>,
    sender_kind: String,
    bounce_file: bool,
    damaged: Vec<String>,
    damage: Vec<String>,
    notes: Vec<String>,
    errors: &'a [String],
}

/// One recipient of `"recipients"`.
#[derive(Serialize)]
struct RecipientJson<'a> {
    channel: &'static str,
    done: bool,
    address: Bytes<'a>,
}

/// The fields of `m` before its recipients, as JSON members (without
/// braces).
pub fn json_head(m: &Message) -> String {
    let model = m.model();
    let birth = model.birth.map_or(0, |b| b.time);
    let head = HeadJson {
        number: m.number,
        birth: iso_utc(birth),
        birth_unix: birth,
        birth_basis: model.birth.map_or("none", |b| b.basis.code()),
        bucket: m.bucket,
        size: m.size(),
        stage: model.stage.name(),
        sender: model.sender.filter(|_| !model.sender_lost()).map(Bytes),
        sender_kind: sender_kind(&model).replace('-', "_"),
        bounce_file: m.file(Part::Bounce).is_some(),
        damaged: m.damage.iter().map(|d| d.to_string()).collect(),
        damage: m.damage.iter().map(|d| crate::detail::reason::code(d).to_string()).collect(),
        notes: m
            .notes
            .iter()
            .cloned()
            .chain(m.others.iter().map(|(p, _, w)| format!("{}: {w}", p.display())))
            .collect(),
        errors: &m.errors,
    };
    let object = qcommon::json::to_string(&head);
    object[1..object.len() - 1].to_string()
}

/// Writes the `"recipients":[...]` member, streaming a large list: one
/// recipient is serialized at a time.
pub fn json_recipients(w: &mut dyn Write, root: &Dir, m: &Message) -> io::Result<()> {
    w.write_all(b"\"recipients\":[")?;
    let mut first = true;
    let mut res = Ok(());
    let mut errors = Vec::new();
    let model = m.model();
    for l in &model.lists {
        let r = l.for_each(root, |a, done| {
            res = (if first { Ok(()) } else { w.write_all(b",") }).and_then(|()| {
                qcommon::json::write(&mut *w, &RecipientJson { channel: l.channel.name(), done, address: Bytes(a) })
            });
            first = false;
            res.is_ok()
        });
        res.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        if let Err(e) = r {
            errors.push(e.to_string());
        }
    }
    w.write_all(b"]")?;
    if !errors.is_empty() {
        w.write_all(b",\"recipient_errors\":")?;
        qcommon::json::write(&mut *w, &errors)?;
    }
    Ok(())
}

/// One line of `--list --json`: one object per message, each a document
/// of its own (docs/json.md).
pub fn write_json(w: &mut dyn Write, root: &Dir, m: &Message) -> io::Result<()> {
    write!(w, "{{\"schema_version\":{},", qcommon::json::SCHEMA_VERSION)?;
    w.write_all(json_head(m).as_bytes())?;
    w.write_all(b",")?;
    json_recipients(w, root, m)?;
    w.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_birth_and_files_in_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        for birth in [0, 1, -1, 1_700_000_000, -86_400 * 365, BIRTH_LIMIT - 1, -BIRTH_LIMIT] {
            for parts in [0u8, 1, 0x55, 0x7f, 0xff] {
                let e = Entry::new(birth, parts, 42);
                assert_eq!((e.birth(), e.parts(), e.number), (birth, parts, 42));
            }
        }
        assert_eq!(Entry::new(i64::MAX, 3, 1).birth(), BIRTH_LIMIT - 1);
        assert_eq!(Entry::new(i64::MIN, 3, 1).birth(), -BIRTH_LIMIT);
        // The files never change the order.
        let mut v = [Entry::new(5, 0xff, 9), Entry::new(5, 0, 10), Entry::new(4, 0x7f, 11)];
        v.sort_unstable_by_key(|e| (e.birth(), e.number));
        assert_eq!(v.iter().map(|e| e.number).collect::<Vec<_>>(), [11, 9, 10]);
    }
}
