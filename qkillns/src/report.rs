//! What qkillns prints: this module owns stdout (the listing, the summary,
//! the JSON document) and stderr (errors). Every untrusted byte (names,
//! addresses, subjects) is escaped before it reaches a terminal; JSON is
//! written by [`qcommon::json`].
//!
//! Stdout is written through one buffered, locked handle; nothing uses
//! `print!`. A closed pipe is not an error: output stops quietly (see
//! [`Output::broken`]).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use qcommon::error::Escaped;
use qcommon::mutator::Action;

use crate::duration::format_age;
use crate::select::View;
use serde::Serialize;

/// What became of a selected message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Dry run: would be removed.
    WouldRemove,
    /// Removed.
    Removed,
    /// A step failed; the message was left as the failed step found it.
    Failed,
    /// Dry run: its info time stamp would be backdated.
    WouldExpire,
    /// Its info time stamp was backdated.
    Expired,
    /// Its info time stamp is already past queuelifetime.
    AlreadyPast,
    /// `--expire`: not yet preprocessed, skipped.
    NotPreprocessed,
    /// `--expire`: damaged (its files fit no state of the queue: an info
    /// without a mess, an intd beside an info), skipped: qfixq repairs it.
    Damaged,
    /// `--expire`: its info file vanished meanwhile (qmail-send finished it).
    Vanished,
}

impl Status {
    /// Words for the text listing.
    pub fn text(self) -> &'static str {
        match self {
            Status::WouldRemove => "would remove",
            Status::Removed => "removed",
            Status::Failed => "FAILED",
            Status::WouldExpire => "would expire",
            Status::Expired => "expired",
            Status::AlreadyPast => "already expired",
            Status::NotPreprocessed => "skipped (todo)",
            Status::Damaged => "skipped (damaged)",
            Status::Vanished => "gone meanwhile",
        }
    }

    /// The JSON value.
    pub fn json(self) -> &'static str {
        match self {
            Status::WouldRemove => "would_remove",
            Status::Removed => "removed",
            Status::Failed => "failed",
            Status::WouldExpire => "would_expire",
            Status::Expired => "expired",
            Status::AlreadyPast => "already_expired",
            Status::NotPreprocessed => "not_preprocessed",
            Status::Damaged => "damaged",
            Status::Vanished => "vanished",
        }
    }
}

/// One listed message.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The message.
    pub view: &'a View<'a>,
    /// Whether its header was read (a live run reads it only for a
    /// header filter).
    pub header_read: bool,
    /// Its decoded Subject, when read and present.
    pub subject: Option<&'a str>,
    /// What became of it.
    pub status: Status,
    /// The steps planned for it.
    pub action: Option<&'a Action>,
    /// Bytes its files hold (or held).
    pub bytes: u64,
    /// The error, for `Failed`.
    pub error: Option<String>,
}

/// Longest Subject shown in the text listing, in characters.
pub const SUBJECT_MAX: usize = 60;
/// Recipients shown in the text listing.
pub const RECIPIENTS_SHOWN: usize = 3;

/// The text line of one entry; the Subject as UTF-8 when `utf8` (the
/// locale is UTF-8), its control characters and invalid bytes escaped.
pub fn text_line(e: &Entry<'_>, now: i64, utf8: bool) -> String {
    let v = e.view;
    let mut s = format!(
        "{}  {}  age {}  from <{}>  to",
        v.number,
        e.status.text(),
        format_age(now.saturating_sub(v.birth)),
        Escaped(v.sender)
    );
    let large: u64 = v.large.iter().map(|l| l.count).sum();
    if v.recipients.is_empty() && large == 0 {
        s.push_str(" (none)");
    }
    for r in v.recipients.iter().take(RECIPIENTS_SHOWN) {
        let _ = write!(s, " <{}>", Escaped(r.address));
    }
    let more = v.recipients.len().saturating_sub(RECIPIENTS_SHOWN) as u64 + large;
    if more > 0 {
        let _ = write!(s, " +{more} more");
    }
    match e.subject {
        Some(subj) => {
            let cut: String = subj.chars().take(SUBJECT_MAX).collect();
            let more = if cut.len() < subj.len() { "..." } else { "" };
            let _ = write!(s, "  subject \"{}\"{more}", qcommon::human::display_bytes(cut.as_bytes(), utf8));
        }
        None if e.header_read => s.push_str("  subject -"),
        None => {}
    }
    match v.mess_size {
        Some(n) => {
            let _ = write!(s, "  {n} bytes");
        }
        None => s.push_str("  no mess"),
    }
    if let Some(err) = &e.error {
        let _ = write!(s, "  ({err})");
    }
    s
}

/// One recipient in JSON.
#[derive(Serialize)]
struct RcptJson<'a> {
    #[serde(serialize_with = "qcommon::json::bytes")]
    address: &'a [u8],
    list: &'static str,
    done: bool,
}

/// A list too large to hold: its file and count.
#[derive(Serialize)]
struct LargeJson {
    #[serde(serialize_with = "qcommon::json::bytes")]
    file: Vec<u8>,
    list: &'static str,
    count: u64,
}

/// One entry in JSON.
#[derive(Serialize)]
struct EntryJson<'a> {
    number: u64,
    status: &'static str,
    stage: &'static str,
    birth: i64,
    age_seconds: i64,
    #[serde(serialize_with = "qcommon::json::bytes")]
    sender: &'a [u8],
    recipients: Vec<RcptJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recipients_not_listed: Vec<LargeJson>,
    subject: Option<&'a str>,
    size: Option<u64>,
    bytes: u64,
    steps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The JSON object of one entry.
pub fn json_entry(e: &Entry<'_>, now: i64) -> String {
    use std::os::unix::ffi::OsStrExt;
    let v = e.view;
    qcommon::json::to_string(&EntryJson {
        number: v.number,
        status: e.status.json(),
        stage: v.stage.name(),
        birth: v.birth,
        age_seconds: now.saturating_sub(v.birth),
        sender: v.sender,
        recipients: v
            .recipients
            .iter()
            .map(|r| RcptJson { address: r.address, list: r.channel.name(), done: r.done })
            .collect(),
        // A list too large to hold is not listed: its file and count are.
        recipients_not_listed: v
            .large
            .iter()
            .map(|l| LargeJson { file: l.path.as_os_str().as_bytes().to_vec(), list: l.channel.name(), count: l.count })
            .collect(),
        subject: e.subject,
        size: v.mess_size,
        bytes: e.bytes,
        steps: e.action.map(|a| a.steps.iter().map(|s| s.to_string()).collect()).unwrap_or_default(),
        error: e.error.as_deref(),
    })
}

/// A message left alone, with why, in JSON.
#[derive(Serialize)]
struct LeftJson<'a> {
    number: u64,
    status: &'static str,
    errors: &'a [String],
}

/// The JSON object of a message that could not be read.
pub fn json_unreadable(number: u64, problems: &[String]) -> String {
    qcommon::json::to_string(&LeftJson { number, status: "unreadable", errors: problems })
}

/// The JSON object of a message number given that is not a message of
/// the queue.
pub fn json_not_found(number: u64, why: &str) -> String {
    qcommon::json::to_string(&LeftJson { number, status: "not_found", errors: &[why.to_string()] })
}

/// Stdout, buffered and locked, that stops quietly on a closed pipe. On a
/// terminal each line is written with the progress line cleared.
#[derive(Debug)]
pub struct Output {
    w: BufWriter<std::io::StdoutLock<'static>>,
    broken: bool,
    failed: bool,
    terminal: bool,
}

impl Default for Output {
    fn default() -> Self {
        Output::new()
    }
}

impl Output {
    /// Locks stdout.
    pub fn new() -> Output {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        Output {
            w: BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
            broken: false,
            failed: false,
            terminal,
        }
    }

    /// Writes `s` and a newline.
    pub fn line(&mut self, s: &str) {
        if self.terminal {
            qcommon::progress::around_output(|| {
                self.write(s.as_bytes());
                self.write(b"\n");
                self.flush();
            });
            return;
        }
        self.write(s.as_bytes());
        self.write(b"\n");
    }

    /// Writes raw text.
    pub fn write(&mut self, b: &[u8]) {
        if self.broken {
            return;
        }
        if let Err(e) = self.w.write_all(b) {
            self.fail(e);
        }
    }

    /// Flushes.
    pub fn flush(&mut self) {
        if self.broken {
            return;
        }
        if let Err(e) = self.w.flush() {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        self.broken = true;
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            self.failed = true;
            error(&format!("cannot write to standard output: {e}"));
        }
    }

    /// Stdout is gone (closed pipe or write error): nothing more is printed.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Writing failed for another reason than a closed pipe.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// Prints `qkillns: <msg>` to stderr, control bytes escaped (a path or a
/// name from the command line or the queue may hold any byte; text that
/// was escaped already is not escaped twice). Errors writing there are
/// ignored: there is nowhere left to report them.
pub fn error(msg: &str) {
    qcommon::cli::say("qkillns", msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::{Channel, Rcpt, Stage};
    use qcommon::mutator::Step;

    fn view<'a>(rc: &'a [Rcpt<'a>]) -> View<'a> {
        View {
            number: 4711,
            stage: Stage::Preprocessed,
            sender: b"",
            recipients: rc.to_vec(),
            birth: 1000,
            mess_size: Some(321),
            problems: vec![],
            large: vec![],
        }
    }

    #[test]
    fn text_line_is_escaped_and_short() {
        let rc = [
            Rcpt { address: b"a@x\x1b[31m", channel: Channel::Remote, done: false },
            Rcpt { address: b"b@y", channel: Channel::Local, done: true },
            Rcpt { address: b"c@z", channel: Channel::Local, done: false },
            Rcpt { address: b"d@w", channel: Channel::Local, done: false },
        ];
        let v = view(&rc);
        let subj = "é".repeat(80) + "\n";
        let e = Entry {
            view: &v,
            header_read: true,
            subject: Some(&subj),
            status: Status::WouldRemove,
            action: None,
            bytes: 400,
            error: None,
        };
        let l = text_line(&e, 1000 + 2 * 86_400 + 3600, false);
        let u = text_line(&e, 1000 + 2 * 86_400 + 3600, true);
        assert!(u.contains(&format!("subject \"{}\"...", "é".repeat(SUBJECT_MAX))), "{u}");
        assert!(l.starts_with("4711  would remove  age 2d01h  from <>  to <a@x\\x1b[31m> <b@y> <c@z> +1 more"), "{l}");
        assert!(l.contains("subject \"\\xc3\\xa9"), "{l}");
        assert!(l.contains("...  321 bytes"), "{l}");
        assert!(!l.contains('\x1b') && !l.contains('\n'));
    }

    #[test]
    fn json_entry_is_valid_shape() {
        let rc = [Rcpt { address: b"a\"@x\xff", channel: Channel::Todo, done: false }];
        let v = view(&rc);
        let a = Action { message: Some(4711), steps: vec![Step::Unlink { path: "mess/19/4711".into(), expect: None }] };
        let e = Entry {
            view: &v,
            header_read: false,
            subject: None,
            status: Status::Removed,
            action: Some(&a),
            bytes: 9,
            error: Some("x\"y".into()),
        };
        let j = json_entry(&e, 1060);
        assert!(j.contains("\"address\":\"a\\\"@x\\u00ff\""), "{j}");
        assert!(j.contains("\"steps\":[\"unlink mess/19/4711\"]"), "{j}");
        assert!(j.contains("\"subject\":null"), "{j}");
        assert!(j.contains("\"age_seconds\":60"), "{j}");
        assert!(j.ends_with(",\"error\":\"x\\\"y\"}"), "{j}");
        assert_eq!(
            json_unreadable(5, &["a\nb".into()]),
            "{\"number\":5,\"status\":\"unreadable\",\"errors\":[\"a\\nb\"]}"
        );
    }
}
