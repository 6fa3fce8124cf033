//! A finding: one problem at one path, what is done about it, and the
//! steps that do it. Check and live come from the same planning code and
//! run every finding's action through one executor (`qcommon::mutator`):
//! a check has it plan the steps (a dry run, nothing changed), live has
//! it carry them out; the report shows each step as the executor saw it.

use std::path::PathBuf;

use qcommon::mutator::Action;

/// The kinds of finding, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A missing or wrong directory, bucket or lock file.
    Structure,
    /// Wrong owner or group.
    Owner,
    /// Wrong mode.
    Mode,
    /// A file left in pid/.
    PidLeftover,
    /// A stray entry.
    Stray,
    /// A message file with more hard links than it should have.
    ExtraLinks,
    /// A message whose name is not its mess inode number.
    Renumber,
    /// A file in the wrong bucket.
    WrongBucket,
    /// A second copy of a message file.
    Duplicate,
    /// A bounce file beside a not-yet-preprocessed message.
    StaleBounce,
    /// A broken envelope rebuilt or set aside.
    Envelope,
    /// A message that cannot be saved.
    Unsalvageable,
    /// S2 or S3: a message qmail-queue never finished.
    Leftover,
    /// info rewritten with a null sender.
    SenderLost,
    /// A partial last recipient record dropped.
    PartialRecord,
    /// A message left alone because it could not be read.
    Unreadable,
    /// A message removed by `live empty`.
    Emptied,
    /// An extra bucket (at or beyond the split).
    ExtraBucket,
    /// The second half of a renumbering (files moved to their new names).
    RenumberFinish,
    /// Something noted and left alone on purpose; not a problem.
    Note,
    /// The record of a salvaged message that is gone, removed; not a problem.
    SalvageRecord,
}

impl Kind {
    /// A short name for the summary and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Structure => "structure",
            Kind::Owner => "owner",
            Kind::Mode => "mode",
            Kind::PidLeftover => "pid-leftover",
            Kind::Stray => "stray",
            Kind::ExtraLinks => "extra-links",
            Kind::Renumber => "renumber",
            Kind::WrongBucket => "wrong-bucket",
            Kind::Duplicate => "duplicate",
            Kind::StaleBounce => "stale-bounce",
            Kind::Envelope => "envelope",
            Kind::Unsalvageable => "unsalvageable",
            Kind::Leftover => "leftover",
            Kind::SenderLost => "sender-lost",
            Kind::PartialRecord => "partial-record",
            Kind::Unreadable => "unreadable",
            Kind::Emptied => "emptied",
            Kind::ExtraBucket => "extra-bucket",
            Kind::RenumberFinish => "renumber-finish",
            Kind::Note => "note",
            Kind::SalvageRecord => "salvage-record",
        }
    }
}

impl Kind {
    /// The stable snake_case code for JSON (docs/json.md).
    pub fn code(self) -> &'static str {
        match self {
            Kind::PidLeftover => "pid_leftover",
            Kind::ExtraLinks => "extra_links",
            Kind::WrongBucket => "wrong_bucket",
            Kind::StaleBounce => "stale_bounce",
            Kind::SenderLost => "sender_lost",
            Kind::PartialRecord => "partial_record",
            Kind::ExtraBucket => "extra_bucket",
            Kind::RenumberFinish => "renumber_finish",
            Kind::SalvageRecord => "salvage_record",
            k => k.name(),
        }
    }

    /// What is done about findings of this kind, in general (the grouped
    /// report's table, when the findings' own remedies differ).
    pub fn what(self) -> &'static str {
        match self {
            Kind::Structure => "directories, buckets or lock files made or set right",
            Kind::Owner => "chown",
            Kind::Mode => "chmod",
            Kind::PidLeftover => "removed",
            Kind::Stray => "removed or set aside",
            Kind::ExtraLinks => "set aside or replaced by a fresh copy",
            Kind::Renumber => "renumbered to its mess inode number",
            Kind::WrongBucket => "moved to the right bucket",
            Kind::Duplicate => "set aside",
            Kind::StaleBounce => "removed",
            Kind::Envelope => "made anew from a valid copy, or set aside",
            Kind::Unsalvageable => "message set aside",
            Kind::Leftover => "set aside",
            Kind::SenderLost => "written with the null sender, birth time kept (recorded as salvaged)",
            Kind::PartialRecord => "partial last record dropped, complete records kept",
            Kind::Unreadable => "left as it is",
            Kind::Emptied => "removed (live empty)",
            Kind::ExtraBucket => "emptied into the right buckets and removed",
            Kind::RenumberFinish => "given its new number",
            Kind::Note => "left alone",
            Kind::SalvageRecord => "removed",
        }
    }

    /// Whether findings of this kind count as problems (exit status, summary).
    pub fn is_problem(self) -> bool {
        !matches!(self, Kind::RenumberFinish | Kind::Note | Kind::SalvageRecord)
    }
}

/// One problem and what is done about it.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Kind, for the summary.
    pub kind: Kind,
    /// The path concerned, relative to the queue.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
    /// What is done (or, when `action.steps` is empty and `left` is set,
    /// why nothing is done).
    pub remedy: String,
    /// The steps.
    pub action: Action,
    /// True when the finding is left as it is (it counts as unfixed).
    pub left: bool,
    /// True when this finding's repair is carried out by the action of the
    /// finding before it (one message's findings share one action): when
    /// that action fails, this finding is not fixed either.
    pub follows: bool,
}

impl Finding {
    /// A finding fixed by `action`.
    pub fn fix(
        kind: Kind,
        path: PathBuf,
        problem: impl Into<String>,
        remedy: impl Into<String>,
        action: Action,
    ) -> Self {
        Finding { kind, path, problem: problem.into(), remedy: remedy.into(), action, left: false, follows: false }
    }

    /// A finding left alone.
    pub fn leave(kind: Kind, path: PathBuf, problem: impl Into<String>, why: impl Into<String>) -> Self {
        Finding {
            kind,
            path,
            problem: problem.into(),
            remedy: why.into(),
            action: Action { message: None, steps: Vec::new() },
            left: true,
            follows: false,
        }
    }
}
