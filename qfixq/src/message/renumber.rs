//! Renumbering (docs/repair.md, "Renumbering"): a message whose mess
//! inode K differs from its number N is repaired under N while the scan
//! goes on, and moved after the scan, when every number is known, in one
//! of two orders: straight to K when no message had K (batch by batch,
//! each batch listed first in the journal: the other files to K, the mess
//! last), else in two steps through the waiting names (every file to its
//! waiting name, mess first; then, once every message has moved, each to
//! K, mess last). The fence (`lock/sendmutex` set aside) is up from the
//! first move to the last.
//!
//! Also what an interrupted run left. The journal is read before the
//! scan: files under K that a straight move it lists had brought there
//! join message N. The scanner reports every stray before the first
//! message, so a rerun knows all waiting names when it judges a message:
//! files of N already waiting, or still under N while the mess waits,
//! join message N; files under K moved there after the mess took its
//! waiting name join it too.

use std::collections::HashMap;
use std::path::PathBuf;

use qcommon::mutator::{Action, Step};
use qcommon::queue::Part;
use qcommon::safe_fs::{Expect, FileKind, Stat};
use qcommon::scan::{Found, ScannedMessage};

use super::journal::{self, BATCH, JOURNAL_PATH};
use super::planner::{Planner, Slot, Slots};
use super::MessageCtx;
use crate::finding::{Finding, Kind};
use crate::verify::Moved;

/// The files other than the mess, in the order they move: in a straight
/// move (the mess then last) and in the first step of a two-step one (the
/// mess first, on its own).
const FIRST_ORDER: [Part; 6] = [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce];
/// The order files move in, the mess last.
pub(super) const MOVE_ORDER: [Part; 7] =
    [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Mess];

/// Renumbered messages waiting to be moved after the scan. After a copy
/// to another filesystem every message of the queue is one, so each takes
/// 12 bytes when its old and new numbers fit in 32 bits (new, old,
/// [`Where`]: the inode numbers of ext4 and of most filesystems), else 16
/// bytes: the new number, and the old number shifted left by 16 with
/// [`Where`] in the low 16 bits. An old number of more than 48 bits (no
/// filesystem in use hands out such inode numbers) is kept whole, apart.
///
/// The first renumbering makes room for every message the scan listed
/// ([`PendingList::expect`]), so the list is never copied to grow: when
/// every message is renumbered it holds no room beyond them (room never
/// written is not memory the process holds).
#[derive(Debug, Default)]
pub struct PendingList {
    narrow: Vec<[u32; 3]>,
    packed: Vec<(u64, u64)>,
    wide: Vec<(u64, u64, u16)>,
    /// The messages the scan listed: no more renumberings than that come
    /// from the scan.
    expected: usize,
    /// The old number of the renumbering pushed last, and its list, until
    /// it is forgotten.
    last: Option<(u64, Width)>,
}

/// Which list of a [`PendingList`] holds a renumbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Narrow,
    Packed,
    Wide,
}

/// Where the files of a pending renumbering are: the low byte has a bit
/// (`1 << Part::index`) per part under its waiting name
/// (`.qfixq-renum-OLD-NEW`), and [`FOUND_WAITING`] when an interrupted run
/// left them; the high byte a bit per part still under its old number,
/// in its right place.
type Where = u16;

/// Makes room for one more in `v`. The first time, room for the `left`
/// messages still to come when that is known (non-zero): the list is
/// never copied to grow and holds no room beyond the listing (room never
/// written costs no memory); otherwise, or beyond that, it doubles.
fn room_for_one<T>(v: &mut Vec<T>, left: usize) {
    if v.len() == v.capacity() {
        let double = v.capacity().max(64);
        v.reserve_exact(if v.capacity() == 0 && left > 0 { left } else { double });
    }
}

impl PendingList {
    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.narrow.len() + self.packed.len() + self.wide.len()
    }

    /// No message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The scan listed `messages` messages: the list grows to no more
    /// than that while it has not reached it.
    pub fn expect(&mut self, messages: u64) {
        self.expected = usize::try_from(messages).unwrap_or(usize::MAX);
    }

    /// Message `old` waits to become `new`, its files where `at` says.
    pub fn push(&mut self, new: u64, old: u64, at: Where) {
        let left = self.expected.saturating_sub(self.len());
        let width = match (u32::try_from(new), u32::try_from(old)) {
            (Ok(n), Ok(o)) => {
                room_for_one(&mut self.narrow, left);
                self.narrow.push([n, o, u32::from(at)]);
                Width::Narrow
            }
            _ if old >> 48 == 0 => {
                room_for_one(&mut self.packed, left);
                self.packed.push((new, old << 16 | u64::from(at)));
                Width::Packed
            }
            _ => {
                self.wide.push((new, old, at));
                Width::Wide
            }
        };
        self.last = Some((old, width));
    }

    /// Forgets the renumbering of `old` when it is the last one pushed:
    /// a message's first half is carried out right after it is planned,
    /// so one that failed is always the last (no list scan per failure).
    /// Returns where its files were said to be.
    pub fn forget_last(&mut self, old: u64) -> Option<Where> {
        let (_, width) = self.last.filter(|&(o, _)| o == old)?;
        self.last = None;
        match width {
            Width::Narrow => self.narrow.pop().map(|[_, _, at]| at as Where),
            Width::Packed => self.packed.pop().map(|(_, op)| op as Where),
            Width::Wide => self.wide.pop().map(|(_, _, at)| at),
        }
    }

    /// Every renumbering as (new, old, where), sorted by new number and
    /// without repeats (those with an old number beyond 48 bits last).
    fn sorted(&mut self) -> impl Iterator<Item = (u64, u64, Where)> + '_ {
        self.last = None;
        self.narrow.sort_unstable();
        self.narrow.dedup();
        self.packed.sort_unstable();
        self.packed.dedup();
        self.wide.sort_unstable();
        self.wide.dedup();
        let mut narrow =
            self.narrow.iter().map(|&[new, old, at]| (u64::from(new), u64::from(old), at as Where)).peekable();
        let mut packed = self.packed.iter().map(|&(new, op)| (new, op >> 16, op as Where)).peekable();
        let merged = std::iter::from_fn(move || match (narrow.peek(), packed.peek()) {
            (Some(a), Some(b)) if b < a => packed.next(),
            (Some(_), _) => narrow.next(),
            (None, _) => packed.next(),
        });
        merged.chain(self.wide.iter().copied())
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

/// The slots of message `msg` as the scan found it, with the waiting
/// names an interrupted run left for it; `None` when it is not to be
/// judged on its own: every file of it belongs to a waiting renumbering
/// (moved by its second half, or still under N beside a waiting mess).
pub(super) fn gather<'m>(ctx: &mut MessageCtx, msg: &'m ScannedMessage) -> Option<Slots<'m>> {
    let n = msg.number;
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
    // Files a straight move under way (listed in the journal an
    // interrupted run left) had already moved under this number, with no
    // mess here: they are that move's, and join its message (judged under
    // its old number). Only those the journal's check found: regular, in
    // their right place, their part not also under the old number.
    let journal_move = if msg.has(Part::Mess) { None } else { ctx.journal.at_new(n) };
    let joined = |f: &Found| -> bool {
        let (Some(r), Some(st)) = (journal_move, f.stat) else { return false };
        st.kind == FileKind::Regular
            && f.rel_path(n) == ctx.right_path(f.part, n)
            && r.joined.iter().any(|(part, s)| *part == f.part && s.ino == st.ino)
    };
    let mut slots: Slots<'m> = Default::default();
    let mut skipped = 0;
    for f in msg.files.iter().flatten() {
        if joined(f) || moved(f) {
            skipped += 1;
            continue;
        }
        slots[f.part.index()] = Some(Slot { found: Some(f), path: f.rel_path(n), rewritten: false, waiting: None });
    }
    if skipped > 0 && slots.iter().all(Option::is_none) && msg.extra.is_empty() {
        return None;
    }
    if join_waiting_mess(ctx, msg, &slots) {
        return None;
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
    // A straight move of this message under way: the files it had already
    // moved to the new number join it (they were repaired before they
    // moved).
    if let Some(k) = mess_ino.filter(|k| ctx.journal.new_of(n) == Some(*k)) {
        for (part, st) in ctx.journal.at_new(k).map(|r| r.joined.as_slice()).unwrap_or_default() {
            if slots[part.index()].is_none() {
                let path = ctx.right_path(*part, k);
                slots[part.index()] = Some(Slot { found: None, path, rewritten: false, waiting: Some(*st) });
            }
        }
    }
    Some(slots)
}

/// Files under old number N while the mess of N's renumbering to K waits
/// under its waiting name, and no mess is under N: an interrupted run
/// had moved the mess first and not yet these files. They join that
/// message and move to K after the scan (they were repaired before the
/// mess moved). Only when every one is a regular file in its right place
/// and no part is both here and waiting; anything else is judged on its
/// own.
fn join_waiting_mess(ctx: &mut MessageCtx, msg: &ScannedMessage, slots: &Slots<'_>) -> bool {
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

/// The moves of message `p`: renumbered when its mess's inode `mess` is
/// not its number, else each file into its right bucket; mess last.
pub(super) fn moves(p: &mut Planner<'_, '_>, mess: &Found) {
    let st = mess.stat.expect("stated");
    if st.ino != p.n() {
        renumber(p, mess, st.ino);
    } else {
        p.move_to_right_buckets();
    }
}

/// Renumbers message `p` to `k`. Every file in its right place under the
/// old number (or already under `k`, moved there by a straight move under
/// way), none waiting, no salvage record: the files move after the scan,
/// straight to the new number when no message had it. Otherwise they go
/// to their waiting names now, and to `k` after the scan.
fn renumber(p: &mut Planner<'_, '_>, mess: &Found, k: u64) {
    let n = p.n();
    let shape = p.ctx.shape;
    let at_k = move |s: &Slot<'_>, part: Part| s.waiting.is_some() && s.path == shape.path(part, k);
    let half_moved = Part::ALL.iter().any(|&part| p.slots[part.index()].as_ref().is_some_and(|s| at_k(s, part)));
    let problem = if half_moved {
        format!("message {n} is half moved to {k} (an interrupted repair)")
    } else {
        format!("name differs from its inode {k}")
    };
    let direct = !p.ctx.salvaged.has(n)
        && Part::ALL.iter().all(|&part| {
            p.slots[part.index()]
                .as_ref()
                .is_none_or(|s| at_k(s, part) || (s.waiting.is_none() && s.path == shape.path(part, n)))
        });
    p.note(Kind::Renumber, mess.rel_path(n), problem, format!("renumbered to {k}"));
    let mut at: Where = 0;
    for part in MOVE_ORDER {
        let Some(slot) = p.slots[part.index()].clone() else { continue };
        if at_k(&slot, part) {
            continue;
        }
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
        // The first move of a renumbering: the fence goes up before any
        // other step of this message.
        if let Some(raise) = p.ctx.journal.raise_fence() {
            p.steps.insert(0, raise);
            p.ctx.journal.fence.raised_by = Some(n);
        }
    }
    p.ctx.pending.push(k, n, at);
}

/// Drops the second half of renumberings whose first half failed (live):
/// such a message may be left half moved, and the fence stays up.
pub fn forget_pending(ctx: &mut MessageCtx, old: u64) {
    ctx.journal.message_failed(old);
    if ctx.pending.forget_last(old).is_some_and(|at| at & 0x7f != 0) {
        ctx.journal.fence.unfinished = true;
    }
}

/// The moves of renumbering, after the scan (docs/repair.md,
/// "Renumbering"). First, message by message in order of new number: a
/// message whose files are all under their old number (or already under
/// the new one, moved there by a straight move under way) moves straight
/// to its new number when no message the scan saw had that number and no
/// waiting message owns it: batch by batch, each batch listed first in the
/// journal, then every other file to the new number and the mess last;
/// otherwise (a collision) its files go to their waiting names, mess
/// first. Then every waiting message (those of the first step, of a
/// message with a salvage record, and those an interrupted run left) is
/// given its new number, the mess last. Last the journal goes, once every
/// move it listed is done. Each finding goes to `sink` as it is made, and
/// `sink` tells whether its action was carried out whole: after a copy to
/// another filesystem every message is pending, and their findings are
/// never all held at once. With `moved` (a live run's record for the
/// verifying check), the old and new number of every renumbering planned
/// go there first, instead of being noted from each finding.
pub fn plan_pending(
    ctx: &mut MessageCtx,
    moved: Option<&mut Moved>,
    sink: &mut dyn FnMut(&Finding) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let mut pending = std::mem::take(&mut ctx.pending);
    add_found_waiting(ctx, &mut pending);
    ctx.seen.seal();
    if let Some(moved) = moved {
        let seen = &ctx.seen;
        moved.reserve(pending.sorted().filter(|&(new, _, _)| !seen.contains(new)).count());
        for (new, old, _) in pending.sorted() {
            moved.add(seen, old);
            moved.add(seen, new);
        }
    }
    ctx.journal.settle_fence();
    // New numbers that waiting files already own.
    let mut owned: Vec<u64> = pending.sorted().filter(|&(_, _, at)| at & 0x7f != 0).map(|(new, _, _)| new).collect();
    owned.sort_unstable();
    let mut second = PendingList::default();
    // The moves the journal of an interrupted run lists that this run
    // resumes, or leaves where they are (their message left, or its action
    // failed): every journal this run writes lists them until they are
    // done. A move whose message was set aside instead has nothing left to
    // move.
    let mut carried: Vec<(u64, u64)> = ctx.journal.moves().filter(|(old, _)| ctx.occupied.contains(old)).collect();
    carried.extend(
        pending.sorted().filter(|&(new, old, _)| ctx.journal.new_of(old) == Some(new)).map(|(new, old, _)| (old, new)),
    );
    carried.sort_unstable();
    carried.dedup();
    let mut batches = Batches { carried, ..Default::default() };
    for (new, old, at) in pending.sorted() {
        first_step(ctx, (new, old, at), &owned, &mut second, &mut batches, sink)?;
        if batches.batch.len() >= BATCH {
            batches.run(ctx, &mut second, sink)?;
        }
    }
    batches.run(ctx, &mut second, sink)?;
    drop(pending);
    for (new, old, parts) in second.sorted() {
        if second_step(ctx, (new, old, parts), sink)? {
            batches.done(old, new);
        }
    }
    let finished = batches.carried.is_empty() && !ctx.journal.fence.unfinished;
    if (ctx.journal.found || batches.written) && batches.carried.is_empty() {
        sink(&Finding::fix(
            Kind::RenumberFinish,
            PathBuf::from(JOURNAL_PATH),
            "renumbering journal",
            "removed: every move it listed is done",
            Action { message: None, steps: vec![journal::remove_step()] },
        ))?;
    }
    if ctx.journal.fence.up && finished {
        lower_fence(ctx, sink)?;
    }
    Ok(())
}

/// Raises the fence before the first move of the renumbering after the
/// scan, when it is not up yet; false when it could not be raised (no
/// message may move then).
fn fence_up(ctx: &mut MessageCtx, sink: &mut Sink<'_>) -> std::io::Result<bool> {
    let Some(raise) = ctx.journal.raise_fence() else { return Ok(true) };
    let ok = sink(&Finding::fix(
        Kind::RenumberFinish,
        journal::fence_path(),
        "messages are about to be renumbered",
        "lock/sendmutex set aside under this name until the last one has moved: no qmail-send can start while \
         messages are half moved",
        Action { message: None, steps: vec![raise] },
    ))?;
    ctx.journal.fence.up = ok;
    Ok(ok)
}

/// A message that cannot move because the fence could not be raised: it
/// stays where it is (whole under its old number, or waiting).
fn unfenced(ctx: &mut MessageCtx, old: u64, new: u64, sink: &mut Sink<'_>) -> std::io::Result<()> {
    ctx.occupied.insert(old);
    sink(&Finding::leave(
        Kind::RenumberFinish,
        ctx.right_path(Part::Mess, new),
        format!("message {old} is to become {new}, but lock/sendmutex could not be set aside"),
        "left where it is; run qfixq live again once the errors above are cleared",
    ))?;
    Ok(())
}

/// Takes the fence down once the renumbering is finished: lock/sendmutex
/// is back, and qmail-send may start. One the run found up is a problem of
/// its own (qmail-send cannot start until it is down).
fn lower_fence(ctx: &mut MessageCtx, sink: &mut Sink<'_>) -> std::io::Result<()> {
    let found = ctx.journal.fence.found_up;
    let ok = sink(&Finding::fix(
        if found { Kind::Structure } else { Kind::RenumberFinish },
        journal::fence_path(),
        if found {
            "lock/sendmutex set aside by an interrupted renumbering: qmail-send cannot start"
        } else {
            "every message is renumbered"
        },
        "renamed back to lock/sendmutex",
        Action { message: None, steps: vec![journal::lower_fence_step()] },
    ))?;
    ctx.journal.fence.up = !ok;
    Ok(())
}

/// The straight moves waiting for their batch, and the moves a journal
/// must go on listing: those of the journal an interrupted run left, and
/// those of this run that failed, until they are done.
#[derive(Debug, Default)]
struct Batches {
    /// (new, old, where) of the next batch.
    batch: Vec<(u64, u64, Where)>,
    /// (old, new) of the moves under way that are not done.
    carried: Vec<(u64, u64)>,
    /// This run wrote a journal.
    written: bool,
}

impl Batches {
    /// The move of `old` to `new` is done: no journal lists it any more.
    fn done(&mut self, old: u64, new: u64) {
        self.carried.retain(|&p| p != (old, new));
    }

    /// Lists the batch (with the moves carried) in the journal, then moves
    /// each message of it. A batch the journal could not list (a full
    /// disk: the journal is the one new file renumbering writes) takes the
    /// two-step path, which needs renames only.
    fn run(&mut self, ctx: &mut MessageCtx, second: &mut PendingList, sink: &mut Sink<'_>) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if !fence_up(ctx, sink)? {
            for (new, old, _) in std::mem::take(&mut self.batch) {
                unfenced(ctx, old, new, sink)?;
            }
            return Ok(());
        }
        let pairs = self.carried.iter().copied().chain(self.batch.iter().map(|&(new, old, _)| (old, new)));
        let data = journal::contents(pairs);
        if !ctx.journal.has_room(data.len()) {
            for (new, old, at) in std::mem::take(&mut self.batch) {
                to_waiting_names(ctx, (new, old, at), true, second, sink)?;
            }
            return Ok(());
        }
        let ok = sink(&Finding::fix(
            Kind::RenumberFinish,
            PathBuf::from(JOURNAL_PATH),
            format!("{} messages move straight to their new numbers", self.batch.len()),
            "listed in the renumbering journal first (a rerun after a crash finishes their moves)",
            Action { message: None, steps: vec![journal::write_step(data)] },
        ))?;
        self.written |= ok;
        for (new, old, at) in std::mem::take(&mut self.batch) {
            if !ok {
                to_waiting_names(ctx, (new, old, at), true, second, sink)?;
            } else if straight(ctx, (new, old, at), sink)? {
                self.done(old, new);
            } else if !self.carried.contains(&(old, new)) {
                self.carried.push((old, new));
            }
        }
        Ok(())
    }
}

/// The waiting files an interrupted run left, as pending renumberings.
fn add_found_waiting(ctx: &mut MessageCtx, pending: &mut PendingList) {
    for (old, list) in std::mem::take(&mut ctx.waiting) {
        let mut by_new: HashMap<u64, Where> = HashMap::new();
        for w in list {
            *by_new.entry(w.new).or_insert(0) |= mask(w.part);
        }
        for (new, parts) in by_new {
            pending.push(new, old, parts | FOUND_WAITING);
        }
    }
}

/// The sink of a renumbering's findings: tells whether its action was
/// carried out whole.
type Sink<'s> = dyn FnMut(&Finding) -> std::io::Result<bool> + 's;

/// The first step of renumbering `old` to `new` (files still under the
/// old number, where `at` says): straight to `new` when it is free, else
/// to the waiting names, the message then waiting in `second`.
fn first_step(
    ctx: &mut MessageCtx,
    (new, old, at): (u64, u64, Where),
    owned: &[u64],
    second: &mut PendingList,
    batches: &mut Batches,
    sink: &mut Sink<'_>,
) -> std::io::Result<()> {
    if at >> 8 == 0 {
        second.push(new, old, at);
        return Ok(());
    }
    if ctx.occupied.contains(&new) {
        ctx.occupied.insert(old);
        if at & 0x7f != 0 {
            ctx.journal.fence.unfinished = true;
        }
        sink(&Finding::leave(
            Kind::RenumberFinish,
            ctx.right_path(Part::Mess, new),
            format!("message {old} is to become {new}, but files that could not be set aside hold that number"),
            "left where it is; run qfixq live again once the errors above are cleared",
        ))?;
        return Ok(());
    }
    let found_waiting = at & FOUND_WAITING != 0;
    // The scan saw the new number of a straight move under way: the files
    // that move had brought there (joined to it), and anything else there,
    // judged on its own and set aside (else the number is occupied).
    let free = !ctx.seen.contains(new) || ctx.journal.new_of(old) == Some(new);
    if !found_waiting && free && owned.binary_search(&new).is_err() {
        batches.batch.push((new, old, at));
        Ok(())
    } else {
        to_waiting_names(ctx, (new, old, at), false, second, sink)
    }
}

/// A collision, a message an interrupted run left half moved, or a batch
/// the journal could not list (`no_journal`: a full disk): its
/// files go to their waiting names, the mess first (hidden under a name
/// qmail never reads, it marks the files still under the old number as
/// its own), and take the new number once every message has moved.
fn to_waiting_names(
    ctx: &mut MessageCtx,
    (new, old, at): (u64, u64, Where),
    no_journal: bool,
    second: &mut PendingList,
    sink: &mut Sink<'_>,
) -> std::io::Result<()> {
    let under_old = at >> 8;
    let found_waiting = at & FOUND_WAITING != 0;
    if !fence_up(ctx, sink)? {
        if at & 0x7f != 0 {
            // Left waiting: half moved, the fence stays (it is not up).
            ctx.journal.fence.unfinished = true;
        }
        return unfenced(ctx, old, new, sink);
    }
    let mut steps = Vec::new();
    if !found_waiting {
        let mess_ex = Some(Expect { ino: new, kind: FileKind::Regular, max_nlink: u64::MAX });
        let (from, to) = (ctx.right_path(Part::Mess, old), ctx.temp_path(Part::Mess, old, new));
        steps.push(Step::Rename { from, to, expect: mess_ex });
    }
    for part in FIRST_ORDER.iter().filter(|p| under_old & mask(**p) != 0) {
        steps.push(Step::Rename { from: ctx.right_path(*part, old), to: ctx.temp_path(*part, old, new), expect: None });
    }
    let problem = if found_waiting {
        format!("message {old} is half moved to {new} (an interrupted repair)")
    } else if no_journal {
        format!("message {old} is to become {new}, but the renumbering journal could not be written")
    } else {
        format!("message {old}'s new number {new} is another message's old number")
    };
    let ok = sink(&Finding::fix(
        Kind::RenumberFinish,
        ctx.right_path(Part::Mess, new),
        problem,
        "its files wait under renumbering names until every message has moved",
        Action { message: Some(old), steps },
    ))?;
    if ok {
        second.push(new, old, (at & 0xff) | under_old);
    } else {
        ctx.occupied.insert(old);
        ctx.journal.fence.unfinished = true;
    }
    Ok(())
}

/// Straight to the new number, which no message had (the journal lists
/// the move): every other file to the new number, the mess last. True when
/// the move was carried out whole.
fn straight(ctx: &mut MessageCtx, (new, old, at): (u64, u64, Where), sink: &mut Sink<'_>) -> std::io::Result<bool> {
    let under_old = at >> 8;
    let mess_new = ctx.right_path(Part::Mess, new);
    let mut steps: Vec<Step> = FIRST_ORDER
        .iter()
        .filter(|p| under_old & mask(**p) != 0)
        .map(|part| Step::Rename { from: ctx.right_path(*part, old), to: ctx.right_path(*part, new), expect: None })
        .collect();
    let mess_ex = Some(Expect { ino: new, kind: FileKind::Regular, max_nlink: u64::MAX });
    steps.push(Step::Rename { from: ctx.right_path(Part::Mess, old), to: mess_new.clone(), expect: mess_ex });
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
    Ok(ok)
}

/// The second step: message `old`, waiting under its waiting names
/// (`parts`), takes its new number `new`, the mess last. True when it was
/// carried out whole.
fn second_step(
    ctx: &mut MessageCtx,
    (new, old, parts): (u64, u64, Where),
    sink: &mut Sink<'_>,
) -> std::io::Result<bool> {
    // Left by an interrupted run: a problem of its own (this run did
    // not renumber it, it finishes a renumbering).
    let found_waiting = parts & FOUND_WAITING != 0;
    if !ctx.occupied.contains(&new) && !fence_up(ctx, sink)? {
        ctx.journal.fence.unfinished = true;
        unfenced(ctx, old, new, sink)?;
        return Ok(false);
    }
    if ctx.occupied.contains(&new) {
        ctx.journal.fence.unfinished = true;
        // Files that could not be set aside still hold the number: a
        // move there could join them to this message.
        sink(&Finding::leave(
            Kind::RenumberFinish,
            ctx.right_path(Part::Mess, new),
            format!("message {old} waits to become {new}, but files that could not be set aside hold that number"),
            "left under its renumbering names; run qfixq live again once the errors above are cleared",
        ))?;
        return Ok(false);
    }
    let record = ctx.salvaged.finish_steps(old, new);
    let steps: Vec<Step> = record
        .into_iter()
        .chain(MOVE_ORDER.iter().filter(|part| parts & mask(**part) != 0).map(|part| Step::Rename {
            from: ctx.temp_path(*part, old, new),
            to: ctx.right_path(*part, new),
            expect: None,
        }))
        .collect();
    let ok = sink(&Finding::fix(
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
    if !ok {
        ctx.journal.fence.unfinished = true;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn pending_renumberings_take_twelve_bytes_in_32_bits_and_no_room_beyond_the_listing() {
        assert_eq!(std::mem::size_of::<[u32; 3]>(), 12);
        let mut l = PendingList::default();
        l.expect(100);
        // New numbers in falling order, every fifth old number beyond 32
        // bits: the two lists come back merged by new number.
        for i in 0..100u64 {
            let old = if i % 5 == 0 { (1 << 40) + i } else { i };
            l.push(1000 - i, old, 0x100);
        }
        assert_eq!((l.narrow.len(), l.packed.len()), (80, 20));
        assert!(l.forget_last(98).is_none(), "not the last one pushed");
        assert_eq!(l.forget_last(99), Some(0x100));
        assert!(l.forget_last(98).is_none(), "forgotten once");
        let got: Vec<_> = l.sorted().collect();
        assert_eq!(got.len(), 99);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "sorted by new number");
        assert_eq!((got[0], got[98]), ((902, 98, 0x100), (1000, 1 << 40, 0x100)));
        // Every message renumbered: room made once for what the listing
        // announced, no further (doubling would have left room for 128).
        let mut all = PendingList::default();
        all.expect(100);
        for i in 0..100u64 {
            all.push(1000 + i, i, 0x100);
        }
        assert_eq!((all.narrow.len(), all.narrow.capacity()), (100, 100));
    }
}
