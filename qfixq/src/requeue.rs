//! `qfixq requeue`: puts messages back into service through qmail's own
//! `bin/qmail-queue` while qmail runs, from a queue repaired offline
//! (`--from DIR`) or from the items qfixq set aside in lost+found
//! (`--lost-found`). Without `live` it only lists what it would do.
//!
//! Each message is given to qmail-queue with its sender and the recipients
//! not yet delivered (see [`crate::inject`]). Only after qmail-queue
//! accepted it is the source changed, through the mutator:
//!
//! - a message of DIR: a marker `lost+found/requeued/N` (`N INODE`) is
//!   written, then the message's files are removed in the order of
//!   `qcommon::remove::removal_action` (mess last), then the marker. A
//!   rerun that finds a marker finishes the removal without injecting
//!   again; a crash between qmail-queue's answer and the marker makes the
//!   rerun inject that one message again. So a crash can at most inject
//!   one message twice, and never loses one.
//! - a lost+found item `lost+found/RUN/N/`: a `requeued` file is written
//!   in it; a rerun skips the items that have one.
//!
//! Where the envelope comes from: a todo (sender and every recipient); else
//! info with the `T` records of local and remote; for a lost+found item,
//! else intd. A message with none usable goes, with the null sender, to
//! `--to ADDR`, or stays where it is, reported. A message of DIR whose
//! bounce is pending (bounce/N) stays: qmail-send must still send that
//! bounce. A salvaged message (its sender lost, see `qcommon::salvaged`)
//! is injected with the null sender it has, and the listing says so.
//!
//! The live run holds DIR's lock/sendmutex (nothing else changes DIR
//! meanwhile); for the live queue's lost+found it holds an flock on the
//! lost+found directory (two requeue runs never work at once). The live
//! queue itself is only ever written by qmail-queue.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qcommon::envelope::{Info, ListEnvelope, Recipients, Todo, TodoEnvelope, MAX_ADDRESS};
use qcommon::error::{escape_path, Escaped};
use qcommon::layout::{discover_in, LayoutOptions, DEFAULT_HOME};
use qcommon::lock::{acquire_sendmutex, LockState, SendLock};
use qcommon::mutator::{Action, Mode, Mutator, Step};
use qcommon::queue::{Part, LOST_AND_FOUND};
use qcommon::remove::{removal_action, utc_stamp, LOST_AND_FOUND_PERM};
use qcommon::safe_fs::{parse_number, Dir, FileKind, NewFile, SymlinkBehavior};
use qcommon::scan::{scan, ScanEvent, ScanOptions, ScannedMessage};

use crate::inject::{inject, Answer, Rcpts};
use crate::{Cli, ExitCode};

/// The directory of the markers, inside lost+found.
pub const MARKER_DIR: &str = "requeued";
/// The file that marks a lost+found item as requeued.
pub const ITEM_MARK: &str = "requeued";
/// Largest lost+found envelope file read.
const ITEM_ENVELOPE_CAP: usize = 64 << 20;

/// Runs `qfixq requeue`; `rest` are the mode words after `requeue`.
pub(crate) fn main(cli: &Cli, rest: &[&str]) -> ExitCode {
    let usage = |m: &str| {
        eprintln!("qfixq: {m}");
        ExitCode::Usage
    };
    let live = match rest {
        [] => cli.live,
        ["live"] => true,
        _ => return usage("requeue takes only the word `live` after it: `qfixq requeue [live] --from DIR`"),
    };
    if cli.dry_run && live {
        return usage("-n (list only) cannot go with `requeue live`");
    }
    if cli.empty || cli.no_quarantine || cli.force || cli.json {
        return usage("--empty, --no-quarantine, --force and --json do not go with requeue");
    }
    if cli.from.is_none() && cli.lost_found.is_none() {
        return usage("requeue needs --from DIR (a queue repaired offline) or --lost-found [RUN[/N]...]");
    }
    let to = match &cli.to {
        None => None,
        Some(a) if a.is_empty() || a.len() > MAX_ADDRESS || a.bytes().any(|b| b == 0 || b == b'\n') => {
            return usage(&format!("--to {:?}: not an address qmail-queue takes", a));
        }
        Some(a) => Some(a.as_bytes().to_vec()),
    };
    let stdout = std::io::stdout();
    let mut r = Requeue {
        out: stdout.lock(),
        quiet: cli.quiet,
        live,
        to,
        qmail_queue: PathBuf::new(),
        mutator: None,
        counts: Counts::default(),
        stop: None,
        markers: BTreeMap::new(),
        salvaged: Default::default(),
        write_failed: false,
    };
    let code = r.run(cli);
    if r.write_failed {
        return code.worst(ExitCode::Operational);
    }
    code
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    injected: u64,
    recipients: u64,
    finished: u64,
    nothing_left: u64,
    left: u64,
    already: u64,
    steps: u64,
}

struct Requeue<W: Write> {
    out: W,
    quiet: bool,
    live: bool,
    to: Option<Vec<u8>>,
    qmail_queue: PathBuf,
    /// Live: changes the source queue (DIR, or the live queue's lost+found).
    mutator: Option<Mutator>,
    counts: Counts,
    /// Why the run stopped early (exit 8, or 32 when interrupted).
    stop: Option<(ExitCode, String)>,
    /// Markers of DIR's messages injected by an earlier run: number -> inode.
    markers: BTreeMap<u64, u64>,
    salvaged: qcommon::salvaged::Salvaged,
    write_failed: bool,
}

/// What a message's envelope gives.
struct Envelope<'a> {
    sender: &'a [u8],
    lists: Vec<Rcpts<'a>>,
    count: u64,
}

fn fail(m: impl std::fmt::Display) -> ExitCode {
    eprintln!("qfixq: {}", crate::output::escape_text(&m.to_string()));
    ExitCode::Operational
}

fn marker_path(n: u64) -> PathBuf {
    PathBuf::from(LOST_AND_FOUND).join(MARKER_DIR).join(n.to_string())
}

impl<W: Write> Requeue<W> {
    fn line(&mut self, s: &str) {
        if writeln!(self.out, "{s}").is_err() {
            self.write_failed = true;
        }
    }

    fn item_line(&mut self, s: &str) {
        if !self.quiet {
            self.line(s);
        }
    }

    fn run(&mut self, cli: &Cli) -> ExitCode {
        // qmail-queue of the live qmail.
        let home = cli
            .queue
            .qmail_home
            .clone()
            .or_else(|| cli.queue.queue.as_ref().and_then(|q| q.parent().map(Path::to_path_buf)))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HOME));
        let live_queue = cli.queue.queue.clone().unwrap_or_else(|| home.join("queue"));
        self.qmail_queue = home.join("bin").join("qmail-queue");
        match std::fs::metadata(&self.qmail_queue) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 && m.permissions().mode() & 0o022 == 0 => {}
            Ok(_) => {
                return fail(format!(
                    "{}: not an executable file, or writable by its group or others: not run",
                    escape_path(&self.qmail_queue)
                ));
            }
            Err(e) => {
                return fail(format!(
                    "{}: {e} (give qmail's home with --qmail-home, or the live queue with --queue)",
                    escape_path(&self.qmail_queue)
                ))
            }
        }
        // The source: DIR, or the live queue (its lost+found only).
        let source_path = cli.from.clone().unwrap_or_else(|| live_queue.clone());
        if let Some(from) = &cli.from {
            let same = match (std::fs::canonicalize(from), std::fs::canonicalize(&live_queue)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                return fail(format!(
                    "--from {} is the live queue: requeue takes messages from a queue qmail does not serve",
                    escape_path(from)
                ));
            }
        }
        let root = match Dir::open(&source_path, SymlinkBehavior::Follow) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        self.line(&format!("mode: requeue, {}", if self.live { "live" } else { "list only (nothing is changed)" }));
        self.line(&format!("qmail-queue: {}", escape_path(&self.qmail_queue)));
        self.line(&format!("source: {}", escape_path(&source_path)));

        // The lock of the source.
        let mut _lock: Option<SendLock> = None;
        let mut _lf_lock: Option<nix::fcntl::Flock<File>> = None;
        if self.live {
            if cli.from.is_some() {
                match acquire_sendmutex(&root) {
                    Ok(Ok(l)) => _lock = Some(l),
                    Ok(Err(LockState::Held)) => {
                        return fail(format!(
                            "{}: lock/sendmutex is held: a qmail-send (or another qfixq) works on this queue; \
                             nothing was changed",
                            escape_path(&source_path)
                        ))
                    }
                    Ok(Err(s)) => {
                        return fail(format!(
                            "{}: lock/sendmutex {}: repair the queue first (qfixq live --queue DIR); nothing was \
                             changed",
                            escape_path(&source_path),
                            s.describe()
                        ))
                    }
                    Err(e) => return fail(e),
                }
            }
            if let Err(e) = self.prepare_live(&root, cli.from.is_none(), &mut _lf_lock) {
                return fail(e);
            }
            if let Err(e) = qcommon::interrupt::install(i32::from(ExitCode::Interrupted.code())) {
                return fail(format!("cannot install the signal handlers: {e}; nothing was changed"));
            }
        }
        match (&cli.from, &cli.lost_found) {
            (_, Some(items)) => self.lost_found(&root, items),
            (Some(_), None) => self.queue_messages(cli, &root, &source_path),
            (None, None) => unreachable!("checked by main"),
        }
        self.summary()
    }

    /// Opens the mutator; for the live queue's lost+found, takes its flock.
    fn prepare_live(
        &mut self,
        root: &Dir,
        lock_lost_found: bool,
        lf_lock: &mut Option<nix::fcntl::Flock<File>>,
    ) -> Result<(), String> {
        // The mutator's own descriptor of the root, checked to be the same
        // directory (as the session checks its second opens).
        let again = qcommon::session::open_same(root).map_err(|e| e.to_string())?;
        let lf_exists = root.stat(OsStr::new(LOST_AND_FOUND)).is_ok();
        if lock_lost_found && lf_exists {
            let p = root.path().join(LOST_AND_FOUND);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| format!("opening {} to lock it: {e}", escape_path(&p)))?;
            match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => *lf_lock = Some(l),
                Err((_, e)) => {
                    return Err(format!(
                        "locking {}: {e} (another qfixq requeue works there?); nothing was changed",
                        escape_path(&p)
                    ))
                }
            }
        }
        self.mutator = Some(Mutator::new(again, Mode::Live));
        Ok(())
    }

    /// Carries out `steps` (live), counting them; an error stops the run.
    fn apply(&mut self, n: Option<u64>, steps: Vec<Step>, what: &str) -> bool {
        let Some(m) = self.mutator.as_mut() else { return true };
        let out = m.run_action(&Action { message: n, steps }, &mut |_, _| {});
        self.counts.steps += out.done as u64;
        if let Some((_, e)) = out.failed {
            self.stop = Some((ExitCode::Operational, format!("{what}: {e}")));
            return false;
        }
        true
    }

    fn interrupted(&mut self) -> bool {
        if self.live && qcommon::interrupt::requested() && self.stop.is_none() {
            self.stop = Some((ExitCode::Interrupted, "interrupted: run the same command again to go on".into()));
        }
        self.stop.is_some()
    }

    /// Injects one message; true when qmail-queue accepted it. A
    /// permanent refusal leaves the message (counted); a temporary one
    /// stops the run.
    fn give(&mut self, label: &str, long: &str, mess: File, env: &Envelope<'_>) -> bool {
        match inject(&self.qmail_queue, mess, env.sender, &env.lists) {
            Answer::Accepted => {
                self.counts.injected += 1;
                self.counts.recipients += env.count;
                true
            }
            Answer::Permanent(e) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: {e}; qmail-queue will not take it as it is"));
                false
            }
            Answer::Temporary(e) => {
                self.stop = Some((
                    ExitCode::Operational,
                    format!("{long}: {e}; stopped (the message is where it was): run again later to go on"),
                ));
                false
            }
        }
    }

    fn describe(&self, env: &Envelope<'_>) -> String {
        format!("from <{}> to {} recipient(s)", Escaped(env.sender), env.count)
    }

    // ---------------------------------------------------------------
    // Messages of a queue repaired offline.

    fn queue_messages(&mut self, cli: &Cli, root: &Dir, path: &Path) {
        let opts = LayoutOptions {
            queue: Some(path.to_path_buf()),
            qmail_home: None,
            split: cli.queue.split,
            ids: cli.queue.ids,
            run_showctl: false,
            new_queue: false,
        };
        // Decided on the root already open (and locked), not opened again.
        let layout = match discover_in(root, &opts) {
            Ok(l) => l,
            Err(e) => {
                self.stop = Some((ExitCode::Operational, format!("{e}")));
                return;
            }
        };
        self.line(&format!("split: {} ({})", layout.split.value, layout.split.source));
        match qcommon::salvaged::read_all(root) {
            Ok(s) => self.salvaged = s,
            Err(e) => {
                self.stop = Some((ExitCode::Operational, format!("reading the records of salvaged messages: {e}")));
                return;
            }
        }
        if let Err(e) = self.read_markers(root) {
            self.stop = Some((ExitCode::Operational, e));
            return;
        }
        let scan_layout = layout.shape();
        let opts = ScanOptions { threads: cli.threads as usize, ..ScanOptions::default() };
        let mut stray_count = 0u64;
        let r = scan(root, scan_layout, &opts, &mut |ev| {
            if self.interrupted() {
                return;
            }
            match ev {
                ScanEvent::Message(m) => self.message(root, &m),
                ScanEvent::Stray(_) => stray_count += 1,
                ScanEvent::Error(e) => {
                    self.stop = Some((ExitCode::Operational, format!("{e}; repair the queue first")));
                }
            }
        });
        match r {
            Err(qcommon::Error::Interrupted) => {
                self.interrupted();
            }
            Err(e) if self.stop.is_none() => self.stop = Some((ExitCode::Operational, e.to_string())),
            _ => {}
        }
        if stray_count > 0 {
            self.line(&format!(
                "note: {stray_count} stray(s) in the source: not messages, left (qfixq live --queue DIR sets them \
                 aside)"
            ));
        }
        // Markers whose message is gone entirely: the removal had ended.
        if self.stop.is_none() && self.live {
            let rest: Vec<u64> = std::mem::take(&mut self.markers).into_keys().collect();
            for n in rest {
                if !self.apply(Some(n), vec![Step::Unlink { path: marker_path(n), expect: None }], "marker") {
                    break;
                }
            }
        }
    }

    /// The markers left by an earlier run (none in a dry run's eyes: it
    /// reads them too, to list what a live run would do).
    fn read_markers(&mut self, root: &Dir) -> Result<(), String> {
        let lf = match root.stat(OsStr::new(LOST_AND_FOUND)) {
            Ok(st) if st.kind == FileKind::Directory => root.open_dir(OsStr::new(LOST_AND_FOUND)),
            Ok(_) => {
                return Err(format!(
                    "{}/lost+found is not a directory: repair the queue first (qfixq live --queue DIR)",
                    escape_path(root.path())
                ))
            }
            Err(e) if e.is_not_found() => {
                if self.live {
                    let mk = |p: PathBuf| Step::Mkdir { path: p, perm: LOST_AND_FOUND_PERM, owner: Some((0, 0)) };
                    let steps =
                        vec![mk(PathBuf::from(LOST_AND_FOUND)), mk(PathBuf::from(LOST_AND_FOUND).join(MARKER_DIR))];
                    if !self.apply(None, steps, "making lost+found") {
                        return Err(self.stop.take().map(|s| s.1).unwrap_or_default());
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
        .map_err(|e| e.to_string())?;
        let dir = match lf.open_dir(OsStr::new(MARKER_DIR)) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                if self.live {
                    let step = Step::Mkdir {
                        path: PathBuf::from(LOST_AND_FOUND).join(MARKER_DIR),
                        perm: LOST_AND_FOUND_PERM,
                        owner: Some((0, 0)),
                    };
                    if !self.apply(None, vec![step], "making lost+found/requeued") {
                        return Err(self.stop.take().map(|s| s.1).unwrap_or_default());
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        for e in dir.entries().map_err(|e| e.to_string())? {
            let Some(n) = parse_number(e.name.as_bytes()) else { continue };
            let c = dir.read_file(&e.name, 128).map_err(|e| e.to_string())?;
            let ino = std::str::from_utf8(&c.data)
                .ok()
                .and_then(|s| s.trim_end().split(' ').nth(1).and_then(|x| x.parse::<u64>().ok()))
                .unwrap_or(0);
            self.markers.insert(n, ino);
        }
        Ok(())
    }

    fn message(&mut self, root: &Dir, msg: &ScannedMessage) {
        let n = msg.number;
        let label = n.to_string();
        let qlabel = format!("message {n}");
        if let Some(ino) = self.markers.remove(&n) {
            let mess_ino = msg.file(Part::Mess).map(|f| f.inode());
            if mess_ino.is_some_and(|i| i != ino) {
                self.counts.left += 1;
                self.item_line(&format!(
                    "{label}  left: lost+found/requeued/{n} names mess inode {ino}, this message's is {}; look at it",
                    mess_ino.unwrap_or(0)
                ));
                return;
            }
            let mut steps = removal_action(msg).steps;
            steps.push(Step::Unlink { path: marker_path(n), expect: None });
            if !self.live {
                self.item_line(&format!("{label}  would finish: injected by an earlier run; would remove it here"));
                return;
            }
            if self.apply(Some(n), steps, &format!("message {n}: removing it after its injection")) {
                self.counts.finished += 1;
                self.item_line(&format!("{label}  finished: injected by an earlier run; removed here"));
            }
            return;
        }
        let Some(mess) = msg.file(Part::Mess) else {
            self.counts.left += 1;
            self.item_line(&format!("{label}  left: no mess file, nothing to inject (qfixq live --queue DIR)"));
            return;
        };
        if msg.has(Part::Bounce) && !msg.has(Part::Todo) {
            self.counts.left += 1;
            self.item_line(&format!(
                "{label}  left: a bounce is pending (bounce/{n}): qmail-send must still send it; requeued, it would \
                 be lost"
            ));
            return;
        }
        let mut note = String::new();
        let to = self.to.clone();
        let env = match envelope_of(root, msg) {
            Ok(e) => {
                if e.sender.is_empty() {
                    if let Some(rec) = self.salvaged.get(n) {
                        note = format!(
                            " (sender lost: qfixq salvaged it, {}; injected with the null sender)",
                            rec.why.word()
                        );
                    }
                }
                e
            }
            Err(why) => match &to {
                Some(to) => {
                    note = format!(" (no usable envelope: {why}; sent to --to)");
                    Envelope { sender: b"", lists: vec![Rcpts::Held(vec![to.as_slice()])], count: 1 }
                }
                None => {
                    self.counts.left += 1;
                    self.item_line(&format!("{label}  left: no usable envelope: {why} (--to ADDR sends it there)"));
                    return;
                }
            },
        };
        if env.count == 0 {
            if !self.live {
                self.counts.nothing_left += 1;
                self.item_line(&format!("{label}  would remove: every recipient is delivered"));
                return;
            }
            if self.apply(Some(n), removal_action(msg).steps, &format!("message {n}: removing it")) {
                self.counts.nothing_left += 1;
                self.item_line(&format!("{label}  removed: every recipient is delivered"));
            }
            return;
        }
        let what = self.describe(&env);
        if !self.live {
            self.counts.injected += 1;
            self.counts.recipients += env.count;
            self.item_line(&format!("{label}  would inject: {what}{note}"));
            return;
        }
        let file = match root.open_regular_beneath(&mess.rel_path(n)) {
            Ok((f, st)) if st.ino == mess.inode() => f,
            Ok(_) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: its mess file changed since the scan"));
                return;
            }
            Err(e) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: {e}"));
                return;
            }
        };
        if !self.give(&label, &qlabel, file, &env) {
            return;
        }
        self.item_line(&format!("{label}  injected: {what}{note}"));
        let mut steps = vec![Step::WriteFile {
            path: marker_path(n),
            data: format!("{n} {}\n", mess.inode()).into_bytes(),
            spec: NewFile { perm: 0o600, owner: None, mtime: None, replace: true },
        }];
        steps.extend(removal_action(msg).steps);
        steps.push(Step::Unlink { path: marker_path(n), expect: None });
        self.apply(
            Some(n),
            steps,
            &format!("message {n} was injected, but removing it from the source failed (a rerun finishes it)"),
        );
    }

    // ---------------------------------------------------------------
    // lost+found items.

    fn lost_found(&mut self, root: &Dir, wanted: &[String]) {
        let lf = match root.open_dir(OsStr::new(LOST_AND_FOUND)) {
            Ok(d) => d,
            Err(e) if e.is_not_found() && wanted.is_empty() => {
                self.line("lost+found: none, nothing to requeue");
                return;
            }
            Err(e) => {
                self.stop = Some((ExitCode::Operational, e.to_string()));
                return;
            }
        };
        let items = match list_items(&lf, wanted) {
            Ok(v) => v,
            Err(e) => {
                self.stop = Some((ExitCode::Operational, e));
                return;
            }
        };
        for item in items {
            if self.interrupted() {
                return;
            }
            match item {
                Err((label, why)) => {
                    self.counts.left += 1;
                    self.item_line(&format!("{label}  left: {why}"));
                }
                Ok((run, name)) => self.item(&lf, &run, &name),
            }
        }
    }

    fn item(&mut self, lf: &Dir, run: &OsStr, name: &OsStr) {
        let label = format!("{}/{}", escape_path(Path::new(run)), escape_path(Path::new(name)));
        let dir = match lf.open_dir(run).and_then(|d| d.open_dir(name)) {
            Ok(d) => d,
            Err(e) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: {e}"));
                return;
            }
        };
        match dir.stat(OsStr::new(ITEM_MARK)) {
            Ok(_) => {
                self.counts.already += 1;
                self.item_line(&format!("{label}  already requeued"));
                return;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: {e}"));
                return;
            }
        }
        let reason = dir
            .read_file(OsStr::new("reason"), 4096)
            .ok()
            .and_then(|c| c.data.split(|&b| b == b'\n').next().map(|l| Escaped(l).to_string()))
            .unwrap_or_else(|| "no reason file".into());
        let file = match dir.open_regular(OsStr::new("mess")) {
            Ok((f, st)) if st.size > 0 => f,
            Ok(_) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: its mess is empty ({reason})"));
                return;
            }
            Err(e) => {
                self.counts.left += 1;
                self.item_line(&format!("{label}  left: no message text: {e} ({reason})"));
                return;
            }
        };
        let parsed = item_envelope(&dir);
        let mut note = format!(" (set aside because: {reason})");
        if dir.stat(OsStr::new("bounce")).is_ok() {
            note.push_str("; its pending bounce was not sent: read it in the item's bounce file");
        }
        let (sender, rcpts): (Vec<u8>, Vec<Vec<u8>>) = match parsed {
            Ok(x) => x,
            Err(why) => match &self.to {
                Some(to) => {
                    note.push_str(&format!("; no usable envelope: {why}; sent to --to"));
                    (Vec::new(), vec![to.clone()])
                }
                None => {
                    self.counts.left += 1;
                    self.item_line(&format!(
                        "{label}  left: no usable envelope: {why} (--to ADDR sends it there) ({reason})"
                    ));
                    return;
                }
            },
        };
        let env = Envelope {
            sender: &sender,
            lists: vec![Rcpts::Held(rcpts.iter().map(Vec::as_slice).collect())],
            count: rcpts.len() as u64,
        };
        let what = self.describe(&env);
        if !self.live {
            self.counts.injected += 1;
            self.counts.recipients += env.count;
            self.item_line(&format!("{label}  would inject: {what}{note}"));
            return;
        }
        if !self.give(&label, &format!("lost+found item {label}"), file, &env) {
            return;
        }
        self.item_line(&format!("{label}  injected: {what}{note}"));
        let step = Step::WriteFile {
            path: PathBuf::from(LOST_AND_FOUND).join(run).join(name).join(ITEM_MARK),
            data: format!("requeued {}\n", utc_stamp(now())).into_bytes(),
            spec: NewFile { perm: 0o600, owner: None, mtime: None, replace: true },
        };
        self.apply(None, vec![step], &format!("{label} was injected, but marking it requeued failed"));
    }

    fn summary(&mut self) -> ExitCode {
        let c = self.counts;
        let mut code = if c.left > 0 { ExitCode::Unfixed } else { ExitCode::Clean };
        if self.live {
            self.line(&format!(
                "injected {} message(s), {} recipient(s); finished {} injected before; removed {} with nothing left \
                 to deliver; left {}; {} already requeued; {} step(s) carried out",
                c.injected, c.recipients, c.finished, c.nothing_left, c.left, c.already, c.steps
            ));
        } else {
            self.line(&format!(
                "would inject {} message(s), {} recipient(s); would remove {} with nothing left to deliver; left {}; \
                 {} already requeued",
                c.injected, c.recipients, c.nothing_left, c.left, c.already
            ));
        }
        if c.left > 0 {
            self.line(&format!("{} message(s) left where they are, see above; exit 4", c.left));
        }
        if let Some((k, why)) = self.stop.take() {
            eprintln!("qfixq: {}", crate::output::escape_text(&why));
            self.line(&format!("stopped: {why}"));
            code = code.worst(k);
        }
        let _ = self.out.flush();
        code
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The envelope of a message of DIR: todo, else info with local and
/// remote. `Err` says why there is none usable.
fn envelope_of<'a>(root: &'a Dir, msg: &'a ScannedMessage) -> Result<Envelope<'a>, String> {
    let n = msg.number;
    if let Some(f) = msg.file(Part::Todo) {
        return match &msg.todo {
            Some(Ok(TodoEnvelope::Whole(t))) => Ok(Envelope {
                sender: &t.sender,
                lists: vec![Rcpts::Held(t.recipients.iter().map(Vec::as_slice).collect())],
                count: t.recipients.len() as u64,
            }),
            Some(Ok(l @ TodoEnvelope::Large(_))) => Ok(Envelope {
                sender: l.sender(),
                lists: vec![Rcpts::File { dir: root, path: f.rel_path(n) }],
                count: l.recipient_count(),
            }),
            Some(Err(e)) => Err(format!("todo: {e}")),
            None => Err("todo not read".into()),
        };
    }
    if msg.has(Part::Info) {
        let info = match &msg.info {
            Some(Ok(i)) => i,
            Some(Err(e)) => return Err(format!("info: {e}")),
            None => return Err("info not read".into()),
        };
        let mut lists = Vec::new();
        let mut count = 0;
        for (part, parsed) in [(Part::Local, &msg.local), (Part::Remote, &msg.remote)] {
            let Some(f) = msg.file(part) else { continue };
            match parsed {
                Some(Ok(ListEnvelope::Whole(r))) => {
                    let v: Vec<&[u8]> = r.list.iter().filter(|x| !x.done).map(|x| x.address.as_slice()).collect();
                    count += v.len() as u64;
                    lists.push(Rcpts::Held(v));
                }
                Some(Ok(l @ ListEnvelope::Large(_))) => {
                    count += l.pending();
                    lists.push(Rcpts::File { dir: root, path: f.rel_path(n) });
                }
                Some(Err(e)) => return Err(format!("{}: {e}", part.dir())),
                None => return Err(format!("{} not read", part.dir())),
            }
        }
        // No list at all: every recipient was delivered (qmail-send
        // removes a list once it is all done); count 0.
        return Ok(Envelope { sender: &info.sender, lists, count });
    }
    if msg.has(Part::Intd) {
        return Err("mess and intd only: qmail-queue never finished queueing it".into());
    }
    Err("a lone mess file".into())
}

/// The envelope of a lost+found item: todo, else info with local and
/// remote, else intd.
fn item_envelope(dir: &Dir) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
        match dir.read_file(OsStr::new(name), ITEM_ENVELOPE_CAP) {
            Ok(c) if c.truncated => Err(format!("{name} is larger than {ITEM_ENVELOPE_CAP} bytes")),
            Ok(c) => Ok(Some(c.data)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut why = Vec::new();
    if let Some(d) = read("todo")? {
        match Todo::parse(&d) {
            Ok(t) => return Ok((t.sender, t.recipients)),
            Err(e) => why.push(format!("todo: {e}")),
        }
    }
    if let Some(d) = read("info")? {
        match Info::parse(&d) {
            Ok(info) => {
                let mut rc = Vec::new();
                let mut any = false;
                for name in ["local", "remote"] {
                    if let Some(d) = read(name)? {
                        any = true;
                        match Recipients::parse_salvaging(&d) {
                            Ok(r) => rc.extend(r.list.into_iter().filter(|x| !x.done).map(|x| x.address)),
                            Err(e) => why.push(format!("{name}: {e}")),
                        }
                    }
                }
                if !rc.is_empty() {
                    return Ok((info.sender, rc));
                }
                if !any {
                    why.push("info without local or remote".into());
                } else {
                    why.push("no recipient left to deliver to".into());
                }
            }
            Err(e) => why.push(format!("info: {e}")),
        }
    }
    if let Some(d) = read("intd")? {
        match Todo::parse(&d) {
            Ok(t) => return Ok((t.sender, t.recipients)),
            Err(e) => why.push(format!("intd: {e}")),
        }
    }
    if why.is_empty() {
        why.push("neither todo, info nor intd".into());
    }
    Err(why.join("; "))
}

/// The items of lost+found named by `wanted` (all when empty), in order:
/// `(run, item)` names, or `(label, why)` for a name given that is no item.
type Item = Result<(std::ffi::OsString, std::ffi::OsString), (String, String)>;

fn list_items(lf: &Dir, wanted: &[String]) -> Result<Vec<Item>, String> {
    let is_item = |name: &[u8]| {
        let base = name.split(|&b| b == b'.').next().unwrap_or(name);
        parse_number(base).is_some()
    };
    let items_of = |run: &OsStr| -> Result<Vec<Item>, String> {
        let d = lf.open_dir(run).map_err(|e| e.to_string())?;
        let mut v: Vec<_> = d
            .entries()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|e| is_item(e.name.as_bytes()))
            .filter(|e| d.stat(&e.name).is_ok_and(|s| s.kind == FileKind::Directory))
            .map(|e| Ok((run.to_os_string(), e.name)))
            .collect();
        v.sort_by(|a, b| match (a, b) {
            (Ok(x), Ok(y)) => x.1.cmp(&y.1),
            _ => std::cmp::Ordering::Equal,
        });
        Ok(v)
    };
    let mut out = Vec::new();
    if wanted.is_empty() {
        let mut runs: Vec<_> = lf
            .entries()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n != OsStr::new(qcommon::salvaged::SALVAGED_DIR) && n != OsStr::new(MARKER_DIR))
            .filter(|n| lf.stat(n).is_ok_and(|s| s.kind == FileKind::Directory))
            .collect();
        runs.sort();
        for r in runs {
            out.extend(items_of(&r)?);
        }
        return Ok(out);
    }
    for w in wanted {
        let p = Path::new(w);
        let comps: Vec<&OsStr> = p.iter().collect();
        let bad = comps.iter().any(|c| *c == OsStr::new("..") || *c == OsStr::new(".") || *c == OsStr::new("/"));
        match comps.as_slice() {
            [run] if !bad => match lf.stat(run) {
                Ok(s) if s.kind == FileKind::Directory => out.extend(items_of(run)?),
                _ => out.push(Err((w.clone(), "no such run directory in lost+found".into()))),
            },
            [run, item] if !bad && is_item(item.as_bytes()) => match lf.open_dir(run).and_then(|d| d.stat(item)) {
                Ok(s) if s.kind == FileKind::Directory => out.push(Ok((run.to_os_string(), item.to_os_string()))),
                _ => out.push(Err((w.clone(), "no such item in lost+found".into()))),
            },
            _ => out.push(Err((w.clone(), "not RUN or RUN/N of lost+found".into()))),
        }
    }
    Ok(out)
}
