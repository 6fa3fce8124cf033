//! The detailed breakdown (`--detail`) and the top lists (`--top`): this
//! module owns what is learnt from a full scan of the queue with
//! [`qcommon::scan`] (a stat of every message file, the envelopes read and
//! parsed).
//!
//! Each message number the scan finds is in one state:
//! - not yet preprocessed: it has a `todo` file (its sender and recipients
//!   come from todo's `F` and `T` records);
//! - preprocessed: no `todo` but an `info` file (the sender comes from
//!   info, the recipients still to do are the `T` records of `local` and
//!   `remote`, the birth time is info's mtime, as qmail-send uses it);
//! - other: neither (a message being queued right now, or leftovers).
//!
//! A message with damaged files is counted as damaged, with the reasons,
//! and as much of it as can be read is still counted.

use std::collections::BTreeMap;

use qcommon::envelope::{is_double_bounce, read_records, ListEnvelope, TodoEnvelope};
use qcommon::layout::Layout;
use qcommon::queue::{bucket_of, Part};
use qcommon::safe_fs::Dir;
use qcommon::scan::{scan_counted, ReadProblem, ScanEvent, ScanLayout, ScanOptions, ScannedMessage};
use qcommon::{Error, Result};

use crate::lifetime::Lifetime;
use crate::top::{domain_of, TopCounter, DEFAULT_CAPACITY};

/// Null-sender or double-bounce messages, by where the sender was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BySource {
    /// Preprocessed messages, sender from info.
    pub info: u64,
    /// Messages not yet preprocessed, sender from todo's `F` record.
    pub todo: u64,
}

impl BySource {
    /// Both.
    pub fn total(&self) -> u64 {
        self.info + self.todo
    }
}

/// Which time stamp a birth time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The mtime of info (preprocessed messages; qmail-send's own).
    InfoMtime,
    /// The mtime of mess (messages not yet preprocessed, and others).
    MessMtime,
}

impl Basis {
    /// The stable code (JSON).
    pub fn code(self) -> &'static str {
        match self {
            Basis::InfoMtime => "info_mtime",
            Basis::MessMtime => "mess_mtime",
        }
    }

    /// Words for reports.
    pub fn name(self) -> &'static str {
        match self {
            Basis::InfoMtime => "info mtime",
            Basis::MessMtime => "mess mtime",
        }
    }
}

/// The oldest message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oldest {
    /// Its number.
    pub number: u64,
    /// Its birth time (seconds since the epoch).
    pub birth: i64,
    /// Which time stamp that is.
    pub basis: Basis,
}

/// The breakdown of a queue.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The split the scan used, and where it came from.
    pub split: u32,
    /// Where the split came from.
    pub split_source: String,
    /// Where the split came from, as a code (`qcommon::layout::Source::code`).
    pub split_source_code: &'static str,
    /// Whether todo/intd were scanned as split (big-todo).
    pub big_todo: bool,
    /// Distinct message numbers seen.
    pub messages: u64,
    /// Messages with a todo file.
    pub unpreprocessed: u64,
    /// Messages with info and no todo.
    pub preprocessed: u64,
    /// Messages with neither.
    pub other: u64,
    /// `T` records in local files.
    pub local_pending: u64,
    /// `T` records in remote files.
    pub remote_pending: u64,
    /// `T` records in todo files.
    pub todo_recipients: u64,
    /// Messages with a bounce file.
    pub pending_bounce: u64,
    /// Null-sender messages (salvaged ones apart).
    pub null_sender: BySource,
    /// Salvaged messages: qfixq wrote the null sender because their sender
    /// was lost (recorded in lost+found/salvaged).
    pub salvaged: u64,
    /// Why the records of salvaged messages could not be read (then
    /// `salvaged` is 0 and they count as null-sender messages).
    pub salvaged_unknown: Option<String>,
    /// Double-bounce messages (sender `#@[]`).
    pub double_bounce: BySource,
    /// The oldest message, if any.
    pub oldest: Option<Oldest>,
    /// The queuelifetime used.
    pub lifetime: Option<Lifetime>,
    /// Preprocessed messages whose info mtime is more than queuelifetime ago.
    pub past_lifetime: u64,
    /// Damaged messages.
    pub damaged: u64,
    /// Damaged messages by reason (a message may have several).
    pub damage: BTreeMap<&'static str, u64>,
    /// Entries the scan found that are not message files.
    pub strays: u64,
    /// Messages some file of which could not be read.
    pub unreadable: u64,
}

/// The top lists.
#[derive(Debug, Clone, Default)]
pub struct TopLists {
    /// Most frequent envelope senders, by messages (empty: null sender).
    pub senders: Vec<(Vec<u8>, u64)>,
    /// Messages whose sender was counted.
    pub sender_total: u64,
    /// How low any sender count may be (0: exact).
    pub sender_undercount: u64,
    /// Most frequent recipient domains, by recipients still to do.
    pub domains: Vec<(Vec<u8>, u64)>,
    /// Recipients counted.
    pub domain_total: u64,
    /// How low any domain count may be (0: exact).
    pub domain_undercount: u64,
}

/// Damage reasons, as reported.
pub mod reason {
    /// Files of the message exist but not its mess file.
    pub const NO_MESS: &str = "no mess file";
    /// The mess file is empty.
    pub const EMPTY_MESS: &str = "empty mess file";
    /// The mess file's inode is not the message number.
    pub const INODE: &str = "mess inode differs from its number";
    /// A file in the wrong bucket or directory, or two copies.
    pub const MISPLACED: &str = "file in a wrong bucket";
    /// todo cannot be parsed.
    pub const BAD_TODO: &str = "unusable todo";
    /// info cannot be parsed.
    pub const BAD_INFO: &str = "unusable info";
    /// local or remote cannot be parsed.
    pub const BAD_RECIPIENTS: &str = "unusable local or remote";
    /// local or remote ends in a partial record.
    pub const TRUNCATED: &str = "truncated local or remote";
    /// A bounce file beside a todo file.
    pub const BOUNCE_BEFORE: &str = "bounce file before preprocessing";
    /// Some file could not be read.
    pub const UNREADABLE: &str = "unreadable file";

    /// Every reason: its stable code (JSON, Prometheus labels) and its words.
    pub const ALL: [(&str, &str); 10] = [
        ("no_mess", NO_MESS),
        ("empty_mess", EMPTY_MESS),
        ("inode_mismatch", INODE),
        ("wrong_bucket", MISPLACED),
        ("bad_todo", BAD_TODO),
        ("bad_info", BAD_INFO),
        ("bad_recipients", BAD_RECIPIENTS),
        ("truncated_recipients", TRUNCATED),
        ("bounce_before_preprocessing", BOUNCE_BEFORE),
        ("unreadable_file", UNREADABLE),
    ];

    /// The code of a reason (its words, snake_cased, for one not listed).
    pub fn code(words: &str) -> String {
        match ALL.iter().find(|(_, w)| *w == words) {
            Some((c, _)) => (*c).to_string(),
            None => words.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        }
    }
}

/// What to gather.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Length of the top lists, when wanted.
    pub top: Option<usize>,
    /// Now (seconds since the epoch), for ages and queuelifetime.
    pub now: i64,
    /// The queuelifetime.
    pub lifetime: Lifetime,
    /// Threads of the scan.
    pub threads: usize,
}

/// Scans the queue `root` as `layout` says; `on_error` gets every error
/// (a directory or file that could not be read). Fails only when the
/// queue root cannot be listed.
pub fn gather(
    root: &Dir,
    layout: &Layout,
    wanted: &Wanted,
    progress: &qcommon::progress::Progress,
    on_error: &mut dyn FnMut(Error),
) -> Result<(Detail, Option<TopLists>)> {
    let mut d = Detail {
        split: layout.split.value,
        split_source: layout.source_text(&layout.split.source),
        split_source_code: layout.split.source.code(),
        big_todo: layout.big_todo.value,
        lifetime: Some(wanted.lifetime.clone()),
        ..Detail::default()
    };
    let records = qcommon::salvaged::read_all(root).map_err(|e| e.to_string());
    let empty = qcommon::salvaged::Salvaged::default();
    if let Err(e) = &records {
        d.salvaged_unknown = Some(e.clone());
    }
    let salvaged = records.as_ref().unwrap_or(&empty);
    let mut senders = wanted.top.map(|_| TopCounter::new(DEFAULT_CAPACITY));
    let mut domains = wanted.top.map(|_| TopCounter::new(DEFAULT_CAPACITY));
    let sl = ScanLayout { split: layout.split.value, big_todo: layout.big_todo.value };
    let opts = ScanOptions { threads: wanted.threads, ..ScanOptions::default() };
    progress.phase("listing", None);
    let mut listed = |total: u64| progress.phase("scanning", Some(total));
    let cx = Context { root, wanted, sl, salvaged };
    scan_counted(root, sl, &opts, &mut listed, &mut |ev| match ev {
        ScanEvent::Message(m) => {
            progress.inc(1);
            examine(cx, &mut d, &m, senders.as_mut().zip(domains.as_mut()), on_error)
        }
        ScanEvent::Stray(_) => d.strays += 1,
        ScanEvent::Error(e) => on_error(e),
    })?;
    let tops = match (wanted.top, senders, domains) {
        (Some(n), Some(s), Some(dm)) => Some(TopLists {
            senders: s.top(n),
            sender_total: s.total(),
            sender_undercount: s.undercount(),
            domains: dm.top(n),
            domain_total: dm.total(),
            domain_undercount: dm.undercount(),
        }),
        _ => None,
    };
    Ok((d, tops))
}

/// Adds the domains of the `T` records of the large envelope `part` of
/// `m`, read again from its file (it is not held in memory).
fn large_domains(root: &Dir, m: &ScannedMessage, part: Part, dm: &mut TopCounter, on_error: &mut dyn FnMut(Error)) {
    let Some(f) = m.file(part) else { return };
    let r = read_records(root, &f.rel_path(m.number), |kind, address| {
        if kind == b'T' {
            dm.add(&domain_of(address));
        }
        true
    });
    if let Err(e) = r {
        on_error(e);
    }
}

/// What every message of one gathering is examined against.
#[derive(Clone, Copy)]
struct Context<'a> {
    root: &'a Dir,
    wanted: &'a Wanted,
    sl: ScanLayout,
    salvaged: &'a qcommon::salvaged::Salvaged,
}

fn examine(
    cx: Context<'_>,
    d: &mut Detail,
    m: &ScannedMessage,
    mut tops: Option<(&mut TopCounter, &mut TopCounter)>,
    on_error: &mut dyn FnMut(Error),
) {
    let Context { root, wanted, sl, salvaged } = cx;
    d.messages += 1;
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut unreadable = false;
    for e in &m.io_errors {
        on_error(Error::Other(e.to_string()));
        unreadable = true;
    }
    // Errors met reading a large envelope again, reported at the end.
    let mut late: Vec<Error> = Vec::new();
    let mut io = |p: &ReadProblem, bad: &'static str, reasons: &mut Vec<&'static str>| match p {
        ReadProblem::Io(e) => {
            on_error(Error::Other(e.to_string()));
            unreadable = true;
        }
        ReadProblem::Bad(_) => reasons.push(bad),
    };

    // Where the files are.
    match m.file(Part::Mess) {
        None => reasons.push(reason::NO_MESS),
        Some(f) => {
            if let Some(st) = f.stat {
                if st.size == 0 {
                    reasons.push(reason::EMPTY_MESS);
                }
                if st.ino != m.number {
                    reasons.push(reason::INODE);
                }
            }
        }
    }
    let right = bucket_of(m.number, sl.split);
    let misplaced =
        !m.extra.is_empty()
            || m.all_files().any(|f| {
                if f.part.is_split(sl.big_todo) {
                    f.bucket != Some(right)
                } else {
                    f.bucket.is_some()
                }
            });
    if misplaced {
        reasons.push(reason::MISPLACED);
    }

    let mess_mtime = m.file(Part::Mess).and_then(|f| f.stat).map(|s| s.mtime);
    let mut birth: Option<(i64, Basis)> = mess_mtime.map(|t| (t, Basis::MessMtime));

    if m.has(Part::Todo) {
        d.unpreprocessed += 1;
        if m.has(Part::Bounce) {
            d.pending_bounce += 1;
            reasons.push(reason::BOUNCE_BEFORE);
        }
        match &m.todo {
            Some(Ok(t)) => {
                if t.sender().is_empty() {
                    d.null_sender.todo += 1;
                } else if is_double_bounce(t.sender()) {
                    d.double_bounce.todo += 1;
                }
                d.todo_recipients += t.recipient_count();
                if let Some((s, dm)) = tops.as_mut() {
                    s.add(t.sender());
                    match t {
                        TodoEnvelope::Whole(t) => t.recipients.iter().for_each(|r| dm.add(&domain_of(r))),
                        TodoEnvelope::Large(_) => large_domains(root, m, Part::Todo, dm, &mut |e| late.push(e)),
                    }
                }
            }
            Some(Err(p)) => io(p, reason::BAD_TODO, &mut reasons),
            None => {}
        }
    } else if m.has(Part::Info) {
        d.preprocessed += 1;
        match &m.info {
            Some(Ok(i)) => {
                if i.sender.is_empty() && salvaged.contains(m.number) {
                    d.salvaged += 1;
                } else if i.sender.is_empty() {
                    d.null_sender.info += 1;
                } else if is_double_bounce(&i.sender) {
                    d.double_bounce.info += 1;
                }
                if let Some((s, _)) = tops.as_mut() {
                    s.add(&i.sender);
                }
            }
            Some(Err(p)) => io(p, reason::BAD_INFO, &mut reasons),
            None => {}
        }
        for (part, list, pending) in
            [(Part::Local, &m.local, &mut d.local_pending), (Part::Remote, &m.remote, &mut d.remote_pending)]
        {
            match list {
                Some(Ok(r)) => {
                    *pending += r.pending();
                    if r.dropped() > 0 {
                        reasons.push(reason::TRUNCATED);
                    }
                    if let Some((_, dm)) = tops.as_mut() {
                        match r {
                            ListEnvelope::Whole(r) => {
                                r.list.iter().filter(|rc| !rc.done).for_each(|rc| dm.add(&domain_of(&rc.address)))
                            }
                            ListEnvelope::Large(_) => large_domains(root, m, part, dm, &mut |e| late.push(e)),
                        }
                    }
                }
                Some(Err(p)) => io(p, reason::BAD_RECIPIENTS, &mut reasons),
                None => {}
            }
        }
        if m.has(Part::Bounce) {
            d.pending_bounce += 1;
        }
        if let Some(t) = m.file(Part::Info).and_then(|f| f.stat).map(|s| s.mtime) {
            birth = Some((t, Basis::InfoMtime));
            let lifetime = i64::try_from(wanted.lifetime.seconds).unwrap_or(i64::MAX);
            if wanted.now > t.saturating_add(lifetime) {
                d.past_lifetime += 1;
            }
        }
    } else {
        d.other += 1;
        if m.has(Part::Bounce) {
            d.pending_bounce += 1;
        }
    }

    if let Some((t, basis)) = birth {
        let older = match d.oldest {
            None => true,
            Some(o) => (t, m.number) < (o.birth, o.number),
        };
        if older {
            d.oldest = Some(Oldest { number: m.number, birth: t, basis });
        }
    }
    for e in late {
        on_error(e);
    }
    if unreadable {
        d.unreadable += 1;
        reasons.push(reason::UNREADABLE);
    }
    if !reasons.is_empty() {
        reasons.sort_unstable();
        reasons.dedup();
        d.damaged += 1;
        for r in reasons {
            *d.damage.entry(r).or_default() += 1;
        }
    }
}
