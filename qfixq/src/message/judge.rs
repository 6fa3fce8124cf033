//! What a message is. First the fast path: a preprocessed message with
//! nothing to repair (the bulk of any large queue), judged by the message
//! model (`qcommon::message`) on the scan alone. Otherwise, once the files
//! as files are handled, its mess (none, or empty: nothing to deliver)
//! and the state its envelopes put it in (docs/repair.md): not yet
//! preprocessed (a valid todo), preprocessed (info, local, remote), or an
//! intd or a mess that qmail-queue never committed.

use std::ops::ControlFlow;

use qcommon::envelope::{Info, ListEnvelope, TodoEnvelope};
use qcommon::message::{Message, Stage};
use qcommon::queue::Part;
use qcommon::safe_fs::FileKind;
use qcommon::scan::{Found, Parsed, ScannedMessage};

use super::envelope;
use super::planner::{drop_stale_bounce, Planner, Slot};
use super::MessageCtx;
use crate::finding::Kind;

/// True for a preprocessed message (state S5) with nothing to repair: the
/// bulk of any large queue. It is judged on the scan alone, without the
/// paths and steps the full planner builds, and it is conservative: any
/// doubt (a todo or intd, a second copy, a partial record, an error, a
/// link count above one, a file an interrupted run left) sends the message
/// to the full planner.
pub(super) fn is_healthy_preprocessed(ctx: &MessageCtx, msg: &ScannedMessage) -> bool {
    let n = msg.number;
    if ctx.empty || ctx.fresh.contains_key(&n) {
        return false;
    }
    let m = Message::of(msg, None);
    if m.stage != Stage::Preprocessed || !m.problems.is_empty() || !m.damage(ctx.shape).is_empty() {
        return false;
    }
    // Every file stated, regular, with one link, its owner and mode; the
    // model's damage above has judged mess's inode and size, the buckets,
    // second copies, info and the lists.
    for f in msg.all_files() {
        let Some(st) = f.stat else { return false };
        let gid_ok = !f.part.group_is_qmail() || st.gid == ctx.ids.qmail_gid;
        if st.kind != FileKind::Regular
            || st.nlink != 1
            || st.uid != ctx.ids.uid(f.part.file_owner())
            || !gid_ok
            || st.perm != f.part.file_perm()
        {
            return false;
        }
    }
    // An envelope the scan did not read is a doubt too.
    let list_read = |part: Part, parsed: &Option<Parsed<ListEnvelope>>| !msg.has(part) || parsed.is_some();
    msg.info.is_some() && list_read(Part::Local, &msg.local) && list_read(Part::Remote, &msg.remote)
}

/// The state of one envelope file in the working view. `Valid(None)`
/// is a file this run writes anew.
pub(super) enum Env<'m, T> {
    Absent,
    Valid(Option<&'m T>),
    Broken(String),
}

/// The state of the file in `slot`, read as `parsed`.
fn env<'m, T>(slot: Option<&Slot<'m>>, parsed: &'m Option<Parsed<T>>) -> Env<'m, T> {
    match (slot, parsed) {
        (None, _) => Env::Absent,
        (Some(s), _) if s.rewritten || s.waiting.is_some() => Env::Valid(None),
        (Some(_), Some(Ok(v))) => Env::Valid(Some(v)),
        (Some(_), Some(Err(e))) => Env::Broken(e.to_string()),
        (Some(_), None) => Env::Broken("not read".into()),
    }
}

/// The envelopes of a message as planning found them, and what they add
/// up to.
pub(super) struct View<'m> {
    pub(super) todo: Env<'m, TodoEnvelope>,
    pub(super) info: Env<'m, Info>,
    pub(super) local: Env<'m, ListEnvelope>,
    pub(super) remote: Env<'m, ListEnvelope>,
    /// An intd whose envelope is valid.
    pub(super) intd_valid: bool,
    /// Valid local and remote files.
    pub(super) valid_lists: usize,
    /// Some preprocessed file is there (info, local or remote).
    pub(super) any_pre: bool,
    /// info valid, some valid list, none broken.
    pub(super) pre_complete: bool,
    /// A valid list, or a valid info alone.
    pub(super) pre_usable: bool,
}

impl<'m> View<'m> {
    /// The envelopes of `p` now (`shared`: todo and intd are one inode).
    pub(super) fn of(p: &Planner<'_, 'm>, shared: bool) -> View<'m> {
        let msg: &'m ScannedMessage = p.msg;
        let slot = |part: Part| p.slots[part.index()].as_ref();
        let (todo, info) = (env(slot(Part::Todo), &msg.todo), env(slot(Part::Info), &msg.info));
        let (local, remote) = (env(slot(Part::Local), &msg.local), env(slot(Part::Remote), &msg.remote));
        let intd_valid =
            p.has(Part::Intd) && if shared { matches!(msg.todo, Some(Ok(_))) } else { matches!(msg.intd, Some(Ok(_))) };
        let valid_lists = [&local, &remote].iter().filter(|e| matches!(e, Env::Valid(_))).count();
        let broken_lists = [&local, &remote].iter().filter(|e| matches!(e, Env::Broken(_))).count();
        let any_pre = p.has(Part::Info) || p.has(Part::Local) || p.has(Part::Remote);
        let info_valid = matches!(info, Env::Valid(_));
        let pre_complete = info_valid && valid_lists > 0 && broken_lists == 0;
        let pre_usable = valid_lists > 0 || (info_valid && !p.has(Part::Local) && !p.has(Part::Remote));
        View { todo, info, local, remote, intd_valid, valid_lists, any_pre, pre_complete, pre_usable }
    }
}

/// The mess file of the message; without one, or empty, there is nothing
/// to deliver and the message is set aside (`Break`).
pub(super) fn mess<'m>(p: &mut Planner<'_, 'm>) -> ControlFlow<(), &'m Found> {
    let n = p.n();
    let msg: &'m ScannedMessage = p.msg;
    let mess = match msg.file(Part::Mess) {
        Some(m) if p.has(Part::Mess) => m,
        _ => {
            let mess_path =
                msg.file(Part::Mess).map(|f| f.rel_path(n)).unwrap_or_else(|| p.ctx.right_path(Part::Mess, n));
            let any = p.slots.iter().flatten().next().map(|s| s.path.clone()).unwrap_or(mess_path);
            p.note(Kind::Unsalvageable, any, format!("files of message {n} without its mess file"), "set aside");
            p.drop_all("mess missing: no message content to deliver");
            return ControlFlow::Break(());
        }
    };
    if mess.stat.expect("stated").size == 0 {
        p.note(Kind::Unsalvageable, mess.rel_path(n), "mess is empty (0 bytes)", "message set aside");
        p.drop_all("mess empty: nothing to deliver");
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(mess)
}

/// The message's state: `Continue(true)` when it goes on as preprocessed
/// (its info and lists are judged next), `Continue(false)` when it goes on
/// with a todo, `Break` when it is set aside whole.
pub(super) fn state(p: &mut Planner<'_, '_>, v: &View<'_>, shared: bool) -> ControlFlow<(), bool> {
    match (&v.todo, p.has(Part::Intd)) {
        (Env::Valid(_), _) => {
            drop_stale_bounce(p);
            ControlFlow::Continue(false)
        }
        (Env::Broken(why), _) => envelope::broken_todo(p, v, why, shared),
        (Env::Absent, true) => intd_without_todo(p, v),
        (Env::Absent, false) => {
            if !v.any_pre {
                let why = if p.has(Part::Bounce) {
                    "mess and a bounce report, without envelope"
                } else {
                    "mess alone (qmail-queue never finished)"
                };
                let path = p.msg.file(Part::Mess).expect("judged").rel_path(p.n());
                p.note(Kind::Leftover, path, why, "set aside");
                p.drop_all("S2: a mess file without any envelope");
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(true)
        }
    }
}

/// An intd without todo: left beside a preprocessed message, the todo to
/// make anew from it, or qmail-queue never finished (S3).
fn intd_without_todo(p: &mut Planner<'_, '_>, v: &View<'_>) -> ControlFlow<(), bool> {
    let path = p.path(Part::Intd);
    if v.any_pre && v.pre_usable {
        p.note(Kind::Leftover, path, "intd left beside a preprocessed message", "set aside");
        p.drop_part(Part::Intd, "intd left beside a preprocessed message");
        return ControlFlow::Continue(true);
    }
    if v.any_pre && v.intd_valid {
        p.note(
            Kind::Envelope,
            path,
            "preprocessed envelope broken",
            "todo made anew from the valid intd; qmail-send preprocesses it again",
        );
        p.todo_from_intd();
        drop_stale_bounce(p);
        return ControlFlow::Continue(false);
    }
    if v.any_pre {
        p.note(Kind::Unsalvageable, path, "no valid envelope anywhere", "message set aside");
        p.drop_all("no valid envelope: recipients unknown");
    } else {
        let mess = p.msg.file(Part::Mess).expect("judged").rel_path(p.n());
        p.note(Kind::Leftover, mess, "mess and intd without todo (qmail-queue never finished)", "set aside");
        p.drop_all("S3: qmail-queue never committed this message");
    }
    ControlFlow::Break(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PendingList;
    use qcommon::envelope::{Recipient, Recipients};
    use qcommon::queue::bucket_of;
    use qcommon::queue::{Ids, QueueShape};
    use qcommon::safe_fs::Stat;
    use qcommon::scan::Found;
    use qcommon::scan::ReadProblem;
    use std::collections::{HashMap, HashSet};

    const SPLIT: u32 = 23;
    const IDS: Ids = Ids { qmailq: 7001, qmails: 7002, qmailr: 7003, qmail_gid: 7004 };

    fn ctx() -> MessageCtx {
        MessageCtx {
            shape: QueueShape { split: SPLIT, big_todo: false },
            ids: IDS,
            empty: false,
            no_quarantine: false,
            doomed_links: HashMap::new(),
            pending: PendingList::default(),
            seen: Default::default(),
            waiting: HashMap::new(),
            waiting_mess: HashMap::new(),
            journal: Default::default(),
            occupied: HashSet::new(),
            fresh: HashMap::new(),
            extra_buckets: Vec::new(),
            salvaged: Default::default(),
        }
    }

    fn found(part: Part, n: u64, ino: u64) -> Found {
        let stat = Stat {
            dev: 1,
            ino,
            kind: FileKind::Regular,
            perm: part.file_perm(),
            uid: IDS.uid(part.file_owner()),
            gid: if part.group_is_qmail() { IDS.qmail_gid } else { 100 },
            nlink: 1,
            size: 40,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
            atime: 1_700_000_000,
            ctime_ns: 1_700_000_000_000_000_000,
        };
        Found { part, bucket: Some(bucket_of(n, SPLIT)), ino, stat: Some(stat) }
    }

    /// A preprocessed message as qmail-send leaves it.
    fn healthy(n: u64) -> ScannedMessage {
        let mut m = ScannedMessage { number: n, ..Default::default() };
        m.files[Part::Mess.index()] = Some(found(Part::Mess, n, n));
        m.files[Part::Info.index()] = Some(found(Part::Info, n, n + 1));
        m.files[Part::Remote.index()] = Some(found(Part::Remote, n, n + 2));
        m.info = Some(Ok(Info { sender: b"a@b".to_vec() }));
        let list = vec![Recipient { address: b"c@d".to_vec(), done: false }];
        m.remote = Some(Ok(ListEnvelope::Whole(Recipients { list, dropped: 0 })));
        m
    }

    #[test]
    fn a_healthy_preprocessed_message_takes_the_fast_path() {
        assert!(is_healthy_preprocessed(&ctx(), &healthy(1000)));
    }

    fn stat(m: &mut ScannedMessage, p: Part) -> &mut Stat {
        m.files[p.index()].as_mut().unwrap().stat.as_mut().unwrap()
    }

    #[test]
    fn any_doubt_goes_to_the_full_planner() {
        type Damage = fn(&mut ScannedMessage);
        let cases: Vec<(&str, Damage)> = vec![
            ("mess missing", |m| m.files[Part::Mess.index()] = None),
            ("info missing", |m| m.files[Part::Info.index()] = None),
            ("todo present", |m| m.files[Part::Todo.index()] = Some(found(Part::Todo, m.number, 5))),
            ("mess renumbered", |m| stat(m, Part::Mess).ino = 77),
            ("mess empty", |m| stat(m, Part::Mess).size = 0),
            ("info mode", |m| stat(m, Part::Info).perm = 0o644),
            ("info owner", |m| stat(m, Part::Info).uid = 0),
            ("info group", |m| stat(m, Part::Info).gid = 0),
            ("remote links", |m| stat(m, Part::Remote).nlink = 2),
            ("mess not stated", |m| m.files[Part::Mess.index()].as_mut().unwrap().stat = None),
            ("wrong bucket", |m| m.files[Part::Remote.index()].as_mut().unwrap().bucket = Some(0)),
            ("partial record", |m| {
                if let Some(Ok(ListEnvelope::Whole(r))) = m.remote.as_mut() {
                    r.dropped = 3;
                }
            }),
            ("broken info", |m| m.info = Some(Err(ReadProblem::Bad(qcommon::envelope::EnvelopeError::Empty)))),
            ("second copy", |m| m.extra.push(found(Part::Info, m.number, 9))),
        ];
        for (what, damage) in cases {
            let mut m = healthy(1000);
            damage(&mut m);
            assert!(!is_healthy_preprocessed(&ctx(), &m), "{what}");
        }
        let mut c = ctx();
        c.empty = true;
        assert!(!is_healthy_preprocessed(&c, &healthy(1000)), "live empty");
        let mut c = ctx();
        c.fresh.insert(1000, Vec::new());
        assert!(!is_healthy_preprocessed(&c, &healthy(1000)), "fresh copy waiting");
    }
}
