//! The per-message policy of docs/repair.md: given what the scan saw of
//! one message, the findings and the crash-safe steps that save it (or
//! set it aside); the strays found among the messages; and, after the
//! scan, the moves that finish renumbering. [`MessageCtx`] holds what the
//! whole pass shares; [`plan_message`] runs the steps of one message, each
//! in the module that owns it:
//!
//! - `judge`: what the message is: healthy (the fast path), or which
//!   state its files put it in once the envelopes are weighed;
//! - `envelope`: an unreadable or garbled envelope (todo, info, local,
//!   remote), and the null sender written when info is lost (salvage);
//! - `files`: the files as files: second copies, extra hard links and the
//!   fresh copies that replace them, owners and modes, wrong buckets;
//! - `renumber`: a mess whose inode is not its number, the two orders of
//!   renumbering (straight, or in two steps through waiting names) and
//!   the waiting names an interrupted run left;
//! - `journal`: the list of straight moves under way, by which a rerun
//!   recognises a half-done straight move;
//! - `strays`: files that belong to no message, and our own temporary
//!   names;
//! - `planner`: the working view of one message's files and the steps
//!   that change them.

mod envelope;
mod files;
mod journal;
mod judge;
mod planner;
mod renumber;
mod strays;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use qcommon::mutator::{Action, Step};
use qcommon::queue::{Ids, Part, QueueShape};
use qcommon::remove::{removal_action, Quarantine};
use qcommon::safe_fs::{Expect, Stat};
use qcommon::scan::ScannedMessage;

use crate::finding::{Finding, Kind};
use planner::{flush, Planner};

pub use journal::{Journal, JOURNAL_PATH};
pub use renumber::{forget_pending, plan_pending, PendingList, Waiting, WaitingMess};
pub use strays::{doomed_link, plan_stray};

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
    /// The queue's split and big-todo: where every file belongs.
    pub shape: QueueShape,
    /// qmail's ids.
    pub ids: Ids,
    /// `live empty`: every message goes.
    pub empty: bool,
    /// Delete instead of moving to lost+found.
    pub no_quarantine: bool,
    /// Inodes that have extra names which this run removes (pid/
    /// leftovers, temporary links) and which the scan's stat of the
    /// message still counts, with how many. The scanner delivers every
    /// stray before it states any message, and live removes a stray as it
    /// comes: a name live removed is gone from the message's stat and is
    /// not counted here (counting it too let a mess linked from outside
    /// the queue and from pid/ pass with 2 links, and stay in place); a
    /// check, or a removal that failed, leaves the name, counted here.
    pub doomed_links: HashMap<u64, u64>,
    /// Renumbered messages waiting to be moved after the scan.
    pub pending: PendingList,
    /// The numbers of every message the scan saw: a new number is free
    /// for a renumbering only when no message had it. A live run's first
    /// pass hands this very set on to the verifying record when it ends.
    pub seen: crate::verify::Numbers,
    /// Waiting files found on disk (left by an interrupted run), by old number.
    pub waiting: HashMap<u64, Vec<Waiting>>,
    /// New numbers whose mess file is still waiting, with the waiting
    /// mess: files under the new number that the second half of that
    /// renumbering had already moved belong to it.
    pub waiting_mess: HashMap<u64, WaitingMess>,
    /// The renumbering journal an interrupted run left: the straight
    /// moves it had under way.
    pub journal: Journal,
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
        self.shape.path(part, n)
    }

    /// Where `part` of message `old`, renumbered to `new`, waits between
    /// the two halves: beside where it belongs under its old number.
    pub fn temp_path(&self, part: Part, old: u64, new: u64) -> PathBuf {
        let mut p = self.right_path(part, old);
        p.set_file_name(format!("{RENUM_PREFIX}{old}-{new}"));
        p
    }
}

/// Plans one message; pushes its findings (the first carries the steps).
pub fn plan_message(ctx: &mut MessageCtx, q: &mut Quarantine, msg: &ScannedMessage, out: &mut Vec<Finding>) {
    // The findings of the message before were carried out: when its action
    // raised the fence and failed, whether the fence is up is looked at.
    ctx.journal.fence.raised_by = None;
    ctx.journal.settle_fence();
    if !ctx.empty {
        ctx.salvaged.saw(msg.number);
    }
    ctx.seen.insert(msg.number);
    if judge::is_healthy_preprocessed(ctx, msg) {
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

/// Plans a message the fast path did not clear, step after step; stops
/// early once the message is left as it is or set aside whole.
fn plan_in_full(ctx: &mut MessageCtx, q: &mut Quarantine, msg: &ScannedMessage, out: &mut Vec<Finding>) {
    let n = msg.number;
    let mess_path = msg.file(Part::Mess).map(|f| f.rel_path(n)).unwrap_or_else(|| ctx.right_path(Part::Mess, n));
    if let Some(f) = envelope::unreadable(msg, &mess_path) {
        out.push(f);
        return;
    }
    if ctx.empty {
        out.push(Finding::fix(Kind::Emptied, mess_path, "message", "removed (live empty)", removal_action(msg)));
        return;
    }
    let Some(slots) = renumber::gather(ctx, msg) else { return };
    let fresh = ctx.fresh.remove(&n).unwrap_or_default();
    let mut p = Planner { ctx, q, msg, slots, fresh, steps: Vec::new(), owner_at: 0, notes: Vec::new() };
    // Stops when the message is set aside whole: nothing more to plan.
    let _ = plan_files(&mut p);
    flush(p, out, mess_path)
}

/// The message's files after the scan's first look: the files as files
/// first (their links decide what may be changed), then its state and its
/// envelopes, then owners and modes, then where its files go.
fn plan_files(p: &mut Planner<'_, '_>) -> std::ops::ControlFlow<()> {
    p.place_fresh();
    p.set_aside_copies();
    let shared = p.todo_intd_shared();
    let extra_linked = p.note_extra_links(shared)?;
    p.replace_extra_linked(extra_linked, shared);
    p.drop_unneeded_fresh();
    p.owner_at = p.steps.len();
    let mess = judge::mess(p)?;
    let view = judge::View::of(p, shared);
    if judge::state(p, &view, shared)? {
        envelope::repair_preprocessed(p, &view, mess)?;
    }
    p.owners_and_modes(shared);
    renumber::moves(p, mess);
    std::ops::ControlFlow::Continue(())
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

/// Where the fresh copy of the file at `right` (of message `n`) is written.
fn fresh_path(right: &std::path::Path, n: u64) -> PathBuf {
    right.with_file_name(format!("{FRESH_PREFIX}{n}"))
}
