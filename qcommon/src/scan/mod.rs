//! The streaming scanner: the queue as messages. For each message number
//! it finds which of mess, intd, todo, info, local, remote and bounce exist
//! (with a no-follow stat, and the parsed envelopes when asked), and it
//! reports every stray: a non-numeric name, a file that is not a regular
//! file, a file in the wrong bucket, an extra bucket, an unknown top-level
//! entry, a `pid/` leftover.
//!
//! It works bucket by bucket (memory holds one bucket's directory entries
//! and a bounded window of finished messages, never the whole queue),
//! handles flat and big-todo layouts, tolerates files vanishing mid-scan,
//! and stats and reads with several threads so that, on a cold cache, more
//! reads are in flight than there are cores. Messages are delivered in
//! order of bucket, then number, whatever the number of threads.
//!
//! Its rooms: this file the types and the entry ([`scan`]); `first_pass`
//! the top of the queue and the survey of every bucket; `bucket` the
//! listing of one bucket into chunks of messages; `examine` the stat and
//! the envelopes of one message; `pool` the ordered, memory-bounded pool
//! of threads that runs them.
//!
//! A first pass lists every bucket without stat to find files that sit in
//! another bucket than their number says, so a message whose files are
//! spread over two buckets is still seen as one message. It also reports
//! every stray, so all strays come before the first message: a tool knows
//! them (its own temporary names left by a crash, say) when it judges the
//! messages.
//!
//! Each directory is listed once. The first pass keeps what it listed of
//! a bucket's own message files (and the bucket, open) for the second
//! pass, up to [`KEPT_FILES`] files in all; only the buckets beyond that
//! (a queue of more than some 40,000 messages) are listed a second time,
//! which is what keeps memory from growing with the queue. Listing again
//! adds nothing to correctness: no listing is a snapshot of a live queue
//! (a file may come or go right after it, whichever pass listed it), the
//! examination takes a file gone since the listing as gone, and the parts
//! are still listed in qmail's order of creation ([`Part::ALL`]).

mod bucket;
mod examine;
mod first_pass;
mod pool;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use self::bucket::{Chunk, Listed, Setup};
use self::examine::Worker;
use self::first_pass::{Keep, Survey};
use crate::envelope::{EnvelopeError, Info, ListEnvelope, TodoEnvelope, WHOLE_CAP};
use crate::error::{Error, Result};
use crate::queue::Part;
use crate::safe_fs::{Dir, Stat};

/// Largest info file read: `F`, 1003 address bytes, NUL, with room to spare.
pub const INFO_CAP: usize = 2048;
/// Largest todo/intd/local/remote held parsed in memory: a larger one (a
/// flood can have any number of recipients) is checked by a streaming
/// pass with a fixed buffer, whatever its size.
pub const ENVELOPE_CAP: usize = WHOLE_CAP;

/// What the scan does per message.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Most threads that stat and read ([`DEFAULT_THREADS`] keeps a cold
    /// disk busy; 1 for a single-threaded baseline). They start as the
    /// work needs them: one per core while the work is bound by the
    /// processor, more once reads are seen waiting for the disk.
    pub threads: usize,
    /// Stat every message file (owners, modes, link counts, sizes, times).
    pub stat: bool,
    /// Read and parse todo, intd, info, local and remote.
    pub read_envelopes: bool,
    /// Messages per unit of work.
    pub chunk: usize,
    /// How far each message is examined, by number (`None`: as `stat` and
    /// `read_envelopes` say): a verifying pass lists the messages that
    /// the first pass judged healthy and the repair left alone, and only
    /// stats those whose names, owners or modes the repair changed.
    pub depth: Option<DepthOf>,
}

/// How far the scan went with one message ([`ScanOptions::depth`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// As the options say (stat, read).
    #[default]
    Full,
    /// Stat only: its envelopes were not read.
    Stated,
    /// Its mess file stated, its other files as the listing found them
    /// (a message a repair only renumbered: the mess stat tells that the
    /// name is the inode, the listing where the other names went).
    MessStated,
    /// Listed only: its files are the names the listing found, without
    /// stat or envelopes.
    Listed,
}

/// How far to examine each message number ([`ScanOptions::depth`]).
#[derive(Clone)]
pub struct DepthOf(pub Arc<dyn Fn(u64) -> Depth + Send + Sync>);

impl std::fmt::Debug for DepthOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DepthOf(..)")
    }
}

/// Threads the scan uses by default. On a cold cache every thread is a
/// read in flight: measured on a 100,000-message queue on a 2-core VM
/// right after dropping the page cache, 1 thread 10.2 s, 8 threads 4.0 s,
/// 16 threads 3.4 s, 32 threads 3.4 s.
pub const DEFAULT_THREADS: usize = 16;

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { threads: DEFAULT_THREADS, stat: true, read_envelopes: true, chunk: 128, depth: None }
    }
}

/// Where one file of a message was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Which file of the message.
    pub part: Part,
    /// The bucket directory it sits in; `None` when it sits directly in
    /// the part's directory (right for unsplit todo/intd/bounce, wrong
    /// for a split directory).
    pub bucket: Option<u32>,
    /// `d_ino` from the listing.
    pub ino: u64,
    /// The no-follow stat, when the scan stats.
    pub stat: Option<Stat>,
}

impl Found {
    /// The path relative to the queue root, for message number `n`.
    pub fn rel_path(&self, n: u64) -> PathBuf {
        let mut p = PathBuf::from(self.part.dir());
        if let Some(b) = self.bucket {
            p.push(b.to_string());
        }
        p.push(n.to_string());
        p
    }

    /// The inode: from the stat when there is one, else `d_ino`.
    pub fn inode(&self) -> u64 {
        self.stat.map_or(self.ino, |s| s.ino)
    }
}

/// Why an envelope could not be used.
#[derive(Debug)]
pub enum ReadProblem {
    /// It could not be read (reported with path and errno).
    Io(Error),
    /// It was read but is not a valid envelope.
    Bad(EnvelopeError),
}

impl std::fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadProblem::Io(e) => write!(f, "{e}"),
            ReadProblem::Bad(e) => write!(f, "{e}"),
        }
    }
}

/// A parsed envelope file, or why not.
pub type Parsed<T> = std::result::Result<T, ReadProblem>;

/// One message as the scan saw it.
#[derive(Debug, Default)]
pub struct ScannedMessage {
    /// The number (the name of its files).
    pub number: u64,
    /// Its files, indexed by [`Part::index`]: the one in the right place
    /// when there are several.
    pub files: [Option<Found>; 7],
    /// Further copies of a part found elsewhere (e.g. both in the right
    /// and in a wrong bucket).
    pub extra: Vec<Found>,
    /// Parsed todo (when read).
    pub todo: Option<Parsed<TodoEnvelope>>,
    /// Parsed intd, only when it is a separate file from todo or there is
    /// no todo (when read).
    pub intd: Option<Parsed<TodoEnvelope>>,
    /// Parsed info (when read).
    pub info: Option<Parsed<Info>>,
    /// Parsed local, salvaging a partial last record (when read).
    pub local: Option<Parsed<ListEnvelope>>,
    /// Parsed remote, salvaging a partial last record (when read).
    pub remote: Option<Parsed<ListEnvelope>>,
    /// Errors met while stating or reading this message's files: the
    /// message must be left as it is.
    pub io_errors: Vec<Error>,
    /// How far the scan examined it ([`ScanOptions::depth`]).
    pub depth: Depth,
}

impl ScannedMessage {
    /// The file of `part`, if any.
    pub fn file(&self, part: Part) -> Option<&Found> {
        self.files[part.index()].as_ref()
    }

    /// Whether `part` exists.
    pub fn has(&self, part: Part) -> bool {
        self.files[part.index()].is_some()
    }

    /// Every file found, the right ones first.
    pub fn all_files(&self) -> impl Iterator<Item = &Found> {
        self.files.iter().flatten().chain(self.extra.iter())
    }
}

/// Why an entry is a stray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrayWhy {
    /// A name that is not a message number, where a message file belongs.
    NotNumeric,
    /// A numeric name that is not a regular file.
    NotRegular,
    /// A numeric bucket at or beyond the split.
    ExtraBucket(u64),
    /// Something in a split directory that is not a bucket or a message file.
    NotABucket,
    /// An entry at the top of the queue that qmail does not have.
    UnknownTopLevel,
    /// A queue directory (mess, todo, ...) that is not a directory.
    NotADirectory,
    /// A file in `pid/`.
    PidLeftover,
}

impl StrayWhy {
    /// Words for reports.
    pub fn describe(self) -> String {
        match self {
            StrayWhy::NotNumeric => "name is not a message number".into(),
            StrayWhy::NotRegular => "not a regular file".into(),
            StrayWhy::ExtraBucket(b) => format!("extra bucket {b} (beyond the split)"),
            StrayWhy::NotABucket => "not a bucket".into(),
            StrayWhy::UnknownTopLevel => "unknown entry in the queue".into(),
            StrayWhy::NotADirectory => "queue directory is not a directory".into(),
            StrayWhy::PidLeftover => "leftover in pid/".into(),
        }
    }
}

/// An entry that is not a message file in its place.
#[derive(Debug, Clone)]
pub struct Stray {
    /// Path relative to the queue root.
    pub path: PathBuf,
    /// The directory of the queue it is in, when it is a part's.
    pub part: Option<Part>,
    /// The no-follow stat (None when it vanished).
    pub stat: Option<Stat>,
    /// Why.
    pub why: StrayWhy,
}

/// What the scan delivers, in order.
#[derive(Debug)]
pub enum ScanEvent {
    /// A message.
    Message(Box<ScannedMessage>),
    /// A stray entry.
    Stray(Stray),
    /// An error that stopped part of the scan (a directory that cannot be
    /// listed): the scan went on with the rest.
    Error(Error),
}

/// Totals of a scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    /// Messages delivered.
    pub messages: u64,
    /// Strays delivered.
    pub strays: u64,
    /// Errors delivered.
    pub errors: u64,
    /// Buckets scanned.
    pub buckets: u32,
}

/// What the scan needs to know of the layout: the queue's shape.
pub use crate::queue::QueueShape as ScanLayout;

/// Buckets listed ahead of the one being delivered.
const LOOKAHEAD: u32 = 2;

/// How many chunks of a bucket may be done ahead of the consumer.
const WINDOW: usize = 16;

/// Message files the survey may keep for the second pass (24 bytes each:
/// 3 MB), so that a queue of up to about 40,000 messages is listed once.
const KEPT_FILES: usize = 1 << 17;

/// Open buckets the survey may keep for the second pass, at most.
const KEPT_BUCKETS: usize = 4096;

/// Scans the queue at `root`, calling `sink` for each event in order.
/// Fails when the queue root itself cannot be listed, and with
/// [`Error::Interrupted`] when a stop was asked for ([`crate::interrupt`]):
/// it looks between chunks of messages and stops its threads.
pub fn scan(
    root: &Dir,
    layout: ScanLayout,
    opts: &ScanOptions,
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<ScanSummary> {
    scan_counted(root, layout, opts, &mut |_| {}, sink)
}

/// As [`scan`], and tells `listed` the number of mess files the first
/// pass listed, before the first message: the number of messages to come,
/// for a progress line (messages without a mess file come on top).
pub fn scan_counted(
    root: &Dir,
    layout: ScanLayout,
    opts: &ScanOptions,
    listed: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<ScanSummary> {
    run(root, layout, opts, None, KEPT_FILES, listed, sink)
}

/// Which messages a sifted scan examines whole: asked of each message
/// once the envelope that gives its sender has been read (todo, else
/// info, else intd: [`crate::message::Source`]), before any other file
/// of it is stated or read.
pub type Sift<'a> = dyn Fn(&ScannedMessage) -> bool + Sync + 'a;

/// As [`scan_counted`] (`opts.read_envelopes` on), examining whole only
/// the messages `sift` takes: a message it turns down is delivered with
/// the one envelope that gives its sender (with the stat of its open
/// descriptor, when `opts.stat`) and no stat of its other files, so a
/// tool that selects by sender (qkillns) reads one file per message it
/// leaves alone. A message it takes is delivered exactly as [`scan`]
/// delivers it: every file stated, every envelope read.
pub fn scan_sifted(
    root: &Dir,
    layout: ScanLayout,
    opts: &ScanOptions,
    sift: &Sift<'_>,
    listed: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<ScanSummary> {
    run(root, layout, opts, Some(sift), KEPT_FILES, listed, sink)
}

/// The scan, keeping at most `keep_files` message files of the survey's
/// listings for the second pass.
fn run(
    root: &Dir,
    layout: ScanLayout,
    opts: &ScanOptions,
    sift: Option<&Sift<'_>>,
    keep_files: usize,
    listed: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(ScanEvent),
) -> Result<ScanSummary> {
    let split = layout.split.max(1);
    let mut out = Events { summary: ScanSummary::default(), sink };
    let tops = first_pass::tops(root, layout, split, &mut |ev| out.emit(ev))?;
    let setup = Setup {
        part_dirs: tops.part_dirs,
        misplaced: Mutex::new(tops.misplaced),
        flat: Mutex::new(tops.flat),
        kept: Mutex::new((0..split).map(|_| Default::default()).collect()),
        keep: Keep::new(keep_files, crate::descriptors::share(2, 16, KEPT_BUCKETS)),
        layout,
        split,
    };
    let work = ScanWork { root, opts, sift, setup, tasks: tops.tasks };
    let limits = pool::Limits::new(opts.threads, LOOKAHEAD, WINDOW);
    let (flow, _) = pool::run(&work, limits, |pool| {
        // Every bucket's misplaced files and strays, all reported before
        // any message so a tool knows them when it judges the messages.
        let mut mess_files = 0u64;
        pool.surveys(work.tasks.len(), &mut |survey| {
            mess_files += survey.mess_files;
            out.take_survey(survey, &work.setup);
        });
        listed(mess_files);
        // Bucket by bucket: the workers list the next buckets while they
        // examine the messages of this one; this thread only delivers.
        pool.buckets(split, &mut |d| out.deliver(d))
    });
    match flow {
        ControlFlow::Continue(()) => Ok(out.summary),
        ControlFlow::Break(()) => Err(Error::Interrupted),
    }
}

/// The sink and the totals of what went through it.
struct Events<'a> {
    summary: ScanSummary,
    sink: &'a mut dyn FnMut(ScanEvent),
}

impl Events<'_> {
    fn emit(&mut self, ev: ScanEvent) {
        match &ev {
            ScanEvent::Message(_) => self.summary.messages += 1,
            ScanEvent::Stray(_) => self.summary.strays += 1,
            ScanEvent::Error(_) => self.summary.errors += 1,
        }
        (self.sink)(ev);
    }

    /// Reports a bucket's survey; its misplaced files go to the bucket
    /// they belong in.
    fn take_survey(&mut self, survey: Survey, setup: &Setup) {
        if let Some(err) = survey.error {
            self.emit(ScanEvent::Error(err));
        }
        let mut misplaced = setup.misplaced.lock().expect("scan setup");
        for (right, e) in survey.misplaced {
            misplaced[right as usize].push(e);
        }
        drop(misplaced);
        if let Some(kept) = survey.kept {
            let (b, part) = (kept.bucket as usize, kept.part.index());
            setup.kept.lock().expect("scan setup")[b][part] = Some(kept);
        }
        for stray in survey.strays {
            self.emit(ScanEvent::Stray(stray));
        }
    }

    /// Delivers a bucket's listing errors or a chunk's messages; breaks
    /// when a stop was asked for.
    fn deliver(&mut self, d: pool::Delivery<ScanWork<'_>>) -> ControlFlow<()> {
        if crate::interrupt::requested() {
            return ControlFlow::Break(());
        }
        match d {
            pool::Delivery::Bucket(listed) => {
                self.summary.buckets += 1;
                for err in listed.errors {
                    self.emit(ScanEvent::Error(err));
                }
            }
            pool::Delivery::Chunk(msgs) => {
                for m in msgs {
                    if m.files.iter().any(Option::is_some) {
                        crate::fault::panic_point("scan-sink");
                        self.emit(ScanEvent::Message(m));
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The scan's work for the pool.
struct ScanWork<'a> {
    root: &'a Dir,
    opts: &'a ScanOptions,
    /// A sifted scan's choice of the messages examined whole.
    sift: Option<&'a Sift<'a>>,
    setup: Setup,
    /// The buckets to survey.
    tasks: Vec<(Part, Arc<Dir>, u32)>,
}

impl pool::Work for ScanWork<'_> {
    type Survey = Survey;
    type Listing = Listed;
    type Chunk = Chunk;
    type Done = Vec<Box<ScannedMessage>>;
    type Worker = Worker;

    fn worker(&self) -> Worker {
        Worker::new(self.opts.threads)
    }

    fn survey(&self, task: usize) -> Survey {
        let (part, pd, b) = &self.tasks[task];
        first_pass::survey_bucket(*part, pd, *b, self.setup.split, &self.setup.keep)
    }

    fn list(&self, bucket: u32) -> (Listed, Vec<Chunk>) {
        bucket::list_bucket(bucket, &self.setup, self.opts.chunk)
    }

    fn examine(&self, worker: &mut Worker, chunk: Chunk) -> Vec<Box<ScannedMessage>> {
        let mut msgs = bucket::group(chunk.entries, chunk.ctx.split);
        crate::fault::panic_point("scan-worker");
        let Some(depth) = &self.opts.depth else {
            for msg in &mut msgs {
                examine::examine(self.root, &chunk.ctx, worker, msg, self.opts, self.sift);
            }
            return msgs;
        };
        let stat_only = ScanOptions { stat: true, read_envelopes: false, ..self.opts.clone() };
        for msg in &mut msgs {
            msg.depth = (depth.0)(msg.number);
            match msg.depth {
                Depth::Full => examine::examine(self.root, &chunk.ctx, worker, msg, self.opts, self.sift),
                Depth::Stated => examine::examine(self.root, &chunk.ctx, worker, msg, &stat_only, self.sift),
                Depth::MessStated => examine::stat_mess(self.root, &chunk.ctx, worker, msg),
                Depth::Listed => {}
            }
        }
        msgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::{FileKind, SymlinkBehavior};
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::Path;

    /// A tiny queue with split 3.
    fn queue(big_todo: bool) -> tempfile::TempDir {
        crate::test_queue::empty(big_todo)
    }

    fn add_message(q: &Path, preprocessed: bool, big_todo: bool) -> u64 {
        std::fs::write(q.join("pid/tmp"), b"Received: x\n\nbody\n").unwrap();
        let n = std::fs::metadata(q.join("pid/tmp")).unwrap().ino();
        let b = (n % 3).to_string();
        std::fs::rename(q.join("pid/tmp"), q.join("mess").join(&b).join(n.to_string())).unwrap();
        let sub = |d: &str| {
            if big_todo {
                q.join(d).join(&b).join(n.to_string())
            } else {
                q.join(d).join(n.to_string())
            }
        };
        if preprocessed {
            std::fs::write(q.join("info").join(&b).join(n.to_string()), b"Fa@b\0").unwrap();
            std::fs::write(q.join("remote").join(&b).join(n.to_string()), b"Tc@d\0Te@f").unwrap();
        } else {
            std::fs::write(sub("intd"), b"u0\0p1\0Fa@b\0Tc@d\0").unwrap();
            std::fs::hard_link(sub("intd"), sub("todo")).unwrap();
        }
        n
    }

    fn run(q: &Path, big_todo: bool, threads: usize) -> (Vec<ScannedMessage>, Vec<Stray>, Vec<Error>) {
        let root = Dir::open(q, SymlinkBehavior::Follow).unwrap();
        let (mut m, mut s, mut e) = (Vec::new(), Vec::new(), Vec::new());
        let opts = ScanOptions { threads, chunk: 2, ..Default::default() };
        scan(&root, ScanLayout { split: 3, big_todo }, &opts, &mut |ev| match ev {
            ScanEvent::Message(x) => m.push(*x),
            ScanEvent::Stray(x) => s.push(x),
            ScanEvent::Error(x) => e.push(x),
        })
        .unwrap();
        (m, s, e)
    }

    #[test]
    fn finds_messages_in_both_layouts() {
        for big in [false, true] {
            let t = queue(big);
            let mut nums = Vec::new();
            for i in 0..12 {
                nums.push(add_message(t.path(), i % 2 == 0, big));
            }
            let (m, s, e) = run(t.path(), big, 3);
            assert!(e.is_empty(), "{e:?}");
            assert!(s.is_empty(), "{s:?}");
            assert_eq!(m.len(), 12);
            // Ordered by bucket, then number.
            let keys: Vec<_> = m.iter().map(|x| (x.number % 3, x.number)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
            for x in &m {
                assert!(nums.contains(&x.number));
                let mess = x.file(Part::Mess).unwrap();
                assert_eq!(mess.inode(), x.number);
                if x.has(Part::Todo) {
                    let todo = x.todo.as_ref().unwrap().as_ref().unwrap().whole().unwrap();
                    assert_eq!(todo.recipients, vec![b"c@d".to_vec()]);
                    assert!(x.intd.is_none(), "same inode: intd not read twice");
                    assert_eq!(x.file(Part::Todo).unwrap().stat.unwrap().nlink, 2);
                } else {
                    assert_eq!(x.info.as_ref().unwrap().as_ref().unwrap().sender, b"a@b");
                    let r = x.remote.as_ref().unwrap().as_ref().unwrap().whole().unwrap();
                    assert_eq!((r.list.len(), r.dropped), (1, 4));
                }
            }
            // Same result with one thread.
            let (m1, _, _) = run(t.path(), big, 1);
            assert_eq!(m1.iter().map(|x| x.number).collect::<Vec<_>>(), m.iter().map(|x| x.number).collect::<Vec<_>>());
        }
    }

    /// Every event of a scan keeping at most `keep_files` files of the
    /// survey's listings, as (message number, its files by part and
    /// place) and the strays' paths.
    fn listing(q: &Path, big_todo: bool, keep_files: usize) -> (Vec<(u64, Vec<String>)>, Vec<PathBuf>) {
        let root = Dir::open(q, SymlinkBehavior::Follow).unwrap();
        let opts = ScanOptions { threads: 2, chunk: 3, ..Default::default() };
        let (mut msgs, mut strays) = (Vec::new(), Vec::new());
        let layout = ScanLayout { split: 3, big_todo };
        super::run(&root, layout, &opts, None, keep_files, &mut |_| {}, &mut |ev| match ev {
            ScanEvent::Message(m) => {
                let files = m.all_files().map(|f| f.rel_path(m.number).to_string_lossy().into_owned()).collect();
                msgs.push((m.number, files));
            }
            ScanEvent::Stray(x) => strays.push(x.path),
            ScanEvent::Error(e) => panic!("{e}"),
        })
        .unwrap();
        (msgs, strays)
    }

    #[test]
    fn each_message_once_whether_the_survey_listing_is_kept_or_listed_again() {
        for big in [false, true] {
            let t = queue(big);
            let q = t.path();
            let made: Vec<(u64, bool)> = (0..40).map(|i| (add_message(q, i % 3 != 0, big), i % 3 != 0)).collect();
            let mut nums: Vec<u64> = made.iter().map(|m| m.0).collect();
            nums.sort_unstable();
            // One info in a wrong bucket, one remote in an extra bucket,
            // and a numbered stray that is no message file.
            let (a, b) = (made[1].0, made[2].0);
            let info_a = q.join("info").join((a % 3).to_string()).join(a.to_string());
            let wrong = q.join("info").join(((a + 1) % 3).to_string()).join(a.to_string());
            std::fs::rename(&info_a, &wrong).unwrap();
            std::fs::create_dir(q.join("remote/5")).unwrap();
            std::fs::rename(
                q.join("remote").join((b % 3).to_string()).join(b.to_string()),
                q.join("remote/5").join(b.to_string()),
            )
            .unwrap();
            std::fs::create_dir(q.join("mess/0/3")).unwrap();
            // Kept whole, kept in part (the room runs out mid-survey), and
            // listed again by the second pass.
            let whole = listing(q, big, KEPT_FILES);
            for keep in [0, 25, KEPT_FILES] {
                let (msgs, mut strays) = listing(q, big, keep);
                let numbers: Vec<u64> = msgs.iter().map(|(n, _)| *n).collect();
                let mut sorted = numbers.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, nums, "keep {keep}: each message once, none missed");
                for (n, files) in &msgs {
                    let mut once = files.clone();
                    once.sort();
                    once.dedup();
                    assert_eq!(once.len(), files.len(), "keep {keep}: a file of {n} counted twice: {files:?}");
                    // mess, info and remote; or mess, intd and todo.
                    assert_eq!(files.len(), 3, "keep {keep}: {n}: {files:?}");
                }
                let (_, fa) = msgs.iter().find(|(n, _)| *n == a).unwrap();
                assert!(fa.contains(&wrong.strip_prefix(q).unwrap().to_string_lossy().into_owned()), "{fa:?}");
                let (_, fb) = msgs.iter().find(|(n, _)| *n == b).unwrap();
                assert!(fb.contains(&format!("remote/5/{b}")), "{fb:?}");
                assert_eq!((&msgs, &strays), (&whole.0, &whole.1), "keep {keep}: the same scan");
                strays.sort();
                assert_eq!(strays, vec![PathBuf::from("mess/0/3"), PathBuf::from("remote/5")], "keep {keep}");
            }
        }
    }

    #[test]
    fn a_sifted_scan_reads_only_the_sender_of_a_message_it_turns_down() {
        for big in [false, true] {
            let t = queue(big);
            for i in 0..8 {
                add_message(t.path(), i % 2 == 0, big);
            }
            let root = Dir::open(t.path(), SymlinkBehavior::Follow).unwrap();
            let opts = ScanOptions { threads: 2, chunk: 2, ..Default::default() };
            let layout = ScanLayout { split: 3, big_todo: big };
            let asked = Mutex::new(Vec::new());
            let sift = |m: &ScannedMessage| {
                // Asked once the sender envelope is read, before any stat.
                assert!(m.todo.is_some() || m.info.is_some(), "{m:?}");
                assert!(m.file(Part::Mess).unwrap().stat.is_none() && m.local.is_none() && m.remote.is_none());
                asked.lock().unwrap().push(m.number);
                m.number % 2 == 1
            };
            let mut sifted = Vec::new();
            scan_sifted(&root, layout, &opts, &sift, &mut |_| {}, &mut |ev| {
                if let ScanEvent::Message(m) = ev {
                    sifted.push(*m);
                }
            })
            .unwrap();
            let (whole, _, _) = run(t.path(), big, 2);
            assert_eq!(sifted.len(), 8);
            let mut asked = asked.into_inner().unwrap();
            asked.sort_unstable();
            let mut numbers: Vec<u64> = whole.iter().map(|m| m.number).collect();
            numbers.sort_unstable();
            assert_eq!(asked, numbers, "asked once per message");
            for (s, w) in sifted.iter().zip(&whole) {
                assert_eq!(s.number, w.number);
                if s.number % 2 == 1 {
                    // Taken: as the unsifted scan gives it.
                    assert_eq!(format!("{s:?}"), format!("{w:?}"));
                    continue;
                }
                // Turned down: the sender's envelope (todo before info),
                // nothing else read, no other file stated.
                if s.has(Part::Todo) {
                    assert!(s.todo.as_ref().unwrap().is_ok() && s.file(Part::Todo).unwrap().stat.is_some());
                    assert!(s.intd.is_none() && s.file(Part::Intd).unwrap().stat.is_none());
                } else {
                    assert_eq!(s.info.as_ref().unwrap().as_ref().unwrap().sender, b"a@b");
                    assert!(s.remote.is_none() && s.file(Part::Remote).unwrap().stat.is_none());
                }
                assert!(s.file(Part::Mess).unwrap().stat.is_none());
            }
        }
    }

    #[test]
    fn misplaced_files_join_their_message_and_strays_are_reported() {
        let t = queue(false);
        let q = t.path();
        let n = add_message(q, true, false);
        let right = (n % 3).to_string();
        let wrong = ((n + 1) % 3).to_string();
        std::fs::rename(
            q.join("info").join(&right).join(n.to_string()),
            q.join("info").join(&wrong).join(n.to_string()),
        )
        .unwrap();
        // Extra bucket holding the remote file.
        std::fs::create_dir(q.join("remote/7")).unwrap();
        std::fs::rename(q.join("remote").join(&right).join(n.to_string()), q.join("remote/7").join(n.to_string()))
            .unwrap();
        // Strays.
        std::fs::write(q.join("mess/0/core"), b"x").unwrap();
        std::fs::write(q.join("mess/0/bad\nname"), b"x").unwrap();
        symlink("/etc/passwd", q.join("mess/1/999")).unwrap();
        std::fs::create_dir(q.join("info/1/12")).unwrap();
        std::fs::write(q.join("junk"), b"x").unwrap();
        std::fs::write(q.join("pid/123"), b"x").unwrap();
        nix::unistd::mkfifo(&q.join("todo/55"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (m, s, e) = run(q, false, 2);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(m.len(), 1);
        let x = &m[0];
        assert_eq!(x.file(Part::Info).unwrap().bucket, Some(((n + 1) % 3) as u32));
        assert_eq!(x.file(Part::Remote).unwrap().bucket, Some(7));
        assert!(x.info.as_ref().unwrap().is_ok());
        let mut got: Vec<(String, StrayWhy)> =
            s.iter().map(|s| (s.path.to_string_lossy().into_owned(), s.why)).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("info/1/12".to_string(), StrayWhy::NotRegular),
                ("junk".to_string(), StrayWhy::UnknownTopLevel),
                ("mess/0/bad\nname".to_string(), StrayWhy::NotNumeric),
                ("mess/0/core".to_string(), StrayWhy::NotNumeric),
                ("mess/1/999".to_string(), StrayWhy::NotRegular),
                ("pid/123".to_string(), StrayWhy::PidLeftover),
                ("remote/7".to_string(), StrayWhy::ExtraBucket(7)),
                ("todo/55".to_string(), StrayWhy::NotRegular),
            ]
        );
    }

    #[test]
    fn a_symlinked_bucket_is_not_entered() {
        let t = queue(false);
        let q = t.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("3"), b"Fx\0").unwrap();
        std::fs::remove_dir(q.join("info/0")).unwrap();
        symlink(outside.path(), q.join("info/0")).unwrap();
        let (m, s, _) = run(q, false, 2);
        assert!(m.is_empty());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].path, PathBuf::from("info/0"));
        assert_eq!(s[0].stat.unwrap().kind, FileKind::Symlink);
    }

    #[test]
    fn depth_lists_or_stats_the_messages_it_names() {
        let t = queue(false);
        let nums: Vec<u64> = (0..4).map(|_| add_message(t.path(), true, false)).collect();
        let root = Dir::open(t.path(), SymlinkBehavior::Follow).unwrap();
        let (listed, stated, mess_stated) = (nums[0], nums[1], nums[3]);
        let depth = DepthOf(Arc::new(move |n| match n {
            x if x == listed => Depth::Listed,
            x if x == stated => Depth::Stated,
            x if x == mess_stated => Depth::MessStated,
            _ => Depth::Full,
        }));
        let opts = ScanOptions { threads: 2, chunk: 2, depth: Some(depth), ..Default::default() };
        let mut m = Vec::new();
        scan(&root, ScanLayout { split: 3, big_todo: false }, &opts, &mut |ev| {
            if let ScanEvent::Message(x) = ev {
                m.push(*x);
            }
        })
        .unwrap();
        assert_eq!(m.len(), 4, "every message is delivered");
        for x in &m {
            let stats = x.all_files().filter(|f| f.stat.is_some()).count();
            let files = x.all_files().count();
            assert_eq!(files, 3, "the listing finds every file of {}", x.number);
            match x.depth {
                Depth::Listed => {
                    assert_eq!(x.number, listed);
                    assert_eq!(stats, 0);
                    assert!(x.info.is_none() && x.remote.is_none());
                }
                Depth::Stated => {
                    assert_eq!(x.number, stated);
                    assert_eq!(stats, 3);
                    assert!(x.info.is_none() && x.remote.is_none(), "no envelope read");
                }
                Depth::MessStated => {
                    assert_eq!(x.number, mess_stated);
                    assert_eq!(stats, 1);
                    let mess = x.file(Part::Mess).and_then(|f| f.stat).expect("the mess stated");
                    assert_eq!(mess.ino, mess_stated, "the mess's own stat");
                    assert!(x.info.is_none() && x.remote.is_none(), "no envelope read");
                }
                Depth::Full => {
                    assert_eq!(x.number, nums[2]);
                    assert_eq!(stats, 3);
                    assert!(x.info.is_some() && x.remote.is_some());
                }
            }
        }
    }
}
