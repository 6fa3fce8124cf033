//! Records of salvaged messages: messages that qfixq wrote with a sender
//! it had to invent (their info was missing, empty or garbled, so qfixq
//! wrote the null sender). To qmail such a message looks like a bounce;
//! these records are how qkillns and qstat tell it from one.
//!
//! One record per message, `lost+found/salvaged/N` (N the message number),
//! root's, mode 0600, one line:
//!
//! ```text
//! N INODE BIRTH WHY
//! ```
//!
//! with the message number, the inode of its mess file, its birth time
//! (the info time stamp qfixq kept) and why the sender was invented
//! (`info-missing`, `info-empty`, `info-garbled`). The record is written
//! before the info (a crash never leaves an invented null sender without
//! its record), through the mutator's crash-safe whole-file write (a
//! temporary name that is never all digits, fsync, rename). When qfixq
//! renumbers the message, the record moves with it.
//!
//! A record applies to the message of that number while its info holds
//! the null sender. A record whose message is gone (delivered, removed) is
//! ignored by every tool, and `qfixq live` removes it. The scanner never
//! enters lost+found, so nothing there is ever taken for a message.
//! Reading all records is one directory listing and one small read per
//! record: it grows with the salvaged messages, not with the queue.

use std::collections::HashMap;
use std::ffi::OsStr;

use nix::errno::Errno;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::mutator::Step;
use crate::queue::LOST_AND_FOUND;
use crate::safe_fs::{parse_number, Dir, NewFile};

/// The directory of the records, inside lost+found.
pub const SALVAGED_DIR: &str = "salvaged";

/// Mode of a record file (root's, like everything in lost+found).
pub const RECORD_PERM: u32 = 0o600;

/// Why qfixq had to invent the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// There was no info file.
    InfoMissing,
    /// The info file was empty.
    InfoEmpty,
    /// The info file could not be parsed.
    InfoGarbled,
}

impl Why {
    /// The word in a record.
    pub fn word(self) -> &'static str {
        match self {
            Why::InfoMissing => "info-missing",
            Why::InfoEmpty => "info-empty",
            Why::InfoGarbled => "info-garbled",
        }
    }

    fn from_word(w: &[u8]) -> Option<Why> {
        match w {
            b"info-missing" => Some(Why::InfoMissing),
            b"info-empty" => Some(Why::InfoEmpty),
            b"info-garbled" => Some(Why::InfoGarbled),
            _ => None,
        }
    }
}

/// One salvaged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The message number.
    pub number: u64,
    /// The inode of its mess file when the record was written.
    pub inode: u64,
    /// Its birth time (the info time stamp).
    pub birth: i64,
    /// Why its sender was invented.
    pub why: Why,
}

impl Record {
    /// The record's bytes: one line.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!("{} {} {} {}\n", self.number, self.inode, self.birth, self.why.word()).into_bytes()
    }

    /// Parses a record strictly; `None` for anything else.
    pub fn parse(data: &[u8]) -> Option<Record> {
        let line = data.strip_suffix(b"\n")?;
        let mut f = line.split(|&b| b == b' ');
        let number = parse_number(f.next()?)?;
        let inode = parse_number(f.next()?)?;
        let birth = std::str::from_utf8(f.next()?).ok()?.parse::<i64>().ok()?;
        let why = Why::from_word(f.next()?)?;
        if f.next().is_some() {
            return None;
        }
        Some(Record { number, inode, birth, why })
    }

    /// The same record for the message renumbered to `new` (whose mess
    /// inode is `new`).
    pub fn renumbered(&self, new: u64) -> Record {
        Record { number: new, inode: new, ..*self }
    }
}

/// Prefix of a record waiting, like the files of its message, between the
/// two halves of a renumbering: `.qfixq-renum-OLD-NEW`.
pub const RENUM_PREFIX: &str = ".qfixq-renum-";

/// Where the record of message `old`, renumbered to `new`, waits between
/// the two halves of the renumbering.
pub fn renaming_path(old: u64, new: u64) -> PathBuf {
    dir_path().join(format!("{RENUM_PREFIX}{old}-{new}"))
}

/// `lost+found/salvaged`, relative to the queue.
pub fn dir_path() -> PathBuf {
    PathBuf::from(LOST_AND_FOUND).join(SALVAGED_DIR)
}

/// `lost+found/salvaged/N`, relative to the queue.
pub fn record_path(n: u64) -> PathBuf {
    dir_path().join(n.to_string())
}

/// The step that writes `rec` crash-safely (replacing a record of the same
/// number: a rerun never duplicates one).
pub fn write_step(rec: &Record) -> Step {
    Step::WriteFile {
        path: record_path(rec.number),
        data: rec.to_bytes(),
        spec: NewFile { perm: RECORD_PERM, owner: Some((0, 0)), mtime: None, replace: true },
    }
}

/// The step that makes `lost+found/salvaged` (lost+found must exist).
pub fn mkdir_step() -> Step {
    Step::Mkdir { path: dir_path(), perm: crate::remove::LOST_AND_FOUND_PERM, owner: Some((0, 0)) }
}

/// Every record found, by message number.
#[derive(Debug, Default, Clone)]
pub struct Salvaged {
    records: HashMap<u64, Record>,
    /// Whether `lost+found/salvaged` exists.
    pub dir_exists: bool,
    /// Entries that are not records (names or contents that do not parse):
    /// left alone.
    pub unreadable: u64,
    /// Records waiting between the two halves of a renumbering: (old
    /// number, new number, the record when it parses).
    pub renaming: Vec<(u64, u64, Option<Record>)>,
}

impl Salvaged {
    /// The record of message `n`, if any.
    pub fn get(&self, n: u64) -> Option<&Record> {
        self.records.get(&n)
    }

    /// Whether message `n` has a record.
    pub fn contains(&self, n: u64) -> bool {
        self.records.contains_key(&n)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Adds (or replaces) a record.
    pub fn insert(&mut self, rec: Record) {
        self.records.insert(rec.number, rec);
    }

    /// Removes the record of `n`.
    pub fn remove(&mut self, n: u64) -> Option<Record> {
        self.records.remove(&n)
    }
}

/// Reads every record of the queue whose root is `root`. No lost+found or
/// no `salvaged` in it: no records. A record that cannot be read fails the
/// whole reading (a tool must not take a salvaged message for a bounce
/// because its record could not be read); one that does not parse is
/// counted and left alone.
pub fn read_all(root: &Dir) -> Result<Salvaged> {
    let mut out = Salvaged::default();
    let lf = match root.open_dir(OsStr::new(LOST_AND_FOUND)) {
        Ok(d) => d,
        // Missing, or something else than a directory (a link, a file, a
        // pipe, which qfixq replaces before it uses lost+found): no records.
        Err(e) if e.is_not_found() || matches!(e.errno(), Some(Errno::ENOTDIR | Errno::ELOOP)) => return Ok(out),
        Err(e) => return Err(e),
    };
    let dir = match lf.open_dir(OsStr::new(SALVAGED_DIR)) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(out),
        Err(e) => return Err(e),
    };
    out.dir_exists = true;
    let mut names = Vec::new();
    dir.for_each_entry(|name, _, _| {
        let b = name.to_bytes();
        if let Some(n) = parse_number(b) {
            names.push(n);
        } else if let Some((old, new)) = b.strip_prefix(RENUM_PREFIX.as_bytes()).and_then(parse_pair) {
            out.renaming.push((old, new, None));
        } else if !name.to_bytes().starts_with(b".qtools-tmp.") {
            out.unreadable += 1;
        }
    })?;
    let mut buf = Vec::with_capacity(128);
    for (old, new, rec) in &mut out.renaming {
        let name = format!("{RENUM_PREFIX}{old}-{new}");
        if let Ok((_, false)) = dir.read_file_into(OsStr::new(&name), 256, &mut buf) {
            *rec = Record::parse(&buf);
        }
    }
    for n in names {
        let name = n.to_string();
        match dir.read_file_into(OsStr::new(&name), 256, &mut buf) {
            Ok((_, false)) => match Record::parse(&buf) {
                Some(r) if r.number == n => out.insert(r),
                _ => out.unreadable += 1,
            },
            Ok((_, true)) => out.unreadable += 1,
            // Gone meanwhile (qfixq removed a stale one).
            Err(e) if e.is_not_found() => {}
            Err(Error::WrongKind { .. }) => out.unreadable += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// `OLD-NEW`.
fn parse_pair(b: &[u8]) -> Option<(u64, u64)> {
    let dash = b.iter().position(|&c| c == b'-')?;
    Some((parse_number(&b[..dash])?, parse_number(&b[dash + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutator::{Action, Mode, Mutator};
    use crate::safe_fs::SymlinkBehavior;

    #[test]
    fn records_round_trip_and_reject_junk() {
        let r = Record { number: 1234, inode: 1234, birth: 1_795_579_278, why: Why::InfoGarbled };
        assert_eq!(r.to_bytes(), b"1234 1234 1795579278 info-garbled\n");
        assert_eq!(Record::parse(&r.to_bytes()), Some(r));
        for junk in [&b""[..], b"1234 1234 1795579278 info-garbled", b"1234 1234 x info-missing\n", b"1 2 3 why\n"] {
            assert_eq!(Record::parse(junk), None, "{junk:?}");
        }
        assert_eq!(r.renumbered(77), Record { number: 77, inode: 77, birth: 1_795_579_278, why: Why::InfoGarbled });
    }

    #[test]
    fn written_through_the_mutator_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        assert!(read_all(&root).unwrap().is_empty());
        let r = Record { number: 46, inode: 46, birth: 5, why: Why::InfoMissing };
        let steps = vec![
            Step::Mkdir { path: LOST_AND_FOUND.into(), perm: 0o700, owner: None },
            Step::Mkdir { path: dir_path(), perm: 0o700, owner: None },
            write_step(&r),
        ];
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|s| match s {
                Step::WriteFile { path, data, mut spec } => {
                    spec.owner = None; // tests may run as anyone
                    Step::WriteFile { path, data, spec }
                }
                s => s,
            })
            .collect();
        let mut m = Mutator::new(Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap(), Mode::Live);
        assert!(m.run_action(&Action { message: Some(46), steps }, &mut |_, _| {}).failed.is_none());
        std::fs::write(t.path().join("lost+found/salvaged/47"), b"garbage\n").unwrap();
        std::fs::write(t.path().join("lost+found/salvaged/48"), b"46 46 5 info-missing\n").unwrap();
        std::fs::write(t.path().join("lost+found/salvaged/.qfixq-renum-49-50"), b"49 49 5 info-missing\n").unwrap();
        let s = read_all(&root).unwrap();
        assert!(s.dir_exists);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(46), Some(&r));
        assert_eq!(s.unreadable, 2);
        assert_eq!(s.renaming, vec![(49, 50, Some(Record { number: 49, inode: 49, birth: 5, why: Why::InfoMissing }))]);
    }
}
