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
    let what = format!("split-23 queue re-bucketed to split {to}");
    if !root_or_skip(&what) {
        return;
    }
    let fx = build(messages_for(to), 23, false, 90 + to as u64, &[]);
    let q = fx.queue();
    let fates = expected_fates(q, false);
    let census = census(q, false);
    let before = snapshot(q);
    let s = to.to_string();
    let run = qfixq(q, &["--split", &s, "-q", "live"]);
    run.expect(1, &format!("{what}: live"));
    qfixq(q, &["--split", &s]).expect(0, &format!("{what}: check after live"));
    assert_none(&check_fates(&fates, q, false), &what, Some(&run));
    assert_none(&check_census(&census, q), &what, Some(&run));
    assert_none(&check_healthy(q, to, false, &before), &what, Some(&run));
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
