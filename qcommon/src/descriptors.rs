//! Open-file descriptors: the tools keep directory handles open (the
//! scan's bucket directories, each worker's handles for misplaced files,
//! the mutator's cache), and re-bucketing a queue to a large conf-split
//! touches thousands of directories. This module owns the process's
//! descriptor limit: each tool raises its soft limit to the hard one when
//! it starts, and every cache of directory handles takes its size from
//! [`share`] of what is then allowed, so a low limit (1024 is common, and
//! a supervisor may set the hard limit that low too) makes the caches
//! smaller instead of making steps fail with "Too many open files".

use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// What is assumed when the limit cannot be read.
const ASSUMED: u64 = 1024;

/// The soft limit as last raised or read (0: not yet read).
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Raises the soft limit on open files to the hard limit and returns
/// the soft limit in force afterwards (unchanged when raising fails).
/// For the binaries' `main`, before any thread starts.
pub fn raise_limit() -> u64 {
    let now = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() => hard,
        Ok((soft, _)) => soft,
        Err(_) => ASSUMED,
    };
    LIMIT.store(now, Ordering::Relaxed);
    now
}

/// The soft limit on open files (read once, or as [`raise_limit`] left it).
pub fn limit() -> u64 {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(ASSUMED, |(soft, _)| soft);
            LIMIT.store(soft, Ordering::Relaxed);
            soft
        }
        n => n,
    }
}

/// How many directory handles one cache may keep when `holders` caches
/// share a quarter of the limit (the rest is for the files being read,
/// the buckets in hand and the standard streams), between `min` and `max`.
pub fn share(holders: usize, min: usize, max: usize) -> usize {
    let quarter = usize::try_from(limit() / 4).unwrap_or(usize::MAX);
    (quarter / holders.max(1)).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_limit_and_stay_within_bounds() {
        let l = limit();
        assert!(l > 0);
        let one = share(1, 16, usize::MAX);
        assert_eq!(one, usize::try_from(l / 4).unwrap().max(16));
        assert!(share(16, 4, 64) <= 64 && share(16, 4, 64) >= 4);
        assert!(share(usize::MAX, 7, 9) == 7, "a tiny share is raised to the minimum");
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let now = raise_limit();
        assert!(now >= soft && now <= hard);
        assert_eq!(limit(), now);
    }
}
