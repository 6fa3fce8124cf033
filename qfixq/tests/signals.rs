//! Never hang, never leave the lock held: a panic in any thread ends the
//! process promptly with one line that says a rerun finishes the job;
//! SIGTERM ends a live run within two seconds, between two steps, and the
//! rerun finishes it; a second signal ends it at once.
//!
//! Panics are injected with qcommon's `fault-injection` feature
//! (`QTOOLS_PANIC_AT`), enabled for these tests by the dev-dependencies.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use qtests::prelude::qfixq::*;
use qtests::rng::Rng;
use qtests::snapshot::{snapshot, Snapshot};
use qtests::Damage;

fn start(q: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = std::process::Command::new(binary());
    cmd.arg("--queue").arg(q).args(["--ids", IDS_ARG]).args(args).env_remove("QTOOLS_ABORT_AFTER_STEP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start qfixq")
}

/// Waits up to `limit` for the child; kills it (and fails) if it is
/// still there.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> (ExitStatus, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return (st, t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Whether lock/sendmutex can be taken now (nobody holds it). A run
/// stopped while messages were half moved leaves it set aside as the
/// renumbering fence (docs/repair.md, "Renumbering"): that one's lock.
fn lock_is_free(q: &Path) -> bool {
    let fence = q.join("lock/sendmutex.qfixq-renumbering");
    let path = if q.join("lock/sendmutex").exists() { q.join("lock/sendmutex") } else { fence };
    let f = std::fs::File::open(path).expect("open sendmutex (or its fence)");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

/// Runs `qfixq live` again on the split-23 queue `q`: it must finish the
/// job, and the queue must then check clean, with every message's fate
/// and content as the policy says and the queue healthy.
fn rerun_finishes(q: &Path, fates: &Fates, census: &Census, before: &Snapshot, what: &str) -> Run {
    let rerun = qfixq(q, &["live"]);
    assert!(matches!(rerun.code(), Some(0 | 1)), "{what}: rerun\n{}", rerun.show());
    qfixq(q, &[]).expect(0, &format!("{what}: check after the rerun"));
    assert_none(&check_fates(fates, q, false), what, Some(&rerun));
    assert_none(&check_census(census, q), what, Some(&rerun));
    assert_none(&check_healthy(q, 23, false, before), what, Some(&rerun));
    rerun
}

fn panic_case(point: &str, live: bool) {
    let what = format!("panic at {point} ({})", if live { "live" } else { "check" });
    if !root_or_skip(&what) {
        return;
    }
    let fx = build(600, 23, false, 77, &[Damage::CopiedToOtherFs]);
    let q = fx.queue();
    let fates = expected_fates(q, false);
    let census = census(q, false);
    let before = snapshot(q);
    let args: &[&str] = if live { &["live"] } else { &[] };
    let mut child = start(q, args, &[("QTOOLS_PANIC_AT", point)]);
    // A hang is what this test exists to catch: a generous limit.
    let (st, took) = wait_within(&mut child, Duration::from_secs(60), &what);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(8), "{what}: exit status {st:?}\n{err}");
    assert!(err.contains("internal error"), "{what}: {err}");
    assert!(err.contains("run the same command again"), "{what}: {err}");
    assert!(lock_is_free(q), "{what}: lock/sendmutex still held");
    if !live {
        assert!(snapshot(q).diff(&before).is_empty(), "{what}: a check changed the queue");
    }
    rerun_finishes(q, &fates, &census, &before, &what);
    println!("{what}: ended with exit 8 after {took:?}; rerun finished the repair");
}

#[test]
fn panic_in_a_scan_thread_during_live() {
    panic_case("scan-worker", true);
}

#[test]
fn panic_on_the_main_thread_during_live() {
    panic_case("scan-sink", true);
}

#[test]
fn panic_in_a_scan_thread_during_check() {
    panic_case("scan-worker", false);
}

/// SIGTERM at seeded random moments of a live run that renumbers every
/// message: gone within two seconds (exit 32, or 1 if it had finished),
/// lock free, and the rerun finishes the job.
#[test]
fn sigterm_at_random_moments() {
    if !root_or_skip("sigterm_at_random_moments") {
        return;
    }
    let seed = std::env::var("QTOOLS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(4242u64);
    println!("sigterm_at_random_moments: seed {seed} (set QTOOLS_TEST_SEED to repeat)");
    let mut rng = Rng::new(seed);
    for round in 0..3 {
        let fx = build(1500, 23, false, seed + round, &[Damage::CopiedToOtherFs]);
        let q = fx.queue();
        let fates = expected_fates(q, false);
        let census = census(q, false);
        let before = snapshot(q);
        let delay = Duration::from_millis(rng.range(40, 350));
        let what = format!("round {round}: SIGTERM after {delay:?} (seed {seed})");
        let mut child = start(q, &["live"], &[]);
        std::thread::sleep(delay);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let (st, took) = wait_within(&mut child, Duration::from_secs(2), &what);
        let err = stderr_of(&mut child);
        if st.signal() == Some(15) {
            // Before its handlers were installed (they are, before the
            // first change): the default action ended it, and nothing
            // may have changed.
            assert!(snapshot(q).diff(&before).is_empty(), "{what}: killed by SIGTERM after a change");
        } else {
            assert!(matches!(st.code(), Some(1 | 32)), "{what}: {st:?} (signal {:?})\n{err}", st.signal());
        }
        assert!(lock_is_free(q), "{what}: lock/sendmutex still held");
        let rerun = rerun_finishes(q, &fates, &census, &before, &what);
        println!("{what}: exit {:?} {took:?} after the signal; rerun exit {:?}", st.code(), rerun.code());
    }
}

/// A second signal ends the run at once, with exit 32.
#[test]
fn a_second_signal_ends_at_once() {
    if !root_or_skip("a_second_signal_ends_at_once") {
        return;
    }
    let fx = build(1500, 23, false, 99, &[Damage::CopiedToOtherFs]);
    let q = fx.queue();
    let census = census(q, false);
    let mut child = start(q, &["live"], &[]);
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let (st, _) = wait_within(&mut child, Duration::from_secs(2), "two SIGINTs");
    // Exit 32 (stopped, or ended at once by the second), 1 when it had
    // finished, or SIGINT's default action before the handlers were in.
    assert!(matches!(st.code(), Some(1 | 32)) || st.signal() == Some(2), "{st:?}");
    let rerun = qfixq(q, &["live"]);
    assert!(matches!(rerun.code(), Some(0 | 1)), "rerun\n{}", rerun.show());
    qfixq(q, &[]).expect(0, "check after the rerun");
    assert_none(&check_census(&census, q), "two SIGINTs", Some(&rerun));
}
