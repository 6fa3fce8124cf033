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
