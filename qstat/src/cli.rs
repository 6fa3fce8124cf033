//! The command line: this module owns qstat's options and their help text
//! (the single source of `--help`, and later of the man page and shell
//! completions).

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use qcommon::cli::QueueArgs;

use crate::check::Threshold;

const ABOUT: &str = "Count the messages of a qmail queue, as qmail-qstat does, and more";

const LONG_ABOUT: &str = "\
Count the messages of a qmail queue. Without options, the output is qmail-qstat's, byte for byte:

  messages in queue: N
  messages in queue but not yet preprocessed: M

counted as qmail-qstat counts (entries below the buckets of mess/, and in todo/), but faster and without \
touching a file. qstat only reads: it never changes a byte, a mode, an owner or a time stamp, it needs no \
qmail program, and it may run while qmail-send works (files that vanish while they are counted are no error).

--list (-l) lists the messages themselves, oldest first, and --show N shows one message, as qmail-qread and \
qmHandle do, complete: they read the same way.";

const AFTER_HELP: &str = "\
Exit status: 0 done; 4 printed, but part of the queue could not be read (the errors are on stderr, the \
counts may be low); 8 the queue is unreadable or not a qmail queue, or its split is undecidable for \
--detail/--top (give --split); 16 usage error.
--list: 4 also when a message number given is not in the queue. --show: 8 when message N is not in the \
queue (or only entries that are not message files have its name), 4 when one of its files could not be read.
With --check (a Nagios/Icinga plugin): 0 OK, 1 WARNING (a threshold; damaged messages, with --detail), \
2 CRITICAL (a threshold; damage to the queue's structure: missing buckets or lock files, wrong owners), \
3 UNKNOWN (queue unreadable, part of it unreadable, bad options or thresholds that do not fit together), \
and one line on stdout.";

/// qstat's options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "qstat",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("QTOOLS_GIT_REV"), ")"),
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Which queue.
    #[command(flatten)]
    pub queue: QueueArgs,

    /// Break the queue down by a full scan: preprocessed messages, recipients still to do (local, remote),
    /// pending bounces, null-sender and double-bounce messages, the oldest message, messages past
    /// control/queuelifetime, damaged messages.
    #[arg(long)]
    pub detail: bool,

    /// Threads that stat and read message files for --detail, --top and --list
    /// (on a cold cache each is a read in flight).
    #[arg(long, value_name = "N", default_value_t = qcommon::scan::DEFAULT_THREADS as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// List the N most frequent envelope senders and recipient domains (where a flood comes from).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    /// Print one JSON document (one line) with everything computed; with --list, one object per message,
    /// one per line, as the listing goes; with --show, the message as one object (docs/json.md).
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,

    /// Print the figures in Prometheus text format (metrics qmail_queue_*), for node_exporter's textfile
    /// collector; with FILE, write it there atomically (a temporary file, then a rename) [default: standard
    /// output].
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub prometheus: Option<PathBuf>,

    /// Act as a Nagios/Icinga plugin: one line with perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[arg(long, conflicts_with_all = ["json", "prometheus", "watch", "top"])]
    pub check: bool,

    /// --check: WARNING when the number of messages in queue is outside RANGE ([@]start:end; N means
    /// 0:N, i.e. above N).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub warning: Option<Threshold>,

    /// --check: CRITICAL when the number of messages in queue is outside RANGE.
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub critical: Option<Threshold>,

    /// --check: WARNING when the number of messages not yet preprocessed is outside RANGE.
    #[arg(
        long,
        value_name = "RANGE",
        requires = "check",
        allow_hyphen_values = true,
        value_parser = Threshold::parse,
        visible_alias = "warning-unprocessed"
    )]
    pub warning_unpreprocessed: Option<Threshold>,

    /// --check: CRITICAL when the number of messages not yet preprocessed is outside RANGE.
    #[arg(
        long,
        value_name = "RANGE",
        requires = "check",
        allow_hyphen_values = true,
        value_parser = Threshold::parse,
        visible_alias = "critical-unprocessed"
    )]
    pub critical_unpreprocessed: Option<Threshold>,

    /// --check: WARNING when the oldest message's age in seconds is outside RANGE (scans the queue, as
    /// --detail).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub warning_age: Option<Threshold>,

    /// --check: CRITICAL when the oldest message's age in seconds is outside RANGE (scans the queue).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub critical_age: Option<Threshold>,

    /// --check: WARNING when the number of messages past queuelifetime is outside RANGE (scans the queue).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub warning_expired: Option<Threshold>,

    /// --check: CRITICAL when the number of messages past queuelifetime is outside RANGE (scans the queue).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub critical_expired: Option<Threshold>,

    /// --check: WARNING when the number of damaged messages is outside RANGE (scans the queue; with
    /// --detail and no RANGE given: 0, i.e. any damaged message warns).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub warning_damaged: Option<Threshold>,

    /// --check: CRITICAL when the number of damaged messages is outside RANGE (scans the queue).
    #[arg(long, value_name = "RANGE", requires = "check", allow_hyphen_values = true, value_parser = Threshold::parse)]
    pub critical_damaged: Option<Threshold>,

    /// --prometheus: the value of the label queue on every metric (default: the queue's path), to tell
    /// two queues on one host apart.
    #[arg(long, value_name = "NAME", requires = "prometheus")]
    pub queue_name: Option<String>,

    /// List the messages, oldest first: per message its birth time (ISO 8601, UTC), number, size, stage
    /// (preprocessed, unpreprocessed, being_queued, leftovers, damaged) and sender, then each recipient with its
    /// list (local, remote, or todo before preprocessing) and state (pending or done), and what is damaged.
    /// Selects with --sender, --recipient, --header, --older-than, --younger-than and message numbers (all
    /// must match); --json gives one object per line. Reads only; works beside a running qmail-send.
    #[arg(short = 'l', long, conflicts_with_all = ["detail", "top", "prometheus", "check", "watch"])]
    pub list: bool,

    /// Show message N: its envelope (sender, recipients and their states, birth time, bucket), its damage,
    /// its files with owners and modes, and its header, control characters escaped (with --json: one JSON
    /// document, the header and body as byte strings).
    #[arg(long, value_name = "N", conflicts_with_all = ["list", "detail", "top", "prometheus", "check", "watch"])]
    pub show: Option<u64>,

    /// With --show: the body too.
    #[arg(long, requires = "show")]
    pub body: bool,

    /// With --show: write the message's bytes as they are (header and body, nothing else), for piping
    /// into a mail reader.
    #[arg(long, requires = "show", conflicts_with_all = ["body", "json"])]
    pub raw: bool,

    /// --list: only messages whose envelope sender matches RE (a regular expression over the sender's
    /// bytes; the null sender is the empty string, so '^$' selects bounces; a salvaged message, whose
    /// sender was lost, never matches).
    #[arg(long, value_name = "RE", requires = "list", value_parser = qkillns::args::parse_bytes_regex)]
    pub sender: Option<regex::bytes::Regex>,

    /// --list: only messages with at least one recipient matching RE (delivered or not).
    #[arg(long, value_name = "RE", requires = "list", value_parser = qkillns::args::parse_bytes_regex)]
    pub recipient: Option<regex::bytes::Regex>,

    /// --list: only messages with a header NAME whose decoded value matches RE, as in 'Subject: ^failure'
    /// (name without regard to case). May be given more than once: all must match.
    #[arg(long, value_name = "NAME: RE", requires = "list", value_parser = qkillns::args::parse_header_filter)]
    pub header: Vec<qkillns::args::HeaderFilter>,

    /// --list: only messages at least this old (36h, 2d, 90m, 30s, 1w, 1d12h; age from the info time
    /// stamp, or from the mess time stamp before preprocessing).
    #[arg(long, value_name = "DUR", requires = "list", value_parser = qkillns::duration::parse)]
    pub older_than: Option<u64>,

    /// --list: only messages younger than this.
    #[arg(long, value_name = "DUR", requires = "list", value_parser = qkillns::duration::parse)]
    pub younger_than: Option<u64>,

    /// --list: only these messages (by number).
    #[arg(value_name = "NUMBER", requires = "list")]
    pub numbers: Vec<u64>,

    /// Print again every SECS seconds (fractions allowed), each time after a line with the local time.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub watch: Option<Duration>,

    /// With --watch: exit 0 as soon as no message is left unpreprocessed (todo is empty).
    #[arg(long, requires = "watch")]
    pub until_preprocessed: bool,
}

impl Cli {
    /// The thresholds of `--check`.
    pub fn thresholds(&self) -> crate::check::Thresholds {
        crate::check::Thresholds {
            warning: self.warning.clone(),
            critical: self.critical.clone(),
            warning_unpreprocessed: self.warning_unpreprocessed.clone(),
            critical_unpreprocessed: self.critical_unpreprocessed.clone(),
            warning_age: self.warning_age.clone(),
            critical_age: self.critical_age.clone(),
            warning_expired: self.warning_expired.clone(),
            critical_expired: self.critical_expired.clone(),
            warning_damaged: self.warning_damaged.clone(),
            critical_damaged: self.critical_damaged.clone(),
        }
    }
}

/// Parses a positive number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0 * 366.0) {
        return Err(format!("{s:?}: the interval must be above 0 seconds (and at most a year)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The clap command (for `--help`, man pages and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("qstat").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn options() {
        let c = parse(&["--queue", "/q", "--detail", "--top", "5", "--json"]).unwrap();
        assert_eq!(c.queue.queue.as_deref(), Some(std::path::Path::new("/q")));
        assert!(c.detail && c.json);
        assert_eq!(c.top, Some(5));
        let c = parse(&["--prometheus"]).unwrap();
        assert_eq!(c.prometheus.as_deref(), Some(std::path::Path::new("-")));
        let c = parse(&["--prometheus", "/tmp/x.prom", "--detail"]).unwrap();
        assert_eq!(c.prometheus.as_deref(), Some(std::path::Path::new("/tmp/x.prom")));
        let c = parse(&["--check", "--warning", "10", "--critical", "@-5:20", "--warning-unprocessed", "3"]).unwrap();
        assert_eq!(c.critical.unwrap().text(), "@-5:20");
        assert_eq!(c.warning_unpreprocessed.unwrap().text(), "3");
        let c = parse(&["--watch", "0.25", "--until-preprocessed"]).unwrap();
        assert_eq!(c.watch, Some(Duration::from_millis(250)));
    }

    #[test]
    fn bad_combinations() {
        assert!(parse(&["--json", "--prometheus"]).is_err());
        assert!(parse(&["--check", "--json"]).is_err());
        assert!(parse(&["--check", "--watch", "1"]).is_err());
        assert!(parse(&["--warning", "1"]).is_err());
        assert!(parse(&["--until-preprocessed"]).is_err());
        assert!(parse(&["--watch", "0"]).is_err());
        assert!(parse(&["--watch", "-1"]).is_err());
        assert!(parse(&["--top", "0"]).is_err());
        assert!(parse(&["--check", "--warning", "x"]).is_err());
        assert!(parse(&["--queue", "/a", "--qmail-home", "/b"]).is_err());
        assert!(parse(&["--show", "5", "--raw", "--json"]).is_err());
        assert!(parse(&["--show", "5", "--prometheus"]).is_err());
    }

    #[test]
    fn show_takes_json() {
        let c = parse(&["--show", "5", "--json", "--body"]).unwrap();
        assert_eq!((c.show, c.json, c.body), (Some(5), true, true));
    }
}
