//! The message model: what one scanned message is, read the same way by
//! every tool. From a [`ScannedMessage`] (and the salvage records of
//! [`crate::salvaged`]) this module owns:
//!
//! - its [`Stage`], the state of docs/queue-format.md ("The life of a
//!   message") that its files put it in, or damaged when they fit none;
//! - where its envelope comes from ([`Source`]), its sender, and its
//!   recipients with done/undone, a list too large to hold named by its
//!   file and streamed from it ([`RecipientList::for_each`]): an envelope
//!   over [`crate::envelope::WHOLE_CAP`] is never held, so memory stays
//!   bounded whatever a flood puts in one envelope;
//! - its birth time, by one rule ([`birth_order`]);
//! - the size of its mess file;
//! - whether qfixq salvaged it (its sender was lost, qfixq wrote the null
//!   sender);
//! - what is wrong with it ([`Damage`]), and the envelope files that could
//!   not be used ([`Problem`]).
//!
//! # The birth rule
//!
//! qmail-send takes a message's birth time from one place only: the
//! modification time of its info file (`getinfo` in qmail-send.c: an
//! `fstat` of `info/B/N`, `st_mtime`). It ages the message by it (a
//! message is bounced once now > birth + queuelifetime) and computes its
//! retry times from it; qmail-qread shows it as the message's date.
//! qmail-send creates info when it preprocesses the message, so that is
//! the birth (docs/queue-format.md, "The files of message N", info).
//!
//! Before preprocessing there is no birth yet: an info beside a todo is
//! left by a crash in an earlier attempt and is written anew (its time
//! stamp is not the birth). The earliest trace of the message is then its
//! mess file, which qmail-queue writes first: its mtime is when the mail
//! entered the queue, and the birth qmail-send gives it will not be
//! earlier.
//!
//! So: a message whose envelope is info (info and no todo) is born at
//! info's mtime; any other at mess's mtime. A message without the time
//! stamp its rule asks for (a damaged one, or a file that could not be
//! stated) takes the first other of mess, todo, intd, info that has one,
//! and says which ([`Basis`]).

use std::path::PathBuf;

use crate::envelope::{self, read_records, EnvelopeError, ListEnvelope, TodoEnvelope};
use crate::error::{Error, Result};
use crate::queue::{part_path_at, Part, QueueShape};
use crate::safe_fs::Dir;
use crate::salvaged::Record;
use crate::scan::{Parsed, ReadProblem, ScannedMessage};

/// Where a message is in qmail's life, by which of its files exist
/// (docs/queue-format.md, "The life of a message").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// S5, preprocessed: mess and info, no todo, no intd (local, remote
    /// and bounce as delivery goes).
    Preprocessed,
    /// S4, queued, not yet preprocessed: mess and todo, no bounce (intd,
    /// and an info, local or remote of a crashed preprocessing, may be
    /// there).
    Unpreprocessed,
    /// S3, being queued: mess and intd only. qmail-queue is writing the
    /// envelope, or died doing so: qmail has not accepted the message.
    BeingQueued,
    /// S2, mess only: what a qmail-queue that died before its envelope, or
    /// the end of a delivery, leaves. qmail-send removes it after 36 hours.
    Leftovers,
    /// No state of the table: files without a mess, a bounce beside a
    /// todo, an intd beside an info, a local, remote or bounce without
    /// info or todo (an info lost: qfixq salvages such a message).
    Damaged,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 5] =
        [Stage::Preprocessed, Stage::Unpreprocessed, Stage::BeingQueued, Stage::Leftovers, Stage::Damaged];

    /// The stage's one word, the same in every tool's output (listings
    /// and JSON): a stable snake_case code.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Preprocessed => "preprocessed",
            Stage::Unpreprocessed => "unpreprocessed",
            Stage::BeingQueued => "being_queued",
            Stage::Leftovers => "leftovers",
            Stage::Damaged => "damaged",
        }
    }

    /// The state of docs/queue-format.md's table, in its words.
    pub fn state(self) -> &'static str {
        match self {
            Stage::Preprocessed => "S5: preprocessed",
            Stage::Unpreprocessed => "S4: queued, not yet preprocessed",
            Stage::BeingQueued => "S3: being queued",
            Stage::Leftovers => "S2: mess only",
            Stage::Damaged => "none of the states",
        }
    }

    /// The stage of a message with the files `has` says (wherever they
    /// sit).
    pub fn of(has: impl Fn(Part) -> bool) -> Stage {
        let lists = has(Part::Local) || has(Part::Remote);
        if !has(Part::Mess) {
            Stage::Damaged
        } else if has(Part::Todo) {
            if has(Part::Bounce) {
                Stage::Damaged
            } else {
                Stage::Unpreprocessed
            }
        } else if has(Part::Info) {
            if has(Part::Intd) {
                Stage::Damaged
            } else {
                Stage::Preprocessed
            }
        } else if lists || has(Part::Bounce) {
            Stage::Damaged
        } else if has(Part::Intd) {
            Stage::BeingQueued
        } else {
            Stage::Leftovers
        }
    }
}

/// The file the envelope (sender and recipients) comes from, in
/// qmail-send's order: todo while it exists (any info beside it is
/// rewritten from it), else info with local and remote, else an intd
/// (the envelope qmail-queue is writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `todo`: sender and recipients from its `F` and `T` records.
    Todo,
    /// `info` (no todo): sender from info, recipients from local and remote.
    Info,
    /// `intd` (no todo, no info): its records, when it parses.
    Intd,
}

impl Source {
    /// The source of a message with the files `has` says.
    pub fn of(has: impl Fn(Part) -> bool) -> Option<Source> {
        if has(Part::Todo) {
            Some(Source::Todo)
        } else if has(Part::Info) {
            Some(Source::Info)
        } else if has(Part::Intd) {
            Some(Source::Intd)
        } else {
            None
        }
    }
}

/// Which list a recipient is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    pub fn name(self) -> &'static str {
        match self {
            Channel::Todo => "todo",
            Channel::Local => "local",
            Channel::Remote => "remote",
        }
    }
}

/// One recipient held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// The address.
    pub address: &'a [u8],
    /// Its list.
    pub channel: Channel,
    /// Delivered already (a `D` record).
    pub done: bool,
}

/// A recipient list too large to hold: read again from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeList {
    /// Its path relative to the queue root (where the scan found it).
    pub path: PathBuf,
    /// Which list.
    pub channel: Channel,
    /// Its complete records.
    pub count: u64,
}

/// The records of one list.
#[derive(Debug, Clone)]
enum Records<'a> {
    /// A todo's or intd's recipients (none done).
    Todo(&'a [Vec<u8>]),
    /// A local or remote list.
    List(&'a [envelope::Recipient]),
    /// Too large to hold.
    Large(LargeList),
}

/// One recipient list of a message.
#[derive(Debug, Clone)]
pub struct RecipientList<'a> {
    /// Which list.
    pub channel: Channel,
    records: Records<'a>,
}

impl<'a> RecipientList<'a> {
    /// The recipients, when they are held (`None`: see [`Self::large`]).
    pub fn held(&self) -> Option<Vec<Recipient<'a>>> {
        let channel = self.channel;
        match &self.records {
            Records::Todo(v) => Some(v.iter().map(|a| Recipient { address: a, channel, done: false }).collect()),
            Records::List(v) => {
                Some(v.iter().map(|r| Recipient { address: &r.address, channel, done: r.done }).collect())
            }
            Records::Large(_) => None,
        }
    }

    /// The list, when it is too large to hold.
    pub fn large(&self) -> Option<&LargeList> {
        match &self.records {
            Records::Large(l) => Some(l),
            _ => None,
        }
    }

    /// Calls `f` with each recipient (address, delivered) in file order,
    /// until it returns false; a large list is streamed from its file under
    /// the queue root `root` with a fixed buffer.
    pub fn for_each(&self, root: &Dir, mut f: impl FnMut(&[u8], bool) -> bool) -> Result<()> {
        match &self.records {
            Records::Todo(v) => {
                for a in v.iter() {
                    if !f(a, false) {
                        break;
                    }
                }
                Ok(())
            }
            Records::List(v) => {
                for r in v.iter() {
                    if !f(&r.address, r.done) {
                        break;
                    }
                }
                Ok(())
            }
            Records::Large(l) => {
                let todo = self.channel == Channel::Todo;
                read_records(root, &l.path, |kind, addr| match kind {
                    b'T' => f(addr, false),
                    b'D' if !todo => f(addr, true),
                    _ => true,
                })
            }
        }
    }
}

/// Which time stamp a birth time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basis {
    /// The mtime of info: qmail-send's own birth time (preprocessed).
    InfoMtime,
    /// The mtime of mess: when qmail-queue wrote the message (before
    /// preprocessing).
    MessMtime,
    /// The mtime of todo (a message without a mess file).
    TodoMtime,
    /// The mtime of intd (a message without mess and todo).
    IntdMtime,
}

impl Basis {
    /// The stable code (JSON).
    pub fn code(self) -> &'static str {
        match self {
            Basis::InfoMtime => "info_mtime",
            Basis::MessMtime => "mess_mtime",
            Basis::TodoMtime => "todo_mtime",
            Basis::IntdMtime => "intd_mtime",
        }
    }

    /// Words for reports.
    pub fn name(self) -> &'static str {
        match self {
            Basis::InfoMtime => "info mtime",
            Basis::MessMtime => "mess mtime",
            Basis::TodoMtime => "todo mtime",
            Basis::IntdMtime => "intd mtime",
        }
    }

    /// The basis of `part`'s time stamp (`None` for the parts the rule
    /// never reads).
    pub fn of(part: Part) -> Option<Basis> {
        match part {
            Part::Info => Some(Basis::InfoMtime),
            Part::Mess => Some(Basis::MessMtime),
            Part::Todo => Some(Basis::TodoMtime),
            Part::Intd => Some(Basis::IntdMtime),
            _ => None,
        }
    }
}

/// A birth time and which time stamp it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Birth {
    /// Seconds since the epoch.
    pub time: i64,
    /// Which time stamp.
    pub basis: Basis,
}

/// The birth rule (see the module notes): the files whose time stamp is
/// the birth, first choice first, for a message with the files `has` says.
pub fn birth_order(has: impl Fn(Part) -> bool) -> [Part; 4] {
    if Source::of(&has) == Some(Source::Info) {
        [Part::Info, Part::Mess, Part::Todo, Part::Intd]
    } else {
        [Part::Mess, Part::Todo, Part::Intd, Part::Info]
    }
}

/// The birth of a message by the rule, given the files it has and a
/// time stamp for each (`mtime` may be `None` for a file without a stat).
pub fn birth_of(has: impl Fn(Part) -> bool, mut mtime: impl FnMut(Part) -> Option<i64>) -> Option<Birth> {
    birth_order(&has).into_iter().filter(|&p| has(p)).find_map(|p| {
        let time = mtime(p)?;
        Some(Birth { time, basis: Basis::of(p)? })
    })
}

/// What is wrong with a message. Each is also what `qstat` reports, with
/// its stable code and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Damage {
    /// Files of the message exist but not its mess file.
    NoMess,
    /// The mess file is empty.
    EmptyMess,
    /// The mess file's inode is not the message number.
    InodeMismatch,
    /// A file in the wrong bucket or directory, or two copies.
    Misplaced,
    /// todo cannot be parsed.
    BadTodo,
    /// info cannot be parsed.
    BadInfo,
    /// local or remote cannot be parsed.
    BadRecipients,
    /// local or remote ends in a partial record.
    TruncatedRecipients,
    /// A bounce file beside a todo file.
    BounceBeforePreprocessing,
    /// Some file could not be read.
    Unreadable,
}

impl Damage {
    /// Every damage, in this order.
    pub const ALL: [Damage; 10] = [
        Damage::NoMess,
        Damage::EmptyMess,
        Damage::InodeMismatch,
        Damage::Misplaced,
        Damage::BadTodo,
        Damage::BadInfo,
        Damage::BadRecipients,
        Damage::TruncatedRecipients,
        Damage::BounceBeforePreprocessing,
        Damage::Unreadable,
    ];

    /// The stable code (JSON, Prometheus labels).
    pub const fn code(self) -> &'static str {
        match self {
            Damage::NoMess => "no_mess",
            Damage::EmptyMess => "empty_mess",
            Damage::InodeMismatch => "inode_mismatch",
            Damage::Misplaced => "wrong_bucket",
            Damage::BadTodo => "bad_todo",
            Damage::BadInfo => "bad_info",
            Damage::BadRecipients => "bad_recipients",
            Damage::TruncatedRecipients => "truncated_recipients",
            Damage::BounceBeforePreprocessing => "bounce_before_preprocessing",
            Damage::Unreadable => "unreadable_file",
        }
    }

    /// Words for reports.
    pub const fn words(self) -> &'static str {
        match self {
            Damage::NoMess => "no mess file",
            Damage::EmptyMess => "empty mess file",
            Damage::InodeMismatch => "mess inode differs from its number",
            Damage::Misplaced => "file in a wrong bucket",
            Damage::BadTodo => "unusable todo",
            Damage::BadInfo => "unusable info",
            Damage::BadRecipients => "unusable local or remote",
            Damage::TruncatedRecipients => "truncated local or remote",
            Damage::BounceBeforePreprocessing => "bounce file before preprocessing",
            Damage::Unreadable => "unreadable file",
        }
    }
}

/// An envelope file of the message that could not be used, or an error
/// met reading the message.
#[derive(Debug, Clone, Copy)]
pub enum Problem<'a> {
    /// A file could not be stated or read (the error names it).
    Io(&'a Error),
    /// An envelope was read but is not valid.
    Bad {
        /// Which file.
        part: Part,
        /// The bucket it was found in (`None`: directly in its directory).
        bucket: Option<u32>,
        /// The message number.
        number: u64,
        /// What is wrong.
        error: &'a EnvelopeError,
    },
}

impl Problem<'_> {
    /// Whether the file could not be read at all.
    pub fn is_io(&self) -> bool {
        matches!(self, Problem::Io(_))
    }
}

impl std::fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "{e}"),
            Problem::Bad { part, bucket, number, error } => {
                write!(f, "{}: {error}", crate::error::escape_path(&part_path_at(*part, *bucket, *number)))
            }
        }
    }
}

/// One message as every tool reads it (see the module notes).
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The scanned message it is read from.
    pub scanned: &'a ScannedMessage,
    /// Its number.
    pub number: u64,
    /// Its stage.
    pub stage: Stage,
    /// Where its envelope comes from (`None`: no envelope file).
    pub source: Option<Source>,
    /// The envelope sender (empty: the null sender); `None` when the
    /// envelope cannot be used (no envelope file, an unreadable one, an
    /// intd still being written).
    pub sender: Option<&'a [u8]>,
    /// Its recipient lists: todo's (or intd's), or local's and remote's,
    /// in that order.
    pub lists: Vec<RecipientList<'a>>,
    /// Its birth time, by the rule of the module notes.
    pub birth: Option<Birth>,
    /// The size of its mess file (when there is one with a stat).
    pub size: Option<u64>,
    /// qfixq's record, when it salvaged the message: its info holds the
    /// null sender because the real sender was lost (not a bounce).
    pub salvaged: Option<Record>,
    /// The errors met reading it, and the envelope files of its source
    /// that are not valid (an intd still being written is not a problem).
    pub problems: Vec<Problem<'a>>,
}

impl<'a> Message<'a> {
    /// Reads `msg`; `record` is the salvage record of its number, if
    /// any ([`crate::salvaged::Salvaged::get`]): it applies while the message's info holds
    /// the null sender.
    pub fn of(msg: &'a ScannedMessage, record: Option<&Record>) -> Message<'a> {
        let has = |p: Part| msg.has(p);
        let stage = Stage::of(has);
        let source = Source::of(has);
        let mtime = |p: Part| msg.file(p).and_then(|f| f.stat).map(|s| s.mtime);
        let mut m = Message {
            scanned: msg,
            number: msg.number,
            stage,
            source,
            sender: None,
            lists: Vec::new(),
            birth: birth_of(has, mtime),
            size: msg.file(Part::Mess).and_then(|f| f.stat).map(|s| s.size),
            salvaged: None,
            problems: msg.io_errors.iter().map(Problem::Io).collect(),
        };
        let large = |part: Part, channel: Channel, count: u64| {
            let path = msg.file(part).map(|f| part_path_at(part, f.bucket, msg.number)).unwrap_or_default();
            Records::Large(LargeList { path, channel, count })
        };
        let todo_list = |t: &'a TodoEnvelope, part: Part| RecipientList {
            channel: Channel::Todo,
            records: match t {
                TodoEnvelope::Whole(t) => Records::Todo(&t.recipients),
                TodoEnvelope::Large(s) => large(part, Channel::Todo, s.recipients),
            },
        };
        match source {
            Some(Source::Todo) => match &msg.todo {
                Some(Ok(t)) => {
                    m.sender = Some(t.sender());
                    m.lists.push(todo_list(t, Part::Todo));
                }
                p => m.problems.extend(problem(msg, Part::Todo, p)),
            },
            Some(Source::Info) => {
                match &msg.info {
                    Some(Ok(i)) => {
                        m.sender = Some(&i.sender);
                        if i.sender.is_empty() {
                            m.salvaged = record.filter(|r| r.number == msg.number).copied();
                        }
                    }
                    p => m.problems.extend(problem(msg, Part::Info, p)),
                }
                for (part, parsed, channel) in
                    [(Part::Local, &msg.local, Channel::Local), (Part::Remote, &msg.remote, Channel::Remote)]
                {
                    match parsed {
                        Some(Ok(ListEnvelope::Whole(r))) => {
                            m.lists.push(RecipientList { channel, records: Records::List(&r.list) })
                        }
                        Some(Ok(l @ ListEnvelope::Large(_))) => {
                            m.lists.push(RecipientList { channel, records: large(part, channel, l.records()) })
                        }
                        p => m.problems.extend(problem(msg, part, p)),
                    }
                }
            }
            Some(Source::Intd) => match &msg.intd {
                Some(Ok(t)) => {
                    m.sender = Some(t.sender());
                    m.lists.push(todo_list(t, Part::Intd));
                }
                // An intd that does not parse is still being written.
                Some(Err(ReadProblem::Bad(_))) | None => {}
                p => m.problems.extend(problem(msg, Part::Intd, p)),
            },
            None => {}
        }
        m
    }

    /// The recipients held in memory, list after list.
    pub fn recipients(&self) -> Vec<Recipient<'a>> {
        self.lists.iter().filter_map(RecipientList::held).flatten().collect()
    }

    /// The lists too large to hold.
    pub fn large(&self) -> Vec<LargeList> {
        self.lists.iter().filter_map(|l| l.large().cloned()).collect()
    }

    /// Whether qfixq salvaged it: its null sender is no bounce.
    pub fn sender_lost(&self) -> bool {
        self.salvaged.is_some()
    }

    /// What is wrong with it, in a queue of `shape` (sorted, each once).
    /// Only the envelope of its source is judged: an info beside a todo is
    /// rewritten by qmail-send, an intd may still be being written.
    pub fn damage(&self, shape: QueueShape) -> Vec<Damage> {
        let msg = self.scanned;
        let mut d = Vec::new();
        match msg.file(Part::Mess) {
            None => d.push(Damage::NoMess),
            Some(f) => {
                if let Some(st) = f.stat {
                    if st.size == 0 {
                        d.push(Damage::EmptyMess);
                    }
                    if st.ino != msg.number {
                        d.push(Damage::InodeMismatch);
                    }
                }
            }
        }
        if !msg.extra.is_empty() || msg.all_files().any(|f| !shape.is_in_place(f.part, f.bucket, msg.number)) {
            d.push(Damage::Misplaced);
        }
        match self.source {
            Some(Source::Todo) => {
                if msg.has(Part::Bounce) {
                    d.push(Damage::BounceBeforePreprocessing);
                }
                if is_bad(&msg.todo) {
                    d.push(Damage::BadTodo);
                }
            }
            Some(Source::Info) => {
                if is_bad(&msg.info) {
                    d.push(Damage::BadInfo);
                }
                for l in [&msg.local, &msg.remote] {
                    match l {
                        Some(Ok(l)) if l.dropped() > 0 => d.push(Damage::TruncatedRecipients),
                        Some(Err(ReadProblem::Bad(_))) => d.push(Damage::BadRecipients),
                        _ => {}
                    }
                }
            }
            Some(Source::Intd) | None => {}
        }
        if self.problems.iter().any(Problem::is_io) {
            d.push(Damage::Unreadable);
        }
        d.sort_unstable();
        d.dedup();
        d
    }
}

/// Whether an envelope was read and is not valid.
fn is_bad<T>(p: &Option<Parsed<T>>) -> bool {
    matches!(p, Some(Err(ReadProblem::Bad(_))))
}

/// The problem of an envelope that is not usable (`None` when it is, or
/// when it was not read).
fn problem<'a, T>(msg: &'a ScannedMessage, part: Part, p: &'a Option<Parsed<T>>) -> Option<Problem<'a>> {
    match p {
        Some(Err(ReadProblem::Io(e))) => Some(Problem::Io(e)),
        Some(Err(ReadProblem::Bad(error))) => {
            let bucket = msg.file(part).and_then(|f| f.bucket);
            Some(Problem::Bad { part, bucket, number: msg.number, error })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::SymlinkBehavior;
    use crate::salvaged::Salvaged;
    use crate::scan::{scan, ScanEvent, ScanOptions};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    const SPLIT: u32 = crate::test_queue::SPLIT;

    /// An empty queue of split 3 in a tempdir.
    fn queue(big_todo: bool) -> tempfile::TempDir {
        crate::test_queue::empty(big_todo)
    }

    fn shape(big_todo: bool) -> QueueShape {
        QueueShape { split: SPLIT, big_todo }
    }

    /// A mess file named by its inode, as qmail-queue makes it; returns
    /// the number.
    fn mess(q: &Path, body: &[u8]) -> u64 {
        std::fs::write(q.join("pid/tmp"), body).unwrap();
        let n = std::fs::metadata(q.join("pid/tmp")).unwrap().ino();
        std::fs::rename(q.join("pid/tmp"), q.join(shape(false).path(Part::Mess, n))).unwrap();
        n
    }

    fn put(q: &Path, big: bool, part: Part, n: u64, data: &[u8]) {
        std::fs::write(q.join(shape(big).path(part, n)), data).unwrap();
    }

    fn set_mtime(q: &Path, big: bool, part: Part, n: u64, t: i64) {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
        std::fs::File::options()
            .write(true)
            .open(q.join(shape(big).path(part, n)))
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn scanned(q: &Path, big: bool) -> Vec<ScannedMessage> {
        let root = Dir::open(q, SymlinkBehavior::Follow).unwrap();
        let mut out = Vec::new();
        scan(&root, shape(big), &ScanOptions { threads: 2, ..Default::default() }, &mut |ev| {
            if let ScanEvent::Message(m) = ev {
                out.push(*m)
            }
        })
        .unwrap();
        out
    }

    fn find(v: &[ScannedMessage], n: u64) -> &ScannedMessage {
        v.iter().find(|m| m.number == n).unwrap()
    }

    #[test]
    fn every_stage_from_a_real_queue() {
        for big in [false, true] {
            let t = queue(big);
            let q = t.path();
            // S5: preprocessed, one delivery done.
            let pre = mess(q, b"Received: x\n\nbody\n");
            put(q, big, Part::Info, pre, b"Fa@b\0");
            put(q, big, Part::Remote, pre, b"Dc@d\0Te@f\0");
            put(q, big, Part::Local, pre, b"Tg@h\0");
            // S4: todo linked from intd.
            let todo = mess(q, b"Received: y\n\nbody\n");
            put(q, big, Part::Intd, todo, b"u0\0p1\0F\0Tc@d\0Tx@y\0");
            std::fs::hard_link(q.join(shape(big).path(Part::Intd, todo)), q.join(shape(big).path(Part::Todo, todo)))
                .unwrap();
            // S3: intd still being written (no closing NUL yet).
            let queued = mess(q, b"Received: z\n\nbody\n");
            put(q, big, Part::Intd, queued, b"u0\0p1\0Fs@t\0Tc@");
            // S3 with a complete intd: its envelope is read.
            let queued2 = mess(q, b"Received: z\n\nbody\n");
            put(q, big, Part::Intd, queued2, b"u0\0p1\0Fs@t\0Tc@d\0");
            // S2: mess only.
            let lone = mess(q, b"Received: w\n\nbody\n");
            // Damaged: info lost, remote left.
            let lost = mess(q, b"Received: v\n\nbody\n");
            put(q, big, Part::Remote, lost, b"Tc@d\0");
            // Damaged: info without mess.
            let orphan = mess(q, b"gone");
            std::fs::remove_file(q.join(shape(big).path(Part::Mess, orphan))).unwrap();
            put(q, big, Part::Info, orphan, b"Fo@p\0");

            let all = scanned(q, big);
            let of = |n| Message::of(find(&all, n), None);

            let m = of(pre);
            assert_eq!((m.stage, m.source, m.sender), (Stage::Preprocessed, Some(Source::Info), Some(&b"a@b"[..])));
            let r: Vec<_> = m.recipients().iter().map(|r| (r.address.to_vec(), r.channel, r.done)).collect();
            assert_eq!(
                r,
                vec![
                    (b"g@h".to_vec(), Channel::Local, false),
                    (b"c@d".to_vec(), Channel::Remote, true),
                    (b"e@f".to_vec(), Channel::Remote, false),
                ]
            );
            assert_eq!(m.size, Some(18));
            assert!(m.damage(shape(big)).is_empty() && m.problems.is_empty());

            let m = of(todo);
            assert_eq!((m.stage, m.source, m.sender), (Stage::Unpreprocessed, Some(Source::Todo), Some(&b""[..])));
            assert_eq!(m.recipients().len(), 2);
            assert!(m.recipients().iter().all(|r| r.channel == Channel::Todo && !r.done));

            let m = of(queued);
            assert_eq!((m.stage, m.source, m.sender), (Stage::BeingQueued, Some(Source::Intd), None));
            assert!(m.problems.is_empty(), "an intd being written is no problem");
            let m = of(queued2);
            assert_eq!((m.stage, m.sender), (Stage::BeingQueued, Some(&b"s@t"[..])));

            let m = of(lone);
            assert_eq!((m.stage, m.source, m.sender), (Stage::Leftovers, None, None));

            let m = of(lost);
            assert_eq!((m.stage, m.source, m.sender), (Stage::Damaged, None, None));

            let m = of(orphan);
            assert_eq!((m.stage, m.source, m.sender), (Stage::Damaged, Some(Source::Info), Some(&b"o@p"[..])));
            assert_eq!(m.damage(shape(big)), vec![Damage::NoMess]);
            assert_eq!(m.birth.map(|b| b.basis), Some(Basis::InfoMtime));

            // A bounce beside a todo: damaged, and said why.
            put(q, big, Part::Bounce, todo, b"<c@d>:\nno\n\n");
            let all = scanned(q, big);
            let m = Message::of(find(&all, todo), None);
            assert_eq!(m.stage, Stage::Damaged);
            assert_eq!(m.damage(shape(big)), vec![Damage::BounceBeforePreprocessing]);
        }
    }

    #[test]
    fn stage_table_follows_queue_format() {
        let with = |parts: &[Part]| Stage::of(|p| parts.contains(&p));
        use Part::*;
        assert_eq!(with(&[Mess]), Stage::Leftovers);
        assert_eq!(with(&[Mess, Intd]), Stage::BeingQueued);
        assert_eq!(with(&[Mess, Intd, Todo]), Stage::Unpreprocessed);
        assert_eq!(with(&[Mess, Intd, Todo, Info, Local, Remote]), Stage::Unpreprocessed);
        assert_eq!(with(&[Mess, Todo, Bounce]), Stage::Damaged);
        assert_eq!(with(&[Mess, Info]), Stage::Preprocessed);
        assert_eq!(with(&[Mess, Info, Local, Remote, Bounce]), Stage::Preprocessed);
        assert_eq!(with(&[Mess, Info, Intd]), Stage::Damaged);
        assert_eq!(with(&[Mess, Local]), Stage::Damaged);
        assert_eq!(with(&[Mess, Bounce]), Stage::Damaged);
        assert_eq!(with(&[Mess, Intd, Remote]), Stage::Damaged);
        assert_eq!(with(&[Todo]), Stage::Damaged);
        assert_eq!(with(&[Info, Local]), Stage::Damaged);
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["preprocessed", "unpreprocessed", "being_queued", "leftovers", "damaged"]);
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn one_birth_rule() {
        let t = queue(false);
        let q = t.path();
        // Preprocessed: info's time stamp, whatever mess says.
        let pre = mess(q, b"Received: x\n\nbody\n");
        put(q, false, Part::Info, pre, b"Fa@b\0");
        put(q, false, Part::Remote, pre, b"Tc@d\0");
        set_mtime(q, false, Part::Mess, pre, 1_000);
        set_mtime(q, false, Part::Info, pre, 2_000);
        // Not yet preprocessed, with the info of a crashed preprocessing:
        // mess's time stamp, not that info's.
        let todo = mess(q, b"Received: y\n\nbody\n");
        put(q, false, Part::Todo, todo, b"u0\0p1\0Fa@b\0Tc@d\0");
        put(q, false, Part::Info, todo, b"Fa@b\0");
        set_mtime(q, false, Part::Mess, todo, 3_000);
        set_mtime(q, false, Part::Todo, todo, 3_500);
        set_mtime(q, false, Part::Info, todo, 4_000);
        // Being queued: mess.
        let queued = mess(q, b"Received: z\n\nbody\n");
        put(q, false, Part::Intd, queued, b"u0\0p1\0Fa@b\0Tc@d\0");
        set_mtime(q, false, Part::Mess, queued, 5_000);
        set_mtime(q, false, Part::Intd, queued, 5_500);
        // A todo without its mess: the todo's.
        let orphan = mess(q, b"gone");
        std::fs::remove_file(q.join(shape(false).path(Part::Mess, orphan))).unwrap();
        put(q, false, Part::Todo, orphan, b"u0\0p1\0Fa@b\0Tc@d\0");
        set_mtime(q, false, Part::Todo, orphan, 6_000);

        let all = scanned(q, false);
        let birth = |n| Message::of(find(&all, n), None).birth.unwrap();
        assert_eq!(birth(pre), Birth { time: 2_000, basis: Basis::InfoMtime });
        assert_eq!(birth(todo), Birth { time: 3_000, basis: Basis::MessMtime });
        assert_eq!(birth(queued), Birth { time: 5_000, basis: Basis::MessMtime });
        assert_eq!(birth(orphan), Birth { time: 6_000, basis: Basis::TodoMtime });

        // Without stats: the rule falls through to what has a time stamp.
        let has = |p: Part| matches!(p, Part::Mess | Part::Info);
        assert_eq!(birth_order(has), [Part::Info, Part::Mess, Part::Todo, Part::Intd]);
        let b = birth_of(has, |p| (p == Part::Mess).then_some(7));
        assert_eq!(b, Some(Birth { time: 7, basis: Basis::MessMtime }));
        assert_eq!(birth_of(has, |_| None), None);
    }

    #[test]
    fn salvaged_only_while_info_holds_the_null_sender() {
        let t = queue(false);
        let q = t.path();
        let a = mess(q, b"Received: x\n\nbody\n");
        put(q, false, Part::Info, a, b"F\0");
        put(q, false, Part::Remote, a, b"Tc@d\0");
        let b = mess(q, b"Received: x\n\nbody\n");
        put(q, false, Part::Info, b, b"Fs@t\0");
        put(q, false, Part::Remote, b, b"Tc@d\0");
        let mut records = Salvaged::default();
        for n in [a, b] {
            records.insert(Record { number: n, inode: n, birth: 5, why: crate::salvaged::Why::InfoMissing });
        }
        let all = scanned(q, false);
        let ma = Message::of(find(&all, a), records.get(a));
        assert!(ma.sender_lost() && ma.salvaged.unwrap().number == a);
        assert!(!Message::of(find(&all, a), None).sender_lost());
        assert!(!Message::of(find(&all, b), records.get(b)).sender_lost());
        // Another number's record does not apply.
        assert!(!Message::of(find(&all, a), records.get(b)).sender_lost());
    }

    #[test]
    fn damage_and_problems_are_named() {
        let t = queue(false);
        let q = t.path();
        let garbled = mess(q, b"Received: x\n\nbody\n");
        put(q, false, Part::Info, garbled, b"Xjunk");
        put(q, false, Part::Remote, garbled, b"Tc@d\0Te@");
        let misplaced = mess(q, b"");
        let wrong = (misplaced + 1) % u64::from(SPLIT);
        std::fs::write(q.join(format!("info/{wrong}/{misplaced}")), b"Fa@b\0").unwrap();
        let all = scanned(q, false);
        let m = Message::of(find(&all, garbled), None);
        assert_eq!(m.damage(shape(false)), vec![Damage::BadInfo, Damage::TruncatedRecipients]);
        assert_eq!(m.sender, None);
        assert_eq!(m.problems.len(), 1);
        assert!(m.problems[0].to_string().starts_with(&format!("info/{}/{garbled}: ", garbled % 3)));
        let m = Message::of(find(&all, misplaced), None);
        assert_eq!(m.stage, Stage::Preprocessed);
        assert_eq!(m.damage(shape(false)), vec![Damage::EmptyMess, Damage::Misplaced]);
        let codes: Vec<_> = Damage::ALL.iter().map(|d| d.code()).collect();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    /// An envelope over the cap is not held: it is named, counted and
    /// streamed back from its file, every record in order.
    #[test]
    fn huge_envelope_streamed() {
        for big in [false, true] {
            let t = queue(big);
            let q = t.path();
            let count = 6_000u64;
            let addr = |i: u64| format!("user{i:05}@flood.example");
            let mut list = Vec::new();
            for i in 0..count {
                list.extend_from_slice(
                    format!("{}{}\0", if i.is_multiple_of(3) { 'D' } else { 'T' }, addr(i)).as_bytes(),
                );
            }
            assert!(list.len() > envelope::WHOLE_CAP);
            let n = mess(q, b"Received: x\n\nbody\n");
            put(q, big, Part::Info, n, b"F\0");
            put(q, big, Part::Remote, n, &list);
            let mut todo = b"u0\0p1\0Fflood@example\0".to_vec();
            for i in 0..count {
                todo.extend_from_slice(format!("T{}\0", addr(i)).as_bytes());
            }
            let k = mess(q, b"Received: y\n\nbody\n");
            put(q, big, Part::Todo, k, &todo);

            let all = scanned(q, big);
            let root = Dir::open(q, SymlinkBehavior::Follow).unwrap();
            let m = Message::of(find(&all, n), None);
            assert!(m.recipients().is_empty());
            let large = m.large();
            assert_eq!(large.len(), 1);
            assert_eq!((large[0].channel, large[0].count), (Channel::Remote, count));
            assert_eq!(large[0].path, shape(big).path(Part::Remote, n));
            let mut seen = 0u64;
            m.lists[0]
                .for_each(&root, |a, done| {
                    assert_eq!(a, addr(seen).as_bytes());
                    assert_eq!(done, seen.is_multiple_of(3));
                    seen += 1;
                    true
                })
                .unwrap();
            assert_eq!(seen, count);
            // Stopping early reads no further.
            let mut first = 0;
            m.lists[0]
                .for_each(&root, |_, _| {
                    first += 1;
                    false
                })
                .unwrap();
            assert_eq!(first, 1);

            let m = Message::of(find(&all, k), None);
            assert_eq!((m.stage, m.sender), (Stage::Unpreprocessed, Some(&b"flood@example"[..])));
            let large = m.large();
            assert_eq!((large[0].channel, large[0].count), (Channel::Todo, count));
            let mut todo_seen = 0u64;
            m.lists[0]
                .for_each(&root, |_, done| {
                    assert!(!done);
                    todo_seen += 1;
                    true
                })
                .unwrap();
            assert_eq!(todo_seen, count);
        }
    }
}
