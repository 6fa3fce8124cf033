//! One run of qkillns, start to end: this module owns the order of
//! things. Discover the layout; check what must be checked (the lock and
//! the processes for a removal, the qmail-send to signal for `--expire`);
//! stream the scan (`qcommon::scan`, sifted: a message whose sender rules
//! it out is not examined further) through the envelope stage of the
//! selection; gather the messages that pass into
//! batches ([`batch`]); run each batch's plan through the executor
//! ([`execute`]: dry for `-n`, live otherwise, the same path) and list
//! each message with its outcome; signal qmail-send (`--expire`); print
//! the summary ([`summary`]). `-n` prints exactly the actions a live run
//! carries out (`-v` shows their steps).
//!
//! A removal holds qmail-send's lock from before the scan until the end.
//! `--expire` takes no lock: it is made to run beside qmail-send.

mod batch;
mod execute;
mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use qcommon::error::escape_path;
use qcommon::layout::Layout;
use qcommon::safe_fs::Dir;
use qcommon::scan::{scan_sifted, ScanEvent, ScanOptions, ScannedMessage};
use qcommon::session::{Access, Claim, DamagedLock, Exclusive, Session};

use crate::args::Args;
use crate::exit::ExitCode;
use crate::guard::{self, Target};
use crate::plan::{self, Lifetime};
use crate::report::{self, Output};
use crate::select::Criteria;
use execute::Executor;
pub use summary::Counts;
use summary::{ErrorJson, HeadData, QmailSendJson};

/// Removal or expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Remove,
    Expire { target: i64 },
}

struct Runner<'a> {
    args: &'a Args,
    criteria: Criteria,
    work: Work,
    root: &'a Dir,
    /// `-n`: the executor only plans.
    dry: bool,
    executor: Executor,
    out: Output,
    counts: Counts,
    exit: ExitCode,
    first_json: bool,
    batch: Vec<ScannedMessage>,
    salvaged: qcommon::salvaged::Salvaged,
    /// The message numbers given (empty: no numbers, select by the rules).
    wanted: BTreeSet<u64>,
    /// Those of `wanted` the scan delivered as messages.
    seen: BTreeSet<u64>,
    /// Those of `wanted` found as strays: what and why.
    strays: BTreeMap<u64, Vec<String>>,
    /// Messages selected but not listed (the text listing shows the first
    /// [`LISTED`] unless -v).
    unlisted: u64,
    listed: u64,
    progress: qcommon::progress::Progress,
    /// The locale is UTF-8: subjects are shown as UTF-8.
    utf8: bool,
}

/// Messages the text listing shows without --all.
pub const LISTED: u64 = 10;

/// What was decided before the scan: the header's lines and data, notes
/// for the summary, and for `--expire` qmail-send and its queuelifetime.
#[derive(Default)]
struct Decided<'h> {
    header: Vec<(&'h str, String)>,
    head: HeadData,
    notes: Vec<String>,
    targets: Vec<Target>,
    lifetime: Option<Lifetime>,
    /// A removal's hold on qmail-send's lock, for the whole run.
    claim: Option<Claim>,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A refusal: said on stderr and, with --json, as the document.
fn refuse(out: &mut Output, json: bool, msg: &str) -> ExitCode {
    report::error(msg);
    if json {
        out.line(&qcommon::json::to_string(&ErrorJson {
            schema_version: qcommon::json::SCHEMA_VERSION,
            tool: "qkillns",
            error: msg,
        }));
        out.flush();
    }
    ExitCode::Operational
}

/// A removal changes the queue: the session grants it (qmail-send's lock
/// for the whole run, no other process in the queue unless --force; a
/// damaged lock file is refused, for qfixq to restore). The stop signals
/// keep their default action: the order of removal is safe at any point
/// (docs/repair-policy.md). --expire and -n only read.
fn access(args: &Args) -> Access {
    if args.dry_run || args.expire {
        return Access::ReadOnly;
    }
    Access::Exclusive(Exclusive {
        force: args.force,
        damaged_lock: DamagedLock::Refuse,
        stop_flag: None,
        instead: Some("or use --expire to let qmail-send give up on the messages itself"),
    })
}

/// Runs qkillns with parsed options.
pub fn run(args: &Args) -> ExitCode {
    let now = now();
    let mut out = Output::new();
    // The queue root is opened once, here, and handed on.
    let session = match Session::open(&args.queue.layout_options(), access(args)) {
        Ok(s) => s,
        Err(e) => return refuse(&mut out, args.json, &e.to_string()),
    };
    let (layout, root) = (session.layout(), session.root());
    // The salvaged messages, kept unless --include-salvaged: when their
    // records cannot be read, nothing can be told from a bounce.
    let salvaged = match qcommon::salvaged::read_all(root) {
        Ok(s) => s,
        Err(_) if args.include_salvaged => Default::default(),
        Err(e) => {
            let msg = format!(
                "cannot read the records of salvaged messages: {e}; nothing was changed (--include-salvaged goes \
                 on without them, taking salvaged messages for bounces)"
            );
            return refuse(&mut out, args.json, &msg);
        }
    };
    let mut d = Decided { header: qcommon::cli::layout_header(layout), ..Decided::default() };
    // What must hold before anything is changed.
    let work = match decide(&session, args, now, &mut d) {
        Ok(w) => w,
        Err(why) => return refuse(&mut out, args.json, &why),
    };
    let executor = match Executor::new(&session, args.dry_run) {
        Ok(e) => e,
        Err(e) => return refuse(&mut out, args.json, &e.to_string()),
    };
    let criteria = Criteria::from_args(args, now);
    let criteria_default = criteria.is_default();
    d.head.selection = criteria.describe(&args.header, &args.numbers);
    d.header.push(("selection", d.head.selection.clone()));
    d.header.push(("mode", mode_text(work, args.dry_run).into()));

    let mut runner = Runner {
        args,
        criteria,
        work,
        root,
        dry: args.dry_run,
        executor,
        out,
        counts: Counts::default(),
        exit: ExitCode::Done,
        first_json: true,
        batch: Vec::with_capacity(batch::BATCH),
        salvaged,
        wanted: args.numbers.iter().copied().collect(),
        seen: BTreeSet::new(),
        strays: BTreeMap::new(),
        unlisted: 0,
        listed: 0,
        progress: qcommon::progress::Progress::stderr("qkillns"),
        utf8: qcommon::human::utf8_locale(),
    };
    runner.print_header(layout, &d.header, &d.head, now);
    // --expire: its advice before it acts (before any backdating or signal).
    let mut advice = Vec::new();
    if let Work::Expire { .. } = work {
        advice = expire_notes(layout, !criteria_default, args.double);
        runner.print_advice(&advice);
    }
    runner.scan(layout);
    let signalled = runner.signal(&d.targets, &mut d.notes);
    if runner.json() {
        d.notes.extend(advice);
    }
    runner.finish(&mut d.notes);
    runner.print_summary(&d.notes, &signalled, d.lifetime.as_ref());
    runner.out.flush();
    if runner.out.failed() {
        runner.exit = ExitCode::Operational;
    }
    runner.exit
}

/// The header's `mode` line.
fn mode_text(work: Work, dry: bool) -> &'static str {
    match (work, dry) {
        (Work::Remove, true) => "remove, dry run: nothing is changed",
        (Work::Remove, false) => "remove",
        (Work::Expire { .. }, true) => "expire, dry run: nothing is changed, nothing is signalled",
        (Work::Expire { .. }, false) => "expire",
    }
}

/// The work, and what must hold before it: `--expire`'s qmail-send and
/// queuelifetime; a dry removal's look at the lock; a live removal's hold
/// on the lock. Err: the refusal.
fn decide(session: &Session, args: &Args, now: i64, d: &mut Decided<'_>) -> Result<Work, String> {
    let (layout, root) = (session.layout(), session.root());
    if args.expire {
        return expire_work(root, layout, args, now, d);
    }
    if args.dry_run {
        let (state, text) = guard::lock_state(root);
        d.head.qmail_send = QmailSendJson { state, pids: Vec::new(), text: text.clone() };
        d.header.push(("qmail-send", text));
        return Ok(Work::Remove);
    }
    d.claim = Some(session.claim().map_err(|r| r.to_string())?);
    let list = |ps: Vec<&qcommon::procs::QueueProcess>| ps.iter().map(|p| p.describe()).collect::<Vec<_>>().join(", ");
    let busy = session.working_in_queue();
    if !busy.is_empty() {
        d.notes.push(format!("--force: going ahead although processes work inside the queue: {}", list(busy)));
    }
    let others = session.ignored();
    if !others.is_empty() {
        d.notes.push(format!(
            "qmail programs running elsewhere: {} (new mail may arrive meanwhile; it is not touched)",
            list(others)
        ));
    }
    let text = "stopped; its lock is held by this run".to_string();
    d.head.qmail_send = QmailSendJson { state: "stopped", pids: Vec::new(), text: text.clone() };
    d.header.push(("qmail-send", text));
    Ok(Work::Remove)
}

/// `--expire`: the qmail-send processes to signal, the queuelifetime and
/// the time info files are set back to.
fn expire_work(root: &Dir, layout: &Layout, args: &Args, now: i64, d: &mut Decided<'_>) -> Result<Work, String> {
    d.targets = guard::expire_targets(root, &layout.queue, args.pid)?;
    let l = plan::queuelifetime(layout.control_file("queuelifetime").as_deref());
    if let Some(w) = &l.warning {
        report::error(w);
    }
    let target = plan::expire_target(now, l.seconds);
    d.header.push(("queuelifetime", format!("{} s ({})", l.seconds, l.source)));
    d.header.push(("backdate to", qcommon::human::when(target, now)));
    let targets = &d.targets;
    let text = if targets.is_empty() {
        "none found running on this queue".to_string()
    } else {
        targets.iter().map(|t| format!("pid {} ({}, {})", t.pid, t.name, t.how)).collect::<Vec<_>>().join(", ")
    };
    d.head.lifetime =
        Some(qcommon::json::LifetimeJson { seconds: l.seconds, source: l.source_code, source_text: l.source.clone() });
    d.head.qmail_send = QmailSendJson {
        state: if targets.is_empty() { "not_found" } else { "running" },
        pids: targets.iter().map(|t| t.pid).collect(),
        text: text.clone(),
    };
    d.header.push(("qmail-send", text));
    d.lifetime = Some(l);
    Ok(Work::Expire { target })
}

/// What `--expire` must say plainly about bounces.
fn expire_notes(layout: &Layout, any_sender: bool, double: bool) -> Vec<String> {
    let home = layout.home.as_deref().unwrap_or(Path::new(qcommon::layout::DEFAULT_HOME));
    let control = escape_path(&home.join("control"));
    let mut v =
        vec!["qmail-send now gives up on each expired message at its next delivery attempt that does not succeed \
         (a deferral becomes a permanent failure: \"this message has been in the queue too long\"); a recipient \
         whose delivery succeeds still gets the message. The info time stamp, shown by qmail-qread as the queue \
         date, no longer tells when the message arrived."
            .to_string()];
    if !any_sender {
        v.push(format!(
            "Each null-sender message qmail-send gives up on becomes one DOUBLE BOUNCE to the postmaster: the \
             address in {control}/doublebounceto (default postmaster) at {control}/doublebouncehost. qmail-send \
             reads doublebounceto only when it starts (SIGHUP does not reread it). To discard them instead, \
             before running --expire: `echo devnull > {control}/doublebounceto` and `echo '# discard' > \
             ~alias/.qmail-devnull` (a .qmail file holding only a comment delivers nowhere; ~alias is usually \
             {}), with doublebouncehost a local domain (by default it is control/me), then restart qmail-send. \
             (A lone '#' in doublebounceto, a common recipe, sends them to #@doublebouncehost: they vanish only \
             because that delivery fails and a failed double bounce is discarded, unless ~alias/.qmail-default \
             takes it.)",
            escape_path(&home.join("alias"))
        ));
        if double {
            v.push(
                "Double bounces (sender #@[]) that qmail-send gives up on are discarded by qmail-send (logged as \
                 \"triple bounce: discarding\")."
                    .into(),
            );
        }
    } else {
        v.push(
            "Messages with a sender bounce to their sender when qmail-send gives up on them (null-sender \
             ones become double bounces to the postmaster, see control/doublebounceto)."
                .into(),
        );
    }
    v
}

impl Runner<'_> {
    /// Streams the scan through the selection, batch by batch, and
    /// reports the numbers given that it did not deliver.
    fn scan(&mut self, layout: &Layout) {
        let opts = ScanOptions { threads: self.args.threads as usize, ..ScanOptions::default() };
        // The phase: what is done to the selected messages as the scan goes.
        let phase = match (self.work, self.dry) {
            (_, true) => "scanning",
            (Work::Remove, false) => "removing",
            (Work::Expire { .. }, false) => "expiring",
        };
        self.progress.phase("listing", None);
        let progress = self.progress.clone();
        let mut listed = |total: u64| progress.phase(phase, Some(total));
        let root = self.root;
        // Only the messages the selection may take are examined whole
        // (every file stated, every envelope read); the others come with
        // the envelope that gives their sender, which rules them out.
        let (criteria, wanted) = (self.criteria.clone(), self.wanted.clone());
        let sift =
            move |m: &ScannedMessage| (wanted.is_empty() || wanted.contains(&m.number)) && criteria.may_select(m);
        let result = scan_sifted(root, layout.shape(), &opts, &sift, &mut listed, &mut |ev| self.on_event(ev));
        self.flush();
        self.progress.clear();
        if let Err(e) = result {
            report::error(&format!("cannot scan the queue: {e}"));
            self.exit = ExitCode::Operational;
            self.counts.scan_errors += 1;
        } else {
            self.report_missing();
        }
    }

    /// `--expire`, live: sends qmail-send SIGALRM when anything is due;
    /// the processes signalled. A dry run signals nothing.
    fn signal<'t>(&mut self, targets: &'t [Target], notes: &mut Vec<String>) -> Vec<&'t Target> {
        let mut signalled = Vec::new();
        if self.dry || self.work == Work::Remove {
            return signalled;
        }
        if self.counts.expired + self.counts.already_past == 0 {
            notes.push("nothing to expire: qmail-send was not signalled".into());
            return signalled;
        }
        if targets.is_empty() {
            notes.push(
                "no qmail-send found running on this queue, none was signalled: the change takes effect when \
                 qmail-send runs (it gives up on each message at its next failed delivery attempt)"
                    .into(),
            );
        }
        for t in targets {
            match guard::alarm(t) {
                Ok(()) => signalled.push(t),
                Err(e) => {
                    report::error(&e);
                    self.exit = ExitCode::Operational;
                }
            }
        }
        signalled
    }

    /// The last notes and the exit status the counts call for.
    fn finish(&mut self, notes: &mut Vec<String>) {
        let c = self.counts;
        if c.no_envelope > 0 {
            notes.push(format!(
                "{} message(s) have neither todo, info nor a complete intd (a lone mess file, e.g. left by an \
                 interrupted qkillns): not judged; qmail-send deletes such a file after 36 hours, `qfixq live` \
                 quarantines it",
                c.no_envelope
            ));
        }
        // A message left alone because it could not be read is something
        // left (docs/repair-policy.md, "Errors stay with their file"): as
        // qfixq and `qstat --detail`, the status says so.
        if c.scan_errors > 0 || c.unreadable > 0 {
            self.exit = self.exit.worst(ExitCode::Incomplete);
        }
        if c.named_left > 0 {
            self.exit = self.exit.worst(ExitCode::Operational);
        }
    }

    fn dry(&self) -> bool {
        self.dry
    }

    fn json(&self) -> bool {
        self.args.json
    }

    fn on_event(&mut self, ev: ScanEvent) {
        match ev {
            ScanEvent::Message(m) => {
                self.counts.scanned += 1;
                self.progress.inc(1);
                self.consider(m);
            }
            ScanEvent::Stray(s) => {
                if let Some(n) = s.path.file_name().and_then(|f| qcommon::safe_fs::parse_number(f.as_encoded_bytes())) {
                    if self.wanted.contains(&n) {
                        self.strays.entry(n).or_default().push(format!(
                            "queue/{} ({})",
                            escape_path(&s.path),
                            s.why.describe()
                        ));
                    }
                }
            }
            ScanEvent::Error(e) => {
                self.counts.scan_errors += 1;
                report::error(&format!("{e}; the messages there were not looked at"));
            }
        }
        if self.out.broken() && self.dry() {
            // Nobody reads the listing any more, and a dry run has nothing
            // to finish.
            self.progress.clear();
            std::process::exit(if self.out.failed() { ExitCode::Operational } else { ExitCode::Done }.code().into());
        }
    }

    /// The numbers given that the scan did not deliver as messages:
    /// reported, each with what stands under its name.
    fn report_missing(&mut self) {
        let missing: Vec<u64> = self.wanted.difference(&self.seen).copied().collect();
        for n in missing {
            self.counts.named_left += 1;
            let text = match self.strays.get(&n) {
                Some(s) => format!(
                    "message {n}: not a message: {} is a stray, not a message file; left alone (qfixq deals \
                     with strays)",
                    s.join(", ")
                ),
                None => format!("message {n}: not in the queue (delivered or removed already?); nothing to do"),
            };
            report::error(&text);
            if self.json() {
                let j = report::json_not_found(n, &text);
                self.json_item(&j);
            }
        }
    }

    /// A message number given that the filters leave out.
    fn not_selected(&self, number: u64) {
        if self.wanted.contains(&number) {
            report::error(&format!("message {number}: not selected by the filters; left alone"));
        }
    }

    fn unreadable(&mut self, number: u64, problems: &[String]) {
        if self.wanted.contains(&number) {
            self.counts.named_left += 1;
        }
        self.counts.unreadable += 1;
        for p in problems {
            report::error(&format!("message {number}: {p}; left alone"));
        }
        if self.json() {
            let j = report::json_unreadable(number, problems);
            self.json_item(&j);
        }
    }

    fn json_item(&mut self, j: &str) {
        if !self.first_json {
            self.out.write(b",");
        }
        self.first_json = false;
        self.out.write(j.as_bytes());
    }
}
