//! qfixq's side of the salvage records (`qcommon::salvaged`): a record is
//! written, before the info, for every message whose sender qfixq
//! invents; it moves with its message when qfixq renumbers it; and a
//! record whose message is gone is removed (not a problem: housekeeping).

use std::collections::HashSet;

use qcommon::mutator::{Action, Step};
use qcommon::remove::Quarantine;
use qcommon::safe_fs::Dir;
use qcommon::salvaged::{self, Record, Salvaged};

use crate::finding::{Finding, Kind};

/// The records of this run: those on disk, those this run writes, and
/// which of them belong to a message the scan saw.
#[derive(Debug, Default)]
pub struct Book {
    records: Salvaged,
    seen: HashSet<u64>,
}

impl Book {
    /// The records on disk under `root`.
    pub fn load(root: &Dir) -> qcommon::Result<Book> {
        Ok(Book { records: salvaged::read_all(root)?, seen: HashSet::new() })
    }

    /// Message `n` is in the queue: its record (if any) stays.
    pub fn saw(&mut self, n: u64) {
        if self.records.contains(n) {
            self.seen.insert(n);
        }
    }

    /// The steps recording `rec` (lost+found and its `salvaged` directory
    /// first, when missing); they go before the info is written.
    pub fn record_steps(&mut self, q: &mut Quarantine, rec: Record) -> Vec<Step> {
        let mut steps = Vec::new();
        if !self.records.dir_exists {
            q.lost_found_steps(&mut steps);
            steps.push(salvaged::mkdir_step());
            self.records.dir_exists = true;
        }
        if self.records.get(rec.number) != Some(&rec) {
            steps.push(salvaged::write_step(&rec));
        }
        self.records.insert(rec);
        self.seen.insert(rec.number);
        steps
    }

    /// When message `old` (renumbered to `new`) has a record: the step
    /// writing it under the new number, to go before the message's files
    /// move, and the one removing the old record, to go after its mess
    /// has moved. A crash in between leaves both: the message keeps a
    /// record under whichever number it has, and the stale one is removed
    /// by the next live run.
    pub fn renumber_steps(&mut self, old: u64, new: u64) -> Option<(Step, Step)> {
        let rec = self.records.remove(old)?;
        self.seen.remove(&old);
        let moved = rec.renumbered(new);
        self.records.insert(moved);
        self.seen.insert(new);
        let before = salvaged::write_step(&moved);
        let after = Step::Unlink { path: salvaged::record_path(old), expect: None };
        Some((before, after))
    }

    /// Removes the records of messages no longer in the queue. `keep` are
    /// the numbers of renumberings still waiting (old and new): their
    /// records stay.
    pub fn plan_gone(&mut self, keep: impl Iterator<Item = u64>, out: &mut Vec<Finding>) {
        self.seen.extend(keep);
        let mut gone: Vec<u64> = self.records.iter().map(|r| r.number).filter(|n| !self.seen.contains(n)).collect();
        gone.sort_unstable();
        for n in gone {
            self.records.remove(n);
            let path = salvaged::record_path(n);
            out.push(Finding::fix(
                Kind::SalvageRecord,
                path.clone(),
                format!("record of salvaged message {n}, which is no longer in the queue"),
                "removed",
                Action { message: None, steps: vec![Step::Unlink { path, expect: None }] },
            ));
        }
    }
}

/// The findings removing the records of messages no longer in the queue
/// (after the scan, before the second half of renumbering).
pub fn plan_gone(ctx: &mut crate::message::MessageCtx, out: &mut Vec<Finding>) {
    let keep: Vec<u64> =
        ctx.waiting.iter().flat_map(|(old, list)| std::iter::once(*old).chain(list.iter().map(|w| w.new))).collect();
    ctx.salvaged.plan_gone(keep.into_iter(), out);
}

/// Why the sender is invented: no info file, or its size.
pub fn why(info_size: Option<u64>) -> salvaged::Why {
    match info_size {
        None => salvaged::Why::InfoMissing,
        Some(0) => salvaged::Why::InfoEmpty,
        Some(_) => salvaged::Why::InfoGarbled,
    }
}
