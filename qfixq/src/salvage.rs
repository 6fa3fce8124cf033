//! qfixq's side of the salvage records (`qcommon::salvaged`): a record is
//! written, before the info, for every message whose sender qfixq
//! invents; it moves with its message when qfixq renumbers it; and a
//! record whose message is gone is removed (not a problem: housekeeping).

use std::collections::{HashMap, HashSet};

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
    /// Records between the two halves of a renumbering, by (old, new).
    renaming: HashMap<(u64, u64), Record>,
}

impl Book {
    /// The records on disk under `root`.
    pub fn load(root: &Dir) -> qcommon::Result<Book> {
        let records = salvaged::read_all(root)?;
        let renaming = records
            .renaming
            .iter()
            .map(|&(old, new, rec)| {
                // A waiting record that does not parse still marks its
                // message as salvaged.
                let rec = rec.unwrap_or(Record { number: old, inode: new, birth: 0, why: salvaged::Why::InfoGarbled });
                ((old, new), rec)
            })
            .collect();
        Ok(Book { records, seen: HashSet::new(), renaming })
    }

    /// Message `n` is in the queue: its record (if any) stays.
    pub fn saw(&mut self, n: u64) {
        if self.records.contains(n) {
            self.seen.insert(n);
        }
    }

    /// Whether message `n` has a record (on disk, or written by this run).
    pub fn has(&self, n: u64) -> bool {
        self.records.contains(n)
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

    /// The first half of renumbering message `old` to `new`: when it has
    /// a record, the step moving the record to its waiting name, to go
    /// after the message's mess has moved (until then the message is
    /// under its old number, with its record).
    pub fn renumber_steps(&mut self, old: u64, new: u64) -> Option<Step> {
        let rec = self.records.remove(old)?;
        self.seen.remove(&old);
        self.renaming.insert((old, new), rec);
        Some(Step::Rename { from: salvaged::record_path(old), to: salvaged::renaming_path(old, new), expect: None })
    }

    /// The second half of renumbering `old` to `new`: the steps writing
    /// its record under the new number (crash-safe, replacing) and
    /// removing the waiting one, to go before any file of the message
    /// takes the new number. A record left under the new number is stale
    /// (removed before this half) or written by an interrupted run of
    /// this same half.
    pub fn finish_steps(&mut self, old: u64, new: u64) -> Vec<Step> {
        let (rec, from) = if let Some(rec) = self.renaming.remove(&(old, new)) {
            (rec, salvaged::renaming_path(old, new))
        } else if let Some(rec) = self.records.get(old).copied().filter(|r| !self.seen.contains(&old) && r.inode == new)
        {
            // An interrupted first half moved the mess but not the record
            // (which names the mess inode, the new number). A record under
            // `old` naming another inode is not this message's: the second
            // half of another renumbering, to `old`, wrote it there.
            self.records.remove(old);
            (rec, salvaged::record_path(old))
        } else {
            return Vec::new();
        };
        let moved = rec.renumbered(new);
        self.records.insert(moved);
        self.seen.insert(new);
        vec![salvaged::write_step(&moved), Step::Unlink { path: from, expect: None }]
    }

    /// Removes the records of messages no longer in the queue. `keep` are
    /// the numbers of renumberings still waiting (old and new): their
    /// records stay.
    pub fn plan_gone(&mut self, keep: impl Iterator<Item = u64>, out: &mut Vec<Finding>) {
        // Kept apart from `seen` (the messages the scan delivered): the
        // second half moves the record of a message whose files all wait
        // only when the scan did not see that message under its old number.
        let keep: HashSet<u64> = keep.collect();
        let mut gone: Vec<u64> =
            self.records.iter().map(|r| r.number).filter(|n| !self.seen.contains(n) && !keep.contains(n)).collect();
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
