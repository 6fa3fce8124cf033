//! The head and the tail of a run's output: the header's decisions and
//! the summary of counts, as text lines or as the JSON document's head and
//! tail (docs/json.md). The counts come from the executor's outcomes
//! (`super::execute`), in a dry run as in a live one.

use qcommon::layout::Layout;

use super::{Runner, Work};
use crate::guard::Target;
use crate::plan::Lifetime;

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages the scan delivered.
    pub scanned: u64,
    /// Messages selected (all filters matched).
    pub selected: u64,
    /// Removed (or, dry, would be).
    pub removed: u64,
    /// Bytes removed (or, dry, would be).
    pub bytes: u64,
    /// Backdated (or, dry, would be).
    pub expired: u64,
    /// Already past queuelifetime.
    pub already_past: u64,
    /// `--expire`: selected but not yet preprocessed.
    pub not_preprocessed: u64,
    /// `--expire`: selected but damaged (its files fit no state of the
    /// queue: an info without a mess, an intd beside an info).
    pub damaged: u64,
    /// A step failed.
    pub failed: u64,
    /// Gone while the run worked on them (qmail-send finished them).
    pub vanished: u64,
    /// Could not be read; left alone.
    pub unreadable: u64,
    /// No envelope (lone mess, or mess and an incomplete intd).
    pub no_envelope: u64,
    /// Errors that kept part of the queue from being scanned.
    pub scan_errors: u64,
    /// Salvaged messages (null sender invented by qfixq) that matched and
    /// were kept.
    pub salvaged_kept: u64,
    /// Message numbers given that were left alone: not in the queue, only
    /// strays, no envelope, unreadable.
    pub named_left: u64,
}

/// The document's head (its messages follow): the header's decisions as
/// data (docs/json.md).
#[derive(serde::Serialize)]
pub(super) struct HeadJson<'a> {
    schema_version: u32,
    tool: &'static str,
    version: &'static str,
    mode: &'static str,
    dry_run: bool,
    now: i64,
    #[serde(serialize_with = "qcommon::json::bytes")]
    queue: &'a [u8],
    #[serde(flatten)]
    layout: qcommon::json::LayoutJson,
    qmail_send: &'a QmailSendJson,
    selection_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    queuelifetime: Option<qcommon::json::LifetimeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_to: Option<i64>,
}

/// What the run found of qmail-send: a code, the processes (`--expire`:
/// those it signals), the same in words.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct QmailSendJson {
    pub(super) state: &'static str,
    pub(super) pids: Vec<u32>,
    pub(super) text: String,
}

/// The header's decisions that are not the layout's, for JSON.
#[derive(Debug, Default)]
pub(super) struct HeadData {
    pub(super) qmail_send: QmailSendJson,
    pub(super) selection: String,
    pub(super) lifetime: Option<qcommon::json::LifetimeJson>,
}

/// A refusal, as JSON.
#[derive(serde::Serialize)]
pub(super) struct ErrorJson<'a> {
    pub(super) schema_version: u32,
    pub(super) tool: &'static str,
    pub(super) error: &'a str,
}

/// The summary: a dry run names its counts as what would happen.
#[derive(serde::Serialize)]
struct SummaryJson {
    scanned: u64,
    selected: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_remove: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_freed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_would_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_expire: Option<u64>,
    already_expired: u64,
    not_preprocessed: u64,
    damaged: u64,
    failed: u64,
    vanished: u64,
    unreadable: u64,
    no_envelope: u64,
    scan_errors: u64,
    salvaged_kept: u64,
    named_left: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    queuelifetime: Option<u64>,
}

#[derive(serde::Serialize)]
struct SignalledJson<'a> {
    pid: u32,
    name: &'a str,
}

#[derive(serde::Serialize)]
struct TailJson<'a> {
    summary: SummaryJson,
    signalled: Vec<SignalledJson<'a>>,
    notes: &'a [String],
}

impl Runner<'_> {
    pub(super) fn print_header(&mut self, layout: &Layout, header: &[(&str, String)], data: &HeadData, now: i64) {
        if self.json() {
            let head = HeadJson {
                schema_version: qcommon::json::SCHEMA_VERSION,
                tool: "qkillns",
                version: env!("CARGO_PKG_VERSION"),
                mode: match self.work {
                    Work::Remove => "remove",
                    Work::Expire { .. } => "expire",
                },
                dry_run: self.dry(),
                now,
                queue: std::os::unix::ffi::OsStrExt::as_bytes(layout.queue.as_os_str()),
                layout: qcommon::json::LayoutJson::of(layout),
                qmail_send: &data.qmail_send,
                selection_text: &data.selection,
                queuelifetime: data.lifetime.clone(),
                expire_to: match self.work {
                    Work::Expire { target } => Some(target),
                    Work::Remove => None,
                },
            };
            let j = qcommon::json::to_string(&head);
            // The document stays open for the messages.
            let s = format!("{},\"messages\":[", &j[..j.len() - 1]);
            self.out.write(s.as_bytes());
        } else if !self.args.quiet {
            for (k, v) in header {
                self.out.line(&format!("{k}: {v}"));
            }
        }
    }

    /// Prints `--expire`'s advice (text), before anything is done.
    pub(super) fn print_advice(&mut self, advice: &[String]) {
        if self.json() {
            return;
        }
        for n in advice {
            self.out.line(&format!("note: {n}"));
        }
    }

    /// Prints the summary: the JSON document's tail, or the text lines.
    pub(super) fn print_summary(&mut self, notes: &[String], signalled: &[&Target], lifetime: Option<&Lifetime>) {
        if self.json() {
            self.summary_json(notes, signalled, lifetime);
            return;
        }
        let mut lines = self.work_lines(signalled);
        self.problem_lines(&mut lines);
        for n in notes {
            lines.push(format!("note: {n}"));
        }
        for l in lines {
            self.out.line(&l);
        }
    }

    /// The JSON document's tail: the summary, the processes signalled, the notes.
    fn summary_json(&mut self, notes: &[String], signalled: &[&Target], lifetime: Option<&Lifetime>) {
        let c = self.counts;
        let dry = self.dry();
        // A dry run names its counts as what would happen; each work
        // has its own counts.
        let (done, would) = if dry { (None, Some(())) } else { (Some(()), None) };
        let expiring = matches!(self.work, Work::Expire { .. });
        let (remove_done, remove_would) = if expiring { (None, None) } else { (done, would) };
        let (expire_done, expire_would) = if expiring { (done, would) } else { (None, None) };
        let summary = SummaryJson {
            scanned: c.scanned,
            selected: c.selected,
            removed: remove_done.map(|_| c.removed),
            would_remove: remove_would.map(|_| c.removed),
            bytes_freed: remove_done.map(|_| c.bytes),
            bytes_would_free: remove_would.map(|_| c.bytes),
            expired: expire_done.map(|_| c.expired),
            would_expire: expire_would.map(|_| c.expired),
            already_expired: c.already_past,
            not_preprocessed: c.not_preprocessed,
            damaged: c.damaged,
            failed: c.failed,
            vanished: c.vanished,
            unreadable: c.unreadable,
            no_envelope: c.no_envelope,
            scan_errors: c.scan_errors,
            salvaged_kept: c.salvaged_kept,
            named_left: c.named_left,
            queuelifetime: lifetime.map(|l| l.seconds),
        };
        let tail = TailJson {
            summary,
            signalled: signalled.iter().map(|t| SignalledJson { pid: t.pid, name: &t.name }).collect(),
            notes,
        };
        let j = qcommon::json::to_string(&tail);
        // The document's object is open: the tail's fields join it.
        let s = format!("],{}", &j[1..]);
        self.out.line(&s);
    }

    /// The text summary's lines of what was done (or would be).
    fn work_lines(&self, signalled: &[&Target]) -> Vec<String> {
        let c = self.counts;
        let dry = self.dry();
        let mut lines = Vec::new();
        if self.unlisted > 0 {
            lines.push(format!(
                "... and {} more message(s) not listed: -v lists every one, --json holds them all",
                self.unlisted
            ));
        }
        match self.work {
            Work::Remove if dry => lines
                .push(format!("would remove {} message(s), {} bytes (of {} scanned)", c.removed, c.bytes, c.scanned)),
            Work::Remove => lines
                .push(format!("removed {} message(s), {} bytes freed (of {} scanned)", c.removed, c.bytes, c.scanned)),
            Work::Expire { .. } => {
                lines.push(format!(
                    "{} {} message(s) past queuelifetime; {} already past it (of {} scanned)",
                    if dry { "would backdate" } else { "backdated" },
                    c.expired,
                    c.already_past,
                    c.scanned
                ));
                if c.not_preprocessed > 0 {
                    lines.push(format!(
                        "skipped {} selected message(s) not yet preprocessed (todo): run again once qmail-send has \
                         preprocessed them",
                        c.not_preprocessed
                    ));
                }
                if c.damaged > 0 {
                    lines.push(format!(
                        "skipped {} selected message(s) damaged (their files fit no state of the queue): run qfixq \
                         to check them",
                        c.damaged
                    ));
                }
                if c.vanished > 0 {
                    lines.push(format!("{} message(s) finished by qmail-send meanwhile", c.vanished));
                }
                for t in signalled {
                    lines.push(format!("sent SIGALRM to pid {} ({}, {})", t.pid, t.name, t.how));
                }
            }
        }
        lines
    }

    /// The text summary's lines of what was kept, left or failed.
    fn problem_lines(&self, lines: &mut Vec<String>) {
        let c = self.counts;
        if c.salvaged_kept > 0 {
            lines.push(format!(
                "kept {} salvaged message(s): qfixq wrote the null sender for them because their sender was lost \
                 (recorded in lost+found/salvaged); they are not bounces. --include-salvaged takes them too",
                c.salvaged_kept
            ));
        }
        if c.failed > 0 {
            lines.push(format!("FAILED: {} message(s), left as they are (see the errors above); exit 8", c.failed));
        }
        if c.named_left > 0 {
            lines.push(format!(
                "{} message number(s) given were left alone (see the errors above); exit 8",
                c.named_left
            ));
        }
        if c.unreadable > 0 {
            lines.push(format!("could not read {} message(s): left alone (see the errors above)", c.unreadable));
        }
        if c.scan_errors > 0 {
            lines.push(format!(
                "{} part(s) of the queue could not be read (see the errors above); exit {}",
                c.scan_errors,
                self.exit.code()
            ));
        }
    }
}
