//! The working view of one message while it is planned: a slot per file
//! (where it is, whether this run writes it anew or found it waiting),
//! the steps planned so far and the findings noted; the steps that write,
//! cut, copy or set aside a file; and `flush`, which turns the notes into
//! findings, the first carrying the steps.

use std::path::PathBuf;

use qcommon::mutator::{Action, Step};
use qcommon::queue::Part;
use qcommon::remove::Quarantine;
use qcommon::safe_fs::{Expect, NewFile, Stat};
use qcommon::scan::{Found, ScannedMessage};

use super::{fresh_path, MessageCtx, TODO_PREFIX};
use crate::finding::{Finding, Kind};

/// One file of the message as planning goes on.
#[derive(Clone)]
pub(super) struct Slot<'m> {
    pub(super) found: Option<&'m Found>,
    pub(super) path: PathBuf,
    /// Written anew by this run.
    pub(super) rewritten: bool,
    /// Already waiting under its renumbering name (an interrupted run had
    /// repaired and moved it).
    pub(super) waiting: Option<Stat>,
}

/// The slots of a message's files, by [`Part::index`].
pub(super) type Slots<'m> = [Option<Slot<'m>>; 7];

/// One message being planned.
pub(super) struct Planner<'c, 'm> {
    pub(super) ctx: &'c mut MessageCtx,
    pub(super) q: &'c mut Quarantine,
    pub(super) msg: &'m ScannedMessage,
    pub(super) slots: Slots<'m>,
    /// Fresh copies an interrupted run left for this message.
    pub(super) fresh: Vec<(Part, Stat)>,
    pub(super) steps: Vec<Step>,
    /// Where owner and mode steps go: before envelope repairs, so a link
    /// made by a repair cannot make them refuse.
    pub(super) owner_at: usize,
    pub(super) notes: Vec<(Kind, PathBuf, String, String)>,
}

impl<'c, 'm> Planner<'c, 'm> {
    pub(super) fn n(&self) -> u64 {
        self.msg.number
    }

    pub(super) fn note(&mut self, kind: Kind, path: PathBuf, problem: impl Into<String>, remedy: impl Into<String>) {
        self.notes.push((kind, path, problem.into(), remedy.into()));
    }

    pub(super) fn path(&self, part: Part) -> PathBuf {
        match &self.slots[part.index()] {
            Some(s) => s.path.clone(),
            None => self.ctx.right_path(part, self.n()),
        }
    }

    pub(super) fn has(&self, part: Part) -> bool {
        self.slots[part.index()].is_some()
    }

    /// Moves files out of the queue (or deletes them with --no-quarantine).
    pub(super) fn set_aside(&mut self, files: Vec<(PathBuf, Part, Option<Expect>)>, reason: &str) {
        if files.is_empty() {
            return;
        }
        if self.ctx.no_quarantine {
            let mut files = files;
            files.sort_by_key(|(_, part, _)| Part::REMOVAL_ORDER.iter().position(|p| p == part));
            for (path, _, expect) in files {
                self.steps.push(Step::Unlink { path, expect });
            }
        } else {
            let steps = self.q.message_steps(self.n(), &files, reason);
            self.steps.extend(steps);
        }
    }

    pub(super) fn expect(f: Option<&Found>) -> Option<Expect> {
        f.and_then(|f| f.stat.map(|s| Expect { ino: s.ino, kind: s.kind, max_nlink: u64::MAX }))
    }

    /// Sets aside one part.
    pub(super) fn drop_part(&mut self, part: Part, reason: &str) {
        if let Some(s) = self.slots[part.index()].take() {
            let ex = Self::expect(s.found);
            self.set_aside(vec![(s.path, part, ex)], reason);
        }
    }

    /// Sets aside every file of the message: it cannot be saved.
    pub(super) fn drop_all(&mut self, reason: &str) {
        let mut files = Vec::new();
        for part in Part::ALL {
            if let Some(s) = self.slots[part.index()].take() {
                files.push((s.path, part, Self::expect(s.found)));
            }
        }
        self.set_aside(files, reason);
    }

    pub(super) fn write(&mut self, part: Part, data: Vec<u8>, mtime: Option<i64>) {
        let path = self.path(part);
        let replace = self.has(part);
        let uid = self.ctx.ids.uid(part.file_owner());
        let gid = self.ctx.ids.qmail_gid;
        self.steps.push(Step::WriteFile {
            path: path.clone(),
            data,
            spec: NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime, replace },
        });
        self.slots[part.index()] = Some(Slot { found: None, path, rewritten: true, waiting: None });
    }

    /// Rewrites `part` in place as its own first `len` bytes (a list too
    /// large to hold, cut at its last complete record), in bounded memory.
    pub(super) fn cut(&mut self, part: Part, len: u64) {
        let path = self.path(part);
        let expect = Self::expect(self.slots[part.index()].as_ref().and_then(|s| s.found));
        let uid = self.ctx.ids.uid(part.file_owner());
        let gid = self.ctx.ids.qmail_gid;
        self.steps.push(Step::CopyPrefix {
            from: path.clone(),
            expect,
            len,
            path: path.clone(),
            spec: NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime: None, replace: true },
        });
        self.slots[part.index()] = Some(Slot { found: None, path, rewritten: true, waiting: None });
    }

    /// Replaces a file that has extra hard links by a fresh copy: the copy
    /// is written under a temporary name first, then the old file is set
    /// aside by a rename (nothing of its inode changes), then the copy
    /// takes its place. A crash anywhere leaves a state a rerun finishes.
    pub(super) fn replace_fresh(&mut self, part: Part, data: Content, mtime: Option<i64>, reason: &str) {
        let n = self.n();
        let right = self.ctx.right_path(part, n);
        let tmp = fresh_path(&right, n);
        if let Some(i) = self.fresh.iter().position(|(x, _)| *x == part) {
            self.fresh.remove(i); // written by the interrupted run
        } else {
            let uid = self.ctx.ids.uid(part.file_owner());
            let gid = self.ctx.ids.qmail_gid;
            let spec = NewFile { perm: part.file_perm(), owner: Some((uid, gid)), mtime, replace: false };
            self.steps.push(match data {
                Content::Bytes(data) => Step::WriteFile { path: tmp.clone(), data, spec },
                Content::Copy { from, expect, len } => Step::CopyPrefix { from, expect, len, path: tmp.clone(), spec },
            });
        }
        self.drop_part(part, reason);
        self.steps.push(Step::Rename { from: tmp, to: right.clone(), expect: None });
        self.slots[part.index()] = Some(Slot { found: None, path: right, rewritten: true, waiting: None });
    }

    /// A todo made anew as a hard link of a valid intd: link to a
    /// temporary name, then rename over the todo (one atomic step each).
    pub(super) fn todo_from_intd(&mut self) {
        let n = self.n();
        let intd = self.path(Part::Intd);
        let todo = self.path(Part::Todo);
        if self.has(Part::Todo) {
            let mut tmp = todo.clone();
            tmp.set_file_name(format!("{TODO_PREFIX}{n}"));
            self.steps.push(Step::Link { from: intd, to: tmp.clone() });
            self.steps.push(Step::Replace { from: tmp, to: todo.clone() });
        } else {
            self.steps.push(Step::Link { from: intd, to: todo.clone() });
        }
        self.slots[Part::Todo.index()] = Some(Slot { found: None, path: todo, rewritten: true, waiting: None });
    }
}

/// What a fresh copy is made of: bytes in hand, or the first `len` bytes
/// of a file too large to hold.
pub(super) enum Content {
    Bytes(Vec<u8>),
    Copy { from: PathBuf, expect: Option<Expect>, len: u64 },
}

/// Removes a bounce file beside a message not yet preprocessed.
pub(super) fn drop_stale_bounce(p: &mut Planner<'_, '_>) {
    if p.has(Part::Bounce) {
        let path = p.path(Part::Bounce);
        p.note(Kind::StaleBounce, path.clone(), "bounce file beside a not yet preprocessed message", "removed");
        let ex = Planner::expect(p.msg.file(Part::Bounce));
        p.steps.push(Step::Unlink { path, expect: ex });
        p.slots[Part::Bounce.index()] = None;
    }
}

/// Turns the notes of `p` into findings: the first carries every step,
/// the others follow it; steps without a note go under the mess's path.
pub(super) fn flush(p: Planner<'_, '_>, out: &mut Vec<Finding>, mess_path: PathBuf) {
    let Planner { steps, notes, msg, .. } = p;
    let mut action = Some(Action { message: Some(msg.number), steps });
    for (kind, path, problem, remedy) in notes {
        let (a, follows) = match action.take() {
            Some(a) => (a, false),
            None => (Action { message: Some(msg.number), steps: Vec::new() }, true),
        };
        let mut f = Finding::fix(kind, path, problem, remedy, a);
        f.follows = follows;
        out.push(f);
    }
    if let Some(a) = action {
        if !a.steps.is_empty() {
            out.push(Finding::fix(Kind::Structure, mess_path, "message", "steps", a));
        }
    }
}
