//! What qfixq prints: the header of decisions, the findings and their
//! steps (planned in a check, done in a live run), the summary; as text or
//! as one JSON document. Every untrusted name is escaped first.
//!
//! The text report is grouped by kind unless `--all` asks for every line:
//! failed steps and problems left as they are come at once, in full; at
//! the end a table of kinds (count, steps, what is done), the first
//! [`EXAMPLES`] findings of each kind with their steps, then the summary.
//! Memory holds counts and those few examples, whatever the queue's size.
//! JSON always holds everything.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

use qcommon::error::escape_path;
use qcommon::mutator::Step;

use crate::finding::{Finding, Kind};

/// How a step ended, for the report: the executor's own words
/// (planned in a check, done or failed in a live run).
pub use qcommon::mutator::StepStatus;

/// Findings of one kind shown as examples in the grouped text report.
pub const EXAMPLES: usize = 3;

/// How the text report is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The summary only (and failures).
    Quiet,
    /// Grouped by kind: a table, a few examples per kind, failures in full.
    Grouped,
    /// Every finding and every step.
    All,
}

/// What the grouped report keeps of one kind.
#[derive(Debug, Default)]
struct Group {
    findings: u64,
    steps: u64,
    failed: u64,
    /// The remedy of the first finding (as given: escaped when printed),
    /// and whether every other had the same.
    remedy: String,
    same_remedy: bool,
    /// The first findings with their step lines.
    examples: Vec<Vec<String>>,
}

/// Writes the report as it goes.
#[derive(Debug)]
pub struct Report<W: Write> {
    out: W,
    json: bool,
    quiet: bool,
    detail: Detail,
    first_finding: bool,
    first_step: bool,
    in_steps: bool,
    /// Counts of problems by kind.
    pub counts: BTreeMap<Kind, u64>,
    /// Findings written (JSON's summary).
    findings: u64,
    /// Grouped report: by kind.
    groups: BTreeMap<Kind, Group>,
    /// Grouped report: the last finding's kind, whether it is an example
    /// and whether its line was printed (with a failure). Its line is made
    /// only when it is printed or kept: a flood's findings and steps are
    /// counted, not formatted.
    current: Option<(Kind, bool, bool)>,
    /// The verifying check, when one ran: its scope, the messages it
    /// examined, of them those only stated, and those it only listed
    /// (JSON's summary).
    verified: Option<(&'static str, u64, u64, u64)>,
}

/// The header's `queue`.
#[derive(Debug, Serialize)]
pub struct QueueJson {
    /// Its path, escaped as the text report prints it.
    pub path: String,
    /// The path is a symbolic link (allowed).
    pub symlink: bool,
}

/// The header's `processes`: those working in the queue, or why they
/// could not be listed.
#[derive(Debug, Serialize)]
pub struct ProcessesJson {
    count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pids: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ProcessesJson {
    /// They were listed: their pids and them in words.
    pub fn listed(pids: Vec<u32>, text: String) -> Self {
        ProcessesJson { count: Some(pids.len()), pids: Some(pids), text: Some(text), error: None }
    }

    /// They could not be listed, and why.
    pub fn unknown(why: &str) -> Self {
        ProcessesJson { count: None, pids: None, text: None, error: Some(escape_text(why)) }
    }
}

/// The header's `disk`: the use of the queue's file system, as numbers.
#[derive(Debug, Serialize)]
pub struct DiskJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks_used_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inodes_used_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avail_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    free_inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nearly_full: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl DiskJson {
    /// The figures (percentages to one decimal, as the text shows them).
    pub fn of(u: &qcommon::cli::FsUsage) -> Self {
        let full = qcommon::cli::FULL_WARNING_PCT;
        DiskJson {
            blocks_used_pct: Some((u.blocks_pct * 10.0).round() / 10.0),
            inodes_used_pct: Some((u.inodes_pct * 10.0).round() / 10.0),
            avail_bytes: Some(u.avail_bytes),
            free_inodes: Some(u.free_inodes),
            nearly_full: Some(u.blocks_pct >= full || u.inodes_pct >= full),
            error: None,
        }
    }

    /// Why the figures are missing.
    pub fn unknown(e: &qcommon::Error) -> Self {
        DiskJson {
            blocks_used_pct: None,
            inodes_used_pct: None,
            avail_bytes: None,
            free_inodes: None,
            nearly_full: None,
            error: Some(e.to_string()),
        }
    }
}

/// A header value as JSON data ([`Report::header`] takes them so).
pub fn value(v: &impl Serialize) -> Value {
    // Serializing these structs to a Value cannot fail: no map has a key
    // that is not a string.
    serde_json::to_value(v).expect("JSON of a header value")
}

/// A finding as one line of text: its path, problem and remedy, escaped.
fn finding_line(f: &Finding) -> String {
    format!("{}: {}: {}", escape_path(&f.path), escape_text(&f.problem), escape_text(&f.remedy))
}

/// One finding in JSON (its steps follow as they happen).
#[derive(Serialize)]
struct FindingJson<'a> {
    kind: &'static str,
    problem: bool,
    path: &'a str,
    text: &'a str,
    remedy: &'a str,
    left: bool,
}

/// One step in JSON.
#[derive(Serialize)]
struct StepJson<'a> {
    op: &'a str,
    path: &'a str,
    text: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    findings: u64,
    problems: u64,
    unfixed: u64,
    by_kind: BTreeMap<&'a str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_scope: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stated_messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listed_messages: Option<u64>,
}

/// The end of the document.
#[derive(Serialize)]
struct TailJson<'a> {
    summary: SummaryJson<'a>,
    notes: Vec<String>,
    exit: u8,
}

impl<W: Write> Report<W> {
    /// A report to `out`.
    pub fn new(out: W, json: bool, detail: Detail) -> Self {
        Report {
            out,
            json,
            quiet: detail == Detail::Quiet,
            detail,
            first_finding: true,
            first_step: true,
            in_steps: false,
            counts: BTreeMap::new(),
            findings: 0,
            groups: BTreeMap::new(),
            current: None,
            verified: None,
        }
    }

    fn grouped(&self) -> bool {
        !self.json && self.detail == Detail::Grouped
    }

    /// The header: `(label, value)` pairs, values already escaped, for
    /// the text; `(key, value)` pairs of data for JSON, one per text line.
    pub fn header(
        &mut self,
        mode: &str,
        mode_code: &str,
        lines: &[(&str, String)],
        data: Vec<(&'static str, Value)>,
    ) -> io::Result<()> {
        if self.json {
            write!(self.out, "{{\"schema_version\":{},\"mode\":", qcommon::json::SCHEMA_VERSION)?;
            qcommon::json::write(&mut self.out, mode_code)?;
            for (k, v) in data {
                write!(self.out, ",\"{k}\":")?;
                qcommon::json::write(&mut self.out, &v)?;
            }
            write!(self.out, ",\"findings\":[")?;
        } else {
            writeln!(self.out, "qfixq: {mode}")?;
            for (k, v) in lines {
                writeln!(self.out, "{:<10} {v}", format!("{k}:"))?;
            }
        }
        Ok(())
    }

    /// A message for the reader (not a finding).
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        if !self.json {
            writeln!(self.out, "{text}")?;
        }
        Ok(())
    }

    fn close_steps(&mut self) -> io::Result<()> {
        if self.in_steps {
            write!(self.out, "]}}")?;
            self.in_steps = false;
        }
        Ok(())
    }

    /// One finding.
    pub fn finding(&mut self, f: &Finding) -> io::Result<()> {
        if f.kind.is_problem() {
            *self.counts.entry(f.kind).or_insert(0) += 1;
        }
        if self.quiet {
            return Ok(());
        }
        if self.json {
            let path = escape_path(&f.path);
            self.close_steps()?;
            if !self.first_finding {
                write!(self.out, ",")?;
            }
            let j = qcommon::json::to_string(&FindingJson {
                kind: f.kind.code(),
                problem: f.kind.is_problem(),
                path: &path,
                text: &escape_text(&f.problem),
                remedy: &escape_text(&f.remedy),
                left: f.left,
            });
            // The object stays open for its steps.
            write!(self.out, "{},\"steps\":[", &j[..j.len() - 1])?;
            self.findings += 1;
            self.in_steps = true;
            self.first_finding = false;
            self.first_step = true;
        } else if self.grouped() {
            let g = self.groups.entry(f.kind).or_default();
            if g.findings == 0 {
                g.remedy.clone_from(&f.remedy);
                g.same_remedy = true;
            } else if g.same_remedy && g.remedy != f.remedy {
                g.same_remedy = false;
            }
            g.findings += 1;
            let example = g.examples.len() < EXAMPLES;
            if example {
                g.examples.push(vec![finding_line(f)]);
            }
            // A problem left as it is is shown in full, at once.
            let shown = f.left && f.kind.is_problem();
            if shown {
                writeln!(self.out, "{}", finding_line(f))?;
            }
            self.current = Some((f.kind, example, shown));
        } else {
            writeln!(self.out, "{}", finding_line(f))?;
        }
        Ok(())
    }

    /// Grouped report: one step of finding `f`, the current one.
    fn grouped_step(&mut self, f: &Finding, s: &Step, status: StepStatus<'_>) -> io::Result<()> {
        let failed = matches!(status, StepStatus::Failed(_) | StepStatus::Gone(_));
        let Some((kind, example, shown)) = &mut self.current else { return Ok(()) };
        let g = self.groups.entry(*kind).or_default();
        g.steps += 1;
        if !*example && !failed {
            return Ok(());
        }
        let line = match status {
            StepStatus::Planned => format!("  would: {s}"),
            StepStatus::Done => format!("  done: {s}"),
            StepStatus::Failed(e) | StepStatus::Gone(e) => format!("  FAILED: {s}: {e}"),
        };
        if *example {
            if let Some(ex) = g.examples.last_mut() {
                ex.push(line.clone());
            }
        }
        if failed {
            // A failure is printed in full, at once, with its finding.
            g.failed += 1;
            if !*shown {
                writeln!(self.out, "{}", finding_line(f))?;
                *shown = true;
            }
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// One step of finding `f`, the last one given to [`Report::finding`].
    pub fn step(&mut self, f: &Finding, s: &Step, status: StepStatus<'_>) -> io::Result<()> {
        if self.quiet {
            if let StepStatus::Failed(e) | StepStatus::Gone(e) = status {
                if !self.json {
                    writeln!(self.out, "FAILED: {s}: {e}")?;
                }
            }
            return Ok(());
        }
        if self.grouped() {
            return self.grouped_step(f, s, status);
        }
        if self.json {
            if !self.first_step {
                write!(self.out, ",")?;
            }
            self.first_step = false;
            let (st, err) = match status {
                StepStatus::Planned => ("planned", None),
                StepStatus::Done => ("done", None),
                StepStatus::Failed(e) | StepStatus::Gone(e) => ("failed", Some(e.to_string())),
            };
            let op = s.verb().replace('-', "_");
            let j = StepJson { op: &op, path: &escape_path(s.path()), text: &s.to_string(), status: st, error: err };
            qcommon::json::write(&mut self.out, &j)?;
        } else {
            match status {
                StepStatus::Planned => writeln!(self.out, "  would: {s}")?,
                StepStatus::Done => writeln!(self.out, "  done: {s}")?,
                StepStatus::Failed(e) | StepStatus::Gone(e) => writeln!(self.out, "  FAILED: {s}: {e}")?,
            }
        }
        Ok(())
    }

    /// Notes what the verifying check did: its scope (`changed`, `all`),
    /// the messages it examined, of them those it only stated, and those
    /// it only listed.
    pub fn verified(&mut self, scope: &'static str, examined: u64, stated: u64, listed: u64) {
        self.verified = Some((scope, examined, stated, listed));
    }

    /// The summary and the end of the document.
    pub fn summary(&mut self, problems: u64, unfixed: u64, live: bool, notes: &[String], exit: u8) -> io::Result<()> {
        let by_kind: Vec<String> = self.counts.iter().map(|(k, n)| format!("{}: {n}", k.name())).collect();
        if self.json {
            self.close_steps()?;
            let by_kind: BTreeMap<&str, u64> = self.counts.iter().map(|(k, n)| (k.code(), *n)).collect();
            let notes: Vec<String> = notes.iter().map(|n| escape_text(n)).collect();
            let tail = TailJson {
                summary: SummaryJson {
                    findings: self.findings,
                    problems,
                    unfixed,
                    by_kind,
                    verify_scope: self.verified.map(|v| v.0),
                    verified_messages: self.verified.map(|v| v.1),
                    stated_messages: self.verified.map(|v| v.2),
                    listed_messages: self.verified.map(|v| v.3),
                },
                notes,
                exit,
            };
            let j = qcommon::json::to_string(&tail);
            // The document's object is already open: the tail's fields join it.
            writeln!(self.out, "],{}", &j[1..])?;
        } else {
            if self.grouped() {
                self.groups_table(live)?;
            }
            for n in notes {
                writeln!(self.out, "{}", escape_text(n))?;
            }
            if problems == 0 {
                writeln!(self.out, "summary: no problems found")?;
            } else if live {
                writeln!(
                    self.out,
                    "summary: {problems} problems ({}); {} fixed, {unfixed} left",
                    by_kind.join(", "),
                    problems.saturating_sub(unfixed)
                )?;
            } else {
                writeln!(
                    self.out,
                    "summary: {problems} problems ({}); run `qfixq live` to repair",
                    by_kind.join(", ")
                )?;
            }
        }
        self.out.flush()
    }
}

impl<W: Write> Report<W> {
    /// Grouped report: the table of kinds and the examples.
    fn groups_table(&mut self, live: bool) -> io::Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let findings: u64 = self.groups.values().map(|g| g.findings).sum();
        let steps: u64 = self.groups.values().map(|g| g.steps).sum();
        writeln!(
            self.out,
            "{}: {findings} findings of {} kinds, {steps} steps{}",
            if live { "repair" } else { "plan" },
            self.groups.len(),
            if live { " carried out" } else { "" }
        )?;
        let width = self.groups.keys().map(|k| k.name().len()).max().unwrap_or(4).max(4);
        writeln!(
            self.out,
            "  {:<width$}  {:>9}  {:>9}  {}",
            "kind",
            "findings",
            "steps",
            if live { "what was done" } else { "what live will do" }
        )?;
        for (k, g) in &self.groups {
            let remedy = escape_text(&g.remedy);
            let what = if g.same_remedy { remedy.as_str() } else { k.what() };
            let failed = if g.failed > 0 { format!(" ({} steps FAILED)", g.failed) } else { String::new() };
            writeln!(self.out, "  {:<width$}  {:>9}  {:>9}  {what}{failed}", k.name(), g.findings, g.steps)?;
        }
        let shortened = self.groups.values().any(|g| g.findings > g.examples.len() as u64);
        if shortened {
            writeln!(
                self.out,
                "examples: the first {EXAMPLES} findings of each kind; `--all` prints every finding and step, \
                 `--json` holds them all"
            )?;
        } else {
            writeln!(self.out, "findings:")?;
        }
        for g in self.groups.values() {
            for ex in &g.examples {
                for l in ex {
                    writeln!(self.out, "{l}")?;
                }
            }
            let rest = g.findings - g.examples.len() as u64;
            if rest > 0 {
                writeln!(self.out, "  ... and {rest} more of this kind (--all shows them)")?;
            }
        }
        Ok(())
    }
}

/// Escapes control characters in a text that may quote untrusted bytes
/// (text escaped already is left as it is).
pub use qcommon::error::escape_text;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use qcommon::mutator::{Action, Step, StepStatus};

    use super::*;

    fn renaming(n: u64, problem: &str) -> (Finding, Step) {
        let step = Step::Rename {
            from: PathBuf::from(format!("mess/0/{n}")),
            to: PathBuf::from(format!("mess/0/{}", n + 1000)),
            expect: None,
        };
        let action = Action { message: Some(n), steps: vec![step.clone()] };
        (Finding::fix(Kind::Stray, PathBuf::from(format!("mess/0/{n}")), problem, "move\u{1b}it", action), step)
    }

    fn grouped(findings: u64, fail: Option<u64>) -> String {
        let mut out = Vec::new();
        let mut r = Report::new(&mut out, false, Detail::Grouped);
        let err = qcommon::Error::sys("rename", "mess/0/7", nix::errno::Errno::EIO);
        for n in 0..findings {
            let (f, s) = renaming(n, &format!("bad\u{7}name {n}"));
            r.finding(&f).unwrap();
            let status = if fail == Some(n) { StepStatus::Failed(&err) } else { StepStatus::Done };
            r.step(&f, &s, status).unwrap();
        }
        r.summary(findings, u64::from(fail.is_some()), true, &[], 1).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_grouped_report_keeps_the_first_findings_and_counts_the_rest() {
        let text = grouped(EXAMPLES as u64 + 7, None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().any(|l| l.contains("mess/0/0: bad\\x07name 0: move\\x1bit")), "{text}");
        let last = EXAMPLES - 1;
        assert!(text.contains(&format!("mess/0/{last}: bad\\x07name {last}")), "{text}");
        assert!(!text.contains(&format!("mess/0/{EXAMPLES}: ")), "{text}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("  done: ")).count(), EXAMPLES, "{text}");
        assert!(text.contains("  ... and 7 more of this kind"), "{text}");
        // The remedy, the same for all, is escaped once in the table.
        let row = lines.iter().find(|l| l.trim_start().starts_with(Kind::Stray.name())).unwrap();
        assert!(row.ends_with("move\\x1bit") && row.contains(&format!("{}", EXAMPLES + 7)), "{row}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    }

    #[test]
    fn a_failed_step_of_a_finding_not_kept_prints_the_finding_in_full() {
        let n = EXAMPLES as u64 + 3;
        let text = grouped(n + 2, Some(n));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| *l == format!("mess/0/{n}: bad\\x07name {n}: move\\x1bit")).expect(&text);
        assert!(lines[at + 1].starts_with("  FAILED: ") && lines[at + 1].contains("EIO"), "{text}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("  FAILED: ")).count(), 1, "{text}");
        assert!(text.contains("(1 steps FAILED)"), "{text}");
    }
}
