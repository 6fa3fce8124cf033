//! The two numbers of qmail-qstat, counted as qmail-qstat counts them but
//! without a stat per file: this module owns that count.
//!
//! qmail-qstat (notqmail `qmail-qstat.sh`) runs, in qmail's home:
//!
//! ```text
//! messdirs=`echo queue/mess/* | wc -w`
//! messfiles=`find queue/mess/* -print | wc -w`
//! tododirs=`echo queue/todo | wc -w`
//! todofiles=`find queue/todo -print | wc -w`
//! echo messages in queue: `expr $messfiles - $messdirs`
//! echo messages in queue but not yet preprocessed: `expr $todofiles - $tododirs`
//! ```
//!
//! and with the big-todo patch, when `queue/todo/0` is a directory, the
//! todo lines become those of mess (`echo queue/todo/*`, `find
//! queue/todo/* -print`). So the first number is every entry of any type
//! below each non-hidden entry of `mess/` (the `*` glob skips names that
//! start with a dot), at any depth, without following symbolic links
//! (`find` does not follow them, not even on its command line), not the
//! top entries themselves; every entry counts once per word of its path
//! (`wc -w`, see [`crate::words`]). A file lying directly in `mess/`
//! counts for nothing (it is in both lists), nor does a symbolic link
//! there. The second number is every entry below `todo/` (flat), or below
//! each non-hidden entry of `todo/` (big-todo). On a healthy queue both are
//! simply the regular files in the mess buckets and in todo.
//!
//! Where qmail-qstat would print -1 (mess holds no entry at all, or mess or
//! todo is missing: the glob or `find` fails), this count says 0 and
//! reports the missing directory as an error.
//!
//! Entries are known from `d_type` (a no-follow stat only where the file
//! system does not give it); nothing is opened but directories, nothing
//! is collected but the names of sub-directories (normally none), and
//! a rayon pool of several threads shares the buckets. A directory or entry that vanishes
//! while it is counted (qmail-send at work) is not an error.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use qcommon::safe_fs::{Dir, FileKind};
use qcommon::{Error, Result};
use rayon::prelude::*;

use crate::listing::for_each_entry;
use crate::words::{WordRules, WordState};

/// qmail-qstat's two numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `messages in queue`.
    pub messages: u64,
    /// `messages in queue but not yet preprocessed`.
    pub unpreprocessed: u64,
}

/// The counts and what got in the way.
#[derive(Debug, Default)]
pub struct CountOutcome {
    /// The counts (low when `errors` is not empty).
    pub counts: Counts,
    /// Whether todo was counted as big-todo (`todo/0` is a directory).
    pub big_todo: bool,
    /// Directories that could not be read.
    pub errors: Vec<Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Mess,
    Todo,
}

/// One tree to count: a directory whose entries (at any depth) count.
struct Job {
    which: Which,
    dir: Dir,
    base: WordState,
}

/// The word state after `queue/<part>/` (one word, inside it).
const PART_BASE: WordState = WordState { words: 1, in_word: true };

/// Counts the queue at `root` with `threads` threads (at least 1).
pub fn count(root: &Dir, rules: WordRules, threads: usize) -> CountOutcome {
    let mut out = CountOutcome::default();
    let mut jobs = Vec::new();

    // todo first: a flat todo is one job, possibly the biggest.
    match open_part(root, "todo") {
        Ok(todo) => {
            out.big_todo = matches!(todo.stat(OsStr::new("0")), Ok(st) if st.kind == FileKind::Directory);
            if out.big_todo {
                top_entries(&todo, Which::Todo, rules, &mut jobs, &mut out.errors);
            } else {
                jobs.push(Job { which: Which::Todo, dir: todo, base: PART_BASE });
            }
        }
        Err(e) => out.errors.push(e),
    }
    match open_part(root, "mess") {
        Ok(mess) => top_entries(&mess, Which::Mess, rules, &mut jobs, &mut out.errors),
        Err(e) => out.errors.push(e),
    }

    // A rayon pool of `threads`, jobs taken one at a time (todo
    // first); results come back in job order, errors too.
    let threads = threads.clamp(1, jobs.len().max(1));
    let each = |job: &Job| {
        let mut errors = Vec::new();
        let n = count_tree(&job.dir, job.base, rules, &mut errors);
        let counts = match job.which {
            Which::Mess => Counts { messages: n, unpreprocessed: 0 },
            Which::Todo => Counts { messages: 0, unpreprocessed: n },
        };
        (counts, errors)
    };
    let pool = (threads > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()).flatten();
    let results: Vec<(Counts, Vec<Error>)> = match pool {
        Some(pool) => pool.install(|| jobs.par_iter().with_max_len(1).map(each).collect()),
        None => jobs.iter().map(each).collect(),
    };
    for (c, errors) in results {
        out.counts.messages += c.messages;
        out.counts.unpreprocessed += c.unpreprocessed;
        out.errors.extend(errors);
    }
    out
}

/// Opens `mess` or `todo`; missing or not a directory is an error here.
fn open_part(root: &Dir, name: &str) -> Result<Dir> {
    root.open_dir(OsStr::new(name)).map_err(|e| match e.errno() {
        Some(Errno::ENOENT) => Error::Other(format!("{}: missing", root.child_path(OsStr::new(name)).display())),
        Some(Errno::ENOTDIR | Errno::ELOOP) => {
            Error::Other(format!("{}: not a directory", root.child_path(OsStr::new(name)).display()))
        }
        _ => e,
    })
}

/// Makes a job of each non-hidden directory in `part` (`queue/<part>/*`).
fn top_entries(part: &Dir, which: Which, rules: WordRules, jobs: &mut Vec<Job>, errors: &mut Vec<Error>) {
    let mut dirs: Vec<CString> = Vec::new();
    let r = for_each_entry(part, |name, kind| {
        if name.to_bytes().first() == Some(&b'.') {
            return;
        }
        if is_dir(part, name, kind) {
            dirs.push(name.to_owned());
        }
    });
    if let Err(e) = r {
        errors.push(e);
    }
    for name in dirs {
        match part.open_dir(OsStr::from_bytes(name.to_bytes())) {
            Ok(dir) => jobs.push(Job { which, dir, base: rules.dir_base(PART_BASE, name.to_bytes()) }),
            Err(e) if vanished(&e) => {}
            Err(e) => errors.push(e),
        }
    }
}

/// Whether an entry is a directory: `d_type`, else a no-follow stat.
fn is_dir(parent: &Dir, name: &CStr, kind: Option<FileKind>) -> bool {
    match kind {
        Some(k) => k == FileKind::Directory,
        None => parent.stat(OsStr::from_bytes(name.to_bytes())).is_ok_and(|st| st.kind == FileKind::Directory),
    }
}

/// Gone, or replaced by something that is not a directory, since it was
/// listed: qmail-send (or a repair) at work; not an error for a reader.
fn vanished(e: &Error) -> bool {
    matches!(e.errno(), Some(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP))
}

struct Frame {
    dir: Dir,
    base: WordState,
    subdirs: Vec<CString>,
}

/// The words of every entry below `dir` (whose path ends in `base`), at
/// any depth, depth-first with an explicit stack (one open directory per
/// level, names of sub-directories only).
fn count_tree(dir: &Dir, base: WordState, rules: WordRules, errors: &mut Vec<Error>) -> u64 {
    let mut total = 0;
    let mut subdirs = Vec::new();
    list(dir, base, rules, &mut total, &mut subdirs, errors);
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending: Vec<(WordState, CString)> =
        subdirs.into_iter().map(|n| (rules.dir_base(base, n.to_bytes()), n)).collect();
    // The root frame borrows `dir`; deeper frames own theirs.
    loop {
        let (parent, next) = match stack.last_mut() {
            Some(f) => match f.subdirs.pop() {
                Some(n) => (Some(&f.dir), Some((rules.dir_base(f.base, n.to_bytes()), n))),
                None => {
                    stack.pop();
                    continue;
                }
            },
            None => (None, pending.pop()),
        };
        let Some((child_base, name)) = next else { break };
        let parent = parent.unwrap_or(dir);
        let child = match parent.open_dir(OsStr::from_bytes(name.to_bytes())) {
            Ok(d) => d,
            Err(e) if vanished(&e) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut subdirs = Vec::new();
        list(&child, child_base, rules, &mut total, &mut subdirs, errors);
        stack.push(Frame { dir: child, base: child_base, subdirs });
    }
    total
}

/// Adds the words of each entry of `dir` to `total` and collects the names
/// of its sub-directories.
fn list(
    dir: &Dir,
    base: WordState,
    rules: WordRules,
    total: &mut u64,
    subdirs: &mut Vec<CString>,
    errors: &mut Vec<Error>,
) {
    let r = for_each_entry(dir, |name, kind| {
        *total += base.words + rules.words_after_slash(name.to_bytes());
        if kind == Some(FileKind::Directory) || (kind.is_none() && is_dir(dir, name, None)) {
            subdirs.push(name.to_owned());
        }
    });
    match r {
        Ok(()) => {}
        Err(e) if vanished(&e) => {}
        Err(e) => errors.push(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcommon::safe_fs::SymlinkBehavior;
    use std::fs;
    use std::path::Path;

    fn run(q: &Path) -> CountOutcome {
        let root = Dir::open(q, SymlinkBehavior::Follow).unwrap();
        count(&root, WordRules::c(), 2)
    }

    fn skeleton(q: &Path, split: u32, big_todo: bool) {
        for b in 0..split {
            fs::create_dir_all(q.join("mess").join(b.to_string())).unwrap();
            if big_todo {
                fs::create_dir_all(q.join("todo").join(b.to_string())).unwrap();
            }
        }
        fs::create_dir_all(q.join("todo")).unwrap();
    }

    #[test]
    fn healthy_flat_and_big_todo() {
        for big in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let q = t.path();
            skeleton(q, 3, big);
            for i in 0..10u64 {
                fs::write(q.join("mess").join((i % 3).to_string()).join(i.to_string()), b"x").unwrap();
            }
            for i in 0..4u64 {
                let p = if big { q.join("todo").join((i % 3).to_string()) } else { q.join("todo") };
                fs::write(p.join(i.to_string()), b"x").unwrap();
            }
            let o = run(q);
            assert!(o.errors.is_empty(), "{:?}", o.errors);
            assert_eq!(o.big_todo, big);
            assert_eq!(o.counts, Counts { messages: 10, unpreprocessed: 4 });
        }
    }

    #[test]
    fn counts_what_find_prints() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path();
        skeleton(q, 2, false);
        // Nested directory with two files: 3 entries.
        fs::create_dir_all(q.join("mess/0/sub/deeper")).unwrap();
        fs::write(q.join("mess/0/sub/deeper/f"), b"").unwrap();
        // Hidden bucket: not globbed, not counted. Hidden file in a bucket: counted.
        fs::create_dir(q.join("mess/.hidden")).unwrap();
        fs::write(q.join("mess/.hidden/1"), b"").unwrap();
        fs::write(q.join("mess/1/.tmp"), b"").unwrap();
        // A file directly in mess and a symlinked bucket: nothing.
        fs::write(q.join("mess/77"), b"").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("5"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path(), q.join("mess/9")).unwrap();
        // A symlink and a FIFO in a bucket: one each.
        std::os::unix::fs::symlink("/etc/passwd", q.join("mess/1/10")).unwrap();
        nix::unistd::mkfifo(&q.join("mess/1/11"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A name with a space: two words.
        fs::write(q.join("mess/0/a b"), b"").unwrap();
        // todo: a nested dir counts with its content.
        fs::create_dir(q.join("todo/x")).unwrap();
        fs::write(q.join("todo/x/1"), b"").unwrap();
        fs::write(q.join("todo/.2"), b"").unwrap();
        let o = run(q);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(o.counts, Counts { messages: 3 + 1 + 2 + 2, unpreprocessed: 3 });
        assert!(!o.big_todo);
    }

    #[test]
    fn missing_parts_are_errors_and_zero() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("lock")).unwrap();
        let o = run(t.path());
        assert_eq!(o.counts, Counts::default());
        assert_eq!(o.errors.len(), 2);
        assert!(o.errors.iter().all(|e| e.to_string().ends_with(": missing")), "{:?}", o.errors);
        fs::write(t.path().join("mess"), b"").unwrap();
        let o = run(t.path());
        assert!(o.errors.iter().any(|e| e.to_string().ends_with("mess: not a directory")), "{:?}", o.errors);
    }
}
