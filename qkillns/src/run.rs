//! One run of qkillns, start to end: this module owns the order of
//! things. Discover the layout; check what must be checked (the lock and
//! the processes for a removal, the qmail-send to signal for `--expire`);
//! stream the scan (`qcommon::scan`, stat and envelopes) through the
//! envelope stage of the selection; gather the messages that pass into
//! batches of `BATCH` (256); for each batch read the headers a filter or the
//! listing needs (several reads in flight), build the batch's `Plan`
//! (removal, or backdating), and either list it (`-n`) or carry it out
//! through live mutators and list it as done. `-n` prints exactly the
//! actions a live run carries out (`-v` shows their steps). Memory holds
//! one batch, never the whole selection.
//!
//! A live run carries a batch's actions out with up to `WORKERS` (4) threads,
//! each with its own mutator; a message's steps stay in order in one
//! thread, so a crash leaves at most one partly removed message per thread,
//! each missing a prefix of the removal order.
//!
//! A removal holds qmail-send's lock from before the scan until the end.
//! `--expire` takes no lock: it is made to run beside qmail-send.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use qcommon::error::escape_path;
use qcommon::layout::Layout;
use qcommon::mutator::{Action, Mode, Mutator, Plan, Step};
use qcommon::queue::Part;
use qcommon::safe_fs::Dir;
use qcommon::scan::{scan_counted, ScanEvent, ScanLayout, ScanOptions, ScannedMessage};
use qcommon::session::{Access, DamagedLock, Exclusive, Session};

use crate::args::Args;
use crate::exit::ExitCode;
use crate::guard::{self, Target};
use crate::headers;
use crate::plan::{self, Expiry, Lifetime};
use crate::report::{self, Entry, Output, Status};
use crate::select::{classify, Classified, Criteria, Stage, View};

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
struct HeadJson<'a> {
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
struct QmailSendJson {
    state: &'static str,
    pids: Vec<u32>,
    text: String,
}

/// The header's decisions that are not the layout's, for JSON.
#[derive(Debug, Default)]
struct HeadData {
    qmail_send: QmailSendJson,
    selection: String,
    lifetime: Option<qcommon::json::LifetimeJson>,
}

/// A refusal, as JSON.
#[derive(serde::Serialize)]
struct ErrorJson<'a> {
    schema_version: u32,
    tool: &'static str,
    error: &'a str,
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
    mutators: Option<Vec<Mutator>>,
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

/// Selected messages waiting for their headers to be read together, and
/// then removed together.
const BATCH: usize = 256;

/// Threads carrying out a batch's actions (each with its own mutator): a
/// removal waits on the disk for metadata, and several in flight keep it
/// busy. Each message's steps stay in order in one thread; only different
/// messages are worked on at the same time.
const WORKERS: usize = 4;

/// A selected message of a batch.
struct Chosen<'m> {
    msg: &'m ScannedMessage,
    header_read: bool,
    subject: Option<String>,
    /// A status without an action (expire: already past, not preprocessed).
    fixed: Option<Status>,
    /// Its action's index in the batch's plan.
    action: Option<usize>,
    /// Bytes of the message (expire listings).
    bytes: u64,
}

/// What carrying out one action gave.
#[derive(Debug, Clone)]
struct Outcome {
    status: Status,
    bytes: u64,
    error: Option<String>,
}

/// Carries out the plan's actions with the mutators, one thread each, the
/// actions dealt out in contiguous runs; outcomes in plan order.
fn execute(mutators: &mut [Mutator], plan: &Plan, sizes: &[Vec<u64>], work: Work) -> Vec<Outcome> {
    let n = plan.actions.len();
    if n == 0 {
        return Vec::new();
    }
    let threads = n.div_ceil(8).clamp(1, mutators.len());
    if threads == 1 {
        let m = &mut mutators[0];
        return plan.actions.iter().zip(sizes).map(|(a, sz)| carry_out(m, a, sz, work)).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .actions
            .chunks(per)
            .zip(sizes.chunks(per))
            .zip(mutators.iter_mut())
            .map(|((acts, szs), m)| {
                let h =
                    s.spawn(move || acts.iter().zip(szs).map(|(a, sz)| carry_out(m, a, sz, work)).collect::<Vec<_>>());
                (acts.len(), h)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, h)| {
                h.join().unwrap_or_else(|_| {
                    vec![
                        Outcome { status: Status::Failed, bytes: 0, error: Some("worker thread panicked".into()) };
                        len
                    ]
                })
            })
            .collect()
    })
}

/// Carries out `action` step by step. A file already gone is what a
/// removal wants (and, for a time stamp, means qmail-send finished the
/// message meanwhile); any other failure stops the action, which leaves
/// the message in a state a rerun finishes (mess is last).
fn carry_out(m: &mut Mutator, action: &Action, sizes: &[u64], work: Work) -> Outcome {
    let mut bytes = 0;
    let mut vanished = false;
    for (i, step) in action.steps.iter().enumerate() {
        match m.apply(step) {
            Ok(()) => bytes += sizes.get(i).copied().unwrap_or(0),
            Err(e) if e.is_not_found() => match step {
                Step::Unlink { .. } => {}
                _ => vanished = true,
            },
            Err(e) => return Outcome { status: Status::Failed, bytes, error: Some(e.to_string()) },
        }
    }
    let status = match work {
        Work::Remove => Status::Removed,
        Work::Expire { .. } if vanished => Status::Vanished,
        Work::Expire { .. } => Status::Expired,
    };
    Outcome { status, bytes, error: None }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Runs qkillns with parsed options.
pub fn run(args: &Args) -> ExitCode {
    let now = now();
    let mut out = Output::new();
    let refuse = |out: &mut Output, msg: &str| -> ExitCode {
        report::error(msg);
        if args.json {
            out.line(&qcommon::json::to_string(&ErrorJson {
                schema_version: qcommon::json::SCHEMA_VERSION,
                tool: "qkillns",
                error: msg,
            }));
            out.flush();
        }
        ExitCode::Operational
    };

    let dry = args.dry_run;
    // A removal changes the queue: the session grants it (qmail-send's lock
    // for the whole run, no other process in the queue unless --force; a
    // damaged lock file is refused, for qfixq to restore). The stop signals
    // keep their default action: the order of removal is safe at any point
    // (docs/repair-policy.md). --expire and -n only read.
    let access = if dry || args.expire {
        Access::ReadOnly
    } else {
        Access::Exclusive(Exclusive {
            force: args.force,
            damaged_lock: DamagedLock::Refuse,
            stop_flag: None,
            instead: Some("or use --expire to let qmail-send give up on the messages itself"),
        })
    };
    // The queue root is opened once, here, and handed on.
    let session = match Session::open(&args.queue.layout_options(), access) {
        Ok(s) => s,
        Err(e) => return refuse(&mut out, &e.to_string()),
    };
    let (layout, root) = (session.layout(), session.root());
    let mut notes: Vec<String> = Vec::new();
    // The salvaged messages, kept unless --include-salvaged: when their
    // records cannot be read, nothing can be told from a bounce.
    let salvaged = match qcommon::salvaged::read_all(root) {
        Ok(s) => s,
        Err(_) if args.include_salvaged => Default::default(),
        Err(e) => {
            return refuse(
                &mut out,
                &format!(
                    "cannot read the records of salvaged messages: {e}; nothing was changed (--include-salvaged \
                     goes on without them, taking salvaged messages for bounces)"
                ),
            )
        }
    };
    let mut header: Vec<(&str, String)> = qcommon::cli::layout_header(layout);
    let mut head = HeadData::default();

    // What must hold before anything is changed.
    let mut _claim = None;
    let mut targets: Vec<Target> = Vec::new();
    let mut lifetime: Option<Lifetime> = None;
    let work = if args.expire {
        match guard::expire_targets(root, &layout.queue, args.pid) {
            Ok(t) => targets = t,
            Err(why) => return refuse(&mut out, &why),
        }
        let l = plan::queuelifetime(layout.control_file("queuelifetime").as_deref());
        if let Some(w) = &l.warning {
            report::error(w);
        }
        let target = plan::expire_target(now, l.seconds);
        header.push(("queuelifetime", format!("{} s ({})", l.seconds, l.source)));
        header.push(("backdate to", qcommon::human::when(target, now)));
        let text = if targets.is_empty() {
            "none found running on this queue".to_string()
        } else {
            targets.iter().map(|t| format!("pid {} ({}, {})", t.pid, t.name, t.how)).collect::<Vec<_>>().join(", ")
        };
        head.lifetime = Some(qcommon::json::LifetimeJson {
            seconds: l.seconds,
            source: l.source_code,
            source_text: l.source.clone(),
        });
        head.qmail_send = QmailSendJson {
            state: if targets.is_empty() { "not_found" } else { "running" },
            pids: targets.iter().map(|t| t.pid).collect(),
            text: text.clone(),
        };
        header.push(("qmail-send", text));
        lifetime = Some(l);
        Work::Expire { target }
    } else if dry {
        let (state, text) = guard::lock_state(root);
        head.qmail_send = QmailSendJson { state, pids: Vec::new(), text: text.clone() };
        header.push(("qmail-send", text));
        Work::Remove
    } else {
        match session.claim() {
            Ok(c) => _claim = Some(c),
            Err(r) => return refuse(&mut out, &r.to_string()),
        }
        let list =
            |ps: Vec<&qcommon::procs::QueueProcess>| ps.iter().map(|p| p.describe()).collect::<Vec<_>>().join(", ");
        let busy = session.working_in_queue();
        if !busy.is_empty() {
            notes.push(format!("--force: going ahead although processes work inside the queue: {}", list(busy)));
        }
        let others = session.ignored();
        if !others.is_empty() {
            notes.push(format!(
                "qmail programs running elsewhere: {} (new mail may arrive meanwhile; it is not touched)",
                list(others)
            ));
        }
        let text = "stopped; its lock is held by this run".to_string();
        head.qmail_send = QmailSendJson { state: "stopped", pids: Vec::new(), text: text.clone() };
        header.push(("qmail-send", text));
        Work::Remove
    };

    let mutators = if dry {
        None
    } else {
        let mut v = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            match session.open_again() {
                Ok(d) => v.push(Mutator::new(d, Mode::Live)),
                Err(e) => return refuse(&mut out, &e.to_string()),
            }
        }
        Some(v)
    };
    let criteria = Criteria::from_args(args, now);
    let criteria_default = criteria.is_default();
    head.selection = criteria.describe(&args.header, &args.numbers);
    header.push(("selection", head.selection.clone()));
    header.push((
        "mode",
        match (work, dry) {
            (Work::Remove, true) => "remove, dry run: nothing is changed".into(),
            (Work::Remove, false) => "remove".into(),
            (Work::Expire { .. }, true) => "expire, dry run: nothing is changed, nothing is signalled".into(),
            (Work::Expire { .. }, false) => "expire".into(),
        },
    ));

    let mut runner = Runner {
        args,
        criteria,
        work,
        root,
        mutators,
        out,
        counts: Counts::default(),
        exit: ExitCode::Done,
        first_json: true,
        batch: Vec::with_capacity(BATCH),
        salvaged,
        wanted: args.numbers.iter().copied().collect(),
        seen: BTreeSet::new(),
        strays: BTreeMap::new(),
        unlisted: 0,
        listed: 0,
        progress: qcommon::progress::Progress::stderr("qkillns"),
        utf8: qcommon::human::utf8_locale(),
    };
    runner.print_header(layout, &header, &head, now);
    // --expire: its advice before it acts (before any backdating or signal).
    let mut advice = Vec::new();
    if let Work::Expire { .. } = work {
        advice = expire_notes(layout, !criteria_default, args.double);
        runner.print_advice(&advice);
    }

    let scan_layout = ScanLayout { split: layout.split.value, big_todo: layout.big_todo.value };
    let opts = ScanOptions { threads: args.threads as usize, ..ScanOptions::default() };
    // The phase: what is done to the selected messages as the scan goes.
    let phase = match (work, dry) {
        (_, true) => "scanning",
        (Work::Remove, false) => "removing",
        (Work::Expire { .. }, false) => "expiring",
    };
    runner.progress.phase("listing", None);
    let progress = runner.progress.clone();
    let mut listed = |total: u64| progress.phase(phase, Some(total));
    let result = scan_counted(root, scan_layout, &opts, &mut listed, &mut |ev| runner.on_event(ev));
    runner.flush();
    runner.progress.clear();
    if let Err(e) = result {
        report::error(&format!("cannot scan the queue: {e}"));
        runner.exit = ExitCode::Operational;
        runner.counts.scan_errors += 1;
    } else {
        runner.report_missing();
    }

    // Signal qmail-send.
    let mut signalled: Vec<&Target> = Vec::new();
    if let Work::Expire { .. } = work {
        let due = runner.counts.expired + runner.counts.already_past;
        if dry {
            // A dry run signals nothing.
        } else if due == 0 {
            notes.push("nothing to expire: qmail-send was not signalled".into());
        } else if targets.is_empty() {
            notes.push(
                "no qmail-send found running on this queue, none was signalled: the change takes effect when \
                 qmail-send runs (it gives up on each message at its next failed delivery attempt)"
                    .into(),
            );
        } else {
            for t in &targets {
                match guard::alarm(t) {
                    Ok(()) => signalled.push(t),
                    Err(e) => {
                        report::error(&e);
                        runner.exit = ExitCode::Operational;
                    }
                }
            }
        }
        if runner.json() {
            notes.extend(advice);
        }
    }
    let c = runner.counts;
    if c.no_envelope > 0 {
        notes.push(format!(
            "{} message(s) have neither todo, info nor a complete intd (a lone mess file, e.g. left by an \
             interrupted qkillns): not judged; qmail-send deletes such a file after 36 hours, `qfixq live` \
             quarantines it",
            c.no_envelope
        ));
    }
    if c.scan_errors > 0 {
        runner.exit = runner.exit.worst(ExitCode::Incomplete);
    }
    if c.named_left > 0 {
        runner.exit = runner.exit.worst(ExitCode::Operational);
    }
    runner.print_summary(&notes, &signalled, lifetime.as_ref());
    runner.out.flush();
    if runner.out.failed() {
        runner.exit = ExitCode::Operational;
    }
    runner.exit
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
    fn dry(&self) -> bool {
        self.mutators.is_none()
    }

    fn json(&self) -> bool {
        self.args.json
    }

    fn print_header(&mut self, layout: &Layout, header: &[(&str, String)], data: &HeadData, now: i64) {
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

    /// The envelope stage of the selection; a message that passes waits
    /// in the batch for its header.
    fn consider(&mut self, msg: Box<ScannedMessage>) {
        if !self.wanted.is_empty() {
            if !self.wanted.contains(&msg.number) {
                return;
            }
            self.seen.insert(msg.number);
        }
        match classify(&msg) {
            Classified::NoEnvelope => {
                self.counts.no_envelope += 1;
                if self.wanted.contains(&msg.number) {
                    self.counts.named_left += 1;
                    report::error(&format!(
                        "message {}: has neither todo, info nor a complete intd (being queued right now, or a lone \
                         mess a crash left): left alone; qmail-queue finishes it, or `qfixq live` quarantines it",
                        msg.number
                    ));
                }
            }
            Classified::Unreadable(p) => self.unreadable(msg.number, &p),
            Classified::Message(mut view) => {
                if !self.criteria.sender_matches(view.sender) || !self.criteria.rest_matches_in(self.root, &mut view) {
                    self.not_selected(msg.number);
                    return;
                }
                if self.criteria.is_default()
                    && !self.args.include_salvaged
                    && view.sender.is_empty()
                    && self.salvaged.contains(msg.number)
                {
                    self.counts.salvaged_kept += 1;
                    return;
                }
                if !view.problems.is_empty() {
                    return self.unreadable(msg.number, &view.problems);
                }
                self.batch.push(*msg);
                if self.batch.len() >= BATCH {
                    self.flush();
                }
            }
        }
    }

    /// Finishes the waiting messages: reads their headers (in parallel,
    /// when a filter or the listing needs them), builds the batch's plan,
    /// carries it out (live) and lists each message in order.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return;
        }
        let filters = &self.args.header;
        let looked = if filters.is_empty() && !self.wants_subject() {
            vec![headers::Looked::Skipped; batch.len()]
        } else {
            let paths: Vec<_> = batch.iter().map(|m| m.file(Part::Mess).map(|f| f.rel_path(m.number))).collect();
            headers::look_all(self.root, &paths, filters)
        };

        // The plan of this batch.
        let mut plan = Plan::default();
        let mut sizes: Vec<Vec<u64>> = Vec::new();
        let mut chosen: Vec<Chosen<'_>> = Vec::new();
        for (msg, looked) in batch.iter().zip(looked) {
            if let Some(c) = self.choose(msg, looked, &mut plan, &mut sizes) {
                chosen.push(c);
            }
        }

        // Carried out (live), or only listed.
        let outcomes: Vec<Outcome> = match &mut self.mutators {
            Some(ms) => execute(ms, &plan, &sizes, self.work),
            None => plan
                .actions
                .iter()
                .zip(&sizes)
                .map(|(_, sz)| Outcome {
                    status: match self.work {
                        Work::Remove => Status::WouldRemove,
                        Work::Expire { .. } => Status::WouldExpire,
                    },
                    bytes: sz.iter().sum(),
                    error: None,
                })
                .collect(),
        };

        for c in chosen {
            let Classified::Message(view) = classify(c.msg) else {
                continue;
            };
            let (status, bytes, error, action) = match (c.fixed, c.action) {
                (Some(status), _) => (status, c.bytes, None, None),
                (None, Some(k)) => {
                    let o = &outcomes[k];
                    (o.status, o.bytes, o.error.clone(), Some(&plan.actions[k]))
                }
                (None, None) => continue,
            };
            if let Some(e) = &error {
                report::error(&format!("message {}: {e}; the message is left as it is now", c.msg.number));
                self.exit = self.exit.worst(ExitCode::Operational);
            }
            match status {
                Status::WouldRemove | Status::Removed => {
                    self.counts.removed += 1;
                    self.counts.bytes += bytes;
                }
                Status::Failed => {
                    self.counts.failed += 1;
                    self.counts.bytes += bytes;
                }
                Status::WouldExpire | Status::Expired => self.counts.expired += 1,
                Status::AlreadyPast => self.counts.already_past += 1,
                Status::NotPreprocessed => self.counts.not_preprocessed += 1,
                Status::Vanished => self.counts.vanished += 1,
            }
            let bytes = if matches!(self.work, Work::Expire { .. }) { c.bytes } else { bytes };
            self.list(&view, (c.header_read, c.subject.as_deref()), status, action, bytes, error);
        }
    }

    /// The listing shows the Subject: in a dry run's listing (text or
    /// JSON). A live run reads the message only for a header filter: on a
    /// cold cache each read waits for the disk.
    fn wants_subject(&self) -> bool {
        self.mutators.is_none() && !self.args.quiet
    }

    /// The header stage of the selection, and the message's action (added
    /// to `plan`) or its fixed status.
    fn choose<'m>(
        &mut self,
        msg: &'m ScannedMessage,
        looked: headers::Looked,
        plan: &mut Plan,
        sizes: &mut Vec<Vec<u64>>,
    ) -> Option<Chosen<'m>> {
        let Classified::Message(view) = classify(msg) else {
            return None;
        };
        let filtering = !self.args.header.is_empty();
        let header_read = matches!(looked, headers::Looked::Read { .. });
        let subject = match looked {
            headers::Looked::Read { matches, subject } => {
                if filtering && !matches {
                    self.not_selected(msg.number);
                    return None;
                }
                subject
            }
            headers::Looked::Error(e) if filtering => {
                self.unreadable(msg.number, &[e]);
                return None;
            }
            // No message text: no header can match.
            headers::Looked::NoMessage if filtering => {
                self.not_selected(msg.number);
                return None;
            }
            _ => None,
        };
        self.counts.selected += 1;
        let mut c = Chosen { msg, header_read, subject, fixed: None, action: None, bytes: 0 };
        match self.work {
            Work::Remove => {
                let (action, sz) = plan::removal(msg);
                c.action = Some(plan.actions.len());
                plan.actions.push(action);
                sizes.push(sz);
            }
            Work::Expire { target } => {
                c.bytes = qcommon::remove::message_bytes(msg);
                if view.stage != Stage::Preprocessed {
                    c.fixed = Some(Status::NotPreprocessed);
                    c.bytes = 0;
                } else {
                    match plan::expiry(msg, target) {
                        Expiry::NoInfo => {
                            self.counts.selected -= 1;
                            self.unreadable(msg.number, &["no stat of its info file".into()]);
                            return None;
                        }
                        Expiry::AlreadyPast => c.fixed = Some(Status::AlreadyPast),
                        Expiry::Set(action) => {
                            c.action = Some(plan.actions.len());
                            plan.actions.push(action);
                            sizes.push(vec![0]);
                        }
                    }
                }
            }
        }
        Some(c)
    }

    fn list(
        &mut self,
        view: &View<'_>,
        subject: (bool, Option<&str>),
        status: Status,
        action: Option<&Action>,
        bytes: u64,
        error: Option<String>,
    ) {
        if self.args.quiet {
            return;
        }
        let e = Entry { view, header_read: subject.0, subject: subject.1, status, action, bytes, error };
        if self.json() {
            let j = report::json_entry(&e, self.criteria.now);
            self.json_item(&j);
        } else {
            // The first few, and every failure; the rest are counted.
            let every = self.args.verbose;
            if !every && self.listed >= LISTED && status != Status::Failed {
                self.unlisted += 1;
                return;
            }
            self.listed += 1;
            self.out.line(&report::text_line(&e, self.criteria.now, self.utf8));
            if self.args.verbose {
                if let Some(a) = action {
                    for s in &a.steps {
                        self.out.line(&format!("    {s}"));
                    }
                }
            }
        }
    }

    /// Prints `--expire`'s advice (text), before anything is done.
    fn print_advice(&mut self, advice: &[String]) {
        if self.json() {
            return;
        }
        for n in advice {
            self.out.line(&format!("note: {n}"));
        }
    }

    fn print_summary(&mut self, notes: &[String], signalled: &[&Target], lifetime: Option<&Lifetime>) {
        let c = self.counts;
        let dry = self.dry();
        if self.json() {
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
            return;
        }
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
                if c.vanished > 0 {
                    lines.push(format!("{} message(s) finished by qmail-send meanwhile", c.vanished));
                }
                for t in signalled {
                    lines.push(format!("sent SIGALRM to pid {} ({}, {})", t.pid, t.name, t.how));
                }
            }
        }
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
        for n in notes {
            lines.push(format!("note: {n}"));
        }
        for l in lines {
            self.out.line(&l);
        }
    }
}
