//! qfixq: checks a qmail queue (read-only by default), repairs it
//! (`qfixq live`) or empties it while still repairing its structure
//! (`qfixq live empty`), and requeues set-aside messages (`requeue`).
//! One data path serves check, live and live empty: the session guards
//! the queue (live: qmail-send's lock), the queue is scanned into
//! messages, findings and their steps are planned by
//! docs/repair-policy.md (`message`, `structure`), and every finding's
//! action goes through one executor (`qcommon::mutator`): a check has it
//! plan the steps (a dry run), live has it carry them out. Live, a
//! verifying pass (`verify`) then must find nothing. This module owns the command
//! line, the run (header, guard, passes, summary) and the exit code.

pub mod exit;
pub mod finding;
pub mod inject;
pub mod message;
pub mod output;
pub mod requeue;
pub mod salvage;
pub mod structure;
pub mod verify;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use clap::{CommandFactory, Parser};
use qcommon::cli::{fs_usage, layout_header, QueueArgs, FULL_WARNING_PCT};
use qcommon::layout::Layout;
use qcommon::mutator::{Mode, Mutator, Run};
use qcommon::procs::QueueProcess;
use qcommon::progress::{Clearing, Progress};
use qcommon::remove::Quarantine;
use qcommon::safe_fs::Dir;
use qcommon::scan::{scan_counted, Depth, ScanEvent, ScanOptions};
use qcommon::session::{Access, Claim, DamagedLock, Exclusive, Refusal, Session};

pub use exit::ExitCode;
use finding::Finding;
use message::MessageCtx;
use output::{Detail, Report};
use structure::StructureCtx;
use verify::Verdict;

const AFTER_HELP: &str = "\
Modes: `qfixq` (or `qfixq check`, `qfixq -n`) checks and changes nothing; \
`qfixq live` repairs (qmail-send stopped); `qfixq live empty` removes every message; \
`qfixq requeue [live] --from DIR` and `qfixq requeue [live] --lost-found [RUN[/N]...]` put \
messages back into service through qmail's bin/qmail-queue while qmail runs (without live: \
list only).
Exit status (as fsck): 0 nothing wrong, 1 problems found and all fixed, 4 problems \
left unfixed (every check that finds any), 8 operational error (queue unreadable, \
qmail-send running, ids or split undecidable, an internal error), 16 usage error, \
32 interrupted (run the same command again to finish). requeue: 0 all done, 4 messages \
left where they were (reported), 8 qmail-queue failed for a while or the source's lock is held \
(a rerun resumes), 32 interrupted.";

/// Check and repair a qmail queue, saving every message that can be saved.
#[derive(Debug, Parser)]
#[command(
    name = "qfixq",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("QTOOLS_GIT_REV"), ")"),
    about = "Check and repair a qmail queue, saving every message that can be saved",
    long_about = "Check and repair a qmail queue, saving every message that can be saved.\n\n\
        Without a mode word qfixq only checks: it changes nothing and prints the exact plan a repair \
        would carry out. `qfixq live` repairs the queue; `qfixq live empty` removes every message but \
        still repairs the structure, owners and modes. qmail-send must be stopped for a live run: \
        qfixq takes qmail-send's own lock (lock/sendmutex) and holds it while it works.\n\n\
        `qfixq requeue live --from DIR` puts the messages of a queue repaired offline (DIR, with \
        `qfixq live --queue DIR`) back into service while qmail runs: each message is given to \
        qmail's own bin/qmail-queue (of --qmail-home, or the parent of --queue, default /var/qmail) \
        with its sender and the recipients not yet delivered, and removed from DIR only after \
        qmail-queue accepted it; it holds DIR's lock/sendmutex meanwhile. A crash can at most \
        inject one message twice, never lose one; a rerun resumes. `--lost-found` does the same for \
        the items qfixq set aside in lost+found (of DIR with --from, else of the live queue), each \
        marked done with a `requeued` file. Without `live` requeue only lists what it would inject. \
        A message with no usable envelope goes to --to ADDR, or stays where it is, reported; one \
        with a pending bounce (bounce/N) stays. With requeue, --split and --ids describe DIR.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    queue: QueueArgs,
    /// Repair even while a process works in the queue or has a file in it
    /// open (a qmail-queue in flight). Never overrides the qmail-send lock.
    #[arg(long)]
    force: bool,
    /// Delete what cannot be saved instead of moving it to lost+found.
    #[arg(long)]
    no_quarantine: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// Print the summary only (and failures).
    #[arg(short, long, conflicts_with = "all")]
    quiet: bool,
    /// Print every finding and every step (by default the text report
    /// groups them by kind and shows a few of each).
    #[arg(short = 'v', long, visible_alias = "verbose")]
    all: bool,
    /// live: what the verifying check after the repair examines again:
    /// `changed` lists every bucket, stats the messages the repair only
    /// renamed, chowned or chmodded, rereads those whose envelopes it wrote
    /// or could not judge and every new number; `all` examines every
    /// message again, as the first check did.
    #[arg(long, value_enum, value_name = "WHAT", default_value = "changed")]
    verify: verify::Scope,
    /// Threads that stat and read message files.
    #[arg(long, value_name = "N", default_value_t = qcommon::scan::DEFAULT_THREADS as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Check only, change nothing (the default; as fsck -n and qkillns -n).
    #[arg(short = 'n', long, conflicts_with_all = ["live", "empty"])]
    dry_run: bool,
    /// Same as the mode word `live`.
    #[arg(long)]
    live: bool,
    /// With --live, same as `live empty`.
    #[arg(long)]
    empty: bool,
    /// requeue: the queue repaired offline whose messages go back into
    /// service (its lock/sendmutex is held meanwhile).
    #[arg(long, value_name = "DIR")]
    from: Option<std::path::PathBuf>,
    /// requeue: items of lost+found (of --from DIR, else of the live
    /// queue): all of them, or those named as RUN (a run directory) or
    /// RUN/N (one item). Give the mode words first.
    #[arg(long, value_name = "RUN[/N]", num_args = 0..)]
    lost_found: Option<Vec<String>>,
    /// requeue: where a message with no usable envelope goes (e.g. the
    /// postmaster), with the null sender; without it such a message stays
    /// where it is, reported.
    #[arg(long, value_name = "ADDR")]
    to: Option<String>,
    /// Mode: nothing or `check` (check only), `live` (repair), `live empty` (remove every message),
    /// `requeue` (list what would be injected) or `requeue live` (inject).
    #[arg(value_name = "MODE", num_args = 0..=2, value_parser = ["check", "live", "empty", "requeue"])]
    mode: Vec<String>,
}

/// The clap command: the single source of --help, man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunMode {
    Check,
    Live,
    Empty,
}

impl RunMode {
    fn code(self) -> &'static str {
        match self {
            RunMode::Check => "check",
            RunMode::Live => "live",
            RunMode::Empty => "live_empty",
        }
    }

    fn words(self) -> &'static str {
        match self {
            RunMode::Check => "check (read only)",
            RunMode::Live => "live repair",
            RunMode::Empty => "live empty (every message removed)",
        }
    }
}

/// How a run uses the queue: a check only reads; a live run is granted
/// the queue by the session (qmail-send's lock, no other process working
/// there unless `--force`; a damaged lock file is restored first), and
/// stops between two steps on SIGINT, SIGTERM or SIGHUP, a second signal
/// ending it at once (exit 32).
fn access(cli: &Cli, mode: RunMode) -> Access {
    if mode == RunMode::Check {
        return Access::ReadOnly;
    }
    Access::Exclusive(Exclusive {
        force: cli.force,
        damaged_lock: DamagedLock::Restore,
        stop_flag: Some(i32::from(ExitCode::Interrupted.code())),
        instead: None,
    })
}

/// A refusal of the session: an operational error (exit 8,
/// docs/repair-policy.md), said in the session's words.
fn refused(r: &Refusal) -> ExitCode {
    fail(r)
}

/// Runs qfixq with these arguments (the first is the program name).
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    qcommon::cli::limit_malloc_arenas();
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return qcommon::cli::clap_exit(&e),
    };
    let words: Vec<&str> = cli.mode.iter().map(String::as_str).collect();
    if words.first() == Some(&"requeue") {
        return requeue::main(&cli, &words[1..]);
    }
    if cli.from.is_some() || cli.lost_found.is_some() || cli.to.is_some() {
        eprintln!("qfixq: --from, --lost-found and --to go only with the mode `requeue`");
        return ExitCode::Usage;
    }
    if cli.dry_run && !matches!(words.as_slice(), [] | ["check"]) {
        eprintln!("qfixq: -n (check only) cannot go with the mode {:?}", words.join(" "));
        return ExitCode::Usage;
    }
    if cli.empty && !cli.live && !words.contains(&"live") {
        eprintln!(
            "qfixq: --empty removes every message, so it goes only with a live run: \
             say `qfixq live empty` (or --live --empty)"
        );
        return ExitCode::Usage;
    }
    let mode = match (words.as_slice(), cli.live, cli.empty) {
        ([] | ["check"], false, false) => RunMode::Check,
        ([], true, false) | (["live"], _, false) => RunMode::Live,
        ([], true, true) | (["live"], _, true) | (["live", "empty"], _, _) => RunMode::Empty,
        (other, _, _) => {
            eprintln!(
                "qfixq: unknown mode {:?}: use nothing (check), `live`, `live empty` or `requeue [live]`",
                other.join(" ")
            );
            return ExitCode::Usage;
        }
    };
    let stdout = std::io::stdout();
    let progress = Progress::stderr("qfixq");
    let out = Clearing::new(stdout.lock(), &progress, stdout.is_terminal());
    let result = run(&cli, mode, out, &progress);
    progress.clear();
    qcommon::cli::output_done(result)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    qcommon::cli::say("qfixq", msg);
    ExitCode::Operational
}

/// The header's data for JSON, one key per line of [`layout_header`]
/// (docs/json.md): numbers as numbers, sources as codes with the prose
/// beside them ([`qcommon::json::LayoutJson`], as every tool prints them).
fn header_data(layout: &qcommon::layout::Layout) -> Vec<(&'static str, serde_json::Value)> {
    use output::value;
    let l = qcommon::json::LayoutJson::of(layout);
    vec![
        (
            "queue",
            value(&output::QueueJson {
                path: qcommon::error::escape_path(&layout.queue),
                symlink: layout.queue_is_symlink,
            }),
        ),
        ("split", value(&l.split)),
        ("ids", value(&l.ids)),
        ("todo", value(&l.todo)),
    ]
}

fn process_text(p: &QueueProcess) -> String {
    p.describe()
}

/// One run of check, live or live empty: the header, the guard through
/// the session, the pass that plans and applies, then (live) the
/// verifying pass and the summary.
fn run<W: Write>(cli: &Cli, mode: RunMode, out: W, progress: &Progress) -> std::io::Result<ExitCode> {
    let mut options = cli.queue.layout_options();
    // A live run may make a new queue in an empty directory.
    options.new_queue = mode == RunMode::Live;
    // The queue root is opened once, here, and handed on.
    let session = match Session::open(&options, access(cli, mode)) {
        Ok(s) => s,
        Err(e) => return Ok(fail(e)),
    };
    let layout = session.layout();
    let ids = match &layout.ids {
        Ok(d) => d.value,
        Err(e) => return Ok(fail(format!("cannot decide qmail's ids: {e}"))),
    };
    let root = session.root();
    let detail = match (cli.quiet, cli.all) {
        (true, _) => Detail::Quiet,
        (false, true) => Detail::All,
        (false, false) => Detail::Grouped,
    };
    let mut report = Report::new(out, cli.json, detail);
    header(&mut report, &session, mode)?;

    let live = mode != RunMode::Check;
    let sctx = StructureCtx { root, shape: layout.shape(), ids };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    // Files whose modification time is at or after this were written
    // while qfixq ran (whole seconds, one early: a file written in the
    // same second as the start counts as new).
    let started = now - 1;
    let mut quarantine = match Quarantine::new(root, now, std::process::id()) {
        Ok(q) => q,
        Err(e) => return Ok(fail(e)),
    };
    let mut tally = Tally::default();
    // Live: the claim holds qmail-send's lock until the run ends.
    let (_claim, mut mutator) = match guard(&session, &sctx, live, &mut quarantine, &mut report, &mut tally)? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };

    let opts = ScanOptions { threads: cli.threads as usize, ..ScanOptions::default() };
    let phase = if live { "repairing" } else { "scanning" };
    let pass = Pass { mode, no_quarantine: cli.no_quarantine, scan: &opts, since: None, progress, phase };
    // Live, for a verifying check of what the repair touched: the numbers
    // seen (the pass's own set, handed over at its end), the old and new
    // numbers of the renumberings (from the pending moves), and those
    // every other finding names (verify::Record).
    let narrowed = live && cli.verify == verify::Scope::Changed;
    let mut seen = verify::Numbers::default();
    let mut marks = verify::Marks::default();
    let mut moved = verify::Moved::default();
    let watch = Watch { seen: narrowed.then_some(&mut seen), narrow: None };
    let mut sink = |f: &Finding, _: Origin| {
        let whole = apply(&mut report, &mut mutator, f, &mut tally)?;
        if narrowed && !(whole && verify::is_renumbering_move(f)) {
            verify::note(&mut marks, f);
        }
        Ok(whole)
    };
    let outcome = plan_and_apply(root, layout, pass, &mut quarantine, watch, narrowed.then_some(&mut moved), &mut sink);
    progress.clear();
    match outcome {
        Ok(_) => {}
        Err(PlanError::Io(e)) => return Err(e),
        Err(PlanError::Queue(e)) => return Ok(fail(e)),
        Err(PlanError::Interrupted) => {
            let _ = report.summary(
                tally.problems,
                tally.unfixed + 1,
                live,
                &["interrupted: stopped between two steps; run qfixq live again to finish".into()],
                32,
            );
            return Ok(ExitCode::Interrupted);
        }
    }
    let record = narrowed.then_some(verify::Record { seen, marks, moved });
    let verify = || {
        let v = verify::Verify {
            root,
            layout,
            sctx: &sctx,
            no_quarantine: cli.no_quarantine,
            progress,
            opts: &opts,
            now,
            started,
        };
        let verdict = verify::verify(&v, record);
        progress.clear();
        verdict
    };
    summary(&mut report, &tally, live, cli.verify, verify)
}

/// The header: the queue's layout, the processes that use it and its
/// disk, in words and in JSON (docs/json.md).
fn header<W: Write>(report: &mut Report<W>, session: &Session, mode: RunMode) -> std::io::Result<()> {
    let layout = session.layout();
    let mut header = layout_header(layout);
    let mut data = header_data(layout);
    // Processes that use the queue; qmail-named ones elsewhere (another
    // queue's qmail-send, a zombie) are listed as ignored.
    let (procs, procs_unknown): (&[QueueProcess], Option<String>) = match session.processes() {
        Ok(p) => (p, None),
        Err(e) => (&[], Some(e.to_string())),
    };
    let procs_text = match &procs_unknown {
        Some(e) => format!("unknown ({e})"),
        None if procs.is_empty() => "none".to_string(),
        None => procs.iter().map(process_text).collect::<Vec<_>>().join(", "),
    };
    data.push((
        "processes",
        match &procs_unknown {
            Some(e) => output::value(&output::ProcessesJson::unknown(e)),
            None => {
                output::value(&output::ProcessesJson::listed(procs.iter().map(|p| p.pid).collect(), procs_text.clone()))
            }
        },
    ));
    header.push(("processes", procs_text));
    let (disk_text, disk_data) = disk(&layout.queue);
    header.push(("disk", disk_text));
    data.push(("disk", disk_data));
    report.header(mode.words(), mode.code(), &header, data)
}

/// The disk line of the header, in words and in JSON: a warning when the
/// queue's filesystem is nearly full.
fn disk(queue: &std::path::Path) -> (String, serde_json::Value) {
    match fs_usage(queue) {
        Ok(u) => {
            let mut s = format!("blocks {:.1}% used, inodes {:.1}% used", u.blocks_pct, u.inodes_pct);
            if u.blocks_pct >= FULL_WARNING_PCT || u.inodes_pct >= FULL_WARNING_PCT {
                s.push_str(
                    " -- WARNING: 95% or more: qmail cannot write there and a repair may fail; free space first",
                );
            }
            (s, output::value(&output::DiskJson::of(&u)))
        }
        Err(e) => (format!("unknown: {e}"), output::value(&output::DiskJson::unknown(&e))),
    }
}

/// The guard through the session. Live: refuse while qmail runs; take
/// and hold qmail-send's lock (after restoring lock/ and lock/sendmutex
/// when they are damaged: those come first, through the executor opened
/// here for the whole run). Returns the claim to hold and the executor,
/// or the exit code of a refusal.
fn guard<W: Write>(
    session: &Session,
    sctx: &StructureCtx<'_>,
    live: bool,
    quarantine: &mut Quarantine,
    report: &mut Report<W>,
    tally: &mut Tally,
) -> std::io::Result<Result<(Option<Claim>, Mutator), ExitCode>> {
    let mut claim = None;
    if live {
        match session.claim() {
            Ok(c) => claim = Some(c),
            Err(r) => return Ok(Err(refused(&r))),
        }
    }
    let first_findings = structure::plan_sendmutex(sctx, quarantine);
    let mut mutator = match session.open_again() {
        Ok(d) => Mutator::new(d, if live { Mode::Live } else { Mode::DryRun }),
        Err(e) => return Ok(Err(fail(e))),
    };
    for f in first_findings {
        apply(report, &mut mutator, &f, tally)?;
    }
    if let Some(c) = claim.as_mut() {
        if let Err(r) = c.take_restored_lock(session) {
            return Ok(Err(refused(&r)));
        }
    }
    Ok(Ok((claim, mutator)))
}

/// The summary: live, after a repair that found problems, the verifying
/// pass (`verify`) must find nothing; the notes and the exit code.
fn summary<W: Write>(
    report: &mut Report<W>,
    tally: &Tally,
    live: bool,
    scope: verify::Scope,
    verify: impl FnOnce() -> Verdict,
) -> std::io::Result<ExitCode> {
    let mut notes = Vec::new();
    let mut code = ExitCode::from_outcome(tally.problems, tally.unfixed, live);
    if live && tally.problems > 0 {
        let verdict = verify();
        report.verified(scope.code(), verdict.examined, verdict.stated, verdict.listed);
        if let Some(note) = verdict.note(tally.unfixed) {
            notes.push(note);
        }
        code = code.worst(verdict.code(tally.unfixed));
    }
    if tally.unfixed > 0 {
        notes.push(format!("{} problems were left as they are; see the lines above", tally.unfixed));
    }
    report.summary(tally.problems, tally.unfixed, live, &notes, code.code())?;
    Ok(code)
}

/// The counts of a run, from the executor's outcomes.
#[derive(Default)]
struct Tally {
    problems: u64,
    unfixed: u64,
}

/// Reports a finding and runs its action through the mutator (a check:
/// planned steps; live: carried out), one path for both; tells whether
/// the action was carried out (or planned) whole. A finding whose repair
/// is the action before it ([`Finding::follows`]) is not fixed when that
/// action failed: the mutator skips it.
fn apply<W: Write>(report: &mut Report<W>, m: &mut Mutator, f: &Finding, t: &mut Tally) -> std::io::Result<bool> {
    report.finding(f)?;
    let mut io_err = None;
    let how = Run { follows: f.follows, ..Run::default() };
    let outcome = m.run(&f.action, how, &mut |s, status| {
        if let Err(e) = report.step(f, s, status) {
            io_err.get_or_insert(e);
        }
    });
    if let Some(e) = io_err {
        return Err(e);
    }
    if f.kind.is_problem() {
        t.problems += 1;
        if f.left || outcome.skipped {
            t.unfixed += 1;
        }
    }
    // Also a failed second half of a renumbering: the message is left
    // under its waiting names.
    if outcome.failed.is_some() && !f.left {
        t.unfixed += 1;
    }
    Ok(outcome.whole())
}

enum PlanError {
    Io(std::io::Error),
    Queue(qcommon::Error),
    Interrupted,
}

/// How one pass over the queue runs.
#[derive(Debug, Clone, Copy)]
struct Pass<'a> {
    mode: RunMode,
    no_quarantine: bool,
    scan: &'a ScanOptions,
    /// For the verifying pass: files written at or after this time are new.
    since: Option<i64>,
    /// The progress line, and this pass's phase on it.
    progress: &'a Progress,
    phase: &'static str,
}

/// What a pass records or checks beside its findings (the verifying
/// check's needs, [`verify`]).
#[derive(Default)]
struct Watch<'a> {
    /// A live run's first pass: every number the scan delivers (the
    /// pass's own set, [`MessageCtx::seen`], handed over when it ends).
    seen: Option<&'a mut verify::Numbers>,
    /// A narrowed verifying pass: the judge of the messages the scan only
    /// listed or stated.
    narrow: Option<&'a mut verify::Narrow>,
}

/// The one data path: structure, then the scan's strays and messages,
/// then the second half of renumbering and the extra buckets. Each
/// finding goes to `sink` as soon as it is planned, and through it to the
/// one executor (`qcommon::mutator`: a check plans the steps, live carries
/// them out).
///
/// With `moved`, the old and new number of every renumbering planned go
/// there (a live run's record for the verifying check, which then need
/// not note its renames: [`verify::Record`]).
fn plan_and_apply(
    root: &Dir,
    layout: &Layout,
    pass: Pass<'_>,
    quarantine: &mut Quarantine,
    watch: Watch<'_>,
    moved: Option<&mut verify::Moved>,
    sink: &mut dyn FnMut(&Finding, Origin) -> std::io::Result<bool>,
) -> Result<u64, PlanError> {
    // Stops between two findings when a signal asked for it.
    let mut sink = |f: &Finding, o: Origin| -> Result<bool, PlanError> {
        if qcommon::interrupt::requested() {
            return Err(PlanError::Interrupted);
        }
        sink(f, o).map_err(PlanError::Io)
    };
    let shape = layout.shape();
    let ids = layout.ids.as_ref().map(|d| d.value).map_err(|e| PlanError::Queue(qcommon::Error::Layout(e.clone())))?;
    let sctx = StructureCtx { root, shape, ids };
    for f in structure::plan_structure(&sctx, quarantine) {
        sink(&f, Origin::default())?;
    }
    let mut ctx = MessageCtx {
        shape,
        ids,
        empty: pass.mode == RunMode::Empty,
        no_quarantine: pass.no_quarantine,
        doomed_links: HashMap::new(),
        pending: Default::default(),
        seen: Default::default(),
        waiting: HashMap::new(),
        waiting_mess: Default::default(),
        journal: message::Journal::load(root, shape).map_err(PlanError::Queue)?,
        occupied: Default::default(),
        fresh: HashMap::new(),
        extra_buckets: Vec::new(),
        salvaged: salvage::Book::load(root).map_err(PlanError::Queue)?,
    };
    let Watch { seen, narrow } = watch;
    let messages = scan_pass(root, layout, pass, &mut ctx, quarantine, narrow, &mut sink)?;
    after_scan(&mut ctx, pass, moved, &mut sink)?;
    if let Some(seen) = seen {
        *seen = std::mem::take(&mut ctx.seen);
    }
    Ok(messages)
}

/// The scan: each stray and message planned as it comes, its findings
/// sent on at once; returns how many messages it examined whole (one the
/// scan only listed or stated goes to `narrow`'s judge instead). The
/// number of messages listed, known before the first one comes, sizes
/// the set of numbers seen and caps the pending renumberings' growth.
fn scan_pass(
    root: &Dir,
    layout: &Layout,
    pass: Pass<'_>,
    ctx: &mut MessageCtx,
    quarantine: &mut Quarantine,
    mut narrow: Option<&mut verify::Narrow>,
    sink: &mut dyn FnMut(&Finding, Origin) -> Result<bool, PlanError>,
) -> Result<u64, PlanError> {
    let Pass { mode, scan: opts, since, progress, phase, .. } = pass;
    let mut messages = 0u64;
    let mut failure: Option<PlanError> = None;
    let mut buf: Vec<Finding> = Vec::new();
    progress.phase("listing", None);
    let listed_total = std::cell::Cell::new(None);
    let mut listed = |total: u64| {
        listed_total.set(Some(total));
        progress.phase(phase, Some(total));
    };
    let r = scan_counted(root, layout.shape(), opts, &mut listed, &mut |ev| {
        if failure.is_some() {
            return;
        }
        if let Some(total) = listed_total.take() {
            ctx.seen.reserve(usize::try_from(total).unwrap_or(0));
            ctx.pending.expect(total);
        }
        if qcommon::interrupt::requested() {
            failure = Some(PlanError::Interrupted);
            return;
        }
        buf.clear();
        if let ScanEvent::Message(m) = &ev {
            if m.depth != Depth::Full {
                if let Some(narrow) = narrow.as_deref_mut() {
                    narrow.judge(m);
                }
                // As the planner notes every message it sees.
                ctx.seen.insert(m.number);
                ctx.salvaged.saw(m.number);
                progress.inc(1);
                return;
            }
        }
        let (number, origin, doomed) = plan_event(ctx, quarantine, ev, since, &mut buf);
        if number.is_some() {
            messages += 1;
            progress.inc(1);
        }
        match send_event(ctx, &buf, number, origin, sink) {
            // A stray that is an extra name of a message file (a pid/
            // leftover, a temporary link): counted only while the name is
            // still there as the messages are stated (a check, a removal
            // not carried out, a stray set aside rather than unlinked).
            // The scanner delivers every stray before it states a message
            // and live unlinks it at once, so a removed name is never in
            // the message's stat: counting it anyway allowed a mess linked
            // from pid/ and from outside the queue its outside link, and
            // the mess stayed in place (MessageCtx::doomed_links).
            Ok(whole) => {
                if let Some((ino, unlinks)) = doomed {
                    if mode == RunMode::Check || !(whole && unlinks) {
                        *ctx.doomed_links.entry(ino).or_insert(0) += 1;
                    }
                }
            }
            Err(e) => failure = Some(e),
        }
    });
    if let Some(f) = failure {
        return Err(f);
    }
    match r {
        Err(qcommon::Error::Interrupted) => Err(PlanError::Interrupted),
        Err(e) => Err(PlanError::Queue(e)),
        Ok(_) => Ok(messages),
    }
}

/// Plans one event of the scan into `buf`; returns the message's number
/// (`None` for a stray or an error), where the findings come from, and
/// the inode of a message file to which a stray is an extra name
/// ([`message::doomed_link`]), with whether the stray's action unlinks
/// that name.
fn plan_event(
    ctx: &mut MessageCtx,
    quarantine: &mut Quarantine,
    ev: ScanEvent,
    since: Option<i64>,
    buf: &mut Vec<Finding>,
) -> (Option<u64>, Origin, Option<(u64, bool)>) {
    let mut origin = Origin::default();
    match ev {
        ScanEvent::Message(m) => {
            origin.new = message_is_new(&m, since);
            message::plan_message(ctx, quarantine, &m, buf);
            (Some(m.number), origin, None)
        }
        ScanEvent::Stray(s) => {
            origin.new = stray_is_new(&s, since);
            message::plan_stray(ctx, quarantine, &s, buf);
            let unlinks = buf.iter().flat_map(|f| &f.action.steps).any(|st| match st {
                qcommon::mutator::Step::Unlink { path, .. } => *path == s.path,
                _ => false,
            });
            (None, origin, message::doomed_link(&s).map(|ino| (ino, unlinks)))
        }
        ScanEvent::Error(e) => {
            buf.push(Finding::leave(
                finding::Kind::Unreadable,
                std::path::PathBuf::from("."),
                e.to_string(),
                "left as it is",
            ));
            (None, origin, None)
        }
    }
}

/// Sends the findings of one event on. A message left as it is, or whose
/// action failed, keeps its number this run; the first half of a
/// renumbering that failed has no second half. Tells whether there were
/// findings and every one was carried out (or planned) whole, none left.
fn send_event(
    ctx: &mut MessageCtx,
    buf: &[Finding],
    number: Option<u64>,
    origin: Origin,
    sink: &mut dyn FnMut(&Finding, Origin) -> Result<bool, PlanError>,
) -> Result<bool, PlanError> {
    let mut whole = !buf.is_empty();
    for f in buf {
        if f.left {
            whole = false;
            if let Some(n) = f.action.message.or(number) {
                ctx.occupied.insert(n);
            }
        }
        if !sink(f, origin)? {
            whole = false;
            if let Some(n) = number {
                message::forget_pending(ctx, n);
                ctx.occupied.insert(n);
            }
        }
    }
    Ok(whole)
}

/// After the scan: the records of salvaged messages that are gone, the
/// second half of renumbering, fresh copies whose message is gone, and
/// the extra buckets.
fn after_scan(
    ctx: &mut MessageCtx,
    pass: Pass<'_>,
    moved: Option<&mut verify::Moved>,
    sink: &mut dyn FnMut(&Finding, Origin) -> Result<bool, PlanError>,
) -> Result<(), PlanError> {
    let progress = pass.progress;
    let mut gone = Vec::new();
    salvage::plan_gone(ctx, &mut gone);
    for f in &gone {
        sink(f, Origin::default())?;
    }
    // The second half of renumbering: stops between two messages when a
    // signal asked for it (the rest wait under their waiting names, which
    // the next run finishes).
    let mut stopped: Option<PlanError> = None;
    if !ctx.pending.is_empty() {
        let second = match pass.phase {
            "repairing" => "renumbering",
            "scanning" => "planning the renumbering",
            other => other,
        };
        progress.phase(second, None);
        progress.set_total(ctx.pending.len() as u64);
    }
    message::plan_pending(ctx, moved, &mut |f| match sink(f, Origin::default()) {
        Ok(done) => {
            progress.inc(1);
            Ok(done)
        }
        Err(PlanError::Io(e)) => Err(e),
        Err(other) => {
            stopped = Some(other);
            Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "stopped"))
        }
    })
    .map_err(|e| stopped.take().unwrap_or(PlanError::Io(e)))?;
    let mut tail = Vec::new();
    message::plan_leftover_fresh(ctx, &mut tail);
    message::plan_extra_buckets(ctx, &mut tail);
    for f in &tail {
        sink(f, Origin::default())?;
    }
    Ok(())
}

/// Where a finding of the verifying pass comes from.
#[derive(Debug, Clone, Copy, Default)]
struct Origin {
    /// Its message or file was written after the repair started: another
    /// process is writing to the queue.
    new: bool,
}

/// Whether message `m` was written at or after `since`: its mess file
/// (the first file qmail-queue writes, which a repair never rewrites) has
/// that modification time; with no mess, any of its files has.
fn message_is_new(m: &qcommon::scan::ScannedMessage, since: Option<i64>) -> bool {
    let Some(since) = since else { return false };
    let newer = |f: &qcommon::scan::Found| f.stat.is_some_and(|s| s.mtime >= since);
    match m.file(qcommon::queue::Part::Mess) {
        Some(mess) => newer(mess),
        None => m.all_files().any(newer),
    }
}

/// Whether stray `s` was written at or after `since` and is not one of
/// the tools' own temporary names.
fn stray_is_new(s: &qcommon::scan::Stray, since: Option<i64>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(since) = since else { return false };
    let ours = s
        .path
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b".qfixq-") || n.as_bytes().starts_with(b".qtools-"));
    !ours && s.stat.is_some_and(|st| st.mtime >= since)
}
