//! The verifying check after a live repair (docs/repair.md, "After a live
//! run"): what the first pass recorded (the numbers it saw, the numbers
//! the repair touched), the narrowed second pass that examines only what
//! the repair touched, what the first pass could not judge and any number
//! it did not see (every bucket is still listed), the check of the
//! messages it only lists, and the verdict that decides the exit status.

use std::sync::Arc;

use qcommon::layout::Layout;
use qcommon::progress::Progress;
use qcommon::queue::QueueShape;
use qcommon::remove::Quarantine;
use qcommon::safe_fs::Dir;
use qcommon::scan::{ListOnly, ScanOptions, ScannedMessage};

use crate::finding::Finding;
use crate::structure::StructureCtx;
use crate::{plan_and_apply, ExitCode, Pass, PlanError, RunMode, Watch};

/// What the verifying check examines (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Every bucket listed; examined: the messages the repair touched or
    /// could not judge, and every number the first check did not see.
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
/// bits); sorted and deduplicated by [`Numbers::seal`], and on the way
/// whenever it has doubled, so repeated numbers do not pile up.
#[derive(Debug, Default)]
pub struct Numbers {
    narrow: Vec<u32>,
    wide: Vec<u64>,
    /// Length of `narrow` at the last deduplication.
    deduped: usize,
}

impl Numbers {
    /// Adds `n`.
    pub fn insert(&mut self, n: u64) {
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

    /// Sorts and deduplicates, once all numbers are in.
    pub fn seal(&mut self) {
        self.narrow.sort_unstable();
        self.narrow.dedup();
        self.narrow.shrink_to_fit();
        self.deduped = self.narrow.len();
        self.wide.sort_unstable();
        self.wide.dedup();
    }

    /// Whether `n` is in the set (after [`Numbers::seal`]).
    pub fn contains(&self, n: u64) -> bool {
        match u32::try_from(n) {
            Ok(x) => self.narrow.binary_search(&x).is_ok(),
            Err(_) => self.wide.binary_search(&n).is_ok(),
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

    /// The numbers of `self` not in `other` (both sealed).
    fn minus(&self, other: &Numbers) -> Numbers {
        Numbers {
            narrow: self.narrow.iter().copied().filter(|&x| other.narrow.binary_search(&x).is_err()).collect(),
            wide: self.wide.iter().copied().filter(|&x| other.wide.binary_search(&x).is_err()).collect(),
            deduped: 0,
        }
    }
}

/// What the first pass of a live run records for the verifying check:
/// the numbers the scan delivered, and every number a finding names (its
/// message, and each number in the file names of its path and of its
/// steps' paths: a renumbering's old and new numbers, a waiting or fresh
/// name's numbers). A message seen and not named was judged healthy and
/// nothing touched it.
#[derive(Debug, Default)]
pub struct Record {
    /// Every message number the first scan delivered.
    pub seen: Numbers,
    /// Every number a finding names, carried out or not.
    pub touched: Numbers,
}

/// Notes in `touched` the numbers finding `f` names.
pub fn note(touched: &mut Numbers, f: &Finding) {
    if let Some(n) = f.action.message {
        touched.insert(n);
    }
    note_path(touched, &f.path);
    for step in &f.action.steps {
        for p in step_paths(step) {
            note_path(touched, p);
        }
    }
}

/// Notes every run of digits in the file name of `path`; harmless when
/// one is not a message number (it is examined for nothing).
fn note_path(touched: &mut Numbers, path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = path.file_name() else { return };
    for digits in name.as_bytes().split(|b| !b.is_ascii_digit()).filter(|d| !d.is_empty()) {
        // Digits of a number beyond u64 name no message.
        if let Some(n) = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<u64>().ok()) {
            touched.insert(n);
        }
    }
}

impl Record {
    /// The numbers the narrowed pass only lists: seen and not touched.
    fn untouched(mut self) -> Numbers {
        self.seen.seal();
        self.touched.seal();
        self.seen.minus(&self.touched)
    }
}

/// The paths a step names.
fn step_paths(step: &qcommon::mutator::Step) -> Vec<&std::path::Path> {
    use qcommon::mutator::Step;
    match step {
        Step::Rename { from, to, .. } | Step::Replace { from, to } | Step::Link { from, to } => vec![from, to],
        Step::CopyPrefix { from, path, .. } => vec![from, path],
        Step::Unlink { path, .. }
        | Step::Rmdir { path }
        | Step::Mkdir { path, .. }
        | Step::Mkfifo { path, .. }
        | Step::Chown { path, .. }
        | Step::Chmod { path, .. }
        | Step::SetMtime { path, .. }
        | Step::WriteFile { path, .. } => vec![path],
    }
}

/// The verifying pass's look at the messages it only lists: they were
/// healthy and untouched, so under the lock their names must be as the
/// first pass saw them. A message whose names changed (a file gone or
/// added, a file out of its bucket) or that vanished was changed by
/// another writer.
#[derive(Debug)]
pub struct Listed {
    shape: QueueShape,
    /// Messages only listed.
    pub count: u64,
    /// Of them, those whose names are no longer a whole message.
    pub changed: u64,
}

impl Listed {
    /// Looks at one listed message.
    pub fn check(&mut self, m: &ScannedMessage) {
        self.count += 1;
        let stage = qcommon::message::Stage::of(|p| m.has(p));
        let whole = matches!(stage, qcommon::message::Stage::Preprocessed | qcommon::message::Stage::Unpreprocessed);
        let placed = m.all_files().all(|f| self.shape.is_in_place(f.part, f.bucket, m.number));
        if !whole || !placed || !m.extra.is_empty() {
            self.changed += 1;
        }
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
    /// Messages the verifying pass examined (stat and envelopes).
    pub examined: u64,
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
    let mut untouched_count = 0u64;
    if let Some(record) = record {
        let untouched = Arc::new(record.untouched());
        untouched_count = untouched.len() as u64;
        opts.list_only = Some(ListOnly(Arc::new(move |n| untouched.contains(n))));
    }
    let mut listed = Listed { shape: v.layout.shape(), count: 0, changed: 0 };
    let pass = Pass {
        mode: RunMode::Check,
        no_quarantine: v.no_quarantine,
        scan: &opts,
        since: Some(v.started),
        progress: v.progress,
        phase: "verifying",
    };
    let watch = Watch { seen: None, listed: Some(&mut listed) };
    let r = plan_and_apply(v.root, v.layout, pass, &mut q2, watch, &mut |f, o| {
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
        Ok(examined) => verdict.examined = examined,
        Err(PlanError::Interrupted) => verdict.interrupted = true,
        Err(PlanError::Queue(e)) => verdict.failed = Some(e.to_string()),
        Err(PlanError::Io(e)) => verdict.failed = Some(e.to_string()),
    }
    verdict.listed = listed.count;
    // Changed names of an untouched message, or one gone: under the lock
    // only another writer does that.
    verdict.new += listed.changed;
    if verdict.failed.is_none() && !verdict.interrupted {
        verdict.new += untouched_count.saturating_sub(listed.count);
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
    fn a_finding_names_its_message_and_every_number_in_its_steps() {
        let mut r = Record::default();
        for n in [10u64, 11, 12, 13, 14] {
            r.seen.insert(n);
        }
        let f = Finding::fix(
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
                    Step::Rmdir { path: PathBuf::from("mess/99999999999999999999999") },
                ],
            },
        );
        note(&mut r.touched, &f);
        let untouched = r.untouched();
        assert_eq!(untouched.len(), 2, "10, 11, 12 named; 13, 14 not");
        assert!(untouched.contains(13) && untouched.contains(14));
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
        let touched = &mut record.touched;
        let watch = Watch { seen: Some(&mut record.seen), listed: None };
        let r = plan_and_apply(session.root(), session.layout(), pass, &mut q, watch, &mut |f, _| {
            note(touched, f);
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
        assert_eq!((v.examined, v.listed), (1, messages - 1), "{v:?}");
        assert_eq!((v.new, v.old), (0, 1), "{v:?}");
        assert_eq!(v.code(0), ExitCode::Unfixed);
    }
}
