//! The library's error type: every failure names what was being done and to
//! which path, so a tool can print one clear line and go on. Its display is
//! safe for a terminal: paths and texts come out escaped (control bytes,
//! DEL, bytes that are not printable ASCII, as [`Escaped`] writes them), so
//! a tool prints an error as it is and never escapes it again.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Result alias used throughout `qcommon`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by `qcommon`. The library never prints and never exits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on a path.
    #[error("{op} {}: {}", path_text(.path), errno_text(*.errno))]
    Sys {
        /// What was being done ("open", "rename", "read", ...).
        op: &'static str,
        /// The path it was done to (display path, relative to nothing).
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A file that had to be a regular file (or directory) was something else.
    #[error("{op} {}: not a {expected} (found {found})", path_text(.path))]
    WrongKind {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// What kind it had to be.
        expected: &'static str,
        /// What kind it was.
        found: &'static str,
    },
    /// A file changed between the scan and the change (inode, type or link
    /// count differ): the change was refused.
    #[error("{op} {}: changed since it was scanned ({}); left alone", path_text(.path), escape_text(.detail))]
    Changed {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// What differed.
        detail: String,
    },
    /// An envelope file could not be parsed.
    #[error("{}: {}", path_text(.path), escape_text(&.kind.to_string()))]
    Envelope {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        kind: crate::envelope::EnvelopeError,
    },
    /// The queue's layout (split, ids, home) could not be decided.
    #[error("{}", escape_text(.0))]
    Layout(String),
    /// A signal asked the run to stop (see [`crate::interrupt`]).
    #[error("interrupted by a signal")]
    Interrupted,
    /// Anything else, described in full.
    #[error("{}", escape_text(.0))]
    Other(String),
}

fn path_text(p: &Path) -> String {
    escape_path(p)
}

fn errno_text(e: Errno) -> String {
    format!("{} ({})", e.desc(), e)
}

impl Error {
    /// A system-call error on `path` while doing `op`.
    pub fn sys(op: &'static str, path: impl AsRef<Path>, errno: Errno) -> Self {
        Error::Sys { op, path: path.as_ref().to_path_buf(), errno }
    }

    /// The errno behind this error, when it is a system-call error.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// True when the file simply was not there (it may have vanished while
    /// qmail-send works: never an error for a reader).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::ENOENT)
    }
}

/// Displays a byte string with every byte that is not printable ASCII
/// escaped (`\n`, `\x1b`, ...), so untrusted names and addresses are safe to
/// put on a terminal.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\r' => f.write_str("\\r")?,
                0x20..=0x7e => fmt::Write::write_char(f, b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Escapes a path for a terminal (see [`Escaped`]).
pub fn escape_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    Escaped(p.as_os_str().as_bytes()).to_string()
}

/// Escapes a message for a terminal: every control or non-ASCII byte is
/// escaped as [`Escaped`] does, a backslash is left as it is. Text that was
/// already escaped (a path put in with [`escape_path`]) therefore comes out
/// unchanged, so a tool may pass every message through this on its way to
/// stderr without escaping anything twice.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for chunk in s.as_bytes().split(|&b| b == b'\\') {
        out.push_str(&Escaped(chunk).to_string());
        out.push('\\');
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_non_utf8() {
        assert_eq!(Escaped(b"a\nb\x1b[31m\xff").to_string(), "a\\nb\\x1b[31m\\xff");
        assert_eq!(Escaped(b"plain 123").to_string(), "plain 123");
        assert_eq!(Escaped(b"back\\slash").to_string(), "back\\\\slash");
    }

    #[test]
    fn escape_text_escapes_once() {
        let raw = "open /q\x1b[31mX\x07: no";
        let once = escape_text(raw);
        assert_eq!(once, "open /q\\x1b[31mX\\x07: no");
        assert_eq!(escape_text(&once), once);
        assert_eq!(escape_text(&format!("path {}", escape_path(Path::new("/a\n\\b")))), "path /a\\n\\\\b");
        assert_eq!(escape_text("back\\slash\n"), "back\\slash\\n");
        assert_eq!(escape_text(""), "");
        assert_eq!(escape_text("\\"), "\\");
        assert_eq!(escape_text("caf\u{e9}"), "caf\\xc3\\xa9");
    }

    #[test]
    fn display_escapes_paths_and_texts_once() {
        let e = Error::sys("open", "/q/a\x1b[31m\x7f\\b", Errno::EACCES);
        assert!(e.to_string().starts_with("open /q/a\\x1b[31m\\x7f\\\\b: "), "{e}");
        assert_eq!(escape_text(&e.to_string()), e.to_string());
        use std::os::unix::ffi::OsStrExt;
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/q/\xff\n"));
        let e = Error::WrongKind { op: "open", path: bad.into(), expected: "file", found: "fifo" };
        assert_eq!(e.to_string(), "open /q/\\xff\\n: not a file (found fifo)");
        let e = Error::Changed { op: "unlink", path: "x".into(), detail: "inode\x07".into() };
        assert_eq!(e.to_string(), "unlink x: changed since it was scanned (inode\\x07); left alone");
        // A text that holds an escaped path already is not escaped twice.
        let e = Error::Other(format!("bad path {}", escape_path(Path::new("a\x1bb\\c"))));
        assert_eq!(e.to_string(), "bad path a\\x1bb\\\\c");
        assert_eq!(Error::Layout("split \x1b".into()).to_string(), "split \\x1b");
    }

    #[test]
    fn sys_error_names_op_and_path() {
        let e = Error::sys("open", "/q/mess/1/42", Errno::EACCES);
        let s = e.to_string();
        assert!(s.starts_with("open /q/mess/1/42: "), "{s}");
        assert!(s.contains("EACCES"), "{s}");
        assert!(!e.is_not_found());
        assert!(Error::sys("stat", "x", Errno::ENOENT).is_not_found());
    }
}
