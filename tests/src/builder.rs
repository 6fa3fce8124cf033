//! The practice-queue builder: makes a healthy qmail queue, laid out and
//! numbered exactly as docs/queue-format.md says, filled with realistic mail in a
//! seeded mix of states.
//!
//! Every message is made the way qmail makes it: the `mess` file is created
//! under a temporary name in `pid/`, its inode number N is read with
//! `fstat`, it is hard-linked as `mess/<N mod split>/N` and the `pid/` name
//! is unlinked. A message still waiting for qmail-send (state S4) then gets
//! `intd/N` with its envelope and `todo/N` as a hard link to it; a
//! preprocessed message (S5) gets `info/B/N` (mtime = birth time),
//! `local/B/N` and/or `remote/B/N`, and maybe `bounce/N`, as qmail-send
//! would have left them.
//!
//! The contents (senders, recipients, states, birth times, message text) are
//! a pure function of the seed, the message's index and `BuildSpec::now`;
//! only the message numbers (inode numbers) differ between two builds. Two
//! threads build half the messages each. Nothing is fsynced: this is test
//! data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use qcommon::envelope::{Info, Recipient, Recipients, Todo, DOUBLE_BOUNCE};
use qcommon::queue::{bucket_of, Ids, LockFile, Owner, Part, DEFAULT_SPLIT, OTHER_DIRS, QUEUE_DIR_SPEC};

use crate::content::{self, Invoker, Kind, MessageText};
use crate::rng::Rng;

/// The fractions of message states in a practice queue. They need not add
/// up to 1: each is taken relative to their sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateMix {
    /// S4: `mess` + `intd` + `todo` (one inode), not yet preprocessed.
    pub todo_stage: f64,
    /// S5 with only local recipients, none delivered yet.
    pub local_only: f64,
    /// S5 with only remote recipients, none delivered yet.
    pub remote_only: f64,
    /// S5 with both local and remote recipients.
    pub both: f64,
    /// S5 where some recipients are already delivered (`D` records).
    pub partly_delivered: f64,
    /// S5 with failure reports waiting in `bounce/N`.
    pub pending_bounce: f64,
}

impl Default for StateMix {
    /// 10% todo-stage, 20% local only, 40% remote only, 10% both,
    /// 12% partly delivered, 8% with a pending bounce.
    fn default() -> Self {
        StateMix {
            todo_stage: 0.10,
            local_only: 0.20,
            remote_only: 0.40,
            both: 0.10,
            partly_delivered: 0.12,
            pending_bounce: 0.08,
        }
    }
}

impl StateMix {
    fn weights(&self) -> [f64; 6] {
        [self.todo_stage, self.local_only, self.remote_only, self.both, self.partly_delivered, self.pending_bounce]
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSpec {
    /// Number of messages.
    pub messages: usize,
    /// `conf-split`: buckets `0..split` in the split directories.
    pub split: u32,
    /// The big-todo layout: `todo/` and `intd/` split like `mess/`.
    pub big_todo: bool,
    /// Seed: the same seed (and `now`) gives the same contents and states.
    pub seed: u64,
    /// Fractions of message states.
    pub mix: StateMix,
    /// Fraction of null-sender messages (bounces).
    pub null_sender: f64,
    /// Fraction of double bounces (sender `#@[]`).
    pub double_bounce: f64,
    /// Fraction of large messages (100–300 KB).
    pub large: f64,
    /// When set and running as root, every directory and file gets qmail's
    /// owners (the tables of docs/queue-format.md); otherwise everything belongs to the
    /// caller. Modes follow the table either way.
    pub ids: Option<Ids>,
    /// Reference time (seconds since the epoch): birth times lie in the
    /// week before it, a few older than `queuelifetime` (604800 s).
    pub now: i64,
    /// Keep a record of every message in [`BuiltQueue::messages`] (tests);
    /// off for huge benchmark queues, to keep memory small.
    pub keep_manifest: bool,
}

impl Default for BuildSpec {
    /// 100 messages, split 23, flat todo, seed 1, 5% null sender, 1% double
    /// bounce, 0.1% large, no chown, `now` = the current time, manifest kept.
    fn default() -> Self {
        BuildSpec {
            messages: 100,
            split: DEFAULT_SPLIT,
            big_todo: false,
            seed: 1,
            mix: StateMix::default(),
            null_sender: 0.05,
            double_bounce: 0.01,
            large: 0.001,
            ids: None,
            now: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
            keep_manifest: true,
        }
    }
}

/// Whether a recipient is delivered locally or remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Where {
    /// In `local/B/N`.
    Local,
    /// In `remote/B/N`.
    Remote,
}

/// The state a message was built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltState {
    /// S4: `mess`, `intd` and `todo` (intd and todo one inode).
    TodoStage,
    /// S5: `mess`, `info`, and `local`/`remote`/`bounce` as needed.
    Preprocessed,
}

/// The record of one built message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltMessage {
    /// Its number (the inode number of its mess file).
    pub number: u64,
    /// S4 or S5.
    pub state: BuiltState,
    /// Envelope sender (empty: null sender).
    pub sender: Vec<u8>,
    /// Recipients as they are on disk: for S4 every `T` record of the todo
    /// (with where qmail-send will deliver it, not done); for S5 the records
    /// of `local` and `remote` (a list whose recipients were all done is
    /// not on disk, as qmail-send removes such a file).
    pub recipients: Vec<(Vec<u8>, Where, bool)>,
    /// Size of the mess file.
    pub mess_len: u64,
    /// Birth time: the mtime of info (and of mess).
    pub birth: i64,
    /// Whether `bounce/N` exists.
    pub bounce: bool,
}

/// What a queue holds, as qstat-like tools would count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular files in the mess buckets.
    pub messages: u64,
    /// Regular files in todo.
    pub todo: u64,
    /// Messages with the null sender (from todo if any, else info).
    pub null_sender: u64,
    /// Messages with the sender `#@[]`.
    pub double_bounce: u64,
    /// Files in `bounce/`.
    pub bounce_files: u64,
    /// `T` records in the local files.
    pub local_pending: u64,
    /// `T` records in the remote files.
    pub remote_pending: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.messages += o.messages;
        self.todo += o.todo;
        self.null_sender += o.null_sender;
        self.double_bounce += o.double_bounce;
        self.bounce_files += o.bounce_files;
        self.local_pending += o.local_pending;
        self.remote_pending += o.remote_pending;
    }
}

/// A built queue.
#[derive(Debug, Clone)]
pub struct BuiltQueue {
    /// The queue directory.
    pub queue: PathBuf,
    /// Its split.
    pub spec_split: u32,
    /// Whether todo and intd are split.
    pub big_todo: bool,
    /// Every message, in the order of its index (empty without
    /// `keep_manifest`).
    pub messages: Vec<BuiltMessage>,
    /// What was built.
    pub counts: Counts,
    /// The ids everything was chowned to (None when not chowned).
    pub ids: Option<Ids>,
}

/// The path of message `n`'s file `part` in a queue.
pub fn message_path(queue: &Path, part: Part, n: u64, split: u32, big_todo: bool) -> PathBuf {
    let mut p = queue.join(part.dir());
    if part.is_split(big_todo) {
        p.push(bucket_of(n, split).to_string());
    }
    p.push(n.to_string());
    p
}

/// Seconds since the epoch as a `SystemTime`.
pub(crate) fn system_time(t: i64) -> SystemTime {
    if t >= 0 {
        UNIX_EPOCH + Duration::from_secs(t as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.unsigned_abs())
    }
}

/// The process's umask, read from /proc without changing it (assume the
/// strictest when unknown, which only costs explicit chmods).
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o077)
}

/// Makes files and directories in one queue with the right modes and, when
/// asked, owners. Shared by the builder and the damage catalogue.
#[derive(Debug, Clone)]
pub(crate) struct Maker {
    pub(crate) queue: PathBuf,
    pub(crate) split: u32,
    pub(crate) big_todo: bool,
    /// Set only when everything is to be chowned.
    pub(crate) ids: Option<Ids>,
    /// The group mess/intd/todo files get (qmail-queue keeps its caller's).
    pub(crate) egid: u32,
    umask: u32,
}

impl Maker {
    pub(crate) fn new(queue: &Path, split: u32, big_todo: bool, ids: Option<Ids>) -> Maker {
        Maker {
            queue: queue.to_path_buf(),
            split,
            big_todo,
            ids: ids.filter(|_| nix::unistd::geteuid().is_root()),
            egid: nix::unistd::getegid().as_raw(),
            umask: current_umask(),
        }
    }

    pub(crate) fn path(&self, part: Part, n: u64) -> PathBuf {
        message_path(&self.queue, part, n, self.split, self.big_todo)
    }

    /// Owner and group of a message file of `part`, when chowning.
    pub(crate) fn file_owner(&self, part: Part) -> Option<(u32, u32)> {
        self.ids.map(|ids| {
            let gid = if part.group_is_qmail() { ids.qmail_gid } else { self.egid };
            (ids.uid(part.file_owner()), gid)
        })
    }

    /// Owner and group (always qmail) of a directory or lock file.
    pub(crate) fn owner(&self, o: Owner) -> Option<(u32, u32)> {
        self.ids.map(|ids| (ids.uid(o), ids.qmail_gid))
    }

    /// Creates a new file (never replacing one), writes `data`, sets owner,
    /// mode and (when given) access and modification time.
    pub(crate) fn write_file(
        &self,
        path: &Path,
        data: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
        time: Option<i64>,
    ) -> io::Result<File> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
        f.write_all(data)?;
        self.finish(&f, mode, owner, time)?;
        Ok(f)
    }

    fn finish(&self, f: &File, mode: u32, owner: Option<(u32, u32)>, time: Option<i64>) -> io::Result<()> {
        if let Some((u, g)) = owner {
            std::os::unix::fs::fchown(f, Some(u), Some(g))?;
        }
        // chown clears set-id bits, and the umask may have cleared others.
        if mode & self.umask != 0 || mode & 0o7000 != 0 {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        if let Some(t) = time {
            let st = system_time(t);
            f.set_times(fs::FileTimes::new().set_accessed(st).set_modified(st))?;
        }
        Ok(())
    }

    /// Writes message `n`'s file `part` with its mode and owner.
    pub(crate) fn write_part(&self, part: Part, n: u64, data: &[u8], time: Option<i64>) -> io::Result<()> {
        let path = self.path(part, n);
        self.write_file(&path, data, part.file_perm(), self.file_owner(part), time)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Makes a mess file the way qmail-queue does: create `pid/<pid_name>`,
    /// fstat it for its inode number N, link it as `mess/<N mod split>/N`,
    /// unlink the pid name, then write the content. Returns N.
    ///
    /// With `check_free`, a number for which any file of any part already
    /// exists (possible after a copy to another filesystem, where names no
    /// longer match inodes) is not used: that pid file is held open, so its
    /// inode cannot come back, and another one is made; the held ones are
    /// unlinked at the end.
    pub(crate) fn new_mess(
        &self,
        pid_name: &str,
        content: &[u8],
        time: Option<i64>,
        check_free: bool,
    ) -> io::Result<u64> {
        let ctx = |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        let mut held: Vec<(PathBuf, File)> = Vec::new();
        let made = (|| loop {
            let pid_path = if held.is_empty() {
                self.queue.join("pid").join(pid_name)
            } else {
                self.queue.join("pid").join(format!("{pid_name}.{}", held.len()))
            };
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(Part::Mess.file_perm())
                .open(&pid_path)
                .map_err(|e| ctx(e, &pid_path))?;
            let n = f.metadata()?.ino();
            if check_free
                && held.len() < 1000
                && Part::ALL.iter().any(|&p| fs::symlink_metadata(self.path(p, n)).is_ok())
            {
                held.push((pid_path, f));
                continue;
            }
            let mess = self.path(Part::Mess, n);
            fs::hard_link(&pid_path, &mess).map_err(|e| ctx(e, &mess))?;
            fs::remove_file(&pid_path).map_err(|e| ctx(e, &pid_path))?;
            return Ok::<_, io::Error>((n, f));
        })();
        for (p, _) in held {
            let _ = fs::remove_file(p);
        }
        let (n, mut f) = made?;
        f.write_all(content)?;
        self.finish(&f, Part::Mess.file_perm(), self.file_owner(Part::Mess), time)?;
        Ok(n)
    }

    /// Makes a directory with owner and mode.
    pub(crate) fn mkdir(&self, path: &Path, owner: Owner, mode: u32) -> Result<()> {
        fs::create_dir(path).with_context(|| format!("mkdir {}", path.display()))?;
        self.set_owner_mode(path, owner, mode)
    }

    fn set_owner_mode(&self, path: &Path, owner: Owner, mode: u32) -> Result<()> {
        if let Some((u, g)) = self.owner(owner) {
            std::os::unix::fs::lchown(path, Some(u), Some(g)).with_context(|| format!("chown {}", path.display()))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", path.display()))
    }

    /// Makes `lock/<which>` as qmail's install does.
    pub(crate) fn make_lock_file(&self, which: LockFile) -> Result<()> {
        let path = self.queue.join("lock").join(which.name());
        let (owner, mode) = which.spec();
        match which {
            LockFile::Sendmutex => {
                self.write_file(&path, b"", mode, self.owner(owner), None)?;
            }
            LockFile::Tcpto => {
                self.write_file(&path, &[0u8; LockFile::TCPTO_SIZE as usize], mode, self.owner(owner), None)?;
            }
            LockFile::Trigger => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(mode))
                    .with_context(|| format!("mkfifo {}", path.display()))?;
                self.set_owner_mode(&path, owner, mode)?;
            }
        }
        Ok(())
    }

    /// Makes the whole empty queue: directories, buckets, lock files.
    fn make_structure(&self) -> Result<()> {
        let (o, m) = QUEUE_DIR_SPEC;
        self.mkdir(&self.queue, o, m)?;
        for (name, o, m) in OTHER_DIRS {
            self.mkdir(&self.queue.join(name), o, m)?;
        }
        for part in Part::ALL {
            let (o, m) = part.dir_spec();
            let dir = self.queue.join(part.dir());
            self.mkdir(&dir, o, m)?;
            if part.is_split(self.big_todo) {
                for b in 0..self.split {
                    self.mkdir(&dir.join(b.to_string()), o, m)?;
                }
            }
        }
        for lf in LockFile::ALL {
            self.make_lock_file(lf)?;
        }
        Ok(())
    }
}

/// The stage a message is planned in (finer than [`BuiltState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Todo,
    LocalOnly,
    RemoteOnly,
    Both,
    Partly,
    PendingBounce,
}

const STAGES: [Stage; 6] =
    [Stage::Todo, Stage::LocalOnly, Stage::RemoteOnly, Stage::Both, Stage::Partly, Stage::PendingBounce];

/// Everything decided about one message before its files are written.
#[derive(Debug)]
struct Plan {
    stage: Stage,
    kind: Kind,
    invoker: Invoker,
    qmail_pid: u32,
    sender: Vec<u8>,
    /// All envelope recipients with where they go and whether done.
    rcpts: Vec<(Vec<u8>, Where, bool)>,
    birth: i64,
    large: bool,
}

/// The usual number of recipients: mostly one, sometimes a handful, rarely
/// a crowd.
fn recipient_count(rng: &mut Rng) -> usize {
    let x = rng.unit();
    if x < 0.70 {
        1
    } else if x < 0.92 {
        rng.range(2, 4) as usize
    } else {
        rng.range(5, 20) as usize
    }
}

fn address(rng: &mut Rng, w: Where) -> Vec<u8> {
    let mut a = Vec::with_capacity(40);
    match w {
        Where::Local => content::local_address(&mut a, rng),
        Where::Remote => content::remote_address(&mut a, rng),
    }
    a
}

/// Decides a message: a pure function of the spec and the stream.
fn plan_message(spec: &BuildSpec, rng: &mut Rng) -> Plan {
    let stage = STAGES[rng.weighted(&spec.mix.weights())];
    let x = rng.unit();
    let kind = if x < spec.double_bounce {
        Kind::DoubleBounce
    } else if x < spec.double_bounce + spec.null_sender {
        Kind::Bounce
    } else {
        Kind::Normal
    };
    let qmail_pid = rng.range(300, 99_999) as u32;
    let mut sender = Vec::with_capacity(48);
    let invoker = match kind {
        Kind::Normal => content::normal_sender(&mut sender, rng),
        Kind::Bounce => Invoker::Bounce,
        Kind::DoubleBounce => {
            sender.extend_from_slice(DOUBLE_BOUNCE);
            Invoker::Bounce
        }
    };
    // A bounce has one recipient; a double bounce goes to the postmaster.
    let stage = match (kind, stage) {
        (Kind::Normal, s) | (_, s @ Stage::Todo) => s,
        (Kind::DoubleBounce, _) => Stage::LocalOnly,
        (Kind::Bounce, s @ (Stage::LocalOnly | Stage::PendingBounce)) => s,
        (Kind::Bounce, _) => Stage::RemoteOnly,
    };
    let local_or = |rng: &mut Rng, p: f64| if rng.chance(p) { Where::Local } else { Where::Remote };
    let mut wheres: Vec<Where> = match (kind, stage) {
        (Kind::DoubleBounce, _) => vec![Where::Local],
        (Kind::Bounce, Stage::LocalOnly) => vec![Where::Local],
        (Kind::Bounce, Stage::Todo) => vec![local_or(rng, 0.3)],
        (Kind::Bounce, _) => vec![Where::Remote],
        (_, Stage::LocalOnly) => vec![Where::Local; recipient_count(rng)],
        (_, Stage::RemoteOnly) => vec![Where::Remote; recipient_count(rng)],
        (_, Stage::Both) => {
            let n = recipient_count(rng).max(2);
            let mut v = vec![Where::Local, Where::Remote];
            v.extend((2..n).map(|_| local_or(rng, 0.3)));
            v
        }
        (_, Stage::Partly) => {
            let n = rng.range(2, 6) as usize;
            let mut v: Vec<Where> = (0..n).map(|_| local_or(rng, 0.2)).collect();
            if n == 2 && v[0] != v[1] {
                v = vec![Where::Remote; 2];
            }
            v
        }
        (_, Stage::Todo | Stage::PendingBounce) => {
            let n = recipient_count(rng);
            (0..n).map(|_| local_or(rng, 0.3)).collect()
        }
    };
    if kind == Kind::DoubleBounce {
        wheres.truncate(1);
    }
    let mut rcpts: Vec<(Vec<u8>, Where, bool)> = wheres
        .iter()
        .map(|&w| {
            let a = if kind == Kind::DoubleBounce {
                format!("postmaster@{}", content::LOCAL_DOMAIN).into_bytes()
            } else {
                address(rng, w)
            };
            (a, w, false)
        })
        .collect();
    match stage {
        Stage::Partly => {
            // In each list of two or more, mark some (never all) done.
            for w in [Where::Local, Where::Remote] {
                let idx: Vec<usize> = (0..rcpts.len()).filter(|&i| rcpts[i].1 == w).collect();
                if idx.len() >= 2 {
                    let k = rng.range(1, idx.len() as u64 - 1) as usize;
                    for i in rng.choose(&idx, k) {
                        rcpts[i].2 = true;
                    }
                }
            }
        }
        Stage::PendingBounce => {
            let n = rcpts.len();
            if n == 1 || rng.chance(0.25) {
                rcpts.iter_mut().for_each(|r| r.2 = true);
            } else {
                let idx: Vec<usize> = (0..n).collect();
                let k = rng.range(1, n as u64 - 1) as usize;
                for i in rng.choose(&idx, k) {
                    rcpts[i].2 = true;
                }
            }
        }
        _ => {}
    }
    let birth = if stage == Stage::Todo {
        spec.now - rng.range(0, 3 * 3600) as i64
    } else if rng.chance(0.03) {
        spec.now - 604_800 - rng.range(1, 3 * 86_400) as i64
    } else {
        spec.now - rng.range(60, 604_799) as i64
    };
    let large = kind == Kind::Normal && rng.chance(spec.large);
    Plan { stage, kind, invoker, qmail_pid, sender, rcpts, birth, large }
}

/// Per-thread buffers reused from message to message.
#[derive(Debug, Default)]
struct Buffers {
    content: Vec<u8>,
    bounce: Vec<u8>,
}

/// Writes one planned message's files; returns its record.
fn write_planned(
    maker: &Maker,
    plan: Plan,
    rng: &mut Rng,
    pid_name: &str,
    qmails_uid: u32,
    bufs: &mut Buffers,
    counts: &mut Counts,
) -> Result<BuiltMessage> {
    let addrs: Vec<Vec<u8>> = plan.rcpts.iter().map(|r| r.0.clone()).collect();
    let text = MessageText {
        kind: plan.kind,
        qmail_pid: plan.qmail_pid,
        invoker: plan.invoker,
        sender: &plan.sender,
        recipients: &addrs,
        birth: plan.birth,
        large: plan.large,
    };
    content::write_message(&mut bufs.content, rng, &text);
    let n = maker.new_mess(pid_name, &bufs.content, Some(plan.birth), false)?;
    counts.messages += 1;
    if plan.sender.is_empty() {
        counts.null_sender += 1;
    } else if plan.sender == DOUBLE_BOUNCE {
        counts.double_bounce += 1;
    }
    let mut bounce = false;
    let (state, recipients) = if plan.stage == Stage::Todo {
        let todo = Todo {
            uid: Some(plan.invoker.uid(qmails_uid).to_string().into_bytes()),
            pid: Some(plan.qmail_pid.to_string().into_bytes()),
            sender: plan.sender.clone(),
            recipients: addrs,
        };
        maker.write_part(Part::Intd, n, &todo.to_bytes(), Some(plan.birth))?;
        let (intd, todo) = (maker.path(Part::Intd, n), maker.path(Part::Todo, n));
        fs::hard_link(&intd, &todo).with_context(|| format!("link {}", todo.display()))?;
        counts.todo += 1;
        (BuiltState::TodoStage, plan.rcpts)
    } else {
        let info = Info { sender: plan.sender.clone() };
        maker.write_part(Part::Info, n, &info.to_bytes(), Some(plan.birth))?;
        let mut on_disk = Vec::with_capacity(plan.rcpts.len());
        for (w, part) in [(Where::Local, Part::Local), (Where::Remote, Part::Remote)] {
            let list: Vec<Recipient> =
                plan.rcpts.iter().filter(|r| r.1 == w).map(|r| Recipient { address: r.0.clone(), done: r.2 }).collect();
            // qmail-send removes a list once every recipient in it is done.
            if list.is_empty() || list.iter().all(|r| r.done) {
                continue;
            }
            let pending = list.iter().filter(|r| !r.done).count() as u64;
            match w {
                Where::Local => counts.local_pending += pending,
                Where::Remote => counts.remote_pending += pending,
            }
            let rs = Recipients { list, dropped: 0 };
            maker.write_part(part, n, &rs.to_bytes(), None)?;
            on_disk.extend(plan.rcpts.iter().filter(|r| r.1 == w).cloned());
        }
        if plan.stage == Stage::PendingBounce {
            bufs.bounce.clear();
            for r in plan.rcpts.iter().filter(|r| r.2) {
                content::write_bounce_report(&mut bufs.bounce, rng, &r.0);
            }
            maker.write_part(Part::Bounce, n, &bufs.bounce, None)?;
            counts.bounce_files += 1;
            bounce = true;
        }
        (BuiltState::Preprocessed, on_disk)
    };
    Ok(BuiltMessage {
        number: n,
        state,
        sender: plan.sender,
        recipients,
        mess_len: bufs.content.len() as u64,
        birth: plan.birth,
        bounce,
    })
}

/// Builds messages `range` (by index) into the queue.
fn build_range(
    maker: &Maker,
    spec: &BuildSpec,
    range: std::ops::Range<u64>,
    pid_prefix: &str,
) -> Result<(Vec<BuiltMessage>, Counts)> {
    let mut bufs = Buffers { content: Vec::with_capacity(64 * 1024), bounce: Vec::with_capacity(1024) };
    let mut counts = Counts::default();
    let mut manifest = Vec::with_capacity(if spec.keep_manifest { range.clone().count() } else { 0 });
    let qmails_uid = spec.ids.map_or(7796, |i| i.qmails);
    let mut pid_name = String::with_capacity(48);
    for i in range {
        let mut rng = Rng::for_item(spec.seed, i);
        let plan = plan_message(spec, &mut rng);
        pid_name.clear();
        // qmail-queue's own pattern is pid/<pid>.<starttime>.<seq>.
        use std::fmt::Write as _;
        let _ = write!(pid_name, "{pid_prefix}.{}", i + 1);
        let rec = write_planned(maker, plan, &mut rng, &pid_name, qmails_uid, &mut bufs, &mut counts)?;
        if spec.keep_manifest {
            manifest.push(rec);
        }
    }
    Ok((manifest, counts))
}

/// Builds a practice queue at `queue_dir` (which must not exist, or be an
/// empty directory). See the module documentation.
pub fn build_queue(queue_dir: &Path, spec: &BuildSpec) -> Result<BuiltQueue> {
    if spec.split == 0 {
        bail!("split must be at least 1");
    }
    let fractions = [spec.null_sender, spec.double_bounce, spec.large];
    if fractions.iter().any(|f| !(0.0..=1.0).contains(f)) || spec.null_sender + spec.double_bounce > 1.0 {
        bail!("fractions must lie in 0..=1 (null sender + double bounce at most 1)");
    }
    let w = spec.mix.weights();
    if w.iter().any(|f| *f < 0.0 || !f.is_finite()) || w.iter().sum::<f64>() <= 0.0 {
        bail!("the state mix needs non-negative fractions with a positive sum");
    }
    match fs::symlink_metadata(queue_dir) {
        Ok(m) if m.is_dir() && fs::read_dir(queue_dir)?.next().is_none() => fs::remove_dir(queue_dir)?,
        Ok(_) => bail!("{} already exists", queue_dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("stat {}", queue_dir.display())),
    }
    if let Some(parent) = queue_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("mkdir -p {}", parent.display()))?;
    }
    let maker = Maker::new(queue_dir, spec.split, spec.big_todo, spec.ids);
    maker.make_structure()?;

    let total = spec.messages as u64;
    let threads: u64 = if total >= 64 { 2 } else { 1 };
    let start = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let pid_prefix = format!("{}.{start}", std::process::id());
    let results: Vec<Result<(Vec<BuiltMessage>, Counts)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = total * t / threads..total * (t + 1) / threads;
                let (maker, pid_prefix) = (&maker, &pid_prefix);
                s.spawn(move || build_range(maker, spec, range, pid_prefix))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("builder thread panicked"))))
            .collect()
    });
    let mut messages = Vec::with_capacity(if spec.keep_manifest { spec.messages } else { 0 });
    let mut counts = Counts::default();
    for r in results {
        let (m, c) = r?;
        messages.extend(m);
        counts.add(&c);
    }
    Ok(BuiltQueue {
        queue: queue_dir.to_path_buf(),
        spec_split: spec.split,
        big_todo: spec.big_todo,
        messages,
        counts,
        ids: maker.ids,
    })
}

/// Builds a practice queue at `dir` for the cross-tool tests: `messages`
/// messages of split `split` from `seed`, a share `null_sender` of bounces
/// and no double bounce nor large message, owned by qmail's ids when we
/// run as root. Panics when the build fails.
pub fn build_practice(dir: &Path, messages: usize, split: u32, seed: u64, null_sender: f64) -> BuiltQueue {
    let spec = BuildSpec {
        messages,
        split,
        seed,
        null_sender,
        double_bounce: 0.0,
        large: 0.0,
        ids: if crate::root::is_root() { Some(crate::ids::IDS) } else { None },
        ..BuildSpec::default()
    };
    build_queue(dir, &spec).unwrap_or_else(|e| panic!("build queue at {}: {e:#}", dir.display()))
}
