//! Salvaged messages across the three tools: qfixq records every message
//! whose sender it invents, the record follows the message through a
//! renumbering and through qfixq's own reruns, qkillns keeps recorded
//! messages unless told otherwise, qstat counts them apart, and a record
//! whose message is gone is ignored, then removed by `qfixq live`. Also
//! the runbook's offline repair path: a new, empty queue built by qfixq
//! from an empty directory, and the damaged queue repaired beside it.

use std::fs;
use std::path::Path;

use qtests::practice::{check_removal, contents, null_sender_contents, salvaged_contents};
use qtests::prelude::cross::*;
use qtests::{apply_damage, Damage};

const SPLIT: u32 = 7;

fn record_names(queue: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(queue.join("lost+found/salvaged"))
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The number in `prefix N` on a line of `out`.
fn count_after(out: &str, prefix: &str) -> Option<u64> {
    out.lines().find_map(|l| l.strip_prefix(prefix)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
}

/// A queue of 120 messages (a fifth of them bounces) whose info bucket 3
/// is lost; returns the contents of the real bounces.
fn damaged(dir: &Path, seed: u64) -> std::collections::BTreeSet<u64> {
    let built = build(dir, 120, SPLIT, seed, 0.2);
    let bounces = null_sender_contents(dir).unwrap();
    let outside = dir.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    apply_damage(&built, Damage::MissingBucket, seed, &outside).unwrap();
    apply_damage(&built, Damage::GarbledInfo, seed + 1, &outside).unwrap();
    bounces
}

#[test]
fn salvaged_messages_are_recorded_kept_by_qkillns_counted_by_qstat_and_follow_a_copy() {
    let test = "salvaged_messages_are_recorded_kept_by_qkillns_counted_by_qstat_and_follow_a_copy";
    if !root_or_skip(test) {
        return;
    }
    let tmp = scratch(false);
    let queue = tmp.path().join("queue");
    let bounces = damaged(&queue, 41);

    // The check plans the record before the info; live writes it.
    let check = cmd("qfixq").queue(&queue, SPLIT).arg("--all").run();
    check.assert_sane().expect(4);
    let lost = check.out().lines().filter(|l| l.contains(": written with the null sender")).count();
    assert!(lost >= 3, "too few sender-lost findings ({lost})\n{}", check.show());
    let out = check.out();
    let first = out.find("would: write lost+found/salvaged/").expect("no record step");
    let info = out[first..].find("would: write info/").expect("no info step after the record");
    assert!(info > 0);
    cmd("qfixq").queue(&queue, SPLIT).arg("live").run().assert_sane().expect(1);
    assert_eq!(record_names(&queue).len(), lost, "one record per message whose sender was invented");
    let salvaged = salvaged_contents(&queue, SPLIT).unwrap();
    assert_eq!(salvaged.len(), lost);
    // A rerun neither drops nor duplicates a record.
    let names = record_names(&queue);
    cmd("qfixq").queue(&queue, SPLIT).arg("live").run().assert_sane().expect(0);
    assert_eq!(record_names(&queue), names);

    // Copied to new inodes: every message is renumbered, records too.
    let copy = tmp.path().join("copy");
    let cp = which("cp").expect("cp");
    sh(&cp, &["-a".as_ref(), queue.as_os_str(), copy.as_os_str()]).expect("cp -a");
    let run = cmd("qfixq").queue(&copy, SPLIT).arg("live").run();
    run.assert_sane().expect(1);
    assert!(run.out().contains("renumber:"), "{}", run.show());
    assert_eq!(salvaged_contents(&copy, SPLIT).unwrap(), salvaged, "records lost or mixed up in the renumbering");
    assert_eq!(record_names(&copy).len(), lost, "{:?}", record_names(&copy));
    cmd("qfixq").queue(&copy, SPLIT).run().assert_sane().expect(0);

    // qstat counts them apart from the bounces: text, JSON, Prometheus;
    // nothing in lost+found (digit-named records) is taken for a message.
    let run = cmd("qstat").queue(&copy, SPLIT).arg("--detail").run();
    run.assert_sane().expect(0);
    let queued: usize = contents(&copy).unwrap().values().sum();
    assert_eq!(count_after(&run.out(), "messages found by the scan: "), Some(queued as u64), "{}", run.show());
    assert_eq!(count_after(&run.out(), "entries that are not message files: "), Some(0), "{}", run.show());
    let line = "salvaged messages (sender lost; qfixq wrote the null sender, not bounces): ";
    assert_eq!(count_after(&run.out(), line), Some(lost as u64), "{}", run.show());
    let run = cmd("qstat").queue(&copy, SPLIT).args(["--detail", "--json"]).run();
    run.assert_sane().expect(0);
    qtests::json::check_json(&run.out()).unwrap();
    assert!(run.out().contains(&format!("\"salvaged\":{lost},")), "{}", run.show());
    let prom = tmp.path().join("q.prom");
    cmd("qstat").queue(&copy, SPLIT).args(["--detail", "--prometheus"]).arg(&prom).run().assert_sane().expect(0);
    let text = fs::read_to_string(&prom).unwrap();
    let label = copy.display();
    assert!(text.lines().any(|l| l == format!("qmail_queue_salvaged_messages{{queue=\"{label}\"}} {lost}")), "{text}");

    // qkillns keeps them, says so, and removes exactly the real bounces.
    let repaired = contents(&copy).unwrap();
    let run = cmd("qkillns").queue(&copy, SPLIT).arg("-n").run();
    run.assert_sane().expect(0);
    assert_eq!(count_after(&run.out(), "kept "), Some(lost as u64), "{}", run.show());
    let run = cmd("qkillns").queue(&copy, SPLIT).arg("--json").run();
    run.assert_sane().expect(0);
    assert!(run.out().contains(&format!("\"salvaged_kept\":{lost}")), "{}", run.show());
    let r = check_removal(&bounces, &salvaged, &repaired, &contents(&copy).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.salvaged_kept, lost);
    assert!(r.bounces_removed > 0);

    // Taken only on request; their records are then stale: ignored, and
    // removed by the next live run (not counted as a problem).
    let run = cmd("qkillns").queue(&copy, SPLIT).args(["--include-salvaged", "-q"]).run();
    run.assert_sane().expect(0);
    assert_eq!(count_after(&run.out(), "removed "), Some(lost as u64), "{}", run.show());
    let run = cmd("qstat").queue(&copy, SPLIT).arg("--detail").run();
    assert_eq!(count_after(&run.out(), line), Some(0), "{}", run.show());
    let run = cmd("qfixq").queue(&copy, SPLIT).arg("--all").run();
    run.assert_sane().expect(0);
    assert_eq!(run.out().matches("no longer in the queue").count(), lost, "{}", run.show());
    assert_eq!(record_names(&copy).len(), lost, "the check removed something");
    cmd("qfixq").queue(&copy, SPLIT).arg("live").run().assert_sane().expect(0);
    assert!(record_names(&copy).is_empty(), "{:?}", record_names(&copy));
}

#[test]
fn a_new_queue_is_built_from_an_empty_directory_and_the_old_one_repaired_offline() {
    let test = "a_new_queue_is_built_from_an_empty_directory_and_the_old_one_repaired_offline";
    if !root_or_skip(test) {
        return;
    }
    let tmp = scratch(false);
    let queue = tmp.path().join("queue");
    let bounces = damaged(&queue, 43);
    // Move the damaged queue aside; an empty directory takes its place.
    let aside = tmp.path().join("queue.damaged");
    fs::rename(&queue, &aside).unwrap();
    fs::create_dir(&queue).unwrap();

    // Only a live run with the split and the ids makes a queue there.
    let run = cmd("qfixq").queue(&queue, SPLIT).run();
    run.assert_sane().expect(8);
    assert!(run.err().contains("not a qmail queue"), "{}", run.show());
    let run = cmd("qfixq").arg("--queue").arg(&queue).arg("live").run();
    run.assert_sane().expect(8);
    assert!(run.err().contains("give the split and the ids"), "{}", run.show());
    assert_eq!(fs::read_dir(&queue).unwrap().count(), 0, "a refused run changed the directory");

    cmd("qfixq").queue(&queue, SPLIT).arg("live").run().assert_sane().expect(1);
    let run = cmd("qfixq").queue(&queue, SPLIT).run();
    run.assert_sane().expect(0);
    assert!(run.out().contains("summary: no problems found"), "{}", run.show());
    let run = cmd("qstat").queue(&queue, SPLIT).run();
    run.assert_sane().expect(0);
    assert_eq!(run.out(), "messages in queue: 0\nmessages in queue but not yet preprocessed: 0\n");
    // qmail's own modes and owners (qmail-send needs lock/trigger a FIFO).
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = fs::symlink_metadata(queue.join("lock/trigger")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (IDS.qmails, IDS.qmail_gid, 0o622));
    for d in ["mess", "info", "local", "remote"] {
        assert_eq!(fs::read_dir(queue.join(d)).unwrap().count(), SPLIT as usize, "{d}");
    }

    // A non-empty directory that is no queue is still refused.
    let junk = tmp.path().join("junk");
    fs::create_dir(&junk).unwrap();
    fs::write(junk.join("file"), b"x").unwrap();
    cmd("qfixq").queue(&junk, SPLIT).arg("live").run().assert_sane().expect(8);
    assert_eq!(fs::read_dir(&junk).unwrap().count(), 1);

    // The damaged queue, repaired offline, then its bounces removed.
    cmd("qfixq").queue(&aside, SPLIT).run().assert_sane().expect(4);
    cmd("qfixq").queue(&aside, SPLIT).arg("live").run().assert_sane().expect(1);
    cmd("qfixq").queue(&aside, SPLIT).run().assert_sane().expect(0);
    let salvaged = salvaged_contents(&aside, SPLIT).unwrap();
    assert!(!salvaged.is_empty());
    let repaired = contents(&aside).unwrap();
    cmd("qkillns").queue(&aside, SPLIT).run().assert_sane().expect(0);
    check_removal(&bounces, &salvaged, &repaired, &contents(&aside).unwrap()).unwrap_or_else(|e| panic!("{e}"));
}
