//! Realistic message text and addresses for practice queues: the pools of
//! domains and names (skewed, so that "top senders" and "top recipient
//! domains" mean something), RFC 822 dates, RFC 2047 encoded words, and
//! the message text itself — qmail-queue's `Received:` line first, then
//! ordinary headers and a body, or the text of a qmail-send bounce.

use std::io::Write;

use crate::rng::Rng;

/// The queue's own host: local recipients are `user@LOCAL_DOMAIN`, bounces
/// come from `MAILER-DAEMON@LOCAL_HOST`.
pub const LOCAL_DOMAIN: &str = "localdomain.example";

/// The other domain delivered locally (a mailing-list host).
pub const LOCAL_LIST_DOMAIN: &str = "lists.localdomain.example";

/// The host name qmail uses in bounces and `Received:` lines.
pub const LOCAL_HOST: &str = "mail.localdomain.example";

/// The sender of the flood that dominates every practice queue.
pub const FLOOD_SENDER: &str = "offers@deals.flood-sender.example";

/// The second most frequent sender.
pub const NEWSLETTER_SENDER: &str = "newsletter@news.shop.example";

/// uid of qmaild (`invoked from network`) written in `u` records.
pub const QMAILD_UID: u32 = 7791;

/// uid of alias (`invoked by alias`, forwards by qmail-local).
pub const ALIAS_UID: u32 = 7790;

/// Remote domains with their relative weights (a Zipf-like skew).
const REMOTE_DOMAINS: &[(&str, f64)] = &[
    ("gmail.example", 30.0),
    ("hotmail.example", 14.0),
    ("yahoo.example", 10.0),
    ("outlook.example", 7.0),
    ("gmx.example.net", 5.0),
    ("web.example.de", 4.0),
    ("orange.example.fr", 3.0),
    ("mail.example.ru", 2.5),
    ("qq.example.cn", 2.0),
    ("example.com", 1.6),
    ("example.net", 1.3),
    ("t-online.example.de", 1.1),
    ("free.example.fr", 0.9),
    ("uni-hamburg.example.de", 0.6),
    ("aol.example", 0.5),
];

const FIRST: &[&str] = &[
    "anna", "ben", "carla", "david", "emma", "felix", "greta", "hugo", "ines", "jonas", "karin", "lukas", "marie",
    "nils", "olga", "paul", "quentin", "rosa", "sven", "tina", "ulrich", "vera", "walter", "xenia", "yusuf", "zoe",
    "li", "mohammed", "sofia", "juan",
];

const LAST: &[&str] = &[
    "mueller", "schmidt", "martin", "garcia", "rossi", "kowalski", "nguyen", "smith", "ivanov", "tanaka", "silva",
    "dubois", "jansen", "novak", "yilmaz", "kim", "olsen", "costa", "weber", "fischer",
];

const LOCAL_USERS: &[&str] = &[
    "anna",
    "ben",
    "carla",
    "david",
    "emma",
    "felix",
    "greta",
    "hugo",
    "info",
    "sales",
    "support",
    "billing",
    "postmaster",
    "jobs",
    "webmaster",
    "noc",
];

const WORDS: &[&str] = &[
    "the",
    "queue",
    "message",
    "please",
    "find",
    "attached",
    "report",
    "meeting",
    "tomorrow",
    "about",
    "order",
    "invoice",
    "delivery",
    "account",
    "thanks",
    "regards",
    "we",
    "will",
    "send",
    "update",
    "next",
    "week",
    "server",
    "mail",
    "offer",
    "price",
    "discount",
    "today",
    "only",
    "click",
    "here",
    "for",
    "more",
    "information",
    "and",
    "your",
    "our",
    "team",
    "project",
    "deadline",
    "budget",
    "review",
    "draft",
    "contract",
    "schedule",
    "call",
];

const PLAIN_SUBJECTS: &[&str] = &[
    "Meeting tomorrow",
    "Re: invoice 2024-117",
    "Your order has shipped",
    "Fwd: photos from the weekend",
    "Quarterly report",
    "Re: Re: lunch?",
    "Password reset request",
    "Limited offer: 70% off everything",
    "Your account statement is ready",
    "Invitation: team sync",
    "[announce] weekly digest",
    "Re: question about the contract",
    "Congratulations! You have won",
    "Security alert for your account",
];

/// Subjects that become `=?UTF-8?B?...?=` encoded words.
const UTF8_SUBJECTS: &[&str] = &[
    "Größte Rabatte – nur heute!",
    "Ваш заказ отправлен",
    "お知らせ：メンテナンスのお知らせ",
    "Réunion de demain à 10h",
    "Ürünleriniz kargoya verildi",
    "¡Oferta especial para ti!",
];

/// Already-encoded Q-style subjects (ISO-8859-1).
const Q_SUBJECTS: &[&str] = &["=?ISO-8859-1?Q?R=E9union_demain?=", "=?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?="];

const MAILERS: &[&str] =
    &["Thunderbird 115.3", "Microsoft Outlook 16.0", "Apple Mail (2.3731)", "PHPMailer 6.8.0", "Roundcube Webmail/1.6"];

const FAILURES: &[&str] = &[
    "Sorry, no mailbox here by that name. (#5.1.1)",
    "Sorry, I couldn't find any host named nowhere.example. (#5.1.2)",
    "Remote host said: 550 5.7.1 Message rejected as spam",
    "Remote host said: 552 5.2.2 Mailbox full",
    "I'm not going to try again; this message has been in the queue too long.",
];

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Splits seconds since the epoch (UTC) into calendar fields:
/// (year, month 1..=12, day, hour, minute, second, weekday 0 = Sunday).
/// The date part is the usual days-to-civil conversion on 400-year eras.
pub fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32, usize) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as usize;
    (year, month, day, (secs / 3600) as u32, (secs / 60 % 60) as u32, (secs % 60) as u32, weekday)
}

/// qmail's date format (`date822fmt`): `26 Sep 1995 04:46:54 -0000`.
pub fn write_date822(out: &mut Vec<u8>, t: i64) {
    let (y, mo, d, h, mi, s, _) = civil(t);
    let _ = write!(out, "{d} {} {y} {h:02}:{mi:02}:{s:02} -0000", MONTHS[mo as usize - 1]);
}

/// An RFC 2822 date in a sender's local time: `Tue, 26 Sep 1995 06:46:54 +0200`.
fn write_date2822(out: &mut Vec<u8>, t: i64, offset_minutes: i64) {
    let (y, mo, d, h, mi, s, wd) = civil(t + offset_minutes * 60);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    let _ = write!(
        out,
        "{}, {d} {} {y} {h:02}:{mi:02}:{s:02} {sign}{:02}{:02}",
        WEEKDAYS[wd],
        MONTHS[mo as usize - 1],
        off / 60,
        off % 60
    );
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 encoding of `data` (RFC 4648, with padding).
pub fn base64_into(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 { B64[(n >> 6) as usize & 63] } else { b'=' });
        out.push(if chunk.len() > 2 { B64[n as usize & 63] } else { b'=' });
    }
}

/// Where a recipient is delivered, as qmail-send decides it from the domain.
pub fn is_local_domain(address: &[u8]) -> bool {
    match address.iter().rposition(|&b| b == b'@') {
        Some(at) => {
            let d = &address[at + 1..];
            d == LOCAL_DOMAIN.as_bytes() || d == LOCAL_LIST_DOMAIN.as_bytes()
        }
        None => true,
    }
}

/// A remote domain drawn with the skewed weights.
fn pick_remote_domain(rng: &mut Rng) -> &'static str {
    let total: f64 = REMOTE_DOMAINS.iter().map(|d| d.1).sum();
    let mut x = rng.unit() * total;
    for (d, w) in REMOTE_DOMAINS {
        if x < *w {
            return d;
        }
        x -= w;
    }
    REMOTE_DOMAINS[0].0
}

/// Appends a remote address: mostly a name at one of the skewed domains,
/// sometimes a long-tail domain.
pub fn remote_address(out: &mut Vec<u8>, rng: &mut Rng) {
    let first = rng.pick(FIRST);
    if rng.chance(0.08) {
        let _ = write!(out, "{first}{}@host{}.example.com", rng.below(100), rng.below(500));
        return;
    }
    let domain = pick_remote_domain(rng);
    match rng.below(3) {
        0 => {
            let _ = write!(out, "{first}.{}@{domain}", rng.pick(LAST));
        }
        1 => {
            let _ = write!(out, "{first}{}@{domain}", rng.below(1000));
        }
        _ => {
            let _ = write!(out, "{first}@{domain}");
        }
    }
}

/// Appends a local address (`user@localdomain`).
pub fn local_address(out: &mut Vec<u8>, rng: &mut Rng) {
    if rng.chance(0.15) {
        let _ = write!(out, "{}-list@{LOCAL_LIST_DOMAIN}", rng.pick(WORDS));
    } else {
        let _ = write!(out, "{}@{LOCAL_DOMAIN}", rng.pick(LOCAL_USERS));
    }
}

/// Appends an ordinary (not null) envelope sender: the flood dominates.
/// Returns how the message was injected.
pub fn normal_sender(out: &mut Vec<u8>, rng: &mut Rng) -> Invoker {
    let x = rng.unit();
    if x < 0.40 {
        out.extend_from_slice(FLOOD_SENDER.as_bytes());
        Invoker::Network
    } else if x < 0.48 {
        out.extend_from_slice(NEWSLETTER_SENDER.as_bytes());
        Invoker::Network
    } else if x < 0.68 {
        let _ = write!(out, "{}@{LOCAL_DOMAIN}", rng.pick(FIRST));
        if rng.chance(0.2) {
            Invoker::Alias
        } else {
            Invoker::Uid(1000 + rng.below(40) as u32)
        }
    } else {
        remote_address(out, rng);
        Invoker::Network
    }
}

/// How qmail-queue was invoked: decides the words of its `Received:` line
/// and the `u` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoker {
    /// From qmail-smtpd (uid qmaild): `invoked from network`.
    Network,
    /// From a local user: `invoked by uid N`.
    Uid(u32),
    /// From qmail-local forwarding (uid alias): `invoked by alias`.
    Alias,
    /// From qmail-send injecting a bounce (uid qmails): `invoked for bounce`.
    Bounce,
}

impl Invoker {
    /// The uid written in the `u` record; `qmails` is the uid of qmails.
    pub fn uid(self, qmails: u32) -> u32 {
        match self {
            Invoker::Network => QMAILD_UID,
            Invoker::Uid(u) => u,
            Invoker::Alias => ALIAS_UID,
            Invoker::Bounce => qmails,
        }
    }
}

/// What kind of message to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary message.
    Normal,
    /// A qmail-send bounce (null envelope sender).
    Bounce,
    /// A double bounce (sender `#@[]`) to the postmaster.
    DoubleBounce,
}

/// The facts a message text is made from.
#[derive(Debug, Clone, Copy)]
pub struct MessageText<'a> {
    /// Ordinary, bounce or double bounce.
    pub kind: Kind,
    /// The pid in qmail-queue's `Received:` line.
    pub qmail_pid: u32,
    /// How qmail-queue was invoked.
    pub invoker: Invoker,
    /// Envelope sender.
    pub sender: &'a [u8],
    /// Envelope recipients.
    pub recipients: &'a [Vec<u8>],
    /// Queue time (seconds since the epoch).
    pub birth: i64,
    /// Make a 100–300 KB message with an attachment.
    pub large: bool,
}

/// Writes the complete text of a message into `out` (cleared first).
pub fn write_message(out: &mut Vec<u8>, rng: &mut Rng, m: &MessageText<'_>) {
    out.clear();
    out.extend_from_slice(b"Received: (qmail ");
    let _ = write!(out, "{} invoked ", m.qmail_pid);
    match m.invoker {
        Invoker::Network => out.extend_from_slice(b"from network"),
        Invoker::Uid(u) => {
            let _ = write!(out, "by uid {u}");
        }
        Invoker::Alias => out.extend_from_slice(b"by alias"),
        Invoker::Bounce => out.extend_from_slice(b"for bounce"),
    }
    out.extend_from_slice(b"); ");
    write_date822(out, m.birth);
    out.push(b'\n');
    match m.kind {
        Kind::Normal => write_normal(out, rng, m),
        Kind::Bounce | Kind::DoubleBounce => write_bounce(out, rng, m),
    }
}

fn write_smtp_received(out: &mut Vec<u8>, rng: &mut Rng, t: i64) {
    let _ = write!(
        out,
        "Received: from unknown (HELO mx{}.{}) ({}.{}.{}.{})\n  by {LOCAL_HOST} with SMTP; ",
        rng.below(9),
        REMOTE_DOMAINS[rng.index(REMOTE_DOMAINS.len())].0,
        [198, 203, 192][rng.index(3)],
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    );
    write_date822(out, t);
    out.push(b'\n');
}

fn write_subject(out: &mut Vec<u8>, rng: &mut Rng) {
    out.extend_from_slice(b"Subject: ");
    let x = rng.unit();
    if x < 0.55 {
        out.extend_from_slice(rng.pick(PLAIN_SUBJECTS).as_bytes());
    } else if x < 0.75 {
        out.extend_from_slice(b"=?UTF-8?B?");
        base64_into(out, rng.pick(UTF8_SUBJECTS).as_bytes());
        out.extend_from_slice(b"?=");
    } else if x < 0.85 {
        // A long encoded subject folded over two lines, split at a
        // character boundary into two encoded words.
        let s = rng.pick(UTF8_SUBJECTS);
        let mid = s.char_indices().nth(s.chars().count() / 2).map_or(s.len(), |c| c.0);
        out.extend_from_slice(b"=?UTF-8?B?");
        base64_into(out, &s.as_bytes()[..mid]);
        out.extend_from_slice(b"?=\n =?UTF-8?B?");
        base64_into(out, &s.as_bytes()[mid..]);
        out.extend_from_slice(b"?=");
    } else if x < 0.92 {
        out.extend_from_slice(rng.pick(Q_SUBJECTS).as_bytes());
    } else {
        out.extend_from_slice(
            b"Re: Your account statement for the period ending 30 September\n is now available online",
        );
    }
    out.push(b'\n');
}

fn write_body_lines(out: &mut Vec<u8>, rng: &mut Rng, min: u64, max: u64) {
    let lines = rng.range(min, max);
    for l in 0..lines {
        let words = rng.range(6, 14);
        for w in 0..words {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(rng.pick(WORDS).as_bytes());
        }
        out.extend_from_slice(if l % 5 == 4 { b".\n\n" } else { b"\n" });
    }
}

fn write_normal(out: &mut Vec<u8>, rng: &mut Rng, m: &MessageText<'_>) {
    if m.invoker == Invoker::Network {
        write_smtp_received(out, rng, m.birth);
    }
    let sent = m.birth - rng.range(0, 120) as i64;
    out.extend_from_slice(b"Date: ");
    write_date2822(out, sent, [-300, 0, 60, 120, 330, 540][rng.index(6)]);
    out.push(b'\n');
    let flood = m.sender == FLOOD_SENDER.as_bytes();
    out.extend_from_slice(b"From: ");
    if flood {
        out.extend_from_slice(b"\"Best Deals\" <");
    } else {
        out.extend_from_slice(b"<");
    }
    out.extend_from_slice(m.sender);
    out.extend_from_slice(b">\nTo: ");
    for (i, r) in m.recipients.iter().enumerate() {
        if i > 0 {
            // Fold the To: line after every second address.
            out.extend_from_slice(if i % 2 == 0 { b",\n\t" } else { b", " });
        }
        out.extend_from_slice(r);
    }
    out.push(b'\n');
    write_subject(out, rng);
    let _ = writeln!(
        out,
        "Message-ID: <{:016x}.{}@{}>",
        rng.next_u64(),
        m.qmail_pid,
        m.sender.rsplit(|&b| b == b'@').next().map_or("localhost".into(), String::from_utf8_lossy)
    );
    if rng.chance(0.3) {
        let _ = write!(
            out,
            "References: <{:x}@mail.example.com>\n <{:x}@mail.example.com>\n",
            rng.next_u64(),
            rng.next_u64()
        );
    }
    if rng.chance(0.6) {
        let _ = writeln!(out, "X-Mailer: {}", rng.pick(MAILERS));
    }
    out.extend_from_slice(b"MIME-Version: 1.0\n");
    if m.large {
        let boundary = rng.next_u64();
        let _ = write!(
            out,
            "Content-Type: multipart/mixed;\n\tboundary=\"=_{boundary:016x}\"\n\nThis is a multi-part message in MIME format.\n\n--=_{boundary:016x}\nContent-Type: text/plain; charset=UTF-8\n\n"
        );
        write_body_lines(out, rng, 3, 10);
        let size = rng.range(100 * 1024, 300 * 1024) as usize;
        let _ = write!(
            out,
            "\n--=_{boundary:016x}\nContent-Type: application/pdf; name=\"report.pdf\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment;\n\tfilename=\"report.pdf\"\n\n"
        );
        let mut raw = [0u8; 57];
        while out.len() < size {
            for chunk in raw.chunks_mut(8) {
                let v = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            base64_into(out, &raw);
            out.push(b'\n');
        }
        let _ = write!(out, "\n--=_{boundary:016x}--\n");
    } else {
        out.extend_from_slice(b"Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n");
        write_body_lines(out, rng, 3, 25);
        if rng.chance(0.5) {
            let _ = write!(out, "\n-- \n{}\n", String::from_utf8_lossy(m.sender));
        }
    }
}

/// Appends a qmail-send failure report as it is kept in `bounce/N`:
/// `<address>:\n`, the report, `\n`.
pub fn write_bounce_report(out: &mut Vec<u8>, rng: &mut Rng, address: &[u8]) {
    out.push(b'<');
    out.extend_from_slice(address);
    out.extend_from_slice(b">:\n");
    out.extend_from_slice(rng.pick(FAILURES).as_bytes());
    out.extend_from_slice(b"\n\n");
}

fn write_bounce(out: &mut Vec<u8>, rng: &mut Rng, m: &MessageText<'_>) {
    let to = m.recipients.first().map_or(&b"postmaster"[..], |r| &r[..]);
    out.extend_from_slice(b"Date: ");
    write_date822(out, m.birth);
    let _ = write!(out, "\nFrom: MAILER-DAEMON@{LOCAL_HOST}\nTo: ");
    out.extend_from_slice(to);
    let _ = write!(out, "\nSubject: failure notice\n\nHi. This is the qmail-send program at {LOCAL_HOST}.\n");
    let mut failed = Vec::with_capacity(64);
    if m.kind == Kind::DoubleBounce {
        out.extend_from_slice(b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n");
        remote_address(&mut failed, rng);
        write_bounce_report(out, rng, &failed);
        out.extend_from_slice(b"--- Below this line is the original bounce.\n\nReturn-Path: <>\n");
        let _ = write!(out, "Received: (qmail {} invoked for bounce); ", rng.range(1000, 99_999));
        write_date822(out, m.birth - 3600);
        let _ = write!(
            out,
            "\nDate: {}\nFrom: MAILER-DAEMON@{LOCAL_HOST}\nTo: ",
            String::from_utf8_lossy(&{
                let mut d = Vec::new();
                write_date822(&mut d, m.birth - 3600);
                d
            })
        );
        out.extend_from_slice(&failed);
        let _ = write!(out, "\nSubject: failure notice\n\nHi. This is the qmail-send program at {LOCAL_HOST}.\n");
        out.extend_from_slice(b"I'm afraid I wasn't able to deliver your message to the following addresses.\n");
    } else {
        out.extend_from_slice(b"I'm afraid I wasn't able to deliver your message to the following addresses.\n");
        out.extend_from_slice(b"This is a permanent error; I've given up. Sorry it didn't work out.\n\n");
        if rng.chance(0.7) {
            remote_address(&mut failed, rng);
        } else {
            local_address(&mut failed, rng);
        }
        write_bounce_report(out, rng, &failed);
        out.extend_from_slice(b"--- Below this line is a copy of the message.\n\nReturn-Path: <");
        out.extend_from_slice(to);
        out.extend_from_slice(b">\n");
        let _ = write!(out, "Received: (qmail {} invoked from network); ", rng.range(1000, 99_999));
        write_date822(out, m.birth - 600);
        out.extend_from_slice(b"\nDate: ");
        write_date2822(out, m.birth - 700, 0);
        out.extend_from_slice(b"\nFrom: <");
        out.extend_from_slice(to);
        out.extend_from_slice(b">\nTo: ");
        out.extend_from_slice(&failed);
        out.push(b'\n');
        write_subject(out, rng);
        out.push(b'\n');
        write_body_lines(out, rng, 2, 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut v = Vec::new();
        write_date822(&mut v, 812_090_814);
        assert_eq!(v, b"26 Sep 1995 04:46:54 -0000");
        v.clear();
        write_date2822(&mut v, 0, 120);
        assert_eq!(v, b"Thu, 1 Jan 1970 02:00:00 +0200");
        assert_eq!(civil(951_782_400).1, 2); // 2000-02-29
        assert_eq!(civil(951_782_400).2, 29);
        v.clear();
        write_date2822(&mut v, 1_700_000_000, -300);
        assert_eq!(v, b"Tue, 14 Nov 2023 17:13:20 -0500");
    }

    #[test]
    fn base64() {
        let mut v = Vec::new();
        base64_into(&mut v, b"foobar");
        base64_into(&mut v, b"f");
        base64_into(&mut v, b"fo");
        assert_eq!(v, b"Zm9vYmFyZg==Zm8=");
    }

    #[test]
    fn message_starts_like_qmail_queue() {
        let mut rng = Rng::new(1);
        let mut out = Vec::new();
        let r = vec![b"a@gmail.example".to_vec(), b"b@gmail.example".to_vec(), b"c@x.example".to_vec()];
        for kind in [Kind::Normal, Kind::Bounce, Kind::DoubleBounce] {
            for large in [false, true] {
                let m = MessageText {
                    kind,
                    qmail_pid: 4242,
                    invoker: Invoker::Network,
                    sender: b"x@y.example",
                    recipients: &r,
                    birth: 1_700_000_000,
                    large,
                };
                write_message(&mut out, &mut rng, &m);
                assert!(out.starts_with(b"Received: (qmail 4242 invoked from network); 14 Nov 2023 22:13:20 -0000\n"));
                assert!(out.windows(2).any(|w| w == b"\n\n"));
                if kind == Kind::Normal && large {
                    assert!(out.len() >= 100 * 1024);
                }
                if kind != Kind::Normal {
                    assert!(out.windows(14).any(|w| w == b"failure notice"));
                }
            }
        }
        assert!(is_local_domain(b"x@localdomain.example"));
        assert!(!is_local_domain(b"x@gmail.example"));
    }
}
