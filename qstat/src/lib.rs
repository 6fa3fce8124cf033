//! `qstat`: counts the messages of a qmail queue, as qmail-qstat does and
//! faster, and optionally breaks the queue down (`--detail`), lists the
//! top senders and recipient domains (`--top`), prints JSON, Prometheus
//! textfile-collector metrics, or acts as a Nagios/Icinga plugin
//! (`--check`), once or every few seconds (`--watch`).
//!
//! qstat only reads the queue (docs/repair-policy.md, rule 6): no
//! byte, mode, owner or time stamp changes; it works while qmail-send
//! runs. The binary (`main.rs`) only calls [`run`].
//!
//! Modules: [`cli`] (options), [`count`] (qmail-qstat's numbers, with
//! [`words`] for its `wc -w` and [`listing`] for atime-free listings),
//! [`detail`] (the full scan, with [`top`] and [`lifetime`]), [`report`]
//! (one look at the queue), the outputs [`text`], [`json`], [`prom`],
//! [`check`], [`clock`] for time, [`exit`] for exit statuses; [`list`]
//! (`--list`) and [`show`] (`--show`), which read messages one by one with
//! [`message`].

pub mod check;
pub mod cli;
pub mod clock;
pub mod count;
pub mod detail;
pub mod exit;
pub mod json;
pub mod lifetime;
pub mod list;
pub mod listing;
pub mod message;
pub mod prom;
pub mod report;
pub mod show;
pub mod structure;
pub mod text;
pub mod top;
pub mod words;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;

pub use cli::{command, Cli};
pub use exit::ExitCode;

use crate::report::{Fatal, Report, Request};
use crate::words::WordRules;

/// Runs qstat with these arguments (the first is the program name),
/// printing to stdout and stderr.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    qcommon::cli::limit_malloc_arenas();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // In --check mode even a bad command line gets the plugin's UNKNOWN.
    let check_mode = args.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--check");
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e, check_mode),
    };
    let words = WordRules::from_environment();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut err = io::stderr();
    execute(&cli, words, &mut out, &mut err)
}

fn usage_error(e: &clap::Error, check_mode: bool) -> ExitCode {
    if qcommon::cli::clap_is_success(e) || !check_mode {
        return qcommon::cli::clap_exit(e);
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad options");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let _ = io::stdout().write_all(check::unknown(&format!("usage: {first}")).as_bytes());
    ExitCode::Unknown
}

/// Threads for the count: both cores at least, more on a bigger machine
/// (a cold disk likes more reads in flight), at most 4.
fn count_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

/// Runs a parsed command line, writing to `out` and `err`.
pub fn execute(cli: &Cli, words: WordRules, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let thresholds = cli.thresholds();
    if cli.check {
        if let Err(why) = thresholds.validate() {
            let _ = out.write_all(check::unknown(&format!("usage: {why}")).as_bytes());
            let _ = out.flush();
            return ExitCode::Unknown;
        }
    }
    let req = Request {
        layout: cli.queue.layout_options(),
        detail: cli.detail || (cli.check && thresholds.need_scan()),
        structure: cli.check,
        top: cli.top.map(|n| n as usize),
        words,
        threads: count_threads(),
        scan_threads: cli.threads as usize,
        progress: qcommon::progress::Progress::stderr("qstat"),
    };
    if cli.list || cli.show.is_some() {
        return finish(messages(cli, out, err), err);
    }
    let result = match cli.watch {
        Some(interval) => watch(cli, &req, interval, out, err),
        None => emit(cli, report::take(&req, clock::now()), out, err),
    };
    // A closed pipe (`qstat | head -1`) is not an error.
    finish(result, err)
}

/// `--list` or `--show`.
fn messages(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<ExitCode> {
    if let Some(number) = cli.show {
        let req = show::ShowRequest {
            layout: cli.queue.layout_options(),
            number,
            body: cli.body,
            raw: cli.raw,
            json: cli.json,
        };
        return show::run(&req, out, err);
    }
    let mut numbers = cli.numbers.clone();
    numbers.sort_unstable();
    numbers.dedup();
    let selection = list::Selection {
        numbers,
        sender: cli.sender.clone(),
        recipient: cli.recipient.clone(),
        headers: cli.header.clone(),
        older_than: cli.older_than,
        younger_than: cli.younger_than,
    };
    let req = list::ListRequest {
        layout: cli.queue.layout_options(),
        selection,
        json: cli.json,
        threads: cli.threads as usize,
        now: clock::now(),
    };
    list::run(&req, out, err)
}

/// The exit status of a run whose output may have failed.
fn finish(result: io::Result<ExitCode>, err: &mut dyn Write) -> ExitCode {
    // A closed pipe (`qstat -l | head -1`) is not an error.
    qcommon::cli::output_done_to(result, err)
}

/// Prints one look at the queue in the form asked; an error writing `out`
/// is returned, everything else decides the exit status.
fn emit(cli: &Cli, res: Result<Report, Fatal>, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<ExitCode> {
    let r = match res {
        Ok(r) => r,
        Err(f) => {
            if cli.check {
                out.write_all(check::unknown(&f.0).as_bytes())?;
                out.flush()?;
                return Ok(ExitCode::Unknown);
            }
            let _ = writeln!(err, "{}", qcommon::cli::said("qstat", &f));
            // The textfile says the run failed, instead of going stale.
            if let Some(path) = &cli.prometheus {
                let label = prom::queue_label(cli.queue_name.as_deref(), &queue_path(cli));
                write_prometheus(path, |prev| prom::render_failure(&label, clock::now(), prev), out, err)?;
            }
            return Ok(ExitCode::Operational);
        }
    };
    for w in &r.warnings {
        let _ = writeln!(err, "{}", qcommon::cli::said("qstat", format_args!("warning: {w}")));
    }
    for e in &r.errors {
        let _ = writeln!(err, "{}", qcommon::cli::said("qstat", e));
    }
    let mut code = if r.complete() { ExitCode::Ok } else { ExitCode::Incomplete };
    if cli.check {
        let (line, state) = check::render(&r, &cli.thresholds());
        out.write_all(line.as_bytes())?;
        code = state;
    } else if cli.json {
        out.write_all(json::render(&r).as_bytes())?;
    } else if let Some(path) = &cli.prometheus {
        let label = prom::queue_label(cli.queue_name.as_deref(), &r.queue);
        if !write_prometheus(path, |prev| prom::render(&r, &label, prev), out, err)? {
            code = ExitCode::Operational;
        }
    } else {
        text::write_report(out, &r)?;
    }
    out.flush()?;
    Ok(code)
}

/// The queue's path as the options name it (for a run that could not
/// open it), as the session would open it.
fn queue_path(cli: &Cli) -> std::path::PathBuf {
    qcommon::layout::queue_path(&cli.queue.layout_options())
}

/// Writes the textfile `render` makes (given the last success recorded
/// in the file it replaces) to stdout (`-`) or atomically to `path`.
/// False when the file could not be written (the error is on `err`).
fn write_prometheus(
    path: &Path,
    render: impl FnOnce(Option<i64>) -> String,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    if path == Path::new("-") {
        out.write_all(render(None).as_bytes())?;
        return Ok(true);
    }
    let text = render(prom::previous_success(path));
    if let Err(e) = prom::write_atomically(path, &text) {
        let _ = writeln!(err, "qstat: cannot write {}: {e}", qcommon::error::escape_path(path));
        return Ok(false);
    }
    Ok(true)
}

/// `--watch`: a look every `interval`, until killed, or until nothing is
/// left unpreprocessed with `--until-preprocessed`.
fn watch(
    cli: &Cli,
    req: &Request,
    interval: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<ExitCode> {
    let stamp = !cli.json && cli.prometheus.is_none();
    loop {
        let started = Instant::now();
        let now = clock::now();
        let res = report::take(req, now);
        let done = cli.until_preprocessed && matches!(&res, Ok(r) if r.complete() && r.counts.unpreprocessed == 0);
        if stamp {
            writeln!(out, "{}", clock::local_stamp(now))?;
        }
        emit(cli, res, out, err)?;
        if done {
            return Ok(ExitCode::Ok);
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
