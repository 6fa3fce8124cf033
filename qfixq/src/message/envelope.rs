//! An unreadable or garbled envelope (docs/repair.md): a message with a
//! file that could not be read is left as it is; a broken todo is made
//! anew from a valid intd, or set aside beside a complete preprocessed
//! envelope; a broken local or remote is set aside, a partial last record
//! dropped; a lost or garbled info is written anew with the null sender
//! and its salvage record (the sender is lost: `crate::salvage`).

use std::ops::ControlFlow;
use std::path::Path;

use qcommon::envelope::{Info, ListEnvelope};
use qcommon::message::birth_of;
use qcommon::queue::Part;
use qcommon::scan::{Found, ReadProblem, ScannedMessage};

use super::judge::{Env, View};
use super::planner::{drop_stale_bounce, Planner};
use crate::finding::{Finding, Kind};

/// The finding that leaves message `msg` as it is when one of its files
/// could not be read or stated (`None`: every file was).
pub(super) fn unreadable(msg: &ScannedMessage, mess_path: &Path) -> Option<Finding> {
    let io = msg.io_errors.first().map(|e| e.to_string()).or_else(|| {
        [
            msg.todo.as_ref().and_then(|r| r.as_ref().err()),
            msg.intd.as_ref().and_then(|r| r.as_ref().err()),
            msg.info.as_ref().and_then(|r| r.as_ref().err()),
            msg.local.as_ref().and_then(|r| r.as_ref().err()),
            msg.remote.as_ref().and_then(|r| r.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        .find_map(|p| match p {
            ReadProblem::Io(e) => Some(e.to_string()),
            ReadProblem::Bad(_) => None,
        })
    });
    if let Some(e) = io {
        return Some(Finding::leave(Kind::Unreadable, mess_path.to_path_buf(), e, "message left as it is"));
    }
    if msg.all_files().any(|f| f.stat.is_none()) {
        return Some(Finding::leave(Kind::Unreadable, mess_path.to_path_buf(), "not stated", "message left as it is"));
    }
    None
}

/// A broken todo: made anew from a valid intd (not its own link), else
/// set aside beside a complete preprocessed envelope (the message goes on
/// as preprocessed: `Continue(true)`), else the message is set aside.
pub(super) fn broken_todo(p: &mut Planner<'_, '_>, v: &View<'_>, why: &str, shared: bool) -> ControlFlow<(), bool> {
    let path = p.path(Part::Todo);
    if v.intd_valid && !shared {
        p.note(Kind::Envelope, path, format!("todo broken: {why}"), "made anew from the valid intd");
        p.todo_from_intd();
        drop_stale_bounce(p);
        ControlFlow::Continue(false)
    } else if v.pre_complete {
        p.note(Kind::Envelope, path, format!("todo broken: {why}"), "set aside; the message goes on as preprocessed");
        p.drop_part(Part::Todo, "broken todo beside a complete preprocessed envelope");
        p.drop_part(Part::Intd, "intd of a broken todo beside a complete preprocessed envelope");
        ControlFlow::Continue(true)
    } else {
        p.note(
            Kind::Unsalvageable,
            path,
            format!("todo broken: {why}; no complete envelope elsewhere"),
            "message set aside",
        );
        p.drop_all("broken todo and no complete envelope anywhere: recipients unknown");
        ControlFlow::Break(())
    }
}

/// A preprocessed message's envelope: set aside whole when neither its
/// recipients nor its sender can be used; else its lists repaired, and
/// its info written anew when lost or garbled.
pub(super) fn repair_preprocessed(p: &mut Planner<'_, '_>, v: &View<'_>, mess: &Found) -> ControlFlow<()> {
    if v.valid_lists == 0 && !v.pre_usable {
        let path = p.path(Part::Info);
        p.note(Kind::Unsalvageable, path, "no valid recipient list and no valid sender", "message set aside");
        p.drop_all("preprocessed envelope broken beyond repair: recipients unknown");
        return ControlFlow::Break(());
    }
    repair_lists(p, v);
    match &v.info {
        Env::Valid(_) => {}
        Env::Broken(why) => salvage_info(p, mess, format!("info broken: {why}")),
        Env::Absent => salvage_info(p, mess, "info missing".to_string()),
    }
    ControlFlow::Continue(())
}

/// A broken local or remote is set aside (its recipients cannot be
/// recovered); one that ends in a partial record is cut after its last
/// complete one.
fn repair_lists(p: &mut Planner<'_, '_>, v: &View<'_>) {
    for (part, e) in [(Part::Local, &v.local), (Part::Remote, &v.remote)] {
        match e {
            Env::Broken(why) => {
                let path = p.path(part);
                p.note(
                    Kind::Envelope,
                    path,
                    format!("{} broken: {why}", part.dir()),
                    "set aside; its recipients cannot be recovered",
                );
                p.drop_part(part, &format!("unparsable {} file", part.dir()));
            }
            Env::Valid(Some(r)) if r.dropped() > 0 => {
                let path = p.path(part);
                p.note(
                    Kind::PartialRecord,
                    path,
                    format!("partial last record ({} bytes)", r.dropped()),
                    format!("dropped; {} complete records kept", r.records()),
                );
                match r {
                    ListEnvelope::Whole(r) => p.write(part, r.to_bytes(), None),
                    ListEnvelope::Large(s) => p.cut(part, s.kept),
                }
            }
            _ => {}
        }
    }
}

/// Salvage: info lost or garbled beside usable recipients. Written anew
/// with the null sender, its birth time kept, after the salvage record
/// (a crash never leaves an invented null sender that qkillns would take
/// for a bounce).
fn salvage_info(p: &mut Planner<'_, '_>, mess: &Found, problem: String) {
    let msg = p.msg;
    let n = p.n();
    let mess_st = mess.stat.expect("stated");
    let path = p.path(Part::Info);
    // The birth of the envelope written now (info, no todo) by the
    // model's one rule: info's mtime, else mess's.
    let has = |part: Part| matches!(part, Part::Info | Part::Mess) && msg.has(part);
    let mtime = |part: Part| msg.file(part).and_then(|f| f.stat).map(|s| s.mtime);
    let birth = birth_of(has, mtime).map_or(mess_st.mtime, |b| b.time);
    p.note(
        Kind::SenderLost,
        path,
        problem,
        format!(
            "written with the null sender, birth time {} kept (sender lost; recorded as salvaged)",
            qcommon::human::when(birth, super::now_secs())
        ),
    );
    let size = msg.file(Part::Info).and_then(|f| f.stat).map(|s| s.size).filter(|_| p.has(Part::Info));
    let why = crate::salvage::why(size);
    let rec = qcommon::salvaged::Record { number: n, inode: mess_st.ino, birth, why };
    let steps = p.ctx.salvaged.record_steps(p.q, rec);
    p.steps.extend(steps);
    p.write(Part::Info, Info::default().to_bytes(), Some(birth));
}
