//! The verifying check after a live repair (docs/repair.md, "After a live
//! run"): what the first pass recorded (the numbers it saw, the numbers
//! the repair touched, those whose envelopes it wrote or could not
//! judge), the narrowed second pass (every bucket listed; a message the
//! repair did not touch is only listed, one it only renumbered has its
//! mess stated, one it otherwise renamed, chowned or chmodded is stated,
//! the rest and every number the first pass did not see are examined
//! whole), the judgement of the listed and stated messages, and the
//! verdict that decides the exit status. Also the set
//! of message numbers ([`Numbers`]) that the scan and renumbering use.
//!
//! How the record is held ([`Record`], docs/performance.md "Memory per
//! message"): the numbers seen are the first pass's own set, the one
//! renumbering asks, handed over when the pass ends; a renumbering's old
//! and new numbers are not noted from its renames but taken from the
//! pending moves after the scan ([`Moved`]: a bit per seen number, the new
//! numbers no message had listed apart); every other finding's numbers
//! are noted as it is carried out ([`Marks`]). A message only renumbered
//! has its mess stated (the inode its new name says) and its other names
//! listed; one whose renumbering was not carried out whole is noted, and
//! stated.

use std::sync::Arc;

use qcommon::layout::Layout;
use qcommon::progress::Progress;
use qcommon::queue::{Ids, Part, QueueShape};
use qcommon::remove::Quarantine;
use qcommon::safe_fs::Dir;
use qcommon::safe_fs::FileKind;
use qcommon::scan::{Depth, DepthOf, ScanOptions, ScannedMessage};

use crate::finding::Finding;
use crate::structure::StructureCtx;
use crate::{plan_and_apply, ExitCode, Pass, PlanError, RunMode, Watch};

/// What the verifying check examines (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Every bucket listed; stated: what the repair only renamed, chowned
    /// or chmodded; reread: what it wrote or could not judge, and new
    /// numbers.
    Changed,
    /// Every message examined again, as the first check did.
    All,
}

impl Scope {
    /// The code in JSON (docs/json.md).
    pub fn code(self) -> &'static str {
        match self {
            Scope::Changed => "changed",
            Scope::All => "all",
        }
    }
}

/// A set of message numbers, 4 bytes each (8 for a number beyond 32
/// bits): the one type for the numbers the scan saw, which renumbering
/// asks whether a new number is free and the verifying record asks
/// whether a message was there (one instance serves both, see
/// [`Record`]), and for the numbers the findings name. Sorted and
/// deduplicated by [`Numbers::seal`], and on the way whenever it has
/// doubled, so repeated numbers do not pile up.
#[derive(Debug, Default)]
pub struct Numbers {
    narrow: Vec<u32>,
    wide: Vec<u64>,
    /// Length of `narrow` at the last deduplication.
    deduped: usize,
    /// Sorted and deduplicated, nothing added since.
    sealed: bool,
}

impl Numbers {
    /// Adds `n`.
    pub fn insert(&mut self, n: u64) {
        self.sealed = false;
        match u32::try_from(n) {
            Ok(x) => {
                self.narrow.push(x);
                if self.narrow.len() >= 2 * self.deduped.max(4096) {
                    self.narrow.sort_unstable();
                    self.narrow.dedup();
                    self.deduped = self.narrow.len();
                }
            }
            Err(_) => self.wide.push(n),
        }
    }

    /// Makes room for `more` numbers at once (the scan's count of the
    /// messages it listed), so the set is not grown by doubling.
    pub fn reserve(&mut self, more: usize) {
        self.narrow.reserve_exact(more);
    }

    /// Sorts and deduplicates, once all numbers are in; gives back the
    /// room beyond its length. Sealing again without an insert between
    /// changes nothing (positions stay, see [`Numbers::position`]).
    pub fn seal(&mut self) {
        if self.sealed {
            return;
        }
        self.narrow.sort_unstable();
        self.narrow.dedup();
        self.narrow.shrink_to_fit();
        self.deduped = self.narrow.len();
        self.wide.sort_unstable();
        self.wide.dedup();
        self.wide.shrink_to_fit();
        self.sealed = true;
    }

    /// Whether `n` is in the set (after [`Numbers::seal`]).
    pub fn contains(&self, n: u64) -> bool {
        self.position(n).is_some()
    }

    /// Where `n` is in the sealed set: `0..len()`, narrow numbers first
    /// (after [`Numbers::seal`]).
    pub fn position(&self, n: u64) -> Option<usize> {
        match u32::try_from(n) {
            Ok(x) => self.narrow.binary_search(&x).ok(),
            Err(_) => self.wide.binary_search(&n).ok().map(|i| self.narrow.len() + i),
        }
    }

    /// How many numbers (after [`Numbers::seal`]).
    pub fn len(&self) -> usize {
        self.narrow.len() + self.wide.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every number, in order (after [`Numbers::seal`]).
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.narrow.iter().map(|&x| u64::from(x)).chain(self.wide.iter().copied())
    }

    /// The numbers of `self` not in `other` (both sealed); the record
    /// counts them instead ([`Record::seal`]).
    #[cfg(test)]
    fn minus(&self, other: &Numbers) -> Numbers {
        Numbers {
            narrow: self.narrow.iter().copied().filter(|&x| other.narrow.binary_search(&x).is_err()).collect(),
            wide: self.wide.iter().copied().filter(|&x| other.wide.binary_search(&x).is_err()).collect(),
            deduped: 0,
            sealed: true,
        }
    }
}

/// The old and new numbers of the renumberings a live run planned, taken
/// from its list of pending moves after the scan instead of from each
/// finding ([`is_renumbering_move`]): a bit per number of the sealed
/// seen set (an old number, or a new number another message had), and
/// the other numbers (new numbers no message had, 4 bytes each) in a
/// set of their own. So a message only renumbered costs the record its
/// new number, not its old and new numbers besides the seen set.
#[derive(Debug, Default)]
pub struct Moved {
    /// Bit `i` for the number at [`Numbers::position`] `i` of the seen set.
    bits: Vec<u64>,
    /// The numbers the seen set does not hold.
    others: Numbers,
}

impl Moved {
    /// Makes room for `more` numbers that `seen` (sealed) does not hold.
    pub fn reserve(&mut self, more: usize) {
        self.others.reserve(more);
    }

    /// Marks `n`, a renumbering's old or new number; `seen` is sealed and
    /// stays as it is from the first mark on.
    pub fn add(&mut self, seen: &Numbers, n: u64) {
        match seen.position(n) {
            Some(i) => {
                if self.bits.is_empty() {
                    self.bits = vec![0; seen.len().div_ceil(64)];
                }
                self.bits[i / 64] |= 1 << (i % 64);
            }
            None => self.others.insert(n),
        }
    }

    /// Whether `n` is marked (after [`Moved::seal`]).
    fn contains(&self, seen: &Numbers, n: u64) -> bool {
        match seen.position(n) {
            Some(i) => self.has_bit(i),
            None => self.others.contains(n),
        }
    }

    fn has_bit(&self, i: usize) -> bool {
        self.bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sorts the numbers outside the seen set.
    fn seal(&mut self) {
        self.others.seal();
    }
}

/// What the first pass of a live run records for the verifying check:
/// the numbers the scan delivered, and every number a finding names (its
/// message, and each number in the file names of its path and of its
/// steps' paths: a renumbering's old and new numbers, a waiting or fresh
/// name's numbers). A message seen and not named was judged healthy and
/// nothing touched it.
///
/// How it is held: `seen` is the first pass's own set of the numbers it
/// saw (the one renumbering asked, moved here when the pass ends: not a
/// second copy). The numbers of a renumbering's renames carried out
/// ([`is_renumbering_move`]) are not noted finding by finding: they are
/// the old and new numbers of the renumberings planned, which `moved`
/// takes from the list of pending moves after the scan, a bit per seen
/// number and 4 bytes per new number. Every other finding is noted in
/// `marks`. Named by a renumbering carried out whole only, a number has
/// its mess stated; noted (a renumbering not carried out whole, or
/// another finding), it is stated.
#[derive(Debug, Default)]
pub struct Record {
    /// Every message number the first scan delivered.
    pub seen: Numbers,
    /// The numbers the findings named.
    pub marks: Marks,
    /// The old and new numbers of the renumberings (their renames are
    /// not in `marks`).
    pub moved: Moved,
}

/// The numbers the findings of a live run's first pass name.
#[derive(Debug, Default)]
pub struct Marks {
    /// Every number a finding names, carried out or not.
    pub touched: Numbers,
    /// Of them, those of a finding that writes an envelope's bytes
    /// (write, copy, replace) or that is left as it is (the first pass
    /// could not judge or repair it): reread whole.
    pub reread: Numbers,
}

/// Notes in `marks` the numbers finding `f` names.
pub fn note(marks: &mut Marks, f: &Finding) {
    use qcommon::mutator::Step;
    let reread = f.left
        || f.action
            .steps
            .iter()
            .any(|s| matches!(s, Step::WriteFile { .. } | Step::CopyPrefix { .. } | Step::Replace { .. }));
    let mut add = |n: u64| {
        marks.touched.insert(n);
        if reread {
            marks.reread.insert(n);
        }
    };
    if let Some(n) = f.action.message {
        add(n);
    }
    numbers_in(&f.path, &mut add);
    for step in &f.action.steps {
        for p in step.from_path().into_iter().chain([step.path()]) {
            numbers_in(p, &mut add);
        }
    }
}

/// Whether finding `f` is only a renumbering's renames (to waiting
/// names, or to the new number; or none, the moves to come after the
/// scan): every number it names is the old or the new number of a
/// renumbering in the list of pending moves, which a live run's record
/// takes whole after the scan ([`Moved`]) instead of noting such a
/// finding. Only one carried out whole: one that failed dropped its
/// renumbering from the list, and is noted.
pub fn is_renumbering_move(f: &Finding) -> bool {
    use crate::finding::Kind;
    use qcommon::mutator::Step;
    matches!(f.kind, Kind::Renumber | Kind::RenumberFinish)
        && !f.left
        && f.action.steps.iter().all(|s| matches!(s, Step::Rename { .. }))
}

/// Every run of digits in the file name of `path`; harmless when one is
/// not a message number (it is examined for nothing).
fn numbers_in(path: &std::path::Path, add: &mut dyn FnMut(u64)) {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = path.file_name() else { return };
    for digits in name.as_bytes().split(|b| !b.is_ascii_digit()).filter(|d| !d.is_empty()) {
        // Digits of a number beyond u64 name no message.
        if let Some(n) = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<u64>().ok()) {
            add(n);
        }
    }
}

impl Record {
    /// Seals the sets; returns how many messages are seen and untouched
    /// (the narrowed pass only lists them).
    fn seal(&mut self) -> u64 {
        self.seen.seal();
        self.marks.touched.seal();
        self.marks.reread.seal();
        self.moved.seal();
        let (touched, moved) = (&self.marks.touched, &self.moved);
        self.seen.iter().enumerate().filter(|&(i, n)| !moved.has_bit(i) && !touched.contains(n)).count() as u64
    }

    /// How far the narrowed pass examines message `n`. A number only a
    /// renumbering carried out names (its old or new number) has its mess
    /// stated and the rest listed; one neither seen nor named is new.
    fn depth(&self, n: u64) -> Depth {
        if self.marks.reread.contains(n) {
            Depth::Full
        } else if self.marks.touched.contains(n) {
            Depth::Stated
        } else if self.moved.contains(&self.seen, n) {
            Depth::MessStated
        } else if self.seen.contains(n) {
            Depth::Listed
        } else {
            Depth::Full
        }
    }
}

/// The narrowed pass's judgement of the messages it does not examine
/// whole. A listed message was healthy and untouched, so under the lock
/// its names must still make a whole message in place: one whose names
/// changed (a file gone or added, a file out of its bucket) or that
/// vanished was changed by another writer. A stated message was only
/// renamed, chowned or chmodded by the repair, whose bytes the first pass
/// read and judged: its files must now be as a healthy message's are
/// (regular, in place, one link, or two for a todo sharing intd's inode,
/// the owners and modes of docs/queue-format.md, mess named by its
/// inode, not empty). A message only renumbered has the same names to
/// make and its mess to be so; its other files, only renamed, keep the
/// inodes, owners and modes the first pass judged.
#[derive(Debug)]
pub struct Narrow {
    shape: QueueShape,
    ids: Ids,
    since: i64,
    /// Messages only listed.
    pub listed: u64,
    /// Messages stated (every file, or the mess alone).
    pub stated: u64,
    /// Problems in what was there before the repair (stated messages).
    pub old: u64,
    /// Problems another writer made: listed messages whose names changed,
    /// stated ones written since the repair started.
    pub new: u64,
}

impl Narrow {
    /// Judges one message the scan only listed or stated.
    pub fn judge(&mut self, m: &ScannedMessage) {
        let placed = m.all_files().all(|f| self.shape.is_in_place(f.part, f.bucket, m.number));
        let stage = qcommon::message::Stage::of(|p| m.has(p));
        let whole = matches!(stage, qcommon::message::Stage::Preprocessed | qcommon::message::Stage::Unpreprocessed);
        let names_ok = whole && placed && m.extra.is_empty();
        match m.depth {
            Depth::Listed => {
                self.listed += 1;
                if !names_ok {
                    self.new += 1;
                }
            }
            Depth::Stated | Depth::MessStated => {
                self.stated += 1;
                let files_ok = match m.depth {
                    Depth::MessStated => self.mess_ok(m),
                    _ => self.files_ok(m),
                };
                if !(names_ok && m.io_errors.is_empty() && files_ok) {
                    if crate::message_is_new(m, Some(self.since)) {
                        self.new += 1;
                    } else {
                        self.old += 1;
                    }
                }
            }
            Depth::Full => {}
        }
    }

    /// A stated message's files, as the first check's fast path and its
    /// owners and modes judge them.
    fn files_ok(&self, m: &ScannedMessage) -> bool {
        let shared = match (m.file(Part::Todo).and_then(|f| f.stat), m.file(Part::Intd).and_then(|f| f.stat)) {
            (Some(t), Some(i)) => t.ino == i.ino,
            _ => false,
        };
        self.mess_ok(m)
            && m.all_files().all(|f| {
                let max_nlink = if shared && matches!(f.part, Part::Todo | Part::Intd) { 2 } else { 1 };
                self.file_ok(f, max_nlink)
            })
    }

    /// A message only renumbered: its mess, stated, is named by its
    /// inode, not empty, and a healthy mess file. Its other files were
    /// only renamed by the repair, which changes neither their bytes nor
    /// their inodes, owners or modes (all judged by the first pass), so
    /// where the listing found them is all there is to check: the names
    /// ([`Narrow::judge`]).
    fn mess_ok(&self, m: &ScannedMessage) -> bool {
        m.file(Part::Mess)
            .is_some_and(|f| f.stat.is_some_and(|st| st.ino == m.number && st.size > 0) && self.file_ok(f, 1))
    }

    /// One stated file: regular, at most `max_nlink` links, qmail's owner,
    /// group (where it is qmail's) and mode.
    fn file_ok(&self, f: &qcommon::scan::Found, max_nlink: u64) -> bool {
        let Some(st) = f.stat else { return false };
        let gid_ok = !f.part.group_is_qmail() || st.gid == self.ids.qmail_gid;
        st.kind == FileKind::Regular
            && st.nlink <= max_nlink
            && st.uid == self.ids.uid(f.part.file_owner())
            && gid_ok
            && st.perm == f.part.file_perm()
    }
}

/// What the second, verifying check of a live run found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Problems in messages or files written while the repair ran.
    pub new: u64,
    /// Problems in what was there before the repair: not fixed.
    pub old: u64,
    /// The verifying pass could not finish.
    pub failed: Option<String>,
    /// The verifying pass was interrupted.
    pub interrupted: bool,
    /// Messages the verifying pass examined: stated, or stated and read.
    pub examined: u64,
    /// Of them, those only stated (the repair only renamed, chowned or
    /// chmodded them).
    pub stated: u64,
    /// Messages it only listed (judged healthy by the first pass and
    /// untouched by the repair).
    pub listed: u64,
}

impl Verdict {
    /// The note for the summary, if any.
    pub fn note(&self, unfixed: u64) -> Option<String> {
        if self.interrupted {
            return Some(
                "interrupted during the verifying check: the repair's steps were carried out, but it was not \
                 verified; run qfixq to check"
                    .into(),
            );
        }
        if let Some(e) = &self.failed {
            return Some(format!("the verifying check could not finish ({e}); the repair was not verified"));
        }
        let mut parts = Vec::new();
        if self.new > 0 {
            parts.push(format!(
                "{} problems in messages or files written while the repair ran: something else is writing to \
                 the queue (a qmail-queue or qmail-send); stop it and run qfixq live again",
                self.new
            ));
        }
        if self.old > 0 && unfixed == 0 {
            parts.push(format!(
                "{} problems are still there although every step succeeded: run qfixq live again; if they \
                 remain, this is a bug: please report it with the output of qfixq",
                self.old
            ));
        }
        (!parts.is_empty()).then(|| format!("after the repair a second check found {}", parts.join("; and ")))
    }

    /// The exit status it calls for.
    pub fn code(&self, unfixed: u64) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else if self.failed.is_some() {
            ExitCode::Operational
        } else if self.new > 0 || (self.old > 0 && unfixed == 0) {
            ExitCode::Unfixed
        } else {
            ExitCode::Clean
        }
    }
}

/// Where and how the verifying check runs.
#[derive(Debug)]
pub struct Verify<'a> {
    /// The queue.
    pub root: &'a Dir,
    /// Its layout.
    pub layout: &'a Layout,
    /// What the structure check needs.
    pub sctx: &'a StructureCtx<'a>,
    /// Delete instead of moving to lost+found (as the first pass).
    pub no_quarantine: bool,
    /// The progress line.
    pub progress: &'a Progress,
    /// The first pass's scan options.
    pub opts: &'a ScanOptions,
    /// The run's start, for lost+found's name.
    pub now: i64,
    /// Files written at or after this were written while the repair ran.
    pub started: i64,
}

/// The second check after a live repair: it must find nothing. What it
/// finds is told apart by age: written after the repair started (another
/// writer), or there before (not fixed). With `record` (scope
/// `changed`) it examines only what the repair touched, what the first
/// pass could not judge and the numbers it did not see; the rest is only
/// listed ([`Listed`]), and a listed message that vanished counts as
/// another writer's doing.
pub fn verify(v: &Verify<'_>, record: Option<Record>) -> Verdict {
    let mut verdict = Verdict::default();
    let mut q2 = match Quarantine::new(v.root, v.now, std::process::id()) {
        Ok(q) => q,
        Err(e) => {
            verdict.failed = Some(e.to_string());
            return verdict;
        }
    };
    let mut opts = v.opts.clone();
    let mut untouched = 0u64;
    if let Some(mut record) = record {
        untouched = record.seal();
        let record = Arc::new(record);
        opts.depth = Some(DepthOf(Arc::new(move |n| record.depth(n))));
    }
    let ids = v.sctx.ids;
    let mut narrow = Narrow { shape: v.layout.shape(), ids, since: v.started, listed: 0, stated: 0, old: 0, new: 0 };
    let pass = Pass {
        mode: RunMode::Check,
        no_quarantine: v.no_quarantine,
        scan: &opts,
        since: Some(v.started),
        progress: v.progress,
        phase: "verifying",
    };
    let watch = Watch { seen: None, narrow: Some(&mut narrow) };
    let r = plan_and_apply(v.root, v.layout, pass, &mut q2, watch, None, &mut |f, o| {
        if f.kind.is_problem() {
            if o.new {
                verdict.new += 1;
            } else {
                verdict.old += 1;
            }
        }
        Ok(true)
    });
    match r {
        Ok(read) => verdict.examined = read + narrow.stated,
        Err(PlanError::Interrupted) => verdict.interrupted = true,
        Err(PlanError::Queue(e)) => verdict.failed = Some(e.to_string()),
        Err(PlanError::Io(e)) => verdict.failed = Some(e.to_string()),
    }
    verdict.listed = narrow.listed;
    verdict.stated = narrow.stated;
    verdict.new += narrow.new;
    verdict.old += narrow.old;
    // An untouched message gone: under the lock only another writer
    // removes one.
    if verdict.failed.is_none() && !verdict.interrupted {
        verdict.new += untouched.saturating_sub(narrow.listed);
    }
    verdict.old +=
        crate::structure::plan_sendmutex(v.sctx, &mut q2).iter().filter(|f| f.kind.is_problem()).count() as u64;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcommon::mutator::{Action, Step};
    use std::path::PathBuf;

    #[test]
    fn numbers_dedup_and_subtract() {
        let mut a = Numbers::default();
        for n in [5u64, 3, 5, 1 << 40, 9, 3] {
            a.insert(n);
        }
        let mut b = Numbers::default();
        b.insert(3);
        b.insert(1 << 40);
        a.seal();
        b.seal();
        assert_eq!(a.len(), 4);
        let d = a.minus(&b);
        assert!(d.contains(5) && d.contains(9));
        assert!(!d.contains(3) && !d.contains(1 << 40));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn number_set_holds_narrow_and_wide_numbers() {
        let mut s = Numbers::default();
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
    fn numbers_dedup_on_the_way_and_keep_positions_when_sealed_again() {
        let mut s = Numbers::default();
        s.reserve(10_000);
        // Past the first deduplication (4096): repeats do not pile up.
        for i in 0..10_000u64 {
            s.insert(i % 3000);
        }
        s.insert(1 << 33);
        assert!(s.narrow.len() < 10_000, "deduplicated on the way: {}", s.narrow.len());
        s.seal();
        assert_eq!(s.len(), 3001);
        assert_eq!(s.narrow.capacity(), 3000, "room beyond the length given back");
        assert_eq!([s.position(0), s.position(2999), s.position(1 << 33)], [Some(0), Some(2999), Some(3000)]);
        assert_eq!(s.position(3000), None);
        s.seal();
        assert_eq!(s.position(1 << 33), Some(3000), "sealing again moves nothing");
        let all: Vec<u64> = s.iter().collect();
        assert_eq!((all.len(), all[0], all[2999], all[3000]), (3001, 0, 2999, 1 << 33));
    }

    #[test]
    fn moved_numbers_are_bits_of_the_seen_set_or_listed_apart() {
        let mut seen = Numbers::default();
        for n in [10u64, 11, 12, 1 << 40] {
            seen.insert(n);
        }
        seen.seal();
        let mut m = Moved::default();
        m.reserve(2);
        for n in [11, 1 << 40, 30, 1 << 41] {
            m.add(&seen, n);
        }
        m.seal();
        assert_eq!(m.others.len(), 2, "30 and 2^41: not seen");
        for n in [11, 1 << 40, 30, 1 << 41] {
            assert!(m.contains(&seen, n), "{n}");
        }
        for n in [10, 12, 31] {
            assert!(!m.contains(&seen, n), "{n}");
        }
    }

    #[test]
    fn a_renumbering_taken_from_the_pending_moves_has_its_mess_stated() {
        // Messages 10 to 13 seen; 10 renumbered to 20 and 11 to 12 (another
        // message's number): taken as moves (carried out whole), their
        // numbers have the mess stated; noted from their findings (a
        // renumbering that was not carried out whole), every file.
        let renamed = |old: u64, new: u64| {
            Finding::fix(
                crate::finding::Kind::RenumberFinish,
                PathBuf::from(format!("mess/1/{new}")),
                "moves",
                "given its new number",
                Action {
                    message: Some(new),
                    steps: vec![Step::Rename {
                        from: PathBuf::from(format!("mess/1/{old}")),
                        to: PathBuf::from(format!("mess/2/{new}")),
                        expect: None,
                    }],
                },
            )
        };
        let mut noted = Record::default();
        let mut taken = Record::default();
        for r in [&mut noted, &mut taken] {
            for n in [10u64, 11, 12, 13] {
                r.seen.insert(n);
            }
        }
        taken.seen.seal();
        for (old, new) in [(10, 20), (11, 12)] {
            let f = renamed(old, new);
            assert!(is_renumbering_move(&f));
            note(&mut noted.marks, &f);
            taken.moved.add(&taken.seen, old);
            taken.moved.add(&taken.seen, new);
        }
        assert_eq!(noted.seal(), 1);
        assert_eq!(taken.seal(), 1, "only 13 untouched");
        for n in [10, 11, 12, 20] {
            assert_eq!((noted.depth(n), taken.depth(n)), (Depth::Stated, Depth::MessStated), "{n}");
        }
        for n in [13, 21] {
            assert_eq!(noted.depth(n), taken.depth(n), "{n}");
        }
        assert_eq!([taken.depth(13), taken.depth(21)], [Depth::Listed, Depth::Full]);
        // Not only renames, or left: noted finding by finding.
        let mut written = renamed(13, 40);
        written.action.steps.push(Step::Unlink { path: PathBuf::from("info/1/13"), expect: None });
        assert!(!is_renumbering_move(&written));
        let left = Finding::leave(crate::finding::Kind::RenumberFinish, PathBuf::from("mess/1/40"), "held", "left");
        assert!(!is_renumbering_move(&left));
    }

    #[test]
    fn a_finding_names_its_message_and_every_number_in_its_steps() {
        let mut r = Record::default();
        for n in [10u64, 11, 12, 13, 14] {
            r.seen.insert(n);
        }
        let renamed = Finding::fix(
            crate::finding::Kind::Renumber,
            PathBuf::from("mess/1/10"),
            "renumbered",
            "renamed",
            Action {
                message: Some(10),
                steps: vec![
                    Step::Rename {
                        from: PathBuf::from("info/1/11"),
                        to: PathBuf::from("info/1/.qfixq-renum-11-12"),
                        expect: None,
                    },
                    Step::Rename { from: PathBuf::from("mess/1/10"), to: PathBuf::from("mess/2/20"), expect: None },
                    Step::Rmdir { path: PathBuf::from("mess/99999999999999999999999") },
                ],
            },
        );
        note(&mut r.marks, &renamed);
        let left = Finding::leave(crate::finding::Kind::Unreadable, PathBuf::from("info/0/14"), "unreadable", "left");
        note(&mut r.marks, &left);
        assert_eq!(r.seal(), 1, "10, 11, 12 and 14 named; 13 not");
        assert_eq!(r.depth(13), Depth::Listed);
        assert_eq!([r.depth(10), r.depth(11), r.depth(12)], [Depth::Stated; 3], "only renamed");
        assert_eq!(r.depth(14), Depth::Full, "could not be judged");
        assert_eq!(r.depth(20), Depth::Stated, "a new number the repair moved files to");
        assert_eq!(r.depth(15), Depth::Full, "neither seen by the first pass nor named");
    }

    /// A practice queue (root only: the builder sets qmail's owners).
    fn practice(messages: usize) -> Option<qtests::prelude::qfixq::Fixture> {
        qtests::prelude::qfixq::root_or_skip("verify unit test")
            .then(|| qtests::prelude::qfixq::build(messages, 7, false, 41, &[]))
    }

    fn session(q: &std::path::Path) -> qcommon::session::Session {
        let options = qcommon::layout::LayoutOptions {
            queue: Some(q.to_path_buf()),
            qmail_home: None,
            split: Some(7),
            ids: Some(qtests::prelude::qfixq::IDS),
            run_showctl: false,
            new_queue: false,
        };
        qcommon::session::Session::open(&options, qcommon::session::Access::ReadOnly).unwrap()
    }

    /// A first pass (a check) that records as a live run does.
    fn first_pass(session: &qcommon::session::Session, progress: &Progress) -> Record {
        let opts = ScanOptions { threads: 2, ..ScanOptions::default() };
        let pass =
            Pass { mode: RunMode::Check, no_quarantine: false, scan: &opts, since: None, progress, phase: "scanning" };
        let mut q = Quarantine::new(session.root(), 0, std::process::id()).unwrap();
        let mut record = Record::default();
        let marks = &mut record.marks;
        let watch = Watch { seen: Some(&mut record.seen), narrow: None };
        let r = plan_and_apply(session.root(), session.layout(), pass, &mut q, watch, None, &mut |f, _| {
            note(marks, f);
            Ok(true)
        });
        assert!(r.is_ok());
        record
    }

    fn second_pass(session: &qcommon::session::Session, progress: &Progress, record: Option<Record>) -> Verdict {
        let layout = session.layout();
        let ids = qtests::prelude::qfixq::IDS;
        let sctx = StructureCtx { root: session.root(), shape: layout.shape(), ids };
        let opts = ScanOptions { threads: 2, ..ScanOptions::default() };
        let v = Verify {
            root: session.root(),
            layout,
            sctx: &sctx,
            no_quarantine: false,
            progress,
            opts: &opts,
            now: 0,
            started: i64::MAX,
        };
        verify(&v, record)
    }

    /// The message numbers in `q/info`, smallest first.
    fn numbers(q: &std::path::Path) -> Vec<u64> {
        let mut v: Vec<u64> = qtests::prelude::qfixq::regular_files(&q.join("info"))
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn untouched_messages_are_only_listed_and_their_changes_seen() {
        let Some(fx) = practice(60) else { return };
        let q = fx.queue();
        let progress = Progress::hidden("qfixq");
        let s = session(q);
        let record = first_pass(&s, &progress);
        let nums = numbers(q);
        let messages = record.seen.narrow.len() as u64;
        assert!(messages >= nums.len() as u64 && nums.len() >= 3, "{messages} messages, {} with info", nums.len());
        // Another writer: one message gone whole, one without its info,
        // one whose info has the wrong mode (names unchanged: a listing
        // does not see that; only --verify=all does).
        let shape = s.layout().shape();
        for part in qcommon::queue::Part::REMOVAL_ORDER {
            let _ = std::fs::remove_file(q.join(shape.path(part, nums[0])));
        }
        std::fs::remove_file(q.join(shape.path(qcommon::queue::Part::Info, nums[1]))).unwrap();
        let info2 = q.join(shape.path(qcommon::queue::Part::Info, nums[2]));
        std::fs::set_permissions(&info2, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let narrowed = second_pass(&s, &progress, Some(record));
        assert_eq!(narrowed.examined, 0, "{narrowed:?}");
        assert_eq!(narrowed.listed, messages - 1, "{narrowed:?}");
        assert_eq!((narrowed.new, narrowed.old), (2, 0), "a vanished message and a changed one: {narrowed:?}");
        assert_eq!(narrowed.code(0), ExitCode::Unfixed);
        let all = second_pass(&s, &progress, None);
        assert_eq!((all.examined, all.listed), (messages - 1, 0), "{all:?}");
        assert!(all.old >= 2, "the message without info and the wrong mode: {all:?}");
    }

    #[test]
    fn what_the_first_pass_named_is_examined_again() {
        let Some(fx) = practice(30) else { return };
        let q = fx.queue();
        let progress = Progress::hidden("qfixq");
        let s = session(q);
        let nums = numbers(q);
        let shape = s.layout().shape();
        let info = q.join(shape.path(qcommon::queue::Part::Info, nums[0]));
        std::fs::set_permissions(&info, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        // A check's first pass plans the chmod and carries out nothing: the
        // step "succeeded" in the record, the problem is still there.
        let record = first_pass(&s, &progress);
        let messages = record.seen.narrow.len() as u64;
        let v = second_pass(&s, &progress, Some(record));
        assert_eq!((v.examined, v.stated, v.listed), (1, 1, messages - 1), "only stated: {v:?}");
        assert_eq!((v.new, v.old), (0, 1), "{v:?}");
        assert_eq!(v.code(0), ExitCode::Unfixed);
    }
}
