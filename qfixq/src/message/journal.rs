//! The renumbering journal (docs/repair.md, "Renumbering"): the list of
//! the straight moves under way, `lock/qfixq-renumbering.journal`.
//!
//! A straight move gives every file of message N the number K (its mess
//! inode) with one rename each, the mess last. Half done, it leaves files
//! under K with no mess beside a mess under N whose inode is K, which is
//! also what orphans a copy left under K look like: only the journal
//! tells the two apart. It is written crash-safely (a temporary name,
//! fsync, rename, directory fsync) before the first rename of each batch,
//! and removed once every move it lists is done. A rerun reads it before
//! the scan and, for each pair whose mess N still has inode K and no mess
//! K exists, stats the files of both numbers: a regular file in its right
//! place under K whose part is not also under N was moved there by the
//! batch, and joins message N. Anything else under K is judged on its
//! own. It lives in lock/, beside qmail-send's lock, where the scan never
//! looks and where a crash's temporary files are already cleaned up.
//!
//! Also the fence ([`Fence`]): `lock/sendmutex` renamed to
//! `lock/sendmutex.qfixq-renumbering` before the first renumbering move
//! and back after the last, so that no qmail-send starts while messages
//! are half moved (a crash leaves it up, and the rerun takes it down once
//! it has finished).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use qcommon::lock::FENCE;
use qcommon::mutator::Step;
use qcommon::queue::{Part, QueueShape};
use qcommon::safe_fs::{parse_number, Dir, FileKind, NewFile, Stat};

/// The journal, relative to the queue.
pub const JOURNAL_PATH: &str = "lock/qfixq-renumbering.journal";
/// Most straight moves one journal lists (besides moves of earlier
/// batches that failed, carried on until a run finishes them).
pub const BATCH: usize = 4096;
/// The journal's first line.
const HEADER: &[u8] = b"qfixq renumbering journal\n";
/// Largest journal read: a batch and many carried moves.
const CAP: usize = 16 << 20;

/// A move of the journal found half done: the files already under the new
/// number, which join the message still under its old number.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The old number (the mess is still under it).
    pub old: u64,
    /// The files already under the new number, with what was seen there.
    pub joined: Vec<(Part, Stat)>,
}

/// The journal an interrupted run left, as this run found it.
#[derive(Debug, Default)]
pub struct Journal {
    /// A journal was on disk when the run started.
    pub found: bool,
    /// The moves still under way (mess N of inode K under N, no mess K),
    /// by new number.
    live: HashMap<u64, Resumed>,
    /// The new number of each move under way, by old number.
    by_old: HashMap<u64, u64>,
    /// The fence, as this run knows it.
    pub fence: Fence,
    /// The queue's lock directory, to look at the fence again.
    lock: Option<Dir>,
}

/// `lock/sendmutex` set aside while messages are half moved, as this run
/// knows it.
#[derive(Debug, Default)]
pub struct Fence {
    /// Up: `lock/sendmutex` is under the fence's name (raised by an
    /// interrupted run, or planned by this one).
    pub up: bool,
    /// Found up when the run started (an interrupted renumbering).
    pub found_up: bool,
    /// The message whose own action raises it, until its findings are
    /// carried out (a failure of that action leaves it unknown).
    pub raised_by: Option<u64>,
    /// Whether it is up must be looked at again (the action that raised it
    /// failed, at that step or a later one).
    unknown: bool,
    /// Some message is left half moved (a move failed, or waits): the
    /// fence stays up until a run finishes it.
    pub unfinished: bool,
}

impl Journal {
    /// The step raising the fence when it is not up yet (it is up from
    /// then on, as far as planning goes).
    pub fn raise_fence(&mut self) -> Option<Step> {
        if self.fence.up {
            return None;
        }
        self.fence.up = true;
        Some(Step::Rename { from: PathBuf::from("lock/sendmutex"), to: fence_path(), expect: None })
    }

    /// The action of message `n` failed: when it raised the fence, whether
    /// the fence is up is looked at again before the next move.
    pub fn message_failed(&mut self, n: u64) {
        if self.fence.raised_by == Some(n) {
            self.fence.unknown = true;
        }
    }

    /// Whether the filesystem has room for a journal of `bytes` (a free
    /// inode and the blocks): on a full disk the batch takes the two-step
    /// path at once, which needs renames only, instead of a journal write
    /// that fails. Unknown (no lock directory, statvfs failing): room.
    pub fn has_room(&self, bytes: usize) -> bool {
        let Some(lock) = &self.lock else { return true };
        let Ok(st) = nix::sys::statvfs::fstatvfs(lock.as_fd()) else { return true };
        let block = st.fragment_size().max(1) as u128;
        let need = bytes as u128 / block + 2;
        st.files_free() > 1 && u128::from(st.blocks_free()) >= need
    }

    /// Looks at the fence again when an action that raised it failed.
    pub fn settle_fence(&mut self) {
        if std::mem::take(&mut self.fence.unknown) {
            self.fence.up = self.lock.as_ref().is_some_and(fence_is_up);
        }
    }
}

/// `lock/sendmutex.qfixq-renumbering`.
pub fn fence_path() -> PathBuf {
    PathBuf::from("lock").join(FENCE)
}

/// The step taking the fence down: `lock/sendmutex` back.
pub fn lower_fence_step() -> Step {
    Step::Rename { from: fence_path(), to: PathBuf::from("lock/sendmutex"), expect: None }
}

/// Whether the fence is up in `lock`: no `sendmutex`, a regular fence.
fn fence_is_up(lock: &Dir) -> bool {
    let missing = matches!(lock.stat(OsStr::new("sendmutex")), Err(e) if e.is_not_found());
    missing && lock.stat(OsStr::new(FENCE)).is_ok_and(|st| st.kind == FileKind::Regular)
}

impl Journal {
    /// Reads the journal of the queue at `root` (none: an empty one) and
    /// stats the files of every pair it lists.
    pub fn load(root: &Dir, shape: QueueShape) -> qcommon::Result<Journal> {
        let lock = match root.open_dir(OsStr::new("lock")) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(Journal::default()),
            Err(e) => return Err(e),
        };
        let up = fence_is_up(&lock);
        let fence = Fence { up, found_up: up, ..Default::default() };
        let name = Path::new(JOURNAL_PATH).file_name().expect("a name");
        let mut buf = Vec::new();
        match lock.read_file_into(name, CAP, &mut buf) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(Journal { fence, lock: Some(lock), ..Default::default() }),
            Err(e) => return Err(e),
        }
        let mut j = Journal { found: true, fence, ..Default::default() };
        let mut dirs = Dirs { root, open: HashMap::new() };
        for (old, new) in parse(&buf) {
            if let Some(r) = resumed(&mut dirs, shape, old, new) {
                j.by_old.insert(old, new);
                j.live.insert(new, r);
            }
        }
        j.lock = Some(lock);
        Ok(j)
    }

    /// The move under way whose new number is `new`.
    pub fn at_new(&self, new: u64) -> Option<&Resumed> {
        self.live.get(&new)
    }

    /// The new number of the move under way whose old number is `old`.
    pub fn new_of(&self, old: u64) -> Option<u64> {
        self.by_old.get(&old).copied()
    }

    /// Every move under way, as (old, new).
    pub fn moves(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.by_old.iter().map(|(&old, &new)| (old, new))
    }
}

/// The pairs of a journal, `OLD NEW` a line after the header; a line that
/// does not parse recognises nothing (its files are judged on their own).
fn parse(data: &[u8]) -> Vec<(u64, u64)> {
    let Some(body) = data.strip_prefix(HEADER) else { return Vec::new() };
    body.split(|&b| b == b'\n')
        .filter_map(|line| {
            let sp = line.iter().position(|&c| c == b' ')?;
            Some((parse_number(&line[..sp])?, parse_number(&line[sp + 1..])?))
        })
        .collect()
}

/// The journal's bytes for `pairs` (old, new).
pub fn contents(pairs: impl Iterator<Item = (u64, u64)>) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    for (old, new) in pairs {
        out.extend_from_slice(format!("{old} {new}\n").as_bytes());
    }
    out
}

/// The step writing the journal (root's, 0600, replacing the last one).
pub fn write_step(data: Vec<u8>) -> Step {
    Step::WriteFile {
        path: PathBuf::from(JOURNAL_PATH),
        data,
        spec: NewFile { perm: 0o600, owner: Some((0, 0)), mtime: None, replace: true },
    }
}

/// The step removing the journal.
pub fn remove_step() -> Step {
    Step::Unlink { path: PathBuf::from(JOURNAL_PATH), expect: None }
}

/// Directories opened while the journal's pairs are stated.
struct Dirs<'r> {
    root: &'r Dir,
    open: HashMap<PathBuf, Dir>,
}

impl Dirs<'_> {
    /// What is at `rel` (relative to the queue); `Ok(None)` when nothing is.
    fn stat(&mut self, rel: &Path) -> qcommon::Result<Option<Stat>> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().expect("a file name");
        if !self.open.contains_key(parent) {
            let mut d: Option<Dir> = None;
            for c in parent.components() {
                let next = match &d {
                    None => self.root.open_dir(c.as_os_str()),
                    Some(x) => x.open_dir(c.as_os_str()),
                };
                match next {
                    Ok(x) => d = Some(x),
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            let Some(d) = d else { return self.root.stat(name).map(Some) };
            self.open.insert(parent.to_path_buf(), d);
        }
        match self.open[parent].stat(name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The pair `old` to `new` when its move is under way: the mess is still
/// under `old` (or under its waiting name `.qfixq-renum-OLD-NEW`, when a
/// rerun took the two-step path for it) with inode `new`, and no mess is
/// under `new`. The files it
/// had moved are the regular files in their right place under `new` whose
/// part is not also under `old`.
fn resumed(dirs: &mut Dirs<'_>, shape: QueueShape, old: u64, new: u64) -> Option<Resumed> {
    let right = shape.path(Part::Mess, old);
    let waiting = right.with_file_name(format!("{}{old}-{new}", super::RENUM_PREFIX));
    let mess = match dirs.stat(&right).ok()? {
        Some(st) => st,
        None => dirs.stat(&waiting).ok()??,
    };
    if mess.kind != FileKind::Regular || mess.ino != new || old == new {
        return None;
    }
    if !matches!(dirs.stat(&shape.path(Part::Mess, new)), Ok(None)) {
        return None;
    }
    let mut joined = Vec::new();
    for part in Part::ALL.into_iter().filter(|p| *p != Part::Mess) {
        let Ok(Some(st)) = dirs.stat(&shape.path(part, new)) else { continue };
        let under_old = !matches!(dirs.stat(&shape.path(part, old)), Ok(None));
        if st.kind == FileKind::Regular && !under_old {
            joined.push((part, st));
        }
    }
    Some(Resumed { old, joined })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_what_was_written_and_skips_garbage() {
        let data = contents([(7, 12), (u64::MAX, 3)].into_iter());
        assert_eq!(parse(&data), vec![(7, 12), (u64::MAX, 3)]);
        let mut bad = data.clone();
        bad.extend_from_slice(b"x 5\n9\n10 11");
        assert_eq!(parse(&bad), vec![(7, 12), (u64::MAX, 3), (10, 11)]);
        assert!(parse(b"7 12\n").is_empty(), "no header: nothing recognised");
    }
}
