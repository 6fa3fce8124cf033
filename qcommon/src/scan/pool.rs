//! The scan's ordered, memory-bounded pool: worker threads do the work
//! (survey a bucket, list a bucket, examine a chunk of its messages) and
//! the calling thread takes the results in order, whatever thread finished
//! first.
//!
//! Order: survey results in task order; then bucket by bucket, the
//! bucket's listing, then its chunks in order.
//!
//! Memory: a chunk may start only within a window of the one the caller
//! waits for ([`Limits::window`] chunks of that bucket, as many of each of
//! the next buckets already listed), and buckets are listed at most
//! [`Limits::lookahead`] ahead; so at most `window * lookahead` finished
//! or running chunks are held, whatever the size of the queue.
//!
//! Threads start as the work needs them: the first with the first job,
//! another only when more jobs may start than there are workers free to
//! take them. Up to the number of cores that is all it takes (the work is
//! then bound by the processor); beyond, up to [`Limits::threads`], only
//! once a job was seen waiting (it blocked, and its wall time was more
//! than twice its thread's processor time: a cold disk, where every thread
//! is one more read in flight). A job that only waited for a core (a busy
//! machine) never blocked: it does not count. A small queue runs on one
//! thread, a warm one on a thread per core, a cold one on them all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::Scope;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

/// The work the pool runs: what a survey, a listing and a chunk are.
pub(super) trait Work: Sync {
    /// What surveying one task gives.
    type Survey: Send;
    /// What listing a bucket gives, besides its chunks.
    type Listing: Send;
    /// A unit of examination: some messages of one bucket.
    type Chunk: Send;
    /// What examining a chunk gives.
    type Done: Send;
    /// A worker's own state (its directory cache, its read buffer).
    type Worker;

    /// A new worker's state.
    fn worker(&self) -> Self::Worker;
    /// Surveys task `task`.
    fn survey(&self, task: usize) -> Self::Survey;
    /// Lists bucket `bucket` and cuts it into chunks.
    fn list(&self, bucket: u32) -> (Self::Listing, Vec<Self::Chunk>);
    /// Examines one chunk.
    fn examine(&self, worker: &mut Self::Worker, chunk: Self::Chunk) -> Self::Done;
}

/// How far the pool may go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most worker threads.
    pub threads: usize,
    /// Buckets listed ahead of the one being delivered (at least 1).
    pub lookahead: u32,
    /// Chunks of a bucket that may be done ahead of the caller (at least 1).
    pub window: usize,
    /// Threads that start without a job seen waiting (the cores).
    pub cores: usize,
}

impl Limits {
    /// `threads` at most, as many as the machine has cores at first.
    pub fn new(threads: usize, lookahead: u32, window: usize) -> Limits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits { threads, lookahead, window, cores }
    }
}

/// What the caller gets, bucket by bucket.
pub(super) enum Delivery<W: Work> {
    /// A bucket's listing, before its chunks.
    Bucket(W::Listing),
    /// The next chunk's result.
    Chunk(W::Done),
}

enum Job<C> {
    Survey(usize),
    List(u32),
    Examine(u32, usize, C),
}

struct State<W: Work> {
    jobs: VecDeque<Job<W::Chunk>>,
    surveys: HashMap<usize, W::Survey>,
    /// Listed buckets not yet taken: the listing and its number of chunks.
    listed: HashMap<u32, (W::Listing, usize)>,
    /// Finished chunks by (bucket, chunk).
    results: BTreeMap<(u32, usize), W::Done>,
    /// The chunk the caller waits for next.
    next: (u32, usize),
    done: bool,
    /// Workers started, and those running a job.
    started: usize,
    busy: usize,
    /// A job spent most of its time waiting (for the disk).
    waits_seen: bool,
    /// Workers waiting for a job, and whether the caller waits for a
    /// result: a wake-up call is a system call, made only when someone
    /// waits.
    idle: usize,
    caller_waits: Option<Awaited>,
}

/// What the caller waits for: only its arrival wakes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    Survey(usize),
    Listing(u32),
    Chunk(u32, usize),
}

impl<W: Work> State<W> {
    /// Whether a job may start: a survey or a listing always; a chunk when
    /// it is within the window.
    fn may_start(&self, job: &Job<W::Chunk>, window: usize) -> bool {
        match job {
            Job::Survey(_) | Job::List(_) => true,
            Job::Examine(b, i, _) => {
                let (nb, ni) = self.next;
                if *b == nb {
                    *i < ni + window
                } else {
                    *i < window
                }
            }
        }
    }

    /// Whether one more worker is needed: more jobs may start than there
    /// are workers free to take them.
    fn wants_worker(&self, limits: &Limits) -> bool {
        if self.done || self.started >= limits.threads.max(1) {
            return false;
        }
        if self.started >= limits.cores && !self.waits_seen {
            return false;
        }
        let free = self.started - self.busy;
        self.jobs.iter().filter(|j| self.may_start(j, limits.window)).nth(free).is_some()
    }
}

/// The state and its two wake-up calls: workers wait on `work` (a job they
/// may start), the caller on `ready` (a result), so that neither wakes the
/// other side for nothing.
struct Shared<W: Work> {
    state: Mutex<State<W>>,
    work: Condvar,
    ready: Condvar,
    limits: Limits,
}

impl<W: Work> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().expect("scan pool")
    }

    /// Wakes one waiting worker, if one waits; releases the lock first.
    fn wake_one(&self, s: MutexGuard<'_, State<W>>) {
        let idle = s.idle;
        drop(s);
        if idle > 0 {
            self.work.notify_one();
        }
    }

    /// Wakes the caller, if it waits for `done`; releases the lock first.
    fn wake_caller(&self, s: MutexGuard<'_, State<W>>, done: Awaited) {
        let waits = s.caller_waits == Some(done);
        drop(s);
        if waits {
            self.ready.notify_one();
        }
    }
}

/// Ends the workers when the caller is done (or unwinds).
struct Finish<'a, W: Work>(&'a Shared<W>);

impl<W: Work> Drop for Finish<'_, W> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.done = true;
        }
        self.0.work.notify_all();
    }
}

/// What a run did, for tests and measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunStats {
    /// Worker threads started.
    pub threads: usize,
}

/// Runs `caller` with a pool doing `work`; the workers end when it returns.
pub(super) fn run<W: Work, R>(
    work: &W,
    limits: Limits,
    caller: impl FnOnce(&mut Ordered<'_, '_, W>) -> R,
) -> (R, RunStats) {
    let shared = Shared {
        state: Mutex::new(State {
            jobs: VecDeque::new(),
            surveys: HashMap::new(),
            listed: HashMap::new(),
            results: BTreeMap::new(),
            next: (0, 0),
            done: false,
            started: 0,
            busy: 0,
            waits_seen: false,
            idle: 0,
            caller_waits: None,
        }),
        work: Condvar::new(),
        ready: Condvar::new(),
        limits: Limits {
            threads: limits.threads.max(1),
            lookahead: limits.lookahead.max(1),
            window: limits.window.max(1),
            cores: limits.cores.max(1),
        },
    };
    let r = std::thread::scope(|scope| {
        let _finish = Finish(&shared);
        caller(&mut Ordered { scope, shared: &shared, work })
    });
    let threads = shared.lock().started;
    (r, RunStats { threads })
}

/// The caller's side of a running pool.
pub(super) struct Ordered<'scope, 'env, W: Work> {
    scope: &'scope Scope<'scope, 'env>,
    shared: &'env Shared<W>,
    work: &'env W,
}

impl<'scope, 'env, W: Work> Ordered<'scope, 'env, W> {
    /// Surveys tasks `0..tasks` on the workers and gives their results to
    /// `each` in task order.
    pub fn surveys(&mut self, tasks: usize, each: &mut dyn FnMut(W::Survey)) {
        self.push((0..tasks).map(Job::Survey));
        for i in 0..tasks {
            let (survey, s) = self.wait(Awaited::Survey(i), |s| s.surveys.remove(&i));
            drop(s);
            each(survey);
        }
    }

    /// Lists and examines buckets `0..buckets` on the workers and gives
    /// each bucket's listing, then its chunks' results, to `each`, in
    /// order. Stops when `each` breaks.
    pub fn buckets(&mut self, buckets: u32, each: &mut dyn FnMut(Delivery<W>) -> ControlFlow<()>) -> ControlFlow<()> {
        let lookahead = self.shared.limits.lookahead.min(buckets);
        self.push((0..lookahead).map(Job::List));
        for b in 0..buckets {
            let ((listing, chunks), s) = self.wait(Awaited::Listing(b), |s| s.listed.remove(&b));
            drop(s);
            each(Delivery::Bucket(listing))?;
            for i in 0..chunks {
                let (done, s) = self.wait(Awaited::Chunk(b, i), |s| {
                    let done = s.results.remove(&(b, i))?;
                    // The window moved by one chunk: one more job may start.
                    s.next = (b, i + 1);
                    Some(done)
                });
                self.shared.wake_one(s);
                each(Delivery::Chunk(done))?;
            }
            let more = (b + lookahead < buckets).then_some(Job::List(b + lookahead));
            self.lock_and(|s| {
                s.next = (b + 1, 0);
                s.jobs.extend(more);
            });
        }
        ControlFlow::Continue(())
    }

    /// Queues `jobs`, wakes the workers, and starts one if needed.
    fn push(&self, jobs: impl Iterator<Item = Job<W::Chunk>>) {
        self.lock_and(|s| s.jobs.extend(jobs));
    }

    /// Runs `f` on the state, wakes the waiting workers (it may have
    /// given them work), then starts a worker if the work needs one.
    fn lock_and(&self, f: impl FnOnce(&mut State<W>)) {
        let idle = grow_after(self.scope, self.shared, self.work, f);
        if idle > 0 {
            self.shared.work.notify_all();
        }
    }

    /// Waits until `take` finds `what`, what the caller waits for; gives
    /// it with the lock still held.
    fn wait<T>(
        &self,
        what: Awaited,
        mut take: impl FnMut(&mut State<W>) -> Option<T>,
    ) -> (T, MutexGuard<'env, State<W>>) {
        let mut s = self.shared.lock();
        loop {
            if let Some(t) = take(&mut s) {
                return (t, s);
            }
            s.caller_waits = Some(what);
            s = self.shared.ready.wait(s).expect("scan pool");
            s.caller_waits = None;
        }
    }
}

/// Runs `f` on the state under the lock; then, when the work wants one
/// more worker, starts it. Returns the workers that were waiting.
fn grow_after<'scope, 'env, W: Work>(
    scope: &'scope Scope<'scope, 'env>,
    shared: &'env Shared<W>,
    work: &'env W,
    f: impl FnOnce(&mut State<W>),
) -> usize {
    let mut s = shared.lock();
    f(&mut s);
    grow(scope, shared, work, s)
}

/// Starts one more worker when the work wants it, after releasing the
/// lock. Returns the workers that were waiting.
fn grow<'scope, 'env, W: Work>(
    scope: &'scope Scope<'scope, 'env>,
    shared: &'env Shared<W>,
    work: &'env W,
    mut s: MutexGuard<'_, State<W>>,
) -> usize {
    let wanted = s.wants_worker(&shared.limits);
    s.started += usize::from(wanted);
    let idle = s.idle;
    drop(s);
    if wanted {
        scope.spawn(move || worker(scope, shared, work));
    }
    idle
}

/// Times one job: wall clock, this thread's processor time and the times
/// it blocked.
struct JobClock {
    wall: Instant,
    thread: Option<ThreadUsage>,
}

/// Waiting shorter than this is no sign of a slow disk.
const LEAST_WAIT: Duration = Duration::from_micros(500);

impl JobClock {
    /// Starts timing a job; an untimed one never counts as waiting.
    fn start(timed: bool) -> JobClock {
        JobClock { wall: Instant::now(), thread: if timed { ThreadUsage::now() } else { None } }
    }

    /// Whether the job spent most of its time waiting; read before the
    /// pool's lock is taken, so that waiting for the lock does not count.
    fn stop(self) -> Stopped {
        let wall = self.wall.elapsed();
        let waited = match self.thread.and_then(|before| Some((before, ThreadUsage::now()?))) {
            Some((before, after)) => {
                waited(wall, after.cpu.saturating_sub(before.cpu), after.blocked.saturating_sub(before.blocked))
            }
            None => false,
        };
        Stopped { waited, long: wall > LEAST_WAIT }
    }
}

/// A job's end, as its clock saw it.
struct Stopped {
    waited: bool,
    /// Long enough that it could have waited for the disk.
    long: bool,
}

impl Stopped {
    /// Marks the job done in the state.
    fn note<W: Work>(self, s: &mut State<W>) {
        s.busy -= 1;
        s.waits_seen |= self.waited;
    }
}

/// Whether a job waited for the disk: it blocked (gave up its core of its
/// own accord) and its wall time was more than twice its processor time.
/// A job that only waited for a core, on a machine busy with other work,
/// was preempted but never blocked, however long it took.
fn waited(wall: Duration, cpu: Duration, blocked: u64) -> bool {
    blocked > 0 && wall > cpu * 2 + LEAST_WAIT
}

/// What the calling thread used so far: its processor time and the times
/// it blocked (voluntary context switches: a read waiting for the disk, a
/// lock waiting for its holder).
#[derive(Debug, Clone, Copy)]
struct ThreadUsage {
    cpu: Duration,
    blocked: u64,
}

impl ThreadUsage {
    fn now() -> Option<ThreadUsage> {
        let u = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
        let time = |t: nix::sys::time::TimeVal| Duration::from(libc_timespec(t));
        Some(ThreadUsage {
            cpu: time(u.user_time()) + time(u.system_time()),
            blocked: u64::try_from(u.voluntary_context_switches()).unwrap_or(0),
        })
    }
}

/// A `TimeVal` as a `TimeSpec` (which converts to a `Duration`).
fn libc_timespec(t: nix::sys::time::TimeVal) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(t.tv_sec(), t.tv_usec() * 1000)
}

/// A worker: takes the jobs it may start, one at a time, until the caller
/// is done.
fn worker<'scope, 'env, W: Work>(scope: &'scope Scope<'scope, 'env>, shared: &'env Shared<W>, work: &'env W) {
    let mut own = work.worker();
    // Whether this worker's last job was long enough to have waited: a
    // worker whose jobs are all short (a warm cache) times only its first.
    let mut last_long = true;
    loop {
        let mut s = shared.lock();
        let job = loop {
            if s.done {
                return;
            }
            if let Some(at) = s.jobs.iter().position(|j| s.may_start(j, shared.limits.window)) {
                s.busy += 1;
                break s.jobs.remove(at).expect("position");
            }
            s.idle += 1;
            s = shared.work.wait(s).expect("scan pool");
            s.idle -= 1;
        };
        // Once a wait was seen, or every thread runs, nothing more is
        // learnt from timing a job: its two `getrusage` calls are saved.
        // So they are after a short job: a job is timed when the worker's
        // last one was long enough to have waited (on a cold disk every
        // job is, so each is timed from the first long one on).
        let timed = last_long && !s.waits_seen && s.started < shared.limits.threads;
        grow(scope, shared, work, s);
        let clock = JobClock::start(timed);
        match job {
            Job::Survey(i) => {
                let r = work.survey(i);
                let stopped = clock.stop();
                last_long = stopped.long;
                let mut s = shared.lock();
                stopped.note(&mut s);
                s.surveys.insert(i, r);
                shared.wake_caller(s, Awaited::Survey(i));
            }
            Job::List(b) => {
                let (listing, chunks) = work.list(b);
                let stopped = clock.stop();
                last_long = stopped.long;
                let n = chunks.len();
                let mut s = shared.lock();
                stopped.note(&mut s);
                s.listed.insert(b, (listing, n));
                s.jobs.extend(chunks.into_iter().enumerate().map(|(i, c)| Job::Examine(b, i, c)));
                let (caller, idle) = (s.caller_waits == Some(Awaited::Listing(b)), s.idle);
                grow(scope, shared, work, s);
                if caller {
                    shared.ready.notify_one();
                }
                if n > 0 && idle > 0 {
                    shared.work.notify_all();
                }
            }
            Job::Examine(b, i, chunk) => {
                let r = work.examine(&mut own, chunk);
                let stopped = clock.stop();
                last_long = stopped.long;
                let mut s = shared.lock();
                stopped.note(&mut s);
                s.results.insert((b, i), r);
                shared.wake_caller(s, Awaited::Chunk(b, i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Chunks of bucket `b`: some buckets have none, some many.
    fn chunks_of(b: u32) -> usize {
        [0, 1, 7, 3, 20, 2][b as usize % 6]
    }

    /// A scrambled amount of busy work, so threads finish out of order.
    fn jitter(seed: u64) {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        while x > 0 {
            std::thread::yield_now();
            x -= 1;
        }
    }

    /// Counts the chunks started and not yet taken by the caller.
    #[derive(Default)]
    struct Counted {
        held: AtomicUsize,
        most_held: AtomicUsize,
    }

    impl Work for Counted {
        type Survey = usize;
        type Listing = u32;
        type Chunk = (u32, usize);
        type Done = (u32, usize);
        type Worker = u64;

        fn worker(&self) -> u64 {
            0
        }

        fn survey(&self, task: usize) -> usize {
            jitter(task as u64 + 1000);
            task
        }

        fn list(&self, bucket: u32) -> (u32, Vec<(u32, usize)>) {
            jitter(u64::from(bucket) + 77);
            (bucket, (0..chunks_of(bucket)).map(|i| (bucket, i)).collect())
        }

        fn examine(&self, worker: &mut u64, chunk: (u32, usize)) -> (u32, usize) {
            let now = self.held.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_held.fetch_max(now, Ordering::SeqCst);
            *worker += 1;
            jitter(u64::from(chunk.0) * 31 + chunk.1 as u64);
            chunk
        }
    }

    /// Runs the pool over `buckets` buckets and returns what the caller
    /// got, in order.
    fn deliveries(work: &Counted, limits: Limits, surveys: usize, buckets: u32) -> (Vec<usize>, Vec<String>, RunStats) {
        let (got, stats) = run(work, limits, |pool| {
            let mut s = Vec::new();
            pool.surveys(surveys, &mut |i| s.push(i));
            let mut got = Vec::new();
            let flow = pool.buckets(buckets, &mut |d| {
                match d {
                    Delivery::Bucket(listing) => got.push(format!("bucket {listing}")),
                    Delivery::Chunk((b, i)) => {
                        work.held.fetch_sub(1, Ordering::SeqCst);
                        got.push(format!("chunk {b}.{i}"));
                        // A slow caller: the workers run ahead to the window.
                        jitter(u64::from(b) + i as u64 * 7);
                    }
                }
                ControlFlow::Continue(())
            });
            assert_eq!(flow, ControlFlow::Continue(()));
            (s, got)
        });
        (got.0, got.1, stats)
    }

    fn expected(buckets: u32) -> Vec<String> {
        let mut v = Vec::new();
        for b in 0..buckets {
            v.push(format!("bucket {b}"));
            v.extend((0..chunks_of(b)).map(|i| format!("chunk {b}.{i}")));
        }
        v
    }

    #[test]
    fn results_come_in_order_whatever_thread_finishes_first() {
        for threads in [1, 2, 8] {
            for _ in 0..5 {
                let work = Counted::default();
                let limits = Limits { threads, lookahead: 2, window: 3, cores: 2 };
                let (surveys, got, stats) = deliveries(&work, limits, 40, 13);
                assert_eq!(surveys, (0..40).collect::<Vec<_>>());
                assert_eq!(got, expected(13));
                assert!(stats.threads >= 1 && stats.threads <= threads, "{stats:?}");
            }
        }
    }

    #[test]
    fn never_more_chunks_held_than_the_window_allows() {
        for (window, lookahead) in [(1, 1), (2, 2), (4, 3)] {
            for _ in 0..5 {
                let work = Counted::default();
                let limits = Limits { threads: 8, lookahead, window, cores: 8 };
                let (_, got, _) = deliveries(&work, limits, 0, 12);
                assert_eq!(got, expected(12));
                // The window of the bucket delivered and of each bucket
                // listed ahead, and the chunk in the caller's hands.
                let most = work.most_held.load(Ordering::SeqCst);
                assert!(most <= window * lookahead as usize + 1, "{most} held, window {window}, lookahead {lookahead}");
                assert_eq!(work.held.load(Ordering::SeqCst), 0);
            }
        }
    }

    #[test]
    fn little_work_starts_one_thread() {
        let work = Counted::default();
        let limits = Limits { threads: 16, lookahead: 1, window: 16, cores: 16 };
        // One survey, then a bucket of no chunk and one of one chunk, one
        // listed at a time: never more than one job waits.
        let (surveys, got, stats) = deliveries(&work, limits, 1, 2);
        assert_eq!(surveys, vec![0]);
        assert_eq!(got, expected(2));
        assert_eq!(stats.threads, 1);
    }

    /// Surveys that wait (as reads on a cold disk do).
    struct Waiting;

    impl Work for Waiting {
        type Survey = usize;
        type Listing = ();
        type Chunk = ();
        type Done = ();
        type Worker = ();

        fn worker(&self) {}

        fn survey(&self, task: usize) -> usize {
            std::thread::sleep(Duration::from_millis(3));
            task
        }

        fn list(&self, _: u32) -> ((), Vec<()>) {
            ((), Vec::new())
        }

        fn examine(&self, _: &mut (), _: ()) {}
    }

    #[test]
    fn waiting_jobs_start_threads_beyond_the_cores() {
        let limits = Limits { threads: 4, lookahead: 1, window: 1, cores: 1 };
        let (got, stats) = run(&Waiting, limits, |pool| {
            let mut got = Vec::new();
            pool.surveys(12, &mut |i| got.push(i));
            got
        });
        assert_eq!(got, (0..12).collect::<Vec<_>>());
        assert!(stats.threads > 1 && stats.threads <= 4, "{stats:?}");
    }

    #[test]
    fn only_a_job_that_blocked_counts_as_waiting() {
        let ms = Duration::from_millis;
        // Blocked, and mostly off the processor: a cold read.
        assert!(waited(ms(10), ms(2), 5));
        // As long, but never blocked: it waited for a core on a busy
        // machine, which more threads would not help.
        assert!(!waited(ms(10), ms(2), 0));
        // Blocked, but busy most of the time: bound by the processor.
        assert!(!waited(ms(10), ms(8), 5));
        // Too short to tell.
        assert!(!waited(Duration::from_micros(400), Duration::ZERO, 1));
    }

    #[test]
    fn a_thread_that_sleeps_is_seen_blocked() {
        let before = ThreadUsage::now().unwrap();
        std::thread::sleep(Duration::from_millis(3));
        let after = ThreadUsage::now().unwrap();
        assert!(after.blocked > before.blocked, "{before:?} {after:?}");
        assert!(after.cpu >= before.cpu, "{before:?} {after:?}");
    }

    /// Jobs that are long but never block (as jobs sharing a core with
    /// other work on a busy machine): busy work only.
    struct Busy;

    impl Work for Busy {
        type Survey = usize;
        type Listing = ();
        type Chunk = ();
        type Done = ();
        type Worker = ();

        fn worker(&self) {}

        fn survey(&self, task: usize) -> usize {
            let start = Instant::now();
            let mut x = task as u64;
            while start.elapsed() < Duration::from_millis(2) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            task
        }

        fn list(&self, _: u32) -> ((), Vec<()>) {
            ((), Vec::new())
        }

        fn examine(&self, _: &mut (), _: ()) {}
    }

    #[test]
    fn busy_jobs_start_no_threads_beyond_the_cores() {
        let limits = Limits { threads: 4, lookahead: 1, window: 1, cores: 1 };
        let (got, stats) = run(&Busy, limits, |pool| {
            let mut got = Vec::new();
            pool.surveys(12, &mut |i| got.push(i));
            got
        });
        assert_eq!(got, (0..12).collect::<Vec<_>>());
        assert_eq!(stats.threads, 1, "{stats:?}");
    }

    #[test]
    fn the_caller_can_stop_early() {
        let work = Counted::default();
        let limits = Limits { threads: 4, lookahead: 2, window: 2, cores: 4 };
        let (flow, _) = run(&work, limits, |pool| {
            let mut n = 0;
            pool.buckets(12, &mut |_| {
                n += 1;
                if n == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        });
        assert_eq!(flow, ControlFlow::Break(()));
    }
}
