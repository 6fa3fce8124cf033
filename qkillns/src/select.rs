//! Which messages go: this module owns the selection rules (null sender,
//! double bounces, sender, recipient, age) and what qkillns makes of a
//! scanned message. The message itself (stage, sender, recipients, birth
//! time, size) is read by [`qcommon::message`], as every tool reads it;
//! header filters need the message text and live in [`crate::headers`].
//!
//! Where the envelope comes from ([`qcommon::message::Source`]): todo
//! while it exists, else info with local and remote, else an intd that
//! parses. The last is what a run of qkillns interrupted between the todo
//! and the intd of a message leaves (or a queueing that never finished,
//! which qmail has not accepted); selecting it lets a rerun finish the
//! job. A message with none of those (a lone mess, leftovers, an intd
//! still being written) cannot be judged and is only counted.
//!
//! A recipient list too large for the scan to hold (see
//! [`qcommon::envelope::WHOLE_CAP`]) is not copied into the view: it is
//! named in [`View::large`] and a recipient rule reads it again from its
//! file, record by record.

use qcommon::envelope::{is_double_bounce, read_records};
use qcommon::message::Message;
use qcommon::safe_fs::Dir;
use qcommon::scan::ScannedMessage;

use crate::args::Args;

pub use qcommon::message::{Channel, LargeList, Recipient as Rcpt, Stage};

/// A message read as an envelope.
#[derive(Debug)]
pub struct View<'a> {
    /// The message number.
    pub number: u64,
    /// Its stage.
    pub stage: Stage,
    /// The envelope sender (empty: null).
    pub sender: &'a [u8],
    /// Every recipient of the envelopes held in memory.
    pub recipients: Vec<Rcpt<'a>>,
    /// The envelopes too large to hold: their recipients are read again
    /// from the file when needed.
    pub large: Vec<LargeList>,
    /// Birth time (seconds since the epoch; 0 when no file has one).
    pub birth: i64,
    /// Size of the mess file, when there is one.
    pub mess_size: Option<u64>,
    /// Problems reading parts of the message other than its sender: when
    /// it is selected, it is left alone and these are reported.
    pub problems: Vec<String>,
}

/// What a scanned message is, for qkillns.
#[derive(Debug)]
pub enum Classified<'a> {
    /// Its envelope could be read.
    Message(View<'a>),
    /// Its sender cannot be told (the envelope that holds it cannot be
    /// read): reported, left alone.
    Unreadable(Vec<String>),
    /// No envelope at all (a lone mess, or a mess with an incomplete intd).
    NoEnvelope,
}

/// Reads `msg` as an envelope (see the module notes).
pub fn classify(msg: &ScannedMessage) -> Classified<'_> {
    let m = Message::of(msg, None);
    let problems: Vec<String> = m.problems.iter().map(ToString::to_string).collect();
    match m.sender {
        Some(sender) => Classified::Message(View {
            number: m.number,
            stage: m.stage,
            sender,
            recipients: m.recipients(),
            large: m.large(),
            birth: m.birth.map_or(0, |b| b.time),
            mess_size: m.size,
            problems,
        }),
        None if problems.is_empty() => Classified::NoEnvelope,
        None => Classified::Unreadable(problems),
    }
}

/// The selection rules that need only the envelope.
#[derive(Debug, Clone)]
pub struct Criteria {
    /// Sender rule.
    pub sender: SenderRule,
    /// At least one recipient matches.
    pub recipient: Option<regex::bytes::Regex>,
    /// Age at least this (seconds).
    pub older_than: Option<u64>,
    /// Age less than this (seconds).
    pub younger_than: Option<u64>,
    /// The time ages are measured from.
    pub now: i64,
}

/// How the sender selects.
#[derive(Debug, Clone)]
pub enum SenderRule {
    /// The null sender, and with `double` also `#@[]`.
    Null {
        /// Add double bounces.
        double: bool,
    },
    /// A regular expression over the sender.
    Regex(regex::bytes::Regex),
    /// Any sender (message numbers, or `--all`).
    Any,
}

impl Criteria {
    /// The criteria the options give, ages measured from `now`.
    pub fn from_args(a: &Args, now: i64) -> Criteria {
        Criteria {
            sender: match &a.sender {
                Some(re) => SenderRule::Regex(re.clone()),
                None if a.all || !a.numbers.is_empty() => SenderRule::Any,
                None => SenderRule::Null { double: a.double },
            },
            recipient: a.recipient.clone(),
            older_than: a.older_than,
            younger_than: a.younger_than,
            now,
        }
    }

    /// Whether the sender alone selects the message.
    pub fn sender_matches(&self, sender: &[u8]) -> bool {
        match &self.sender {
            SenderRule::Null { double } => sender.is_empty() || (*double && is_double_bounce(sender)),
            SenderRule::Regex(re) => re.is_match(sender),
            SenderRule::Any => true,
        }
    }

    /// Whether `msg` may be selected, judged by its sender alone: false
    /// only when the envelope that gives its sender was read and the
    /// sender rule turns it down, which is all the selection makes of
    /// such a message ([`crate::run`] then leaves it). Asked by the scan
    /// before it stats or reads any other file of the message, so `msg`
    /// may hold that one envelope only: a message this takes is examined
    /// whole before it is judged (a message that cannot be told, or a
    /// salvaged one, among them).
    pub fn may_select(&self, msg: &ScannedMessage) -> bool {
        Message::of(msg, None).sender.is_none_or(|s| self.sender_matches(s))
    }

    /// Whether the selection is the default one, the null-sender bounces
    /// (salvaged messages are kept out of it).
    pub fn is_default(&self) -> bool {
        matches!(self.sender, SenderRule::Null { .. })
    }

    /// Whether the recipient and age rules keep the message (the sender
    /// is checked by [`Criteria::sender_matches`]).
    /// Only the recipients held in memory are looked at: see
    /// [`Criteria::rest_matches_in`].
    pub fn rest_matches(&self, v: &View<'_>) -> bool {
        if let Some(re) = &self.recipient {
            if !v.recipients.iter().any(|r| re.is_match(r.address)) {
                return false;
            }
        }
        self.age_matches(v)
    }

    /// Like [`Criteria::rest_matches`], reading the lists too large to
    /// hold again from their files under `root`, record by record, until
    /// one matches. A list that cannot be read makes the message match
    /// with the error among its problems: it is reported and left alone.
    pub fn rest_matches_in(&self, root: &Dir, v: &mut View<'_>) -> bool {
        if !self.age_matches(v) {
            return false;
        }
        let Some(re) = &self.recipient else { return true };
        if v.recipients.iter().any(|r| re.is_match(r.address)) {
            return true;
        }
        for l in &v.large {
            let mut hit = false;
            let r = read_records(root, &l.path, |kind, address| {
                hit = matches!(kind, b'T' | b'D') && re.is_match(address);
                !hit
            });
            if let Err(e) = r {
                v.problems.push(e.to_string());
                return true;
            }
            if hit {
                return true;
            }
        }
        false
    }

    fn age_matches(&self, v: &View<'_>) -> bool {
        let age = self.now.saturating_sub(v.birth);
        if let Some(min) = self.older_than {
            if age < min as i64 {
                return false;
            }
        }
        if let Some(max) = self.younger_than {
            if age >= max as i64 {
                return false;
            }
        }
        true
    }

    /// A description for the report header.
    /// `numbers` are the message numbers given, if any.
    pub fn describe(&self, headers: &[crate::args::HeaderFilter], numbers: &[u64]) -> String {
        let mut v = vec![match &self.sender {
            SenderRule::Null { double: false } => "null sender (bounces)".to_string(),
            SenderRule::Null { double: true } => "null sender (bounces) and double bounces (#@[])".to_string(),
            SenderRule::Regex(re) => format!("sender ~ /{}/", escape_str(re.as_str())),
            SenderRule::Any if numbers.is_empty() => "every message".to_string(),
            SenderRule::Any => numbers_text(numbers),
        }];
        if let (SenderRule::Regex(_), false) = (&self.sender, numbers.is_empty()) {
            v.insert(0, numbers_text(numbers));
        }
        if let Some(re) = &self.recipient {
            v.push(format!("a recipient ~ /{}/", escape_str(re.as_str())));
        }
        for h in headers {
            v.push(format!("header {} ~ /{}/", escape_str(&h.name), escape_str(h.regex.as_str())));
        }
        if let Some(d) = self.older_than {
            v.push(format!("at least {} old", crate::duration::format_age(d as i64)));
        }
        if let Some(d) = self.younger_than {
            v.push(format!("younger than {}", crate::duration::format_age(d as i64)));
        }
        v.join(", ")
    }
}

/// "message(s) 1, 2, 3" (the first 20, then how many more).
fn numbers_text(numbers: &[u64]) -> String {
    let mut s = format!("message(s) {}", numbers.iter().take(20).map(u64::to_string).collect::<Vec<_>>().join(", "));
    if numbers.len() > 20 {
        s.push_str(&format!(" and {} more", numbers.len() - 20));
    }
    s
}

fn escape_str(s: &str) -> String {
    qcommon::error::Escaped(s.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crit(sender: SenderRule) -> Criteria {
        Criteria { sender, recipient: None, older_than: None, younger_than: None, now: 1_000_000 }
    }

    fn view<'a>(sender: &'a [u8], rc: &[&'a [u8]], birth: i64) -> View<'a> {
        View {
            number: 1,
            stage: Stage::Preprocessed,
            sender,
            recipients: rc.iter().map(|a| Rcpt { address: a, channel: Channel::Remote, done: false }).collect(),
            birth,
            mess_size: None,
            problems: vec![],
            large: vec![],
        }
    }

    #[test]
    fn null_and_double() {
        let c = crit(SenderRule::Null { double: false });
        assert!(c.sender_matches(b""));
        assert!(!c.sender_matches(b"#@[]"));
        assert!(!c.sender_matches(b"a@b"));
        let c = crit(SenderRule::Null { double: true });
        assert!(c.sender_matches(b""));
        assert!(c.sender_matches(b"#@[]"));
        assert!(!c.sender_matches(b"a@b"));
    }

    #[test]
    fn sender_regex_replaces_null() {
        let c = crit(SenderRule::Regex(regex::bytes::Regex::new("@flood\\.example$").unwrap()));
        assert!(c.sender_matches(b"x@flood.example"));
        assert!(!c.sender_matches(b""));
    }

    #[test]
    fn any_takes_every_sender() {
        let c = crit(SenderRule::Any);
        assert!(c.sender_matches(b"") && c.sender_matches(b"#@[]") && c.sender_matches(b"a@b"));
        assert!(!c.is_default());
        assert!(crit(SenderRule::Null { double: true }).is_default());
    }

    #[test]
    fn recipients_and_age_narrow() {
        let mut c = crit(SenderRule::Null { double: false });
        c.recipient = Some(regex::bytes::Regex::new("^postmaster@").unwrap());
        assert!(c.rest_matches(&view(b"", &[b"a@x", b"postmaster@y"], 0)));
        assert!(!c.rest_matches(&view(b"", &[b"a@x"], 0)));
        c.recipient = None;
        c.older_than = Some(100);
        assert!(c.rest_matches(&view(b"", &[], 1_000_000 - 100)));
        assert!(!c.rest_matches(&view(b"", &[], 1_000_000 - 99)));
        c.older_than = None;
        c.younger_than = Some(100);
        assert!(!c.rest_matches(&view(b"", &[], 1_000_000 - 100)));
        assert!(c.rest_matches(&view(b"", &[], 1_000_000 - 99)));
    }
}
