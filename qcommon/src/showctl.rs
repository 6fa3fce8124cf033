//! Parser of `qmail-showctl`'s output. This module owns the knowledge of
//! the three lines the tools need from it — `subdirectory split: N.`,
//! `user ids: A, D, L, O, P, Q, R, S.` and `group ids: N, Q.` — which give
//! the values qmail was compiled with (the authority on the queue's split
//! and on the numeric ids of its owners).
//!
//! The parser takes any bytes: it never panics, ignores every other line,
//! and fails only for one of those three lines when it is present but
//! malformed. `qmail-showctl` prints these compiled-in values first, before
//! any control file's contents, so only the first occurrence of each line
//! counts: a control file whose text happens to look like one of them (a
//! `badmailfrom` entry, say) cannot override it.

use crate::error::Escaped;
use crate::queue::Ids;

/// What `qmail-showctl` said about the queue's layout. A field is `None`
/// when its line was not in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShowctlFacts {
    /// `subdirectory split: N.` (conf-split), at least 1.
    pub split: Option<u32>,
    /// `user ids:`, in qmail's order: alias, qmaild, qmaill, root, qmailp,
    /// qmailq, qmailr, qmails.
    pub user_ids: Option<[u32; 8]>,
    /// `group ids:`, in qmail's order: nofiles, qmail.
    pub group_ids: Option<[u32; 2]>,
}

/// Index of qmailq in [`ShowctlFacts::user_ids`].
const QMAILQ: usize = 5;
/// Index of qmailr in [`ShowctlFacts::user_ids`].
const QMAILR: usize = 6;
/// Index of qmails in [`ShowctlFacts::user_ids`].
const QMAILS: usize = 7;
/// Index of group qmail in [`ShowctlFacts::group_ids`].
const QMAIL_GID: usize = 1;

impl ShowctlFacts {
    /// The ids of the queue's owners (qmailq, qmailr, qmails and group
    /// qmail), when both the `user ids:` and `group ids:` lines were seen.
    pub fn ids(&self) -> Option<Ids> {
        let u = self.user_ids?;
        let g = self.group_ids?;
        Some(Ids { qmailq: u[QMAILQ], qmails: u[QMAILS], qmailr: u[QMAILR], qmail_gid: g[QMAIL_GID] })
    }
}

const SPLIT_PREFIX: &[u8] = b"subdirectory split:";
const USER_IDS_PREFIX: &[u8] = b"user ids:";
const GROUP_IDS_PREFIX: &[u8] = b"group ids:";

/// At most this many bytes of a bad line are quoted in an error.
const QUOTE_MAX: usize = 80;

/// Parses the output of `qmail-showctl`. Lines other than the split, user
/// ids and group ids lines are ignored, and so is any repeat of one of
/// those (the first occurrence counts). A line ending in `\r`, extra blanks
/// around the numbers, or a missing final `.` are tolerated.
///
/// Errors name the line (by number, quoted with unprintable bytes escaped)
/// and say what is wrong with it: a word that is not a decimal number, a
/// number too large for 32 bits, the wrong count of numbers, or a split of 0.
pub fn parse_showctl(text: &[u8]) -> Result<ShowctlFacts, String> {
    let mut facts = ShowctlFacts::default();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = raw.trim_ascii_end();
        let lineno = i + 1;
        if let Some(rest) = line.strip_prefix(SPLIT_PREFIX) {
            if facts.split.is_some() {
                continue;
            }
            let [split] = numbers::<1>(rest).map_err(|why| bad_line(lineno, line, &why))?;
            if split == 0 {
                return Err(bad_line(lineno, line, "the split must be at least 1"));
            }
            facts.split = Some(split);
        } else if let Some(rest) = line.strip_prefix(USER_IDS_PREFIX) {
            if facts.user_ids.is_some() {
                continue;
            }
            facts.user_ids = Some(numbers::<8>(rest).map_err(|why| bad_line(lineno, line, &why))?);
        } else if let Some(rest) = line.strip_prefix(GROUP_IDS_PREFIX) {
            if facts.group_ids.is_some() {
                continue;
            }
            facts.group_ids = Some(numbers::<2>(rest).map_err(|why| bad_line(lineno, line, &why))?);
        }
    }
    Ok(facts)
}

/// The message for a malformed line.
fn bad_line(lineno: usize, line: &[u8], why: &str) -> String {
    let (shown, more) = if line.len() > QUOTE_MAX { (&line[..QUOTE_MAX], "...") } else { (line, "") };
    format!("qmail-showctl output line {lineno} \"{}{more}\": {why}", Escaped(shown))
}

/// Parses `N1, N2, ... Nn.` (exactly `N` comma-separated decimal numbers,
/// an optional final dot).
fn numbers<const N: usize>(rest: &[u8]) -> Result<[u32; N], String> {
    let mut body = rest.trim_ascii();
    if let Some(b) = body.strip_suffix(b".") {
        body = b.trim_ascii_end();
    }
    let mut out = [0u32; N];
    let mut count = 0usize;
    if !body.is_empty() {
        for word in body.split(|&b| b == b',') {
            if count < N {
                out[count] = number(word.trim_ascii())?;
            }
            count += 1;
        }
    }
    if count != N {
        let what = if N == 1 { "number" } else { "numbers" };
        return Err(format!("expected {N} {what}, found {count}"));
    }
    Ok(out)
}

/// Parses one decimal number that fits in 32 bits.
fn number(word: &[u8]) -> Result<u32, String> {
    if word.is_empty() {
        return Err("a number is missing".to_string());
    }
    if !word.iter().all(u8::is_ascii_digit) {
        return Err(format!("\"{}\" is not a decimal number", quote(word)));
    }
    let mut n: u32 = 0;
    for &b in word {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(b - b'0')))
            .ok_or_else(|| format!("{} is too large (more than {})", quote(word), u32::MAX))?;
    }
    Ok(n)
}

/// A word quoted for a message, escaped and cut short.
fn quote(word: &[u8]) -> String {
    if word.len() > QUOTE_MAX {
        format!("{}...", Escaped(&word[..QUOTE_MAX]))
    } else {
        Escaped(word).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What qmail-showctl prints on a typical installation (its layout:
    /// compiled-in values first, then one paragraph per control file).
    const SAMPLE: &[u8] = b"qmail home directory: /var/qmail.
user-ext delimiter: -.
paternalism (in decimal): 2.
silent concurrency limit: 120.
subdirectory split: 23.
user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.
group ids: 2108, 2107.

badmailfrom: (Default.) Any MAIL FROM is allowed.

bouncefrom: (Default.) Bounce user name is MAILER-DAEMON.

concurrencylocal: (Default.) Local concurrency is 10.

locals: 
Messages for localhost are delivered locally.
Messages for mail.example.org are delivered locally.

me: My name is mail.example.org.

queuelifetime: (Default.) Message lifetime in the queue is 604800 seconds.

rcpthosts: 
SMTP clients may send messages to recipients at example.org.

morercpthosts.cdb: (Default.) No effect.

virtualdomains: (Default.) No virtual domains.

defaultdelivery: I have no idea what this file does.
";

    #[test]
    fn realistic_output() {
        let f = parse_showctl(SAMPLE).unwrap();
        assert_eq!(f.split, Some(23));
        assert_eq!(f.user_ids, Some([7790, 7791, 7792, 0, 7793, 7794, 7795, 7796]));
        assert_eq!(f.group_ids, Some([2108, 2107]));
        assert_eq!(f.ids(), Some(Ids { qmailq: 7794, qmailr: 7795, qmails: 7796, qmail_gid: 2107 }));
    }

    #[test]
    fn missing_lines_are_none() {
        let f = parse_showctl(b"qmail home directory: /var/qmail.\nsubdirectory split: 7.\n").unwrap();
        assert_eq!(f.split, Some(7));
        assert_eq!(f.user_ids, None);
        assert_eq!(f.ids(), None);
        let f = parse_showctl(b"user ids: 1, 2, 3, 0, 4, 5, 6, 7.\n").unwrap();
        assert_eq!(f.split, None);
        assert!(f.user_ids.is_some());
        assert_eq!(f.ids(), None, "no group ids line");
        assert_eq!(parse_showctl(b"").unwrap(), ShowctlFacts::default());
    }

    #[test]
    fn malformed_numbers_name_the_line() {
        let e = parse_showctl(b"a\nsubdirectory split: twenty.\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("not a decimal number"), "{e}");
        let e = parse_showctl(b"subdirectory split: -3.\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_showctl(b"subdirectory split: 0.\n").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = parse_showctl(b"subdirectory split: .\n").unwrap_err();
        assert!(e.contains("expected 1 number, found 0"), "{e}");
        let e = parse_showctl(b"user ids: 1, 2, 3.\n").unwrap_err();
        assert!(e.contains("expected 8 numbers, found 3"), "{e}");
        let e = parse_showctl(b"group ids: 1, , 2.\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_showctl(b"group ids: 1,2,3.\n").unwrap_err();
        assert!(e.contains("expected 2 numbers, found 3"), "{e}");
        let e = parse_showctl(b"group ids: 1 2.\n").unwrap_err();
        assert!(e.contains("not a decimal number"), "{e}");
    }

    #[test]
    fn huge_numbers_are_refused() {
        assert_eq!(parse_showctl(b"subdirectory split: 4294967295.").unwrap().split, Some(u32::MAX));
        let e = parse_showctl(b"subdirectory split: 4294967296.\n").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let long = format!("subdirectory split: {}.", "9".repeat(10_000));
        let e = parse_showctl(long.as_bytes()).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(e.len() < 400, "the message quotes a bounded part: {}", e.len());
        // What a 64-bit qmail-showctl prints for an id of -1.
        let e = parse_showctl(b"user ids: 18446744073709551615, 1, 2, 3, 4, 5, 6, 7.\n").unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn garbage_and_binary_input() {
        assert_eq!(parse_showctl(b"\x00\xff\xfe garbage\n\n\x1b[31m\r\n").unwrap(), ShowctlFacts::default());
        let e = parse_showctl(b"subdirectory split: \xff\x00.\n").unwrap_err();
        assert!(e.contains("\\xff\\x00"), "unprintable bytes are escaped: {e}");
        for b in 0..=255u8 {
            let mut v = b"subdirectory split: ".to_vec();
            v.push(b);
            let _ = parse_showctl(&v);
            let mut v = b"user ids:".to_vec();
            v.extend_from_slice(&[b; 50]);
            let _ = parse_showctl(&v);
        }
        // A pseudo-random soup of bytes, including the prefixes.
        let mut x: u32 = 12345;
        let mut soup = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match x >> 28 {
                0 => soup.extend_from_slice(SPLIT_PREFIX),
                1 => soup.extend_from_slice(USER_IDS_PREFIX),
                2 => soup.extend_from_slice(GROUP_IDS_PREFIX),
                3 => soup.push(b'\n'),
                4 => soup.push(b','),
                _ => soup.push((x >> 16) as u8),
            }
        }
        let _ = parse_showctl(&soup);
    }

    #[test]
    fn tolerated_variations() {
        let f = parse_showctl(b"subdirectory split: 23.\r\ngroup ids:2108,2107\r\n").unwrap();
        assert_eq!(f.split, Some(23));
        assert_eq!(f.group_ids, Some([2108, 2107]));
        let f = parse_showctl(b"subdirectory split:   101  \n").unwrap();
        assert_eq!(f.split, Some(101));
    }

    #[test]
    fn first_occurrence_wins() {
        // A control file listed after the compiled-in values cannot
        // override them, even if malformed.
        let text = b"subdirectory split: 23.\ngroup ids: 1, 2.\n\nbadmailfrom: \n\
                     subdirectory split: 99 not accepted in MAIL FROM.\n\
                     group ids: I have no idea what this file does.\n";
        let f = parse_showctl(text).unwrap();
        assert_eq!(f.split, Some(23));
        assert_eq!(f.group_ids, Some([1, 2]));
    }

    #[test]
    fn other_lines_that_merely_mention_the_words_are_ignored() {
        let f = parse_showctl(b"x subdirectory split: 5.\n user ids: 1.\nmy group ids: 3.\n").unwrap();
        assert_eq!(f, ShowctlFacts::default());
    }
}
