//! Safe removal and quarantine of messages and strays, shared by qfixq and
//! qkillns. Removal unlinks a message's files in the reverse of qmail's
//! order of creation (mess last), so a crash leaves at worst a lone mess
//! that qfixq and qmail-send both clean up. Quarantine moves files, by
//! rename only, to `queue/lost+found/<UTC time>-<pid>/<N>/` beside a
//! `reason` file; qmail never looks there.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::mutator::{Action, Step};
use crate::queue::{Part, LOST_AND_FOUND};
use crate::safe_fs::{Dir, Expect, FileKind, NewFile};
use crate::scan::{Found, ScannedMessage};

/// Mode of lost+found and everything made in it: only root reads it.
pub const LOST_AND_FOUND_PERM: u32 = 0o700;

/// What the scan saw of a file, as the verification a change needs.
pub fn expect_of(f: &Found, max_nlink: u64) -> Option<Expect> {
    f.stat.map(|st| Expect { ino: st.ino, kind: st.kind, max_nlink })
}

/// The steps that remove every file of `msg`, mess last. Each unlink is
/// checked against the inode the scan saw.
pub fn removal_action(msg: &ScannedMessage) -> Action {
    let mut steps = Vec::new();
    for part in Part::REMOVAL_ORDER {
        let files = msg.files[part.index()].iter().chain(msg.extra.iter().filter(|f| f.part == part));
        for f in files {
            steps.push(Step::Unlink { path: f.rel_path(msg.number), expect: expect_of(f, u64::MAX) });
        }
    }
    Action { message: Some(msg.number), steps }
}

/// Bytes the files of `msg` hold (from the scan's stat).
pub fn message_bytes(msg: &ScannedMessage) -> u64 {
    msg.all_files().filter_map(|f| f.stat.map(|s| s.size)).sum()
}

/// What stands at `queue/lost+found` when a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LostFound {
    /// Nothing: made on first use.
    Missing,
    /// A directory, as it should be (or made by this run already).
    Directory,
    /// Something else: a link, a pipe, a file... It is moved out of the
    /// way on first use (see [`Quarantine::lost_found_steps`]).
    Other(Expect),
}

/// One run's quarantine directory, `lost+found/<UTC time>-<pid>`, made on
/// first use. When two runs start in the same second with the same pid
/// (each run in its own pid namespace is pid 1), the later one adds `-2`,
/// `-3`, ...: the name is chosen free when the run starts, and one live
/// run at a time holds qmail-send's lock.
#[derive(Debug)]
pub struct Quarantine {
    lost_found: LostFound,
    session: PathBuf,
    session_made: bool,
    used: HashSet<String>,
    pid: u32,
}

impl Quarantine {
    /// A quarantine for this run. `root` is the queue, looked at (without
    /// following links) to learn what lost+found is and which session
    /// names are taken.
    pub fn new(root: &Dir, now_utc: i64, pid: u32) -> Result<Quarantine> {
        let lf = OsStr::new(LOST_AND_FOUND);
        let lost_found = match root.stat(lf) {
            Ok(st) if st.kind == FileKind::Directory => LostFound::Directory,
            Ok(st) => LostFound::Other(Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX }),
            Err(e) if e.is_not_found() => LostFound::Missing,
            Err(e) => return Err(e),
        };
        let base = format!("{}-{pid}", utc_stamp(now_utc));
        let mut name = base.clone();
        if lost_found == LostFound::Directory {
            let dir = root.open_dir(lf)?;
            let mut k = 1;
            loop {
                match dir.stat(OsStr::new(&name)) {
                    Err(e) if e.is_not_found() => break,
                    Err(e) => return Err(e),
                    Ok(_) => {
                        k += 1;
                        name = format!("{base}-{k}");
                    }
                }
            }
        }
        Ok(Quarantine {
            lost_found,
            session: PathBuf::from(LOST_AND_FOUND).join(name),
            session_made: false,
            used: HashSet::new(),
            pid,
        })
    }

    /// `lost+found/<UTC time>-<pid>`, relative to the queue.
    pub fn session_dir(&self) -> &Path {
        &self.session
    }

    fn mkdir(path: PathBuf) -> Step {
        Step::Mkdir { path, perm: LOST_AND_FOUND_PERM, owner: Some((0, 0)) }
    }

    /// Steps that make `lost+found` a directory, the first time they are
    /// asked for: nothing when it is one; a mkdir when it is missing. When
    /// something else stands there, a link, pipe, socket or device is
    /// removed (never followed or opened) and a regular file, which may
    /// hold mail, is moved aside under a name qmail ignores and then into
    /// the new lost+found, beside a `reason` file.
    pub fn lost_found_steps(&mut self, steps: &mut Vec<Step>) {
        let lf = PathBuf::from(LOST_AND_FOUND);
        match self.lost_found {
            LostFound::Directory => {}
            LostFound::Missing => steps.push(Self::mkdir(lf)),
            LostFound::Other(ex) if ex.kind == FileKind::Regular => {
                let aside = PathBuf::from(format!(".qtools-lost+found.{}", self.pid));
                steps.push(Step::Rename { from: lf.clone(), to: aside.clone(), expect: Some(ex) });
                steps.push(Self::mkdir(lf.clone()));
                self.lost_found = LostFound::Directory;
                self.session_steps(steps);
                let dir = self.session.join("lost+found-file");
                self.used.insert("lost+found-file".into());
                steps.push(Self::mkdir(dir.clone()));
                steps.push(reason_step(
                    &dir,
                    "a regular file stood where lost+found belongs",
                    std::iter::once(lf.as_path()),
                ));
                steps.push(Step::Rename { from: aside, to: dir.join("lost+found"), expect: Some(ex) });
            }
            LostFound::Other(ex) => {
                steps.push(Step::Unlink { path: lf.clone(), expect: Some(ex) });
                steps.push(Self::mkdir(lf));
            }
        }
        self.lost_found = LostFound::Directory;
    }

    /// Steps making lost+found and the session directory, the first time.
    fn session_steps(&mut self, steps: &mut Vec<Step>) {
        self.lost_found_steps(steps);
        if !self.session_made {
            steps.push(Self::mkdir(self.session.clone()));
            self.session_made = true;
        }
    }

    fn slot(&mut self, base: &str) -> PathBuf {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            k += 1;
            name = format!("{base}.{k}");
        }
        self.session.join(name)
    }

    /// Steps moving `files` of message `n` (each with its path relative to
    /// the queue) into `<session>/<n>/`, beside a `reason` file. The reason
    /// is written first, then files are moved in removal order, mess last.
    pub fn message_steps(&mut self, n: u64, files: &[(PathBuf, Part, Option<Expect>)], reason: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        self.session_steps(&mut steps);
        let dir = self.slot(&n.to_string());
        steps.push(Self::mkdir(dir.clone()));
        steps.push(reason_step(&dir, reason, files.iter().map(|(p, _, _)| p.as_path())));
        let mut ordered: Vec<&(PathBuf, Part, Option<Expect>)> = files.iter().collect();
        ordered.sort_by_key(|(_, part, _)| Part::REMOVAL_ORDER.iter().position(|p| p == part));
        let mut names = HashSet::new();
        for (path, part, expect) in ordered {
            let mut name = part.dir().to_string();
            let mut k = 1;
            while !names.insert(name.clone()) {
                k += 1;
                name = format!("{}.{k}", part.dir());
            }
            steps.push(Step::Rename { from: path.clone(), to: dir.join(name), expect: *expect });
        }
        steps
    }

    /// Steps moving one stray (a file or a whole directory) into
    /// `<session>/stray-<k>/`, beside a `reason` file naming where it was.
    /// `expect` is what the scan saw there: the move is refused if the
    /// name now holds something else.
    pub fn stray_steps(&mut self, path: &Path, expect: Option<Expect>, reason: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        self.session_steps(&mut steps);
        let mut k = self.used.len() + 1;
        let dir = loop {
            let name = format!("stray-{k}");
            if self.used.insert(name.clone()) {
                break self.session.join(name);
            }
            k += 1;
        };
        steps.push(Self::mkdir(dir.clone()));
        steps.push(reason_step(&dir, reason, std::iter::once(path)));
        let base = path.file_name().map(|n| n.to_owned()).unwrap_or_else(|| "entry".into());
        steps.push(Step::Rename { from: path.to_path_buf(), to: dir.join(base), expect });
        steps
    }
}

fn reason_step<'a>(dir: &Path, reason: &str, paths: impl Iterator<Item = &'a Path>) -> Step {
    let mut text = format!("{reason}\n");
    for p in paths {
        text.push_str(&format!("was: queue/{}\n", crate::error::escape_path(p)));
    }
    Step::WriteFile {
        path: dir.join("reason"),
        data: text.into_bytes(),
        spec: NewFile { perm: 0o600, owner: None, mtime: None, replace: false },
    }
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since the epoch, UTC
/// ([`crate::human::compact_utc`]).
pub fn utc_stamp(t: i64) -> String {
    crate::human::compact_utc(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutator::{Mode, Mutator};
    use crate::safe_fs::SymlinkBehavior;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_869_296), "20261128T123456Z");
    }

    #[test]
    fn quarantine_moves_and_explains() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path();
        std::fs::create_dir_all(q.join("mess/0")).unwrap();
        std::fs::create_dir_all(q.join("info/0")).unwrap();
        std::fs::write(q.join("mess/0/46"), b"content").unwrap();
        std::fs::write(q.join("info/0/46"), b"F\0").unwrap();
        std::fs::write(q.join("mess/0/junk\n"), b"stray").unwrap();
        let root = Dir::open(q, SymlinkBehavior::NoFollow).unwrap();
        let mut qu = Quarantine::new(&root, 0, 77).unwrap();
        let mut steps = qu.message_steps(
            46,
            &[("mess/0/46".into(), Part::Mess, None), ("info/0/46".into(), Part::Info, None)],
            "mess empty: unsalvageable",
        );
        steps.extend(qu.stray_steps(Path::new("mess/0/junk\n"), None, "name is not a message number"));
        // The mess moves last.
        let renames: Vec<_> = steps.iter().filter(|s| matches!(s, Step::Rename { .. })).collect();
        assert!(matches!(renames[1], Step::Rename { from, .. } if from == Path::new("mess/0/46")));
        let mut m = Mutator::new(root, Mode::Live);
        let out = m.run_action(&Action { message: Some(46), steps }, &mut |_, _| {});
        assert!(out.failed.is_none(), "{:?}", out.failed);
        let s = q.join("lost+found/19700101T000000Z-77");
        assert_eq!(std::fs::read(s.join("46/mess")).unwrap(), b"content");
        assert_eq!(std::fs::read(s.join("46/info")).unwrap(), b"F\0");
        let reason = std::fs::read_to_string(s.join("46/reason")).unwrap();
        assert!(reason.contains("unsalvageable") && reason.contains("was: queue/mess/0/46"), "{reason}");
        assert_eq!(std::fs::read(s.join("stray-2/junk\n")).unwrap(), b"stray");
        let reason = std::fs::read_to_string(s.join("stray-2/reason")).unwrap();
        assert!(reason.contains("was: queue/mess/0/junk\\n"), "{reason}");
        assert!(!q.join("mess/0/46").exists());
    }
}
