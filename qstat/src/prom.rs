//! `--prometheus`: the report in the Prometheus text exposition format, as
//! node_exporter's textfile collector reads it, and the atomic write of
//! that file. This module owns the metric names (`qmail_queue_*`).
//!
//! Every sample carries the label `queue` (the queue's path, or the name
//! given with `--queue-name`), so that two queues on one host make two
//! series. Other labels are stable codes (`channel`, `source`, `reason`),
//! or ranks with the senders and domains of the top lists. Label values
//! are the bytes read as UTF-8 with invalid sequences replaced by U+FFFD,
//! then escaped as the format requires (`\\`, `\"`, `\n`).
//!
//! A run that cannot read the queue still writes its file (exit 8 all
//! the same): `qmail_queue_run_error 1`, `qmail_queue_read_complete 0` and
//! `qmail_queue_last_success_timestamp_seconds` carried over from the
//! file it replaces, so an alert sees the failure instead of a stale file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::Report;

struct Out {
    text: String,
    queue: String,
}

impl Out {
    fn head(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.text.push_str(name);
        let _ = write!(self.text, "{{queue=\"{}\"", label_value(self.queue.as_bytes()));
        for (k, val) in labels {
            let _ = write!(self.text, ",{k}=\"{}\"", label_value(val.as_bytes()));
        }
        let _ = writeln!(self.text, "}} {v}");
    }

    fn gauge(&mut self, name: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, help);
        self.sample(name, &[], v);
    }
}

/// A label value, escaped.
pub fn label_value(b: &[u8]) -> String {
    let mut s = String::new();
    for c in String::from_utf8_lossy(b).chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The value of the label `queue`: the name given, else the queue path.
pub fn queue_label(name: Option<&str>, path: &Path) -> String {
    match name {
        Some(n) => n.to_string(),
        None => String::from_utf8_lossy(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).into_owned(),
    }
}

/// The last success recorded in a textfile written before (`None` when
/// there is none, or it cannot be read).
pub fn previous_success(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| l.starts_with("qmail_queue_last_success_timestamp_seconds"))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn run_state(o: &mut Out, error: bool, last_success: Option<i64>) {
    o.gauge(
        "qmail_queue_run_error",
        "1 when this run could not read the queue, or read only part of it; 0 when it read it all.",
        u8::from(error),
    );
    let name = "qmail_queue_last_success_timestamp_seconds";
    o.head(name, "When a run last read the whole queue, in seconds since the epoch (absent: never, as far as known).");
    if let Some(t) = last_success {
        o.sample(name, &[], t);
    }
}

/// The textfile of a run that could not look at the queue at all.
pub fn render_failure(queue: &str, now: i64, last_success: Option<i64>) -> String {
    let mut o = Out { text: String::new(), queue: queue.to_string() };
    run_state(&mut o, true, last_success);
    o.gauge(
        "qmail_queue_read_complete",
        "1 when the whole queue could be read, 0 when some of it could not (the other figures may be low).",
        0,
    );
    o.gauge("qmail_queue_scan_timestamp_seconds", "When these figures were taken, in seconds since the epoch.", now);
    o.text
}

/// The report as a textfile; `queue` is the value of the label `queue`,
/// `last_success` the last success before this run (kept when this run
/// did not read the whole queue).
pub fn render(r: &Report, queue: &str, last_success: Option<i64>) -> String {
    let mut o = Out { text: String::new(), queue: queue.to_string() };
    run_state(&mut o, !r.complete(), if r.complete() { Some(r.time) } else { last_success });
    o.gauge(
        "qmail_queue_messages",
        "Messages in the queue, as qmail-qstat counts them (entries below the mess buckets).",
        r.counts.messages,
    );
    o.gauge(
        "qmail_queue_unpreprocessed_messages",
        "Messages not yet preprocessed by qmail-send, as qmail-qstat counts them (entries in todo).",
        r.counts.unpreprocessed,
    );
    o.gauge(
        "qmail_queue_read_complete",
        "1 when the whole queue could be read, 0 when some of it could not (the other figures may be low).",
        u8::from(r.complete()),
    );
    o.gauge("qmail_queue_scan_timestamp_seconds", "When these figures were taken, in seconds since the epoch.", r.time);
    if let Some(d) = &r.detail {
        o.gauge(
            "qmail_queue_preprocessed_messages",
            "Messages preprocessed by qmail-send (info, no todo).",
            d.preprocessed,
        );
        o.gauge(
            "qmail_queue_other_messages",
            "Messages with neither todo nor info (being queued, or leftovers).",
            d.other,
        );
        let name = "qmail_queue_pending_recipients";
        o.head(name, "Recipients still to do: T records of local, remote and (not yet preprocessed) todo files.");
        o.sample(name, &[("channel", "local")], d.local_pending);
        o.sample(name, &[("channel", "remote")], d.remote_pending);
        o.sample(name, &[("channel", "todo")], d.todo_recipients);
        o.gauge("qmail_queue_pending_bounce_messages", "Messages with a bounce file waiting.", d.pending_bounce);
        for (name, help, b) in [
            (
                "qmail_queue_null_sender_messages",
                "Messages with the null envelope sender, by where the sender was read.",
                d.null_sender,
            ),
            (
                "qmail_queue_double_bounce_messages",
                "Messages with the double-bounce sender #@[], by where the sender was read.",
                d.double_bounce,
            ),
        ] {
            o.head(name, help);
            o.sample(name, &[("source", "info")], b.info);
            o.sample(name, &[("source", "todo")], b.todo);
        }
        if let (None, n) = (&d.salvaged_unknown, d.salvaged) {
            o.gauge(
                "qmail_queue_salvaged_messages",
                "Salvaged messages: their sender was lost and qfixq wrote the null sender (not bounces; not in \
                 qmail_queue_null_sender_messages).",
                n,
            );
        }
        let name = "qmail_queue_oldest_message_birth_timestamp_seconds";
        o.head(name, "Birth time of the oldest message (info mtime; mess mtime before preprocessing).");
        if let Some(old) = &d.oldest {
            o.sample(name, &[], old.birth);
        }
        let name = "qmail_queue_oldest_message_age_seconds";
        o.head(name, "Age of the oldest message when these figures were taken.");
        if let Some(old) = &d.oldest {
            o.sample(name, &[], r.time - old.birth);
        }
        if let Some(l) = &d.lifetime {
            o.gauge(
                "qmail_queue_lifetime_seconds",
                "queuelifetime in use (control/queuelifetime or 604800).",
                l.seconds,
            );
        }
        o.gauge(
            "qmail_queue_expired_messages",
            "Preprocessed messages older than queuelifetime (qmail-send gives up on them at the next try).",
            d.past_lifetime,
        );
        o.gauge("qmail_queue_damaged_messages", "Messages with damaged, missing or misplaced files.", d.damaged);
        let name = "qmail_queue_damaged_messages_by_reason";
        o.head(name, "Damaged messages by reason (a message may have several).");
        for (reason, n) in &d.damage {
            o.sample(name, &[("reason", &crate::detail::reason::code(reason))], n);
        }
        o.gauge("qmail_queue_stray_entries", "Entries in the queue that are not message files.", d.strays);
        o.gauge("qmail_queue_unreadable_messages", "Messages some file of which could not be read.", d.unreadable);
    }
    if let Some(t) = &r.top {
        let name = "qmail_queue_top_sender_messages";
        o.head(name, "Messages of the most frequent envelope senders (empty: the null sender).");
        for (i, (s, n)) in t.senders.iter().enumerate() {
            let rank = (i + 1).to_string();
            o.sample(name, &[("rank", &rank), ("sender", &String::from_utf8_lossy(s))], n);
        }
        let name = "qmail_queue_top_recipient_domain_recipients";
        o.head(name, "Recipients still to do of the most frequent recipient domains.");
        for (i, (s, n)) in t.domains.iter().enumerate() {
            let rank = (i + 1).to_string();
            o.sample(name, &[("rank", &rank), ("domain", &String::from_utf8_lossy(s))], n);
        }
    }
    o.text
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory (a name the textfile collector ignores: it does not end in
/// `.prom`), mode 0644, fsynced, then renamed over `path`, and the
/// directory fsynced ([`qcommon::safe_fs::Dir::write_file_atomic`], the
/// tools' one atomic write).
pub fn write_atomically(path: &Path, text: &str) -> qcommon::Result<()> {
    use qcommon::safe_fs::{Dir, NewFile, SymlinkBehavior};
    let name = path.file_name().ok_or_else(|| qcommon::Error::Other("not a file name".into()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let dir = Dir::open(&dir, SymlinkBehavior::Follow)?;
    let spec = NewFile { perm: 0o644, owner: None, mtime: None, replace: true };
    dir.write_file_atomic(name, &tmp_name, text.as_bytes(), &spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::Counts;
    use crate::detail::{Detail, TopLists};

    fn report() -> Report {
        Report {
            queue: "/q".into(),
            time: 100,
            counts: Counts { messages: 7, unpreprocessed: 2 },
            big_todo: false,
            detail: None,
            top: None,
            errors: vec![],
            warnings: vec![],
            count_errors: 0,
            structure: None,
        }
    }

    /// Every sample line belongs to a metric announced by HELP and TYPE.
    fn check_format(text: &str) {
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(kind, "gauge");
                assert!(typed.insert(name.to_string()), "TYPE twice: {name}");
            } else if line.starts_with("# HELP ") {
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "sample before its TYPE: {line}");
                assert!(name.starts_with("qmail_queue_"), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn basic_metrics() {
        let t = render(&report(), "/q", None);
        assert!(t.contains("\nqmail_queue_messages{queue=\"/q\"} 7\n"), "{t}");
        assert!(t.contains("\nqmail_queue_unpreprocessed_messages{queue=\"/q\"} 2\n"), "{t}");
        assert!(t.contains("# TYPE qmail_queue_messages gauge\n"), "{t}");
        assert!(t.contains("\nqmail_queue_read_complete{queue=\"/q\"} 1\n"), "{t}");
        assert!(t.contains("\nqmail_queue_run_error{queue=\"/q\"} 0\n"), "{t}");
        assert!(t.contains("\nqmail_queue_last_success_timestamp_seconds{queue=\"/q\"} 100\n"), "{t}");
        check_format(&t);
        let f = render_failure("mx1", 200, Some(100));
        assert!(f.contains("\nqmail_queue_run_error{queue=\"mx1\"} 1\n"), "{f}");
        assert!(f.contains("\nqmail_queue_last_success_timestamp_seconds{queue=\"mx1\"} 100\n"), "{f}");
        check_format(&f);
    }

    #[test]
    fn detail_and_top_metrics() {
        let mut r = report();
        let mut d = Detail::default();
        d.damage.insert("no mess file", 2);
        r.detail = Some(d);
        r.top = Some(TopLists {
            senders: vec![(b"a\"b\\c\nd\xff".to_vec(), 3)],
            domains: vec![(b"example.org".to_vec(), 4)],
            ..TopLists::default()
        });
        let t = render(&r, "/q", None);
        check_format(&t);
        assert!(t.contains("qmail_queue_pending_recipients{queue=\"/q\",channel=\"remote\"} 0\n"), "{t}");
        assert!(t.contains("qmail_queue_damaged_messages_by_reason{queue=\"/q\",reason=\"no_mess\"} 2\n"), "{t}");
        assert!(
            t.contains(
                "qmail_queue_top_sender_messages{queue=\"/q\",rank=\"1\",sender=\"a\\\"b\\\\c\\nd\u{fffd}\"} 3\n"
            ),
            "{t}"
        );
        assert!(t.contains(
            "qmail_queue_top_recipient_domain_recipients{queue=\"/q\",rank=\"1\",domain=\"example.org\"} 4\n"
        ));
        assert!(!t.lines().any(|l| l.starts_with("qmail_queue_oldest_message_age_seconds")), "no sample: no message");
    }

    #[test]
    fn atomic_write_replaces() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("qmail.prom");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomically(&t.path().join("nodir/x.prom"), "x").is_err());
    }
}
