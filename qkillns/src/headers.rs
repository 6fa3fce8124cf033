//! The message header: this module owns reading the top of a mess file
//! (never the whole message) and the header filters and Subject that come
//! from it.
//!
//! The mess file is opened through the symlink-safe layer
//! (`Dir::open_regular`: no-follow, non-blocking, no access-time change)
//! from the queue's own directory handle, and read only up to the first
//! blank line, at most [`HEADER_CAP`] bytes. The header is parsed with
//! `mailparse`; values are unfolded and RFC 2047 words decoded. A header
//! that mailparse refuses as a whole (a stray continuation line, a lone CR)
//! is parsed field by field, skipping the lines it cannot take.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use mailparse::MailHeader;
use qcommon::error::Error;
use qcommon::safe_fs::{io_errno, Dir};
use rayon::prelude::*;

use crate::args::HeaderFilter;

/// The most of a message read to find its header.
pub const HEADER_CAP: usize = 256 * 1024;

/// Directory handles for reading mess files, opened from the queue root
/// without following links, a bounded number kept open.
#[derive(Debug, Default)]
pub struct DirCache {
    dirs: HashMap<PathBuf, Dir>,
}

const DIR_CACHE_MAX: usize = 64;

impl DirCache {
    /// The directory `rel` (relative to `root`).
    pub fn get(&mut self, root: &Dir, rel: &Path) -> Result<&Dir, Error> {
        if !self.dirs.contains_key(rel) {
            if self.dirs.len() >= DIR_CACHE_MAX {
                self.dirs.clear();
            }
            let mut d: Option<Dir> = None;
            for c in rel.components() {
                let Component::Normal(name) = c else {
                    return Err(Error::Other(format!("bad path {}", qcommon::error::escape_path(rel))));
                };
                let next = match &d {
                    None => root.open_dir(name)?,
                    Some(cur) => cur.open_dir(name)?,
                };
                d = Some(next);
            }
            let d = d.ok_or_else(|| Error::Other("empty path".into()))?;
            self.dirs.insert(rel.to_path_buf(), d);
        }
        Ok(&self.dirs[rel])
    }
}

/// Reads the header of the file `rel` (relative to `root`): the bytes up
/// to and including the first blank line, at most [`HEADER_CAP`]; when
/// the cap is reached first, up to the last complete line.
pub fn read_header(root: &Dir, cache: &mut DirCache, rel: &Path) -> Result<Vec<u8>, Error> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().unwrap_or(OsStr::new(""));
    let dir = cache.get(root, parent)?;
    let (file, _) = dir.open_regular(name)?;
    let mut file = file.take(HEADER_CAP as u64);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut scanned = 0;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::sys("read", dir.child_path(name), io_errno(&e))),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = header_end(&buf, scanned) {
            buf.truncate(end);
            return Ok(buf);
        }
        // A blank line may straddle two reads: look again from a little back.
        scanned = buf.len().saturating_sub(3);
        if buf.len() >= HEADER_CAP {
            let last_nl = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            buf.truncate(last_nl);
            return Ok(buf);
        }
    }
}

/// The end (exclusive) of the header in `buf`: just after the first blank
/// line (`\n\n` or `\n\r\n`), or a blank first line. Searching starts at
/// `from`.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if buf.starts_with(b"\n") {
            return Some(1);
        }
        if buf.starts_with(b"\r\n") {
            return Some(2);
        }
    }
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Parses a header block (see the module notes).
pub fn parse(raw: &[u8]) -> Vec<MailHeader<'_>> {
    if let Ok((h, _)) = mailparse::parse_headers(raw) {
        return h;
    }
    let mut out = Vec::new();
    let mut ix = 0;
    while ix < raw.len() {
        let rest = &raw[ix..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            break;
        }
        match mailparse::parse_header(rest) {
            Ok((h, used)) if used > 0 => {
                out.push(h);
                ix += used;
            }
            _ => match rest.iter().position(|&b| b == b'\n') {
                Some(p) => ix += p + 1,
                None => break,
            },
        }
    }
    out
}

/// What the header of one message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Looked {
    /// Not asked for.
    Skipped,
    /// The message has no mess file (or it vanished): no header can match.
    NoMessage,
    /// The header was read: whether every filter matched, and the Subject.
    Read {
        /// Every filter matched.
        matches: bool,
        /// The first Subject, decoded.
        subject: Option<String>,
    },
    /// It could not be read.
    Error(String),
}

/// Reads, parses and judges one message's header.
pub fn look(root: &Dir, cache: &mut DirCache, rel: Option<&Path>, filters: &[HeaderFilter]) -> Looked {
    let Some(rel) = rel else {
        return Looked::NoMessage;
    };
    match read_header(root, cache, rel) {
        Ok(raw) => {
            let hs = parse(&raw);
            Looked::Read { matches: matches_all(&hs, filters), subject: subject(&hs) }
        }
        Err(e) if e.is_not_found() => Looked::NoMessage,
        Err(e) => Looked::Error(e.to_string()),
    }
}

/// Most threads [`look_all`] reads with.
pub const READ_THREADS: usize = 8;

/// [`look`] for each path, in order, with up to [`READ_THREADS`] threads
/// (a rayon pool of its own, so that the reads in flight do not depend on
/// the number of cores): on a cold cache every read waits for the disk,
/// and several reads in flight keep it busy. Only the verdict and the
/// Subject come back, never the header itself, so memory stays small.
pub fn look_all(root: &Dir, paths: &[Option<PathBuf>], filters: &[HeaderFilter]) -> Vec<Looked> {
    let threads = paths.len().div_ceil(16).clamp(1, READ_THREADS);
    let pool = (threads > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()).flatten();
    let Some(pool) = pool else {
        let mut cache = DirCache::default();
        return paths.iter().map(|p| look(root, &mut cache, p.as_deref(), filters)).collect();
    };
    pool.install(|| {
        paths
            .par_iter()
            .with_min_len(16)
            .map_init(DirCache::default, |cache, p| look(root, cache, p.as_deref(), filters))
            .collect()
    })
}

/// True when every filter is matched by some header of `headers`.
pub fn matches_all(headers: &[MailHeader<'_>], filters: &[HeaderFilter]) -> bool {
    filters.iter().all(|f| {
        headers.iter().any(|h| h.get_key_ref().eq_ignore_ascii_case(&f.name) && f.regex.is_match(&h.get_value()))
    })
}

/// The first Subject, decoded and unfolded.
pub fn subject(headers: &[MailHeader<'_>]) -> Option<String> {
    headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case("subject")).map(MailHeader::get_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcommon::safe_fs::SymlinkBehavior;

    fn filter(s: &str) -> HeaderFilter {
        let (n, r) = s.split_once(": ").unwrap();
        HeaderFilter { name: n.into(), regex: regex::Regex::new(r).unwrap() }
    }

    #[test]
    fn finds_the_blank_line() {
        assert_eq!(header_end(b"A: b\n\nbody", 0), Some(6));
        assert_eq!(header_end(b"A: b\r\n\r\nbody", 0), Some(8));
        assert_eq!(header_end(b"\nbody", 0), Some(1));
        assert_eq!(header_end(b"A: b\nC: d\n", 0), None);
    }

    #[test]
    fn decodes_and_unfolds() {
        let raw = b"Received: (qmail 1 invoked by uid 0); 1 Jan 2020\nSubject: =?UTF-8?B?ZmFpbHVyZSBub3RpY2U=?=\n\tcontinued\nX-Tag: one\nX-Tag: two\n\nbody";
        let h = parse(raw);
        assert_eq!(subject(&h).as_deref(), Some("failure notice continued"));
        assert!(matches_all(&h, &[filter("subject: ^failure notice")]));
        assert!(matches_all(&h, &[filter("X-TAG: ^two$")]), "any occurrence matches");
        assert!(!matches_all(&h, &[filter("X-Tag: three")]));
        assert!(!matches_all(&h, &[filter("Subject: ^failure"), filter("X-Tag: three")]));
        assert!(matches_all(&h, &[]));
    }

    #[test]
    fn broken_lines_are_skipped() {
        let raw = b" stray continuation\nSubject: still here\nBad\rline: x\n\n";
        let h = parse(raw);
        assert_eq!(subject(&h).as_deref(), Some("still here"));
    }

    #[test]
    fn reads_only_the_header() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("mess/4")).unwrap();
        let mut text = b"Subject: hi\n\n".to_vec();
        text.extend(vec![b'x'; 1 << 20]);
        std::fs::write(t.path().join("mess/4/27"), &text).unwrap();
        let mut big = Vec::new();
        for i in 0..40_000 {
            big.extend_from_slice(format!("X-Filler-{i}: some value here\n").as_bytes());
        }
        std::fs::write(t.path().join("mess/4/50"), &big).unwrap();
        let root = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        let mut cache = DirCache::default();
        let h = read_header(&root, &mut cache, Path::new("mess/4/27")).unwrap();
        assert_eq!(h, b"Subject: hi\n\n");
        let h = read_header(&root, &mut cache, Path::new("mess/4/50")).unwrap();
        assert!(h.len() <= HEADER_CAP && h.len() > HEADER_CAP - 100, "{}", h.len());
        assert!(h.ends_with(b"\n"));
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("mess/4/73")).unwrap();
        assert!(read_header(&root, &mut cache, Path::new("mess/4/73")).is_err());

        // Many at once, in order.
        let f = [filter("Subject: ^hi$")];
        let mut paths = Vec::new();
        for i in 0..100 {
            paths.push(Some(PathBuf::from(match i % 4 {
                0 => "mess/4/27",
                1 => "mess/4/50",
                2 => "mess/4/73",
                _ => "mess/4/99",
            })));
        }
        paths.push(None);
        let got = look_all(&root, &paths, &f);
        assert_eq!(got.len(), 101);
        for (i, g) in got.iter().enumerate().take(100) {
            match i % 4 {
                0 => assert_eq!(g, &Looked::Read { matches: true, subject: Some("hi".into()) }),
                1 => assert_eq!(g, &Looked::Read { matches: false, subject: None }),
                2 => assert!(matches!(g, Looked::Error(e) if e.contains("73")), "{g:?}"),
                _ => assert_eq!(g, &Looked::NoMessage),
            }
        }
        assert_eq!(got[100], Looked::NoMessage);
    }
}
