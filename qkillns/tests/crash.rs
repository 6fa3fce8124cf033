//! Crash safety: the binary is killed (SIGKILL, as a power cut) right after
//! its k-th step (`QTOOLS_ABORT_AFTER_STEP`, qcommon's `fault-injection`
//! feature, enabled for this test build by the dev-dependency), then run
//! again.
//!
//! After the crash: every selected message has lost a prefix of its files in
//! removal order (todo, intd, bounce, local, remote, info, mess), at most
//! one of them only partly when one worker thread removes (fewer than nine
//! selected messages in a batch), at most one per worker thread otherwise;
//! nothing else changed. After the rerun (exit 0):
//! nothing is left of the selected messages but at most one lone mess file
//! (the message whose info was removed just before the crash): a rerun
//! cannot tell that a lone mess was selected, and qmail-send (after 36
//! hours) or `qfixq live` cleans it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use qtests::prelude::qkillns::*;

const ORDER: [&str; 7] = ["todo", "intd", "bounce", "local", "remote", "info", "mess"];

fn rank(p: &Path) -> usize {
    let top = p.components().next().unwrap().as_os_str().to_str().unwrap();
    ORDER.iter().position(|o| *o == top).unwrap()
}

fn build() -> (Queue, Vec<Msg>, Vec<Msg>) {
    let q = Queue::new();
    let t = now();
    let sel = vec![
        q.preprocessed(
            b"",
            &[(b"postmaster@local.example", false)],
            &[(b"a@remote.example", false)],
            "failure notice",
            t - 86_400,
            true,
        ),
        q.todo(b"", &[b"b@remote.example"], "failure notice", t - 60),
        q.preprocessed(b"", &[], &[(b"c@remote.example", true), (b"d@remote.example", false)], "x", t, false),
        q.todo(b"", &[b"e@remote.example", b"f@remote.example"], "failure notice", t - 30),
    ];
    let other = vec![
        q.preprocessed(b"g@local.example", &[], &[(b"h@remote.example", false)], "hello", t, true),
        q.todo(b"i@remote.example", &[b"j@local.example"], "hi", t),
    ];
    (q, sel, other)
}

/// Total steps of removing `sel`: one per file.
fn total_steps(sel: &[Msg]) -> usize {
    sel.iter().map(|m| m.files.len()).sum()
}

#[test]
fn killed_after_any_step_a_rerun_finishes_the_job() {
    if !root_or_skip("killed_after_any_step_a_rerun_finishes_the_job") {
        return;
    }
    let (_, probe, _) = build();
    let total = total_steps(&probe);
    assert_eq!(total, 5 + 3 + 3 + 3);
    for k in [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13] {
        let (q, sel, other) = build();
        let gone: Vec<PathBuf> = sel.iter().flat_map(|m| m.files.clone()).collect();
        let rest_before = without(snapshot(&q.root), &gone);

        let out = qkillns(&q).env("QTOOLS_ABORT_AFTER_STEP", k.to_string()).output().unwrap();
        assert_eq!(out.status.signal(), Some(9), "k={k}: not killed: {:?}", out.status);

        // Each selected message lost a prefix of its files, in order.
        let mut partial = 0;
        let mut removed_files = 0;
        for m in &sel {
            let present = q.present(m);
            removed_files += m.files.len() - present.len();
            if let Some(first_left) = present.iter().map(|p| rank(p)).min() {
                for f in &m.files {
                    if rank(f) > first_left {
                        assert!(q.exists(f), "k={k}: {} removed before {}", f.display(), ORDER[first_left]);
                    }
                }
                if present.len() < m.files.len() {
                    partial += 1;
                }
            }
        }
        assert_eq!(removed_files, k, "k={k}: one file per step");
        assert!(partial <= 1, "k={k}: {partial} messages partly removed");
        // Nothing else changed.
        let rest_after = without(snapshot(&q.root), &gone);
        assert_same(&rest_before, &rest_after);
        for m in &other {
            assert_eq!(q.present(m), m.files);
        }

        // The rerun finishes.
        let out = qkillns(&q).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "k={k}: {}", String::from_utf8_lossy(&out.stderr));
        let mut lone = 0;
        for m in &sel {
            let present = q.present(m);
            match present.as_slice() {
                [] => {}
                [only] if rank(only) == 6 => lone += 1,
                left => panic!("k={k}: message {} left {left:?}", m.number),
            }
        }
        assert!(lone <= 1, "k={k}: {lone} lone mess files");
        let text = String::from_utf8_lossy(&out.stdout);
        if lone == 1 {
            assert!(text.contains("1 message(s) have neither todo, info"), "k={k}: {text}");
        }
        assert_same(&rest_before, &without(snapshot(&q.root), &gone));
    }
}

#[test]
fn expire_killed_midway_is_finished_by_a_rerun() {
    if !root_or_skip("expire_killed_midway_is_finished_by_a_rerun") {
        return;
    }
    let q = Queue::with(false, Some("home"));
    let t = now();
    let msgs: Vec<Msg> =
        (0..4).map(|_| q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t, false)).collect();
    let run = |abort: Option<&str>| {
        let mut c = assert_cmd::Command::cargo_bin("qkillns").unwrap();
        c.arg("--qmail-home").arg(q.home()).args(["--split", "23", "--expire"]);
        match abort {
            Some(k) => c.env("QTOOLS_ABORT_AFTER_STEP", k),
            None => c.env_remove("QTOOLS_ABORT_AFTER_STEP"),
        };
        c.output().unwrap()
    };
    let out = run(Some("2"));
    assert_eq!(out.status.signal(), Some(9));
    let backdated = msgs.iter().filter(|m| q.mtime(&m.files[1]) < t - 604_800).count();
    assert_eq!(backdated, 2);
    let out = run(None);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("backdated 2 message(s) past queuelifetime; 2 already past it"), "{text}");
    assert!(msgs.iter().all(|m| q.mtime(&m.files[1]) < t - 604_800));
}

/// Enough selected messages that several worker threads remove at once:
/// after a crash each worker may have left one message partly removed, each
/// still a prefix of the removal order.
#[test]
fn parallel_workers_killed_midway_leave_only_ordered_prefixes() {
    if !root_or_skip("parallel_workers_killed_midway_leave_only_ordered_prefixes") {
        return;
    }
    const WORKERS: usize = 4;
    for k in [2, 9, 20, 30] {
        let q = Queue::new();
        let t = now();
        let mut sel = Vec::new();
        for i in 0..40 {
            sel.push(match i % 3 {
                0 => q.todo(b"", &[b"a@remote.example"], "failure notice", t),
                1 => q.preprocessed(b"", &[(b"pm@local.example", false)], &[(b"b@r.example", false)], "x", t, true),
                _ => q.preprocessed(b"", &[], &[(b"c@remote.example", false)], "failure notice", t, false),
            });
        }
        let other: Vec<Msg> = (0..10)
            .map(|_| q.preprocessed(b"u@local.example", &[], &[(b"v@r.example", false)], "hi", t, true))
            .collect();
        let gone: Vec<PathBuf> = sel.iter().flat_map(|m| m.files.clone()).collect();
        let rest_before = without(snapshot(&q.root), &gone);

        let out = qkillns(&q).env("QTOOLS_ABORT_AFTER_STEP", k.to_string()).output().unwrap();
        assert_eq!(out.status.signal(), Some(9), "k={k}: not killed: {:?}", out.status);
        let mut partial = 0;
        let mut removed = 0;
        for m in &sel {
            let present = q.present(m);
            removed += m.files.len() - present.len();
            if let Some(first_left) = present.iter().map(|p| rank(p)).min() {
                for f in m.files.iter().filter(|f| rank(f) > first_left) {
                    assert!(q.exists(f), "k={k}: {} removed before {}", f.display(), ORDER[first_left]);
                }
                if present.len() < m.files.len() {
                    partial += 1;
                }
            }
        }
        assert!(removed >= k && removed <= k * WORKERS, "k={k}: {removed} files removed");
        assert!(partial <= WORKERS, "k={k}: {partial} messages partly removed");
        assert_same(&rest_before, &without(snapshot(&q.root), &gone));

        let out = qkillns(&q).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "k={k}: {}", String::from_utf8_lossy(&out.stderr));
        let mut lone = 0;
        for m in &sel {
            match q.present(m).as_slice() {
                [] => {}
                [only] if rank(only) == 6 => lone += 1,
                left => panic!("k={k}: message {} left {left:?}", m.number),
            }
        }
        assert!(lone <= WORKERS, "k={k}: {lone} lone mess files");
        assert_same(&rest_before, &without(snapshot(&q.root), &gone));
        for m in &other {
            assert_eq!(q.present(m), m.files);
        }
    }
}

/// A panic in a scan thread (injected by the `fault-injection` feature)
/// ends qkillns at once with exit 8 and one line that says a rerun
/// finishes the job; the lock is free and the rerun removes the bounces.
#[test]
fn a_panic_in_a_scan_thread_ends_the_run() {
    if !root_or_skip("a_panic_in_a_scan_thread_ends_the_run") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let bounce = q.preprocessed(b"", &[], &[(b"bob@remote.example", false)], "failure notice", t - 3600, false);
    let out = qkillns(&q).env("QTOOLS_PANIC_AT", "scan-worker").output().expect("run qkillns");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(err.contains("internal error") && err.contains("run the same command again"), "{err}");
    let f = std::fs::File::open(q.root.join("lock/sendmutex")).unwrap();
    assert!(nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok(), "lock still held");
    qkillns(&q).assert().success();
    assert!(q.present(&bounce).is_empty(), "the rerun removed the bounce");
}
