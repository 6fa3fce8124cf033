//! The plan and the executor: every change any tool makes to a queue is a
//! [`Step`] in an [`Action`], and every action goes through the one
//! [`Mutator`], in one of two modes. A check (dry run) runs each step
//! through it as a planned step: validated as far as that can be done
//! without changing anything, counted, handed to the observer, never
//! kept. A live run hands the same action to a live mutator, which carries
//! each step out. Both modes take the same call, tell the same observer
//! and give the same [`ActionOutcome`]; the rule for an action that
//! follows a failed one ([`Run::follows`]) is the mutator's too. So a
//! check can never promise what live does not do: it is the same path.
//!
//! Steps name paths relative to the queue root (`mess/3/1234`); the
//! mutator walks to each parent directory with no-follow opens from the
//! queue's own directory handle, so a symbolic link inside the queue is
//! never followed.
//!
//! With the `fault-injection` feature, the environment variable
//! `QTOOLS_ABORT_AFTER_STEP=k` makes the process kill itself with SIGKILL
//! right after its k-th successful step (crash tests), and
//! `QTOOLS_SKIP_STEP=VERB` makes every step of that verb (`chmod`, ...)
//! report success without being carried out: a step that "succeeded" but
//! left the problem, which the verifying check must catch.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{escape_path, Error, Result};
use crate::safe_fs::{Dir, Expect, FileKind, NewFile, Verified};

/// One atomic change. Paths are relative to the queue root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Rename, never replacing an existing name. When `expect` is given
    /// the name must still hold that inode.
    Rename {
        /// From.
        from: PathBuf,
        /// To.
        to: PathBuf,
        /// What the scan saw at `from`.
        expect: Option<Expect>,
    },
    /// Rename, replacing what `to` names (a rebuilt envelope taking the
    /// place of a broken one: one atomic step).
    Replace {
        /// From.
        from: PathBuf,
        /// To.
        to: PathBuf,
    },
    /// Hard-link `to` to `from`.
    Link {
        /// Existing name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
    /// Remove a name that is not a directory. When `expect` is given the
    /// name must still hold that inode.
    Unlink {
        /// The name.
        path: PathBuf,
        /// What the scan saw there.
        expect: Option<Expect>,
    },
    /// Remove an empty directory.
    Rmdir {
        /// The directory.
        path: PathBuf,
    },
    /// Make a directory with this mode (and owner, when given).
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Mode.
        perm: u32,
        /// Owner and group.
        owner: Option<(u32, u32)>,
    },
    /// Make a named pipe.
    Mkfifo {
        /// The pipe.
        path: PathBuf,
        /// Mode.
        perm: u32,
        /// Owner and group.
        owner: Option<(u32, u32)>,
    },
    /// Change owner and group of what the scan saw.
    Chown {
        /// The file.
        path: PathBuf,
        /// What the scan saw.
        expect: Expect,
        /// New owner.
        uid: u32,
        /// New group.
        gid: u32,
    },
    /// Change the mode of what the scan saw.
    Chmod {
        /// The file.
        path: PathBuf,
        /// What the scan saw.
        expect: Expect,
        /// New permission bits.
        perm: u32,
    },
    /// Set the modification time of what the scan saw.
    SetMtime {
        /// The file.
        path: PathBuf,
        /// What the scan saw.
        expect: Expect,
        /// New mtime (seconds).
        mtime: i64,
    },
    /// Write a whole file: a temporary name, fsync, rename, directory fsync.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Its bytes.
        data: Vec<u8>,
        /// Mode, owner, mtime, replace.
        spec: NewFile,
    },
    /// Write a file made of the first `len` bytes of another, as
    /// [`Step::WriteFile`] does (a temporary name, fsync, rename, directory
    /// fsync), copying through a fixed buffer: a recipient list of any
    /// size cut at its last complete record, or a fresh copy of a large
    /// envelope. `from` may be `path` itself (the copy replaces it).
    CopyPrefix {
        /// The file copied from.
        from: PathBuf,
        /// What the scan saw at `from`.
        expect: Option<Expect>,
        /// Bytes copied.
        len: u64,
        /// The file written.
        path: PathBuf,
        /// Mode, owner, mtime, replace.
        spec: NewFile,
    },
}

impl Step {
    /// The path a rename, replace, link or copy takes its file from.
    pub fn from_path(&self) -> Option<&Path> {
        match self {
            Step::Rename { from, .. }
            | Step::Replace { from, .. }
            | Step::Link { from, .. }
            | Step::CopyPrefix { from, .. } => Some(from),
            _ => None,
        }
    }

    /// The path the step changes (the target for a rename or link).
    pub fn path(&self) -> &Path {
        match self {
            Step::Rename { to, .. } | Step::Replace { to, .. } | Step::Link { to, .. } => to,
            Step::Unlink { path, .. }
            | Step::Rmdir { path }
            | Step::Mkdir { path, .. }
            | Step::Mkfifo { path, .. }
            | Step::Chown { path, .. }
            | Step::Chmod { path, .. }
            | Step::SetMtime { path, .. }
            | Step::WriteFile { path, .. }
            | Step::CopyPrefix { path, .. } => path,
        }
    }

    /// A short verb for reports and JSON.
    pub fn verb(&self) -> &'static str {
        match self {
            Step::Rename { .. } => "rename",
            Step::Replace { .. } => "replace",
            Step::Link { .. } => "link",
            Step::Unlink { .. } => "unlink",
            Step::Rmdir { .. } => "rmdir",
            Step::Mkdir { .. } => "mkdir",
            Step::Mkfifo { .. } => "mkfifo",
            Step::Chown { .. } => "chown",
            Step::Chmod { .. } => "chmod",
            Step::SetMtime { .. } => "set-mtime",
            Step::WriteFile { .. } => "write",
            Step::CopyPrefix { .. } => "copy",
        }
    }
}

impl fmt::Display for Step {
    /// One line, every name escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = |p: &Path| escape_path(p);
        match self {
            Step::Rename { from, to, .. } => write!(f, "rename {} -> {}", e(from), e(to)),
            Step::Replace { from, to } => write!(f, "rename {} -> {} (replacing it)", e(from), e(to)),
            Step::Link { from, to } => write!(f, "link {} -> {}", e(from), e(to)),
            Step::Unlink { path, .. } => write!(f, "unlink {}", e(path)),
            Step::Rmdir { path } => write!(f, "rmdir {}", e(path)),
            Step::Mkdir { path, perm, owner } => {
                write!(f, "mkdir {} mode {perm:04o}", e(path))?;
                if let Some((u, g)) = owner {
                    write!(f, " owner {u}:{g}")?;
                }
                Ok(())
            }
            Step::Mkfifo { path, perm, owner } => {
                write!(f, "mkfifo {} mode {perm:04o}", e(path))?;
                if let Some((u, g)) = owner {
                    write!(f, " owner {u}:{g}")?;
                }
                Ok(())
            }
            Step::Chown { path, uid, gid, .. } => write!(f, "chown {uid}:{gid} {}", e(path)),
            Step::Chmod { path, perm, .. } => write!(f, "chmod {perm:04o} {}", e(path)),
            Step::SetMtime { path, mtime, .. } => write!(f, "set mtime {mtime} {}", e(path)),
            Step::WriteFile { path, data, spec } => {
                write!(f, "write {} ({} bytes, mode {:04o}", e(path), data.len(), spec.perm)?;
                if let Some(m) = spec.mtime {
                    write!(f, ", mtime {m}")?;
                }
                write!(f, ")")
            }
            Step::CopyPrefix { from, len, path, spec, .. } => {
                write!(f, "write {} (the first {len} bytes of {}, mode {:04o}", e(path), e(from), spec.perm)?;
                if let Some(m) = spec.mtime {
                    write!(f, ", mtime {m}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// The steps for one finding, in crash-safe order. When one step fails,
/// the rest of its action is skipped (what is left is a state the same
/// tool finishes on a rerun) and the run goes on with the next action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The message number concerned, when there is one.
    pub message: Option<u64>,
    /// Steps, in order.
    pub steps: Vec<Step>,
}

/// What the tools plan to do: the actions in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The actions.
    pub actions: Vec<Action>,
}

/// Dry run (a check: steps are planned, nothing changes) or live (steps
/// are carried out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Validate and count each step, change nothing.
    DryRun,
    /// Carry steps out.
    Live,
}

/// How one step ended, as the observer is told: the same words in both
/// modes but the first.
#[derive(Debug, Clone, Copy)]
pub enum StepStatus<'a> {
    /// Dry run: what live would do.
    Planned,
    /// Carried out.
    Done,
    /// Its name was already gone, which the action allows
    /// ([`Run::gone_ok`]): the action goes on.
    Gone(&'a Error),
    /// Failed: the rest of the action is skipped.
    Failed(&'a Error),
}

/// How one action is run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run<'a> {
    /// This action finishes the action before it (one message's findings
    /// share one action): when that one failed, this one is skipped.
    pub follows: bool,
    /// The bytes each step frees, by index (a removal's file sizes from
    /// the scan), summed into [`ActionOutcome::bytes`] for the steps done.
    pub sizes: &'a [u64],
    /// A name already gone is no failure (a removal wants it gone;
    /// qmail-send may have finished the message meanwhile): the step
    /// counts in [`ActionOutcome::gone`] and the action goes on.
    pub gone_ok: bool,
}

/// What happened to one action, in either mode.
#[derive(Debug)]
pub struct ActionOutcome {
    /// Steps carried out (or planned, in a dry run).
    pub done: usize,
    /// Steps whose name was already gone ([`Run::gone_ok`]).
    pub gone: usize,
    /// The bytes of [`Run::sizes`] of the steps done.
    pub bytes: u64,
    /// The error that stopped the action, with the failed step's index.
    pub failed: Option<(usize, Error)>,
    /// Not run: it follows an action that failed ([`Run::follows`]).
    pub skipped: bool,
}

impl ActionOutcome {
    /// The action was carried out (or planned) whole.
    pub fn whole(&self) -> bool {
        self.failed.is_none() && !self.skipped
    }
}

/// Carries out steps, through directory handles opened from the queue
/// root without following links; in a dry run it only validates them.
/// It keeps no step: a check of any size holds no more than a live run.
#[derive(Debug)]
pub struct Mutator {
    root: Dir,
    mode: Mode,
    dirs: HashMap<PathBuf, Dir>,
    steps_done: u64,
    /// The last action run failed ([`Run::follows`]).
    last_failed: bool,
    abort_after: Option<u64>,
    /// Steps of this verb are not carried out (fault injection).
    skip_verb: Option<String>,
    tmp_counter: u64,
    /// The file the last step changed owner of, checked and held open
    /// (see [`Mutator::verified`]): a chmod of the same file that follows
    /// needs no second open and stat.
    held: Option<(PathBuf, Expect, Verified)>,
}

/// Most directory handles the cache keeps (fewer under a low descriptor
/// limit: [`crate::descriptors`]).
const DIR_CACHE_MAX: usize = 512;

/// The cache's size under the process's descriptor limit.
fn dir_cache_max() -> usize {
    crate::descriptors::share(1, 16, DIR_CACHE_MAX)
}

impl Mutator {
    /// A mutator over the queue whose root directory is `root`.
    pub fn new(root: Dir, mode: Mode) -> Mutator {
        Mutator {
            root,
            mode,
            dirs: HashMap::new(),
            steps_done: 0,
            last_failed: false,
            abort_after: abort_switch(),
            skip_verb: skip_switch(),
            tmp_counter: 0,
            held: None,
        }
    }

    /// Dry run or live.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The queue root.
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// Runs one action as an action of its own ([`Run::default`]).
    pub fn run_action(&mut self, action: &Action, observe: &mut dyn FnMut(&Step, StepStatus<'_>)) -> ActionOutcome {
        self.run(action, Run::default(), observe)
    }

    /// Runs one action: its steps in order, stopping at the first failure
    /// (a name already gone is one only without [`Run::gone_ok`]).
    /// `observe` is told of every step and how it ended; a skipped action
    /// ([`Run::follows`]) has none.
    pub fn run(
        &mut self,
        action: &Action,
        how: Run<'_>,
        observe: &mut dyn FnMut(&Step, StepStatus<'_>),
    ) -> ActionOutcome {
        let mut out = ActionOutcome { done: 0, gone: 0, bytes: 0, failed: None, skipped: false };
        if how.follows && self.last_failed {
            out.skipped = true;
            return out;
        }
        for (i, step) in action.steps.iter().enumerate() {
            match self.apply(step) {
                Ok(()) => {
                    out.done += 1;
                    out.bytes += how.sizes.get(i).copied().unwrap_or(0);
                    let status = if self.mode == Mode::Live { StepStatus::Done } else { StepStatus::Planned };
                    observe(step, status);
                }
                Err(e) if how.gone_ok && e.is_not_found() => {
                    out.gone += 1;
                    observe(step, StepStatus::Gone(&e));
                }
                Err(e) => {
                    observe(step, StepStatus::Failed(&e));
                    out.failed = Some((i, e));
                    break;
                }
            }
        }
        self.last_failed = out.failed.is_some();
        // An action's steps never share a file with the next action's.
        self.held = None;
        out
    }

    /// Carries out one step (dry run: validates it).
    pub fn apply(&mut self, step: &Step) -> Result<()> {
        match self.mode {
            Mode::DryRun => return validate(step),
            Mode::Live if self.skip_verb.as_deref() == Some(step.verb()) => {}
            Mode::Live => self.execute(step)?,
        }
        self.steps_done += 1;
        if let Some(k) = self.abort_after {
            if self.steps_done >= k {
                // A crash test asked to die here, as a power cut would.
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
        }
        Ok(())
    }

    fn execute(&mut self, step: &Step) -> Result<()> {
        // Only the step right after a chown may use the file it held.
        let held = self.held.take();
        match step {
            Step::Rename { from, to, expect } => {
                let (fd, fname) = split(from)?;
                let (td, tname) = split(to)?;
                self.with_two(&fd, &td, |a, b| a.rename_noreplace(fname, b, tname))?;
                self.forget(from);
                if let Some(ex) = expect {
                    // One stat, after the rename: what moved must be what
                    // the scan saw; anything else is put back where it was
                    // (a stat before as well would only narrow the window
                    // this one closes).
                    let moved = self.dir(&td)?.stat(tname)?;
                    if moved.ino != ex.ino || moved.kind != ex.kind || moved.nlink > ex.max_nlink {
                        self.with_two(&td, &fd, |b, a| b.rename_noreplace(tname, a, fname))?;
                        return Err(Error::Changed {
                            op: "rename",
                            path: self.dir(&fd)?.child_path(fname),
                            detail: format!(
                                "inode {} ({}, {} links) found there, {} ({}) scanned; moved back",
                                moved.ino,
                                moved.kind.name(),
                                moved.nlink,
                                ex.ino,
                                ex.kind.name()
                            ),
                        });
                    }
                }
                Ok(())
            }
            Step::Replace { from, to } => {
                let (fd, fname) = split(from)?;
                let (td, tname) = split(to)?;
                self.with_two(&fd, &td, |a, b| a.rename_replace(fname, b, tname))?;
                self.forget(from);
                self.forget(to);
                Ok(())
            }
            Step::Link { from, to } => {
                let (fd, fname) = split(from)?;
                let (td, tname) = split(to)?;
                self.with_two(&fd, &td, |a, b| a.link(fname, b, tname))
            }
            Step::Unlink { path, expect } => {
                let (d, name) = split(path)?;
                let Some(ex) = expect else {
                    return self.dir(&d)?.unlink(name);
                };
                if ex.kind == FileKind::Regular {
                    // A message file: checked by a stat just before (a
                    // window of microseconds), so that a crash never leaves
                    // anything but the queue's own names behind.
                    let dir = self.dir(&d)?;
                    check_unchanged(dir, name, ex, "unlink")?;
                    return dir.unlink(name);
                }
                // A link, pipe, socket or device: rename it to a private
                // name first, look at what moved (put anything else back),
                // then unlink that name.
                self.tmp_counter += 1;
                let tmp = format!(".qtools-tmp.{}.{}", std::process::id(), self.tmp_counter);
                let tmp = OsStr::new(&tmp);
                let dir = self.dir(&d)?;
                check_unchanged(dir, name, ex, "unlink")?;
                dir.rename_noreplace(name, dir, tmp)?;
                let moved = dir.stat(tmp)?;
                if moved.ino != ex.ino || moved.kind != ex.kind {
                    dir.rename_noreplace(tmp, dir, name)?;
                    return Err(Error::Changed {
                        op: "unlink",
                        path: dir.child_path(name),
                        detail: format!("inode {} swapped in during the removal; put back", moved.ino),
                    });
                }
                dir.unlink(tmp)
            }
            Step::Rmdir { path } => {
                let (d, name) = split(path)?;
                self.forget(path);
                self.dir(&d)?.rmdir(name)
            }
            Step::Mkdir { path, perm, owner } => {
                let (d, name) = split(path)?;
                let dir = self.dir(&d)?;
                dir.mkdir(name, *perm)?;
                fix_new(dir, name, *perm, *owner)
            }
            Step::Mkfifo { path, perm, owner } => {
                let (d, name) = split(path)?;
                let dir = self.dir(&d)?;
                dir.mkfifo(name, *perm)?;
                fix_new(dir, name, *perm, *owner)
            }
            Step::Chown { path, expect, uid, gid } => {
                let file = self.verified("chown", path, expect, None)?;
                file.chown(*uid, *gid)?;
                self.held = Some((path.clone(), *expect, file));
                Ok(())
            }
            Step::Chmod { path, expect, perm } => self.verified("chmod", path, expect, held)?.chmod(*perm),
            Step::SetMtime { path, expect, mtime } => {
                let (d, name) = split(path)?;
                self.dir(&d)?.set_mtime_verified(name, expect, *mtime)
            }
            Step::WriteFile { path, data, spec } => {
                let (d, name) = split(path)?;
                self.tmp_counter += 1;
                // Never all digits: qmail must not take it for a message.
                let tmp = format!(".qtools-tmp.{}.{}", std::process::id(), self.tmp_counter);
                self.dir(&d)?.write_file_atomic(name, OsStr::new(&tmp), data, spec)
            }
            Step::CopyPrefix { from, expect, len, path, spec } => {
                let (fd, fname) = split(from)?;
                let (mut src, st) = self.dir(&fd)?.open_regular(fname)?;
                let src_path = self.dir(&fd)?.child_path(fname);
                if let Some(ex) = expect {
                    if st.ino != ex.ino || st.nlink > ex.max_nlink {
                        return Err(Error::Changed {
                            op: "copy",
                            path: src_path,
                            detail: format!("inode {} ({} links) now, {} scanned", st.ino, st.nlink, ex.ino),
                        });
                    }
                }
                let (d, name) = split(path)?;
                self.tmp_counter += 1;
                // Never all digits: qmail must not take it for a message.
                let tmp = format!(".qtools-tmp.{}.{}", std::process::id(), self.tmp_counter);
                self.dir(&d)?.copy_prefix_atomic(name, OsStr::new(&tmp), &mut src, &src_path, *len, spec)
            }
        }
    }

    /// The file at `path`, checked against `expect` ([`Dir::open_verified`]),
    /// or `held` when it is that same file checked against that same
    /// expectation by the step before: its descriptor still holds the
    /// inode the scan saw, whatever was renamed over the name since, so
    /// a chown and a chmod of one file cost one open, one stat and one
    /// close between them.
    fn verified(
        &mut self,
        op: &'static str,
        path: &Path,
        expect: &Expect,
        held: Option<(PathBuf, Expect, Verified)>,
    ) -> Result<Verified> {
        if let Some((p, ex, file)) = held {
            if p == path && ex == *expect {
                return Ok(file);
            }
        }
        let (d, name) = split(path)?;
        self.dir(&d)?.open_verified(op, name, expect)
    }

    fn with_two<T>(&mut self, a: &Path, b: &Path, f: impl FnOnce(&Dir, &Dir) -> Result<T>) -> Result<T> {
        self.open_dir_keeping(a, None)?;
        // Opening `b` may make room in the cache: never at `a`'s expense.
        self.open_dir_keeping(b, Some(a))?;
        let da = self.lookup(a);
        let db = self.lookup(b);
        f(da, db)
    }

    fn lookup(&self, rel: &Path) -> &Dir {
        if rel.as_os_str().is_empty() {
            &self.root
        } else {
            // Present: `with_two` opened both and evicted neither.
            &self.dirs[rel]
        }
    }

    /// The directory at `rel` (relative to the root), opened component by
    /// component without following links, cached.
    pub fn dir(&mut self, rel: &Path) -> Result<&Dir> {
        self.open_dir_keeping(rel, None)?;
        Ok(self.lookup(rel))
    }

    /// Opens `rel` into the cache. When the cache is full it is emptied,
    /// except for `keep` and its ancestors: a caller holding two
    /// directories (a rename from one bucket to another) keeps the first
    /// while the second is opened, whatever the number of buckets.
    fn open_dir_keeping(&mut self, rel: &Path, keep: Option<&Path>) -> Result<()> {
        if rel.as_os_str().is_empty() || self.dirs.contains_key(rel) {
            return Ok(());
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Other(format!("bad relative path {}", escape_path(rel))));
        }
        if self.dirs.len() >= dir_cache_max() {
            match keep {
                Some(k) => self.dirs.retain(|p, _| k.starts_with(p)),
                None => self.dirs.clear(),
            }
        }
        let (parent, name) = split(rel)?;
        self.open_dir_keeping(&parent, keep)?;
        let d = self.lookup(&parent).open_dir(name)?;
        self.dirs.insert(rel.to_path_buf(), d);
        Ok(())
    }

    /// Drops the cached directory `rel` and those below it, after `rel`
    /// was renamed or removed. A directory below `rel` is cached only with
    /// every ancestor (see `open_dir_keeping`), so when `rel` itself is not
    /// cached (a renamed file, nearly always) nothing is to drop, and the
    /// cache is not walked: a walk per rename cost 8% of a renumbering.
    fn forget(&mut self, rel: &Path) {
        if self.dirs.contains_key(rel) {
            self.dirs.retain(|k, _| !k.starts_with(rel));
        }
    }
}

/// Refuses a change when `name` no longer holds what the scan saw (a
/// stat just before the change: it narrows a race to a few microseconds;
/// chown, chmod and time changes, made on the opened file, have none).
fn check_unchanged(dir: &Dir, name: &OsStr, ex: &Expect, op: &'static str) -> Result<()> {
    let st = dir.stat(name)?;
    if st.ino != ex.ino || st.kind != ex.kind || st.nlink > ex.max_nlink {
        return Err(Error::Changed {
            op,
            path: dir.child_path(name),
            detail: format!(
                "inode {} ({}, {} links) now, {} ({}) scanned",
                st.ino,
                st.kind.name(),
                st.nlink,
                ex.ino,
                ex.kind.name()
            ),
        });
    }
    Ok(())
}

/// mkdir and mkfifo honour the umask; set the exact mode and owner.
fn fix_new(dir: &Dir, name: &OsStr, perm: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let st = dir.stat(name)?;
    let ex = Expect { ino: st.ino, kind: st.kind, max_nlink: u64::MAX };
    if owner.is_some() || st.perm != perm {
        // One open for both changes.
        let file = dir.open_verified("chown", name, &ex)?;
        if let Some((u, g)) = owner {
            file.chown(u, g)?;
        }
        file.chmod(perm)?;
    }
    dir.fsync()
}

/// What a dry run can tell of a step without looking at the queue (the
/// queue as it will be after the steps before cannot be looked at): every
/// name it uses is a name relative to the queue root, under a parent the
/// mutator can walk to.
fn validate(step: &Step) -> Result<()> {
    for p in step.from_path().into_iter().chain([step.path()]) {
        let (parent, _) = split(p)?;
        if parent.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Other(format!("bad relative path {}", escape_path(&parent))));
        }
    }
    Ok(())
}

/// The parent directory and the name; `.` is the queue root itself.
fn split(p: &Path) -> Result<(PathBuf, &OsStr)> {
    if p == Path::new(".") {
        return Ok((PathBuf::new(), OsStr::new(".")));
    }
    let name = p.file_name().ok_or_else(|| Error::Other(format!("bad path {}", escape_path(p))))?;
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((parent, name))
}

#[cfg(feature = "fault-injection")]
fn abort_switch() -> Option<u64> {
    std::env::var("QTOOLS_ABORT_AFTER_STEP").ok()?.parse().ok()
}

#[cfg(not(feature = "fault-injection"))]
fn abort_switch() -> Option<u64> {
    None
}

#[cfg(feature = "fault-injection")]
fn skip_switch() -> Option<String> {
    std::env::var("QTOOLS_SKIP_STEP").ok()
}

#[cfg(not(feature = "fault-injection"))]
fn skip_switch() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::{FileKind, SymlinkBehavior};
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("mess/1")).unwrap();
        std::fs::write(t.path().join("mess/1/10"), b"hello").unwrap();
        let d = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        (t, d)
    }

    fn plan() -> Action {
        Action {
            message: Some(10),
            steps: vec![
                Step::Mkdir { path: "mess/2".into(), perm: 0o750, owner: None },
                Step::Rename { from: "mess/1/10".into(), to: "mess/2/10".into(), expect: None },
                Step::WriteFile {
                    path: "mess/2/info".into(),
                    data: b"F\0".to_vec(),
                    spec: NewFile { perm: 0o600, owner: None, mtime: Some(5), replace: false },
                },
                Step::Rmdir { path: "mess/1".into() },
            ],
        }
    }

    #[test]
    fn a_chmod_after_a_chown_reaches_the_file_the_chown_checked() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (t, d) = setup();
        std::fs::write(t.path().join("mess/1/11"), b"other").unwrap();
        let ino = |p: &str| std::fs::symlink_metadata(t.path().join(p)).unwrap().ino();
        let mode = |p: &str| std::fs::symlink_metadata(t.path().join(p)).unwrap().permissions().mode() & 0o7777;
        let ex10 = Expect { ino: ino("mess/1/10"), kind: FileKind::Regular, max_nlink: 1 };
        let ex11 = Expect { ino: ino("mess/1/11"), kind: FileKind::Regular, max_nlink: 1 };
        let (me, my_group) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let mut m = Mutator::new(d, Mode::Live);
        // A chmod of another file after a chown gets that other file.
        m.apply(&Step::Chown { path: "mess/1/10".into(), expect: ex10, uid: me, gid: my_group }).unwrap();
        m.apply(&Step::Chmod { path: "mess/1/11".into(), expect: ex11, perm: 0o604 }).unwrap();
        assert_eq!(mode("mess/1/11"), 0o604);
        // A chmod right after the chown of the same file changes the inode
        // the chown checked, even when another took its name meanwhile.
        m.apply(&Step::Chown { path: "mess/1/10".into(), expect: ex10, uid: me, gid: my_group }).unwrap();
        std::fs::rename(t.path().join("mess/1/10"), t.path().join("mess/1/moved")).unwrap();
        std::fs::write(t.path().join("mess/1/10"), b"newcomer").unwrap();
        std::fs::set_permissions(t.path().join("mess/1/10"), std::fs::Permissions::from_mode(0o644)).unwrap();
        m.apply(&Step::Chmod { path: "mess/1/10".into(), expect: ex10, perm: 0o600 }).unwrap();
        assert_eq!((mode("mess/1/moved"), mode("mess/1/10")), (0o600, 0o644));
        // With a step between, the name is checked again: the newcomer is refused.
        m.apply(&Step::Chown { path: "mess/1/11".into(), expect: ex11, uid: me, gid: my_group }).unwrap();
        let e = m.apply(&Step::Chmod { path: "mess/1/10".into(), expect: ex10, perm: 0o600 }).unwrap_err();
        assert!(matches!(e, Error::Changed { .. }), "{e}");
        assert_eq!(mode("mess/1/10"), 0o644);
    }

    #[test]
    fn dry_run_records_and_changes_nothing() {
        let (t, d) = setup();
        let before: Vec<_> = walk(t.path());
        let mut m = Mutator::new(d, Mode::DryRun);
        let mut seen = Vec::new();
        let out = m.run_action(&plan(), &mut |s, st| seen.push((s.clone(), matches!(st, StepStatus::Planned))));
        assert!(out.failed.is_none());
        assert_eq!(out.done, 4);
        let planned: Vec<Step> = seen.iter().filter(|(_, p)| *p).map(|(s, _)| s.clone()).collect();
        assert_eq!(planned, plan().steps);
        assert_eq!(walk(t.path()), before);
    }

    #[test]
    fn live_run_does_each_step() {
        let (t, d) = setup();
        let mut m = Mutator::new(d, Mode::Live);
        let mut seen = Vec::new();
        let out = m.run_action(&plan(), &mut |s, st| seen.push((s.clone(), matches!(st, StepStatus::Done))));
        assert!(out.failed.is_none(), "{:?}", out.failed);
        assert!(seen.iter().all(|(_, d)| *d));
        assert_eq!(std::fs::read(t.path().join("mess/2/10")).unwrap(), b"hello");
        assert_eq!(std::fs::read(t.path().join("mess/2/info")).unwrap(), b"F\0");
        assert!(!t.path().join("mess/1").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("mess/2")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        assert_eq!(out.done, 4);
        assert_eq!(m.steps_done, 4);
    }

    #[test]
    fn copy_prefix_cuts_in_place_and_refuses_a_short_source() {
        let (t, d) = setup();
        std::fs::write(t.path().join("mess/1/11"), b"Ta\0Tb\0Tc").unwrap();
        let ino =
            std::fs::metadata(t.path().join("mess/1/11")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        let spec = NewFile { perm: 0o600, owner: None, mtime: None, replace: true };
        let step = |len: u64, ino: u64| Step::CopyPrefix {
            from: "mess/1/11".into(),
            expect: Some(Expect { ino, kind: FileKind::Regular, max_nlink: 1 }),
            len,
            path: "mess/1/11".into(),
            spec,
        };
        assert_eq!(step(6, ino).to_string(), "write mess/1/11 (the first 6 bytes of mess/1/11, mode 0600)");
        let mut m = Mutator::new(d, Mode::Live);
        // Another inode than the scan saw: refused, nothing changed.
        assert!(m.apply(&step(6, ino + 1)).is_err());
        assert_eq!(std::fs::read(t.path().join("mess/1/11")).unwrap(), b"Ta\0Tb\0Tc");
        // More bytes than there are: refused, no temporary file left.
        assert!(m.apply(&step(100, ino)).is_err());
        assert_eq!(std::fs::read(t.path().join("mess/1/11")).unwrap(), b"Ta\0Tb\0Tc");
        m.apply(&step(6, ino)).unwrap();
        assert_eq!(std::fs::read(t.path().join("mess/1/11")).unwrap(), b"Ta\0Tb\0");
        let names: Vec<_> =
            std::fs::read_dir(t.path().join("mess/1")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn failure_stops_the_action_and_reports() {
        let (t, d) = setup();
        std::fs::create_dir(t.path().join("mess/2")).unwrap();
        std::fs::write(t.path().join("mess/2/10"), b"other").unwrap();
        let mut m = Mutator::new(d, Mode::Live);
        let a = Action { message: Some(10), steps: plan().steps[1..].to_vec() };
        let out = m.run_action(&a, &mut |_, _| {});
        let (i, e) = out.failed.unwrap();
        assert_eq!(i, 0);
        assert!(e.to_string().contains("mess/1/10"), "{e}");
        assert_eq!(std::fs::read(t.path().join("mess/1/10")).unwrap(), b"hello");
        assert_eq!(std::fs::read(t.path().join("mess/2/10")).unwrap(), b"other");
    }

    #[test]
    fn links_inside_the_queue_are_not_followed() {
        let (t, d) = setup();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("5"), b"canary").unwrap();
        symlink(outside.path(), t.path().join("mess/3")).unwrap();
        let mut m = Mutator::new(d, Mode::Live);
        let e = m.apply(&Step::Unlink { path: "mess/3/5".into(), expect: None }).unwrap_err();
        assert!(e.to_string().contains("mess/3"), "{e}");
        let e = m.apply(&Step::Rename { from: "mess/1/10".into(), to: "mess/3/10".into(), expect: None }).unwrap_err();
        assert!(e.to_string().contains("mess/3"), "{e}");
        assert_eq!(std::fs::read(outside.path().join("5")).unwrap(), b"canary");
        assert!(!outside.path().join("10").exists());
        // Unlink of the link itself removes the link, not the target.
        m.apply(&Step::Unlink {
            path: "mess/3".into(),
            expect: Some(Expect {
                ino: std::fs::symlink_metadata(t.path().join("mess/3"))
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap(),
                kind: FileKind::Symlink,
                max_nlink: 1,
            }),
        })
        .unwrap();
        assert!(outside.path().join("5").exists());
    }

    #[test]
    fn renames_across_more_directories_than_the_cache_holds() {
        // Issue: a rename whose second directory's opening emptied the
        // cache lost the first one (conf-split 127 and above).
        let t = tempfile::tempdir().unwrap();
        let n = DIR_CACHE_MAX + 100;
        for i in 0..n {
            std::fs::create_dir_all(t.path().join(format!("a/{i}"))).unwrap();
            std::fs::create_dir_all(t.path().join(format!("b/{i}"))).unwrap();
            std::fs::write(t.path().join(format!("a/{i}/{i}")), i.to_string()).unwrap();
        }
        let d = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        let mut m = Mutator::new(d, Mode::Live);
        for round in 0..2 {
            for i in 0..n {
                let (from, to) = if round == 0 { ("a", "b") } else { ("b", "a") };
                // Interleave far-apart directories so the cache fills and empties.
                let j = (i * 7) % n;
                m.apply(&Step::Rename {
                    from: format!("{from}/{j}/{j}").into(),
                    to: format!("{to}/{}/{j}", (j + 1) % n).into(),
                    expect: None,
                })
                .unwrap();
                m.apply(&Step::Rename {
                    from: format!("{to}/{}/{j}", (j + 1) % n).into(),
                    to: format!("{to}/{j}/{j}").into(),
                    expect: None,
                })
                .unwrap();
            }
        }
        for i in 0..n {
            assert_eq!(std::fs::read_to_string(t.path().join(format!("a/{i}/{i}"))).unwrap(), i.to_string());
        }
        assert!(m.dirs.len() <= DIR_CACHE_MAX);
    }

    #[test]
    fn an_action_that_follows_a_failed_one_is_skipped() {
        let (t, d) = setup();
        let mut m = Mutator::new(d, Mode::Live);
        let gone = Action { message: Some(9), steps: vec![Step::Unlink { path: "mess/1/9".into(), expect: None }] };
        let next = Action { message: Some(10), steps: vec![Step::Unlink { path: "mess/1/10".into(), expect: None }] };
        let follows = Run { follows: true, ..Run::default() };
        assert!(m.run_action(&gone, &mut |_, _| {}).failed.is_some());
        let out = m.run(&next, follows, &mut |_, _| panic!("a skipped action has no steps"));
        assert!(out.skipped && !out.whole() && out.done == 0);
        assert!(t.path().join("mess/1/10").exists());
        // After an action that succeeded, one that follows it runs.
        let mkdir =
            Action { message: None, steps: vec![Step::Mkdir { path: "mess/2".into(), perm: 0o700, owner: None }] };
        assert!(m.run_action(&mkdir, &mut |_, _| {}).whole());
        assert!(m.run(&next, follows, &mut |_, _| {}).whole());
        assert!(!t.path().join("mess/1/10").exists());
    }

    #[test]
    fn sizes_count_the_steps_done_and_gone_names_are_allowed_when_asked() {
        let (t, d) = setup();
        std::fs::write(t.path().join("mess/1/11"), b"abc").unwrap();
        let action = Action {
            message: Some(11),
            steps: vec![
                Step::Unlink { path: "mess/1/12".into(), expect: None },
                Step::Unlink { path: "mess/1/11".into(), expect: None },
            ],
        };
        let how = Run { sizes: &[7, 3], gone_ok: true, ..Run::default() };
        let before = walk(t.path());
        let dry = Mutator::new(Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap(), Mode::DryRun).run(
            &action,
            how,
            &mut |_, _| {},
        );
        assert_eq!((dry.done, dry.gone, dry.bytes, dry.whole()), (2, 0, 10, true));
        assert_eq!(walk(t.path()), before);
        let mut m = Mutator::new(d, Mode::Live);
        let live = m.run(&action, how, &mut |_, _| {});
        assert_eq!((live.done, live.gone, live.bytes, live.whole()), (1, 1, 3, true));
        // Without gone_ok the missing name stops the action.
        std::fs::write(t.path().join("mess/1/11"), b"abc").unwrap();
        let strict = m.run(&action, Run { sizes: &[7, 3], ..Run::default() }, &mut |_, _| {});
        assert_eq!((strict.done, strict.failed.map(|f| f.0)), (0, Some(0)));
        assert!(t.path().join("mess/1/11").exists());
    }

    #[test]
    fn a_dry_run_refuses_what_live_could_not_walk_to() {
        let (_t, d) = setup();
        let mut m = Mutator::new(d, Mode::DryRun);
        let bad = Step::Rename { from: "mess/../../etc/x".into(), to: "mess/1/x".into(), expect: None };
        let mut seen = 0;
        let out = m.run_action(&Action { message: None, steps: vec![bad] }, &mut |_, st| {
            assert!(matches!(st, StepStatus::Failed(_)));
            seen += 1;
        });
        assert_eq!((seen, out.done, out.failed.is_some()), (1, 0, true));
    }

    fn walk(p: &Path) -> Vec<(PathBuf, u64, u32)> {
        use std::os::unix::fs::MetadataExt;
        let mut v = Vec::new();
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                v.push((e.path(), m.size(), m.mode()));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        v.sort();
        v
    }
}
