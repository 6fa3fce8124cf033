//! What every tool's command line shares: how the queue is named, the
//! overrides for split and ids, the report header of decisions, and how a
//! tool ends: [`ToolExit`] (a tool's own exit statuses), [`say`] (the one
//! `tool: message` line on stderr), [`clap_exit`] (help and version exit 0,
//! a usage error the tool's usage status), [`output_done`] (a closed pipe
//! is success) and [`exit_code_into_process!`](crate::exit_code_into_process).
//! The library never exits; these helpers are for the binaries.

use std::io::Write as _;
use std::path::PathBuf;

use crate::layout::{Layout, LayoutOptions};
use crate::queue::Ids;

/// The options that say which queue and how it was built.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QueueArgs {
    /// The queue directory (default: QMAIL_HOME/queue).
    #[arg(long, value_name = "DIR", conflicts_with = "qmail_home")]
    pub queue: Option<PathBuf>,
    /// qmail's home; the queue is DIR/queue [default: /var/qmail].
    #[arg(long, value_name = "DIR", default_value = None)]
    pub qmail_home: Option<PathBuf>,
    /// conf-split qmail was built with (default: from qmail-showctl, else
    /// from the buckets on disk).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub split: Option<u32>,
    /// qmail's numeric ids as QMAILQ:QMAILS:QMAILR:QMAILGID (default: from
    /// qmail-showctl, else from the passwd and group files).
    #[arg(long, value_name = "Q:S:R:G", value_parser = parse_ids)]
    pub ids: Option<Ids>,
}

impl QueueArgs {
    /// The layout options these arguments give.
    pub fn layout_options(&self) -> LayoutOptions {
        LayoutOptions {
            queue: self.queue.clone(),
            qmail_home: self.qmail_home.clone(),
            split: self.split,
            ids: self.ids,
            run_showctl: true,
            new_queue: false,
        }
    }
}

/// Parses `Q:S:R:G` (uids of qmailq, qmails, qmailr; gid of qmail).
pub fn parse_ids(s: &str) -> Result<Ids, String> {
    let v: Vec<&str> = s.split(':').collect();
    if v.len() != 4 {
        return Err(format!("{s:?}: expected QMAILQ:QMAILS:QMAILR:QMAILGID, four numbers"));
    }
    let n = |x: &str| x.trim().parse::<u32>().map_err(|_| format!("{s:?}: {x:?} is not a number"));
    let ids = Ids { qmailq: n(v[0])?, qmails: n(v[1])?, qmailr: n(v[2])?, qmail_gid: n(v[3])? };
    ids.check().map_err(|e| format!("{s:?}: {e}"))?;
    Ok(ids)
}

/// The lines of the report header that describe the layout, as
/// `(label, value)`; values are escaped for a terminal.
pub fn layout_header(layout: &Layout) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let mut q = crate::error::escape_path(&layout.queue);
    if layout.queue_is_symlink {
        q.push_str(" (a symbolic link)");
    }
    v.push(("queue", q));
    v.push(("split", format!("{} ({})", layout.split.value, layout.source_text(&layout.split.source))));
    v.push((
        "ids",
        match &layout.ids {
            Ok(d) => format!(
                "qmailq={} qmails={} qmailr={} qmail gid={} ({})",
                d.value.qmailq,
                d.value.qmails,
                d.value.qmailr,
                d.value.qmail_gid,
                layout.source_text(&d.source)
            ),
            Err(e) => format!("unknown: {e}"),
        },
    ));
    v.push((
        "todo",
        format!(
            "{} ({})",
            if layout.big_todo.value { "big-todo (split)" } else { "flat" },
            layout.source_text(&layout.big_todo.source)
        ),
    ));
    v
}

/// A tool's exit statuses: each tool keeps its own enum and documented
/// numbers (docs/repair-policy.md, "Exit statuses"); this says which of
/// them the shared helpers below use.
pub trait ToolExit: Copy {
    /// The tool's name, the prefix of its messages.
    const TOOL: &'static str;
    /// Help or version printed, or the output's reader went away.
    const SUCCESS: Self;
    /// A bad command line.
    const USAGE: Self;
    /// The report could not be written.
    const OPERATIONAL: Self;
    /// The number the process exits with.
    fn code(self) -> u8;
}

/// Implements `From<$t> for std::process::ExitCode` through
/// [`ToolExit::code`], so a tool's `main` returns its own status.
#[macro_export]
macro_rules! exit_code_into_process {
    ($t:ty) => {
        impl From<$t> for std::process::ExitCode {
            fn from(c: $t) -> Self {
                std::process::ExitCode::from(<$t as $crate::cli::ToolExit>::code(c))
            }
        }
    };
}

/// The line [`say`] prints: `tool: message`, the message escaped for a
/// terminal (text escaped before, such as an [`Error`](crate::Error)'s
/// display, is left as it is).
pub fn said(tool: &str, msg: impl std::fmt::Display) -> String {
    format!("{tool}: {}", crate::error::escape_text(&msg.to_string()))
}

/// Prints `tool: message` once on standard error (the progress line, if
/// one is drawn, cleared around it). Errors writing there are ignored:
/// there is nowhere left to report them.
pub fn say(tool: &str, msg: impl std::fmt::Display) {
    let line = said(tool, msg);
    crate::progress::around_output(|| {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    });
}

/// The status for a command line clap refused: help and version (printed
/// here, on stdout) are success, anything else (printed on stderr) is
/// the tool's usage error.
pub fn clap_exit<E: ToolExit>(e: &clap::Error) -> E {
    let _ = e.print();
    if clap_is_success(e) {
        E::SUCCESS
    } else {
        E::USAGE
    }
}

/// True when clap "failed" only by printing help or the version.
pub fn clap_is_success(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// The status of a run whose report may have failed to be written: a
/// closed pipe (`tool | head -1`) is success, another error is said on
/// stderr and is operational.
pub fn output_done<E: ToolExit>(result: std::io::Result<E>) -> E {
    crate::progress::around_output(|| output_done_to(result, &mut std::io::stderr().lock()))
}

/// [`output_done`], saying the error on `err` (a tool that writes its
/// messages to a given stream).
pub fn output_done_to<E: ToolExit>(result: std::io::Result<E>, err: &mut dyn std::io::Write) -> E {
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => E::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "{}", said(E::TOOL, format_args!("cannot write the output: {e}")));
            E::OPERATIONAL
        }
    }
}

/// Caps glibc's malloc arenas at two. The scanner's threads allocate the
/// messages and the tool's main thread frees them; with one arena per
/// thread, freed memory stays spread over many arenas and the resident
/// size of a large run grows by tens of megabytes. Call it first thing in
/// `main`, before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; the tools call it
    // before they start any thread. Neither std nor nix wraps mallopt.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Use of the filesystem holding a path (statvfs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsUsage {
    /// Percentage of blocks used (of those available to root).
    pub blocks_pct: f64,
    /// Percentage of inodes used.
    pub inodes_pct: f64,
    /// Free bytes for an unprivileged user.
    pub avail_bytes: u64,
    /// Free inodes.
    pub free_inodes: u64,
}

/// The level at which a full filesystem is warned about.
pub const FULL_WARNING_PCT: f64 = 95.0;

/// statvfs of the filesystem holding `path`.
pub fn fs_usage(path: &std::path::Path) -> crate::Result<FsUsage> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| crate::Error::sys("statvfs", path, e))?;
    let pct = |used: f64, total: f64| if total > 0.0 { 100.0 * used / total } else { 0.0 };
    let blocks = s.blocks() as f64;
    let bfree = s.blocks_free() as f64;
    let bavail = s.blocks_available() as f64;
    // As df: used / (used + available to users).
    let used = blocks - bfree;
    let files = s.files() as f64;
    Ok(FsUsage {
        blocks_pct: pct(used, used + bavail),
        inodes_pct: pct(files - s.files_free() as f64, files),
        avail_bytes: s.blocks_available() as u64 * s.fragment_size() as u64,
        free_inodes: s.files_free() as u64,
    })
}

/// Makes a panic in any thread end the whole process at once, with one
/// line on standard error and exit status `code`, instead of unwinding one
/// thread while the others wait for it forever (with qmail-send's lock
/// held). Every change a tool makes is one whole step, so what a panic
/// leaves is a state that the same command, run again, finishes. For the
/// binaries' `main` only: the library never exits by itself.
pub fn exit_on_panic(tool: &'static str, code: i32) {
    std::panic::set_hook(Box::new(move |info| {
        let what = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
            (Some(s), _) => (*s).to_string(),
            (None, Some(s)) => s.clone(),
            (None, None) => "unknown panic".to_string(),
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("a worker").to_string();
        eprintln!(
            "{tool}: internal error in thread {thread}{at}: {}; this is a bug, please report it. \
             Every change made so far was a whole step: run the same command again to finish \
             (a read-only run changed nothing).",
            crate::error::Escaped(what.as_bytes())
        );
        std::process::exit(code);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse() {
        assert_eq!(parse_ids("1:2:3:4").unwrap(), Ids { qmailq: 1, qmails: 2, qmailr: 3, qmail_gid: 4 });
        assert!(parse_ids("1:2:3").is_err());
        assert!(parse_ids("1:2:x:4").unwrap_err().contains("\"x\""));
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Code {
        Fine,
        Bad,
        Broken,
    }

    impl ToolExit for Code {
        const TOOL: &'static str = "qtest";
        const SUCCESS: Self = Code::Fine;
        const USAGE: Self = Code::Bad;
        const OPERATIONAL: Self = Code::Broken;
        fn code(self) -> u8 {
            match self {
                Code::Fine => 0,
                Code::Bad => 16,
                Code::Broken => 8,
            }
        }
    }

    crate::exit_code_into_process!(Code);

    #[derive(Debug, clap::Parser)]
    #[command(name = "qtest", version = "1")]
    struct Opts {
        #[arg(long)]
        n: u32,
    }

    #[test]
    fn clap_errors_map_to_statuses() {
        use clap::Parser;
        let e = Opts::try_parse_from(["qtest", "--version"]).unwrap_err();
        assert!(clap_is_success(&e));
        let e = Opts::try_parse_from(["qtest", "--help"]).unwrap_err();
        assert!(clap_is_success(&e));
        let e = Opts::try_parse_from(["qtest", "--n", "x"]).unwrap_err();
        assert!(!clap_is_success(&e));
        let e = Opts::try_parse_from(["qtest", "--bogus"]).unwrap_err();
        assert!(!clap_is_success(&e));
        assert_eq!(std::process::ExitCode::from(Code::Bad), std::process::ExitCode::from(16));
    }

    #[test]
    fn closed_pipe_is_success_other_errors_operational() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(output_done::<Code>(Err(pipe)), Code::Fine);
        assert_eq!(output_done::<Code>(Err(std::io::Error::other("disk full"))), Code::Broken);
        assert_eq!(output_done(Ok(Code::Bad)), Code::Bad);
        let mut err = Vec::new();
        let full = std::io::Error::other("disk \x1b full");
        assert_eq!(output_done_to::<Code>(Err(full), &mut err), Code::Broken);
        assert_eq!(String::from_utf8(err).unwrap(), "qtest: cannot write the output: disk \\x1b full\n");
        let mut err = Vec::new();
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(output_done_to::<Code>(Err(pipe), &mut err), Code::Fine);
        assert!(err.is_empty());
    }

    #[test]
    fn said_escapes_once() {
        assert_eq!(said("qtest", "open /q\x1b[1m: no"), "qtest: open /q\\x1b[1m: no");
        let e = crate::Error::sys("open", "/q\x1b", nix::errno::Errno::ENOENT);
        assert!(said("qtest", &e).starts_with("qtest: open /q\\x1b: "));
        assert!(!said("qtest", &e).contains("\\\\"));
    }

    #[test]
    fn usage_of_tmp() {
        let u = fs_usage(std::path::Path::new("/")).unwrap();
        assert!(u.blocks_pct >= 0.0 && u.blocks_pct <= 100.0);
        assert!(u.inodes_pct >= 0.0 && u.inodes_pct <= 100.0);
    }
}
