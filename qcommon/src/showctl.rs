//! `qmail-showctl`: running it ([`run`]) and parsing its output
//! ([`parse_showctl`]). This module owns the checks made before it is run
//! (a regular, executable file that only its owner may write) and the
//! knowledge of the three lines the tools need from it — `subdirectory split: N.`,
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

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::error::Escaped;
use crate::queue::Ids;

/// At most this much of `qmail-showctl`'s output is read.
const OUTPUT_CAP: u64 = 1 << 20;

/// Runs `qmail-showctl` at `path` with no arguments and parses what it
/// prints. It runs under [`crate::spawn::run_captured`]: stdin from
/// `/dev/null`, in a process group of its own that is killed whole when it
/// exits, when it runs over `timeout`, or when a stop signal arrives
/// meanwhile (the signal is then acted on). It is not run when it is not
/// a regular executable file, or when its group or others may write it.
///
/// The error says why nothing could be learnt (without the path). A
/// non-zero exit is accepted when the output holds the split: qmail-showctl
/// prints its compiled-in values before it reads the control files, and
/// exits 111 when it cannot.
pub fn run(path: &Path, timeout: Duration) -> Result<ShowctlFacts, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("not found".to_string()),
        Err(e) => return Err(format!("cannot stat it: {e}")),
    };
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err("not executable".to_string());
    }
    if mode & 0o022 != 0 {
        return Err(format!("writable by group or others (mode {:04o}), not run", mode & 0o7777));
    }
    let (status, out) = crate::spawn::run_captured(path, timeout, OUTPUT_CAP)?;
    let facts = parse_showctl(&out)?;
    if !status.success() && facts.split.is_none() {
        return Err(format!("it failed ({status}) and printed no split"));
    }
    Ok(facts)
}

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
    use std::fs;
    use std::time::Instant;

    fn write_script(path: &Path, body: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_hanging_showctl_is_killed() {
        let t = tempfile::tempdir().unwrap();
        let showctl = t.path().join("qmail-showctl");
        write_script(&showctl, "echo 'subdirectory split: 3.'\nexec sleep 30\n", 0o755);
        let start = Instant::now();
        let e = run(&showctl, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// True once `pid` is gone or has exited (a zombie that an init which
    /// does not reap may keep), waiting a while for the kill to land.
    fn ends(pid: u32) -> bool {
        let stat = Path::new("/proc").join(pid.to_string()).join("stat");
        for _ in 0..1000 {
            match fs::read_to_string(&stat) {
                Err(_) => return true,
                Ok(s) if s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])) => {
                    return true
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        false
    }

    /// Reads the pid a script wrote, waiting for it to be there.
    fn read_pid(p: &Path) -> u32 {
        for _ in 0..500 {
            if let Ok(t) = fs::read_to_string(p) {
                if let Ok(n) = t.trim().parse() {
                    return n;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no pid in {}", p.display());
    }

    #[test]
    fn a_hanging_showctl_is_killed_with_what_it_started() {
        if !Path::new("/proc/self/stat").exists() {
            println!("skipped: a_hanging_showctl_is_killed_with_what_it_started: no /proc");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let showctl = t.path().join("qmail-showctl");
        let pidfile = t.path().join("sleeper.pid");
        // A sleeper in the background that keeps the output open, then a
        // hang.
        write_script(
            &showctl,
            &format!("echo 'subdirectory split: 3.'\nsleep 300 &\necho $! > {}\nwait\n", pidfile.display()),
            0o755,
        );
        let e = run(&showctl, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("ran longer than 2.0 s and was killed, with every process it started"), "{e}");
        let sleeper = read_pid(&pidfile);
        assert!(ends(sleeper), "the background sleeper {sleeper} survived the time limit");

        // One that prints and exits but leaves a sleeper holding its
        // output: the sleeper is killed, the output is used.
        fs::remove_file(&pidfile).unwrap();
        write_script(
            &showctl,
            &format!("echo 'subdirectory split: 3.'\nsleep 300 &\necho $! > {}\nexit 0\n", pidfile.display()),
            0o755,
        );
        let facts = run(&showctl, Duration::from_secs(30)).unwrap();
        assert_eq!(facts.split, Some(3));
        let sleeper = read_pid(&pidfile);
        assert!(ends(sleeper), "the sleeper {sleeper} left behind survived");
    }

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
