//! The verifying pass of a live run: it decides the exit status, and it
//! tells "something else is writing to the queue" (problems in files
//! written while the repair ran) from "not fixed" (problems in what was
//! there before). And one repair needs one run: a repair's temporary name
//! that holds another name of a message file (not a copy qfixq wrote) is
//! dropped in the same run.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;
use qtests::Damage;

#[test]
fn another_writer_is_named_as_such() {
    if !root_or_skip("another_writer_is_named_as_such") {
        return;
    }
    let fx = build(1500, 23, false, 5, &[Damage::CopiedToOtherFs]);
    let q = fx.queue().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    // A stand-in for a process that keeps writing into the queue: a new
    // stray name in a mess bucket every millisecond.
    let writer = {
        let stop = stop.clone();
        let dir = q.join("mess/0");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let _ = std::fs::write(dir.join(format!("junk-{i}")), b"x");
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    // The writer is this test process: when the process check catches it
    // with a junk file open, qfixq would refuse; the administrator who
    // lets another writer run says --force.
    let out = command(&q, &["live", "--force"]).output().expect("run qfixq");
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{written} files written during the run\n{text}");
    assert!(text.contains("something else is writing to the queue"), "{text}");
    assert!(!text.contains("although every step succeeded"), "nothing was left unfixed by qfixq itself\n{text}");
}

#[test]
fn a_link_under_a_fresh_copy_name_is_fixed_in_one_run() {
    if !root_or_skip("a_link_under_a_fresh_copy_name") {
        return;
    }
    let fx = build(40, 7, false, 6, &[]);
    let q = fx.queue();
    // A not-yet-preprocessed message: intd and todo share an inode.
    let n = std::fs::read_dir(q.join("todo"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()))
        .min()
        .expect("the builder makes some todo-stage messages");
    let intd = q.join(format!("intd/{n}"));
    let envelope = std::fs::read(&intd).unwrap();
    std::fs::hard_link(&intd, q.join(format!("todo/.qfixq-fresh-{n}"))).unwrap();
    assert_eq!(std::fs::metadata(&intd).unwrap().nlink(), 3);
    let before = snapshot(q);
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after one live run");
    assert_eq!(std::fs::read(q.join(format!("todo/{n}"))).unwrap(), envelope, "todo kept");
    assert_eq!(std::fs::read(&intd).unwrap(), envelope, "intd kept");
    assert_eq!(std::fs::metadata(&intd).unwrap().nlink(), 2, "intd and todo share their inode again");
    assert_none(&check_healthy(q, 7, false, &before), "after one run", Some(&live));
}

/// The numbers of the first `k` messages with an info file, and how many
/// messages the queue holds (its mess files).
fn some_preprocessed(q: &std::path::Path, k: usize) -> (Vec<std::path::PathBuf>, u64) {
    let mut infos = regular_files(&q.join("info"));
    infos.sort();
    infos.truncate(k);
    assert_eq!(infos.len(), k, "the builder makes preprocessed messages");
    (infos, regular_files(&q.join("mess")).len() as u64)
}

fn summary(run: &Run) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&run.out()).expect("one JSON document");
    doc["summary"].clone()
}

#[test]
fn a_few_bad_modes_are_verified_alone() {
    if !root_or_skip("a_few_bad_modes_are_verified_alone") {
        return;
    }
    let fx = build(200, 23, false, 8, &[]);
    let q = fx.queue();
    let (infos, messages) = some_preprocessed(q, 3);
    for info in &infos {
        std::fs::set_permissions(info, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    }
    let live = qfixq(q, &["live", "--json"]);
    live.expect(1, "live");
    let s = summary(&live);
    assert_eq!(s["problems"], 3, "{}", live.show());
    assert_eq!(s["verify_scope"], "changed", "{}", live.show());
    assert_eq!(s["verified_messages"], 3, "only the three changed messages are examined again\n{}", live.show());
    assert_eq!(s["stated_messages"], 3, "chmodded only: stated, not reread\n{}", live.show());
    assert_eq!(s["listed_messages"], messages - 3, "{}", live.show());
    for info in &infos {
        assert_eq!(std::fs::metadata(info).unwrap().mode() & 0o7777, 0o600, "{}", info.display());
    }
    qfixq(q, &[]).expect(0, "check after the live run");
}

#[test]
fn the_whole_verifying_check_on_request_gives_the_same_verdict() {
    if !root_or_skip("the_whole_verifying_check_on_request") {
        return;
    }
    let fx = build(120, 23, false, 9, &[]);
    let q = fx.queue();
    let (infos, messages) = some_preprocessed(q, 2);
    for info in &infos {
        std::fs::set_permissions(info, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    }
    let live = qfixq(q, &["live", "--json", "--verify=all"]);
    live.expect(1, "live --verify=all");
    let s = summary(&live);
    assert_eq!(s["verify_scope"], "all", "{}", live.show());
    assert_eq!(s["verified_messages"], messages, "every message examined again\n{}", live.show());
    assert_eq!(s["listed_messages"], 0, "{}", live.show());
    assert_eq!(s["stated_messages"], 0, "{}", live.show());
    // Nothing to repair: no verifying check, no counts.
    let again = qfixq(q, &["live", "--json"]);
    again.expect(0, "second live run");
    assert!(summary(&again).get("verified_messages").is_none(), "{}", again.show());
}

#[test]
fn a_step_that_left_its_problem_is_caught_by_either_check() {
    if !root_or_skip("a_step_that_left_its_problem") {
        return;
    }
    for scope in ["--verify=changed", "--verify=all"] {
        let fx = build(80, 23, false, 10, &[]);
        let q = fx.queue();
        let (infos, _) = some_preprocessed(q, 2);
        for info in &infos {
            std::fs::set_permissions(info, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        }
        // Every chmod reports success and changes nothing.
        let live = qfixq_env(q, &["live", scope], &[("QTOOLS_SKIP_STEP", "chmod")]);
        live.expect(4, scope);
        assert!(live.out().contains("2 problems are still there although every step succeeded"), "{}", live.show());
    }
}

/// A renumbering's verifying check states each renumbered message's mess
/// alone and lists the rest: it still catches renames that reported
/// success and moved nothing, and a renumbering carried out is verified
/// with one stat per message.
#[test]
fn a_renumbering_is_verified_by_its_mess_and_its_names() {
    if !root_or_skip("a_renumbering_is_verified_by_its_mess_and_its_names") {
        return;
    }
    // Carried out: every message renumbered, each stated once (its mess).
    let fx = build(60, 23, false, 11, &[Damage::CopiedToOtherFs]);
    let q = fx.queue();
    let messages = regular_files(&q.join("mess")).len() as u64;
    let live = qfixq(q, &["live", "--json"]);
    live.expect(1, "live after a copy");
    let s = summary(&live);
    assert_eq!(s["stated_messages"], s["verified_messages"], "{}", live.show());
    assert!(s["stated_messages"].as_u64().unwrap() >= messages, "every renumbered message is stated\n{}", live.show());
    qfixq(q, &[]).expect(0, "check after the live run");
    // Every rename reports success and moves nothing: the messages are
    // still under their old numbers, whose mess is not their inode.
    for scope in ["--verify=changed", "--verify=all"] {
        let fx = build(60, 23, false, 12, &[Damage::CopiedToOtherFs]);
        let q = fx.queue();
        let live = qfixq_env(q, &["live", scope], &[("QTOOLS_SKIP_STEP", "rename")]);
        live.expect(4, scope);
        assert!(live.out().contains("still there although every step succeeded"), "{scope}\n{}", live.show());
    }
}
