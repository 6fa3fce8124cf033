//! Discovery of a queue's layout: where the queue and qmail's home are,
//! the split, the numeric ids of qmail's users and whether the big-todo
//! patch is in use. This module owns those decisions and the record of
//! where each one came from ([`Source`]), so a tool can say why it believes
//! what it believes.
//!
//! The order of authority is: an explicit option, then what
//! `<home>/bin/qmail-showctl` prints (the values qmail was compiled with),
//! then what is seen on disk (or, for the ids, in the user and group
//! databases), then qmail's default. The queue is only read here, through
//! the symlink-safe layer ([`Dir`]); the only process started is
//! `qmail-showctl`, with no arguments and under a time limit.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{escape_path, Error, Result};
use crate::queue::{Ids, Part, QueueShape, DEFAULT_SPLIT};
use crate::safe_fs::{number_name, parse_number, Dir, FileKind, SymlinkBehavior};
use crate::showctl::ShowctlFacts;

/// qmail's default home (`conf-qmail`).
pub const DEFAULT_HOME: &str = "/var/qmail";

/// How long `qmail-showctl` may run before it is killed.
pub const SHOWCTL_TIMEOUT: Duration = Duration::from_secs(10);

/// The directories that are always split into buckets.
const SPLIT_PARTS: [Part; 4] = [Part::Mess, Part::Info, Part::Local, Part::Remote];

/// Names at the top of a queue; a directory holding none of them is not one.
const QUEUE_MARKERS: [&str; 6] = ["mess", "info", "todo", "local", "remote", "lock"];

/// Where a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line option, by its name (`"--split"`).
    Option(String),
    /// The output of this `qmail-showctl`.
    Showctl(PathBuf),
    /// What was seen in the queue (the text says what).
    Disk(String),
    /// The user and group databases (`/etc/passwd`, `/etc/group`).
    Passwd,
    /// qmail's default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Option(name) => write!(f, "from {name}"),
            Source::Showctl(path) => write!(f, "from {}", escape_path(path)),
            Source::Disk(seen) => write!(f, "from the buckets on disk ({seen})"),
            Source::Passwd => f.write_str("from /etc/passwd and /etc/group"),
            Source::Default => f.write_str("default"),
        }
    }
}

impl Source {
    /// A stable code for JSON and metrics: `option`, `qmail_showctl`,
    /// `disk`, `passwd` or `default`.
    pub fn code(&self) -> &'static str {
        match self {
            Source::Option(_) => "option",
            Source::Showctl(_) => "qmail_showctl",
            Source::Disk(_) => "disk",
            Source::Passwd => "passwd",
            Source::Default => "default",
        }
    }
}

/// A decided value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Decision<T> {
    /// A decision from `source`.
    pub fn new(value: T, source: Source) -> Self {
        Decision { value, source }
    }
}

/// What the user said about the layout (all optional). `Default` gives no
/// options and does not run `qmail-showctl`; the tools set `run_showctl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutOptions {
    /// `--queue DIR`.
    pub queue: Option<PathBuf>,
    /// `--qmail-home DIR`.
    pub qmail_home: Option<PathBuf>,
    /// `--split N`.
    pub split: Option<u32>,
    /// `--ids ...`.
    pub ids: Option<Ids>,
    /// Whether `<home>/bin/qmail-showctl` may be run to learn the split
    /// and the ids (true in the tools; tests may turn it off).
    pub run_showctl: bool,
    /// An empty directory is accepted as a queue to build, when the split
    /// and the ids are given (`qfixq live` on an empty directory makes a
    /// new, empty queue there).
    pub new_queue: bool,
}

/// The queue's layout, each decision with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The queue path, as given or derived from qmail's home.
    pub queue: PathBuf,
    /// The queue path itself is a symbolic link (allowed: the queue may
    /// live on another disk). Only the queue root is ever followed.
    pub queue_is_symlink: bool,
    /// qmail's home, when known.
    pub home: Option<PathBuf>,
    /// The split (`conf-split`).
    pub split: Decision<u32>,
    /// qmail's numeric ids, or why they could not be decided (read-only
    /// tools may not need them).
    pub ids: std::result::Result<Decision<Ids>, String>,
    /// Whether `todo` and `intd` are split (the big-todo patch).
    pub big_todo: Decision<bool>,
    /// Why `qmail-showctl` decided nothing, when it was looked for and
    /// something did not work (not found, not executable, failed, timed
    /// out, printed a malformed line). `None` when it was used or not
    /// looked for.
    pub showctl_note: Option<String>,
}

impl Layout {
    /// The queue's shape as decided (split and big-todo): where each file
    /// of a message lies.
    pub fn shape(&self) -> QueueShape {
        QueueShape { split: self.split.value, big_todo: self.big_todo.value }
    }

    /// `<home>/control/<name>`, when qmail's home is known.
    pub fn control_file(&self, name: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join("control").join(name))
    }

    /// `source` as text, followed by why `qmail-showctl` was not used when
    /// the decision fell through to the disk, the user database or the
    /// default: e.g. `default (qmail-showctl not used: /var/qmail/bin/qmail-showctl: not found)`.
    pub fn source_text(&self, source: &Source) -> String {
        match (source, &self.showctl_note) {
            (Source::Disk(_) | Source::Passwd | Source::Default, Some(note)) => {
                format!("{source} (qmail-showctl not used: {note})")
            }
            _ => source.to_string(),
        }
    }
}

/// Discovers the layout of the queue named by `opts` (see the module
/// documentation for the order of authority).
///
/// Fails when the queue cannot be opened (the error names the path), when
/// it holds none of qmail's directories ("not a qmail queue"), or when the
/// split cannot be decided because the buckets on disk disagree and
/// neither `--split` nor `qmail-showctl` settles it. Undecidable ids are
/// not an error here: they are reported in [`Layout::ids`].
pub fn discover(opts: &LayoutOptions) -> Result<Layout> {
    discover_in(&open_root(opts)?.dir, opts)
}

/// [`discover`] on a queue root already open: `queue` must be the
/// directory the path `opts` names was opened as ([`open_root`] with the
/// same `opts`). The root is not opened again; every decision is made from
/// what is seen through `queue`.
pub fn discover_in(queue: &Dir, opts: &LayoutOptions) -> Result<Layout> {
    let (queue_path, home) = locate(opts);
    let queue_is_symlink = std::fs::symlink_metadata(&queue_path)
        .map_err(|e| Error::sys("stat", &queue_path, crate::safe_fs::io_errno(&e)))?
        .file_type()
        .is_symlink();
    let mut empty = opts.new_queue;
    if empty {
        queue.for_each_entry_while(|_, _, _| {
            empty = false;
            false
        })?;
    }
    if !empty {
        check_is_queue(queue)?;
    } else if opts.split.is_none() || opts.ids.is_none() {
        return Err(Error::Layout(format!(
            "{} is empty: to make a new queue there, give the split and the ids (--split N --ids Q:S:R:G)",
            escape_path(&queue_path)
        )));
    }

    // qmail-showctl, only when it may decide something.
    let mut showctl: Option<(PathBuf, ShowctlFacts)> = None;
    let mut showctl_note = None;
    if opts.run_showctl && (opts.split.is_none() || opts.ids.is_none()) {
        if let Some(home) = &home {
            let path = home.join("bin").join("qmail-showctl");
            match crate::showctl::run(&path, SHOWCTL_TIMEOUT) {
                Ok(facts) => showctl = Some((path, facts)),
                Err(why) => showctl_note = Some(format!("{}: {why}", escape_path(&path))),
            }
        }
    }
    if let Some((path, facts)) = &showctl {
        let mut missing = Vec::new();
        if opts.split.is_none() && facts.split.is_none() {
            missing.push("subdirectory split");
        }
        if opts.ids.is_none() && facts.ids().is_none() {
            missing.push("user ids and group ids");
        }
        if !missing.is_empty() {
            showctl_note = Some(format!("{}: printed no {} line", escape_path(path), missing.join(" or ")));
        }
    }

    let split = if let Some(n) = opts.split {
        if n == 0 {
            return Err(Error::Layout("--split must be at least 1".to_string()));
        }
        Decision::new(n, Source::Option("--split".to_string()))
    } else if let Some((path, ShowctlFacts { split: Some(n), .. })) = &showctl {
        Decision::new(*n, Source::Showctl(path.clone()))
    } else {
        match split_from_disk(queue) {
            Ok(Some(d)) => d,
            Ok(None) => Decision::new(DEFAULT_SPLIT, Source::Default),
            Err(Error::Layout(msg)) => {
                return Err(Error::Layout(match &showctl_note {
                    Some(note) => format!("{msg} (qmail-showctl not used: {note})"),
                    None => msg,
                }))
            }
            Err(e) => return Err(e),
        }
    };

    let ids = if let Some(ids) = opts.ids {
        ids.check().map(|()| Decision::new(ids, Source::Option("--ids".to_string())))
    } else if let Some(ids) = showctl.as_ref().and_then(|(path, f)| f.ids().map(|i| (path, i))) {
        ids.1.check().map(|()| Decision::new(ids.1, Source::Showctl(ids.0.clone()))).map_err(|e| {
            format!("qmail-showctl ({}) gave impossible ids: {e}; give them with --ids", escape_path(ids.0))
        })
    } else {
        match ids_from_user_db() {
            Ok(ids) => ids
                .check()
                .map(|()| Decision::new(ids, Source::Passwd))
                .map_err(|e| format!("the user and group databases give impossible ids: {e}; give them with --ids")),
            Err(missing) => {
                let showctl_said = match (&showctl_note, &home) {
                    (Some(note), _) => format!("qmail-showctl not used ({note})"),
                    (None, None) => "qmail's home is not known, so qmail-showctl was not run".to_string(),
                    (None, Some(_)) => "qmail-showctl was not run".to_string(),
                };
                Err(format!(
                    "cannot tell qmail's user and group ids: {showctl_said}, and the user and group \
                     databases lack {}; give them with --ids",
                    missing.join(", ")
                ))
            }
        }
    };

    let big_todo = big_todo_from_disk(queue)?;

    Ok(Layout { queue: queue_path, queue_is_symlink, home, split, ids, big_todo, showctl_note })
}

/// The queue path the options name (as [`discover`] and [`open_root`]
/// open it), without opening anything: for a message about a queue that
/// could not be opened.
pub fn queue_path(opts: &LayoutOptions) -> PathBuf {
    match (&opts.queue, &opts.qmail_home) {
        (Some(q), _) => q.clone(),
        (None, Some(h)) => h.join("queue"),
        (None, None) => PathBuf::from(DEFAULT_HOME).join("queue"),
    }
}

/// The queue path and qmail's home from the options: `--qmail-home`, else
/// the parent of `--queue` when it holds `bin/qmail-showctl`, else (with
/// neither option) qmail's default home.
fn locate(opts: &LayoutOptions) -> (PathBuf, Option<PathBuf>) {
    let home = match (&opts.queue, &opts.qmail_home) {
        (_, Some(h)) => Some(h.clone()),
        (Some(q), None) => q
            .parent()
            .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
            .filter(|p| p.join("bin").join("qmail-showctl").exists()),
        (None, None) => Some(PathBuf::from(DEFAULT_HOME)),
    };
    (queue_path(opts), home)
}

/// Refuses a directory that holds none of qmail's queue directories.
fn check_is_queue(queue: &Dir) -> Result<()> {
    for name in QUEUE_MARKERS {
        match queue.stat(OsStr::new(name)) {
            Ok(st) if st.kind == FileKind::Directory => return Ok(()),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::Layout(format!(
        "{} is not a qmail queue: no mess, todo, info, local, remote or lock directory found",
        escape_path(queue.path())
    )))
}

/// What opening a directory of the queue found.
enum Sub {
    /// It is not there.
    Missing,
    /// It is there but not a directory (or a symbolic link, never followed).
    NotDir,
    /// It is open.
    Open(Dir),
}

fn open_sub(queue: &Dir, name: &str) -> Result<Sub> {
    match queue.open_dir(OsStr::new(name)) {
        Ok(d) => Ok(Sub::Open(d)),
        Err(e) => match e.errno() {
            Some(Errno::ENOENT) => Ok(Sub::Missing),
            Some(Errno::ENOTDIR | Errno::ELOOP) => Ok(Sub::NotDir),
            _ => Err(e),
        },
    }
}

/// Whether the entry `n` of `dir` (named by a number) is a directory:
/// `d_type` when the filesystem gives it, else a no-follow stat.
fn is_dir_entry(dir: &Dir, n: u64, kind: Option<FileKind>) -> bool {
    match kind {
        Some(k) => k == FileKind::Directory,
        None => dir.stat(&number_name(n)).is_ok_and(|st| st.kind == FileKind::Directory),
    }
}

/// The numbers of the numeric sub-directories of `dir` that can be
/// buckets (below `u32::MAX`), sorted.
fn bucket_dirs(dir: &Dir) -> Result<Vec<u32>> {
    let mut buckets = Vec::new();
    let mut unknown = Vec::new();
    dir.for_each_entry(|name, kind, _| {
        let Some(n) = parse_number(name.to_bytes()) else {
            return;
        };
        let Ok(b) = u32::try_from(n) else {
            return;
        };
        if b == u32::MAX {
            return;
        }
        match kind {
            Some(FileKind::Directory) => buckets.push(b),
            Some(_) => {}
            None => unknown.push(b),
        }
    })?;
    for b in unknown {
        if is_dir_entry(dir, u64::from(b), None) {
            buckets.push(b);
        }
    }
    buckets.sort_unstable();
    Ok(buckets)
}

/// What one split directory showed.
enum Seen {
    Missing,
    NotDir,
    NoBuckets,
    Buckets { max: u32, count: usize },
}

impl Seen {
    fn describe(&self, dir: &str) -> String {
        match self {
            Seen::Missing => format!("{dir}: missing"),
            Seen::NotDir => format!("{dir}: not a directory"),
            Seen::NoBuckets => format!("{dir}: no buckets"),
            Seen::Buckets { max, count } => {
                let range = u64::from(*max) + 1;
                if *count as u64 == range {
                    format!("{dir}: buckets 0..{max} ({range})")
                } else {
                    format!("{dir}: buckets 0..{max} ({count} present, {} missing)", range - *count as u64)
                }
            }
        }
    }
}

/// The split that the message names in the buckets of `mess/` fit:
/// `Some(split)` when at least half of a sample of names `N` in bucket `b`
/// have `N mod split == b`; else the smallest split that fits nine in ten
/// of them (at most `split`); `None` when there are too few names to tell.
fn names_fit(queue: &Dir, split: u32) -> Result<Option<u32>> {
    const SAMPLE: usize = 400;
    let mess = match open_sub(queue, "mess")? {
        Sub::Open(d) => d,
        _ => return Ok(None),
    };
    let mut sample: Vec<(u64, u32)> = Vec::new();
    let per_bucket = (SAMPLE / split as usize).max(4);
    for b in 0..split {
        let Ok(d) = mess.open_dir(std::ffi::OsStr::new(&b.to_string())) else { continue };
        let mut taken = 0;
        d.for_each_entry_while(|name, _, _| {
            if let Some(n) = crate::safe_fs::parse_number(name.to_bytes()) {
                sample.push((n, b));
                taken += 1;
            }
            taken < per_bucket
        })?;
    }
    if sample.len() < 8 {
        return Ok(None);
    }
    let fits = |s: u32| sample.iter().filter(|(n, b)| n % u64::from(s) == u64::from(*b)).count();
    if fits(split) * 2 >= sample.len() {
        return Ok(Some(split));
    }
    Ok((1..split).find(|s| fits(*s) * 10 >= sample.len() * 9).or(Some(split)))
}

/// The split as the buckets of mess, info, local and remote show it: the
/// highest numeric bucket directory plus one, when every one of those
/// directories that has buckets agrees. A bucket missing inside the range
/// is damage, not evidence of another split. `Ok(None)` when no directory
/// has a bucket (no evidence). Entries are listed without a stat each
/// (`d_type`), and nothing is followed.
///
/// Fails with [`Error::Layout`] when the directories disagree (the message
/// says what each one holds and suggests `--split`), or with the error of a
/// directory that cannot be read, or when the message names in the buckets
/// fit a smaller split (extra buckets made by hand).
pub fn split_from_disk(queue: &Dir) -> Result<Option<Decision<u32>>> {
    let mut seen = Vec::with_capacity(SPLIT_PARTS.len());
    for part in SPLIT_PARTS {
        let s = match open_sub(queue, part.dir())? {
            Sub::Missing => Seen::Missing,
            Sub::NotDir => Seen::NotDir,
            Sub::Open(d) => {
                let buckets = bucket_dirs(&d)?;
                match buckets.last() {
                    None => Seen::NoBuckets,
                    Some(&max) => Seen::Buckets { max, count: buckets.len() },
                }
            }
        };
        seen.push((part.dir(), s));
    }
    let maxes: Vec<u32> = seen
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Buckets { max, .. } => Some(*max),
            _ => None,
        })
        .collect();
    let (Some(&low), Some(&high)) = (maxes.iter().min(), maxes.iter().max()) else {
        return Ok(None);
    };
    let split = high + 1;
    if low != high {
        // Directories that stop below the others either lost their top
        // buckets (damage, like any missing bucket) or the others have
        // extra ones. Only the message names can tell: when enough of them
        // fit the largest split exactly, the lower directories are missing
        // buckets; otherwise the split is ambiguous.
        if names_fit(queue, split)? != Some(split) {
            let list: Vec<String> = seen.iter().map(|(d, s)| s.describe(d)).collect();
            return Err(Error::Layout(format!(
                "{}: cannot tell the split from the buckets on disk: {}; give the split with --split N \
                 (qmail's conf-split, which qmail-showctl prints as \"subdirectory split\")",
                escape_path(queue.path()),
                list.join(", ")
            )));
        }
    }
    // The buckets agree (or the names proved the largest); the message
    // names inside must agree too. Extra buckets made by hand (or by a
    // copy) in every directory would otherwise pass for a larger split.
    if let Some(fit) = names_fit(queue, split)? {
        if fit != split {
            let list: Vec<String> = seen.iter().map(|(d, s)| s.describe(d)).collect();
            return Err(Error::Layout(format!(
                "{}: cannot tell the split from the buckets on disk: {} buckets exist ({}), but the message \
                 names in them fit a split of {fit}, so buckets {fit}..{} look extra; give the split with \
                 --split N (qmail's conf-split, which qmail-showctl prints as \"subdirectory split\")",
                escape_path(queue.path()),
                split,
                list.join(", "),
                split - 1
            )));
        }
    }
    let with: Vec<&str> = seen.iter().filter(|(_, s)| matches!(s, Seen::Buckets { .. })).map(|(d, _)| *d).collect();
    let mut text = format!("{}: {split} buckets", with.join("/"));
    for (d, s) in &seen {
        match s {
            Seen::Buckets { count, .. } if *count as u64 == u64::from(split) => {}
            Seen::Buckets { max, count } if *max < high => {
                let missing = u64::from(split) - *count as u64;
                text.push_str(&format!(", {d}: {count} of {split} buckets present, {missing} missing"));
            }
            _ => {
                text.push_str(", ");
                text.push_str(&s.describe(d));
            }
        }
    }
    Ok(Some(Decision::new(split, Source::Disk(text))))
}

/// Whether the queue uses the big-todo patch: `todo/0` is a directory
/// (checked first: cheap), or `todo` or `intd` holds any numeric directory.
/// When `todo` is missing and `intd` shows nothing, the answer is the
/// default, false.
pub fn big_todo_from_disk(queue: &Dir) -> Result<Decision<bool>> {
    let todo = open_sub(queue, Part::Todo.dir())?;
    if let Sub::Open(todo) = &todo {
        match todo.stat(OsStr::new("0")) {
            Ok(st) if st.kind == FileKind::Directory => {
                return Ok(Decision::new(true, Source::Disk("todo/0 is a directory".to_string())));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        if let Some(n) = first_numeric_dir(todo)? {
            return Ok(Decision::new(true, Source::Disk(format!("todo/{n} is a directory"))));
        }
    }
    if let Sub::Open(intd) = open_sub(queue, Part::Intd.dir())? {
        if let Some(n) = first_numeric_dir(&intd)? {
            return Ok(Decision::new(true, Source::Disk(format!("intd/{n} is a directory"))));
        }
    }
    Ok(match todo {
        Sub::Open(_) => Decision::new(false, Source::Disk("todo holds no bucket directories".to_string())),
        Sub::Missing | Sub::NotDir => Decision::new(false, Source::Default),
    })
}

/// The first numeric sub-directory of `dir` found, if any. Entries whose
/// type the filesystem does not give are stat'ed one by one, stopping at
/// the first directory.
fn first_numeric_dir(dir: &Dir) -> Result<Option<u64>> {
    let mut found = None;
    let mut unknown = Vec::new();
    dir.for_each_entry(|name, kind, _| {
        if found.is_some() {
            return;
        }
        if let Some(n) = parse_number(name.to_bytes()) {
            match kind {
                Some(FileKind::Directory) => found = Some(n),
                Some(_) => {}
                None => unknown.push(n),
            }
        }
    })?;
    if found.is_none() {
        found = unknown.into_iter().find(|&n| is_dir_entry(dir, n, None));
    }
    Ok(found)
}

/// The ids from the user and group databases (users qmailq, qmails,
/// qmailr, group qmail), or the list of what is missing.
fn ids_from_user_db() -> std::result::Result<Ids, Vec<String>> {
    use nix::unistd::{Group, User};
    let mut missing = Vec::new();
    let mut uid = |name: &str| match User::from_name(name) {
        Ok(Some(u)) => Some(u.uid.as_raw()),
        Ok(None) => {
            missing.push(format!("user {name}"));
            None
        }
        Err(e) => {
            missing.push(format!("user {name} ({})", e.desc()));
            None
        }
    };
    let qmailq = uid("qmailq");
    let qmails = uid("qmails");
    let qmailr = uid("qmailr");
    let qmail_gid = match Group::from_name("qmail") {
        Ok(Some(g)) => Some(g.gid.as_raw()),
        Ok(None) => {
            missing.push("group qmail".to_string());
            None
        }
        Err(e) => {
            missing.push(format!("group qmail ({})", e.desc()));
            None
        }
    };
    match (qmailq, qmails, qmailr, qmail_gid) {
        (Some(qmailq), Some(qmails), Some(qmailr), Some(qmail_gid)) => Ok(Ids { qmailq, qmails, qmailr, qmail_gid }),
        _ => Err(missing),
    }
}

/// A queue root opened (and, from [`open_queue_checked`], checked), with
/// nothing else decided.
#[derive(Debug)]
pub struct OpenedQueue {
    /// The queue root (a symbolic link there, and only there, is followed).
    pub dir: Dir,
    /// The queue path, as given or derived from qmail's home.
    pub path: PathBuf,
    /// qmail's home, when known (same rules as [`discover`]).
    pub home: Option<PathBuf>,
}

/// Locates and opens the queue named by `opts` and checks that it is a
/// qmail queue (it holds at least one of qmail's directories), deciding
/// nothing else: no split, ids or big-todo, no `qmail-showctl`. For tools
/// that only count files and must work even when the split is undecidable.
///
/// Fails as [`discover`] does when the queue cannot be opened or is not a
/// qmail queue.
pub fn open_queue_checked(opts: &LayoutOptions) -> Result<OpenedQueue> {
    let opened = open_root(opts)?;
    check_is_queue(&opened.dir)?;
    Ok(opened)
}

/// Locates and opens the queue root named by `opts` (following a symbolic
/// link there only), checking nothing else: the one open of the root that
/// [`discover_in`] and [`crate::session::Session`] build on.
pub fn open_root(opts: &LayoutOptions) -> Result<OpenedQueue> {
    let (path, home) = locate(opts);
    let dir = Dir::open(&path, SymlinkBehavior::Follow)?;
    Ok(OpenedQueue { dir, path, home })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    /// Makes a healthy empty queue at `q` with `split` buckets.
    fn make_queue(q: &Path, split: u32) {
        fs::create_dir_all(q).unwrap();
        for d in ["mess", "info", "local", "remote"] {
            for b in 0..split {
                fs::create_dir_all(q.join(d).join(b.to_string())).unwrap();
            }
        }
        for d in ["todo", "intd", "bounce", "pid", "lock"] {
            fs::create_dir(q.join(d)).unwrap();
        }
    }

    fn opts_for(q: &Path) -> LayoutOptions {
        LayoutOptions { queue: Some(q.to_path_buf()), run_showctl: true, ..LayoutOptions::default() }
    }

    fn write_script(path: &Path, body: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    const SHOWCTL: &str = "echo 'qmail home directory: /var/qmail.'\n\
                           echo 'subdirectory split: 7.'\n\
                           echo 'user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.'\n\
                           echo 'group ids: 2108, 2107.'\n\
                           echo\n\
                           echo 'me: My name is example.org.'\n";

    fn disk_split(layout: &Layout) -> u32 {
        assert!(matches!(layout.split.source, Source::Disk(_)), "{:?}", layout.split);
        layout.split.value
    }

    #[test]
    fn split_from_all_buckets() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 23);
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(disk_split(&l), 23);
        assert_eq!(l.home, None);
        assert!(!l.queue_is_symlink);
        assert_eq!(l.showctl_note, None);
        assert_eq!(l.split.source.to_string(), "from the buckets on disk (mess/info/local/remote: 23 buckets)");
        assert_eq!(l.big_todo, Decision::new(false, Source::Disk("todo holds no bucket directories".into())));
    }

    #[test]
    fn one_missing_bucket_is_damage_not_evidence() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 23);
        fs::remove_dir(q.join("mess/5")).unwrap();
        fs::remove_dir(q.join("info/0")).unwrap();
        // Junk that is not a bucket: files, non-numeric and leading-zero names.
        fs::write(q.join("local/40"), b"").unwrap();
        fs::create_dir(q.join("remote/077")).unwrap();
        fs::create_dir(q.join("remote/x99")).unwrap();
        symlink(t.path(), q.join("remote/88")).unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(disk_split(&l), 23);
        let s = l.split.source.to_string();
        assert!(s.contains("mess: buckets 0..22 (22 present, 1 missing)"), "{s}");
    }

    /// A directory that lost its top bucket (a missing-bucket damage that
    /// hit bucket split-1) stops below the others: the names in mess
    /// prove the split, so it is damage, not ambiguity. Without names to
    /// prove it, it stays ambiguous.
    #[test]
    fn a_missing_top_bucket_is_damage_when_the_names_prove_the_split() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 23);
        fs::remove_dir(q.join("info/22")).unwrap();
        let e = discover(&opts_for(&q)).unwrap_err();
        assert!(matches!(e, Error::Layout(_)), "no names, no proof: {e:?}");
        for n in 1000..1060u64 {
            fs::write(q.join("mess").join((n % 23).to_string()).join(n.to_string()), b"x").unwrap();
        }
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(disk_split(&l), 23);
        let s = l.split.source.to_string();
        assert!(s.contains("info: 22 of 23 buckets present, 1 missing"), "{s}");
        // Names that fit another split leave it ambiguous.
        fs::remove_dir(q.join("remote/22")).unwrap();
        fs::remove_dir(q.join("local/22")).unwrap();
        for n in 1000..1060u64 {
            fs::remove_file(q.join("mess").join((n % 23).to_string()).join(n.to_string())).unwrap();
            let b = n % 22;
            fs::write(q.join("mess").join(b.to_string()).join(n.to_string()), b"x").unwrap();
        }
        let e = discover(&opts_for(&q)).unwrap_err();
        assert!(matches!(e, Error::Layout(_)), "names fit 22, mess/22 is extra: {e:?}");
    }

    #[test]
    fn one_missing_directory() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 7);
        fs::remove_dir_all(q.join("remote")).unwrap();
        fs::remove_dir_all(q.join("local")).unwrap();
        fs::create_dir(q.join("local")).unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(disk_split(&l), 7);
        let s = l.split.source.to_string();
        assert!(s.contains("mess/info: 7 buckets"), "{s}");
        assert!(s.contains("remote: missing"), "{s}");
        assert!(s.contains("local: no buckets"), "{s}");
    }

    #[test]
    fn no_buckets_at_all_is_the_default() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        fs::create_dir_all(q.join("lock")).unwrap();
        fs::create_dir_all(q.join("mess")).unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(l.split, Decision::new(DEFAULT_SPLIT, Source::Default));
        assert_eq!(l.big_todo, Decision::new(false, Source::Default));
        assert_eq!(l.split.source.to_string(), "default");
    }

    #[test]
    fn extra_buckets_are_ambiguous() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 23);
        for b in 23..30 {
            fs::create_dir(q.join("info").join(b.to_string())).unwrap();
        }
        let e = discover(&opts_for(&q)).unwrap_err();
        assert!(matches!(e, Error::Layout(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("mess: buckets 0..22 (23)"), "{m}");
        assert!(m.contains("info: buckets 0..29 (30)"), "{m}");
        assert!(m.contains("local: buckets 0..22 (23)"), "{m}");
        assert!(m.contains("remote: buckets 0..22 (23)"), "{m}");
        assert!(m.contains("--split"), "{m}");
        let d = Dir::open(&q, SymlinkBehavior::Follow).unwrap();
        assert!(split_from_disk(&d).is_err());

        // An explicit split overrides the disk, with no error.
        let mut o = opts_for(&q);
        o.split = Some(30);
        let l = discover(&o).unwrap();
        assert_eq!(l.split, Decision::new(30, Source::Option("--split".into())));
        assert_eq!(l.split.source.to_string(), "from --split");
    }

    #[test]
    fn split_zero_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 3);
        let mut o = opts_for(&q);
        o.split = Some(0);
        assert!(matches!(discover(&o), Err(Error::Layout(_))));
    }

    #[test]
    fn showctl_decides_split_and_ids() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("qmail");
        let q = home.join("queue");
        make_queue(&q, 23); // disagrees with showctl: showctl wins
        let showctl = home.join("bin/qmail-showctl");
        write_script(&showctl, SHOWCTL, 0o755);
        let o = LayoutOptions { qmail_home: Some(home.clone()), run_showctl: true, ..LayoutOptions::default() };
        let l = discover(&o).unwrap();
        assert_eq!(l.queue, q);
        assert_eq!(l.home.as_deref(), Some(home.as_path()));
        assert_eq!(l.split, Decision::new(7, Source::Showctl(showctl.clone())));
        assert_eq!(l.split.source.to_string(), format!("from {}", showctl.display()));
        let ids = l.ids.clone().unwrap();
        assert_eq!(ids.source, Source::Showctl(showctl.clone()));
        assert_eq!(ids.value, Ids { qmailq: 7794, qmailr: 7795, qmails: 7796, qmail_gid: 2107 });
        assert_eq!(l.showctl_note, None);
        assert_eq!(l.control_file("me"), Some(home.join("control/me")));

        // --queue DIR whose parent holds bin/qmail-showctl: same home.
        let l2 = discover(&opts_for(&q)).unwrap();
        assert_eq!(l2.home.as_deref(), Some(home.as_path()));
        assert_eq!(l2.split.value, 7);

        // Explicit options beat showctl.
        let mut o3 = opts_for(&q);
        o3.split = Some(23);
        let given = Ids { qmailq: 1, qmails: 2, qmailr: 3, qmail_gid: 4 };
        o3.ids = Some(given);
        let l3 = discover(&o3).unwrap();
        assert_eq!(l3.split.source, Source::Option("--split".into()));
        assert_eq!(l3.ids, Ok(Decision::new(given, Source::Option("--ids".into()))));

        // Not run when the tools are told not to.
        let mut o4 = opts_for(&q);
        o4.run_showctl = false;
        assert_eq!(disk_split(&discover(&o4).unwrap()), 23);
    }

    #[test]
    fn a_failing_showctl_falls_through_with_a_note() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("qmail");
        let q = home.join("queue");
        make_queue(&q, 11);
        let showctl = home.join("bin/qmail-showctl");
        let o = opts_for(&q);

        write_script(&showctl, "echo 'subdirectory split: many.'\n", 0o755);
        let l = discover(&o).unwrap();
        assert_eq!(disk_split(&l), 11);
        let note = l.showctl_note.clone().unwrap();
        assert!(note.contains("not a decimal number"), "{note}");
        let text = l.source_text(&l.split.source);
        assert!(text.contains("qmail-showctl not used"), "{text}");
        assert!(l.ids.is_ok() || l.ids.as_ref().unwrap_err().contains("--ids"));

        write_script(&showctl, "exit 111\n", 0o755);
        let l = discover(&o).unwrap();
        assert_eq!(disk_split(&l), 11);
        assert!(l.showctl_note.unwrap().contains("printed no split"));

        // Exit 111 after the compiled-in values (no control directory):
        // the values still count.
        write_script(&showctl, "echo 'subdirectory split: 11.'\nexit 111\n", 0o755);
        let l = discover(&o).unwrap();
        assert_eq!(l.split.source, Source::Showctl(showctl.clone()));
        assert!(l.showctl_note.unwrap().contains("printed no user ids"));

        write_script(&showctl, "echo 'subdirectory split: 3.'\n", 0o644);
        // Not executable: the parent still counts as qmail's home.
        let l = discover(&o).unwrap();
        assert_eq!(disk_split(&l), 11);
        assert!(l.showctl_note.unwrap().contains("not executable"));

        write_script(&showctl, "echo 'subdirectory split: 3.'\n", 0o777);
        let l = discover(&o).unwrap();
        assert_eq!(disk_split(&l), 11);
        assert!(l.showctl_note.unwrap().contains("writable by group or others"));
    }

    #[test]
    fn showctl_note_is_in_the_ambiguity_error() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("qmail");
        let q = home.join("queue");
        make_queue(&q, 5);
        fs::create_dir(q.join("mess/9")).unwrap();
        let o = LayoutOptions { qmail_home: Some(home), run_showctl: true, ..LayoutOptions::default() };
        let m = discover(&o).unwrap_err().to_string();
        assert!(m.contains("mess: buckets 0..9 (6 present, 4 missing)"), "{m}");
        assert!(m.contains("qmail-showctl: not found"), "{m}");
    }

    #[test]
    fn big_todo_detection() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 3);
        fs::write(q.join("todo/12345"), b"").unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert!(!l.big_todo.value);

        fs::create_dir(q.join("todo/2")).unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(l.big_todo, Decision::new(true, Source::Disk("todo/2 is a directory".into())));

        fs::create_dir(q.join("todo/0")).unwrap();
        let l = discover(&opts_for(&q)).unwrap();
        assert_eq!(l.big_todo, Decision::new(true, Source::Disk("todo/0 is a directory".into())));

        let t2 = tempfile::tempdir().unwrap();
        let q2 = t2.path().join("queue");
        make_queue(&q2, 3);
        fs::create_dir(q2.join("intd/1")).unwrap();
        let l = discover(&opts_for(&q2)).unwrap();
        assert_eq!(l.big_todo, Decision::new(true, Source::Disk("intd/1 is a directory".into())));
        fs::remove_dir(q2.join("intd/1")).unwrap();
        fs::remove_dir(q2.join("todo")).unwrap();
        let l = discover(&opts_for(&q2)).unwrap();
        assert_eq!(l.big_todo, Decision::new(false, Source::Default));
    }

    #[test]
    fn queue_may_be_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("disk2/queue");
        make_queue(&real, 5);
        let home = t.path().join("qmail");
        fs::create_dir(&home).unwrap();
        symlink(&real, home.join("queue")).unwrap();
        let o = LayoutOptions { qmail_home: Some(home.clone()), run_showctl: true, ..LayoutOptions::default() };
        let l = discover(&o).unwrap();
        assert!(l.queue_is_symlink);
        assert_eq!(l.queue, home.join("queue"));
        assert_eq!(disk_split(&l), 5);
        let d = open_root(&o).unwrap().dir;
        assert!(d.open_dir(OsStr::new("mess")).is_ok());
        assert_eq!(discover_in(&d, &o).unwrap(), l);
        assert!(l.showctl_note.unwrap().contains("not found"));
    }

    #[test]
    fn not_a_queue() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(t.path().join("mess"), b"a file, not a directory").unwrap();
        let e = discover(&opts_for(t.path())).unwrap_err();
        assert!(matches!(e, Error::Layout(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("is not a qmail queue"), "{m}");
        assert!(m.contains(&t.path().display().to_string()), "{m}");
    }

    #[test]
    fn missing_queue() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("nowhere");
        let e = discover(&opts_for(&q)).unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert!(e.to_string().contains(&q.display().to_string()), "{e}");
        let e = discover(&LayoutOptions { qmail_home: Some(t.path().join("nohome")), ..LayoutOptions::default() })
            .unwrap_err();
        assert!(e.to_string().contains("nohome/queue"), "{e}");
    }

    #[test]
    fn ids_without_any_source() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("queue");
        make_queue(&q, 2);
        let l = discover(&opts_for(&q)).unwrap();
        match &l.ids {
            Ok(d) => assert_eq!(d.source, Source::Passwd),
            Err(m) => {
                assert!(m.contains("--ids"), "{m}");
                assert!(m.contains("qmail-showctl was not run"), "{m}");
            }
        }
    }

    #[test]
    fn locating_queue_and_home() {
        let (q, h) = locate(&LayoutOptions::default());
        assert_eq!(q, Path::new("/var/qmail/queue"));
        assert_eq!(h.as_deref(), Some(Path::new("/var/qmail")));
        let (q, h) = locate(&LayoutOptions {
            queue: Some("/x/q".into()),
            qmail_home: Some("/y".into()),
            ..LayoutOptions::default()
        });
        assert_eq!((q.as_path(), h.as_deref()), (Path::new("/x/q"), Some(Path::new("/y"))));
        let (_, h) = locate(&LayoutOptions { queue: Some("/".into()), ..LayoutOptions::default() });
        assert_eq!(h, None);
        let home_only = LayoutOptions { qmail_home: Some("/y".into()), ..LayoutOptions::default() };
        assert_eq!(locate(&home_only), (PathBuf::from("/y/queue"), Some(PathBuf::from("/y"))));
        assert_eq!(queue_path(&home_only), Path::new("/y/queue"));
        assert_eq!(queue_path(&LayoutOptions::default()), Path::new("/var/qmail/queue"));
    }

    #[test]
    fn sources_display() {
        assert_eq!(Source::Option("--ids".into()).to_string(), "from --ids");
        assert_eq!(
            Source::Showctl("/var/qmail/bin/qmail-showctl".into()).to_string(),
            "from /var/qmail/bin/qmail-showctl"
        );
        assert_eq!(Source::Passwd.to_string(), "from /etc/passwd and /etc/group");
        assert_eq!(Source::Default.to_string(), "default");
    }
}
