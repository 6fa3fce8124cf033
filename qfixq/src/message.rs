//! The per-message policy of docs/repair.md: given what the scan saw of
//! one message, the findings and the crash-safe steps that save it (or set
//! it aside). Also the strays found among the messages.
//!
//! Renumbering (docs/repair.md, "Renumbering"): a message whose mess
//! inode K differs from its number N is repaired under N while the scan
//! goes on, and moved after the scan, when every number is known: straight
//! to K when no message had K (the mess first to `.qfixq-renum-N-K`, the
//! other files to K, the mess to K), else in two halves through the
//! waiting names. The scanner reports every stray before the first
//! message, so a rerun after a crash knows all waiting names when it
//! judges a message: files of N already waiting, or still under N while
//! the mess waits, join message N; files under K moved there after the
//! mess took its waiting name join it too.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use qcommon::envelope::{Info, ListEnvelope, TodoEnvelope};
use qcommon::mutator::{Action, Step};
use qcommon::queue::{bucket_of, Ids, Part};
use qcommon::remove::{removal_action, Quarantine};
use qcommon::safe_fs::{parse_number, Expect, FileKind, NewFile, Stat};
use qcommon::scan::{Found, Parsed, ReadProblem, ScannedMessage, Stray, StrayWhy};

use crate::finding::{Finding, Kind};
use crate::structure::covered_by_structure;

/// Prefix of the temporary names of renumbered files.
pub const RENUM_PREFIX: &str = ".qfixq-renum-";
/// Prefix of the temporary link made while a todo is rebuilt from intd.
pub const TODO_PREFIX: &str = ".qfixq-todo-";
/// Prefix of a fresh copy of an envelope that had extra hard links, written
/// before the old file is set aside.
pub const FRESH_PREFIX: &str = ".qfixq-fresh-";
/// Prefix of the mutator's temporary files (left only by a crash).
pub const WRITE_PREFIX: &str = ".qtools-tmp.";

/// What message planning needs besides the message.
#[derive(Debug)]
pub struct MessageCtx {
    /// conf-split.
    pub split: u32,
    /// todo and intd are split.
    pub big_todo: bool,
    /// qmail's ids.
    pub ids: Ids,
    /// `live empty`: every message goes.
    pub empty: bool,
    /// Delete instead of moving to lost+found.
    pub no_quarantine: bool,
    /// Inodes that have extra names which this run removes before the
    /// messages are handled (pid/ leftovers, temporary links), with how
    /// many.
    pub doomed_links: HashMap<u64, u64>,
    /// Renumbered messages waiting to be moved after the scan.
    pub pending: PendingList,
    /// The numbers of every message the scan saw.
    pub seen: NumberSet,
    /// Waiting files found on disk (left by an interrupted run), by old number.
    pub waiting: HashMap<u64, Vec<Waiting>>,
    /// New numbers whose mess file is still waiting, with the waiting
    /// mess: files under the new number that the second half of that
    /// renumbering had already moved belong to it.
    pub waiting_mess: HashMap<u64, WaitingMess>,
    /// Numbers whose files stay where they are in this run (their action
    /// failed, or they were left as they are): no renumbering may move
    /// files to such a number.
    pub occupied: HashSet<u64>,
    /// Fresh copies found on disk (left by an interrupted run), by number.
    pub fresh: HashMap<u64, Vec<(Part, Stat)>>,
    /// Extra buckets seen, removed at the end.
    pub extra_buckets: Vec<PathBuf>,
    /// Records of salvaged messages (sender invented by qfixq).
    pub salvaged: crate::salvage::Book,
}

impl MessageCtx {
    /// The right path of `part` of message `n`.
    pub fn right_path(&self, part: Part, n: u64) -> PathBuf {
        let mut p = PathBuf::from(part.dir());
        if part.is_split(self.big_todo) {
            p.push(bucket_of(n, self.split).to_string());
        }
        p.push(n.to_string());
        p
    }

    /// Where `part` of message `old`, renumbered to `new`, waits between
    /// the two halves: beside where it belongs under its old number.
    pub fn temp_path(&self, part: Part, old: u64, new: u64) -> PathBuf {
        let mut p = self.right_path(part, old);
        p.set_file_name(format!("{RENUM_PREFIX}{old}-{new}"));
        p
    }
}

/// Renumbered messages waiting to be moved after the scan. After a copy
/// to another filesystem every message of the queue is one, so each takes
/// 16 bytes: the new number, and the old number shifted left by 16 with
/// [`Where`] in the low 16 bits. An old number of more than 48 bits (no
/// filesystem in use hands out such inode numbers) is kept whole, apart.
#[derive(Debug, Default)]
pub struct PendingList {
    packed: Vec<(u64, u64)>,
    wide: Vec<(u64, u64, u16)>,
}

/// Where the files of a pending renumbering are: the low byte has a bit
/// (`1 << Part::index`) per part under its waiting name
/// (`.qfixq-renum-OLD-NEW`), and [`FOUND_WAITING`] when an interrupted run
/// left them; the high byte a bit per part still under its old number,
/// in its right place.
type Where = u16;

impl PendingList {
    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.packed.len() + self.wide.len()
    }

    /// No message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Message `old` waits to become `new`, its files where `at` says.
    pub fn push(&mut self, new: u64, old: u64, at: Where) {
        if old >> 48 == 0 {
            self.packed.push((new, old << 16 | u64::from(at)));
        } else {
            self.wide.push((new, old, at));
        }
    }

    /// Forgets the renumbering of `old` when it is the last one pushed:
    /// a message's first half is carried out right after it is planned,
    /// so one that failed is always the last (no list scan per failure).
    pub fn forget_last(&mut self, old: u64) {
        if self.packed.last().is_some_and(|&(_, op)| op >> 16 == old) {
            self.packed.pop();
        } else if self.wide.last().is_some_and(|&(_, o, _)| o == old) {
            self.wide.pop();
        }
    }

    /// Every renumbering as (new, old, where), sorted by new number and
    /// without repeats.
    fn sorted(&mut self) -> impl Iterator<Item = (u64, u64, Where)> + '_ {
        self.packed.sort_unstable();
        self.packed.dedup();
        self.wide.sort_unstable();
        self.wide.dedup();
        self.packed.iter().map(|&(new, op)| (new, op >> 16, op as Where)).chain(self.wide.iter().copied())
    }
}

/// The numbers of the messages the scan saw, 4 bytes each (8 for a
/// number beyond 32 bits): a renumbering goes straight to a new number
/// only when no message had it.
#[derive(Debug, Default)]
pub struct NumberSet {
    narrow: Vec<u32>,
    wide: Vec<u64>,
    sorted: bool,
}

impl NumberSet {
    /// Adds `n`.
    pub fn insert(&mut self, n: u64) {
        match u32::try_from(n) {
            Ok(x) => self.narrow.push(x),
            Err(_) => self.wide.push(n),
        }
        self.sorted = false;
    }

    /// Sorts, once all numbers are in.
    fn seal(&mut self) {
        if !self.sorted {
            self.narrow.sort_unstable();
            self.narrow.dedup();
            self.wide.sort_unstable();
            self.wide.dedup();
            self.sorted = true;
        }
    }

    /// Whether `n` was added (after [`NumberSet::seal`]).
    fn contains(&self, n: u64) -> bool {
        match u32::try_from(n) {
            Ok(x) => self.narrow.binary_search(&x).is_ok(),
            Err(_) => self.wide.binary_search(&n).is_ok(),
        }
    }
}

/// The mess of an interrupted renumbering, waiting for its new number.
#[derive(Debug, Clone, Copy)]
pub struct WaitingMess {
    /// Its old number.
    pub old: u64,
    /// When it was last moved (its first-half rename, or later).
    pub ctime_ns: i64,
}

/// A waiting file of an interrupted renumbering, found by the scan.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Which file of the message.
    pub part: Part,
    /// Its new number.
    pub new: u64,
    /// What the scan saw.
    pub stat: Stat,
}

/// The state of one envelope file in the working view. `Valid(None)`
/// is a file this run writes anew.
enum Env<'m, T> {
    Absent,
    Valid(Option<&'m T>),
    Broken(String),
}

fn env<'m, T>(slot: Option<&Slot<'m>>, parsed: &'m Option<Parsed<T>>) -> Env<'m, T> {
    match (slot, parsed) {
        (None, _) => Env::Absent,
        (Some(s), _) if s.rewritten || s.waiting.is_some() => Env::Valid(None),
        (Some(_), Some(Ok(v))) => Env::Valid(Some(v)),
        (Some(_), Some(Err(e))) => Env::Broken(e.to_string()),
        (Some(_), None) => Env::Broken("not read".into()),
    }
}

/// One file of the message as planning goes on.
#[derive(Clone)]
struct Slot<'m> {
    found: Option<&'m Found>,
    path: PathBuf,
    /// Written anew by this run.
    rewritten: bool,
    /// Already waiting under its renumbering name (an interrupted run had
    /// repaired and moved it).
    waiting: Option<Stat>,
}

struct Planner<'c, 'm> {
    ctx: &'c mut MessageCtx,
    q: &'c mut Quarantine,
    msg: &'m ScannedMessage,
    slots: [Option<Slot<'m>>; 7],
    /// Fresh copies an interrupted run left for this message.
    fresh: Vec<(Part, Stat)>,
    steps: Vec<Step>,
    /// Where owner and mode steps go: before envelope repairs, so a link
    /// made by a repair cannot make them refuse.
    owner_at: usize,
    notes: Vec<(Kind, PathBuf, String, String)>,
}

/// A flag beside the part bits of a pending renumbering: its files were
/// found waiting on disk, left by an interrupted run.
const FOUND_WAITING: Where = 0x80;

fn mask(part: Part) -> Where {
    1 << part.index()
}

/// The bit of `part` under its old number in a [`Where`].
fn at_old(part: Part) -> Where {
    mask(part) << 8
}

impl<'c, 'm> Planner<'c, 'm> {
    fn n(&self) -> u64 {
        self.msg.number
    }

    fn note(&mut self, kind: Kind, path: PathBuf, problem: impl Into<String>, remedy: impl Into<String>) {
        self.notes.push((kind, path, problem.into(), remedy.into()));
    }

    fn path(&self, part: Part) -> PathBuf {
        match &self.slots[part.index()] {
            Some(s) => s.path.clone(),
            None => self.ctx.right_path(part, self.n()),
        }
    }

    fn has(&self, part: Part) -> bool {
        self.slots[part.index()].is_some()
    }

    /// Moves files out of the queue (or deletes them with --no-quarantine).
    fn set_aside(&mut self, files: Vec<(PathBuf, Part, Option<Expect>)>, reason: &str) {
        if files.is_empty() {
            return;
        }
        if self.ctx.no_quarantine {
            let mut files = files;
            files.sort_by_key(|(_, part, _)| Part::REMOVAL_ORDER.iter().position(|p| p == part));
            for (path, _, expect) in files {
                self.steps.push(Step::Unlink { path, expect });
            }
        } else {
            let steps = self.q.message_steps(self.n(), &files, reason);
            self.steps.extend(steps);
        }
    }

    fn expect(f: Option<&Found>) -> Option<Expect> {
        f.and_then(|f| f.stat.map(|s| Expect { ino: s.ino, kind: s.kind, max_nlink: u64::MAX }))
    }

    /// Sets aside one part.
    fn drop_part(&mut self, part: Part, reason: &str) {
        if let Some(s) = self.slots[part.index()].take() {
            let ex = Self::expect(s.found);
            self.set_aside(vec![(s.path, part, ex)], reason);
        }
    }

    /// Sets aside every file of the message: it cannot be saved.
    fn drop_all(&mut self, reason: &str) {
        let mut files = Vec::new();
        for part in Part::ALL {
            if let Some(s) = self.slots[part.index()].take() {
                files.push((s.path, part, Self::expect(s.found)));
            }
        }
        self.set_aside(files, reason);
    }

    fn write(&mut self, part: Part, data: Vec<u8>, mtime: Option<i64>) {
        let path = self.path(part);
        let replace = self.has(part);
        let uid = self.ctx.ids.uid(part.file_owner());
        let gid = self.ctx.ids.qmail_gid;
        self.steps.push(Step::WriteFile {
            path: path.clone(),
            data,
            spec: NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime, replace },
        });
        self.slots[part.index()] = Some(Slot { found: None, path, rewritten: true, waiting: None });
    }

    /// Rewrites `part` in place as its own first `len` bytes (a list too
    /// large to hold, cut at its last complete record), in bounded memory.
    fn cut(&mut self, part: Part, len: u64) {
        let path = self.path(part);
        let expect = Self::expect(self.slots[part.index()].as_ref().and_then(|s| s.found));
        let uid = self.ctx.ids.uid(part.file_owner());
        let gid = self.ctx.ids.qmail_gid;
        self.steps.push(Step::CopyPrefix {
            from: path.clone(),
            expect,
            len,
            path: path.clone(),
            spec: NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime: None, replace: true },
        });
        self.slots[part.index()] = Some(Slot { found: None, path, rewritten: true, waiting: None });
    }

    /// Replaces a file that has extra hard links by a fresh copy: the copy
    /// is written under a temporary name first, then the old file is set
    /// aside by a rename (nothing of its inode changes), then the copy
    /// takes its place. A crash anywhere leaves a state a rerun finishes.
    fn replace_fresh(&mut self, part: Part, data: Content, mtime: Option<i64>, reason: &str) {
        let n = self.n();
        let right = self.ctx.right_path(part, n);
        let tmp = fresh_path(&right, n);
        if let Some(i) = self.fresh.iter().position(|(x, _)| *x == part) {
            self.fresh.remove(i); // written by the interrupted run
        } else {
            let uid = self.ctx.ids.uid(part.file_owner());
            let gid = self.ctx.ids.qmail_gid;
            let spec = NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime, replace: false };
            self.steps.push(match data {
                Content::Bytes(data) => Step::WriteFile { path: tmp.clone(), data, spec },
                Content::Copy { from, expect, len } => Step::CopyPrefix { from, expect, len, path: tmp.clone(), spec },
            });
        }
        self.drop_part(part, reason);
        self.steps.push(Step::Rename { from: tmp, to: right.clone(), expect: None });
        self.slots[part.index()] = Some(Slot { found: None, path: right, rewritten: true, waiting: None });
    }

    /// A todo made anew as a hard link of a valid intd: link to a
    /// temporary name, then rename over the todo (one atomic step each).
    fn todo_from_intd(&mut self) {
        let n = self.n();
        let intd = self.path(Part::Intd);
        let todo = self.path(Part::Todo);
        if self.has(Part::Todo) {
            let mut tmp = todo.clone();
            tmp.set_file_name(format!("{TODO_PREFIX}{n}"));
            self.steps.push(Step::Link { from: intd, to: tmp.clone() });
            self.steps.push(Step::Replace { from: tmp, to: todo.clone() });
        } else {
            self.steps.push(Step::Link { from: intd, to: todo.clone() });
        }
        self.slots[Part::Todo.index()] = Some(Slot { found: None, path: todo, rewritten: true, waiting: None });
    }
}

/// What a fresh copy is made of: bytes in hand, or the first `len` bytes
/// of a file too large to hold.
enum Content {
    Bytes(Vec<u8>),
    Copy { from: PathBuf, expect: Option<Expect>, len: u64 },
}

/// Plans one message; pushes its findings (the first carries the steps).
pub fn plan_message(ctx: &mut MessageCtx, q: &mut Quarantine, msg: &ScannedMessage, out: &mut Vec<Finding>) {
    if !ctx.empty {
        ctx.salvaged.saw(msg.number);
    }
    ctx.seen.insert(msg.number);
    if is_healthy_preprocessed(ctx, msg) {
        // Tests build with debug assertions: there the full planner runs
        // too and must agree that there is nothing to do.
        if cfg!(debug_assertions) {
            let before = out.len();
            plan_in_full(ctx, q, msg, out);
            debug_assert_eq!(out.len(), before, "fast path judged message {} healthy", msg.number);
        }
        return;
    }
    plan_in_full(ctx, q, msg, out);
}

/// True for a preprocessed message (state S5) with nothing to repair: the
/// bulk of any large queue. It is judged on the scan alone, without the
/// paths and steps the full planner builds, and it is conservative: any
/// doubt (a todo or intd, a second copy, a partial record, an error, a
/// link count above one, a file an interrupted run left) sends the message
/// to the full planner.
fn is_healthy_preprocessed(ctx: &MessageCtx, msg: &ScannedMessage) -> bool {
    let n = msg.number;
    if ctx.empty || !msg.io_errors.is_empty() || !msg.extra.is_empty() || ctx.fresh.contains_key(&n) {
        return false;
    }
    if !msg.has(Part::Mess) || !msg.has(Part::Info) || msg.has(Part::Todo) || msg.has(Part::Intd) {
        return false;
    }
    let bucket = bucket_of(n, ctx.split);
    for f in msg.all_files() {
        let Some(st) = f.stat else { return false };
        let right_bucket = if f.part.is_split(ctx.big_todo) { Some(bucket) } else { None };
        let gid_ok = !f.part.group_is_qmail() || st.gid == ctx.ids.qmail_gid;
        if f.bucket != right_bucket
            || st.kind != FileKind::Regular
            || st.nlink != 1
            || st.uid != ctx.ids.uid(f.part.file_owner())
            || !gid_ok
            || st.perm != f.part.file_perm()
        {
            return false;
        }
        if f.part == Part::Mess && (st.ino != n || st.size == 0) {
            return false;
        }
    }
    let list_ok = |part: Part, parsed: &Option<Parsed<ListEnvelope>>| {
        !msg.has(part) || matches!(parsed, Some(Ok(r)) if r.dropped() == 0)
    };
    matches!(msg.info, Some(Ok(_))) && list_ok(Part::Local, &msg.local) && list_ok(Part::Remote, &msg.remote)
}

fn plan_in_full(ctx: &mut MessageCtx, q: &mut Quarantine, msg: &ScannedMessage, out: &mut Vec<Finding>) {
    let n = msg.number;
    let mess_path = msg.file(Part::Mess).map(|f| f.rel_path(n)).unwrap_or_else(|| ctx.right_path(Part::Mess, n));

    // Anything that could not be read: leave the message as it is.
    let io = msg.io_errors.first().map(|e| e.to_string()).or_else(|| {
        [
            msg.todo.as_ref().and_then(|r| r.as_ref().err()),
            msg.intd.as_ref().and_then(|r| r.as_ref().err()),
            msg.info.as_ref().and_then(|r| r.as_ref().err()),
            msg.local.as_ref().and_then(|r| r.as_ref().err()),
            msg.remote.as_ref().and_then(|r| r.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        .find_map(|p| match p {
            ReadProblem::Io(e) => Some(e.to_string()),
            ReadProblem::Bad(_) => None,
        })
    });
    if let Some(e) = io {
        out.push(Finding::leave(Kind::Unreadable, mess_path, e, "message left as it is"));
        return;
    }
    if msg.all_files().any(|f| f.stat.is_none()) {
        out.push(Finding::leave(Kind::Unreadable, mess_path, "not stated", "message left as it is"));
        return;
    }

    if ctx.empty {
        out.push(Finding::fix(Kind::Emptied, mess_path, "message", "removed (live empty)", removal_action(msg)));
        return;
    }

    // Files under this number while the mess of a renumbering to this
    // number still waits: those the second half of that renumbering had
    // already moved here belong to it, and it finishes them. Any other
    // file under this number (an orphan that a crash in the first half
    // left, say) is not that message's: it is judged on its own.
    let moved = |f: &Found| -> bool {
        let Some(wm) = ctx.waiting_mess.get(&n) else { return false };
        if msg.has(Part::Mess) {
            return false;
        }
        // A part still waiting cannot also have been moved; a file moved
        // by the second half was moved after the mess's first-half rename.
        let theirs = ctx.waiting.get(&wm.old).map(Vec::as_slice).unwrap_or_default();
        let also_waiting = theirs.iter().any(|w| w.new == n && w.part == f.part);
        let Some(st) = f.stat else { return false };
        if also_waiting {
            return false;
        }
        // While N's own mess waits too (N is being renumbered as well), a
        // file under N may instead be N's own, not yet moved. Renaming a
        // name of an inode sets its status-change time, and todo and intd
        // of one message share one: N's todo still under N looks moved
        // once N's intd took its renumbering name (or N's new number). The
        // other name tells instead: waiting for this number, the file is
        // the waiting message's; under N too, the time decides (neither
        // name or both were moved); anywhere else (N's renumbering name,
        // N's new number), it is N's own.
        let own_waits = ctx.waiting.get(&n).is_some_and(|l| l.iter().any(|w| w.part == Part::Mess));
        if own_waits && st.nlink > 1 {
            if theirs.iter().any(|w| w.new == n && w.stat.ino == st.ino) {
                return true;
            }
            if !msg.all_files().any(|g| g.part != f.part && g.stat.is_some_and(|s| s.ino == st.ino)) {
                return false;
            }
        }
        st.ctime_ns >= wm.ctime_ns
    };
    let mut slots: [Option<Slot>; 7] = Default::default();
    let mut skipped = 0;
    for f in msg.files.iter().flatten() {
        if moved(f) {
            skipped += 1;
            continue;
        }
        slots[f.part.index()] = Some(Slot { found: Some(f), path: f.rel_path(n), rewritten: false, waiting: None });
    }
    if skipped > 0 && slots.iter().all(Option::is_none) && msg.extra.is_empty() {
        return;
    }
    if join_waiting_mess(ctx, msg, &slots) {
        return;
    }
    // Files of this message an interrupted run had already moved aside for
    // renumbering: they were repaired before they were moved.
    let mess_ino = msg.file(Part::Mess).and_then(|f| f.stat).map(|s| s.ino);
    if let Some(k) = mess_ino.filter(|k| *k != n) {
        if let Some(list) = ctx.waiting.get(&n) {
            if list.iter().all(|w| w.new == k && slots[w.part.index()].is_none()) {
                for w in ctx.waiting.remove(&n).unwrap_or_default() {
                    let path = ctx.temp_path(w.part, n, k);
                    slots[w.part.index()] = Some(Slot { found: None, path, rewritten: false, waiting: Some(w.stat) });
                }
            }
        }
    }
    let fresh = ctx.fresh.remove(&n).unwrap_or_default();
    let mut p = Planner { ctx, q, msg, slots, fresh, steps: Vec::new(), owner_at: 0, notes: Vec::new() };
    // A fresh copy whose old file is already set aside: put it in place.
    for (part, _) in p.fresh.clone() {
        if !p.has(part) {
            let right = p.ctx.right_path(part, n);
            p.steps.push(Step::Rename { from: fresh_path(&right, n), to: right.clone(), expect: None });
            p.slots[part.index()] = Some(Slot { found: None, path: right, rewritten: true, waiting: None });
            p.fresh.retain(|(x, _)| *x != part);
        }
    }

    // Second copies of a part: keep the one in its place.
    for f in &msg.extra {
        let path = f.rel_path(n);
        p.note(Kind::Duplicate, path.clone(), format!("second {} file of message {n}", f.part.dir()), "set aside");
        let ex = Planner::expect(Some(f));
        p.set_aside(vec![(path, f.part, ex)], &format!("second copy of the {} file of message {n}", f.part.dir()));
    }

    // Extra hard links: never chown or chmod such a file.
    let inode_of = |p: &Planner, part: Part| -> Option<u64> {
        let s = p.slots[part.index()].as_ref()?;
        s.waiting.map(|w| w.ino).or_else(|| s.found.and_then(|f| f.stat).map(|st| st.ino))
    };
    let todo_intd_shared = matches!((inode_of(&p, Part::Todo), inode_of(&p, Part::Intd)), (Some(a), Some(b)) if a == b);
    let mut extra_linked: Vec<Part> = Vec::new();
    for part in Part::ALL {
        let Some(slot) = p.slots[part.index()].as_ref() else { continue };
        let Some(st) = slot.waiting.or_else(|| slot.found.and_then(|f| f.stat)) else { continue };
        let base = if todo_intd_shared && matches!(part, Part::Todo | Part::Intd) { 2 } else { 1 };
        let allowed = base + p.ctx.doomed_links.get(&st.ino).copied().unwrap_or(0);
        if st.nlink > allowed {
            extra_linked.push(part);
            let path = slot.path.clone();
            let problem = format!("{} hard links, {base} expected: it may be linked from outside the queue", st.nlink);
            if part == Part::Mess {
                p.note(Kind::ExtraLinks, path, problem, "whole message set aside, owner and mode untouched");
                p.drop_all("the mess file had extra hard links (it may be linked from outside the queue)");
                return flush(p, out, mess_path);
            }
            p.note(
                Kind::ExtraLinks,
                path,
                problem,
                "owner and mode untouched; replaced by a fresh copy when valid, else set aside",
            );
        }
    }
    // A valid envelope with extra links is replaced, in one atomic rename,
    // by a fresh copy of what was read (the old inode keeps its other
    // names); an invalid one is set aside by a rename.
    for part in extra_linked {
        let waiting = p.slots[part.index()].as_ref().is_some_and(|s| s.waiting.is_some());
        // A large envelope is copied from its file (the first `len` bytes:
        // the whole todo, or a list's complete records).
        let copy = |p: &Planner, from: Part, len: u64| {
            let found = p.slots[from.index()].as_ref().and_then(|s| s.found);
            let expect = Planner::expect(found).map(|e| Expect { max_nlink: u64::MAX, ..e });
            Content::Copy { from: p.path(from), expect, len }
        };
        let fresh: Option<(Content, Option<i64>)> = if waiting {
            None
        } else {
            match part {
                Part::Todo | Part::Intd => match (&msg.todo, &msg.intd) {
                    (Some(Ok(TodoEnvelope::Whole(t))), _) | (_, Some(Ok(TodoEnvelope::Whole(t)))) => {
                        Some((Content::Bytes(t.to_bytes()), None))
                    }
                    (Some(Ok(TodoEnvelope::Large(t))), _) => Some((copy(&p, Part::Todo, t.len), None)),
                    (_, Some(Ok(TodoEnvelope::Large(t)))) => Some((copy(&p, Part::Intd, t.len), None)),
                    _ => None,
                },
                Part::Info => match &msg.info {
                    Some(Ok(i)) => {
                        Some((Content::Bytes(i.to_bytes()), msg.file(Part::Info).and_then(|f| f.stat).map(|s| s.mtime)))
                    }
                    _ => None,
                },
                Part::Local | Part::Remote => {
                    let parsed = if part == Part::Local { &msg.local } else { &msg.remote };
                    match parsed {
                        Some(Ok(ListEnvelope::Whole(r))) => Some((Content::Bytes(r.to_bytes()), None)),
                        Some(Ok(l @ ListEnvelope::Large(_))) => Some((copy(&p, part, l.kept()), None)),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let todo_ok = p.slots[Part::Todo.index()].as_ref().is_some_and(|s| s.rewritten)
            || (matches!(msg.todo, Some(Ok(_))) && !extra_linked_has(&p, Part::Todo, todo_intd_shared));
        match (part, fresh) {
            (Part::Intd, _) if !p.has(Part::Todo) || todo_ok => {
                p.drop_part(Part::Intd, "extra hard links: it may be linked from outside the queue");
            }
            (Part::Intd, Some((data, _))) => {
                p.replace_fresh(Part::Todo, data, None, "extra hard links: it may be linked from outside the queue");
                p.drop_part(Part::Intd, "extra hard links: it may be linked from outside the queue");
            }
            (_, _) if p.slots[part.index()].as_ref().is_some_and(|s| s.rewritten) => {}
            (_, Some((data, mtime))) => {
                p.replace_fresh(part, data, mtime, "extra hard links: it may be linked from outside the queue")
            }
            (_, None) => p.drop_part(part, "extra hard links: it may be linked from outside the queue"),
        }
    }
    // Fresh copies left by an interrupted run that are not needed now.
    for (part, st) in std::mem::take(&mut p.fresh) {
        let path = fresh_path(&p.ctx.right_path(part, n), n);
        p.steps.push(Step::Unlink { path, expect: Some(Expect { ino: st.ino, kind: st.kind, max_nlink: 1 }) });
    }
    p.owner_at = p.steps.len();

    // The message's state.
    let mess = match msg.file(Part::Mess) {
        Some(m) if p.has(Part::Mess) => m,
        _ => {
            let any = p.slots.iter().flatten().next().map(|s| s.path.clone()).unwrap_or(mess_path.clone());
            p.note(Kind::Unsalvageable, any, format!("files of message {n} without its mess file"), "set aside");
            p.drop_all("mess missing: no message content to deliver");
            return flush(p, out, mess_path);
        }
    };
    let mess_st = mess.stat.expect("stated");
    if mess_st.size == 0 {
        p.note(Kind::Unsalvageable, mess.rel_path(n), "mess is empty (0 bytes)", "message set aside");
        p.drop_all("mess empty: nothing to deliver");
        return flush(p, out, mess_path);
    }

    let todo = env(p.slots[Part::Todo.index()].as_ref(), &msg.todo);
    let intd_valid = p.has(Part::Intd)
        && if todo_intd_shared { matches!(msg.todo, Some(Ok(_))) } else { matches!(msg.intd, Some(Ok(_))) };
    let info = env(p.slots[Part::Info.index()].as_ref(), &msg.info);
    let local = env(p.slots[Part::Local.index()].as_ref(), &msg.local);
    let remote = env(p.slots[Part::Remote.index()].as_ref(), &msg.remote);
    let valid_lists = [&local, &remote].iter().filter(|e| matches!(e, Env::Valid(_))).count();
    let broken_lists = [&local, &remote].iter().filter(|e| matches!(e, Env::Broken(_))).count();
    let any_pre = p.has(Part::Info) || p.has(Part::Local) || p.has(Part::Remote);
    let pre_complete = matches!(info, Env::Valid(_)) && valid_lists > 0 && broken_lists == 0;
    let pre_usable = valid_lists > 0 || (matches!(info, Env::Valid(_)) && !p.has(Part::Local) && !p.has(Part::Remote));

    let mut s5 = false;
    match (&todo, p.has(Part::Intd)) {
        (Env::Valid(_), _) => {
            if p.has(Part::Bounce) {
                let path = p.path(Part::Bounce);
                p.note(Kind::StaleBounce, path.clone(), "bounce file beside a not yet preprocessed message", "removed");
                let ex = Planner::expect(msg.file(Part::Bounce));
                p.steps.push(Step::Unlink { path, expect: ex });
                p.slots[Part::Bounce.index()] = None;
            }
        }
        (Env::Broken(why), _) => {
            let path = p.path(Part::Todo);
            if intd_valid && !todo_intd_shared {
                p.note(Kind::Envelope, path, format!("todo broken: {why}"), "made anew from the valid intd");
                p.todo_from_intd();
                drop_stale_bounce(&mut p);
            } else if pre_complete {
                p.note(
                    Kind::Envelope,
                    path,
                    format!("todo broken: {why}"),
                    "set aside; the message goes on as preprocessed",
                );
                p.drop_part(Part::Todo, "broken todo beside a complete preprocessed envelope");
                p.drop_part(Part::Intd, "intd of a broken todo beside a complete preprocessed envelope");
                s5 = true;
            } else {
                p.note(
                    Kind::Unsalvageable,
                    path,
                    format!("todo broken: {why}; no complete envelope elsewhere"),
                    "message set aside",
                );
                p.drop_all("broken todo and no complete envelope anywhere: recipients unknown");
                return flush(p, out, mess_path);
            }
        }
        (Env::Absent, true) => {
            let path = p.path(Part::Intd);
            if any_pre && pre_usable {
                p.note(Kind::Leftover, path, "intd left beside a preprocessed message", "set aside");
                p.drop_part(Part::Intd, "intd left beside a preprocessed message");
                s5 = true;
            } else if any_pre && intd_valid {
                p.note(
                    Kind::Envelope,
                    path,
                    "preprocessed envelope broken",
                    "todo made anew from the valid intd; qmail-send preprocesses it again",
                );
                p.todo_from_intd();
                drop_stale_bounce(&mut p);
            } else if any_pre {
                p.note(Kind::Unsalvageable, path, "no valid envelope anywhere", "message set aside");
                p.drop_all("no valid envelope: recipients unknown");
                return flush(p, out, mess_path);
            } else {
                p.note(
                    Kind::Leftover,
                    mess.rel_path(n),
                    "mess and intd without todo (qmail-queue never finished)",
                    "set aside",
                );
                p.drop_all("S3: qmail-queue never committed this message");
                return flush(p, out, mess_path);
            }
        }
        (Env::Absent, false) => {
            if !any_pre {
                let why = if p.has(Part::Bounce) {
                    "mess and a bounce report, without envelope"
                } else {
                    "mess alone (qmail-queue never finished)"
                };
                p.note(Kind::Leftover, mess.rel_path(n), why, "set aside");
                p.drop_all("S2: a mess file without any envelope");
                return flush(p, out, mess_path);
            }
            s5 = true;
        }
    }

    if s5 {
        if valid_lists == 0 && !pre_usable {
            let path = p.path(Part::Info);
            p.note(Kind::Unsalvageable, path, "no valid recipient list and no valid sender", "message set aside");
            p.drop_all("preprocessed envelope broken beyond repair: recipients unknown");
            return flush(p, out, mess_path);
        }
        for (part, e) in [(Part::Local, &local), (Part::Remote, &remote)] {
            match e {
                Env::Broken(why) => {
                    let path = p.path(part);
                    p.note(
                        Kind::Envelope,
                        path,
                        format!("{} broken: {why}", part.dir()),
                        "set aside; its recipients cannot be recovered",
                    );
                    p.drop_part(part, &format!("unparsable {} file", part.dir()));
                }
                Env::Valid(Some(r)) if r.dropped() > 0 => {
                    let path = p.path(part);
                    p.note(
                        Kind::PartialRecord,
                        path,
                        format!("partial last record ({} bytes)", r.dropped()),
                        format!("dropped; {} complete records kept", r.records()),
                    );
                    match r {
                        ListEnvelope::Whole(r) => p.write(part, r.to_bytes(), None),
                        ListEnvelope::Large(s) => p.cut(part, s.kept),
                    }
                }
                _ => {}
            }
        }
        match &info {
            Env::Valid(_) => {}
            other => {
                let path = p.path(Part::Info);
                let problem = match other {
                    Env::Broken(why) => format!("info broken: {why}"),
                    _ => "info missing".to_string(),
                };
                let birth = msg.file(Part::Info).and_then(|f| f.stat).map(|s| s.mtime).unwrap_or(mess_st.mtime);
                p.note(
                    Kind::SenderLost,
                    path,
                    problem,
                    format!(
                        "written with the null sender, birth time {} kept (sender lost; recorded as salvaged)",
                        qcommon::human::when(birth, now_secs())
                    ),
                );
                // The record first: a crash never leaves an invented null
                // sender that qkillns would take for a bounce.
                let size = msg.file(Part::Info).and_then(|f| f.stat).map(|s| s.size).filter(|_| p.has(Part::Info));
                let why = crate::salvage::why(size);
                let rec = qcommon::salvaged::Record { number: n, inode: mess_st.ino, birth, why };
                let steps = p.ctx.salvaged.record_steps(p.q, rec);
                p.steps.extend(steps);
                p.write(Part::Info, Info::default().to_bytes(), Some(birth));
            }
        }
    }

    // Owners and modes of the files kept as they are, set before any
    // envelope repair (a link made by a repair must not make them refuse).
    let ids = p.ctx.ids;
    let mut owner_steps = Vec::new();
    let mut seen_inodes: Vec<u64> = Vec::new();
    for part in Part::ALL {
        let Some(slot) = p.slots[part.index()].clone() else { continue };
        let Some(f) = slot.found else { continue };
        if slot.rewritten {
            continue;
        }
        let st = f.stat.expect("stated");
        if seen_inodes.contains(&st.ino) {
            continue;
        }
        seen_inodes.push(st.ino);
        let uid = ids.uid(part.file_owner());
        let gid = if part.group_is_qmail() { ids.qmail_gid } else { st.gid };
        let perm = part.file_perm();
        let max_nlink = if todo_intd_shared && matches!(part, Part::Todo | Part::Intd) { 2 } else { 1 };
        let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink };
        if st.uid != uid || st.gid != gid {
            p.note(
                Kind::Owner,
                slot.path.clone(),
                format!("owner {}:{}, should be {uid}:{gid}", st.uid, st.gid),
                "chown",
            );
            owner_steps.push(Step::Chown { path: slot.path.clone(), expect: ex, uid, gid });
        }
        if st.perm != perm || ((st.uid != uid || st.gid != gid) && st.perm & 0o6000 != 0) {
            p.note(Kind::Mode, slot.path.clone(), format!("mode {:04o}, should be {perm:04o}", st.perm), "chmod");
            owner_steps.push(Step::Chmod { path: slot.path.clone(), expect: ex, perm });
        }
    }
    let at = p.owner_at;
    p.steps.splice(at..at, owner_steps);

    // Moves: renumbering, or files into their right buckets; mess last.
    let order = [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Mess];
    if mess_st.ino != n {
        let k = mess_st.ino;
        p.note(
            Kind::Renumber,
            mess.rel_path(n),
            format!("name differs from its inode {k}"),
            format!("renumbered to {k}"),
        );
        // Every file in its right place under the old number, none
        // waiting, no salvage record: the files move after the scan,
        // straight to the new number when no message had it.
        let direct = !p.ctx.salvaged.has(n)
            && Part::ALL.iter().all(|&part| {
                p.slots[part.index()]
                    .as_ref()
                    .is_none_or(|s| s.waiting.is_none() && s.path == p.ctx.right_path(part, n))
            });
        let mut at: Where = 0;
        for part in order {
            let Some(slot) = p.slots[part.index()].clone() else { continue };
            if direct {
                at |= at_old(part);
                continue;
            }
            if slot.waiting.is_none() {
                let to = p.ctx.temp_path(part, n, k);
                let expect = Planner::expect(slot.found);
                p.steps.push(Step::Rename { from: slot.path, to, expect });
            }
            at |= mask(part);
        }
        if !direct {
            p.steps.extend(p.ctx.salvaged.renumber_steps(n, k));
        }
        p.ctx.pending.push(k, n, at);
    } else {
        for part in order {
            let Some(slot) = p.slots[part.index()].clone() else { continue };
            let right = p.ctx.right_path(part, n);
            if slot.path != right {
                p.note(
                    Kind::WrongBucket,
                    slot.path.clone(),
                    "in the wrong bucket",
                    format!("moved to {}", qcommon::error::escape_path(&right)),
                );
                let expect = Planner::expect(slot.found);
                p.steps.push(Step::Rename { from: slot.path, to: right, expect });
            }
        }
    }
    flush(p, out, mess_path)
}

/// Whether the todo has more links than it may (used when both todo and
/// intd of a pair are judged).
fn extra_linked_has(p: &Planner<'_, '_>, part: Part, shared: bool) -> bool {
    let Some(slot) = p.slots[part.index()].as_ref() else { return false };
    let Some(st) = slot.found.and_then(|f| f.stat) else { return false };
    let base = if shared { 2 } else { 1 };
    st.nlink > base + p.ctx.doomed_links.get(&st.ino).copied().unwrap_or(0)
}

fn drop_stale_bounce(p: &mut Planner<'_, '_>) {
    if p.has(Part::Bounce) {
        let path = p.path(Part::Bounce);
        p.note(Kind::StaleBounce, path.clone(), "bounce file beside a not yet preprocessed message", "removed");
        let ex = Planner::expect(p.msg.file(Part::Bounce));
        p.steps.push(Step::Unlink { path, expect: ex });
        p.slots[Part::Bounce.index()] = None;
    }
}

fn flush(p: Planner<'_, '_>, out: &mut Vec<Finding>, mess_path: PathBuf) {
    let Planner { steps, notes, msg, .. } = p;
    let mut action = Some(Action { message: Some(msg.number), steps });
    for (kind, path, problem, remedy) in notes {
        let (a, follows) = match action.take() {
            Some(a) => (a, false),
            None => (Action { message: Some(msg.number), steps: Vec::new() }, true),
        };
        let mut f = Finding::fix(kind, path, problem, remedy, a);
        f.follows = follows;
        out.push(f);
    }
    if let Some(a) = action {
        if !a.steps.is_empty() {
            out.push(Finding::fix(Kind::Structure, mess_path, "message", "steps", a));
        }
    }
}

/// Plans one stray from the scan.
pub fn plan_stray(ctx: &mut MessageCtx, q: &mut Quarantine, stray: &Stray, out: &mut Vec<Finding>) {
    let path = stray.path.clone();
    let Some(st) = stray.stat else { return }; // vanished
    let name = path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX };
    match stray.why {
        StrayWhy::NotADirectory => return,
        StrayWhy::NotABucket if covered_by_structure(&path, ctx.split, ctx.big_todo) => return,
        StrayWhy::UnknownTopLevel => {
            out.push(Finding::leave(Kind::Note, path, "unknown entry in the queue (qmail ignores it)", "left alone"));
            return;
        }
        StrayWhy::ExtraBucket(_) if st.kind == FileKind::Directory => {
            ctx.extra_buckets.push(path);
            return;
        }
        StrayWhy::PidLeftover if st.kind != FileKind::Directory => {
            out.push(Finding::fix(
                Kind::PidLeftover,
                path.clone(),
                "leftover in pid/ (a qmail-queue that died)",
                "removed",
                Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
            ));
            return;
        }
        _ => {}
    }
    if st.kind == FileKind::Regular {
        // Our own temporary names, left by a crash.
        if let Some((old, new)) = name.strip_prefix(RENUM_PREFIX.as_bytes()).and_then(parse_pair) {
            if let Some(part) = stray.part {
                if ctx.temp_path(part, old, new) == path && !ctx.empty {
                    if part == Part::Mess {
                        ctx.waiting_mess.insert(new, WaitingMess { old, ctime_ns: st.ctime_ns });
                    }
                    ctx.waiting.entry(old).or_default().push(Waiting { part, new, stat: st });
                    return;
                }
            }
        }
        if not_our_fresh(&name, &st) {
            out.push(Finding::fix(
                Kind::Stray,
                path.clone(),
                format!("another name of a file with {} links, under a repair's temporary name", st.nlink),
                "name removed (the file keeps its other names)",
                Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
            ));
            return;
        }
        if let Some(n) = name.strip_prefix(FRESH_PREFIX.as_bytes()).and_then(parse_number) {
            if let Some(part) = stray.part {
                if fresh_path(&ctx.right_path(part, n), n) == path && !ctx.empty {
                    ctx.fresh.entry(n).or_default().push((part, st));
                    return;
                }
            }
        }
        if name.starts_with(TODO_PREFIX.as_bytes()) || name.starts_with(WRITE_PREFIX.as_bytes()) {
            out.push(Finding::fix(
                Kind::Stray,
                path.clone(),
                "temporary file of an interrupted repair",
                "removed",
                Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
            ));
            return;
        }
    }
    let what = stray.why.describe();
    match st.kind {
        FileKind::Regular | FileKind::Directory => {
            let steps = if ctx.no_quarantine && st.kind == FileKind::Regular {
                vec![Step::Unlink { path: path.clone(), expect: Some(ex) }]
            } else {
                q.stray_steps(&path, Some(ex), &format!("{} ({what})", st.kind.name()))
            };
            let how = if ctx.no_quarantine && st.kind == FileKind::Regular { "removed" } else { "moved to lost+found" };
            let kind = if stray.why == StrayWhy::PidLeftover { Kind::PidLeftover } else { Kind::Stray };
            out.push(Finding::fix(
                kind,
                path,
                format!("{} ({what})", st.kind.name()),
                how,
                Action { message: None, steps },
            ));
        }
        k => out.push(Finding::fix(
            Kind::Stray,
            path.clone(),
            format!("{} ({what})", k.name()),
            "removed, never followed or opened",
            Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
        )),
    }
}

/// Counts extra names that strays give to message inodes (pid/ leftovers
/// and temporary links), before any message is judged.
pub fn note_doomed_link(ctx: &mut MessageCtx, stray: &Stray) {
    let Some(st) = stray.stat else { return };
    if st.kind != FileKind::Regular {
        return;
    }
    let name = stray.path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    if stray.why == StrayWhy::PidLeftover || name.starts_with(TODO_PREFIX.as_bytes()) || not_our_fresh(&name, &st) {
        *ctx.doomed_links.entry(st.ino).or_insert(0) += 1;
    }
}

/// A file under a fresh copy's name that qfixq did not write: qfixq
/// writes a fresh copy as a new file with one link, so one with more
/// links is another name of some other file (of this message, or from
/// outside the queue). Taking it for a copy would leave that file with an
/// extra link, and the message to a second run.
fn not_our_fresh(name: &[u8], st: &Stat) -> bool {
    name.starts_with(FRESH_PREFIX.as_bytes()) && st.nlink > 1
}

/// Where the fresh copy of the file at `right` (of message `n`) is written.
fn fresh_path(right: &std::path::Path, n: u64) -> PathBuf {
    right.with_file_name(format!("{FRESH_PREFIX}{n}"))
}

/// `OLD-NEW` of a waiting name.
fn parse_pair(b: &[u8]) -> Option<(u64, u64)> {
    let dash = b.iter().position(|&c| c == b'-')?;
    Some((parse_number(&b[..dash])?, parse_number(&b[dash + 1..])?))
}

/// Drops the second half of renumberings whose first half failed (live).
pub fn forget_pending(ctx: &mut MessageCtx, old: u64) {
    ctx.pending.forget_last(old);
}

/// The moves of renumbering, after the scan (docs/repair.md, "the mess
/// file's name is not its inode number"). First, message by message in
/// order of new number: a message whose files are all under their old
/// number moves straight to its new number when no message the scan saw
/// had that number and no waiting message owns it (the mess first to its
/// waiting name, then the other files to the new number, then the mess);
/// otherwise (a collision) its files go to their waiting names, mess
/// first. Then every waiting message (those of the first step, of a
/// message with a salvage record, and those an interrupted run left) is
/// given its new number, the mess last. Each finding goes to `sink` as it
/// is made, and `sink` tells whether its action was carried out whole:
/// after a copy to another filesystem every message is pending, and
/// their findings are never all held at once.
pub fn plan_pending(
    ctx: &mut MessageCtx,
    sink: &mut dyn FnMut(&Finding) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let mut pending = std::mem::take(&mut ctx.pending);
    for (old, list) in std::mem::take(&mut ctx.waiting) {
        let mut by_new: HashMap<u64, Where> = HashMap::new();
        for w in list {
            *by_new.entry(w.new).or_insert(0) |= mask(w.part);
        }
        for (new, parts) in by_new {
            pending.push(new, old, parts | FOUND_WAITING);
        }
    }
    ctx.seen.seal();
    // New numbers that waiting files already own.
    let mut owned: Vec<u64> = pending.sorted().filter(|&(_, _, at)| at & 0x7f != 0).map(|(new, _, _)| new).collect();
    owned.sort_unstable();
    let order = [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce];
    let mut second = PendingList::default();
    for (new, old, at) in pending.sorted() {
        let under_old = at >> 8;
        if under_old == 0 {
            second.push(new, old, at);
            continue;
        }
        let found_waiting = at & FOUND_WAITING != 0;
        if ctx.occupied.contains(&new) {
            ctx.occupied.insert(old);
            sink(&Finding::leave(
                Kind::RenumberFinish,
                ctx.right_path(Part::Mess, new),
                format!("message {old} is to become {new}, but files that could not be set aside hold that number"),
                "left where it is; run qfixq live again once the errors above are cleared",
            ))?;
            continue;
        }
        let mess_old = ctx.right_path(Part::Mess, old);
        let mess_wait = ctx.temp_path(Part::Mess, old, new);
        let mess_new = ctx.right_path(Part::Mess, new);
        let mess_ex = Some(Expect { ino: new, kind: FileKind::Regular, max_nlink: u64::MAX });
        let mut steps = Vec::new();
        let direct = !found_waiting && !ctx.seen.contains(new) && owned.binary_search(&new).is_err();
        if !direct {
            // A collision, or a message an interrupted run left half
            // moved: its files go to their waiting names, the mess first
            // (hidden under a name qmail never reads, it marks the files
            // still under the old number as its own), and take the new
            // number once every message has moved.
            if !found_waiting {
                steps.push(Step::Rename { from: mess_old, to: mess_wait, expect: mess_ex });
            }
            for part in order.iter().filter(|p| under_old & mask(**p) != 0) {
                steps.push(Step::Rename {
                    from: ctx.right_path(*part, old),
                    to: ctx.temp_path(*part, old, new),
                    expect: None,
                });
            }
            let problem = if found_waiting {
                format!("message {old} is half moved to {new} (an interrupted repair)")
            } else {
                format!("message {old}'s new number {new} is another message's old number")
            };
            let ok = sink(&Finding::fix(
                Kind::RenumberFinish,
                mess_new,
                problem,
                "its files wait under renumbering names until every message has moved",
                Action { message: Some(old), steps },
            ))?;
            if ok {
                second.push(new, old, (at & 0xff) | under_old);
            } else {
                ctx.occupied.insert(old);
            }
            continue;
        }
        steps.push(Step::Rename { from: mess_old, to: mess_wait.clone(), expect: mess_ex });
        for part in order.iter().filter(|p| under_old & mask(**p) != 0) {
            steps.push(Step::Rename { from: ctx.right_path(*part, old), to: ctx.right_path(*part, new), expect: None });
        }
        steps.push(Step::Rename { from: mess_wait, to: mess_new.clone(), expect: None });
        let ok = sink(&Finding::fix(
            Kind::RenumberFinish,
            mess_new,
            format!("message {old} moves to its new number {new}"),
            "given its new number",
            Action { message: Some(new), steps },
        ))?;
        if !ok {
            ctx.occupied.insert(old);
            ctx.occupied.insert(new);
        }
    }
    drop(pending);
    let order = [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Mess];
    for (new, old, parts) in second.sorted() {
        // Left by an interrupted run: a problem of its own (this run did
        // not renumber it, it finishes a renumbering).
        let found_waiting = parts & FOUND_WAITING != 0;
        if ctx.occupied.contains(&new) {
            // Files that could not be set aside still hold the number: a
            // move there could join them to this message.
            sink(&Finding::leave(
                Kind::RenumberFinish,
                ctx.right_path(Part::Mess, new),
                format!("message {old} waits to become {new}, but files that could not be set aside hold that number"),
                "left under its renumbering names; run qfixq live again once the errors above are cleared",
            ))?;
            continue;
        }
        let record = ctx.salvaged.finish_steps(old, new);
        let steps: Vec<Step> = record
            .into_iter()
            .chain(order.iter().filter(|part| parts & mask(**part) != 0).map(|part| Step::Rename {
                from: ctx.temp_path(*part, old, new),
                to: ctx.right_path(*part, new),
                expect: None,
            }))
            .collect();
        sink(&Finding::fix(
            if found_waiting { Kind::Renumber } else { Kind::RenumberFinish },
            ctx.right_path(Part::Mess, new),
            if found_waiting {
                format!("message {old} waits under its renumbering names (an interrupted repair)")
            } else {
                format!("message {new} waits under its renumbering names")
            },
            "given its new number",
            Action { message: Some(new), steps },
        ))?;
    }
    Ok(())
}

/// Files under old number N while the mess of N's renumbering to K waits
/// under its waiting name, and no mess is under N: an interrupted run
/// had moved the mess first and not yet these files. They join that
/// message and move to K after the scan (they were repaired before the
/// mess moved). Only when every one is a regular file in its right place
/// and no part is both here and waiting; anything else is judged on its
/// own.
fn join_waiting_mess(ctx: &mut MessageCtx, msg: &ScannedMessage, slots: &[Option<Slot<'_>>; 7]) -> bool {
    let n = msg.number;
    if msg.has(Part::Mess) || !msg.extra.is_empty() || !msg.io_errors.is_empty() {
        return false;
    }
    let Some(list) = ctx.waiting.get(&n) else { return false };
    let Some(k) = list.iter().find(|w| w.part == Part::Mess).map(|w| w.new) else { return false };
    if list.iter().any(|w| w.new != k) {
        return false;
    }
    let mut at: Where = FOUND_WAITING;
    for w in list {
        at |= mask(w.part);
    }
    for part in Part::ALL {
        let Some(s) = &slots[part.index()] else { continue };
        let regular = s.found.and_then(|f| f.stat).is_some_and(|st| st.kind == FileKind::Regular);
        if at & mask(part) != 0 || !regular || s.path != ctx.right_path(part, n) {
            return false;
        }
        at |= at_old(part);
    }
    if at >> 8 == 0 {
        return false;
    }
    ctx.waiting.remove(&n);
    ctx.pending.push(k, n, at);
    true
}

/// Fresh copies left by an interrupted run whose message is gone: they
/// are copies of envelopes, removed.
pub fn plan_leftover_fresh(ctx: &mut MessageCtx, out: &mut Vec<Finding>) {
    let mut left: Vec<(u64, Vec<(Part, Stat)>)> = std::mem::take(&mut ctx.fresh).into_iter().collect();
    left.sort_by_key(|(n, _)| *n);
    for (n, list) in left {
        for (part, st) in list {
            let path = fresh_path(&ctx.right_path(part, n), n);
            out.push(Finding::fix(
                Kind::Stray,
                path.clone(),
                "copy of an envelope left by an interrupted repair, its message gone",
                "removed",
                Action {
                    message: None,
                    steps: vec![Step::Unlink {
                        path,
                        expect: Some(Expect { ino: st.ino, kind: st.kind, max_nlink: 1 }),
                    }],
                },
            ));
        }
    }
}

/// Removes the extra buckets once emptied.
pub fn plan_extra_buckets(ctx: &mut MessageCtx, out: &mut Vec<Finding>) {
    for path in std::mem::take(&mut ctx.extra_buckets) {
        out.push(Finding::fix(
            Kind::ExtraBucket,
            path.clone(),
            "extra bucket (beyond the split)",
            "emptied into the right buckets and removed",
            Action { message: None, steps: vec![Step::Rmdir { path }] },
        ));
    }
}

/// Now, in seconds since the epoch (for the ages beside times).
fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcommon::envelope::{Recipient, Recipients};
    use qcommon::scan::Found;

    const SPLIT: u32 = 23;
    const IDS: Ids = Ids { qmailq: 7001, qmails: 7002, qmailr: 7003, qmail_gid: 7004 };

    fn ctx() -> MessageCtx {
        MessageCtx {
            split: SPLIT,
            big_todo: false,
            ids: IDS,
            empty: false,
            no_quarantine: false,
            doomed_links: HashMap::new(),
            pending: PendingList::default(),
            seen: NumberSet::default(),
            waiting: HashMap::new(),
            waiting_mess: HashMap::new(),
            occupied: HashSet::new(),
            fresh: HashMap::new(),
            extra_buckets: Vec::new(),
            salvaged: Default::default(),
        }
    }

    fn found(part: Part, n: u64, ino: u64) -> Found {
        let stat = Stat {
            dev: 1,
            ino,
            kind: FileKind::Regular,
            perm: part.file_perm(),
            uid: IDS.uid(part.file_owner()),
            gid: if part.group_is_qmail() { IDS.qmail_gid } else { 100 },
            nlink: 1,
            size: 40,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
            atime: 1_700_000_000,
            ctime_ns: 1_700_000_000_000_000_000,
        };
        Found { part, bucket: Some(bucket_of(n, SPLIT)), ino, stat: Some(stat) }
    }

    /// A preprocessed message as qmail-send leaves it.
    fn healthy(n: u64) -> ScannedMessage {
        let mut m = ScannedMessage { number: n, ..Default::default() };
        m.files[Part::Mess.index()] = Some(found(Part::Mess, n, n));
        m.files[Part::Info.index()] = Some(found(Part::Info, n, n + 1));
        m.files[Part::Remote.index()] = Some(found(Part::Remote, n, n + 2));
        m.info = Some(Ok(Info { sender: b"a@b".to_vec() }));
        let list = vec![Recipient { address: b"c@d".to_vec(), done: false }];
        m.remote = Some(Ok(ListEnvelope::Whole(Recipients { list, dropped: 0 })));
        m
    }

    #[test]
    fn pending_renumberings_pack_and_come_back_sorted() {
        let mut l = PendingList::default();
        l.push(30, 7, 0b1000_0001);
        l.push(10, u64::MAX - 1, 0b11);
        l.push(20, (1 << 48) - 1, 0b111_1111_0111_1111);
        l.push(40, 1 << 48, 0x7f00);
        l.push(5, 99, 1);
        l.forget_last(99);
        l.forget_last(7); // not the last one: kept
        let got: Vec<_> = l.sorted().collect();
        assert_eq!(
            got,
            vec![
                (20, (1 << 48) - 1, 0b111_1111_0111_1111),
                (30, 7, 0b1000_0001),
                (10, u64::MAX - 1, 0b11),
                (40, 1 << 48, 0x7f00)
            ]
        );
    }

    #[test]
    fn number_set_holds_narrow_and_wide_numbers() {
        let mut s = NumberSet::default();
        for n in [5, u64::from(u32::MAX), 1 << 40, 5, 7] {
            s.insert(n);
        }
        s.seal();
        for n in [5, 7, u64::from(u32::MAX), 1 << 40] {
            assert!(s.contains(n), "{n}");
        }
        for n in [6, 1 << 32, (1 << 40) + 1] {
            assert!(!s.contains(n), "{n}");
        }
    }

    #[test]
    fn a_healthy_preprocessed_message_takes_the_fast_path() {
        assert!(is_healthy_preprocessed(&ctx(), &healthy(1000)));
    }

    fn stat(m: &mut ScannedMessage, p: Part) -> &mut Stat {
        m.files[p.index()].as_mut().unwrap().stat.as_mut().unwrap()
    }

    #[test]
    fn any_doubt_goes_to_the_full_planner() {
        type Damage = fn(&mut ScannedMessage);
        let cases: Vec<(&str, Damage)> = vec![
            ("mess missing", |m| m.files[Part::Mess.index()] = None),
            ("info missing", |m| m.files[Part::Info.index()] = None),
            ("todo present", |m| m.files[Part::Todo.index()] = Some(found(Part::Todo, m.number, 5))),
            ("mess renumbered", |m| stat(m, Part::Mess).ino = 77),
            ("mess empty", |m| stat(m, Part::Mess).size = 0),
            ("info mode", |m| stat(m, Part::Info).perm = 0o644),
            ("info owner", |m| stat(m, Part::Info).uid = 0),
            ("info group", |m| stat(m, Part::Info).gid = 0),
            ("remote links", |m| stat(m, Part::Remote).nlink = 2),
            ("mess not stated", |m| m.files[Part::Mess.index()].as_mut().unwrap().stat = None),
            ("wrong bucket", |m| m.files[Part::Remote.index()].as_mut().unwrap().bucket = Some(0)),
            ("partial record", |m| {
                if let Some(Ok(ListEnvelope::Whole(r))) = m.remote.as_mut() {
                    r.dropped = 3;
                }
            }),
            ("broken info", |m| m.info = Some(Err(ReadProblem::Bad(qcommon::envelope::EnvelopeError::Empty)))),
            ("second copy", |m| m.extra.push(found(Part::Info, m.number, 9))),
        ];
        for (what, damage) in cases {
            let mut m = healthy(1000);
            damage(&mut m);
            assert!(!is_healthy_preprocessed(&ctx(), &m), "{what}");
        }
        let mut c = ctx();
        c.empty = true;
        assert!(!is_healthy_preprocessed(&c, &healthy(1000)), "live empty");
        let mut c = ctx();
        c.fresh.insert(1000, Vec::new());
        assert!(!is_healthy_preprocessed(&c, &healthy(1000)), "fresh copy waiting");
    }
}
