//! Other conf-split values than the default: a queue copied to another
//! filesystem (every message renumbered) and a queue re-bucketed for a
//! new split, at conf-split 1, 7, 23, 127, 151, 257 and 1009, through the
//! real binary. Splits of 127 and more touch more bucket directories than
//! the mutator keeps open at once, which once made `qfixq live` panic in
//! the second half of renumbering.

use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;
use qtests::Damage;

const SPLITS: [u32; 7] = [1, 7, 23, 127, 151, 257, 1009];

/// Enough messages that a large split's buckets are mostly in use.
fn messages_for(split: u32) -> usize {
    (split as usize * 2).clamp(60, 1200)
}

fn copied(split: u32, big_todo: bool) {
    let what = format!("copied queue, split {split}{}", if big_todo { ", big-todo" } else { "" });
    if !root_or_skip(&what) {
        return;
    }
    let fx = build(messages_for(split), split, big_todo, 40 + split as u64, &[Damage::CopiedToOtherFs]);
    let q = fx.queue();
    let fates = expected_fates(q, big_todo);
    let census = census(q, big_todo);
    let before = snapshot(q);
    let s = split.to_string();
    let run = qfixq(q, &["--split", &s, "-q", "live"]);
    run.expect(1, &format!("{what}: live"));
    qfixq(q, &["--split", &s]).expect(0, &format!("{what}: check after live"));
    assert_none(&check_fates(&fates, q, big_todo), &what, Some(&run));
    assert_none(&check_census(&census, q), &what, Some(&run));
    assert_none(&check_healthy(q, split, big_todo, &before), &what, Some(&run));
    assert!(
        regular_files(q).iter().all(|p| !p.to_string_lossy().contains(".qfixq-")),
        "{what}: temporary names left\n{}",
        run.show()
    );
    println!("{what}: {} messages renumbered and checked", messages_for(split));
}

fn rebucketed(to: u32) {
    rebucketed_within(to, None);
}

/// Re-buckets a split-23 queue to split `to`; with `max_files`, qfixq runs
/// under that descriptor limit, soft and hard (it cannot raise it).
fn rebucketed_within(to: u32, max_files: Option<u64>) {
    let what = match max_files {
        None => format!("split-23 queue re-bucketed to split {to}"),
        Some(n) => format!("split-23 queue re-bucketed to split {to} with at most {n} open files"),
    };
    if !root_or_skip(&what) {
        return;
    }
    let fx = build(messages_for(to), 23, false, 90 + to as u64, &[]);
    let q = fx.queue();
    let fates = expected_fates(q, false);
    let census = census(q, false);
    let before = snapshot(q);
    let s = to.to_string();
    let run = match max_files {
        None => Some(qfixq(q, &["--split", &s, "-q", "live"])),
        Some(n) => {
            let out = std::process::Command::new("prlimit")
                .arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(qtests::runner::tool("qfixq"))
                .args(["--queue".as_ref(), q.as_os_str()])
                .args(["--ids", IDS_ARG, "--split", &s, "-q", "live"])
                .output()
                .expect("run prlimit");
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: live\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
    };
    if let Some(run) = &run {
        run.expect(1, &format!("{what}: live"));
    }
    qfixq(q, &["--split", &s]).expect(0, &format!("{what}: check after live"));
    assert_none(&check_fates(&fates, q, false), &what, run.as_ref());
    assert_none(&check_census(&census, q), &what, run.as_ref());
    assert_none(&check_healthy(q, to, false, &before), &what, run.as_ref());
}

#[test]
fn copied_at_every_split() {
    for split in SPLITS {
        copied(split, false);
    }
}

#[test]
fn copied_big_todo_at_large_splits() {
    for split in [127, 1009] {
        copied(split, true);
    }
}

#[test]
fn rebucketed_to_every_split() {
    for split in SPLITS {
        if split != 23 {
            rebucketed(split);
        }
    }
}

/// A supervisor or container may set the hard descriptor limit to 1024 or
/// less: re-bucketing to conf-split 1009 (7,063 bucket directories) then
/// once failed step after step with "Too many open files". The caches of
/// directory handles now take their size from the limit.
#[test]
fn rebucketed_under_a_low_descriptor_limit() {
    if qtests::runner::which("prlimit").is_none() {
        println!("skipped: rebucketed_under_a_low_descriptor_limit needs prlimit (util-linux)");
        return;
    }
    for n in [1024, 256] {
        rebucketed_within(1009, Some(n));
    }
}
