//! Running a batch's plan: every action goes through qcommon's one
//! executor ([`Mutator::run`]), dry (`-n`: each step validated and counted,
//! nothing changed) or live (each step carried out). `-n` and a live run
//! take this same path, so `-n` lists exactly the actions, statuses and
//! bytes a live run gives: the counts are the executor's outcomes.
//!
//! A batch's actions are dealt out in contiguous runs to up to [`WORKERS`]
//! mutators, one per thread of a rayon pool of its own (a removal waits on
//! the disk for metadata, and several in flight keep it busy). A message's
//! steps stay in order in one thread, so a crash leaves at most one partly
//! removed message per thread, each missing a prefix of the removal order.

use std::panic::{catch_unwind, AssertUnwindSafe};

use qcommon::mutator::{Action, Mode, Mutator, Plan, Run};
use qcommon::session::Session;
use rayon::prelude::*;

use super::Work;
use crate::report::Status;

/// Mutators (and threads) running a batch's actions.
pub(super) const WORKERS: usize = 4;

/// Actions a thread gets at least, before a second thread is used.
const PER_THREAD: usize = 8;

/// What running one action gave.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub status: Status,
    pub bytes: u64,
    pub error: Option<String>,
}

/// The mutators of a run, all in one mode, and the pool they work in.
#[derive(Debug)]
pub(super) struct Executor {
    mutators: Vec<Mutator>,
    /// `None` when no pool could be made: one mutator, the calling thread.
    pool: Option<rayon::ThreadPool>,
}

impl Executor {
    /// [`WORKERS`] mutators over the session's queue, each on its own
    /// handle of the queue root: dry (`dry`) or live.
    pub fn new(session: &Session, dry: bool) -> qcommon::Result<Executor> {
        let mode = if dry { Mode::DryRun } else { Mode::Live };
        let mutators =
            (0..WORKERS).map(|_| Ok(Mutator::new(session.open_again()?, mode))).collect::<qcommon::Result<_>>()?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().ok();
        Ok(Executor { mutators, pool })
    }

    /// Runs the plan's actions (`sizes`: the bytes each step frees);
    /// outcomes in plan order.
    pub fn run(&mut self, plan: &Plan, sizes: &[Vec<u64>], work: Work) -> Vec<Outcome> {
        let n = plan.actions.len();
        let threads = n.div_ceil(PER_THREAD).clamp(1, self.mutators.len());
        let Some(pool) = self.pool.as_ref().filter(|_| threads > 1) else {
            return run_all(&mut self.mutators[0], &plan.actions, sizes, work);
        };
        let per = n.div_ceil(threads);
        let runs: Vec<Vec<Outcome>> = pool.install(|| {
            plan.actions
                .par_chunks(per)
                .zip(sizes.par_chunks(per))
                .zip(self.mutators.par_iter_mut())
                .map(|((actions, sizes), m)| run_all(m, actions, sizes, work))
                .collect()
        });
        runs.into_iter().flatten().collect()
    }
}

/// Runs `actions` in order with one mutator. A panic (a bug) fails the
/// actions of this run only, reported, instead of ending the process with
/// the other threads' messages half done.
fn run_all(m: &mut Mutator, actions: &[Action], sizes: &[Vec<u64>], work: Work) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(actions.len());
    let done = catch_unwind(AssertUnwindSafe(|| {
        for (a, sz) in actions.iter().zip(sizes) {
            out.push(run_one(m, a, sz, work));
        }
    }));
    if done.is_err() {
        let failed = Outcome { status: Status::Failed, bytes: 0, error: Some("worker thread panicked".into()) };
        out.resize(actions.len(), failed);
    }
    out
}

/// Runs `action`. A file already gone is what a removal wants (and, for a
/// time stamp, means qmail-send finished the message meanwhile); any other
/// failure stops the action, which leaves the message in a state a rerun
/// finishes (mess is last).
fn run_one(m: &mut Mutator, action: &Action, sizes: &[u64], work: Work) -> Outcome {
    let o = m.run(action, Run { sizes, gone_ok: true, follows: false }, &mut |_, _| {});
    let dry = m.mode() == Mode::DryRun;
    let status = match work {
        _ if o.failed.is_some() => Status::Failed,
        Work::Remove if dry => Status::WouldRemove,
        Work::Remove => Status::Removed,
        Work::Expire { .. } if o.gone > 0 => Status::Vanished,
        Work::Expire { .. } if dry => Status::WouldExpire,
        Work::Expire { .. } => Status::Expired,
    };
    Outcome { status, bytes: o.bytes, error: o.failed.map(|(_, e)| e.to_string()) }
}
