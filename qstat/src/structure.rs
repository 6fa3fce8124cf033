//! `--check`'s look at the queue's structure: the top directories, the
//! buckets, the lock files and the owners of all of them (the tables of
//! `qcommon::queue`). Damage there stops or stalls qmail-send: a missing
//! `info/20` makes it fail on every message of that bucket, a missing
//! `lock/trigger` keeps it from hearing of new mail, a directory it may not
//! write makes it retry forever. It only stats and lists; it changes
//! nothing.

use std::ffi::OsStr;

use qcommon::layout::Layout;
use qcommon::queue::{Ids, LockFile, Owner, Part, OTHER_DIRS, QUEUE_DIR_SPEC};
use qcommon::safe_fs::{Dir, FileKind, Stat};

/// One problem of the structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A stable code: `missing_directory`, `not_a_directory`,
    /// `missing_bucket`, `missing_lock_file`, `wrong_lock_file`,
    /// `renumbering_interrupted`, `wrong_owner`, `unreadable`.
    pub code: &'static str,
    /// The path, relative to the queue, escaped.
    pub path: String,
    /// What is wrong, in words (escaped).
    pub text: String,
}

fn problem(out: &mut Vec<Problem>, code: &'static str, path: &str, text: String) {
    out.push(Problem { code, path: qcommon::error::escape_text(path), text: qcommon::error::escape_text(&text) });
}

fn owner(out: &mut Vec<Problem>, path: &str, st: &Stat, ids: Option<&Ids>, who: Owner) {
    let Some(ids) = ids else { return };
    let (uid, gid) = (ids.uid(who), ids.qmail_gid);
    if st.uid != uid || st.gid != gid {
        problem(out, "wrong_owner", path, format!("{path}: owner {}:{}, should be {uid}:{gid}", st.uid, st.gid));
    }
}

/// Looks at a directory `name` in `parent`: its problems, and the open
/// directory when it is one.
fn directory(
    out: &mut Vec<Problem>,
    parent: &Dir,
    path: &str,
    name: &str,
    ids: Option<&Ids>,
    who: Owner,
) -> Option<Dir> {
    match parent.stat(OsStr::new(name)) {
        Err(e) if e.is_not_found() => {
            problem(
                out,
                if path.contains('/') { "missing_bucket" } else { "missing_directory" },
                path,
                format!("{path} is missing"),
            );
            None
        }
        Err(e) => {
            problem(out, "unreadable", path, e.to_string());
            None
        }
        Ok(st) if st.kind != FileKind::Directory => {
            problem(out, "not_a_directory", path, format!("{path} is not a directory"));
            None
        }
        Ok(st) => {
            owner(out, path, &st, ids, who);
            match parent.open_dir(OsStr::new(name)) {
                Ok(d) => Some(d),
                Err(e) => {
                    problem(out, "unreadable", path, e.to_string());
                    None
                }
            }
        }
    }
}

/// The structure's problems, in a fixed order. `ids` `None`: owners are
/// not checked (qmail's ids could not be decided).
pub fn check(root: &Dir, layout: &Layout) -> Vec<Problem> {
    let mut out = Vec::new();
    let ids = layout.ids.as_ref().ok().map(|d| &d.value);
    match root.stat_self() {
        Ok(st) => owner(&mut out, ".", &st, ids, QUEUE_DIR_SPEC.0),
        Err(e) => problem(&mut out, "unreadable", ".", e.to_string()),
    }
    for part in Part::ALL {
        let name = part.dir();
        let Some(d) = directory(&mut out, root, name, name, ids, part.dir_spec().0) else { continue };
        if part.is_split(layout.big_todo.value) {
            for b in 0..layout.split.value {
                let bucket = b.to_string();
                directory(&mut out, &d, &format!("{name}/{bucket}"), &bucket, ids, part.dir_spec().0);
            }
        }
    }
    for (name, who, _) in OTHER_DIRS {
        let d = directory(&mut out, root, name, name, ids, who);
        if name != "lock" {
            continue;
        }
        let Some(lock) = d else { continue };
        for f in LockFile::ALL {
            let path = format!("lock/{}", f.name());
            let want = if f == LockFile::Trigger { FileKind::Fifo } else { FileKind::Regular };
            match lock.stat(OsStr::new(f.name())) {
                // qfixq's fence: the renumbering it guards was interrupted.
                Err(e) if e.is_not_found() && f == LockFile::Sendmutex && fenced(&lock) => problem(
                    &mut out,
                    "renumbering_interrupted",
                    &path,
                    format!(
                        "a qfixq renumbering was interrupted: {path} is set aside as lock/{}, so qmail-send cannot \
                         start; run `qfixq live` to finish it",
                        qcommon::lock::FENCE
                    ),
                ),
                Err(e) if e.is_not_found() => {
                    problem(&mut out, "missing_lock_file", &path, format!("{path} is missing"))
                }
                Err(e) => problem(&mut out, "unreadable", &path, e.to_string()),
                Ok(st) if st.kind != want => problem(
                    &mut out,
                    "wrong_lock_file",
                    &path,
                    format!("{path} is not a {}", if want == FileKind::Fifo { "named pipe" } else { "regular file" }),
                ),
                Ok(st) => owner(&mut out, &path, &st, ids, f.spec().0),
            }
        }
    }
    out
}

/// Whether qfixq's renumbering fence is in `lock`, a regular file.
fn fenced(lock: &Dir) -> bool {
    lock.stat(OsStr::new(qcommon::lock::FENCE)).is_ok_and(|st| st.kind == FileKind::Regular)
}
