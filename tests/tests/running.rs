//! qmail running: a stand-in for qmail-send (python3 or perl) holds an
//! exclusive flock on `lock/sendmutex` and calls itself qmail-send.
//! Every writing mode (`qfixq live`, `qfixq live empty`, a `qkillns`
//! removal) refuses with exit 8 and changes nothing, not even an access
//! time; qstat and qfixq's check still work; `qkillns --expire` works
//! beside it (it is made for that). A process whose working directory is
//! in the queue (a qmail-queue in flight) makes the writing modes refuse
//! unless `--force`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use qcommon::queue::Part;
use qtests::prelude::cross::*;
use qtests::{apply_damage, message_path, BuiltQueue, BuiltState, Damage};

const SPLIT: u32 = 7;

fn setup(seed: u64) -> (tempfile::TempDir, BuiltQueue) {
    let tmp = scratch(true);
    let built = build(&tmp.path().join("queue"), 40, SPLIT, seed, 0.3);
    // Something to repair, so a live run that went ahead would show.
    apply_damage(&built, Damage::BadOwnersModes, seed, &tmp.path().join("outside")).expect("damage");
    (tmp, built)
}

fn refuses(q: &Path, inv: Invocation, why: &str) {
    age_atimes(q);
    let before = snapshot_light(q);
    let run = inv.run();
    run.assert_sane().expect(8);
    let err = run.err();
    assert!(err.contains(why), "the refusal says {why:?}\n{}", run.show());
    assert_no_diff(
        &before.compare(&snapshot_light(q), Compare::READ_ONLY),
        "a refused run changed the queue",
        Some(&run),
    );
}

#[test]
fn writing_modes_refuse_while_qmail_send_holds_its_lock() {
    if !root_or_skip("writing_modes_refuse_while_qmail_send_holds_its_lock") {
        return;
    }
    let (_tmp, built) = setup(71);
    let q = built.queue.clone();
    let Some(qs) = StandIn::start(Some(&q.join("lock/sendmutex")), Some("qmail-send"), None) else {
        skipped("writing_modes_refuse_while_qmail_send_holds_its_lock", "neither python3 nor perl");
        return;
    };
    let pid = qs.pid().to_string();
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).arg("live"), "qmail-send");
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["live", "empty"]), "qmail-send");
    // --force is for a qmail-queue in flight, never for qmail-send.
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["live", "--force"]), "qmail-send");
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["--live", "--empty", "--no-quarantine"]), "qmail-send");
    refuses(&q, cmd("qkillns").queue(&q, SPLIT), &pid);
    refuses(&q, cmd("qkillns").queue(&q, SPLIT).args(["--double", "--force"]), &pid);

    // Reading works, and says that qmail-send runs.
    age_atimes(&q);
    let before = snapshot_light(&q);
    let run = cmd("qfixq").queue(&q, SPLIT).run();
    run.assert_sane().expect(4);
    assert!(run.out().contains(&format!("pid {pid}")), "the check names qmail-send\n{}", run.show());
    let run = cmd("qstat").queue(&q, SPLIT).run();
    run.assert_sane().expect(0);
    assert!(run.out().starts_with("messages in queue: 40\n"), "{}", run.show());
    cmd("qstat").queue(&q, SPLIT).args(["--detail", "--top", "3"]).run().assert_sane().expect(0);
    let run = cmd("qkillns").queue(&q, SPLIT).arg("-n").run();
    run.assert_sane().expect(0);
    assert!(run.out().contains("running"), "the dry run says qmail-send runs\n{}", run.show());
    assert_no_diff(&before.compare(&snapshot_light(&q), Compare::READ_ONLY), "a read-only run changed the queue", None);

    // --expire is made to run beside qmail-send: it backdates and signals.
    let nulls: Vec<(PathBuf, i64)> = built
        .messages
        .iter()
        .filter(|m| m.state == BuiltState::Preprocessed && m.sender.is_empty())
        .map(|m| {
            let p = message_path(&q, Part::Info, m.number, SPLIT, false);
            let t = fs::symlink_metadata(&p).unwrap().mtime();
            (p, t)
        })
        .collect();
    assert!(!nulls.is_empty());
    let run = cmd("qkillns").queue(&q, SPLIT).arg("--expire").run();
    run.assert_sane().expect(0);
    assert!(
        run.out().contains(&format!("pid {pid} (qmail-send, holds lock/sendmutex)")),
        "it finds qmail-send by its lock\n{}",
        run.show()
    );
    assert!(run.out().contains(&format!("sent SIGALRM to pid {pid}")), "{}", run.show());
    let lifetime = 604_800;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for (p, _) in &nulls {
        let m = fs::symlink_metadata(p).unwrap().mtime();
        assert!(m <= now - lifetime, "{} not expired (mtime {m})\n{}", p.display(), run.show());
    }
    assert!(qs.comm() == "qmail-send", "the stand-in survived the SIGALRM");
}

#[test]
fn a_process_working_in_the_queue_stops_writers_unless_forced() {
    if !root_or_skip("a_process_working_in_the_queue_stops_writers_unless_forced") {
        return;
    }
    let (_tmp, built) = setup(72);
    let q = built.queue.clone();
    let Some(inflight) = StandIn::start(None, Some("qmail-queue"), Some(&q)) else {
        skipped("a_process_working_in_the_queue_stops_writers_unless_forced", "neither python3 nor perl");
        return;
    };
    let pid = inflight.pid().to_string();
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).arg("live"), &pid);
    refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["live", "empty"]), &pid);
    refuses(&q, cmd("qkillns").queue(&q, SPLIT), &pid);
    // Reading still works.
    cmd("qstat").queue(&q, SPLIT).run().assert_sane().expect(0);
    cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(4);
    // Forced, the writers go ahead.
    let nulls = built.messages.iter().filter(|m| m.sender.is_empty()).count();
    let run = cmd("qkillns").queue(&q, SPLIT).arg("--force").run();
    run.assert_sane().expect(0);
    assert!(run.out().contains(&format!("removed {nulls} message(s)")), "{}", run.show());
    let run = cmd("qfixq").queue(&q, SPLIT).args(["live", "--force"]).run();
    run.assert_sane().expect(1);
    cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
}
