//! The command line: this module owns the options, their help text and
//! their parsing. Regular expressions, durations and header filters are
//! compiled here, once; a bad one is a usage error that names the option.

use clap::FromArgMatches as _;
use qcommon::cli::QueueArgs;

use crate::duration;

const ABOUT: &str = "The queue's remover: remove messages (by default the null-sender bounces) from a qmail queue, or let qmail-send give up on them";

const LONG_ABOUT: &str = "\
qkillns is the queue's remover. What it removes: message numbers given as \
arguments select exactly those messages; --all selects every message; with \
neither, the default is the messages whose envelope sender is null (bounces): \
`F` followed by nothing in info/, or in the todo/ envelope of a message not \
yet preprocessed. --double adds double bounces (sender #@[]) to the default. \
--sender RE selects by sender instead of the null sender (and narrows numbers \
or --all). --recipient, --header, --older-than and --younger-than narrow the \
selection (all must match): `qkillns --all --sender '@flood\\.example$'` \
removes everything from that sender, `qkillns --all --older-than 5d \
--recipient '@slow\\.example$'` everything older than 5 days to that domain. \
A number that is not in the queue, that names only stray files, or whose \
message has no envelope yet (being queued, or a lone mess) is reported and \
left alone (exit 8). Messages that qfixq salvaged with an invented null \
sender (recorded in queue/lost+found/salvaged) are not bounces: the default \
keeps and counts them, unless --include-salvaged; numbers and --all take them.

Default: removes the selected messages. qmail-send must be stopped: qkillns \
takes qmail-send's lock (queue/lock/sendmutex) for the whole run and refuses \
(exit 8) while qmail-send holds it, or while another process works in the \
queue (unless --force). Each message's files are removed in the order todo, \
intd, bounce, local, remote, info, mess, so that after a crash a rerun finishes \
the job, leaving at worst lone mess files, which qmail-send deletes after 36 hours \
and `qfixq live` quarantines.

--expire works beside a running qmail-send: it backdates each selected \
preprocessed message's info time stamp past control/queuelifetime and sends \
qmail-send SIGALRM, so that qmail-send gives up on them itself. Each \
null-sender message it gives up on becomes a double bounce to the postmaster. \
A selected message not yet preprocessed is skipped (listed as `skipped (todo)`), \
and so is a damaged one, whose files fit no state of the queue (an info without \
a mess, an intd beside an info: listed as `skipped (damaged)`, for qfixq to repair).

-n lists what would be done and changes nothing.";

const AFTER_HELP: &str = "\
Durations: 36h, 2d, 90m, 30s, 1w, or combined: 1d12h.
Exit status: 0 done (also when nothing matched), 4 done, but part of the queue \
could not be read: a directory, or a message whose envelope or text is \
unreadable or invalid, reported on stderr and left alone (as qfixq does), \
8 operational error \
(qmail-send running, queue unreadable, a step failed, a message number given is \
not a message of the queue), 16 usage error.";

/// A header filter: `Name: RE`.
#[derive(Debug, Clone)]
pub struct HeaderFilter {
    /// The header name, matched without regard to case.
    pub name: String,
    /// The expression, matched against the decoded, unfolded value.
    pub regex: regex::Regex,
}

/// qkillns's options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "qkillns",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("QTOOLS_GIT_REV"), ")"),
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Args {
    /// Which queue.
    #[command(flatten)]
    pub queue: QueueArgs,

    /// List what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Message numbers: select exactly these messages (narrowed by the
    /// filters) instead of the null-sender bounces.
    #[arg(value_name = "N", value_parser = parse_number, conflicts_with = "all")]
    pub numbers: Vec<u64>,

    /// Select every message (narrowed by the filters) instead of the
    /// null-sender bounces.
    #[arg(long)]
    pub all: bool,

    /// Also select double bounces (envelope sender #@[]).
    #[arg(long, conflicts_with_all = ["sender", "all", "numbers"])]
    pub double: bool,

    /// Select by envelope sender instead of the null sender (regular
    /// expression over the sender's bytes; the null sender is the empty
    /// string, so '^$' selects it).
    #[arg(long, value_name = "RE", value_parser = parse_bytes_regex)]
    pub sender: Option<regex::bytes::Regex>,

    /// Only messages with at least one recipient matching RE (every
    /// recipient counts, delivered or not).
    #[arg(long, value_name = "RE", value_parser = parse_bytes_regex)]
    pub recipient: Option<regex::bytes::Regex>,

    /// Only messages with a header NAME whose decoded value matches RE, as
    /// in 'Subject: ^failure' (name without regard to case; any occurrence
    /// of the header may match). May be given more than once: all must match.
    #[arg(long, value_name = "NAME: RE", value_parser = parse_header_filter)]
    pub header: Vec<HeaderFilter>,

    /// Only messages at least this old (age from the info time stamp, or
    /// from the mess time stamp before preprocessing).
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub older_than: Option<u64>,

    /// Only messages younger than this.
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub younger_than: Option<u64>,

    /// Also select salvaged messages: those qfixq wrote with the null
    /// sender because their sender was lost (recorded in
    /// queue/lost+found/salvaged). Without it they are kept: they are not
    /// bounces, and a failure of theirs goes to the postmaster.
    #[arg(long)]
    pub include_salvaged: bool,

    /// Beside a running qmail-send: backdate the selected messages past
    /// queuelifetime and send qmail-send SIGALRM, instead of removing.
    #[arg(long)]
    pub expire: bool,

    /// With --expire: the qmail-send to signal (default: the holder of
    /// lock/sendmutex, else a qmail-send working in the queue).
    #[arg(long, value_name = "PID", requires = "expire", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,

    /// Remove even while another process works in the queue (never while
    /// qmail-send holds its lock).
    #[arg(long, conflicts_with = "expire")]
    pub force: bool,

    /// Print one JSON document instead of text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print the summary only.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// List every message (by default the text listing shows the first
    /// few, then counts the rest; failures are always listed) and print
    /// every step (unlink, set time) under its message.
    #[arg(short = 'v', long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Threads that stat and read message files (on a cold cache each is
    /// a read in flight).
    #[arg(long, value_name = "N", default_value_t = qcommon::scan::DEFAULT_THREADS as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
}

fn parse_number(s: &str) -> Result<u64, String> {
    qcommon::safe_fs::parse_number(s.as_bytes())
        .ok_or_else(|| format!("{s:?} is not a message number (digits, no leading zero)"))
}

pub fn parse_bytes_regex(s: &str) -> Result<regex::bytes::Regex, String> {
    // Unicode off: an address is bytes, and `.` must match any byte.
    regex::bytes::RegexBuilder::new(s).unicode(false).build().map_err(|e| one_line(&e.to_string()))
}

pub fn parse_header_filter(s: &str) -> Result<HeaderFilter, String> {
    let Some((name, re)) = s.split_once(':') else {
        return Err(format!("{s:?}: expected 'Name: RE', e.g. 'Subject: ^failure'"));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!("{s:?}: {name:?} is not a header name"));
    }
    let re = re.trim_start_matches([' ', '\t']);
    let regex = regex::Regex::new(re).map_err(|e| one_line(&e.to_string()))?;
    Ok(HeaderFilter { name: name.to_string(), regex })
}

fn one_line(s: &str) -> String {
    s.split('\n').map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ")
}

/// The clap command: the single source of `--help`, man pages and
/// completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// What parsing the command line gave.
#[derive(Debug)]
pub enum Parsed {
    /// Options to run with.
    Run(Box<Args>),
    /// Help or version was printed (or failed to print): exit with this.
    Exit(crate::exit::ExitCode),
}

/// Parses `argv` (with the program name first). Help and version are
/// printed here; a usage error is printed to stderr and gives exit 16.
pub fn parse<I, T>(argv: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use crate::exit::ExitCode;
    match command().try_get_matches_from(argv) {
        Ok(m) => match Args::from_arg_matches(&m) {
            Ok(a) => Parsed::Run(Box::new(a)),
            Err(e) => Parsed::Exit(qcommon::cli::clap_exit::<ExitCode>(&e)),
        },
        Err(e) => Parsed::Exit(qcommon::cli::clap_exit::<ExitCode>(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, clap::Error> {
        let m = command().try_get_matches_from(std::iter::once("qkillns").chain(v.iter().copied()))?;
        Args::from_arg_matches(&m)
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn header_filters_parse() {
        let a = args(&["--header", "Subject: ^failure", "--header", "x-mailer:bulk"]).unwrap();
        assert_eq!(a.header.len(), 2);
        assert_eq!(a.header[0].name, "Subject");
        assert!(a.header[0].regex.is_match("failure notice"));
        assert!(!a.header[0].regex.is_match(" failure"));
        assert_eq!(a.header[1].name, "x-mailer");
        assert!(args(&["--header", "Subject ^failure"]).is_err());
        assert!(args(&["--header", ": x"]).is_err());
        assert!(args(&["--header", "Sub ject: x"]).is_err());
        assert!(args(&["--header", "Subject: ("]).is_err());
    }

    #[test]
    fn bad_values_name_their_option() {
        let e = args(&["--sender", "a("]).unwrap_err().to_string();
        assert!(e.contains("--sender"), "{e}");
        let e = args(&["--older-than", "7"]).unwrap_err().to_string();
        assert!(e.contains("--older-than"), "{e}");
        let e = args(&["--recipient", "[z-a]"]).unwrap_err().to_string();
        assert!(e.contains("--recipient"), "{e}");
    }

    #[test]
    fn conflicts() {
        assert!(args(&["--double", "--sender", "x"]).is_err());
        assert!(args(&["--pid", "5"]).is_err());
        assert!(args(&["--expire", "--pid", "5"]).is_ok());
        assert!(args(&["--expire", "--force"]).is_err());
        assert!(args(&["--json", "-q"]).is_err());
        assert!(args(&["--pid", "0", "--expire"]).is_err());
        assert!(args(&["--all", "12"]).is_err());
        assert!(args(&["--double", "--all"]).is_err());
        assert!(args(&["--double", "12"]).is_err());
        assert!(args(&["012"]).is_err());
        assert!(args(&["x1"]).is_err());
        assert_eq!(args(&["12", "34", "--sender", "x"]).unwrap().numbers, vec![12, 34]);
    }

    #[test]
    fn address_regexes_work_on_bytes() {
        let a = args(&["--sender", "^.$"]).unwrap();
        assert!(a.sender.unwrap().is_match(b"\xff"));
    }
}
