//! What a man page says beyond the clap command: exit statuses, the
//! environment, files, notes, examples and related pages.
//!
//! Exit statuses come from each tool's `ExitCode` enum: the numbers from
//! its `code()`, and the text from an exhaustive `match` here, so a new
//! status does not build until it is documented.

/// The manual section: qmail's administration programs are in section 8.
pub const SECTION: &str = "8";

/// One tool's page.
#[derive(Debug)]
pub struct Page {
    /// The program's name.
    pub name: &'static str,
    /// Its clap command.
    pub command: fn() -> clap::Command,
    /// (status, meaning), in increasing order.
    pub exit: Vec<(u8, &'static str)>,
    /// (variable, what it does).
    pub environment: Vec<(&'static str, &'static str)>,
    /// (path, what it is).
    pub files: Vec<(&'static str, &'static str)>,
    /// Paragraphs of the NOTES section.
    pub notes: Vec<&'static str>,
    /// The operands at the end of the synopsis, as words (a leading `*`
    /// makes a word bold); `None` lists the command's positionals.
    pub operands: Option<&'static [&'static str]>,
    /// (what it does, command lines).
    pub examples: Vec<(&'static str, &'static [&'static str])>,
    /// (page, section).
    pub see_also: Vec<(&'static str, &'static str)>,
    /// (mode words, what they do): the MODES section, for a tool whose
    /// operands are mode words (they are left out of OPTIONS).
    pub modes: Vec<(&'static str, &'static str)>,
}

/// The pages of the three tools.
pub fn all() -> Vec<Page> {
    vec![qfixq(), qstat(), qkillns()]
}

const QUEUE: (&str, &str) = (
    "/var/qmail/queue",
    "The queue (QMAIL_HOME/queue; QMAIL_HOME is /var/qmail unless --qmail-home or --queue says otherwise). \
     It may be a symbolic link to another disk; no link inside it is ever followed.",
);
const SENDMUTEX: (&str, &str) = (
    "/var/qmail/queue/lock/sendmutex",
    "qmail-send's lock. qmail-send holds it while it runs; a tool that changes the queue takes it too and \
     keeps it to the end, so qmail-send cannot start underneath it.",
);
const SHOWCTL: (&str, &str) = (
    "/var/qmail/bin/qmail-showctl",
    "Run (with a time limit) to learn the conf-split and the numeric ids qmail was built with, unless \
     --split and --ids are given.",
);
const PASSWD: (&str, &str) = (
    "/etc/passwd, /etc/group",
    "Where the ids of qmailq, qmails, qmailr and group qmail are looked up when qmail-showctl cannot tell.",
);
const QUEUELIFETIME: (&str, &str) = (
    "/var/qmail/control/queuelifetime",
    "How long qmail-send keeps trying a message, in seconds (default 604800, one week).",
);

const SEE_ALSO_COMMON: [(&str, &str); 4] =
    [("qmail-qstat", "8"), ("qmail-qread", "8"), ("qmail-send", "8"), ("qmail-queue", "8")];

fn see_also(own: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = own.to_vec();
    v.extend(SEE_ALSO_COMMON);
    v
}

fn qfixq() -> Page {
    use qfixq::ExitCode as E;
    let exit = [E::Clean, E::Fixed, E::Unfixed, E::Operational, E::Usage, E::Interrupted]
        .into_iter()
        .map(|c| {
            (
                c.code(),
                match c {
                    E::Clean => "Nothing wrong: the queue is healthy (a live run on a healthy queue changes nothing).",
                    E::Fixed => "Problems were found and all of them fixed (live mode).",
                    E::Unfixed => {
                        "Problems are left unfixed: every check that finds any (a check changes nothing), or a live \
                         run that could not fix everything (each failure is on standard error with its path and \
                         errno), or a live run whose second check still found something (another program is \
                         writing to the queue). Part of the queue that could not be read is such a problem: \
                         qstat and qkillns exit 4 for it too."
                    }
                    E::Operational => {
                        "Operational error: the queue is unreadable, qmail-send is running (it holds \
                         lock/sendmutex), a process works in the queue (without --force), or the ids or the split \
                         cannot be decided (give --ids or --split). In each of these cases qfixq stops before \
                         changing anything."
                    }
                    E::Usage => "Usage error: a bad option or mode word.",
                    E::Interrupted => {
                        "A live run was interrupted by SIGINT, SIGTERM or SIGHUP: it stopped between two steps. \
                         Run the same command again: it finishes the job."
                    }
                },
            )
        })
        .collect();
    Page {
        modes: vec![
            (
                "(none), check",
                "Check only: change nothing, and print every problem with the exact steps a repair would take \
                 (the default; -n and --dry-run say the same).",
            ),
            (
                "live",
                "Repair the queue: qmail-send must be stopped; qfixq takes its lock (lock/sendmutex) and holds it \
                 to the end (--live says the same).",
            ),
            (
                "live empty",
                "Remove every message, and repair the structure, owners and modes (--live --empty says the same).",
            ),
            (
                "requeue",
                "List what would be put back into service through qmail's bin/qmail-queue: the messages of a \
                 queue repaired offline (--from DIR) or items of lost+found (--lost-found); change nothing.",
            ),
            (
                "requeue live",
                "Put them back into service through bin/qmail-queue, removing each source (or marking the \
                 item) only after qmail-queue accepted it.",
            ),
        ],
        name: "qfixq",
        command: qfixq::command,
        exit,
        environment: vec![],
        files: vec![
            QUEUE,
            SENDMUTEX,
            (
                "/var/qmail/queue/lost+found/TIME-PID/N/",
                "Where a live run sets aside the files of message N that cannot stay in the queue, with a file \
                 named reason that says why and where each file was (stray entries go to stray-K/). qmail never \
                 looks there. Nothing is put there with --no-quarantine or in live empty mode.",
            ),
            SHOWCTL,
            PASSWD,
        ],
        notes: vec![
            "Before anything else qfixq prints what it decided and why: the queue, the split and where it came \
             from (--split, qmail-showctl or the buckets on disk), the ids and where they came from, whether todo \
             is split (the big-todo patch), whether qmail-send or a qmail-queue is running, and how full the \
             queue's filesystem is (blocks and inodes; at 95% or more it warns, as qmail cannot write there).",
            "A check prints the exact plan a live run carries out, step by step, and changes nothing: not a \
             byte, a mode, an owner or a time stamp. A live run checks the queue again at the end; that second \
             check must find nothing.",
            "Copying or moving the queue to another filesystem gives every file a new inode number, and a \
             message's number is the inode number of its mess file: run qfixq live after every such move, \
             before qmail-send starts.",
        ],
        operands: Some(&[" [", "*live", " [", "*empty", "]]"]),
        examples: vec![
            ("Check the queue (read only):", &["qfixq"]),
            ("Repair it, then check again (qmail-send and the inbound services stopped):", &["qfixq live", "qfixq"]),
            (
                "A queue without qmail-showctl, or a copy elsewhere: give the split and the ids of qmailq, qmails, \
                 qmailr and group qmail:",
                &["qfixq --queue /mnt/old/queue --split 23 --ids 7791:7796:7795:2108"],
            ),
            ("Remove every message but leave a working, empty queue:", &["qfixq live empty"]),
            ("The summary only, or one JSON document for a script:", &["qfixq -q", "qfixq --json > report.json"]),
        ],
        see_also: see_also(&[("qstat", "8"), ("qkillns", "8")]),
    }
}

fn qstat() -> Page {
    use qstat::ExitCode as E;
    let exit = [E::Ok, E::Warning, E::Critical, E::Unknown, E::Incomplete, E::Operational, E::Usage]
        .into_iter()
        .map(|c| {
            (
                c.code(),
                match c {
                    E::Ok => {
                        "Everything was counted and printed; with --check: OK; with --watch --until-preprocessed: \
                         no message is left unpreprocessed."
                    }
                    E::Warning => {
                        "--check: a warning threshold was crossed, or (with the scan of --detail) damaged \
                         messages were found."
                    }
                    E::Critical => {
                        "--check: a critical threshold was crossed, or the queue's structure is damaged so that \
                         qmail-send stops or stalls (a missing directory, bucket or lock file, a wrong owner)."
                    }
                    E::Unknown => {
                        "--check: the state is unknown (the queue or part of it is unreadable, a bad option, or a \
                         warning and a critical range that do not fit together). In --check mode every error \
                         exits 3, as plugins must."
                    }
                    E::Incomplete => {
                        "The figures were printed, but part of the queue could not be read (each error is on \
                         standard error): the counts may be low."
                    }
                    E::Operational => {
                        "Nothing could be counted: the queue is unreadable or not a qmail queue, or its split \
                         cannot be decided for --detail or --top (give --split)."
                    }
                    E::Usage => "Usage error (outside --check mode).",
                },
            )
        })
        .collect();
    Page {
        modes: vec![],
        name: "qstat",
        command: qstat::command,
        exit,
        environment: vec![(
            "LC_ALL, LC_CTYPE, LANG, POSIXLY_CORRECT",
            "The default output counts as qmail-qstat's `find | wc -w` does, so a file name holding white \
                 space or unprintable bytes counts as wc -w would count it in this locale.",
        )],
        files: vec![QUEUE, QUEUELIFETIME, SHOWCTL],
        notes: vec![
            "qstat only reads: it never changes a byte, a mode, an owner or a time stamp, and it may run while \
             qmail-send works (files that vanish while they are counted are no error). It needs no qmail program.",
            "A RANGE for --warning and --critical (and the other thresholds) follows the Nagios plugin \
             guidelines: N alerts above N, START:END outside START..END, @START:END inside it. The critical \
             range must hold the warning range.",
        ],
        operands: None,
        examples: vec![
            ("qmail-qstat's two lines:", &["qstat"]),
            ("Where a flood comes from: the ten most frequent senders and recipient domains:", &["qstat --top 10"]),
            ("Everything, for a script:", &["qstat --detail --json"]),
            (
                "After a repair, with qmail-send started alone: reprint every 10 seconds until every message is \
                 preprocessed:",
                &["qstat --watch 10 --until-preprocessed"],
            ),
            (
                "A Nagios/Icinga check: WARNING above 5000 messages, CRITICAL above 20000:",
                &["qstat --check --warning 5000 --critical 20000"],
            ),
            (
                "A check that also scans every message: WARNING on damaged messages or a message older than a \
                 day, CRITICAL past five days:",
                &["qstat --check --detail --warning 5000 --critical 20000 --warning-age 86400 --critical-age 432000"],
            ),
            (
                "Metrics for node_exporter's textfile collector, every minute from cron (/etc/cron.d/qstat):",
                &["* * * * * root /usr/local/bin/qstat --prometheus /var/lib/prometheus/node-exporter/qmail.prom"],
            ),
        ],
        see_also: see_also(&[("qfixq", "8"), ("qkillns", "8")]),
    }
}

fn qkillns() -> Page {
    use qkillns::ExitCode as E;
    let exit = [E::Done, E::Incomplete, E::Operational, E::Usage]
        .into_iter()
        .map(|c| {
            (
                c.code(),
                match c {
                    E::Done => {
                        "Done, also when nothing matched. A message that could not be read is reported on standard \
                         error and left alone."
                    }
                    E::Incomplete => {
                        "Done, but part of the queue could not be read (a directory of it could not be listed; \
                         each error is on standard error, and the messages there were not looked at). qfixq and \
                         qstat exit 4 for the same thing."
                    }
                    E::Operational => {
                        "Operational error: qmail-send holds its lock (stop it, or use --expire), another process \
                         works in the queue (without --force), the queue cannot be read, a removal or time-stamp \
                         step failed (the message is named on standard error), a message number given is not a \
                         message of the queue, or qmail-send could not be signalled."
                    }
                    E::Usage => "Usage error: a bad option, regular expression or duration.",
                },
            )
        })
        .collect();
    Page {
        modes: vec![],
        name: "qkillns",
        command: qkillns::command,
        exit,
        environment: vec![],
        files: vec![QUEUE, SENDMUTEX, QUEUELIFETIME, SHOWCTL, PASSWD],
        notes: vec![
            "Durations (--older-than, --younger-than) are written 30s, 90m, 36h, 2d, 1w, or combined: 1d12h.",
            "With --expire every null-sender message that qmail-send gives up on becomes a double bounce to the \
             postmaster (control/doublebounceto).",
        ],
        operands: None,
        examples: vec![
            ("See which bounces would go (changes nothing):", &["qkillns -n"]),
            ("Remove them, with qmail-send stopped:", &["qkillns"]),
            ("Bounces and double bounces older than a day:", &["qkillns --double --older-than 1d"]),
            (
                "Only the bounces of a flood, chosen by their Subject:",
                &["qkillns -n --header 'Subject: ^failure notice'"],
            ),
            ("With qmail-send running: let it give up on them itself:", &["qkillns --expire"]),
        ],
        see_also: see_also(&[("qfixq", "8"), ("qstat", "8")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_sorted_and_distinct() {
        for p in all() {
            let codes: Vec<u8> = p.exit.iter().map(|e| e.0).collect();
            let mut sorted = codes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(codes, sorted, "{}", p.name);
            assert_eq!(codes[0], 0, "{}", p.name);
        }
    }

    #[test]
    fn the_policy_numbers() {
        let codes = |p: &Page| p.exit.iter().map(|e| e.0).collect::<Vec<_>>();
        let pages = all();
        assert_eq!(codes(&pages[0]), [0, 1, 4, 8, 16, 32]);
        assert_eq!(codes(&pages[1]), [0, 1, 2, 3, 4, 8, 16]);
        assert_eq!(codes(&pages[2]), [0, 4, 8, 16]);
    }

    #[test]
    fn examples_use_real_options() {
        for p in all() {
            let cmd = (p.command)();
            for (_, lines) in &p.examples {
                for line in *lines {
                    let Some(at) = line.find(p.name) else { continue };
                    let words = shell_words(&line[at..]);
                    let words: Vec<&str> = words.iter().map(String::as_str).take_while(|w| *w != ">").collect();
                    if let Err(e) = cmd.clone().try_get_matches_from(&words) {
                        panic!("{}: example {line:?} does not parse: {e}", p.name);
                    }
                }
            }
        }
    }

    /// Splits on spaces, keeping single-quoted words whole.
    fn shell_words(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '\'' => quoted = !quoted,
                ' ' if !quoted => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}
