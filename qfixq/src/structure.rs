//! The queue's structure: the queue directory, its sub-directories and
//! buckets, and the lock files, with their owners and modes
//! (the tables of docs/queue-format.md). Planned before the messages so that, live,
//! every bucket a message may move into exists.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use qcommon::lock::FENCE;
use qcommon::mutator::{Action, Step};
use qcommon::queue::{Ids, LockFile, Owner, Part, QueueShape, LOST_AND_FOUND, OTHER_DIRS, QUEUE_DIR_SPEC};
use qcommon::remove::Quarantine;
use qcommon::safe_fs::{Dir, Expect, FileKind, NewFile, Stat};
use qcommon::salvaged::SALVAGED_DIR;

use crate::finding::{Finding, Kind};

/// What structure planning needs.
#[derive(Debug)]
pub struct StructureCtx<'a> {
    /// The queue root.
    pub root: &'a Dir,
    /// The queue's split and big-todo: which buckets exist.
    pub shape: QueueShape,
    /// qmail's ids.
    pub ids: Ids,
}

fn stat_rel(root: &Dir, rel: &Path) -> Option<Stat> {
    if rel == Path::new(".") {
        return root.stat_self().ok();
    }
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    let name = rel.file_name()?;
    match parent {
        None => root.stat(name).ok(),
        Some(p) => {
            let mut d: Option<Dir> = None;
            for c in p.components() {
                let next = match &d {
                    None => root.open_dir(c.as_os_str()).ok()?,
                    Some(x) => x.open_dir(c.as_os_str()).ok()?,
                };
                d = Some(next);
            }
            d?.stat(name).ok()
        }
    }
}

fn dir_expect(st: &Stat) -> Expect {
    Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX }
}

/// Owner and mode findings for an existing entry.
fn owner_mode(out: &mut Vec<Finding>, rel: &Path, st: &Stat, uid: u32, gid: u32, perm: u32, max_nlink: u64) {
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink };
    if st.uid != uid || st.gid != gid {
        out.push(Finding::fix(
            Kind::Owner,
            rel.to_path_buf(),
            format!("owner {}:{}, should be {uid}:{gid}", st.uid, st.gid),
            "chown",
            Action { message: None, steps: vec![Step::Chown { path: rel.to_path_buf(), expect: ex, uid, gid }] },
        ));
    }
    // chown clears set-id bits, so a chmod follows it whenever the mode
    // holds any.
    if st.perm != perm || ((st.uid != uid || st.gid != gid) && st.perm & 0o6000 != 0) {
        out.push(Finding::fix(
            Kind::Mode,
            rel.to_path_buf(),
            format!("mode {:04o}, should be {perm:04o}", st.perm),
            "chmod",
            Action { message: None, steps: vec![Step::Chmod { path: rel.to_path_buf(), expect: ex, perm }] },
        ));
    }
}

/// Steps that clear the way for a new entry at `rel`: links, pipes,
/// sockets and devices are removed (never followed or opened); files and
/// directories go to lost+found.
fn clear_steps(q: &mut Quarantine, rel: &Path, st: &Stat, what: &str) -> (Vec<Step>, &'static str) {
    match st.kind {
        FileKind::Regular | FileKind::Directory => (
            q.stray_steps(rel, Some(dir_expect(st)), &format!("{} where {what} belongs", st.kind.name())),
            "moved to lost+found",
        ),
        _ => (
            vec![Step::Unlink { path: rel.to_path_buf(), expect: Some(dir_expect(st)) }],
            "removed (never followed or opened)",
        ),
    }
}

fn directory(
    ctx: &StructureCtx<'_>,
    q: &mut Quarantine,
    out: &mut Vec<Finding>,
    rel: PathBuf,
    owner: Owner,
    perm: u32,
) {
    let uid = ctx.ids.uid(owner);
    let gid = ctx.ids.qmail_gid;
    match stat_rel(ctx.root, &rel) {
        None => out.push(Finding::fix(
            Kind::Structure,
            rel.clone(),
            "missing directory",
            "create it",
            Action { message: None, steps: vec![Step::Mkdir { path: rel, perm, owner: Some((uid, gid)) }] },
        )),
        Some(st) if st.kind == FileKind::Directory => owner_mode(out, &rel, &st, uid, gid, perm, u64::MAX),
        Some(st) => {
            let (mut steps, how) = clear_steps(q, &rel, &st, "a directory");
            steps.push(Step::Mkdir { path: rel.clone(), perm, owner: Some((uid, gid)) });
            out.push(Finding::fix(
                Kind::Structure,
                rel,
                format!("{} where a directory belongs", st.kind.name()),
                format!("{how}; directory created"),
                Action { message: None, steps },
            ));
        }
    }
}

fn lock_file(ctx: &StructureCtx<'_>, q: &mut Quarantine, out: &mut Vec<Finding>, lf: LockFile) {
    let rel = PathBuf::from("lock").join(lf.name());
    let (owner, perm) = lf.spec();
    let uid = ctx.ids.uid(owner);
    let gid = ctx.ids.qmail_gid;
    let make = |rel: &Path| match lf {
        LockFile::Trigger => Step::Mkfifo { path: rel.to_path_buf(), perm, owner: Some((uid, gid)) },
        LockFile::Sendmutex | LockFile::Tcpto => Step::WriteFile {
            path: rel.to_path_buf(),
            data: if lf == LockFile::Tcpto { vec![0; LockFile::TCPTO_SIZE as usize] } else { Vec::new() },
            spec: NewFile { perm, owner: Some((uid, gid)), mtime: None, replace: false },
        },
    };
    let want_kind = if lf == LockFile::Trigger { FileKind::Fifo } else { FileKind::Regular };
    match stat_rel(ctx.root, &rel) {
        None => out.push(Finding::fix(
            Kind::Structure,
            rel.clone(),
            "missing lock file",
            "create it",
            Action { message: None, steps: vec![make(&rel)] },
        )),
        Some(st) if st.kind == want_kind => {
            if lf == LockFile::Tcpto && st.size != LockFile::TCPTO_SIZE {
                let mut step = make(&rel);
                if let Step::WriteFile { spec, .. } = &mut step {
                    spec.replace = true;
                }
                out.push(Finding::fix(
                    Kind::Structure,
                    rel.clone(),
                    format!("{} bytes, should be {}", st.size, LockFile::TCPTO_SIZE),
                    "replace it with 1024 zero bytes",
                    Action { message: None, steps: vec![step] },
                ));
            } else {
                owner_mode(out, &rel, &st, uid, gid, perm, 1);
            }
        }
        Some(st) => {
            let (mut steps, how) = match (lf, st.kind) {
                // A regular file where the trigger pipe belongs holds no mail.
                (LockFile::Trigger, FileKind::Regular) => {
                    (vec![Step::Unlink { path: rel.clone(), expect: Some(dir_expect(&st)) }], "removed")
                }
                _ => clear_steps(q, &rel, &st, "a lock file"),
            };
            steps.push(make(&rel));
            out.push(Finding::fix(
                Kind::Structure,
                rel.clone(),
                format!(
                    "{} where a {} belongs",
                    st.kind.name(),
                    if want_kind == FileKind::Fifo { "named pipe" } else { "regular file" }
                ),
                format!("{how}; lock file made anew"),
                Action { message: None, steps },
            ));
        }
    }
}

/// The sendmutex's finding alone: made first, so live mode can take the
/// lock before anything else is changed. A missing sendmutex whose fence
/// is up (`lock/sendmutex.qfixq-renumbering`, left by an interrupted
/// renumbering) is not made anew: the fence is renamed back once the
/// renumbering is finished (docs/repair.md, "Renumbering"), never before.
/// A fence beside a sendmutex (made anew by hand) is an empty lock file
/// that would stop the next renumbering from raising the fence: removed.
pub fn plan_sendmutex(ctx: &StructureCtx<'_>, q: &mut Quarantine) -> Vec<Finding> {
    let mut out = Vec::new();
    let (_, owner, perm) = OTHER_DIRS[1];
    directory(ctx, q, &mut out, PathBuf::from("lock"), owner, perm);
    let fence_rel = PathBuf::from("lock").join(FENCE);
    let fence = stat_rel(ctx.root, &fence_rel).filter(|st| st.kind == FileKind::Regular);
    let sendmutex = stat_rel(ctx.root, Path::new("lock/sendmutex"));
    match (fence, sendmutex) {
        (Some(_), None) => {}
        (Some(st), Some(_)) => {
            out.push(removed_stray(
                fence_rel,
                &st,
                "the fence of an interrupted renumbering beside lock/sendmutex",
                "removed (an empty lock file)",
            ));
            lock_file(ctx, q, &mut out, LockFile::Sendmutex);
        }
        (None, _) => lock_file(ctx, q, &mut out, LockFile::Sendmutex),
    }
    out
}

/// Every other structure finding: the queue directory, the part
/// directories and their buckets, pid/, tcpto and trigger.
pub fn plan_structure(ctx: &StructureCtx<'_>, q: &mut Quarantine) -> Vec<Finding> {
    let mut out = Vec::new();
    let (o, p) = QUEUE_DIR_SPEC;
    if let Ok(st) = ctx.root.stat_self() {
        owner_mode(&mut out, Path::new("."), &st, ctx.ids.uid(o), ctx.ids.qmail_gid, p, u64::MAX);
    }
    for (name, owner, perm) in OTHER_DIRS {
        if name != "lock" {
            directory(ctx, q, &mut out, PathBuf::from(name), owner, perm);
        }
    }
    for part in Part::ALL {
        let (owner, perm) = part.dir_spec();
        directory(ctx, q, &mut out, PathBuf::from(part.dir()), owner, perm);
        if ctx.shape.is_split(part) {
            for b in 0..ctx.shape.split {
                directory(ctx, q, &mut out, PathBuf::from(part.dir()).join(b.to_string()), owner, perm);
            }
        }
    }
    lock_file(ctx, q, &mut out, LockFile::Tcpto);
    lock_file(ctx, q, &mut out, LockFile::Trigger);
    leftover_temporaries(ctx, &mut out);
    out
}

/// The temporary files of an atomic write (`.qtools-tmp.*`: written,
/// fsynced, then renamed into place) that a run killed in the middle of
/// that step left, in the two places qfixq writes whole files: `lock/`
/// (a lock file's rewrite, the renumbering journal) and
/// `lost+found/salvaged/` (a salvage record). They are copies of what
/// qfixq was writing: removed. Anything else there is left alone.
fn leftover_temporaries(ctx: &StructureCtx<'_>, out: &mut Vec<Finding>) {
    let open = |path: &[&str]| -> Option<Dir> {
        let mut d = ctx.root.open_dir(OsStr::new(path[0])).ok()?;
        for name in &path[1..] {
            d = d.open_dir(OsStr::new(name)).ok()?;
        }
        Some(d)
    };
    for dirs in [&["lock"][..], &[LOST_AND_FOUND, SALVAGED_DIR][..]] {
        let Some(dir) = open(dirs) else { continue };
        let Ok(entries) = dir.entries() else { continue };
        for e in entries {
            if !e.name.as_encoded_bytes().starts_with(b".qtools-tmp.") {
                continue;
            }
            let Ok(st) = dir.stat(&e.name) else { continue };
            if st.kind != FileKind::Regular {
                continue;
            }
            let path = dirs.iter().collect::<PathBuf>().join(&e.name);
            out.push(removed_stray(path, &st, "temporary file of an interrupted repair", "removed"));
        }
    }
}

/// A file of qfixq's own (a fence, a temporary file) to unlink: the
/// regular file with one link the stat `st` saw at `path`.
fn removed_stray(path: PathBuf, st: &Stat, problem: &str, fix: &str) -> Finding {
    let expect = Some(Expect { ino: st.ino, kind: st.kind, max_nlink: 1 });
    Finding::fix(
        Kind::Stray,
        path.clone(),
        problem,
        fix,
        Action { message: None, steps: vec![Step::Unlink { path, expect }] },
    )
}

/// Whether the scan's stray at `path` is covered by structure planning
/// (a part directory or an in-range bucket that is not a directory).
pub fn covered_by_structure(path: &Path, shape: QueueShape) -> bool {
    let comps: Vec<&OsStr> = path.iter().collect();
    match comps.as_slice() {
        [top] => Part::from_dir(top.as_encoded_bytes()).is_some() || *top == OsStr::new("pid"),
        [top, b] => match Part::from_dir(top.as_encoded_bytes()) {
            Some(part) if shape.is_split(part) => {
                qcommon::safe_fs::parse_number(b.as_encoded_bytes()).is_some_and(|n| n < u64::from(shape.split))
            }
            _ => false,
        },
        _ => false,
    }
}
