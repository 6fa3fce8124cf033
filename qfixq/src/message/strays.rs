//! The strays the scan reports among the messages: files that belong to
//! no message (set aside, or removed when they are not regular files or
//! directories), pid/ leftovers, extra buckets, and the temporary names
//! of qfixq's own steps left by a crash: waiting names and fresh copies
//! are kept for the messages they belong to, the rest removed. Also the
//! extra names strays give to message inodes, counted before any message
//! is judged.

use qcommon::mutator::{Action, Step};
use qcommon::remove::Quarantine;
use qcommon::safe_fs::{parse_number, Expect, FileKind, Stat};
use qcommon::scan::{Stray, StrayWhy};

use super::renumber::{Waiting, WaitingMess};
use super::{fresh_path, MessageCtx, FRESH_PREFIX, RENUM_PREFIX, TODO_PREFIX, WRITE_PREFIX};
use crate::finding::{Finding, Kind};
use crate::structure::covered_by_structure;

/// Plans one stray from the scan.
pub fn plan_stray(ctx: &mut MessageCtx, q: &mut Quarantine, stray: &Stray, out: &mut Vec<Finding>) {
    let path = stray.path.clone();
    let Some(st) = stray.stat else { return }; // vanished
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX };
    match stray.why {
        StrayWhy::NotADirectory => return,
        StrayWhy::NotABucket if covered_by_structure(&path, ctx.shape) => return,
        StrayWhy::UnknownTopLevel => {
            out.push(Finding::leave(Kind::Note, path, "unknown entry in the queue (qmail ignores it)", "left alone"));
            return;
        }
        StrayWhy::ExtraBucket(_) if st.kind == FileKind::Directory => {
            ctx.extra_buckets.push(path);
            return;
        }
        StrayWhy::PidLeftover if st.kind != FileKind::Directory => {
            out.push(Finding::fix(
                Kind::PidLeftover,
                path.clone(),
                "leftover in pid/ (a qmail-queue that died)",
                "removed",
                Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
            ));
            return;
        }
        _ => {}
    }
    if st.kind == FileKind::Regular && our_temporary(ctx, stray, st, out) {
        return;
    }
    set_aside(ctx, q, stray, st, out);
}

/// Our own temporary names, left by a crash: a waiting name or a fresh
/// copy is kept for its message; a name of a file with other links, a
/// temporary link of a todo or a write's temporary file is removed.
/// False when the regular file at `stray` is none of these.
fn our_temporary(ctx: &mut MessageCtx, stray: &Stray, st: Stat, out: &mut Vec<Finding>) -> bool {
    let path = stray.path.clone();
    let name = path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX };
    if let Some((old, new)) = name.strip_prefix(RENUM_PREFIX.as_bytes()).and_then(parse_pair) {
        if let Some(part) = stray.part {
            if ctx.temp_path(part, old, new) == path && !ctx.empty {
                if part == qcommon::queue::Part::Mess {
                    ctx.waiting_mess.insert(new, WaitingMess { old, ctime_ns: st.ctime_ns });
                }
                ctx.waiting.entry(old).or_default().push(Waiting { part, new, stat: st });
                return true;
            }
        }
    }
    if not_our_fresh(&name, &st) {
        out.push(Finding::fix(
            Kind::Stray,
            path.clone(),
            format!("another name of a file with {} links, under a repair's temporary name", st.nlink),
            "name removed (the file keeps its other names)",
            Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
        ));
        return true;
    }
    if let Some(n) = name.strip_prefix(FRESH_PREFIX.as_bytes()).and_then(parse_number) {
        if let Some(part) = stray.part {
            if fresh_path(&ctx.right_path(part, n), n) == path && !ctx.empty {
                ctx.fresh.entry(n).or_default().push((part, st));
                return true;
            }
        }
    }
    if name.starts_with(TODO_PREFIX.as_bytes()) || name.starts_with(WRITE_PREFIX.as_bytes()) {
        out.push(Finding::fix(
            Kind::Stray,
            path.clone(),
            "temporary file of an interrupted repair",
            "removed",
            Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
        ));
        return true;
    }
    false
}

/// Any other stray: a regular file or directory goes to lost+found (a
/// regular file is deleted with --no-quarantine); anything else is
/// removed, never followed or opened.
fn set_aside(ctx: &MessageCtx, q: &mut Quarantine, stray: &Stray, st: Stat, out: &mut Vec<Finding>) {
    let path = stray.path.clone();
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX };
    let what = stray.why.describe();
    match st.kind {
        FileKind::Regular | FileKind::Directory => {
            let steps = if ctx.no_quarantine && st.kind == FileKind::Regular {
                vec![Step::Unlink { path: path.clone(), expect: Some(ex) }]
            } else {
                q.stray_steps(&path, Some(ex), &format!("{} ({what})", st.kind.name()))
            };
            let how = if ctx.no_quarantine && st.kind == FileKind::Regular { "removed" } else { "moved to lost+found" };
            let kind = if stray.why == StrayWhy::PidLeftover { Kind::PidLeftover } else { Kind::Stray };
            out.push(Finding::fix(
                kind,
                path,
                format!("{} ({what})", st.kind.name()),
                how,
                Action { message: None, steps },
            ));
        }
        k => out.push(Finding::fix(
            Kind::Stray,
            path.clone(),
            format!("{} ({what})", k.name()),
            "removed, never followed or opened",
            Action { message: None, steps: vec![Step::Unlink { path, expect: Some(ex) }] },
        )),
    }
}

/// The inode to which a stray is an extra name that this run removes (a
/// pid/ leftover, a temporary link), if it is one. The caller counts it in
/// [`MessageCtx::doomed_links`] only while the name is still there when
/// the messages are stated (see there).
pub fn doomed_link(stray: &Stray) -> Option<u64> {
    let st = stray.stat?;
    if st.kind != FileKind::Regular {
        return None;
    }
    let name = stray.path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    let doomed =
        stray.why == StrayWhy::PidLeftover || name.starts_with(TODO_PREFIX.as_bytes()) || not_our_fresh(&name, &st);
    doomed.then_some(st.ino)
}

/// A file under a fresh copy's name that qfixq did not write: qfixq
/// writes a fresh copy as a new file with one link, so one with more
/// links is another name of some other file (of this message, or from
/// outside the queue). Taking it for a copy would leave that file with an
/// extra link, and the message to a second run.
fn not_our_fresh(name: &[u8], st: &Stat) -> bool {
    name.starts_with(FRESH_PREFIX.as_bytes()) && st.nlink > 1
}

/// `OLD-NEW` of a waiting name.
fn parse_pair(b: &[u8]) -> Option<(u64, u64)> {
    let dash = b.iter().position(|&c| c == b'-')?;
    Some((parse_number(&b[..dash])?, parse_number(&b[dash + 1..])?))
}
