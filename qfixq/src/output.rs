//! What qfixq prints: the header of decisions, one line per finding, the
//! steps (planned in a check, done in a live run), the summary; as text or
//! as one JSON document. Every untrusted name is escaped first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

use qcommon::error::escape_path;
use qcommon::mutator::Step;

use crate::finding::{Finding, Kind};

/// How a step ended, for the report.
#[derive(Debug)]
pub enum StepStatus<'a> {
    /// Check mode: what live would do.
    Planned,
    /// Done.
    Done,
    /// Failed, with why.
    Failed(&'a qcommon::Error),
}

/// Writes the report as it goes.
#[derive(Debug)]
pub struct Report<W: Write> {
    out: W,
    json: bool,
    quiet: bool,
    first_finding: bool,
    first_step: bool,
    in_steps: bool,
    /// Counts of problems by kind.
    pub counts: BTreeMap<Kind, u64>,
    /// Findings written (JSON's summary).
    findings: u64,
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
    pub fn new(out: W, json: bool, quiet: bool) -> Self {
        Report {
            out,
            json,
            quiet,
            first_finding: true,
            first_step: true,
            in_steps: false,
            counts: BTreeMap::new(),
            findings: 0,
        }
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
        let path = escape_path(&f.path);
        if self.json {
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
        } else {
            writeln!(self.out, "{path}: {}: {}", escape_text(&f.problem), escape_text(&f.remedy))?;
        }
        Ok(())
    }

    /// One step of the last finding.
    pub fn step(&mut self, s: &Step, status: StepStatus<'_>) -> io::Result<()> {
        if self.quiet {
            if let StepStatus::Failed(e) = status {
                if !self.json {
                    writeln!(self.out, "FAILED: {s}: {e}")?;
                }
            }
            return Ok(());
        }
        if self.json {
            if !self.first_step {
                write!(self.out, ",")?;
            }
            self.first_step = false;
            let (st, err) = match status {
                StepStatus::Planned => ("planned", None),
                StepStatus::Done => ("done", None),
                StepStatus::Failed(e) => ("failed", Some(escape_text(&e.to_string()))),
            };
            let op = s.verb().replace('-', "_");
            let j = StepJson { op: &op, path: &escape_path(s.path()), text: &s.to_string(), status: st, error: err };
            qcommon::json::write(&mut self.out, &j)?;
        } else {
            match status {
                StepStatus::Planned => writeln!(self.out, "  would: {s}")?,
                StepStatus::Done => writeln!(self.out, "  done: {s}")?,
                StepStatus::Failed(e) => writeln!(self.out, "  FAILED: {s}: {}", escape_text(&e.to_string()))?,
            }
        }
        Ok(())
    }

    /// The summary and the end of the document.
    pub fn summary(&mut self, problems: u64, unfixed: u64, live: bool, notes: &[String], exit: u8) -> io::Result<()> {
        let by_kind: Vec<String> = self.counts.iter().map(|(k, n)| format!("{}: {n}", k.name())).collect();
        if self.json {
            self.close_steps()?;
            let by_kind: BTreeMap<&str, u64> = self.counts.iter().map(|(k, n)| (k.code(), *n)).collect();
            let notes: Vec<String> = notes.iter().map(|n| escape_text(n)).collect();
            let tail =
                TailJson { summary: SummaryJson { findings: self.findings, problems, unfixed, by_kind }, notes, exit };
            let j = qcommon::json::to_string(&tail);
            // The document's object is already open: the tail's fields join it.
            writeln!(self.out, "],{}", &j[1..])?;
        } else {
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

/// Escapes control characters in a text that may quote untrusted bytes.
pub fn escape_text(s: &str) -> String {
    qcommon::error::Escaped(s.as_bytes()).to_string().replace("\\\\", "\\")
}
