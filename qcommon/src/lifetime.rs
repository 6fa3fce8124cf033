//! `control/queuelifetime`: how long qmail-send keeps trying a message.
//! This module owns reading it the way qmail-send does, for every tool
//! (qstat's breakdown, qkillns `--expire`).
//!
//! qmail-send reads the first line with `control_readint`: the leading
//! decimal digits count; a file that is absent, or whose first line does
//! not start with a digit, leaves the default of 604800 seconds (one week).
//! A message is given up when `now > birth + queuelifetime`, its birth
//! being the mtime of its info file.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::escape_path;

/// qmail's default queuelifetime.
pub const DEFAULT_LIFETIME: u64 = 604_800;

/// Where the queuelifetime in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifetimeSource {
    /// Read from this file.
    File(PathBuf),
    /// The default, and why.
    Default(String),
}

/// The queuelifetime in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    /// Seconds.
    pub seconds: u64,
    /// Where it came from.
    pub source: LifetimeSource,
}

impl Lifetime {
    /// Where it came from, as a code: `file` or `default`.
    pub fn source_code(&self) -> &'static str {
        match &self.source {
            LifetimeSource::File(_) => "file",
            LifetimeSource::Default(_) => "default",
        }
    }

    /// Words for reports: `from /var/qmail/control/queuelifetime` or
    /// `default: ...`.
    pub fn source_text(&self) -> String {
        match &self.source {
            LifetimeSource::File(p) => format!("from {}", escape_path(p)),
            LifetimeSource::Default(why) => format!("default: {why}"),
        }
    }
}

/// Reads `<home>/control/queuelifetime`. Returns the lifetime and, when
/// the file is there but odd, a warning to print.
pub fn read_lifetime(home: Option<&Path>) -> (Lifetime, Option<String>) {
    read_lifetime_file(home.map(|h| h.join("control").join("queuelifetime")).as_deref())
}

/// Reads the queuelifetime file at `path` (`None`: qmail's home, so the
/// file, is not known). Returns the lifetime and, when the file is there
/// but odd, a warning to print.
pub fn read_lifetime_file(path: Option<&Path>) -> (Lifetime, Option<String>) {
    let Some(path) = path else {
        let why = "qmail's home is not known".to_string();
        return (Lifetime { seconds: DEFAULT_LIFETIME, source: LifetimeSource::Default(why) }, None);
    };
    let path = path.to_path_buf();
    let shown = escape_path(&path);
    let default = |why: String| Lifetime { seconds: DEFAULT_LIFETIME, source: LifetimeSource::Default(why) };
    let data = match read_small(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (default(format!("{shown} is absent")), None),
        Err(e) => {
            let why = format!("cannot read {shown}: {e}");
            return (default(why.clone()), Some(format!("{why}; using the default {DEFAULT_LIFETIME} s")));
        }
    };
    match parse(&data) {
        Parsed::Value(n) => (Lifetime { seconds: n, source: LifetimeSource::File(path) }, None),
        Parsed::ValueWithJunk(n) => (
            Lifetime { seconds: n, source: LifetimeSource::File(path) },
            Some(format!("{shown}: text after the number; read as {n}, as qmail-send reads it")),
        ),
        Parsed::Empty => (default(format!("{shown} is empty")), None),
        Parsed::Garbage => {
            let why = format!("{shown} does not start with a number");
            (default(why.clone()), Some(format!("{why}; using the default {DEFAULT_LIFETIME} s, as qmail-send does")))
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Value(u64),
    ValueWithJunk(u64),
    Empty,
    Garbage,
}

fn parse(data: &[u8]) -> Parsed {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return if line.iter().all(|b| b.is_ascii_whitespace()) && data.iter().all(|b| b.is_ascii_whitespace()) {
            Parsed::Empty
        } else {
            Parsed::Garbage
        };
    }
    // qmail's scan_ulong: digits, wrapping on overflow; saturate instead.
    let n = line[..digits].iter().fold(0u64, |n, &b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
    if line[digits..].iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r') {
        Parsed::Value(n)
    } else {
        Parsed::ValueWithJunk(n)
    }
}

/// Reads at most 4 KB of a control file, following a link as qmail does
/// (it is outside the queue), without changing its access time where
/// permitted, never blocking on a FIFO.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let base = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let open = |extra: i32| std::fs::OpenOptions::new().read(true).custom_flags(base | extra).open(path);
    let file: File = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        r => r?,
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut data = Vec::new();
    file.take(4096).read_to_end(&mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_qmail_does() {
        assert_eq!(parse(b"3600\n"), Parsed::Value(3600));
        assert_eq!(parse(b"3600"), Parsed::Value(3600));
        assert_eq!(parse(b"3600 \t\r\nignored"), Parsed::Value(3600));
        assert_eq!(parse(b"0\n"), Parsed::Value(0));
        assert_eq!(parse(b"12abc\n"), Parsed::ValueWithJunk(12));
        assert_eq!(parse(b""), Parsed::Empty);
        assert_eq!(parse(b"\n"), Parsed::Empty);
        assert_eq!(parse(b"one week\n"), Parsed::Garbage);
        assert_eq!(parse(b" 3600\n"), Parsed::Garbage);
        assert_eq!(parse(b"99999999999999999999999"), Parsed::Value(u64::MAX));
    }

    #[test]
    fn reads_the_control_file() {
        let t = tempfile::tempdir().unwrap();
        let (l, w) = read_lifetime(None);
        assert_eq!((l.seconds, w), (DEFAULT_LIFETIME, None));
        assert!(l.source_text().contains("home is not known"));

        let (l, w) = read_lifetime(Some(t.path()));
        assert_eq!((l.seconds, w), (DEFAULT_LIFETIME, None));
        assert!(l.source_text().contains("is absent"), "{}", l.source_text());

        std::fs::create_dir(t.path().join("control")).unwrap();
        let f = t.path().join("control/queuelifetime");
        std::fs::write(&f, b"86400\n").unwrap();
        let (l, w) = read_lifetime(Some(t.path()));
        assert_eq!((l.seconds, w), (86400, None));
        assert_eq!(l.source, LifetimeSource::File(f.clone()));

        std::fs::write(&f, b"forever\n").unwrap();
        let (l, w) = read_lifetime(Some(t.path()));
        assert_eq!(l.seconds, DEFAULT_LIFETIME);
        assert!(w.unwrap().contains("does not start with a number"));

        std::fs::remove_file(&f).unwrap();
        nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (l, w) = read_lifetime(Some(t.path()));
        assert_eq!(l.seconds, DEFAULT_LIFETIME);
        assert!(w.unwrap().contains("not a regular file"));
    }
}
