//! What docs/repair.md says becomes of each message, and the checks of a
//! repaired queue against it, for qfixq's tests: an index of a queue's
//! message files by number, the per-message outcome (kept with which
//! envelope, or quarantined), the census that proves no file content was
//! lost, and the checks of a healthy queue (docs/queue-format.md).
//!
//! The owners and modes of docs/queue-format.md are written out here on
//! purpose instead of being read from `qcommon::queue`, so that a wrong
//! table there is caught too. Messages are compared by the content of
//! their mess file, never by number, so the checks hold across
//! renumbering.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use qcommon::envelope::{Info, Recipients, Todo};
use qcommon::queue::Part;

use crate::files::{number_of, read_nofollow, regular_files};
use crate::ids::IDS;
use crate::snapshot::{hash_bytes, Snapshot};

/// One message file as found.
#[derive(Debug, Clone)]
pub struct MFile {
    /// Its path.
    pub path: PathBuf,
    /// Its content.
    pub data: Vec<u8>,
    /// Inode number.
    pub ino: u64,
    /// Link count.
    pub nlink: u64,
    /// Modification time, seconds.
    pub mtime: i64,
}

/// The files of one message number.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    /// By part index.
    pub parts: [Option<MFile>; 7],
}

impl Msg {
    /// The file of `p`.
    pub fn part(&self, p: Part) -> Option<&MFile> {
        self.parts[p.index()].as_ref()
    }
}

/// Every message file of a queue by number, plus the inodes named in pid/.
#[derive(Debug, Default)]
pub struct Index {
    /// Number -> files.
    pub msgs: BTreeMap<u64, Msg>,
    /// Inode -> names in pid/.
    pub pid_links: HashMap<u64, u64>,
}

fn is_split(part: Part, big_todo: bool) -> bool {
    match part {
        Part::Mess | Part::Info | Part::Local | Part::Remote => true,
        Part::Todo | Part::Intd => big_todo,
        Part::Bounce => false,
    }
}

/// Indexes the message files of `queue`: numeric regular files in any
/// numeric bucket of a split directory (right bucket, wrong bucket or an
/// extra one), or directly in an unsplit one. Links are never followed.
pub fn index(queue: &Path, big_todo: bool) -> Index {
    let mut idx = Index::default();
    let mut add = |part: Part, n: u64, path: PathBuf| {
        let Ok(md) = fs::symlink_metadata(&path) else { return };
        if !md.is_file() {
            return;
        }
        let data = read_nofollow(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let slot = &mut idx.msgs.entry(n).or_default().parts[part.index()];
        if slot.is_none() {
            *slot = Some(MFile { path, data, ino: md.ino(), nlink: md.nlink(), mtime: md.mtime() });
        }
    };
    for part in Part::ALL {
        let dir = queue.join(part.dir());
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        let mut names: Vec<_> = rd.flatten().map(|d| d.file_name()).collect();
        names.sort();
        for name in names {
            let Some(n) = number_of(name.as_bytes()) else { continue };
            let p = dir.join(&name);
            let Ok(md) = fs::symlink_metadata(&p) else { continue };
            if md.is_dir() && is_split(part, big_todo) {
                let Ok(rd2) = fs::read_dir(&p) else { continue };
                let mut inner: Vec<_> = rd2.flatten().map(|d| d.file_name()).collect();
                inner.sort();
                for name2 in inner {
                    if let Some(m) = number_of(name2.as_bytes()) {
                        add(part, m, p.join(&name2));
                    }
                }
            } else if md.is_file() && !is_split(part, big_todo) {
                add(part, n, p);
            }
        }
    }
    if let Ok(rd) = fs::read_dir(queue.join("pid")) {
        for de in rd.flatten() {
            if let Ok(md) = fs::symlink_metadata(de.path()) {
                if md.is_file() {
                    *idx.pid_links.entry(md.ino()).or_insert(0) += 1;
                }
            }
        }
    }
    idx
}

// ---------------------------------------------------------------------
// The oracle: what docs/repair.md says becomes of each message.

/// A message's envelope, independent of its number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Env {
    /// Not yet preprocessed: the todo's sender and sorted recipients.
    Todo {
        /// Envelope sender.
        sender: Vec<u8>,
        /// Recipients, sorted.
        recipients: Vec<Vec<u8>>,
    },
    /// Preprocessed.
    Pre {
        /// The info's sender (empty: null sender).
        sender: Vec<u8>,
        /// Complete local records, sorted (address, done).
        local: Vec<(Vec<u8>, bool)>,
        /// Complete remote records, sorted.
        remote: Vec<(Vec<u8>, bool)>,
        /// Hash of bounce/N.
        bounce: Option<u64>,
        /// Birth time: the mtime of info.
        birth: i64,
    },
}

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Kept in the queue with this envelope.
    Saved(Env),
    /// Unsalvageable: its mess goes to lost+found.
    Quarantined,
}

fn sorted_records(r: Recipients) -> Vec<(Vec<u8>, bool)> {
    let mut v: Vec<(Vec<u8>, bool)> = r.list.into_iter().map(|x| (x.address, x.done)).collect();
    v.sort();
    v
}

fn todo_env(t: &Todo) -> Env {
    let mut recipients = t.recipients.clone();
    recipients.sort();
    Env::Todo { sender: t.sender.clone(), recipients }
}

/// The policy's outcome for one message (None when it has no mess file:
/// then it has no content to keep, and its files must only not be lost).
pub fn expected_fate(m: &Msg, pid_links: &HashMap<u64, u64>) -> Option<(u64, Fate)> {
    let mess = m.part(Part::Mess)?;
    let key = hash_bytes(&mess.data);
    let allowed = 1 + pid_links.get(&mess.ino).copied().unwrap_or(0);
    if mess.data.is_empty() || mess.nlink > allowed {
        return Some((key, Fate::Quarantined));
    }
    let todo = m.part(Part::Todo).map(|f| Todo::parse(&f.data).ok());
    let intd = m.part(Part::Intd).map(|f| Todo::parse(&f.data).ok());
    let shared = matches!((m.part(Part::Todo), m.part(Part::Intd)), (Some(a), Some(b)) if a.ino == b.ino);
    let info = m.part(Part::Info).map(|f| Info::parse(&f.data).ok().map(|i| i.sender));
    let list = |p: Part| m.part(p).map(|f| Recipients::parse_salvaging(&f.data).ok().map(sorted_records));
    let (local, remote) = (list(Part::Local), list(Part::Remote));
    let any_pre = info.is_some() || local.is_some() || remote.is_some();
    let valid_lists = [&local, &remote].iter().filter(|x| matches!(x, Some(Some(_)))).count();
    let broken_lists = [&local, &remote].iter().filter(|x| matches!(x, Some(None))).count();
    let info_valid = matches!(info, Some(Some(_)));
    let pre_complete = info_valid && valid_lists > 0 && broken_lists == 0;
    let pre_usable = valid_lists > 0 || (info_valid && local.is_none() && remote.is_none());
    let birth = m.part(Part::Info).map_or(mess.mtime, |f| f.mtime);
    let pre = || {
        if valid_lists == 0 && !pre_usable {
            return Fate::Quarantined;
        }
        Fate::Saved(Env::Pre {
            sender: info.clone().flatten().unwrap_or_default(),
            local: local.clone().flatten().unwrap_or_default(),
            remote: remote.clone().flatten().unwrap_or_default(),
            bounce: m.part(Part::Bounce).map(|f| hash_bytes(&f.data)),
            birth,
        })
    };
    let fate = match (&todo, &intd) {
        (Some(Some(t)), _) => Fate::Saved(todo_env(t)),
        (Some(None), i) => match i {
            Some(Some(i)) if !shared => Fate::Saved(todo_env(i)),
            _ if pre_complete => pre(),
            _ => Fate::Quarantined,
        },
        (None, Some(i)) => {
            if any_pre && pre_usable {
                pre()
            } else if let (true, Some(i)) = (any_pre, i) {
                Fate::Saved(todo_env(i))
            } else {
                Fate::Quarantined
            }
        }
        (None, None) if !any_pre => Fate::Quarantined,
        (None, None) => pre(),
    };
    Some((key, fate))
}

/// The envelope of a message in a repaired queue; an error when the
/// message is not in a state qmail-send can deliver.
pub fn actual_env(m: &Msg) -> Result<Env, String> {
    if let Some(t) = m.part(Part::Todo) {
        return Todo::parse(&t.data).map(|t| todo_env(&t)).map_err(|e| format!("todo broken: {e}"));
    }
    let info = m.part(Part::Info).ok_or("no todo and no info")?;
    let sender = Info::parse(&info.data).map_err(|e| format!("info broken: {e}"))?.sender;
    let list = |p: Part| -> Result<Vec<(Vec<u8>, bool)>, String> {
        match m.part(p) {
            None => Ok(Vec::new()),
            Some(f) => Recipients::parse(&f.data).map(sorted_records).map_err(|e| format!("{} broken: {e}", p.dir())),
        }
    };
    Ok(Env::Pre {
        sender,
        local: list(Part::Local)?,
        remote: list(Part::Remote)?,
        bounce: m.part(Part::Bounce).map(|f| hash_bytes(&f.data)),
        birth: info.mtime,
    })
}

/// Content hash -> fates of the messages with that content.
pub type Fates = BTreeMap<u64, Vec<Fate>>;

/// The policy's outcome for every message of a queue.
pub fn expected_fates(queue: &Path, big_todo: bool) -> Fates {
    let idx = index(queue, big_todo);
    let mut out: Fates = BTreeMap::new();
    for m in idx.msgs.values() {
        if let Some((k, f)) = expected_fate(m, &idx.pid_links) {
            out.entry(k).or_default().push(f);
        }
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

/// The envelopes of the messages of a repaired queue, by content.
pub fn actual_envs(queue: &Path, big_todo: bool) -> Result<BTreeMap<u64, Vec<Env>>, Vec<String>> {
    let idx = index(queue, big_todo);
    let mut out: BTreeMap<u64, Vec<Env>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, m) in &idx.msgs {
        let Some(mess) = m.part(Part::Mess) else { continue };
        match actual_env(m) {
            Ok(e) => out.entry(hash_bytes(&mess.data)).or_default().push(e),
            Err(e) => errors.push(format!("message {n} ({}): {e}", mess.path.display())),
        }
    }
    out.values_mut().for_each(|v| v.sort());
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Content hash -> count of mess files in lost+found that sit in a
/// message directory beside a `reason` file.
pub fn quarantined_mess(queue: &Path) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for f in regular_files(&queue.join("lost+found")) {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name == "mess" || name.starts_with("mess.")) {
            continue;
        }
        // lost+found/<session>/<N>/mess, beside a reason.
        let Some(dir) = f.parent() else { continue };
        let slot = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let numbered = slot.split('.').next().is_some_and(|n| number_of(n.as_bytes()).is_some());
        let depth = dir.strip_prefix(queue.join("lost+found")).map_or(0, |r| r.components().count());
        if !numbered || depth != 2 || !dir.join("reason").is_file() {
            continue;
        }
        if let Ok(d) = read_nofollow(&f) {
            *out.entry(hash_bytes(&d)).or_insert(0) += 1;
        }
    }
    out
}

/// Compares a repaired queue with the oracle's outcome: every saved
/// message is there with its envelope, nothing else is, and every
/// unsalvageable message's content is in lost+found with a reason.
pub fn check_fates(expected: &Fates, queue: &Path, big_todo: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let actual = match actual_envs(queue, big_todo) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let lf = quarantined_mess(queue);
    for (k, fates) in expected {
        let want: Vec<&Env> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Saved(e) => Some(e),
                Fate::Quarantined => None,
            })
            .collect();
        let got: Vec<&Env> = actual.get(k).map(|v| v.iter().collect()).unwrap_or_default();
        if want != got {
            errors.push(format!("message with content {k:016x}: expected in the queue {want:?}, found {got:?}"));
        }
        let q = fates.iter().filter(|f| **f == Fate::Quarantined).count();
        let in_lf = lf.get(k).copied().unwrap_or(0);
        if in_lf < q {
            errors.push(format!(
                "message with content {k:016x}: {q} unsalvageable copies expected in lost+found/*/<N>/mess with a \
                 reason, {in_lf} found"
            ));
        }
    }
    for (k, envs) in &actual {
        if !expected.contains_key(k) {
            errors.push(format!("message with content {k:016x} appeared: {envs:?}"));
        }
    }
    errors
}

/// Content hashes of the regular files in the message directories (any
/// depth), with those the policy may rewrite or remove counted apart:
/// broken info/todo replaced, partial records dropped, a stale bounce
/// beside a todo, empty files.
#[derive(Debug, Default)]
pub struct Census {
    /// Hash -> count.
    pub files: BTreeMap<u64, usize>,
    /// Hash -> count that may vanish.
    pub exempt: BTreeMap<u64, usize>,
}

/// Takes the census of a queue before a repair.
pub fn census(queue: &Path, big_todo: bool) -> Census {
    let mut c = Census::default();
    for part in Part::ALL {
        for f in regular_files(&queue.join(part.dir())) {
            if let Ok(d) = read_nofollow(&f) {
                *c.files.entry(hash_bytes(&d)).or_insert(0) += 1;
                if d.is_empty() {
                    *c.exempt.entry(hash_bytes(&d)).or_insert(0) += 1;
                }
            }
        }
    }
    let idx = index(queue, big_todo);
    for m in idx.msgs.values() {
        let mut ex = |f: &MFile| {
            if !f.data.is_empty() {
                *c.exempt.entry(hash_bytes(&f.data)).or_insert(0) += 1;
            }
        };
        if let Some(f) = m.part(Part::Info) {
            if Info::parse(&f.data).is_err() {
                ex(f);
            }
        }
        for p in [Part::Local, Part::Remote] {
            if let Some(f) = m.part(p) {
                if Recipients::parse_salvaging(&f.data).is_ok_and(|r| r.dropped > 0) {
                    ex(f);
                }
            }
        }
        if let Some(f) = m.part(Part::Todo) {
            if Todo::parse(&f.data).is_err() {
                ex(f);
            }
        }
        if let Some(f) = m.part(Part::Bounce) {
            if m.part(Part::Todo).is_some() || m.part(Part::Intd).is_some() {
                ex(f);
            }
        }
    }
    c
}

/// Checks that every file content of `before` is still somewhere in the
/// queue (lost+found included), but for the exempt ones.
pub fn check_census(before: &Census, queue: &Path) -> Vec<String> {
    let mut after: BTreeMap<u64, usize> = BTreeMap::new();
    for f in regular_files(queue) {
        if let Ok(d) = read_nofollow(&f) {
            *after.entry(hash_bytes(&d)).or_insert(0) += 1;
        }
    }
    let mut errors = Vec::new();
    for (k, n) in &before.files {
        let need = n.saturating_sub(before.exempt.get(k).copied().unwrap_or(0));
        let have = after.get(k).copied().unwrap_or(0);
        if have < need {
            errors.push(format!("content {k:016x}: {n} files before, {have} after (at most {} may go)", n - need));
        }
    }
    errors
}

// ---------------------------------------------------------------------
// A healthy queue (docs/queue-format.md).

const QMAILQ: u32 = IDS.qmailq;
const QMAILS: u32 = IDS.qmails;
const QMAILR: u32 = IDS.qmailr;
const QMAIL: u32 = IDS.qmail_gid;

/// (name, owner uid, mode, split) of each directory of the queue.
const DIRS: [(&str, u32, u32, bool); 9] = [
    ("pid", QMAILQ, 0o700, false),
    ("intd", QMAILQ, 0o700, false),
    ("todo", QMAILQ, 0o750, false),
    ("bounce", QMAILS, 0o700, false),
    ("mess", QMAILQ, 0o750, true),
    ("info", QMAILS, 0o700, true),
    ("local", QMAILS, 0o700, true),
    ("remote", QMAILS, 0o700, true),
    ("lock", QMAILQ, 0o750, false),
];

fn part_of(dir: &str) -> Part {
    Part::ALL.into_iter().find(|p| p.dir() == dir).expect("a part directory")
}

/// Checks everything docs/queue-format.md says of a healthy queue of `split`
/// and layout `big_todo`: directories, buckets, lock files, message files
/// with their owners, modes and link counts, names equal to mess inodes,
/// every file in its right bucket, nothing else (entries that were at the
/// top of the queue or in lock/ in `before` are allowed: qfixq leaves
/// unknown entries there alone).
pub fn check_healthy(queue: &Path, split: u32, big_todo: bool, before: &Snapshot) -> Vec<String> {
    let mut e = Vec::new();
    let md = |p: &Path| fs::symlink_metadata(p);
    let want = |e: &mut Vec<String>, p: &Path, dir: bool, uid: u32, gid: Option<u32>, mode: u32| match md(p) {
        Err(err) => e.push(format!("{}: {err}", p.display())),
        Ok(m) => {
            if m.is_dir() != dir || (!dir && !m.is_file()) {
                e.push(format!("{}: wrong kind {:?}", p.display(), m.file_type()));
            }
            if m.uid() != uid || gid.is_some_and(|g| g != m.gid()) {
                e.push(format!("{}: owner {}:{}, want {uid}:{gid:?}", p.display(), m.uid(), m.gid()));
            }
            if m.mode() & 0o7777 != mode {
                e.push(format!("{}: mode {:04o}, want {mode:04o}", p.display(), m.mode() & 0o7777));
            }
        }
    };
    want(&mut e, queue, true, QMAILQ, Some(QMAIL), 0o750);
    let was = |rel: &str| before.get(rel).is_some();
    // The top level.
    for de in fs::read_dir(queue).expect("read queue").flatten() {
        let name = de.file_name().to_string_lossy().into_owned();
        if !(DIRS.iter().any(|d| d.0 == name) || name == "lost+found" || was(&name)) {
            e.push(format!("unexpected entry {name:?} at the top of the queue"));
        }
    }
    if let Ok(m) = md(&queue.join("lost+found")) {
        if m.mode() & 0o7777 != 0o700 || !m.is_dir() {
            e.push(format!("lost+found: mode {:04o}", m.mode() & 0o7777));
        }
    }
    // Lock files.
    let lock = queue.join("lock");
    want(&mut e, &lock.join("sendmutex"), false, QMAILS, Some(QMAIL), 0o600);
    want(&mut e, &lock.join("tcpto"), false, QMAILR, Some(QMAIL), 0o644);
    if md(&lock.join("tcpto")).is_ok_and(|m| m.len() != 1024) {
        e.push("lock/tcpto is not 1024 bytes".into());
    }
    match md(&lock.join("trigger")) {
        Ok(m) if m.file_type().is_fifo() => {
            if (m.uid(), m.gid(), m.mode() & 0o7777) != (QMAILS, QMAIL, 0o622) {
                e.push(format!("lock/trigger: {}:{} {:04o}", m.uid(), m.gid(), m.mode() & 0o7777));
            }
        }
        other => e.push(format!("lock/trigger is not a FIFO: {other:?}")),
    }
    if let Ok(rd) = fs::read_dir(&lock) {
        for de in rd.flatten() {
            let name = de.file_name().to_string_lossy().into_owned();
            if !["sendmutex", "tcpto", "trigger"].contains(&name.as_str()) && !was(&format!("lock/{name}")) {
                e.push(format!("unexpected lock/{name:?}"));
            }
        }
    }
    // pid/ is empty.
    if let Ok(rd) = fs::read_dir(queue.join("pid")) {
        for de in rd.flatten() {
            e.push(format!("pid/{:?} left", de.file_name()));
        }
    }
    // Message directories.
    let mut files: BTreeMap<u64, Vec<(Part, fs::Metadata)>> = BTreeMap::new();
    for (name, uid, mode, split_dir) in DIRS {
        let dir = queue.join(name);
        want(&mut e, &dir, true, uid, Some(QMAIL), mode);
        if name == "pid" || name == "lock" {
            continue;
        }
        let part = part_of(name);
        let is_split = split_dir || (big_todo && matches!(part, Part::Todo | Part::Intd));
        let mut holders: Vec<(PathBuf, Option<u32>)> = Vec::new();
        if is_split {
            let mut seen = 0;
            for de in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let nm = de.file_name();
                match number_of(nm.as_bytes()) {
                    Some(b) if b < u64::from(split) => {
                        seen += 1;
                        want(&mut e, &de.path(), true, uid, Some(QMAIL), mode);
                        holders.push((de.path(), Some(b as u32)));
                    }
                    _ => e.push(format!("{name}/{nm:?}: not a bucket of split {split}")),
                }
            }
            if seen != split as usize {
                e.push(format!("{name}: {seen} buckets, want {split}"));
            }
        } else {
            holders.push((dir.clone(), None));
        }
        for (h, bucket) in holders {
            for de in fs::read_dir(&h).into_iter().flatten().flatten() {
                let nm = de.file_name();
                let p = de.path();
                let Some(n) = number_of(nm.as_bytes()) else {
                    e.push(format!("{}: not a message number", p.display()));
                    continue;
                };
                if let Some(b) = bucket {
                    if n % u64::from(split) != u64::from(b) {
                        e.push(format!("{}: in the wrong bucket", p.display()));
                    }
                }
                let Ok(m) = md(&p) else { continue };
                if !m.is_file() {
                    e.push(format!("{}: not a regular file", p.display()));
                    continue;
                }
                let (fuid, fgid, fmode) = match part {
                    Part::Mess | Part::Intd | Part::Todo => (QMAILQ, None, 0o644),
                    _ => (QMAILS, Some(QMAIL), 0o600),
                };
                want(&mut e, &p, false, fuid, fgid, fmode);
                files.entry(n).or_default().push((part, m));
            }
        }
    }
    for (n, fs_) in &files {
        let get = |p: Part| fs_.iter().find(|(q, _)| *q == p).map(|(_, m)| m);
        match get(Part::Mess) {
            None => {
                e.push(format!("message {n}: files {:?} without a mess", fs_.iter().map(|x| x.0).collect::<Vec<_>>()))
            }
            Some(m) if m.ino() != *n => e.push(format!("message {n}: mess inode is {}", m.ino())),
            Some(_) => {}
        }
        let shared = matches!((get(Part::Todo), get(Part::Intd)), (Some(a), Some(b)) if a.ino() == b.ino());
        for (p, m) in fs_ {
            let links = if shared && matches!(p, Part::Todo | Part::Intd) { 2 } else { 1 };
            if m.nlink() != links {
                e.push(format!("message {n}: {} has {} links, want {links}", p.dir(), m.nlink()));
            }
        }
        if get(Part::Todo).is_some() && get(Part::Bounce).is_some() {
            e.push(format!("message {n}: bounce beside a todo"));
        }
    }
    // lost+found: each directory of a session that holds anything holds a
    // reason (a crash between its mkdir and its reason leaves it empty, or
    // holding only the reason's temporary file when the kill landed inside
    // that write: nothing had been moved there yet).
    for session in fs::read_dir(queue.join("lost+found")).into_iter().flatten().flatten() {
        for d in fs::read_dir(session.path()).into_iter().flatten().flatten() {
            let p = d.path();
            let empty = fs::read_dir(&p)
                .map(|r| r.flatten().all(|e| e.file_name().to_string_lossy().starts_with(".qtools-tmp.")))
                .unwrap_or(true);
            if p.is_dir() && !empty && !p.join("reason").is_file() {
                e.push(format!("{}: no reason file", p.display()));
            }
        }
    }
    e
}
