//! One look at the queue: this module owns putting together what a run
//! (or one round of `--watch`) shows — qmail-qstat's counts, and the
//! breakdown and top lists when asked — and the errors met on the way.
//! It reads only; it prints nothing.

use std::path::PathBuf;

use qcommon::error::Escaped;
use qcommon::layout::{open_queue_checked, LayoutOptions};
use qcommon::session::{Access, Session};

use crate::count::{count, Counts};
use crate::detail::{gather, Detail, TopLists, Wanted};
use crate::lifetime::read_lifetime;
use crate::words::WordRules;

/// What to look at.
#[derive(Debug, Clone)]
pub struct Request {
    /// Which queue.
    pub layout: LayoutOptions,
    /// The breakdown.
    pub detail: bool,
    /// Top lists of this length.
    pub top: Option<usize>,
    /// `wc -w` rules for the qmail-qstat count.
    pub words: WordRules,
    /// Threads for the count.
    pub threads: usize,
    /// Threads of the scan behind the breakdown.
    pub scan_threads: usize,
    /// Look at the queue's structure (`--check`).
    pub structure: bool,
    /// The progress line (on standard error, on a terminal only).
    pub progress: qcommon::progress::Progress,
}

/// What was seen.
#[derive(Debug, Clone)]
pub struct Report {
    /// The queue path.
    pub queue: PathBuf,
    /// When (seconds since the epoch).
    pub time: i64,
    /// qmail-qstat's counts.
    pub counts: Counts,
    /// todo was counted as big-todo.
    pub big_todo: bool,
    /// The breakdown, when asked.
    pub detail: Option<Detail>,
    /// The top lists, when asked.
    pub top: Option<TopLists>,
    /// Errors (escaped for a terminal, each once): the counts may be low.
    pub errors: Vec<String>,
    /// Warnings (escaped): nothing was missed, but something is odd.
    pub warnings: Vec<String>,
    /// How many of `errors` (the first ones) came from qmail-qstat's count.
    pub count_errors: usize,
    /// Problems of the queue's structure, when looked at.
    pub structure: Option<Vec<crate::structure::Problem>>,
}

impl Report {
    /// Whether the whole queue could be read.
    pub fn complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Why nothing could be reported (escaped for a terminal; names the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text of `e` with control bytes escaped; what was escaped already
/// (the library escapes some paths itself) is not escaped twice.
fn escaped(e: &impl std::fmt::Display) -> String {
    qcommon::error::escape_text(&e.to_string())
}

/// Looks at the queue once. `now` is the time of the look.
pub fn take(req: &Request, now: i64) -> Result<Report, Fatal> {
    let opened = open_queue_checked(&req.layout).map_err(|e| Fatal(escaped(&e)))?;
    req.progress.spin("counting");
    let outcome = count(&opened.dir, req.words, req.threads);
    req.progress.clear();
    let mut errors: Vec<String> = Vec::new();
    fn push(errors: &mut Vec<String>, text: String) {
        if !errors.contains(&text) {
            errors.push(text);
        }
    }
    for e in &outcome.errors {
        push(&mut errors, escaped(e));
    }
    let mut report = Report {
        queue: opened.path.clone(),
        time: now,
        counts: outcome.counts,
        big_todo: outcome.big_todo,
        detail: None,
        top: None,
        errors: Vec::new(),
        warnings: Vec::new(),
        count_errors: errors.len(),
        structure: None,
    };
    // The layout, when asked for, is decided on the root already open: a
    // read-only session. Buckets that disagree leave the split unknown, and
    // neither the structure nor the breakdown can be judged without it:
    // UNKNOWN (with --check), saying to give --split.
    let session = if req.structure || req.detail || req.top.is_some() {
        Some(Session::from_opened(opened, &req.layout, Access::ReadOnly).map_err(|e| Fatal(escaped(&e)))?)
    } else {
        None
    };
    if let Some(s) = session.as_ref().filter(|_| req.structure) {
        report.structure = Some(crate::structure::check(s.root(), s.layout()));
    }
    if let Some(s) = session.as_ref().filter(|_| req.detail || req.top.is_some()) {
        let layout = s.layout();
        let (lifetime, warning) = read_lifetime(layout.home.as_deref());
        if let Some(w) = warning {
            report.warnings.push(Escaped(w.as_bytes()).to_string());
        }
        let wanted = Wanted { top: req.top, now, lifetime, threads: req.scan_threads };
        let gathered = gather(s.root(), layout, &wanted, &req.progress, &mut |e| push(&mut errors, escaped(&e)));
        req.progress.clear();
        let (detail, top) = gathered.map_err(|e| Fatal(escaped(&e)))?;
        if req.detail {
            report.detail = Some(detail);
        }
        report.top = top;
    }
    report.errors = errors;
    Ok(report)
}
