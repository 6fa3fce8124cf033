//! The files of a message as files, whatever they hold: fresh copies an
//! interrupted run left, second copies of a part, extra hard links (never
//! chown or chmod such a file: a valid envelope is replaced by a fresh
//! copy, an invalid one set aside), owners and modes, and files in a
//! wrong bucket.

use std::ops::ControlFlow;

use qcommon::envelope::{ListEnvelope, TodoEnvelope};
use qcommon::mutator::Step;
use qcommon::queue::Part;
use qcommon::safe_fs::{Expect, FileKind};

use super::fresh_path;
use super::planner::{Content, Planner, Slot};
use super::renumber::MOVE_ORDER;
use crate::finding::Kind;

/// Why a file with extra links is replaced or set aside.
const EXTRA_LINKS: &str = "extra hard links: it may be linked from outside the queue";

impl Planner<'_, '_> {
    /// A fresh copy whose old file is already set aside: put it in place.
    pub(super) fn place_fresh(&mut self) {
        let n = self.n();
        for (part, _) in self.fresh.clone() {
            if !self.has(part) {
                let right = self.ctx.right_path(part, n);
                self.steps.push(Step::Rename { from: fresh_path(&right, n), to: right.clone(), expect: None });
                self.slots[part.index()] = Some(Slot { found: None, path: right, rewritten: true, waiting: None });
                self.fresh.retain(|(x, _)| *x != part);
            }
        }
    }

    /// Second copies of a part: keep the one in its place.
    pub(super) fn set_aside_copies(&mut self) {
        let n = self.n();
        for f in &self.msg.extra {
            let path = f.rel_path(n);
            self.note(
                Kind::Duplicate,
                path.clone(),
                format!("second {} file of message {n}", f.part.dir()),
                "set aside",
            );
            let ex = Planner::expect(Some(f));
            self.set_aside(
                vec![(path, f.part, ex)],
                &format!("second copy of the {} file of message {n}", f.part.dir()),
            );
        }
    }

    /// The inode of `part`'s file, found or waiting.
    fn inode_of(&self, part: Part) -> Option<u64> {
        let s = self.slots[part.index()].as_ref()?;
        s.waiting.map(|w| w.ino).or_else(|| s.found.and_then(|f| f.stat).map(|st| st.ino))
    }

    /// Whether todo and intd are one inode (qmail-queue's link): each may
    /// then have two links.
    pub(super) fn todo_intd_shared(&self) -> bool {
        matches!((self.inode_of(Part::Todo), self.inode_of(Part::Intd)), (Some(a), Some(b)) if a == b)
    }

    /// Notes the files with more links than they may have (besides the
    /// names this run removes) and returns them; a mess with extra links
    /// sets the whole message aside (`Break`).
    pub(super) fn note_extra_links(&mut self, shared: bool) -> ControlFlow<(), Vec<Part>> {
        let mut extra_linked: Vec<Part> = Vec::new();
        for part in Part::ALL {
            let Some(slot) = self.slots[part.index()].as_ref() else { continue };
            let Some(st) = slot.waiting.or_else(|| slot.found.and_then(|f| f.stat)) else { continue };
            let base = if shared && matches!(part, Part::Todo | Part::Intd) { 2 } else { 1 };
            let allowed = base + self.ctx.doomed_links.get(&st.ino).copied().unwrap_or(0);
            if st.nlink > allowed {
                extra_linked.push(part);
                let path = slot.path.clone();
                let problem =
                    format!("{} hard links, {base} expected: it may be linked from outside the queue", st.nlink);
                if part == Part::Mess {
                    self.note(Kind::ExtraLinks, path, problem, "whole message set aside, owner and mode untouched");
                    self.drop_all("the mess file had extra hard links (it may be linked from outside the queue)");
                    return ControlFlow::Break(());
                }
                self.note(
                    Kind::ExtraLinks,
                    path,
                    problem,
                    "owner and mode untouched; replaced by a fresh copy when valid, else set aside",
                );
            }
        }
        ControlFlow::Continue(extra_linked)
    }

    /// A valid envelope with extra links is replaced, in one atomic
    /// rename, by a fresh copy of what was read (the old inode keeps its
    /// other names); an invalid one is set aside by a rename.
    pub(super) fn replace_extra_linked(&mut self, extra_linked: Vec<Part>, shared: bool) {
        let msg = self.msg;
        for part in extra_linked {
            let fresh = self.fresh_content(part);
            let rewritten = |p: &Planner, part: Part| p.slots[part.index()].as_ref().is_some_and(|s| s.rewritten);
            let todo_ok = rewritten(self, Part::Todo)
                || (matches!(msg.todo, Some(Ok(_))) && !self.extra_linked_has(Part::Todo, shared));
            match (part, fresh) {
                (Part::Intd, _) if !self.has(Part::Todo) || todo_ok => self.drop_part(Part::Intd, EXTRA_LINKS),
                (Part::Intd, Some((data, _))) => {
                    self.replace_fresh(Part::Todo, data, None, EXTRA_LINKS);
                    self.drop_part(Part::Intd, EXTRA_LINKS);
                }
                (_, _) if rewritten(self, part) => {}
                (_, Some((data, mtime))) => self.replace_fresh(part, data, mtime, EXTRA_LINKS),
                (_, None) => self.drop_part(part, EXTRA_LINKS),
            }
        }
    }

    /// What a fresh copy of `part` is made of, with the mtime it keeps;
    /// `None` when its envelope is not valid (or the file waits under its
    /// renumbering name). A large envelope is copied from its file (the
    /// first `len` bytes: the whole todo, or a list's complete records).
    fn fresh_content(&self, part: Part) -> Option<(Content, Option<i64>)> {
        let msg = self.msg;
        if self.slots[part.index()].as_ref().is_some_and(|s| s.waiting.is_some()) {
            return None;
        }
        let copy = |from: Part, len: u64| {
            let found = self.slots[from.index()].as_ref().and_then(|s| s.found);
            let expect = Planner::expect(found).map(|e| Expect { max_nlink: u64::MAX, ..e });
            Content::Copy { from: self.path(from), expect, len }
        };
        match part {
            Part::Todo | Part::Intd => match (&msg.todo, &msg.intd) {
                (Some(Ok(TodoEnvelope::Whole(t))), _) | (_, Some(Ok(TodoEnvelope::Whole(t)))) => {
                    Some((Content::Bytes(t.to_bytes()), None))
                }
                (Some(Ok(TodoEnvelope::Large(t))), _) => Some((copy(Part::Todo, t.len), None)),
                (_, Some(Ok(TodoEnvelope::Large(t)))) => Some((copy(Part::Intd, t.len), None)),
                _ => None,
            },
            Part::Info => match &msg.info {
                Some(Ok(i)) => {
                    Some((Content::Bytes(i.to_bytes()), msg.file(Part::Info).and_then(|f| f.stat).map(|s| s.mtime)))
                }
                _ => None,
            },
            Part::Local | Part::Remote => {
                let parsed = if part == Part::Local { &msg.local } else { &msg.remote };
                match parsed {
                    Some(Ok(ListEnvelope::Whole(r))) => Some((Content::Bytes(r.to_bytes()), None)),
                    Some(Ok(l @ ListEnvelope::Large(_))) => Some((copy(part, l.kept()), None)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Whether `part` (the todo) has more links than it may (used when
    /// both todo and intd of a pair are judged).
    fn extra_linked_has(&self, part: Part, shared: bool) -> bool {
        let Some(slot) = self.slots[part.index()].as_ref() else { return false };
        let Some(st) = slot.found.and_then(|f| f.stat) else { return false };
        let base = if shared { 2 } else { 1 };
        st.nlink > base + self.ctx.doomed_links.get(&st.ino).copied().unwrap_or(0)
    }

    /// Fresh copies left by an interrupted run that are not needed now.
    pub(super) fn drop_unneeded_fresh(&mut self) {
        let n = self.n();
        for (part, st) in std::mem::take(&mut self.fresh) {
            let path = fresh_path(&self.ctx.right_path(part, n), n);
            self.steps.push(Step::Unlink { path, expect: Some(Expect { ino: st.ino, kind: st.kind, max_nlink: 1 }) });
        }
    }

    /// Owners and modes of the files kept as they are, set before any
    /// envelope repair (a link made by a repair must not make them
    /// refuse): the steps go in at `owner_at`.
    pub(super) fn owners_and_modes(&mut self, shared: bool) {
        let ids = self.ctx.ids;
        let mut owner_steps = Vec::new();
        let mut seen_inodes: Vec<u64> = Vec::new();
        for part in Part::ALL {
            let Some(slot) = self.slots[part.index()].clone() else { continue };
            let Some(f) = slot.found else { continue };
            if slot.rewritten {
                continue;
            }
            let st = f.stat.expect("stated");
            if seen_inodes.contains(&st.ino) {
                continue;
            }
            seen_inodes.push(st.ino);
            let uid = ids.uid(part.file_owner());
            let gid = if part.group_is_qmail() { ids.qmail_gid } else { st.gid };
            let perm = part.file_perm();
            let max_nlink = if shared && matches!(part, Part::Todo | Part::Intd) { 2 } else { 1 };
            let ex = Expect { ino: st.ino, kind: FileKind::Regular, max_nlink };
            if st.uid != uid || st.gid != gid {
                self.note(
                    Kind::Owner,
                    slot.path.clone(),
                    format!("owner {}:{}, should be {uid}:{gid}", st.uid, st.gid),
                    "chown",
                );
                owner_steps.push(Step::Chown { path: slot.path.clone(), expect: ex, uid, gid });
            }
            if st.perm != perm || ((st.uid != uid || st.gid != gid) && st.perm & 0o6000 != 0) {
                self.note(
                    Kind::Mode,
                    slot.path.clone(),
                    format!("mode {:04o}, should be {perm:04o}", st.perm),
                    "chmod",
                );
                owner_steps.push(Step::Chmod { path: slot.path.clone(), expect: ex, perm });
            }
        }
        let at = self.owner_at;
        self.steps.splice(at..at, owner_steps);
    }

    /// Files in a wrong bucket move into their right one, mess last.
    pub(super) fn move_to_right_buckets(&mut self) {
        let n = self.n();
        for part in MOVE_ORDER {
            let Some(slot) = self.slots[part.index()].clone() else { continue };
            let right = self.ctx.right_path(part, n);
            if slot.path != right {
                self.note(
                    Kind::WrongBucket,
                    slot.path.clone(),
                    "in the wrong bucket",
                    format!("moved to {}", qcommon::error::escape_path(&right)),
                );
                let expect = Planner::expect(slot.found);
                self.steps.push(Step::Rename { from: slot.path, to: right, expect });
            }
        }
    }
}
