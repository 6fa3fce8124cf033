//! What qfixq prints: the header of decisions, one line per finding, the
//! steps (planned in a check, done in a live run), the summary; as text or
//! as one JSON document. Every untrusted name is escaped first.

use std::collections::BTreeMap;
use std::io::{self, Write};

use qcommon::error::escape_path;
use qcommon::mutator::Step;

use crate::finding::{Finding, Kind};

/// A JSON string literal of already escaped (ASCII) text.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

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
}

impl<W: Write> Report<W> {
    /// A report to `out`.
    pub fn new(out: W, json: bool, quiet: bool) -> Self {
        Report { out, json, quiet, first_finding: true, first_step: true, in_steps: false, counts: BTreeMap::new() }
    }

    /// The header: `(label, value)` pairs, values already escaped.
    pub fn header(&mut self, mode: &str, lines: &[(&str, String)]) -> io::Result<()> {
        if self.json {
            write!(self.out, "{{\"mode\":{}", json_str(mode))?;
            for (k, v) in lines {
                write!(self.out, ",{}:{}", json_str(k), json_str(v))?;
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
            write!(
                self.out,
                "{{\"kind\":{},\"path\":{},\"problem\":{},\"remedy\":{},\"left\":{},\"steps\":[",
                json_str(f.kind.name()),
                json_str(&path),
                json_str(&escape_text(&f.problem)),
                json_str(&escape_text(&f.remedy)),
                f.left
            )?;
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
                StepStatus::Failed(e) => ("failed", Some(e.to_string())),
            };
            write!(
                self.out,
                "{{\"op\":{},\"path\":{},\"text\":{},\"status\":{}",
                json_str(s.verb()),
                json_str(&escape_path(s.path())),
                json_str(&s.to_string()),
                json_str(st)
            )?;
            if let Some(e) = err {
                write!(self.out, ",\"error\":{}", json_str(&escape_text(&e)))?;
            }
            write!(self.out, "}}")?;
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
            write!(self.out, "],\"summary\":{{\"problems\":{problems},\"unfixed\":{unfixed},\"by_kind\":{{")?;
            let mut first = true;
            for (k, n) in &self.counts {
                if !first {
                    write!(self.out, ",")?;
                }
                first = false;
                write!(self.out, "{}:{n}", json_str(k.name()))?;
            }
            write!(self.out, "}}}},\"notes\":[")?;
            for (i, n) in notes.iter().enumerate() {
                if i > 0 {
                    write!(self.out, ",")?;
                }
                write!(self.out, "{}", json_str(&escape_text(n)))?;
            }
            writeln!(self.out, "],\"exit\":{exit}}}")?;
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
