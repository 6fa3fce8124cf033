//! The detailed breakdown (`--detail`) and the top lists (`--top`): this
//! module owns what is learnt from a full scan of the queue with
//! [`qcommon::scan`] (a stat of every message file, the envelopes read and
//! parsed), each message read through [`qcommon::message`] as every tool
//! reads it.
//!
//! Each message number the scan finds is counted by where its envelope
//! comes from ([`Source`]):
//! - not yet preprocessed: it has a `todo` file (its sender and recipients
//!   come from todo's `F` and `T` records);
//! - preprocessed: no `todo` but an `info` file (the sender comes from
//!   info, the recipients still to do are the `T` records of `local` and
//!   `remote`);
//! - other: neither (a message being queued right now, or leftovers).
//!
//! Its birth time follows the model's one rule (info's mtime once
//! preprocessed, as qmail-send uses it; mess's before). A message with
//! damaged files is counted as damaged, with the reasons
//! ([`qcommon::message::Damage`]), and as much of it as can be read is
//! still counted.

use std::collections::BTreeMap;

use qcommon::envelope::is_double_bounce;
use qcommon::layout::Layout;
use qcommon::message::{Damage, Message, Source};
use qcommon::queue::Part;
use qcommon::safe_fs::Dir;
use qcommon::scan::{scan_counted, ScanEvent, ScanLayout, ScanOptions, ScannedMessage};
use qcommon::{Error, Result};

pub use qcommon::message::Basis;

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

/// Damage reasons, as reported: the words of
/// [`qcommon::message::Damage`].
pub mod reason {
    use qcommon::message::Damage;

    /// Files of the message exist but not its mess file.
    pub const NO_MESS: &str = Damage::NoMess.words();
    /// The mess file is empty.
    pub const EMPTY_MESS: &str = Damage::EmptyMess.words();
    /// The mess file's inode is not the message number.
    pub const INODE: &str = Damage::InodeMismatch.words();
    /// A file in the wrong bucket or directory, or two copies.
    pub const MISPLACED: &str = Damage::Misplaced.words();
    /// todo cannot be parsed.
    pub const BAD_TODO: &str = Damage::BadTodo.words();
    /// info cannot be parsed.
    pub const BAD_INFO: &str = Damage::BadInfo.words();
    /// local or remote cannot be parsed.
    pub const BAD_RECIPIENTS: &str = Damage::BadRecipients.words();
    /// local or remote ends in a partial record.
    pub const TRUNCATED: &str = Damage::TruncatedRecipients.words();
    /// A bounce file beside a todo file.
    pub const BOUNCE_BEFORE: &str = Damage::BounceBeforePreprocessing.words();
    /// Some file could not be read.
    pub const UNREADABLE: &str = Damage::Unreadable.words();

    /// The code of a reason (its words, snake_cased, for one not listed).
    pub fn code(words: &str) -> String {
        match Damage::ALL.iter().find(|d| d.words() == words) {
            Some(d) => d.code().to_string(),
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
    let sl = layout.shape();
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
    scanned: &ScannedMessage,
    mut tops: Option<(&mut TopCounter, &mut TopCounter)>,
    on_error: &mut dyn FnMut(Error),
) {
    let Context { root, wanted, sl, salvaged } = cx;
    let m = Message::of(scanned, salvaged.get(scanned.number));
    d.messages += 1;
    for p in m.problems.iter().filter(|p| p.is_io()) {
        on_error(Error::Other(p.to_string()));
    }
    match m.source {
        Some(Source::Todo) => d.unpreprocessed += 1,
        Some(Source::Info) => d.preprocessed += 1,
        Some(Source::Intd) | None => d.other += 1,
    }
    if scanned.has(Part::Bounce) {
        d.pending_bounce += 1;
    }
    if let Some(sender) = m.sender {
        let by = match m.source {
            Some(Source::Todo) => Some(false),
            Some(Source::Info) => Some(true),
            _ => None,
        };
        let count = |b: &mut BySource| {
            if by == Some(true) {
                b.info += 1;
            } else {
                b.todo += 1;
            }
        };
        if by.is_some() {
            if m.sender_lost() {
                d.salvaged += 1;
            } else if sender.is_empty() {
                count(&mut d.null_sender);
            } else if is_double_bounce(sender) {
                count(&mut d.double_bounce);
            }
            if let Some((s, _)) = tops.as_mut() {
                s.add(sender);
            }
        }
    }
    // Recipients: todo's all, local's and remote's still to do.
    match m.source {
        Some(Source::Todo) => {
            if let Some(Ok(t)) = &scanned.todo {
                d.todo_recipients += t.recipient_count();
            }
        }
        Some(Source::Info) => {
            for (l, pending) in [(&scanned.local, &mut d.local_pending), (&scanned.remote, &mut d.remote_pending)] {
                if let Some(Ok(r)) = l {
                    *pending += r.pending();
                }
            }
        }
        _ => {}
    }
    // Errors met reading a large envelope again, reported at the end.
    let mut late: Vec<Error> = Vec::new();
    if let (Some((_, dm)), Some(Source::Todo | Source::Info)) = (tops.as_mut(), m.source) {
        for l in &m.lists {
            let r = l.for_each(root, |address, done| {
                if !done {
                    dm.add(&domain_of(address));
                }
                true
            });
            if let Err(e) = r {
                late.push(e);
            }
        }
    }
    if let Some(b) = m.birth {
        if b.basis == Basis::InfoMtime {
            let lifetime = i64::try_from(wanted.lifetime.seconds).unwrap_or(i64::MAX);
            if wanted.now > b.time.saturating_add(lifetime) {
                d.past_lifetime += 1;
            }
        }
        let older = match d.oldest {
            None => true,
            Some(o) => (b.time, m.number) < (o.birth, o.number),
        };
        if older {
            d.oldest = Some(Oldest { number: m.number, birth: b.time, basis: b.basis });
        }
    }
    for e in late {
        on_error(e);
    }
    let damage = m.damage(sl);
    if damage.contains(&Damage::Unreadable) {
        d.unreadable += 1;
    }
    if !damage.is_empty() {
        d.damaged += 1;
        for r in damage {
            *d.damage.entry(r.words()).or_default() += 1;
        }
    }
}
